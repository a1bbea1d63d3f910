//! `kubectl-canary lint` and `mtls status` through the real binary, on files (`--local`): exit
//! codes, `--fail-on`, the JSON/YAML shapes, release specs, and bad input.

mod support;

use serde_json::{json, Value};
use support::{canary, unreachable_kubeconfig, write, write_objects};

const MANAGED: &str = "kubectl-canary";

/// A healthy two-version `reviews` service in an injected namespace, routed by objects
/// kubectl-canary manages.
fn healthy() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
               "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reviews-v1-a", "namespace": "shop",
               "labels": {"app": "reviews", "version": "v1"}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reviews-v3-a", "namespace": "shop",
               "labels": {"app": "reviews", "version": "v3"}}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "shop-gateway", "namespace": "istio-system"},
               "spec": {"selector": {"istio": "ingressgateway"},
                        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
               "metadata": {"name": "reviews", "namespace": "shop",
                            "labels": {"app.kubernetes.io/managed-by": MANAGED}},
               "spec": {"host": "reviews", "subsets": [
                   {"name": "v1", "labels": {"version": "v1"}},
                   {"name": "v3", "labels": {"version": "v3"}}]}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "reviews", "namespace": "shop",
                            "labels": {"app.kubernetes.io/managed-by": MANAGED}},
               "spec": {"hosts": ["reviews"], "gateways": ["istio-system/shop-gateway", "mesh"],
                        "http": [{"route": [
                   {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                   {"destination": {"host": "reviews", "subset": "v3"}, "weight": 50}]}]}}),
    ]
}

/// The healthy set with `edit` applied to the first object of `kind`.
fn edited(kind: &str, edit: impl FnOnce(&mut Value)) -> Vec<Value> {
    let mut objects = healthy();
    edit(
        objects
            .iter_mut()
            .find(|o| o["kind"] == kind)
            .expect("kind in the healthy set"),
    );
    objects
}

/// `lint --local -f <objects> -o json`; returns the exit code and the parsed document.
fn lint_json(objects: &[Value], extra: &[&str]) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_objects(dir.path(), "objects.yaml", objects);
    let mut args = vec![
        "lint",
        "--local",
        "-f",
        file.to_str().unwrap(),
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = canary(&args);
    let code = run.code.expect("exit code");
    (code, run.json())
}

fn codes(doc: &Value) -> Vec<(String, String)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["field"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Objects, and the (code, field) findings they must give.
type Case = (Vec<Value>, Vec<(&'static str, &'static str)>);

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_clean_set_passes_with_exit_0_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_objects(dir.path(), "shop.yaml", &healthy());
    let path = file.to_str().unwrap();
    let run = canary(["lint", "--local", "-f", path]).code(0);
    assert_eq!(run.stdout, format!("✔ no problems found in {path}\n"));
    assert_eq!(run.stderr, "");
    let run = canary(["lint", "--local", "-f", path, "-o", "json"]).code(0);
    assert_eq!(
        run.json(),
        json!({"findings": [], "summary": {"errors": 0, "warnings": 0, "infos": 0}})
    );
    let run = canary([
        "lint",
        "--local",
        "-f",
        path,
        "-o",
        "yaml",
        "--fail-on",
        "warning",
    ])
    .code(0);
    let doc: Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 0);
    // A directory reads the same files.
    canary(["lint", "--local", "-f", dir.path().to_str().unwrap()]).code(0);
}

#[test]
fn each_error_code_fails_with_exit_1() {
    let cases: Vec<Case> = vec![
        (
            edited("VirtualService", |vs| {
                vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = json!("v4")
            }),
            vec![("IST0101", "spec.http[0].route[1].destination.subset")],
        ),
        (
            edited("VirtualService", |vs| {
                vs["spec"]["gateways"][0] = json!("istio-system/nope")
            }),
            vec![("IST0101", "spec.gateways[0]")],
        ),
        (
            edited("DestinationRule", |dr| {
                dr["spec"]["subsets"][1]["name"] = json!("V3.0")
            }),
            // The route to v3 now names a subset that does not exist, too.
            vec![
                ("IST0106", "spec.subsets[1].name"),
                ("IST0101", "spec.http[0].route[1].destination.subset"),
            ],
        ),
        (
            {
                let mut objects = edited("DestinationRule", |dr| {
                    dr["spec"]["trafficPolicy"] = json!({"tls": {"mode": "DISABLE"}})
                });
                objects.push(
                    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                    "metadata": {"name": "default", "namespace": "shop"},
                    "spec": {"mtls": {"mode": "STRICT"}}}),
                );
                objects
            },
            vec![("IST0113", "trafficPolicy.tls.mode")],
        ),
    ];
    for (objects, expected) in cases {
        let (code, doc) = lint_json(&objects, &[]);
        assert_eq!(codes(&doc), pairs(&expected), "{doc:#}");
        assert_eq!(code, 1, "{doc:#}");
        for finding in doc["findings"].as_array().unwrap() {
            assert_eq!(finding["severity"], "error", "{finding}");
        }
    }
}

