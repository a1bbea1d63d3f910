//! istiod's validating webhook (`validation.istio.io`): the semantic checks Istio adds on top of
//! the CRD schemas, for VirtualService, DestinationRule and PeerAuthentication.
//!
//! This is the project's one implementation of Istio's validation rules (`pkg/config/validation`
//! at the commit the oracle in `../shared/fixtures/istio-oracle` was taken from). It is pure — a
//! JSON object in, a verdict out — so two callers share it: the emulated API server, which answers
//! a refused object as kube-apiserver answers for a denying webhook (400, `admission webhook
//! "validation.istio.io" denied the request: configuration is invalid: ...`) and returns warnings
//! as `Warning` headers; and the plugin's `lint --local`, which reports every refusal as an error
//! with its field path (`istioctl validate` parity).
//!
//! Since `lint --local` has no CRD bundle, the checks also cover what the CRD schemas' rules and
//! CEL expressions would refuse for these kinds (enums, port ranges, `portLevelMtls` keys), so the
//! verdict does not depend on which layer would have caught it.

mod networking;
pub mod rules;
mod security;

use serde_json::{json, Map, Value};

/// The webhook's name, as the API server quotes it in denials.
pub const WEBHOOK_NAME: &str = "validation.istio.io";

/// The annotation that makes istiod refuse any object (Istio's own validation tests use it).
pub const ALWAYS_REJECT_ANNOTATION: &str = "internal.istio.io/webhook-always-reject";

/// The mTLS modes of a PeerAuthentication.
pub const MTLS_MODES: [&str; 4] = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"];

/// One rule an object breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path (`spec.http[0].route[1].weight`); `metadata.annotations` or `spec` for
    /// object-wide rules.
    pub path: String,
    /// Istio's message (`weight -1 < 0`).
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The webhook's verdict on one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Why the object is refused; empty when admitted.
    pub errors: Vec<Violation>,
    /// Warnings returned with the verdict (`path: message`).
    pub warnings: Vec<String>,
}

impl Admission {
    /// Whether the object is admitted.
    pub fn allowed(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn error(&mut self, path: impl AsRef<str>, message: impl Into<String>) {
        self.errors.push(Violation {
            path: path.as_ref().to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl std::fmt::Display) {
        self.warnings.push(format!("{path}: {message}"));
    }

    /// Records `r`'s error at `path`.
    pub(crate) fn check(&mut self, path: impl AsRef<str>, r: Result<(), String>) {
        if let Err(message) = r {
            self.error(path, message);
        }
    }
}

/// The Istio kinds the webhook validates, by `(group, kind)`.
pub fn validates(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("networking.istio.io", "VirtualService")
            | ("networking.istio.io", "DestinationRule")
            | ("security.istio.io", "PeerAuthentication")
    )
}

/// Checks an Istio object as istiod's webhook does. Objects of other kinds are admitted.
pub fn admit(obj: &Value) -> Admission {
    let mut a = Admission::default();
    let group = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !validates(group, kind) {
        return a;
    }
    let metadata = obj.get("metadata");
    if metadata
        .and_then(|m| m.get("annotations"))
        .and_then(|m| m.get(ALWAYS_REJECT_ANNOTATION))
        .is_some()
    {
        a.error(
            "metadata.annotations",
            format!("{ALWAYS_REJECT_ANNOTATION:?} annotation found, rejecting"),
        );
        return a;
    }
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let empty = Map::new();
    let spec = obj.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    match kind {
        "VirtualService" => networking::virtual_service(spec, namespace, &mut a),
        "DestinationRule" => networking::destination_rule(spec, namespace, &mut a),
        _ => security::peer_authentication(spec, &mut a),
    }
    a
}

/// The `Status` the API server answers when the webhook denies a request: code 400 and the
/// webhook's message behind `admission webhook "<name>" denied the request: `, as
/// `webhookerrors.ToStatusErr` builds it. Istio's webhook sets no `reason`, so there is none
/// (kubectl then prints `Error from server: ...`).
pub fn denial_status(admission: &Admission) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": denial_message(admission),
        "code": 400
    })
}

/// `admission webhook "validation.istio.io" denied the request: configuration is invalid: ...`.
pub fn denial_message(admission: &Admission) -> String {
    let list: Vec<String> = admission.errors.iter().map(ToString::to_string).collect();
    format!(
        "admission webhook \"{WEBHOOK_NAME}\" denied the request: configuration is invalid: {}",
        list.join("; ")
    )
}

#[cfg(test)]
mod tests;
