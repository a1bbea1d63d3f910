//! Commands that read and write a live namespace, against a canned HTTP server that records every
//! request: `lint -f release.yaml` reads the spec's namespace, and `mtls enable` sends the
//! DestinationRules (clients) before the PeerAuthentication (servers), each with its field
//! manager. (The emulated API server will replace the canned answers in tests/e2e.)

mod support;

use serde_json::{json, Value};
use support::canary;
use support::fake_api::{kubeconfig, serve, status, Server};

fn list(items: Value) -> String {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "3"}, "items": items})
        .to_string()
}

/// Namespace `voting` with `voting-app` 1.0 and 2.0 running, injected, with two DestinationRules
/// kubectl-canary manages. PATCHes are answered with the body they sent.
fn voting() -> Server {
    serve(|method, path, body| {
        let route = path.split('?').next().unwrap_or(path);
        if method == "PATCH" {
            return (200, body.to_string());
        }
        let pod = |version: &str| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("voting-app-{version}"), "namespace": "voting",
                                "labels": {"app": "voting-app", "version": version}}})
        };
        let dr = |name: &str| {
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                   "metadata": {"name": name, "namespace": "voting",
                                "labels": {"app.kubernetes.io/managed-by": "kubectl-canary"}},
                   "spec": {"host": name}})
        };
        match route {
            "/api/v1/namespaces/voting" => (
                200,
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "voting", "labels": {"istio-injection": "enabled"}}})
                .to_string(),
            ),
            "/api/v1/namespaces/voting/services" => (
                200,
                list(json!([{"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "voting-app", "namespace": "voting"},
                    "spec": {"selector": {"app": "voting-app"}, "ports": [{"name": "http", "port": 8080}]}}])),
            ),
            "/api/v1/namespaces/voting/pods" => (200, list(json!([pod("1.0"), pod("2.0")]))),
            "/apis/networking.istio.io/v1/namespaces/voting/destinationrules" => {
                (200, list(json!([dr("voting-app"), dr("voting-storage")])))
            }
            r if r.starts_with("/apis/") => (200, list(json!([]))),
            _ => (404, status(404, "NotFound", &format!("{route} not found"))),
        }
    })
}

const SPEC: &str = "\
apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {name: voting-v2, namespace: voting}
spec:
  services:
    - name: voting-app
      stable: {version: \"1.0\"}
      canary: {version: CANARY}
  policy: {module: builtin:progressive}
";

#[test]
fn lint_with_a_spec_reads_the_spec_namespace() {
    let server = voting();
    let dir = tempfile::tempdir().unwrap();
    // The context's namespace is `default`; the spec's is `voting`.
    let config = kubeconfig(dir.path(), &server.url, "default");
    let config = config.to_str().unwrap();
    let good = support::write(dir.path(), "good.yaml", &SPEC.replace("CANARY", "\"2.0\""));
    let run = canary(["--kubeconfig", config, "lint", "-f", good.to_str().unwrap()]).code(0);
    assert_eq!(
        run.stdout,
        format!(
            "✔ no problems found in namespace voting + {}\n",
            good.display()
        )
    );
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().all(|p| !p.contains("/namespaces/default")),
        "{paths:#?}"
    );
    assert!(
        paths.contains(&"/api/v1/namespaces/voting".to_string()),
        "{paths:#?}"
    );

    let missing = support::write(
        dir.path(),
        "missing.yaml",
        &SPEC.replace("CANARY", "\"3.0\""),
    );
    let run = canary([
        "--kubeconfig",
        config,
        "lint",
        "-f",
        missing.to_str().unwrap(),
        "-o",
        "json",
    ])
    .code(1);
    let doc = run.json();
    assert_eq!(doc["findings"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(doc["findings"][0]["code"], "KC0003");
    assert_eq!(
        doc["findings"][0]["field"],
        "spec.services[0].canary.version"
    );
}

#[test]
fn mtls_enable_sends_clients_before_servers_with_their_field_managers() {
    let server = voting();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &server.url, "voting");
    let run = canary(["--kubeconfig", config.to_str().unwrap(), "mtls", "enable"]).code(0);
    assert_eq!(
        run.stdout,
        "destinationrule.networking.istio.io/voting-app tls ISTIO_MUTUAL\n\
         destinationrule.networking.istio.io/voting-storage tls ISTIO_MUTUAL\n\
         peerauthentication.security.istio.io/default STRICT in namespace voting\n"
    );
    let patches: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    let targets: Vec<&str> = patches
        .iter()
        .map(|r| r.path.split('?').next().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "/apis/networking.istio.io/v1/namespaces/voting/destinationrules/voting-app",
            "/apis/networking.istio.io/v1/namespaces/voting/destinationrules/voting-storage",
            "/apis/security.istio.io/v1/namespaces/voting/peerauthentications/default",
        ]
    );
    for dr in &patches[..2] {
        assert!(
            dr.path.contains("fieldManager=kubectl-canary-mtls"),
            "{}",
            dr.path
        );
        let body: Value = serde_json::from_str(&dr.body).unwrap();
        // Only the TLS mode: no other field of the DestinationRule is claimed.
        assert_eq!(
            body["spec"],
            json!({"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})
        );
    }
    let pa = &patches[2];
    assert!(
        pa.path.contains("fieldManager=kubectl-canary&")
            || pa.path.ends_with("fieldManager=kubectl-canary"),
        "{}",
        pa.path
    );
    let body: Value = serde_json::from_str(&pa.body).unwrap();
    assert_eq!(body["spec"], json!({"mtls": {"mode": "STRICT"}}));

    // --dry-run=server sends the same PATCHes with dryRun=All.
    let before = server.requests().len();
    canary([
        "--kubeconfig",
        config.to_str().unwrap(),
        "mtls",
        "enable",
        "--dry-run=server",
    ])
    .code(0);
    let dry: Vec<_> = server.requests()[before..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .cloned()
        .collect();
    assert_eq!(dry.len(), 3);
    assert!(
        dry.iter().all(|r| r.path.contains("dryRun=All")),
        "{dry:#?}"
    );

    // --dry-run=client sends nothing but the list.
    let before = server.requests().len();
    let run = canary([
        "--kubeconfig",
        config.to_str().unwrap(),
        "mtls",
        "enable",
        "--dry-run",
    ])
    .code(0);
    assert!(
        server.requests()[before..]
            .iter()
            .all(|r| r.method == "GET"),
        "{:#?}",
        &server.requests()[before..]
    );
    assert_eq!(
        run.stdout.matches("kind: DestinationRule").count(),
        2,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("kind: PeerAuthentication").count(),
        1,
        "{}",
        run.stdout
    );
}
