//! What `istioctl authn tls-check` used to say, recomputed from the objects: for each service,
//! the mTLS mode its server side enforces (PeerAuthentication: workload > namespace > mesh root),
//! the mode its clients use (DestinationRule `trafficPolicy.tls`), and whether they agree.

use serde::Serialize;
use serde_json::Value;

use super::inventory::{
    describe, map_at, name, namespace, selects, service_of_host, str_at, Inventory,
};

/// The server side's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerMode {
    /// Only mTLS accepted.
    Strict,
    /// mTLS and plain text accepted (Istio's default).
    Permissive,
    /// Plain text only.
    Disable,
}

/// The client side's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientMode {
    /// No TLS setting: Istio's auto mTLS follows the server.
    Auto,
    /// Istio mutual TLS.
    IstioMutual,
    /// Plain text.
    Disable,
    /// One-way TLS with the client's own certificates settings.
    Simple,
    /// Mutual TLS with certificates given in the rule.
    Mutual,
}

/// Whether client and server agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason")]
pub enum Verdict {
    /// Connections work.
    #[serde(rename = "OK")]
    Ok,
    /// Connections fail; the reason says why.
    #[serde(rename = "CONFLICT")]
    Conflict(String),
}

/// The mTLS picture of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMtls {
    /// Service name.
    pub service: String,
    /// Its namespace.
    pub namespace: String,
    /// Server mode in force.
    pub server: ServerMode,
    /// Which PeerAuthentication decided it, or `mesh default`.
    pub server_source: String,
    /// Client mode in force.
    pub client: ClientMode,
    /// Which DestinationRule (and subset) decided it, or `auto`.
    pub client_source: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The mTLS status of every Service in the inventory. `root_namespace` is Istio's root
/// namespace (`istio-system` by default), where a selector-less PeerAuthentication sets the mesh.
pub fn status(inv: &Inventory, root_namespace: &str) -> Vec<ServiceMtls> {
    let mut out = Vec::new();
    for svc in &inv.services {
        let (svc_name, svc_ns) = (name(svc), namespace(svc));
        let selector = map_at(svc, "/spec/selector");
        let pod_labels: Vec<_> = inv
            .pods
            .iter()
            .filter(|p| namespace(p) == svc_ns)
            .map(|p| map_at(p, "/metadata/labels"))
            .filter(|l| selects(&selector, l))
            .collect();
        let (server, server_source) =
            server_mode(inv, svc_ns, &selector, &pod_labels, root_namespace);
        for (client, client_source) in client_modes(inv, svc_name, svc_ns) {
            let verdict = verdict(server, &server_source, client, &client_source);
            out.push(ServiceMtls {
                service: svc_name.to_string(),
                namespace: svc_ns.to_string(),
                server,
                server_source: server_source.clone(),
                client,
                client_source,
                verdict,
            });
        }
    }
    out
}

fn server_mode(
    inv: &Inventory,
    ns: &str,
    svc_selector: &std::collections::BTreeMap<String, String>,
    pod_labels: &[std::collections::BTreeMap<String, String>],
    root_namespace: &str,
) -> (ServerMode, String) {
    let mode_of = |pa: &Value| match str_at(pa, "/spec/mtls/mode") {
        "STRICT" => Some(ServerMode::Strict),
        "PERMISSIVE" => Some(ServerMode::Permissive),
        "DISABLE" => Some(ServerMode::Disable),
        _ => None, // UNSET or absent: inherit from the parent
    };
    let workload = inv.peer_authentications.iter().find(|pa| {
        let sel = map_at(pa, "/spec/selector/matchLabels");
        namespace(pa) == ns
            && !sel.is_empty()
            && mode_of(pa).is_some()
            && if pod_labels.is_empty() {
                // No pods known: judge by the labels the service selects.
                sel.iter().all(|(k, v)| svc_selector.get(k) == Some(v))
            } else {
                pod_labels.iter().any(|l| selects(&sel, l))
            }
    });
    let namespace_wide = |target_ns: &str| {
        inv.peer_authentications.iter().find(|pa| {
            namespace(pa) == target_ns
                && map_at(pa, "/spec/selector/matchLabels").is_empty()
                && mode_of(pa).is_some()
        })
    };
    [workload, namespace_wide(ns), namespace_wide(root_namespace)]
        .into_iter()
        .flatten()
        .next()
        .and_then(|pa| mode_of(pa).map(|m| (m, describe(pa))))
        .unwrap_or((ServerMode::Permissive, "mesh default".to_string()))
}

fn client_modes(inv: &Inventory, svc: &str, ns: &str) -> Vec<(ClientMode, String)> {
    let mode_of =
        |tls: Option<&Value>| match tls.and_then(|t| t.get("mode")).and_then(Value::as_str) {
            Some("ISTIO_MUTUAL") => Some(ClientMode::IstioMutual),
            Some("DISABLE") => Some(ClientMode::Disable),
            Some("SIMPLE") => Some(ClientMode::Simple),
            Some("MUTUAL") => Some(ClientMode::Mutual),
            _ => None,
        };
    let rule = inv.destination_rules.iter().find(|dr| {
        let (host_svc, host_ns) = service_of_host(str_at(dr, "/spec/host"), namespace(dr));
        host_svc == svc && host_ns == ns
    });
    let Some(dr) = rule else {
        return vec![(ClientMode::Auto, "auto".to_string())];
    };
    let top = mode_of(dr.pointer("/spec/trafficPolicy/tls"));
    let mut modes = vec![(
        top.unwrap_or(ClientMode::Auto),
        if top.is_some() {
            describe(dr)
        } else {
            format!("{} (no tls: auto)", describe(dr))
        },
    )];
    for subset in dr
        .pointer("/spec/subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(mode) = mode_of(subset.pointer("/trafficPolicy/tls")) {
            if Some(mode) != top {
                modes.push((
                    mode,
                    format!("{} subset {}", describe(dr), str_at(subset, "/name")),
                ));
            }
        }
    }
    modes
}