#[test]
fn warnings_pass_unless_fail_on_warning() {
    let cases: Vec<Case> = vec![
        (
            edited("Namespace", |ns| ns["metadata"]["labels"] = json!({})),
            vec![("IST0102", "metadata.labels")],
        ),
        (
            edited("Service", |s| s["spec"]["ports"][0]["name"] = json!("web")),
            vec![("IST0118", "spec.ports[0].name")],
        ),
        (
            edited("Pod", |p| {
                p["metadata"]["labels"] = json!({"app": "reviews"})
            }),
            vec![
                ("KC0002", "spec.subsets[0].labels"),
                ("KC0001", "pods: metadata.labels.version"),
            ],
        ),
        (
            {
                let mut objects = healthy();
                objects.push(
                    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "reviews-old", "namespace": "shop"},
                    "spec": {"hosts": ["reviews.shop.svc.cluster.local"],
                             "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}),
                );
                objects
            },
            vec![("IST0109", "spec.hosts")],
        ),
    ];
    for (objects, expected) in cases {
        let (code, doc) = lint_json(&objects, &[]);
        assert_eq!(codes(&doc), pairs(&expected), "{doc:#}");
        assert_eq!(code, 0, "warnings alone exit 0: {doc:#}");
        assert_eq!(doc["summary"]["errors"], 0);
        assert_eq!(doc["summary"]["warnings"], expected.len());
        let (code, _) = lint_json(&objects, &["--fail-on", "warning"]);
        assert_eq!(code, 1, "--fail-on warning: {doc:#}");
    }
}

#[test]
fn json_findings_have_a_stable_shape() {
    let objects = edited("VirtualService", |vs| {
        vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = json!("v4")
    });
    let (_, doc) = lint_json(&objects, &[]);
    let finding = &doc["findings"][0];
    let mut keys: Vec<&str> = finding
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["code", "field", "fix", "message", "object", "severity"]
    );
    assert_eq!(finding["object"], "VirtualService shop/reviews");
    assert!(
        finding["message"].as_str().unwrap().contains("v4"),
        "{finding}"
    );
    assert!(!finding["fix"].as_str().unwrap().is_empty());
    assert_eq!(
        doc["summary"],
        json!({"errors": 1, "warnings": 0, "infos": 0})
    );
}

