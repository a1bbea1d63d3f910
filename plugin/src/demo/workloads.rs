//! What a cluster needs before a release can start: the namespace (labelled for injection), the
//! Services, the Deployments of each version, the Gateways the spec names, and Istio's kinds.
//! Used by `demo` and by the end-to-end tests for every example spec.

use serde_json::{json, Value};

use crate::spec::Release;

/// The four Istio kinds kubectl-canary uses: group, kind, plural, short name.
const ISTIO_KINDS: [(&str, &str, &str, &str); 4] = [
    (
        "networking.istio.io",
        "VirtualService",
        "virtualservices",
        "vs",
    ),
    (
        "networking.istio.io",
        "DestinationRule",
        "destinationrules",
        "dr",
    ),
    ("networking.istio.io", "Gateway", "gateways", "gw"),
    (
        "security.istio.io",
        "PeerAuthentication",
        "peerauthentications",
        "pa",
    ),
];

/// CustomResourceDefinitions (v1 served and stored) for the four Istio kinds kubectl-canary
/// uses, with open schemas, as one YAML stream.
///
/// Istio's own bundle (with full schemas) is what tests install when it is available; the demo
/// runs anywhere, so it carries these definitions, written for this project. Objects are still
/// checked by the emulated server's istiod-webhook layer.
pub fn istio_crds() -> String {
    ISTIO_KINDS
        .iter()
        .map(|(group, kind, plural, short)| {
            let singular = kind.to_ascii_lowercase();
            format!(
                "apiVersion: apiextensions.k8s.io/v1\n\
                 kind: CustomResourceDefinition\n\
                 metadata: {{name: {plural}.{group}}}\n\
                 spec:\n  \
                 group: {group}\n  \
                 scope: Namespaced\n  \
                 names: {{kind: {kind}, listKind: {kind}List, plural: {plural}, singular: {singular}, shortNames: [{short}]}}\n  \
                 versions:\n  \
                 - name: v1\n    \
                 served: true\n    \
                 storage: true\n    \
                 schema:\n      \
                 openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The namespace, Services, Deployments (stable, and canary unless the spec clones it from
/// `image`) and Gateways that `spec` expects, as a YAML-free list of objects.
pub fn workloads_for(spec: &Release) -> Vec<Value> {
    let ns = spec.namespace();
    let mut objects = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}},
    })];
    let mut gateways = Vec::new();
    for svc in &spec.spec.services {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc.name, "namespace": ns, "labels": {svc.app_label.as_str(): svc.name}},
            "spec": {"selector": {svc.app_label.as_str(): svc.name},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }));
        let mut versions = vec![svc.stable.version.as_str()];
        if svc.canary.image.is_none() {
            versions.push(svc.canary.version.as_str());
        }
        for version in versions {
            let slug = version.to_ascii_lowercase().replace(['.', '_'], "-");
            let name = if slug.starts_with('v') {
                format!("{}-{slug}", svc.name)
            } else {
                format!("{}-v{slug}", svc.name)
            };
            let labels =
                json!({svc.app_label.as_str(): svc.name, svc.version_label.as_str(): version});
            objects.push(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{
                            "name": svc.name,
                            "image": format!("example.com/{}:{version}", svc.name),
                            "ports": [{"containerPort": 8080}],
                        }]},
                    },
                },
            }));
        }
        for gw in &svc.gateways {
            if !gateways.contains(gw) {
                gateways.push(gw.clone());
            }
        }
    }
    for gw in gateways {
        let (gw_ns, gw_name) = gw.split_once('/').unwrap_or((ns, gw.as_str()));
        if gw_ns != ns {
            objects.push(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": gw_ns},
            }));
        }
        objects.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": gw_name, "namespace": gw_ns},
            "spec": {"selector": {"istio": "ingressgateway"},
                     "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]},
        }));
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voting_example_gets_every_version_and_its_gateway() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/voting-app.yaml");
        let spec = crate::spec::load_file(&path).unwrap();
        let objects = workloads_for(&spec);
        let names: Vec<String> = objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        for want in [
            "Namespace/voting",
            "Service/voting-app",
            "Deployment/voting-app-v1-0",
            "Deployment/voting-app-v2-0",
            "Deployment/voting-analytics-v1-1",
            "Deployment/voting-storage-v2-0",
            "Gateway/voting-app-gateway",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        let dep = objects
            .iter()
            .find(|o| o["metadata"]["name"] == "voting-analytics-v1-1")
            .unwrap();
        assert_eq!(
            dep["spec"]["template"]["metadata"]["labels"],
            json!({"app": "voting-analytics", "version": "1.1"})
        );
    }

    #[test]
    fn istio_crds_are_four_served_crds() {
        let objects = crate::manifest::parse_stream(&istio_crds(), "crds").unwrap();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "virtualservices.networking.istio.io",
                "destinationrules.networking.istio.io",
                "gateways.networking.istio.io",
                "peerauthentications.security.istio.io"
            ]
        );
        let vs = &objects[0].object;
        assert_eq!(vs["spec"]["names"]["kind"], "VirtualService");
        assert_eq!(vs["spec"]["names"]["shortNames"], json!(["vs"]));
        assert_eq!(vs["spec"]["versions"][0]["served"], true);
        assert_eq!(
            vs["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
                ["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }

    #[test]
    fn a_cloned_canary_gets_no_deployment() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/nginx-weighted.yaml");
        let spec = crate::spec::load_file(&path).unwrap();
        let deployments: Vec<String> = workloads_for(&spec)
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(deployments, ["nginx-v1"]);
    }
}
