//! The checks. Each is a function from the inventory to findings; `run` calls them all.

use std::collections::{BTreeMap, BTreeSet};

use policy_sdk::ReleaseInfo;
use serde_json::Value;

use super::finding::{Code, Finding};
use super::inventory::{
    describe, map_at, name, namespace, selects, service_of_host, str_at, Inventory,
};
use super::mtls::{self, Verdict};
use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL};

/// What lint knows beyond the objects.
#[derive(Debug, Clone, Default)]
pub struct LintContext {
    /// The release the checks are for (`lint -f spec.yaml`), if any.
    pub release: Option<ReleaseInfo>,
    /// Services whose canary Deployment `start` will create (spec `canary.image`), so missing
    /// canary pods are expected.
    pub canaries_to_create: BTreeSet<String>,
    /// Istio's root namespace (`istio-system` unless the mesh says otherwise).
    pub root_namespace: String,
    /// Whether pods were read; from files they usually are not, and then pod checks are skipped.
    pub pods_known: bool,
    /// Whether gateways were read.
    pub gateways_known: bool,
    /// Findings about the input documents themselves (mistyped `kind`/`apiVersion`).
    pub input_findings: Vec<Finding>,
}

/// Run every check; findings come sorted by severity (errors first), then object.
pub fn run(inv: &Inventory, ctx: &LintContext) -> Vec<Finding> {
    let mut findings = Vec::new();
    namespace_injection(inv, ctx, &mut findings);
    port_names(inv, &mut findings);
    if ctx.pods_known {
        pod_labels(inv, &mut findings);
        subsets_without_pods(inv, &mut findings);
    }
    route_references(inv, ctx, &mut findings);
    conflicting_virtual_services(inv, &mut findings);
    mtls_conflicts(inv, ctx, &mut findings);
    istio_validation(inv, &mut findings);
    mesh_default_routing(inv, &mut findings);
    findings.extend(ctx.input_findings.iter().cloned());
    if let Some(release) = &ctx.release {
        release_targets(inv, ctx, release, &mut findings);
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.object.cmp(&b.object))
            .then_with(|| a.code.cmp(&b.code))
    });
    findings.dedup();
    findings
}

const SYSTEM_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "istio-system",
];

fn namespace_injection(inv: &Inventory, ctx: &LintContext, out: &mut Vec<Finding>) {
    if !inv.namespaces_known {
        return;
    }
    let mut relevant: BTreeSet<&str> = inv.services.iter().map(namespace).collect();
    if let Some(r) = &ctx.release {
        relevant.insert(&r.namespace);
    }
    for ns in &inv.namespaces {
        let ns_name = name(ns);
        if !relevant.contains(ns_name) || SYSTEM_NAMESPACES.contains(&ns_name) {
            continue;
        }
        let labels = map_at(ns, "/metadata/labels");
        let injected = labels.get("istio-injection").map(String::as_str) == Some("enabled")
            || labels.contains_key("istio.io/rev");
        if !injected {
            out.push(
                Finding::new(
                    Code::NamespaceNotInjected,
                    format!("Namespace {ns_name}"),
                    "namespace is not labelled for sidecar injection: its pods get no Envoy sidecar and ignore every routing rule",
                )
                .field("metadata.labels")
                .fix(format!("kubectl label namespace {ns_name} istio-injection=enabled, then restart its Deployments")),
            );
        }
    }
}

/// Protocols Istio recognises in port names (`<protocol>[-<suffix>]`).
const PORT_PROTOCOLS: [&str; 13] = [
    "grpc",
    "grpc-web",
    "http",
    "http2",
    "https",
    "mongo",
    "mysql",
    "redis",
    "tcp",
    "tls",
    "udp",
    "thrift",
    "zookeeper",
];

fn port_names(inv: &Inventory, out: &mut Vec<Finding>) {
    for svc in &inv.services {
        let ports = svc.pointer("/spec/ports").and_then(Value::as_array);
        for (i, port) in ports.into_iter().flatten().enumerate() {
            if port.get("appProtocol").is_some() {
                continue;
            }
            let port_name = str_at(port, "/name");
            let ok = PORT_PROTOCOLS.iter().any(|p| {
                port_name == *p
                    || port_name
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('-'))
            });
            if !ok {
                let shown = if port_name.is_empty() {
                    "(unnamed)"
                } else {
                    port_name
                };
                out.push(
                    Finding::new(
                        Code::PortNameConvention,
                        describe(svc),
                        format!("port {shown} is not named <protocol>[-<suffix>] and has no appProtocol: Istio treats it as plain TCP and HTTP routing rules do not apply"),
                    )
                    .field(format!("spec.ports[{i}].name"))
                    .fix("name the port by protocol (http, http-web, grpc, tcp, ...) or set appProtocol"),
                );
            }
        }
    }
}

