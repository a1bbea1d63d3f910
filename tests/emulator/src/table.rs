//! Server-side printing: `meta.k8s.io/v1` `Table` responses for `kubectl get` (requested with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the built-in kinds' columns.

use crate::resources::ResourceInfo;
use serde_json::{json, Value};
use std::borrow::Borrow;

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// kubectl's short human duration (`45s`, `3m20s`, `5h`, `12d`).
pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "0s".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
    {
        Some(t) => json!(human_duration(now - t)),
        None => json!("<unknown>"),
    }
}

fn col(name: &str, ty: &str, priority: u32) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

/// Evaluates a simple JSONPath (`.spec.hosts`, `.metadata.creationTimestamp`, `.a[0].b`).
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn cell_text(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => json!("<none>"),
        Some(Value::String(s)) => json!(s),
        Some(Value::Array(a)) => json!(a
            .iter()
            .map(|x| x
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(",")),
        Some(other) => other.clone(),
    }
}

fn columns_and_cells(res: &ResourceInfo, obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = json!(obj["metadata"]["name"]);
    let count = |v: &Value| v.as_object().map(|m| m.len()).unwrap_or(0);
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => {
            let statuses = obj["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = obj["spec"]["containers"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses
                .iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum();
            (
                vec![
                    col("Name", "string", 0),
                    col("Ready", "string", 0),
                    col("Status", "string", 0),
                    col("Restarts", "string", 0),
                    col("Age", "string", 0),
                    col("IP", "string", 1),
                    col("Node", "string", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(s(&obj["status"]["phase"])),
                    json!(restarts.to_string()),
                    age(obj),
                    cell_text(obj["status"].get("podIP")),
                    cell_text(obj["spec"].get("nodeName")),
                ],
            )
        }
        ("apps", "Deployment") => {
            let st = &obj["status"];
            let n = |v: &Value| v.as_i64().unwrap_or(0);
            let containers = obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let names: Vec<String> = containers.iter().map(|c| s(&c["name"])).collect();
            let images: Vec<String> = containers.iter().map(|c| s(&c["image"])).collect();
            let selector: Vec<String> = obj["spec"]["selector"]["matchLabels"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect())
                .unwrap_or_default();
            (
                vec![
                    col("Name", "string", 0),
                    col("Ready", "string", 0),
                    col("Up-to-date", "integer", 0),
                    col("Available", "integer", 0),
                    col("Age", "string", 0),
                    col("Containers", "string", 1),
                    col("Images", "string", 1),
                    col("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        n(&st["readyReplicas"]),
                        n(&obj["spec"]["replicas"])
                    )),
                    json!(n(&st["updatedReplicas"])),
                    json!(n(&st["availableReplicas"])),
                    age(obj),
                    json!(names.join(",")),
                    json!(images.join(",")),
                    json!(selector.join(",")),
                ],
            )
        }
        ("", "Service") => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", p["port"], s(&p["protocol"])))
                .collect();
            (
                vec![
                    col("Name", "string", 0),
                    col("Type", "string", 0),
                    col("Cluster-IP", "string", 0),
                    col("External-IP", "string", 0),
                    col("Port(s)", "string", 0),
                    col("Age", "string", 0),
                ],
                vec![
                    name,
                    json!(s(&obj["spec"]["type"])),
                    cell_text(obj["spec"].get("clusterIP")),
                    json!("<none>"),
                    json!(if ports.is_empty() {
                        "<none>".to_string()
                    } else {
                        ports.join(",")
                    }),
                    age(obj),
                ],
            )
        }
        ("", "ConfigMap") => (
            vec![
                col("Name", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            vec![
                name,
                json!(count(&obj["data"]) + count(&obj["binaryData"])),
                age(obj),
            ],
        ),
        ("", "Secret") => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            vec![
                name,
                json!(obj["type"].as_str().unwrap_or("Opaque")),
                json!(count(&obj["data"])),
                age(obj),
            ],
        ),
        ("", "Namespace") => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            vec![name, json!(s(&obj["status"]["phase"])), age(obj)],
        ),
        ("apiextensions.k8s.io", _) => (
            vec![col("Name", "string", 0), col("Created At", "date", 0)],
            vec![name, obj["metadata"]["creationTimestamp"].clone()],
        ),
        _ if !res.printer_columns.is_empty() => {
            let mut cols = vec![col("Name", "string", 0)];
            let mut cells = vec![name];
            for pc in &res.printer_columns {
                let path = pc["jsonPath"].as_str().unwrap_or("");
                let ty = pc["type"].as_str().unwrap_or("string");
                let mut c = col(
                    pc["name"].as_str().unwrap_or(""),
                    if ty == "date" { "string" } else { ty },
                    pc["priority"].as_u64().unwrap_or(0) as u32,
                );
                c["description"] = pc.get("description").cloned().unwrap_or(json!(""));
                cols.push(c);
                cells.push(if ty == "date" {
                    match json_path(obj, path)
                        .and_then(|v| v.as_str())
                        .and_then(parse_rfc3339)
                    {
                        Some(t) => json!(human_duration(
                            std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs() as i64)
                                .unwrap_or(0)
                                - t
                        )),
                        None => json!("<unknown>"),
                    }
                } else {
                    cell_text(json_path(obj, path))
                });
            }
            (cols, cells)
        }
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            vec![name, age(obj)],
        ),
    }
}

/// A Table of objects of `res` (rows carry `PartialObjectMetadata` objects, like the default
/// `includeObject=Metadata`). The items may be stored objects (`Arc<Value>`) or copies.
pub fn table<V: Borrow<Value>>(
    res: &ResourceInfo,
    items: &[V],
    rv: u64,
    include_object: &str,
) -> Value {
    let mut columns = None;
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let o = o.borrow();
            let (cols, cells) = columns_and_cells(res, o);
            columns.get_or_insert(cols);
            let object = match include_object {
                "None" => Value::Null,
                "Object" => crate::cluster::Cluster::present(res, o),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let columns = columns.unwrap_or_else(|| columns_and_cells(res, &json!({"metadata": {}})).0);
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()},
           "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86_400 * 3 + 3600), "3d1h");
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01Z"), Some(86_401));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
    }

    #[test]
    fn deployment_row() {
        let d = crate::resources::builtins()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap();
        let obj = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
                         "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table(&d, &[obj], 7, "Metadata");
        assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
        assert_eq!(t["rows"][0]["cells"][1], "2/3");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
