//! The checks that need no cluster: each object against Istio's own validation (what istiod's
//! webhook would refuse, `istioctl validate` parity), and each document's `kind`/`apiVersion`
//! against the kinds this tool and Istio serve, so a mistyped one is an error rather than an
//! object silently ignored.
//!
//! Istio's rules have one implementation, [`kube_emulator::webhook`], shared with the emulated
//! cluster's validating webhook: a pure function from an object to a verdict (it touches no
//! server state), so `lint` and the emulated istiod cannot disagree.

use kube_emulator::webhook;
use serde_json::Value;

use super::finding::{Code, Finding};
use super::inventory::describe;
use crate::istio::{NETWORKING_GROUP, SECURITY_GROUP};

/// The kinds Istio serves in its two groups, and the versions they are served in.
const ISTIO_KINDS: [(&str, &[&str]); 2] = [
    (
        NETWORKING_GROUP,
        &[
            "VirtualService",
            "DestinationRule",
            "Gateway",
            "ServiceEntry",
            "Sidecar",
            "WorkloadEntry",
            "WorkloadGroup",
            "EnvoyFilter",
            "ProxyConfig",
        ],
    ),
    (
        SECURITY_GROUP,
        &[
            "PeerAuthentication",
            "AuthorizationPolicy",
            "RequestAuthentication",
        ],
    ),
];
const ISTIO_VERSIONS: [&str; 4] = ["v1", "v1beta1", "v1alpha3", "v1alpha1"];

/// What Istio would refuse in `object` (a VirtualService, DestinationRule or
/// PeerAuthentication), one error per rule broken, with its field path.
///
/// An object without `apiVersion` (lint's inventory sorts by `kind` alone) is judged as the
/// Istio kind it names; one with another group's `apiVersion` is not Istio's and is left alone.
pub fn istio_validation(object: &Value) -> Vec<Finding> {
    let admission = match object.get("apiVersion") {
        None => {
            let group = match object.get("kind").and_then(Value::as_str) {
                Some("PeerAuthentication") => SECURITY_GROUP,
                _ => NETWORKING_GROUP,
            };
            let mut typed = object.clone();
            if let Some(map) = typed.as_object_mut() {
                map.insert("apiVersion".into(), Value::from(format!("{group}/v1")));
            }
            webhook::admit(&typed)
        }
        Some(_) => webhook::admit(object),
    };
    admission
        .errors
        .into_iter()
        .map(|v| {
            Finding::new(
                Code::SchemaValidation,
                describe(object),
                format!("istiod would refuse this object: {}", v.message),
            )
            .field(v.path)
            .fix("correct the field; `kubectl apply` of this object fails while it is there")
        })
        .collect()
}

/// A document whose `kind`/`apiVersion` names nothing this tool or Istio serves, in a group that
/// says it meant to: our release spec's group, or Istio's.
pub fn unknown_kind(object: &Value, spec_api_version: &str, spec_kind: &str) -> Option<Finding> {
    let api_version = object.get("apiVersion").and_then(Value::as_str)?;
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let spec_group = spec_api_version.split('/').next().unwrap_or_default();
    let what = describe(object);
    if kind == spec_kind && group != spec_group {
        return Some(
            Finding::new(
                Code::UnknownKind,
                what,
                format!("kind {spec_kind} with apiVersion {api_version:?}: a release spec has apiVersion {spec_api_version}"),
            )
            .field("apiVersion")
            .fix(format!("set apiVersion: {spec_api_version}")),
        );
    }
    if group == spec_group && kind != spec_kind {
        return Some(
            Finding::new(
                Code::UnknownKind,
                what,
                format!(
                    "apiVersion {api_version} has no kind {kind:?}; the only kind is {spec_kind}"
                ),
            )
            .field("kind")
            .fix(format!("set kind: {spec_kind}")),
        );
    }
    let (_, kinds) = ISTIO_KINDS.iter().find(|(g, _)| *g == group)?;
    if !kinds.contains(&kind) {
        let near = kinds
            .iter()
            .find(|k| k.eq_ignore_ascii_case(kind) || edit_distance(k, kind) <= 2);
        return Some(
            Finding::new(
                Code::UnknownKind,
                what,
                format!(
                    "{group} has no kind {kind:?}{}",
                    near.map(|k| format!(" (did you mean {k}?)"))
                        .unwrap_or_default()
                ),
            )
            .field("kind")
            .fix(format!("use one of: {}", kinds.join(", "))),
        );
    }
    if !ISTIO_VERSIONS.contains(&version) {
        return Some(
            Finding::new(
                Code::UnknownKind,
                what,
                format!("{group} does not serve version {version:?} of {kind}"),
            )
            .field("apiVersion")
            .fix(format!("use apiVersion: {group}/v1")),
        );
    }
    None
}

/// Levenshtein distance, for "did you mean" hints on short kind names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refused_objects_are_errors_with_the_field_path() {
        let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "r", "namespace": "shop"},
            "spec": {"hosts": ["r"], "http": [{"route": [
                {"destination": {"host": "r", "subset": "v1"}, "weight": 5},
                {"destination": {"host": "r", "subset": "v2"}, "weight": -1}]}]}});
        let f = istio_validation(&vs);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, Code::SchemaValidation);
        assert_eq!(f[0].field.as_deref(), Some("spec.http[0].route[1].weight"));
        assert_eq!(
            f[0].message,
            "istiod would refuse this object: weight -1 < 0"
        );
    }

    #[test]
    fn mistyped_kinds_and_api_versions() {
        let api = "canary.kubectl.dev/v1alpha1";
        let doc = |api_version: &str, kind: &str| json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "n"}});
        let msg = |v: Value| unknown_kind(&v, api, "Release").map(|f| f.message);
        assert_eq!(
            msg(doc(api, "Relase")).as_deref(),
            Some("apiVersion canary.kubectl.dev/v1alpha1 has no kind \"Relase\"; the only kind is Release")
        );
        assert_eq!(
            msg(doc("canary.kubect.dev/v1alpha1", "Release")).as_deref(),
            Some("kind Release with apiVersion \"canary.kubect.dev/v1alpha1\": a release spec has apiVersion canary.kubectl.dev/v1alpha1")
        );
        assert_eq!(
            msg(doc("networking.istio.io/v1", "VirtualSevice")).as_deref(),
            Some(
                "networking.istio.io has no kind \"VirtualSevice\" (did you mean VirtualService?)"
            )
        );
        assert_eq!(
            msg(doc("networking.istio.io/v2", "VirtualService")).as_deref(),
            Some("networking.istio.io does not serve version \"v2\" of VirtualService")
        );
        assert_eq!(msg(doc("v1", "ConfigMap")), None);
        assert_eq!(msg(doc("networking.istio.io/v1", "Gateway")), None);
    }
}
