//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

use crate::error::ApiError;
use crate::resources::{patch_merge_key, patch_merges_primitives, ResourceInfo};
use serde_json::{Map, Value};

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(ptr: &str) -> Result<Vec<String>, ApiError> {
    if ptr.is_empty() {
        return Ok(vec![]);
    }
    let rest = ptr
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {ptr:?}")))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn jp_err(msg: String) -> ApiError {
    ApiError::new(422, "Invalid", msg)
}

fn json_add(
    doc: &mut Value,
    parts: &[String],
    value: Value,
    replace: bool,
) -> Result<(), ApiError> {
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    let mut cur = doc;
    for p in parent {
        cur = match cur {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            jp_err(format!(
                "doc is missing path: \"/{}\": missing value",
                parts.join("/")
            ))
        })?;
    }
    match cur {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(jp_err(format!(
                    "replace operation does not apply: doc is missing key: /{}: missing value",
                    parts.join("/")
                )));
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
            } else {
                let i: usize = last
                    .parse()
                    .map_err(|_| jp_err(format!("invalid array index {last:?}")))?;
                if replace {
                    *a.get_mut(i)
                        .ok_or_else(|| jp_err(format!("index {i} out of bounds")))? = value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(jp_err(format!("index {i} out of bounds")));
                }
            }
        }
        _ => {
            return Err(jp_err(format!(
                "doc is missing path: \"/{}\"",
                parts.join("/")
            )))
        }
    }
    Ok(())
}

fn json_remove(doc: &mut Value, parts: &[String]) -> Result<Value, ApiError> {
    let (last, parent) = parts
        .split_last()
        .ok_or_else(|| jp_err("cannot remove the root".into()))?;
    let missing = || {
        jp_err(format!(
            "remove operation does not apply: doc is missing path: \"/{}\": missing value",
            parts.join("/")
        ))
    };
    let mut cur = doc;
    for p in parent {
        cur = match cur {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(missing)?;
    }
    match cur {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

fn json_get<'a>(doc: &'a Value, ptr: &str) -> Result<&'a Value, ApiError> {
    doc.pointer(ptr)
        .ok_or_else(|| jp_err(format!("doc is missing path: {ptr:?}")))
}

/// Applies an RFC 6902 JSON patch (a list of operations).
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be a list of operations"))?;
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("json patch operation without \"path\""))?;
        let parts = pointer_parts(path)?;
        match op["op"].as_str().unwrap_or("") {
            "add" => json_add(
                doc,
                &parts,
                op.get("value").cloned().unwrap_or(Value::Null),
                false,
            )?,
            "replace" => json_add(
                doc,
                &parts,
                op.get("value").cloned().unwrap_or(Value::Null),
                true,
            )?,
            "remove" => {
                json_remove(doc, &parts)?;
            }
            "test" => {
                if json_get(doc, path)? != &op["value"] {
                    return Err(jp_err(format!("testing value {path} failed: test failed")));
                }
            }
            "move" | "copy" => {
                let from = op["from"]
                    .as_str()
                    .ok_or_else(|| ApiError::bad_request("move/copy without \"from\""))?;
                let v = if op["op"] == "move" {
                    json_remove(doc, &pointer_parts(from)?)?
                } else {
                    json_get(doc, from)?.clone()
                };
                json_add(doc, &parts, v, false)?;
            }
            other => return Err(ApiError::bad_request(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(())
}

/// Removes `$patch`, `$retainKeys`, `$setElementOrder/..` and `$deleteFromPrimitiveList/..`
/// directives from a value that is inserted wholesale.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to a built-in object (merge keys from [`patch_merge_key`]).
pub fn strategic_merge_patch(
    res: &ResourceInfo,
    target: &mut Value,
    patch: &Value,
) -> Result<(), ApiError> {
    let mut path = vec![];
    smp_map(res, target, patch, &mut path)
}

fn smp_map(
    res: &ResourceInfo,
    target: &mut Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(|v| v.as_str()) {
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?}"
            )))
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (target.get_mut(field), v.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let t = target.as_object_mut().expect("object");
        if v.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.clone());
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match v {
            Value::Object(_) => {
                smp_map(res, slot, v, path)?;
                if slot.is_null() {
                    t.remove(k);
                }
            }
            Value::Array(items) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                if let Some(key) = patch_merge_key(res, &refs) {
                    smp_list(res, slot, items, key, path)?;
                } else if patch_merges_primitives(&refs) {
                    let list = slot.as_array().cloned().unwrap_or_default();
                    let mut merged = list;
                    for i in items {
                        if !merged.contains(i) {
                            merged.push(i.clone());
                        }
                    }
                    *slot = Value::Array(merged);
                } else {
                    *slot = strip_directives(v);
                }
            }
            _ => *slot = v.clone(),
        }
        path.pop();
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(|k| k.as_str()).collect();
        target
            .as_object_mut()
            .expect("object")
            .retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn smp_list(
    res: &ResourceInfo,
    slot: &mut Value,
    items: &[Value],
    key: &str,
    path: &mut Vec<String>,
) -> Result<(), ApiError> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(|v| v.as_str()) == Some("replace"))
    {
        *slot = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        );
        return Ok(());
    }
    let mut list = slot.as_array().cloned().unwrap_or_default();
    for item in items {
        let Some(k) = item.get(key) else {
            return Err(ApiError::bad_request(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let pos = list.iter().position(|x| x.get(key) == Some(k));
        if item.get("$patch").and_then(|v| v.as_str()) == Some("delete") {
            if let Some(i) = pos {
                list.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => smp_map(res, &mut list[i], item, path)?,
            None => list.push(strip_directives(item)),
        }
    }
    *slot = Value::Array(list);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtins;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"a": [1, 2], "b": {"c": 1}});
        json_patch(
            &mut t,
            &json!([
                {"op": "add", "path": "/a/-", "value": 3},
                {"op": "replace", "path": "/b/c", "value": 9},
                {"op": "remove", "path": "/a/0"},
                {"op": "test", "path": "/b/c", "value": 9},
                {"op": "copy", "from": "/b", "path": "/d"}
            ]),
        )
        .unwrap();
        assert_eq!(t, json!({"a": [2, 3], "b": {"c": 9}, "d": {"c": 9}}));
        assert!(json_patch(&mut t, &json!([{"op": "test", "path": "/b/c", "value": 1}])).is_err());
        assert!(json_patch(&mut t, &json!([{"op": "remove", "path": "/zz"}])).is_err());
    }

    #[test]
    fn strategic_merge_by_container_name() {
        let deploy = builtins()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap();
        let mut t = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}}}});
        strategic_merge_patch(
            &deploy,
            &mut t,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [
                    {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                    {"name": "b", "$patch": "delete"}]}}}}),
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}}}})
        );
    }
}
