//! Typed Istio objects: the parts of `networking.istio.io/v1` VirtualService, DestinationRule and
//! Gateway, and `security.istio.io/v1` PeerAuthentication, that the renderer writes and the route
//! simulator reads.
//!
//! One definition serves both directions. Writing: fields are declared in the order Istio's
//! reference documents them, camelCase, and empty or absent fields are skipped, so the YAML is
//! deterministic and reads like hand-written manifests. Reading: fields this module does not model
//! are ignored (a live cluster's objects carry more than we emit), and any `apiVersion` of the
//! right group is accepted (`v1alpha3`, `v1beta1`, `v1`).

mod networking;
mod security;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use networking::{
    ClientTlsSettings, Destination, DestinationRule, DestinationRuleSpec, Gateway, GatewaySpec,
    HttpMatchRequest, HttpRoute, HttpRouteDestination, PortSelector, Server, ServerPort,
    StringMatch, Subset, TlsMode, TrafficPolicy, VirtualService, VirtualServiceSpec,
};
pub use security::{
    MtlsMode, PeerAuthentication, PeerAuthenticationSpec, PeerMtls, WorkloadSelector,
};

/// `apiVersion` of the networking objects we emit.
pub const NETWORKING_V1: &str = "networking.istio.io/v1";
/// `apiVersion` of the security objects we emit.
pub const SECURITY_V1: &str = "security.istio.io/v1";
/// API group of VirtualService, DestinationRule and Gateway.
pub const NETWORKING_GROUP: &str = "networking.istio.io";
/// API group of PeerAuthentication.
pub const SECURITY_GROUP: &str = "security.istio.io";

/// The gateway name of sidecar (in-mesh) traffic: a VirtualService's `gateways` list names it
/// to apply to sidecars as well as to ingress gateways.
pub const MESH_GATEWAY: &str = "mesh";

/// The cluster domain assumed when short host names are expanded.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// The `metadata` of an object: what identifies it and the labels and annotations we set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; absent in files that rely on `kubectl -n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// The namespace, `default` when absent (as kubectl assumes for files).
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// One Istio object of a kind this module models.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum IstioObject {
    /// A VirtualService.
    VirtualService(VirtualService),
    /// A DestinationRule.
    DestinationRule(DestinationRule),
    /// A Gateway.
    Gateway(Gateway),
    /// A PeerAuthentication.
    PeerAuthentication(PeerAuthentication),
}

/// An object that looks like one of ours but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: {message}")]
pub struct ObjectError {
    /// The object's kind.
    pub kind: String,
    /// `namespace/name` of the object, as far as it could be read.
    pub name: String,
    /// What is wrong, with the field path when known.
    pub message: String,
}

impl IstioObject {
    /// Read an object from its JSON form. Objects of other kinds or API groups give `Ok(None)`;
    /// a VirtualService, DestinationRule, Gateway or PeerAuthentication whose fields have the
    /// wrong shape is an error naming the object and the field.
    pub fn from_value(value: &Value) -> Result<Option<IstioObject>, ObjectError> {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let group = api_version.split('/').next().unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let object = match (group, kind) {
            (NETWORKING_GROUP, "VirtualService") => {
                IstioObject::VirtualService(typed(value, kind)?)
            }
            (NETWORKING_GROUP, "DestinationRule") => {
                IstioObject::DestinationRule(typed(value, kind)?)
            }
            (NETWORKING_GROUP, "Gateway") => IstioObject::Gateway(typed(value, kind)?),
            (SECURITY_GROUP, "PeerAuthentication") => {
                IstioObject::PeerAuthentication(typed(value, kind)?)
            }
            _ => return Ok(None),
        };
        Ok(Some(object))
    }

    /// The object as JSON.
    pub fn to_value(&self) -> Value {
        // Serialising these plain structs cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            IstioObject::VirtualService(o) => &o.metadata,
            IstioObject::DestinationRule(o) => &o.metadata,
            IstioObject::Gateway(o) => &o.metadata,
            IstioObject::PeerAuthentication(o) => &o.metadata,
        }
    }

    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            IstioObject::VirtualService(_) => "VirtualService",
            IstioObject::DestinationRule(_) => "DestinationRule",
            IstioObject::Gateway(_) => "Gateway",
            IstioObject::PeerAuthentication(_) => "PeerAuthentication",
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value, kind: &str) -> Result<T, ObjectError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>");
        let namespace = value.pointer("/metadata/namespace").and_then(Value::as_str);
        ObjectError {
            kind: kind.to_string(),
            name: match namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_string(),
            },
            message: format!("{}: {}", e.path(), e.inner()),
        }
    })
}

/// Expand a host as Istio does for the rules of an object in `namespace`: a short name
/// (`reviews`) becomes `reviews.<namespace>.svc.cluster.local`; names with a dot and wildcards
/// are taken as written (lower-cased).
pub fn qualify_host(host: &str, namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains('.') || host.contains('*') {
        host
    } else {
        format!("{host}.{namespace}.{CLUSTER_DOMAIN}")
    }
}

/// Whether a (qualified) rule host matches a concrete request host: equal, `*`, or a `*.suffix`
/// wildcard whose suffix ends the host. Case-insensitive.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            suffix.starts_with('.')
                && host.len() > suffix.len()
                && host.as_bytes()[host.len() - suffix.len()..]
                    .eq_ignore_ascii_case(suffix.as_bytes())
        }
        None => false,
    }
}

/// The plain finding for mesh callers of a host no mesh VirtualService routes: they reach every
/// pod of the Service round-robin, whatever the subsets and weights say. Shared by the route
/// simulator and lint, so both say it in the same words.
pub fn default_routing_finding(host: &str, subsets: &[String]) -> String {
    match subsets {
        [] => format!(
            "mesh callers of {host} reach every pod of the Service round-robin (Kubernetes default routing)"
        ),
        [one] => format!(
            "mesh callers of {host} reach every pod of the Service round-robin, not only subset {one} (Kubernetes default routing)"
        ),
        [init @ .., last] => format!(
            "mesh callers of {host} reach {} and {last} round-robin, ignoring the weights (Kubernetes default routing)",
            init.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests;
