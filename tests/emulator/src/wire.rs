//! Response bodies serialised straight from the stored objects, without copying them.
//!
//! A stored object is shared (`Arc<Value>`) with snapshots and watch events; serving it used to
//! mean a deep copy (to set `apiVersion` and `kind`) and then another tree for the list around it.
//! [`Served`] writes the type fields and then the object's other fields as they are stored;
//! [`List`] copies each object's [`fields_json`], serialised once when it was stored.

use crate::resources::ResourceInfo;
use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// A stored object as served: `apiVersion` and `kind` of the requested version first (or left
/// out, as in lists of built-in kinds), then the object's other fields.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    object: &'a Value,
    type_meta: Option<(&'a str, &'a str)>,
}

impl<'a> Served<'a> {
    /// `object` with the given `apiVersion` and `kind`.
    pub fn new(object: &'a Value, api_version: &'a str, kind: &'a str) -> Self {
        Served {
            object,
            type_meta: Some((api_version, kind)),
        }
    }

    /// `object` without `apiVersion` and `kind` (items of a list of a built-in kind).
    pub fn untyped(object: &'a Value) -> Self {
        Served {
            object,
            type_meta: None,
        }
    }
}

impl Serialize for Served<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(fields) = self.object.as_object() else {
            return self.object.serialize(serializer);
        };
        let is_type_field = |k: &str| k == "apiVersion" || k == "kind";
        let others = fields.keys().filter(|k| !is_type_field(k)).count();
        let len = others + if self.type_meta.is_some() { 2 } else { 0 };
        let mut map = serializer.serialize_map(Some(len))?;
        if let Some((api_version, kind)) = self.type_meta {
            map.serialize_entry("apiVersion", api_version)?;
            map.serialize_entry("kind", kind)?;
        }
        for (k, v) in fields.iter().filter(|(k, _)| !is_type_field(k)) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The fields of a stored object other than `apiVersion` and `kind`, serialised without the
/// enclosing braces (`"data":{..},"metadata":{..}`). The cluster keeps this beside every stored
/// object (written once per write, like the API server's cache of serialised objects), so a
/// [`List`] is written by copying bytes.
pub fn fields_json(object: &Value) -> Bytes {
    let out = Bytes::from(serde_json::to_vec(&Served::untyped(object)).unwrap_or_default());
    match (out.first(), out.last()) {
        (Some(b'{'), Some(b'}')) => out.slice(1..out.len() - 1),
        // Not an object: never stored by the cluster; serve it as it is.
        _ => out,
    }
}

/// A `<Kind>List` body, assembled from the items' [`fields_json`].
#[derive(Debug)]
pub struct List<'a> {
    res: &'a ResourceInfo,
    items: &'a [Bytes],
    resource_version: u64,
}

impl<'a> List<'a> {
    /// The list of `items` ([`fields_json`] of stored objects of `res`) at `resource_version`.
    pub fn new(res: &'a ResourceInfo, items: &'a [Bytes], resource_version: u64) -> Self {
        List {
            res,
            items,
            resource_version,
        }
    }

    /// The JSON body: `{"apiVersion":..,"kind":"<Kind>List","metadata":{..},"items":[..]}`.
    pub fn to_vec(&self) -> Vec<u8> {
        let api_version = self.res.api_version();
        // Like the real API server: items of built-in kinds carry no apiVersion and kind, custom
        // resources' items do.
        let item_prefix = if self.res.is_custom() {
            let mut p = b"{\"apiVersion\":".to_vec();
            push_json(&mut p, &api_version);
            p.extend_from_slice(b",\"kind\":");
            push_json(&mut p, &self.res.kind);
            p
        } else {
            b"{".to_vec()
        };
        let size: usize = self
            .items
            .iter()
            .map(|i| i.len() + item_prefix.len() + 3)
            .sum();
        let mut out = Vec::with_capacity(256 + size);
        out.extend_from_slice(b"{\"apiVersion\":");
        push_json(&mut out, &api_version);
        out.extend_from_slice(b",\"kind\":");
        push_json(&mut out, &format!("{}List", self.res.kind));
        out.extend_from_slice(b",\"metadata\":{\"resourceVersion\":");
        push_json(&mut out, &self.resource_version.to_string());
        out.extend_from_slice(b"},\"items\":[");
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&item_prefix);
            if item_prefix.len() > 1 && !item.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(item);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// Appends `s` as a JSON string.
fn push_json(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// One line of a watch stream: `{"type": ..., "object": ...}` and a newline.
pub fn event_line(kind: &str, object: &impl Serialize) -> Bytes {
    #[derive(serde::Serialize)]
    struct Event<'a, T> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a T,
    }
    let mut v = serde_json::to_vec(&Event { kind, object }).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(custom: bool) -> ResourceInfo {
        let mut r = crate::resources::builtins()
            .into_iter()
            .find(|r| r.kind == "ConfigMap")
            .expect("configmaps");
        if custom {
            r.group = "example.com".into();
            r.kind = "Widget".into();
            r.schema = Some(std::sync::Arc::new(json!({"type": "object"})));
        }
        r
    }

    #[test]
    fn served_objects_equal_the_presented_copies() {
        let stored = json!({"apiVersion": "v1", "kind": "Old", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let served = serde_json::to_value(Served::new(&stored, "v2", "New")).expect("json");
        assert_eq!(
            served,
            json!({"apiVersion": "v2", "kind": "New", "metadata": {"name": "a"}, "data": {"k": "v"}})
        );
        let untyped = serde_json::to_value(Served::untyped(&stored)).expect("json");
        assert_eq!(
            untyped,
            json!({"metadata": {"name": "a"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn lists_type_their_items_only_for_custom_resources() {
        let stored = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "\"v\""}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        ];
        let items: Vec<Bytes> = stored.iter().map(fields_json).collect();
        let builtin: Value =
            serde_json::from_slice(&List::new(&res(false), &items, 7).to_vec()).expect("json");
        assert_eq!(
            builtin,
            json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "7"},
                   "items": [{"metadata": {"name": "a"}, "data": {"k": "\"v\""}}, {}]})
        );
        let custom: Value =
            serde_json::from_slice(&List::new(&res(true), &items, 7).to_vec()).expect("json");
        assert_eq!(
            custom["items"],
            json!([{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a"}, "data": {"k": "\"v\""}},
                   {"apiVersion": "example.com/v1", "kind": "Widget"}])
        );
        assert_eq!(custom["kind"], "WidgetList");
    }
}