#[test]
fn human_output_lists_findings_and_the_error_line_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let objects = edited("VirtualService", |vs| {
        vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = json!("v4")
    });
    let file = write_objects(dir.path(), "shop.yaml", &objects);
    let run = canary(["lint", "--local", "-f", file.to_str().unwrap()]).code(1);
    assert!(
        run.stdout.starts_with(
            "Error [IST0101] (VirtualService shop/reviews spec.http[0].route[1].destination.subset)"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\n    fix: "), "{}", run.stdout);
    assert!(
        run.stdout
            .ends_with(&format!("\n1 error, 0 warnings in {}\n", file.display())),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.one_line_error(),
        "error: lint found 1 problem at or above error"
    );
}

const SPEC: &str = "\
apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {name: reviews-v3, namespace: shop}
spec:
  services:
    - name: reviews
      stable: {version: v1}
      canary: {version: CANARY}
  policy:
    module: builtin:progressive
    config: {steps: [50, 100]}
";

#[test]
fn a_release_spec_is_checked_against_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let objects = write_objects(dir.path(), "shop.yaml", &healthy());
    let objects = objects.to_str().unwrap();
    let good = write(dir.path(), "good.yaml", &SPEC.replace("CANARY", "v3"));
    let run = canary([
        "lint",
        "--local",
        "-f",
        objects,
        "-f",
        good.to_str().unwrap(),
    ])
    .code(0);
    assert!(
        run.stdout.starts_with("✔ no problems found"),
        "{}",
        run.stdout
    );

    // The canary version has no pods: KC0003 on the spec's field.
    let missing = write(dir.path(), "missing.yaml", &SPEC.replace("CANARY", "v4"));
    let run = canary([
        "lint",
        "--local",
        "-f",
        objects,
        "-f",
        missing.to_str().unwrap(),
        "-o",
        "json",
    ])
    .code(1);
    let doc = run.json();
    assert_eq!(
        codes(&doc),
        pairs(&[("KC0003", "spec.services[0].canary.version")])
    );
    assert_eq!(doc["findings"][0]["object"], "Service shop/reviews");
    assert!(
        doc["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("app=reviews,version=v4"),
        "{doc:#}"
    );

    // With canary.image, `start` creates the canary: no pods expected yet.
    let cloned = write(
        dir.path(),
        "cloned.yaml",
        &SPEC.replace(
            "{version: CANARY}",
            "{version: v4, image: \"repo/reviews:v4\"}",
        ),
    );
    canary([
        "lint",
        "--local",
        "-f",
        objects,
        "-f",
        cloned.to_str().unwrap(),
    ])
    .code(0);

    // The spec's namespace is the default for objects without one.
    let unnamespaced: Vec<Value> = healthy()
        .into_iter()
        .map(|mut o| {
            if o["metadata"]["namespace"] == "shop" {
                o["metadata"].as_object_mut().unwrap().remove("namespace");
            }
            o
        })
        .collect();
    let bare = write_objects(dir.path(), "bare.yaml", &unnamespaced);
    canary([
        "lint",
        "--local",
        "-f",
        bare.to_str().unwrap(),
        "-f",
        good.to_str().unwrap(),
    ])
    .code(0);
}

#[test]
fn a_directory_may_hold_the_spec_beside_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    write_objects(dir.path(), "a-objects.yaml", &healthy());
    write(dir.path(), "b-release.yaml", &SPEC.replace("CANARY", "v4"));
    let run = canary([
        "lint",
        "--local",
        "-f",
        dir.path().to_str().unwrap(),
        "-o",
        "json",
    ])
    .code(1);
    assert_eq!(
        codes(&run.json()),
        pairs(&[("KC0003", "spec.services[0].canary.version")])
    );
}

#[test]
fn a_service_missing_from_the_files_is_reported_on_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "spec.yaml", &SPEC.replace("CANARY", "v3"));
    let run = canary([
        "lint",
        "--local",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        "json",
    ])
    .code(1);
    assert_eq!(
        codes(&run.json()),
        pairs(&[("KC0003", "spec.services[0].name")])
    );
}