fn pods_of<'a>(inv: &'a Inventory, svc: &Value) -> Vec<&'a Value> {
    let selector = map_at(svc, "/spec/selector");
    inv.pods
        .iter()
        .filter(|p| {
            namespace(p) == namespace(svc) && selects(&selector, &map_at(p, "/metadata/labels"))
        })
        .collect()
}

fn pod_labels(inv: &Inventory, out: &mut Vec<Finding>) {
    for svc in &inv.services {
        let pods = pods_of(inv, svc);
        for label in ["app", "version"] {
            let missing: Vec<&str> = pods
                .iter()
                .filter(|p| !map_at(p, "/metadata/labels").contains_key(label))
                .map(|p| name(p))
                .collect();
            if !missing.is_empty() {
                out.push(
                    Finding::new(
                        Code::PodLabelsMissing,
                        describe(svc),
                        format!(
                            "{} of its {} pods lack the {label:?} label ({}): subsets cannot tell versions apart",
                            missing.len(),
                            pods.len(),
                            missing.join(", ")
                        ),
                    )
                    .field(format!("pods: metadata.labels.{label}"))
                    .fix(format!("add the {label:?} label to the pod template of each Deployment behind the service")),
                );
            }
        }
    }
}

fn subsets_without_pods(inv: &Inventory, out: &mut Vec<Finding>) {
    for dr in &inv.destination_rules {
        let (svc_name, svc_ns) = service_of_host(str_at(dr, "/spec/host"), namespace(dr));
        let svc_selector = inv
            .services
            .iter()
            .find(|s| name(s) == svc_name && namespace(s) == svc_ns)
            .map(|s| map_at(s, "/spec/selector"))
            .unwrap_or_default();
        let subsets = dr.pointer("/spec/subsets").and_then(Value::as_array);
        for (i, subset) in subsets.into_iter().flatten().enumerate() {
            let mut selector = svc_selector.clone();
            selector.extend(map_at(subset, "/labels"));
            let any = inv.pods.iter().any(|p| {
                namespace(p) == svc_ns && selects(&selector, &map_at(p, "/metadata/labels"))
            });
            if !any {
                out.push(
                    Finding::new(
                        Code::SubsetWithoutPods,
                        describe(dr),
                        format!(
                            "subset {} selects no pod ({}): traffic sent to it fails with 503",
                            str_at(subset, "/name"),
                            selector
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                    )
                    .field(format!("spec.subsets[{i}].labels"))
                    .fix("deploy pods with these labels, or fix the subset's labels"),
                );
            }
        }
    }
}

/// Everything istiod's webhook would refuse, per object, with the field path.
fn istio_validation(inv: &Inventory, out: &mut Vec<Finding>) {
    for obj in inv
        .virtual_services
        .iter()
        .chain(&inv.destination_rules)
        .chain(&inv.peer_authentications)
    {
        out.extend(super::local::istio_validation(obj));
    }
}

/// A host with DestinationRule subsets whose VirtualServices are all bound to ingress gateways:
/// mesh callers get Kubernetes' default routing and reach every version round-robin, whatever the
/// weights say. For a canary that is the finding.
fn mesh_default_routing(inv: &Inventory, out: &mut Vec<Finding>) {
    let applies_to_mesh = |vs: &Value| {
        let gateways = vs.pointer("/spec/gateways").and_then(Value::as_array);
        gateways.is_none_or(|g| {
            g.is_empty()
                || g.iter()
                    .any(|g| g.as_str() == Some(crate::istio::MESH_GATEWAY))
        })
    };
    for vs in inv
        .virtual_services
        .iter()
        .filter(|vs| !applies_to_mesh(vs))
    {
        let vs_ns = namespace(vs);
        let hosts = vs.pointer("/spec/hosts").and_then(Value::as_array);
        for (i, host) in hosts.into_iter().flatten().enumerate() {
            let Some(host) = host.as_str() else { continue };
            let qualified = crate::istio::qualify_host(host, vs_ns);
            let routed_for_mesh = inv.virtual_services.iter().any(|other| {
                applies_to_mesh(other)
                    && other
                        .pointer("/spec/hosts")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .any(|h| {
                            crate::istio::host_matches(
                                &crate::istio::qualify_host(h, namespace(other)),
                                &qualified,
                            )
                        })
            });
            if routed_for_mesh {
                continue;
            }
            let subsets: Vec<String> = inv
                .destination_rules
                .iter()
                .filter(|dr| {
                    crate::istio::qualify_host(str_at(dr, "/spec/host"), namespace(dr)) == qualified
                })
                .flat_map(|dr| {
                    dr.pointer("/spec/subsets")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|s| str_at(s, "/name").to_string())
                })
                .collect();
            if subsets.len() < 2 {
                continue;
            }
            out.push(
                Finding::new(
                    Code::MeshDefaultRouting,
                    describe(vs),
                    format!(
                        "{}: no VirtualService bound to mesh routes {host}, so {}",
                        "bound to ingress gateways only",
                        crate::istio::default_routing_finding(host, &subsets)
                    ),
                )
                .field(format!("spec.hosts[{i}]"))
                .fix("add `mesh` to spec.gateways (and use match gateways to keep ingress-only rules apart)"),
            );
        }
    }
}

