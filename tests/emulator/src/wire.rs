//! Response bodies serialised straight from the stored objects, without copying them.
//!
//! A stored object is shared (`Arc<Value>`) with snapshots and watch events; serving it used to
//! mean a deep copy (to set `apiVersion` and `kind`) and then another tree for the list around it.
//! [`Served`] writes the type fields and then the object's other fields as they are stored.

use crate::resources::ResourceInfo;
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use serde_json::Value;
use std::sync::Arc;

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

/// A `<Kind>List` of stored objects, as `list` serves it.
#[derive(Debug)]
pub struct List<'a> {
    res: &'a ResourceInfo,
    api_version: String,
    resource_version: String,
    items: &'a [Arc<Value>],
}

impl<'a> List<'a> {
    /// The list of `items` (stored objects of `res`) at `resource_version`.
    pub fn new(res: &'a ResourceInfo, items: &'a [Arc<Value>], resource_version: u64) -> Self {
        List {
            res,
            api_version: res.api_version(),
            resource_version: resource_version.to_string(),
            items,
        }
    }

    /// The JSON body.
    pub fn to_vec(&self) -> Vec<u8> {
        // Room for typical objects; the vector grows if they are larger.
        let mut out = Vec::with_capacity(256 + self.items.len() * 640);
        serde_json::to_writer(&mut out, self).unwrap_or_default();
        out
    }
}

struct ListMeta<'a> {
    resource_version: &'a str,
}

impl Serialize for ListMeta<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ListMeta", 1)?;
        s.serialize_field("resourceVersion", self.resource_version)?;
        s.end()
    }
}

struct Items<'a> {
    items: &'a [Arc<Value>],
    type_meta: Option<(&'a str, &'a str)>,
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.items.iter().map(|o| Served {
            object: o,
            type_meta: self.type_meta,
        }))
    }
}

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("List", 4)?;
        s.serialize_field("apiVersion", &self.api_version)?;
        s.serialize_field("kind", &format!("{}List", self.res.kind))?;
        s.serialize_field(
            "metadata",
            &ListMeta {
                resource_version: &self.resource_version,
            },
        )?;
        // Like the real API server: items of built-in kinds carry no apiVersion and kind, custom
        // resources' items do.
        let type_meta = self
            .res
            .is_custom()
            .then_some((self.api_version.as_str(), self.res.kind.as_str()));
        s.serialize_field(
            "items",
            &Items {
                items: self.items,
                type_meta,
            },
        )?;
        s.end()
    }
}

/// One line of a watch stream: `{"type": ..., "object": ...}` and a newline.
pub fn event_line(kind: &str, object: &impl Serialize) -> bytes::Bytes {
    #[derive(serde::Serialize)]
    struct Event<'a, T> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a T,
    }
    let mut v = serde_json::to_vec(&Event { kind, object }).unwrap_or_default();
    v.push(b'\n');
    bytes::Bytes::from(v)
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
            r.schema = Some(json!({"type": "object"}));
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
        let items = vec![Arc::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        )];
        let builtin: Value =
            serde_json::from_slice(&List::new(&res(false), &items, 7).to_vec()).expect("json");
        assert_eq!(
            builtin,
            json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "7"},
                   "items": [{"metadata": {"name": "a"}}]})
        );
        let custom: Value =
            serde_json::from_slice(&List::new(&res(true), &items, 7).to_vec()).expect("json");
        assert_eq!(
            custom["items"][0],
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a"}})
        );
        assert_eq!(custom["kind"], "WidgetList");
    }
}
