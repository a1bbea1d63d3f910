//! Field ownership: `managedFields` in the `FieldsV1` format, server-side apply merges and
//! field-manager conflicts.
//!
//! A field set is a set of paths; each path is a list of FieldsV1 tokens (`f:spec`,
//! `k:{"name":"web"}`, `v:"x"`, and `.` for a list item itself).

use crate::error::ApiError;
use crate::resources::{list_type, ListType, ResourceInfo};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One path in a field set.
pub type FieldPath = Vec<String>;
/// A set of owned fields.
pub type FieldSet = BTreeSet<FieldPath>;

const SKIPPED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Which part of an object a field set covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    /// Everything but `status` when the resource has a status subresource.
    Main,
    /// Only `status`.
    Status,
}

fn included(res: &ResourceInfo, part: Part, top: &str) -> bool {
    match part {
        Part::Status => top == "status",
        Part::Main => {
            !(top == "apiVersion" || top == "kind" || (top == "status" && res.status_subresource))
        }
    }
}

/// The leaf fields set in `obj` (for ownership purposes).
pub fn field_set(res: &ResourceInfo, obj: &Value, part: Part) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return set;
    };
    for (k, v) in map {
        if !included(res, part, k) {
            continue;
        }
        if k == "metadata" {
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if SKIPPED_METADATA.contains(&mk.as_str()) {
                    continue;
                }
                walk(
                    res,
                    mv,
                    &mut vec!["metadata".into(), mk.clone()],
                    &mut vec![format!("f:metadata"), format!("f:{mk}")],
                    &mut set,
                );
            }
            continue;
        }
        walk(
            res,
            v,
            &mut vec![k.clone()],
            &mut vec![format!("f:{k}")],
            &mut set,
        );
    }
    set
}

/// The `k:{...}` token of a list item under the given keys.
fn key_token(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        } else if k == "protocol" {
            // The defaulted key of container and service ports.
            m.insert(k.clone(), Value::String("TCP".into()));
        }
    }
    if m.is_empty() {
        return None;
    }
    Some(format!("k:{}", Value::Object(m)))
}

fn walk(
    res: &ResourceInfo,
    v: &Value,
    names: &mut Vec<String>,
    toks: &mut Vec<String>,
    set: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                names.push(k.clone());
                toks.push(format!("f:{k}"));
                walk(res, child, names, toks, set);
                names.pop();
                toks.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_type(res, &refs) {
                ListType::Atomic => {
                    set.insert(toks.clone());
                }
                ListType::Set => {
                    for i in items {
                        let mut p = toks.clone();
                        p.push(format!("v:{i}"));
                        set.insert(p);
                    }
                }
                ListType::Map(keys) => {
                    for item in items {
                        let Some(tok) = key_token(item, &keys) else {
                            set.insert(toks.clone());
                            continue;
                        };
                        toks.push(tok);
                        let mut dot = toks.clone();
                        dot.push(".".into());
                        set.insert(dot);
                        walk(res, item, names, toks, set);
                        toks.pop();
                    }
                }
            }
        }
        _ => {
            set.insert(toks.clone());
        }
    }
}

/// Renders a field set as a `fieldsV1` object.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut cur = &mut root;
        for tok in path {
            cur = cur
                .as_object_mut()
                .expect("object")
                .entry(tok.clone())
                .or_insert_with(|| json!({}));
        }
    }
    root
}

/// Parses a `fieldsV1` object into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn rec(v: &Value, prefix: &mut Vec<String>, set: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, c) in m {
                    prefix.push(k.clone());
                    rec(c, prefix, set);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    set.insert(prefix.clone());
                }
            }
        }
    }
    let mut set = FieldSet::new();
    rec(v, &mut vec![], &mut set);
    set
}

/// `.spec.template.spec.containers[name="web"].image`: how the apiserver prints a path.
pub fn path_string(path: &FieldPath) -> String {
    let mut s = String::new();
    for tok in path {
        if let Some(f) = tok.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = tok.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = tok.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

fn item_matches(item: &Value, tok: &str) -> bool {
    if let Some(k) = tok.strip_prefix("k:") {
        let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
        !m.is_empty()
            && m.iter().all(|(k, v)| {
                item.get(k) == Some(v) || (k == "protocol" && item.get(k).is_none() && v == "TCP")
            })
    } else if let Some(v) = tok.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).ok().as_ref() == Some(item)
    } else {
        false
    }
}

/// The value at a path, if present.
pub fn get_path<'a>(obj: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut cur = obj;
    for tok in path {
        if tok == "." {
            continue;
        }
        cur = if let Some(f) = tok.strip_prefix("f:") {
            cur.get(f)?
        } else {
            cur.as_array()?.iter().find(|i| item_matches(i, tok))?
        };
    }
    Some(cur)
}