fn route_references(inv: &Inventory, ctx: &LintContext, out: &mut Vec<Finding>) {
    for vs in &inv.virtual_services {
        let vs_ns = namespace(vs);
        let gateway_refs = vs
            .pointer("/spec/gateways")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, g)| (format!("spec.gateways[{i}]"), g.as_str().unwrap_or("")));
        if ctx.gateways_known {
            for (field, gw) in gateway_refs {
                if gw == "mesh" {
                    continue;
                }
                let (gw_ns, gw_name) = gw.split_once('/').unwrap_or((vs_ns, gw));
                let found = inv
                    .gateways
                    .iter()
                    .any(|g| name(g) == gw_name && namespace(g) == gw_ns);
                if !found {
                    out.push(
                        Finding::new(
                            Code::ReferenceNotFound,
                            describe(vs),
                            format!("gateway {gw_ns}/{gw_name} does not exist: traffic through it gets no route"),
                        )
                        .field(field)
                        .fix(format!("create Gateway {gw_ns}/{gw_name}, or correct the reference (namespace/name)")),
                    );
                }
            }
        }
        let rules = vs.pointer("/spec/http").and_then(Value::as_array);
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            let routes = rule.get("route").and_then(Value::as_array);
            for (j, dest) in routes.into_iter().flatten().enumerate() {
                let host = str_at(dest, "/destination/host");
                let (svc_name, svc_ns) = service_of_host(host, vs_ns);
                let local = !host.contains('.')
                    || host.ends_with(".svc.cluster.local")
                    || host.ends_with(".svc");
                let svc_exists = inv
                    .services
                    .iter()
                    .any(|s| name(s) == svc_name && namespace(s) == svc_ns);
                if local && !svc_exists {
                    out.push(
                        Finding::new(
                            Code::ReferenceNotFound,
                            describe(vs),
                            format!(
                                "destination host {host} is not a Service in namespace {svc_ns}"
                            ),
                        )
                        .field(format!("spec.http[{i}].route[{j}].destination.host"))
                        .fix("create the Service, or correct the host"),
                    );
                }
                let subset = str_at(dest, "/destination/subset");
                if subset.is_empty() {
                    continue;
                }
                let defined = inv.destination_rules.iter().any(|dr| {
                    let (dr_svc, dr_ns) = service_of_host(str_at(dr, "/spec/host"), namespace(dr));
                    dr_svc == svc_name
                        && dr_ns == svc_ns
                        && dr
                            .pointer("/spec/subsets")
                            .and_then(Value::as_array)
                            .is_some_and(|s| s.iter().any(|s| str_at(s, "/name") == subset))
                });
                if !defined {
                    out.push(
                        Finding::new(
                            Code::ReferenceNotFound,
                            describe(vs),
                            format!("subset {subset} of host {host} is not defined by any DestinationRule: requests routed there fail with 503 (NC)"),
                        )
                        .field(format!("spec.http[{i}].route[{j}].destination.subset"))
                        .fix(format!("add subset {subset} to the DestinationRule for {host} before routing to it")),
                    );
                }
            }
        }
    }
}