#[test]
fn bad_release_specs_are_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let objects = write_objects(dir.path(), "shop.yaml", &healthy());
    let objects = objects.to_str().unwrap();

    let typo = write(
        dir.path(),
        "typo.yaml",
        &SPEC.replace("canary: {version: CANARY}", "canary: {vesion: v3}"),
    );
    let run = canary([
        "lint",
        "--local",
        "-f",
        objects,
        "-f",
        typo.to_str().unwrap(),
    ])
    .code(1);
    let line = run.one_line_error();
    assert!(
        line.contains("typo.yaml:8:")
            && line.contains("spec.services[0].canary")
            && line.contains("vesion"),
        "{line}"
    );
    assert_eq!(run.stdout, "");

    let invalid = write(dir.path(), "invalid.yaml", &SPEC.replace("CANARY", "v1"));
    let run = canary(["lint", "--local", "-f", invalid.to_str().unwrap()]).code(1);
    assert!(
        run.stderr.starts_with(
            "error: invalid release spec (1 problem):\n  spec.services[0].canary.version: "
        ),
        "{}",
        run.stderr
    );

    let second = write(dir.path(), "second.yaml", &SPEC.replace("CANARY", "v3"));
    let first = write(dir.path(), "first.yaml", &SPEC.replace("CANARY", "v3"));
    let run = canary([
        "lint",
        "--local",
        "-f",
        first.to_str().unwrap(),
        "-f",
        second.to_str().unwrap(),
    ])
    .code(1);
    assert!(
        run.one_line_error()
            .starts_with("error: 2 release specs given ("),
        "{}",
        run.stderr
    );

    let run = canary([
        "lint",
        "--local",
        "-n",
        "other",
        "-f",
        first.to_str().unwrap(),
    ])
    .code(1);
    assert!(
        run.one_line_error()
            .starts_with("error: -n other differs from the namespace of release reviews-v3"),
        "{}",
        run.stderr
    );

    let mixed = write(
        dir.path(),
        "mixed.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: x}}\n",
            SPEC.replace("CANARY", "v3")
        ),
    );
    let run = canary(["lint", "--local", "-f", mixed.to_str().unwrap()]).code(1);
    assert!(
        run.one_line_error()
            .contains("a release spec (kind: Release) must be the only document in its file"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_files_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.yaml", "apiVersion: v1\nkind: [\n");
    let run = canary(["lint", "--local", "-f", broken.to_str().unwrap()]).code(1);
    assert!(
        run.stderr
            .starts_with(&format!("error: {}: document 1: ", broken.display())),
        "{}",
        run.stderr
    );
    let run = canary(["lint", "--local", "-f", "/nonexistent/x.yaml"]).code(1);
    assert!(
        run.one_line_error()
            .starts_with("error: cannot read /nonexistent/x.yaml"),
        "{}",
        run.stderr
    );
    // --local needs files: a usage error.
    let run = canary(["lint", "--local"]).code(2);
    assert!(run.stderr.contains("--filename"), "{}", run.stderr);
}

#[test]
fn mtls_status_local_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut objects = healthy();
    objects.push(json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "shop"}, "spec": {"mtls": {"mode": "STRICT"}}}));
    let ok = write_objects(dir.path(), "ok.yaml", &objects);
    let run = canary(["mtls", "status", "--local", "-f", ok.to_str().unwrap()]).code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for column in ["service", "server", "client", "status"] {
        assert!(lines[0].to_lowercase().contains(column), "{}", run.stdout);
    }
    assert!(lines[1].starts_with("reviews.shop"), "{}", run.stdout);
    assert!(
        lines[1].contains("STRICT") && lines[1].ends_with("OK"),
        "{}",
        run.stdout
    );

    let run = canary([
        "mtls",
        "status",
        "--local",
        "-f",
        ok.to_str().unwrap(),
        "-o",
        "json",
    ])
    .code(0);
    let rows = run.json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows:#}");
    assert_eq!(rows[0]["service"], "reviews");
    assert_eq!(rows[0]["namespace"], "shop");
    assert_eq!(rows[0]["server"], "STRICT");
    assert_eq!(rows[0]["client"], "AUTO");
    assert_eq!(rows[0]["verdict"], "OK");

    // A DestinationRule that disables TLS against a STRICT server: a conflict, with its reason.
    let dr = objects
        .iter_mut()
        .find(|o| o["kind"] == "DestinationRule")
        .unwrap();
    dr["spec"]["trafficPolicy"] = json!({"tls": {"mode": "DISABLE"}});
    let conflict = write_objects(dir.path(), "conflict.yaml", &objects);
    let run = canary([
        "mtls",
        "status",
        "--local",
        "-f",
        conflict.to_str().unwrap(),
    ])
    .code(0);
    assert!(run.stdout.contains("CONFLICT"), "{}", run.stdout);
    assert!(
        run.stdout.contains("\nconflict: shop/reviews: "),
        "{}",
        run.stdout
    );
    let run = canary([
        "mtls",
        "status",
        "--local",
        "-f",
        conflict.to_str().unwrap(),
        "-o",
        "json",
    ])
    .code(0);
    let rows = run.json();
    assert_eq!(rows[0]["verdict"], "CONFLICT");
    assert_eq!(rows[0]["client"], "DISABLE");
    assert!(
        rows[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{rows:#}"
    );
}

#[test]
fn an_unreachable_cluster_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    for args in [
        vec!["lint"],
        vec!["mtls", "status"],
        vec!["mtls", "enable"],
        vec!["init", "reviews"],
    ] {
        let mut full = vec!["--kubeconfig", kubeconfig];
        full.extend(args);
        let run = canary(&full).code(1);
        let line = run.one_line_error();
        assert!(
            line.contains("cannot reach the API server")
                && line.contains("Connection refused")
                && line.contains("kubectl config view --minify"),
            "{line}"
        );
        assert!(
            line.contains("namespace shop") || line.contains("Namespace shop"),
            "{line}"
        );
    }
    let run = canary(["--kubeconfig", "/nonexistent/kubeconfig", "lint"]).code(1);
    assert!(
        run.one_line_error()
            .starts_with("error: cannot use kubeconfig /nonexistent/kubeconfig: "),
        "{}",
        run.stderr
    );
}