/// Removes the value at a path (a `.` path removes the whole list item).
pub fn remove_path(obj: &mut Value, path: &FieldPath) {
    let toks: Vec<&String> = path.iter().filter(|t| t.as_str() != ".").collect();
    let Some((last, parent)) = toks.split_last() else {
        return;
    };
    let mut cur = obj;
    for tok in parent {
        let next = if let Some(f) = tok.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| item_matches(i, tok)))
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(a) = cur.as_array_mut() {
        a.retain(|i| !item_matches(i, last));
    }
}

/// Merges an applied configuration into a live object, list by list type.
pub fn merge_applied(res: &ResourceInfo, live: &mut Value, applied: &Value) {
    merge_rec(res, live, applied, &mut vec![]);
}

fn merge_rec(res: &ResourceInfo, live: &mut Value, applied: &Value, names: &mut Vec<String>) {
    match applied {
        Value::Object(a) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let l = live.as_object_mut().expect("object");
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                names.push(k.clone());
                merge_rec(res, l.entry(k.clone()).or_insert(Value::Null), v, names);
                names.pop();
            }
        }
        Value::Array(items) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_type(res, &refs) {
                ListType::Atomic => *live = applied.clone(),
                ListType::Set => {
                    let mut l = live.as_array().cloned().unwrap_or_default();
                    for i in items {
                        if !l.contains(i) {
                            l.push(i.clone());
                        }
                    }
                    *live = Value::Array(l);
                }
                ListType::Map(keys) => {
                    let mut l = live.as_array().cloned().unwrap_or_default();
                    for item in items {
                        let pos = key_token(item, &keys)
                            .and_then(|t| l.iter().position(|x| item_matches(x, &t)));
                        match pos {
                            Some(i) => merge_rec(res, &mut l[i], item, names),
                            None => l.push(item.clone()),
                        }
                    }
                    *live = Value::Array(l);
                }
            }
        }
        other => *live = other.clone(),
    }
}

/// One `managedFields` entry, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the manager used.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// `status` for status-subresource entries, else empty.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Reads an object's `metadata.managedFields`.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            api_version: e["apiVersion"].as_str().unwrap_or("").into(),
            time: e["time"].as_str().unwrap_or("").into(),
            subresource: e["subresource"].as_str().unwrap_or("").into(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Writes entries back into `metadata.managedFields` (dropping empty ones).
pub fn set_entries(obj: &mut Value, list: &[Entry]) {
    let arr: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj["metadata"].as_object_mut() {
        if arr.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(arr));
        }
    }
}

/// Records a non-apply write (`create`, `update`, `patch`) by `manager`: it takes the fields it
/// changed from the other managers; fields that disappeared are dropped from every entry.
pub fn record_update(
    res: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    let part = if subresource == "status" {
        Part::Status
    } else {
        Part::Main
    };
    let new_set = field_set(res, new, part);
    let changed: FieldSet = match old {
        None => new_set.clone(),
        Some(o) => new_set
            .iter()
            .filter(|p| get_path(o, p) != get_path(new, p))
            .cloned()
            .collect(),
    };
    let mut list = entries(new);
    let in_new = |p: &FieldPath| !part_matches(res, part, p) || get_path(new, p).is_some();
    for e in &mut list {
        e.fields.retain(|p| !changed.contains(p) && in_new(p));
    }
    if !changed.is_empty() {
        let api_version = res.api_version();
        match list.iter_mut().find(|e| {
            e.manager == manager
                && e.operation == "Update"
                && e.subresource == subresource
                && e.api_version == api_version
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.into();
            }
            None => list.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version,
                time: now.into(),
                subresource: subresource.into(),
                fields: changed,
            }),
        }
    }
    set_entries(new, &list);
}

fn part_matches(res: &ResourceInfo, part: Part, p: &FieldPath) -> bool {
    let top = p.first().map(|t| t.trim_start_matches("f:")).unwrap_or("");
    included(res, part, top)
}