fn managed(obj: &Value) -> bool {
    map_at(obj, "/metadata/labels")
        .get(MANAGED_BY_LABEL)
        .map(String::as_str)
        == Some(MANAGED_BY)
}

fn conflicting_virtual_services(inv: &Inventory, out: &mut Vec<Finding>) {
    let mut by_host: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for vs in &inv.virtual_services {
        let gateways = vs
            .pointer("/spec/gateways")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).any(|g| g == "mesh"))
            .unwrap_or(true);
        if !gateways {
            continue; // gateway-only VirtualServices do not compete for mesh traffic
        }
        for host in vs
            .pointer("/spec/hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let host = host.as_str().unwrap_or("");
            if host == "*" {
                continue;
            }
            let (svc, ns) = service_of_host(host, namespace(vs));
            by_host
                .entry((ns.to_string(), svc.to_string()))
                .or_default()
                .push(vs);
        }
    }
    for ((ns, host), list) in by_host {
        if list.len() < 2 || list.iter().all(|v| managed(v)) {
            continue;
        }
        let names: Vec<String> = list.iter().map(|v| describe(v)).collect();
        for vs in list.iter().filter(|v| !managed(v)) {
            out.push(
                Finding::new(
                    Code::ConflictingVirtualService,
                    describe(vs),
                    format!("host {host}.{ns} is also routed by {}: Istio merges them unpredictably and one set of rules is ignored", names.iter().filter(|n| **n != describe(vs)).cloned().collect::<Vec<_>>().join(", ")),
                )
                .field("spec.hosts")
                .fix("delete the other VirtualService, or let kubectl-canary take it over with `start --adopt`"),
            );
        }
    }
}

fn mtls_conflicts(inv: &Inventory, ctx: &LintContext, out: &mut Vec<Finding>) {
    let root = if ctx.root_namespace.is_empty() {
        "istio-system"
    } else {
        &ctx.root_namespace
    };
    for status in mtls::status(inv, root) {
        if let Verdict::Conflict(reason) = status.verdict {
            out.push(
                Finding::new(
                    Code::MtlsConflict,
                    format!("Service {}/{}", status.namespace, status.service),
                    reason,
                )
                .field("trafficPolicy.tls.mode")
                .fix("make the DestinationRule use ISTIO_MUTUAL (kubectl canary mtls enable), or relax the PeerAuthentication"),
            );
        }
    }
}

