//! Optional persistence: the whole state as one JSON file in a directory, loaded on start.

use crate::cluster::{Cluster, ObjectRef};
use serde_json::{json, Value};
use std::path::Path;

const FILE: &str = "cluster.json";

/// Writes every object (atomically: a temporary file renamed over the old one).
pub fn save(cluster: &Cluster, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let items: Vec<Value> = cluster
        .snapshot()
        .iter()
        .map(|(k, v)| json!({"group": k.group, "resource": k.plural, "namespace": k.namespace, "name": k.name, "object": v.as_ref()}))
        .collect();
    let doc = json!({"resourceVersion": cluster.resource_version(), "items": items});
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec(&doc).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, dir.join(FILE))
}

/// Loads a saved state if `dir` has one; returns whether it did.
pub fn load(cluster: &mut Cluster, dir: &Path) -> std::io::Result<bool> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(false);
    }
    let doc: Value =
        serde_json::from_slice(&std::fs::read(&path)?).map_err(std::io::Error::other)?;
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let items = doc["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                ObjectRef {
                    group: s(&i["group"]),
                    plural: s(&i["resource"]),
                    namespace: s(&i["namespace"]),
                    name: s(&i["name"]),
                },
                i["object"].clone(),
            )
        })
        .collect();
    cluster.load(items, doc["resourceVersion"].as_u64().unwrap_or(0));
    Ok(true)
}