/// Server-side apply of `applied` by `manager` onto `live` (None: the object is created).
/// Returns the merged object with updated `managedFields`, or a 409 listing the conflicts.
pub fn apply(
    res: &ResourceInfo,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let mut applied = applied.clone();
    if res.status_subresource {
        if let Some(m) = applied.as_object_mut() {
            m.remove("status");
        }
    }
    let new_set = field_set(res, &applied, Part::Main);
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    let mut list = entries(&merged);
    let mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource.is_empty();
    let previous: FieldSet = list
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();

    let mut conflicts: BTreeMap<(String, String), Vec<FieldPath>> = BTreeMap::new();
    let mut count = 0;
    for e in list.iter().filter(|e| !mine(e) && e.subresource.is_empty()) {
        for p in e.fields.intersection(&new_set) {
            if p.last().map(String::as_str) == Some(".") {
                continue;
            }
            if live.and_then(|l| get_path(l, p)) != get_path(&applied, p) {
                conflicts
                    .entry((e.describe(), e.manager.clone()))
                    .or_default()
                    .push(p.clone());
                count += 1;
            }
        }
    }
    if count > 0 && !force {
        return Err(conflict_error(&conflicts, count));
    }
    if force {
        for e in list.iter_mut().filter(|e| !mine(e)) {
            e.fields
                .retain(|p| !new_set.contains(p) || p.last().map(String::as_str) == Some("."));
        }
    }
    merge_applied(res, &mut merged, &applied);
    // Fields this manager applied before but no longer applies, and nobody else owns, go away.
    let others: FieldSet = list
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut dropped: Vec<&FieldPath> = previous
        .difference(&new_set)
        .filter(|p| !others.contains(*p))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        let item_prefix = p.last().map(String::as_str) == Some(".");
        if item_prefix {
            let prefix = &p[..p.len() - 1];
            let owned_inside = others
                .iter()
                .chain(new_set.iter())
                .any(|o| o.len() > prefix.len() && o.starts_with(prefix));
            if owned_inside {
                continue;
            }
        }
        remove_path(&mut merged, p);
    }
    list.retain(|e| !mine(e));
    list.insert(
        0,
        Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version: res.api_version(),
            time: now.into(),
            subresource: String::new(),
            fields: new_set,
        },
    );
    set_entries(&mut merged, &list);
    Ok(merged)
}

fn conflict_error(
    conflicts: &BTreeMap<(String, String), Vec<FieldPath>>,
    count: usize,
) -> ApiError {
    let message = if count == 1 {
        let ((who, _), paths) = conflicts.iter().next().expect("one conflict");
        format!(
            "Apply failed with 1 conflict: conflict with {who}: {}",
            path_string(&paths[0])
        )
    } else {
        let mut lines = vec![];
        for ((who, _), paths) in conflicts {
            lines.push(format!("conflicts with {who}:"));
            for p in paths {
                lines.push(format!("- {}", path_string(p)));
            }
        }
        format!("Apply failed with {count} conflicts: {}", lines.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .flat_map(|((who, _), paths)| {
            paths.iter().map(move |p| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {who}"), "field": path_string(p)}))
        })
        .collect();
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: Some(json!({ "causes": causes })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtins;

    fn deploy() -> ResourceInfo {
        builtins()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap()
    }

    fn obj(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trip_and_paths() {
        let set = field_set(&deploy(), &obj(1, "nginx"), Part::Main);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:image"],
            json!({})
        );
        assert_eq!(v1["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert!(v1["f:metadata"].get("f:name").is_none());
        assert_eq!(from_fields_v1(&v1), set);
        let p: FieldPath = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            path_string(&p),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
        assert_eq!(get_path(&obj(1, "nginx"), &p), Some(&json!("nginx")));
    }

    #[test]
    fn apply_conflicts_and_force() {
        let r = deploy();
        let a = apply(&r, None, &obj(1, "nginx"), "alice", false, "t").unwrap();
        // Same values: shared ownership, no conflict.
        let b = apply(&r, Some(&a), &obj(1, "nginx"), "bob", false, "t").unwrap();
        let e = apply(&r, Some(&b), &obj(3, "nginx:2"), "bob", false, "t").unwrap_err();
        assert_eq!(e.code, 409);
        assert!(
            e.message
                .starts_with("Apply failed with 2 conflicts: conflicts with \"alice\":"),
            "{}",
            e.message
        );
        assert!(e.message.contains("\n- .spec.replicas"), "{}", e.message);
        let c = apply(&r, Some(&b), &obj(3, "nginx:2"), "bob", true, "t").unwrap();
        assert_eq!(c["spec"]["replicas"], 3);
        let alice = entries(&c)
            .into_iter()
            .find(|e| e.manager == "alice")
            .unwrap();
        assert!(!alice
            .fields
            .iter()
            .any(|p| path_string(p) == ".spec.replicas"));
    }

    #[test]
    fn apply_removes_fields_no_longer_applied() {
        let r = deploy();
        let mut with_label = obj(1, "nginx");
        with_label["metadata"]["labels"]["tier"] = json!("front");
        let a = apply(&r, None, &with_label, "alice", false, "t").unwrap();
        let b = apply(&r, Some(&a), &obj(1, "nginx"), "alice", false, "t").unwrap();
        assert!(b["metadata"]["labels"].get("tier").is_none());
        assert_eq!(b["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn update_takes_ownership_of_changed_fields() {
        let r = deploy();
        let a = apply(&r, None, &obj(1, "nginx"), "alice", false, "t").unwrap();
        let mut b = a.clone();
        b["spec"]["replicas"] = json!(5);
        record_update(&r, Some(&a), &mut b, "kubectl-scale", "", "t");
        let e = apply(&r, Some(&b), &obj(1, "nginx"), "alice", false, "t").unwrap_err();
        assert!(
            e.message
                .contains("conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"),
            "{}",
            e.message
        );
    }
}