fn release_targets(
    inv: &Inventory,
    ctx: &LintContext,
    release: &ReleaseInfo,
    out: &mut Vec<Finding>,
) {
    for (i, svc) in release.services.iter().enumerate() {
        let object = format!("Service {}/{}", release.namespace, svc.name);
        let exists = inv
            .services
            .iter()
            .any(|s| name(s) == svc.name && namespace(s) == release.namespace);
        if !exists {
            out.push(
                Finding::new(
                    Code::ReleaseTargetMissing,
                    &object,
                    "the release names this service but it does not exist",
                )
                .field(format!("spec.services[{i}].name"))
                .fix(format!(
                    "create Service {} in namespace {}, or correct the name",
                    svc.name, release.namespace
                )),
            );
            continue;
        }
        if !ctx.pods_known {
            continue;
        }
        for (role, version) in [("stable", &svc.stable), ("canary", &svc.canary)] {
            if role == "canary" && ctx.canaries_to_create.contains(&svc.name) {
                continue;
            }
            let any = inv.pods.iter().any(|p| {
                namespace(p) == release.namespace
                    && selects(&version.labels, &map_at(p, "/metadata/labels"))
            });
            if !any {
                let labels = version
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                out.push(
                    Finding::new(
                        Code::ReleaseTargetMissing,
                        &object,
                        format!("no pod carries the {role} labels {labels}"),
                    )
                    .field(format!("spec.services[{i}].{role}.version"))
                    .fix(if role == "canary" {
                        "deploy the canary version, or set spec.services[].canary.image to have `start` clone the stable Deployment".to_string()
                    } else {
                        format!("check the version label of the running pods (kubectl get pods -l app={} --show-labels)", svc.name)
                    }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A healthy two-version `reviews` service in an injected namespace, fully routed.
    fn healthy() -> Vec<Value> {
        vec![
            json!({"kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}}),
            json!({"kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
                   "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}),
            json!({"kind": "Pod", "metadata": {"name": "reviews-v1-a", "namespace": "shop", "labels": {"app": "reviews", "version": "v1"}}}),
            json!({"kind": "Pod", "metadata": {"name": "reviews-v3-a", "namespace": "shop", "labels": {"app": "reviews", "version": "v3"}}}),
            json!({"kind": "Gateway", "metadata": {"name": "shop-gateway", "namespace": "istio-system"}}),
            json!({"kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "shop",
                   "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
                   "spec": {"host": "reviews", "subsets": [
                       {"name": "v1", "labels": {"version": "v1"}},
                       {"name": "v3", "labels": {"version": "v3"}}]}}),
            json!({"kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "shop",
                   "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
                   "spec": {"hosts": ["reviews"], "gateways": ["istio-system/shop-gateway", "mesh"],
                            "http": [{"route": [
                       {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                       {"destination": {"host": "reviews", "subset": "v3"}, "weight": 50}]}]}}),
        ]
    }

    fn ctx() -> LintContext {
        LintContext {
            pods_known: true,
            gateways_known: true,
            root_namespace: "istio-system".into(),
            ..LintContext::default()
        }
    }

    fn lint(objects: Vec<Value>) -> Vec<Finding> {
        run(&Inventory::from_objects(objects), &ctx())
    }

    fn codes(findings: &[Finding]) -> Vec<(&'static str, String)> {
        findings
            .iter()
            .map(|f| (f.code.as_str(), f.field.clone().unwrap_or_default()))
            .collect()
    }

    /// Apply `edit` to the first object of `kind` in the healthy set, lint, and return findings.
    fn lint_edited(kind: &str, edit: impl FnOnce(&mut Value)) -> Vec<Finding> {
        let mut objects = healthy();
        let obj = objects.iter_mut().find(|o| o["kind"] == kind).unwrap();
        edit(obj);
        lint(objects)
    }

    #[test]
    fn a_healthy_release_has_no_findings() {
        assert_eq!(lint(healthy()), vec![]);
    }

    #[test]
    fn uninjected_namespace() {
        let f = lint_edited("Namespace", |ns| ns["metadata"]["labels"] = json!({}));
        assert_eq!(codes(&f), [("IST0102", "metadata.labels".to_string())]);
        assert!(f[0]
            .fix
            .contains("kubectl label namespace shop istio-injection=enabled"));
        let f = lint_edited("Namespace", |ns| {
            ns["metadata"]["labels"] = json!({"istio.io/rev": "1-22"})
        });
        assert_eq!(f, vec![]);
    }

    #[test]
    fn port_not_named_by_protocol() {
        let f = lint_edited("Service", |s| s["spec"]["ports"][0]["name"] = json!("web"));
        assert_eq!(codes(&f), [("IST0118", "spec.ports[0].name".to_string())]);
        let f = lint_edited("Service", |s| {
            s["spec"]["ports"][0]["name"] = json!("web");
            s["spec"]["ports"][0]["appProtocol"] = json!("http");
        });
        assert_eq!(f, vec![]);
        let f = lint_edited("Service", |s| {
            s["spec"]["ports"][0]["name"] = json!("http-web")
        });
        assert_eq!(f, vec![]);
        let f = lint_edited("Service", |s| {
            s["spec"]["ports"][0]["name"] = json!("httpx")
        });
        assert_eq!(codes(&f).len(), 1);
    }

    #[test]
    fn pods_without_version_label_and_subset_without_pods() {
        let f = lint_edited("Pod", |p| {
            p["metadata"]["labels"] = json!({"app": "reviews"})
        });
        assert_eq!(
            codes(&f),
            [
                ("KC0002", "spec.subsets[0].labels".to_string()),
                ("KC0001", "pods: metadata.labels.version".to_string())
            ]
        );
        assert!(f[0]
            .message
            .contains("subset v1 selects no pod (app=reviews,version=v1)"));
    }

    #[test]
    fn duplicate_and_invalid_subset_names() {
        let f = lint_edited("DestinationRule", |dr| {
            dr["spec"]["subsets"][1]["name"] = json!("v1");
        });
        assert!(
            codes(&f).contains(&("IST0106", "spec.subsets[1].name".to_string())),
            "{f:?}"
        );
        let f = lint_edited("DestinationRule", |dr| {
            dr["spec"]["subsets"][1]["name"] = json!("V3.0");
        });
        assert!(
            codes(&f).contains(&("IST0106", "spec.subsets[1].name".to_string())),
            "{f:?}"
        );
    }

    #[test]
    fn route_to_missing_subset_host_or_gateway() {
        let f = lint_edited("VirtualService", |vs| {
            vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = json!("v4");
        });
        assert_eq!(
            codes(&f),
            [(
                "IST0101",
                "spec.http[0].route[1].destination.subset".to_string()
            )]
        );
        assert!(f[0].message.contains("fail with 503"));
        let f = lint_edited("VirtualService", |vs| {
            vs["spec"]["http"][0]["route"][0]["destination"]["host"] = json!("ratings");
        });
        assert!(
            codes(&f).contains(&(
                "IST0101",
                "spec.http[0].route[0].destination.host".to_string()
            )),
            "{f:?}"
        );
        let f = lint_edited("VirtualService", |vs| {
            vs["spec"]["gateways"][0] = json!("istio-system/nope")
        });
        assert_eq!(codes(&f), [("IST0101", "spec.gateways[0]".to_string())]);
        // The FQDN form of the host resolves like the short one.
        let f = lint_edited("VirtualService", |vs| {
            vs["spec"]["http"][0]["route"][0]["destination"]["host"] =
                json!("reviews.shop.svc.cluster.local");
        });
        assert_eq!(f, vec![]);
    }

    #[test]
    fn foreign_virtual_service_for_the_same_host() {
        let mut objects = healthy();
        objects.push(json!({"kind": "VirtualService", "metadata": {"name": "reviews-old", "namespace": "shop"},
                            "spec": {"hosts": ["reviews.shop.svc.cluster.local"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}));
        let f = lint(objects);
        assert_eq!(codes(&f), [("IST0109", "spec.hosts".to_string())]);
        assert_eq!(f[0].object, "VirtualService shop/reviews-old");
        assert!(f[0]
            .message
            .contains("also routed by VirtualService shop/reviews"));
    }

    #[test]
    fn mtls_conflict_is_an_error() {
        let mut objects = healthy();
        objects.push(json!({"kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": "shop"},
                            "spec": {"mtls": {"mode": "STRICT"}}}));
        let dr = objects
            .iter_mut()
            .find(|o| o["kind"] == "DestinationRule")
            .unwrap();
        dr["spec"]["trafficPolicy"] = json!({"tls": {"mode": "DISABLE"}});
        let f = lint(objects);
        assert_eq!(
            codes(&f),
            [("IST0113", "trafficPolicy.tls.mode".to_string())]
        );
        assert_eq!(f[0].severity, super::super::Severity::Error);
    }

    #[test]
    fn release_services_and_versions_must_exist() {
        use policy_sdk::{ServiceInfo, VersionRef};
        let version = |v: &str| VersionRef {
            subset: v.into(),
            labels: BTreeMap::from([
                ("app".into(), "reviews".into()),
                ("version".into(), v.into()),
            ]),
        };
        let service = |name: &str, canary: &str| ServiceInfo {
            name: name.into(),
            host: name.into(),
            stable: version("v1"),
            canary: version(canary),
            entry: true,
            gateways: vec![],
        };
        let mut context = ctx();
        context.release = Some(ReleaseInfo {
            name: "r".into(),
            namespace: "shop".into(),
            services: vec![service("reviews", "v9"), service("ratings", "v2")],
        });
        let f = run(&Inventory::from_objects(healthy()), &context);
        assert_eq!(
            codes(&f),
            [
                ("KC0003", "spec.services[1].name".to_string()),
                ("KC0003", "spec.services[0].canary.version".to_string())
            ]
        );
        context.canaries_to_create.insert("reviews".into());
        let f = run(&Inventory::from_objects(healthy()), &context);
        assert_eq!(codes(&f), [("KC0003", "spec.services[1].name".to_string())]);
    }
}
