//! The objects lint looks at, sorted by kind, and small accessors over Kubernetes objects as JSON
//! (also used by other modules that read cluster objects).

use std::collections::BTreeMap;

use serde_json::Value;

/// Objects by kind, as read from a cluster or files.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Namespaces.
    pub namespaces: Vec<Value>,
    /// Services.
    pub services: Vec<Value>,
    /// Pods.
    pub pods: Vec<Value>,
    /// DestinationRules.
    pub destination_rules: Vec<Value>,
    /// VirtualServices.
    pub virtual_services: Vec<Value>,
    /// Gateways.
    pub gateways: Vec<Value>,
    /// PeerAuthentications.
    pub peer_authentications: Vec<Value>,
    /// True when namespaces were actually read (from files they usually are not), so that a
    /// missing namespace object is not mistaken for an uninjected namespace.
    pub namespaces_known: bool,
}

impl Inventory {
    /// Sort objects into an inventory by `kind` (`List` objects are unpacked); other kinds are
    /// ignored.
    pub fn from_objects(objects: impl IntoIterator<Item = Value>) -> Self {
        let mut inv = Inventory::default();
        for obj in objects {
            inv.add(obj);
        }
        inv
    }

    /// Add one object (a `List` adds its items).
    pub fn add(&mut self, obj: Value) {
        let slot = match obj.get("kind").and_then(Value::as_str) {
            Some("List") => {
                if let Some(Value::Array(items)) = obj.get("items") {
                    for item in items.clone() {
                        self.add(item);
                    }
                }
                return;
            }
            Some("Namespace") => {
                self.namespaces_known = true;
                &mut self.namespaces
            }
            Some("Service") => &mut self.services,
            Some("Pod") => &mut self.pods,
            Some("DestinationRule") => &mut self.destination_rules,
            Some("VirtualService") => &mut self.virtual_services,
            Some("Gateway") => &mut self.gateways,
            Some("PeerAuthentication") => &mut self.peer_authentications,
            _ => return,
        };
        slot.push(obj);
    }
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// `metadata.namespace`, `default` when absent (as kubectl assumes for files).
pub fn namespace(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

/// A string at a JSON pointer, empty when absent.
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A string map at a JSON pointer (labels, selectors).
pub fn map_at(obj: &Value, pointer: &str) -> BTreeMap<String, String> {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `Kind namespace/name`, for findings.
pub fn describe(obj: &Value) -> String {
    format!("{} {}/{}", str_at(obj, "/kind"), namespace(obj), name(obj))
}

/// True when every `selector` entry is among `labels` (an empty selector selects nothing here:
/// subsets and services with empty selectors are not what lint checks).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The short name of a host (`reviews.ns.svc.cluster.local` → `reviews`) and the namespace it
/// names, if it is a cluster-local service host.
pub fn service_of_host<'a>(host: &'a str, default_ns: &'a str) -> (&'a str, &'a str) {
    let mut parts = host.split('.');
    let short = parts.next().unwrap_or(host);
    let ns = parts.next().filter(|ns| *ns != "svc").unwrap_or(default_ns);
    (short, ns)
}
