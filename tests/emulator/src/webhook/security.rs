//! `security.istio.io`: PeerAuthentication (`ValidatePeerAuthentication`, plus the CRD's rules on
//! `portLevelMtls`).

use serde_json::{Map, Value};

use super::{rules, Admission, MTLS_MODES};

pub(super) fn peer_authentication(spec: &Map<String, Value>, a: &mut Admission) {
    let selector = spec.get("selector").and_then(Value::as_object);
    let labels = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    if let Some(sel) = selector {
        if labels.is_none_or(Map::is_empty) {
            a.warn(
                "spec.selector",
                "workload selector specified without labels; it selects every workload of the namespace",
            );
        }
        if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
            for e in rules::label_map(labels) {
                a.error("spec.selector.matchLabels", e);
            }
        }
    }
    mode(
        spec.get("mtls").and_then(|m| m.get("mode")),
        "spec.mtls.mode",
        a,
    );
    let Some(ports) = spec.get("portLevelMtls") else {
        return;
    };
    let ports = ports.as_object().cloned().unwrap_or_default();
    if ports.is_empty() {
        a.error(
            "spec.portLevelMtls",
            "port level mTLS, if defined, must have at least one element",
        );
    } else if labels.is_none_or(Map::is_empty) {
        a.error(
            "spec.portLevelMtls",
            "mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls requires selector)",
        );
    }
    for (port, m) in &ports {
        let at = format!("spec.portLevelMtls.{port}");
        match port.parse::<u32>() {
            Err(_) => a.error(
                &at,
                format!("type conversion error from string {port:?} to a port number"),
            ),
            Ok(0) => a.error(&at, "port cannot be 0 (port must be between 1-65535)"),
            Ok(p) if p > 65535 => a.error(&at, "port must be between 1-65535"),
            Ok(_) => {}
        }
        mode(m.get("mode"), &format!("{at}.mode"), a);
    }
}

fn mode(m: Option<&Value>, at: &str, a: &mut Admission) {
    let Some(m) = m.filter(|m| !m.is_null()) else {
        return;
    };
    if !m.as_str().is_some_and(|s| MTLS_MODES.contains(&s)) {
        let shown = m
            .as_str()
            .map(|s| format!("{s:?}"))
            .unwrap_or_else(|| m.to_string());
        a.error(
            at,
            format!(
                "Unsupported value: {shown}: supported values: {}",
                MTLS_MODES
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}