fn verdict(server: ServerMode, server_src: &str, client: ClientMode, client_src: &str) -> Verdict {
    match (server, client) {
        (ServerMode::Strict, ClientMode::Disable | ClientMode::Simple) => Verdict::Conflict(format!(
            "{server_src} requires mTLS (STRICT) but {client_src} sends {}: connections are reset",
            if client == ClientMode::Disable { "plain text (tls.mode DISABLE)" } else { "non-Istio TLS (tls.mode SIMPLE)" }
        )),
        (ServerMode::Disable, ClientMode::IstioMutual | ClientMode::Mutual) => Verdict::Conflict(format!(
            "{client_src} sends mTLS but {server_src} disables it on the server: connections fail"
        )),
        _ => Verdict::Ok,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn inventory(extra: Vec<Value>) -> Inventory {
        let mut objects = vec![
            json!({"kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
                   "spec": {"selector": {"app": "reviews"}}}),
            json!({"kind": "Pod", "metadata": {"name": "reviews-1", "namespace": "shop",
                   "labels": {"app": "reviews", "version": "v1"}}}),
        ];
        objects.extend(extra);
        Inventory::from_objects(objects)
    }

    fn pa(ns: &str, name: &str, selector: Option<Value>, mode: &str) -> Value {
        let mut spec = json!({"mtls": {"mode": mode}});
        if let Some(sel) = selector {
            spec["selector"] = json!({"matchLabels": sel});
        }
        json!({"kind": "PeerAuthentication", "metadata": {"name": name, "namespace": ns}, "spec": spec})
    }

    fn dr(mode: Option<&str>) -> Value {
        let mut spec =
            json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]});
        if let Some(mode) = mode {
            spec["trafficPolicy"] = json!({"tls": {"mode": mode}});
        }
        json!({"kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "shop"}, "spec": spec})
    }

    #[test]
    fn nothing_configured_is_permissive_auto_and_ok() {
        let s = status(&inventory(vec![]), "istio-system");
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].server, s[0].client),
            (ServerMode::Permissive, ClientMode::Auto)
        );
        assert_eq!(s[0].server_source, "mesh default");
        assert_eq!(s[0].verdict, Verdict::Ok);
    }

    #[test]
    fn most_specific_peer_authentication_wins() {
        let inv = inventory(vec![
            pa("istio-system", "default", None, "STRICT"),
            pa("shop", "default", None, "PERMISSIVE"),
            pa(
                "shop",
                "reviews",
                Some(json!({"app": "reviews"})),
                "DISABLE",
            ),
        ]);
        let s = status(&inv, "istio-system");
        assert_eq!(s[0].server, ServerMode::Disable);
        assert_eq!(s[0].server_source, "PeerAuthentication shop/reviews");

        let inv = inventory(vec![
            pa("istio-system", "default", None, "STRICT"),
            pa("shop", "default", None, "PERMISSIVE"),
            pa("shop", "other", Some(json!({"app": "ratings"})), "DISABLE"),
        ]);
        assert_eq!(
            status(&inv, "istio-system")[0].server,
            ServerMode::Permissive
        );

        let inv = inventory(vec![
            pa("istio-system", "default", None, "STRICT"),
            pa("shop", "default", None, "UNSET"),
        ]);
        let s = status(&inv, "istio-system");
        assert_eq!(s[0].server, ServerMode::Strict);
        assert_eq!(
            s[0].server_source,
            "PeerAuthentication istio-system/default"
        );
    }

    #[test]
    fn strict_server_with_plain_text_client_conflicts() {
        let inv = inventory(vec![
            pa("shop", "default", None, "STRICT"),
            dr(Some("DISABLE")),
        ]);
        let s = status(&inv, "istio-system");
        let Verdict::Conflict(reason) = &s[0].verdict else {
            panic!("{s:?}")
        };
        assert_eq!(
            reason,
            "PeerAuthentication shop/default requires mTLS (STRICT) but DestinationRule shop/reviews sends plain text (tls.mode DISABLE): connections are reset"
        );
        let inv = inventory(vec![
            pa("shop", "default", None, "STRICT"),
            dr(Some("ISTIO_MUTUAL")),
        ]);
        assert_eq!(status(&inv, "istio-system")[0].verdict, Verdict::Ok);
    }

    #[test]
    fn disabled_server_with_mutual_client_conflicts_and_subsets_are_checked() {
        let inv = inventory(vec![
            pa("shop", "default", None, "DISABLE"),
            dr(Some("ISTIO_MUTUAL")),
        ]);
        assert!(matches!(
            status(&inv, "istio-system")[0].verdict,
            Verdict::Conflict(_)
        ));

        let mut rule = dr(Some("ISTIO_MUTUAL"));
        rule["spec"]["subsets"][0]["trafficPolicy"] = json!({"tls": {"mode": "DISABLE"}});
        let inv = inventory(vec![pa("shop", "default", None, "STRICT"), rule]);
        let s = status(&inv, "istio-system");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].verdict, Verdict::Ok);
        assert_eq!(s[1].client_source, "DestinationRule shop/reviews subset v1");
        assert!(matches!(s[1].verdict, Verdict::Conflict(_)));
    }
}
