//! `kubectl-canary init` through the real binary: usage, bad targets, an unreachable cluster, and
//! reading a namespace served by a canned HTTP server (the scaffolding rules themselves are
//! tested in `spec::scaffold`).

mod support;

use support::{canary, unreachable_kubeconfig};

#[test]
fn init_needs_a_target() {
    let run = canary(["init"]).code(2);
    assert!(run.stderr.contains("<TARGET>"), "{}", run.stderr);
}

#[test]
fn a_bad_target_is_refused_before_contacting_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let run = canary([
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "init",
        "pod/reviews",
    ])
    .code(1);
    assert_eq!(
        run.one_line_error(),
        "error: invalid target \"pod/reviews\": use NAME, service/NAME or deployment/NAME"
    );
}

#[test]
fn init_on_an_unreachable_cluster_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let run = canary([
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "init",
        "deployment/reviews-v1",
        "-n",
        "bookinfo",
    ])
    .code(1);
    let line = run.one_line_error();
    assert!(
        line.starts_with("error: get Namespace bookinfo: cannot reach the API server: "),
        "{line}"
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn init_help_documents_the_version_rule() {
    let run = canary(["init", "--help"]).code(0);
    for text in [
        "the lower in natural order (v1 < v2 < v10, 1.9 < 1.10) is stable",
        "pass both --stable-version and --canary-version",
        "--canary-version <VERSION>",
        "--image <IMAGE>",
    ] {
        assert!(
            run.stdout.contains(text),
            "missing {text:?}:\n{}",
            run.stdout
        );
    }
}

/// A canned namespace `shop` with `reviews` v1 and v2 and a gateway-bound VirtualService; the
/// VirtualService list answers 404 when `istio` is false (Istio not installed).
fn shop_server(istio: bool) -> String {
    use serde_json::json;
    let list = |items: serde_json::Value| {
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "7"}, "items": items})
            .to_string()
    };
    let deployment = |version: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": format!("reviews-{version}"), "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": "reviews", "version": version}},
                        "template": {"metadata": {"labels": {"app": "reviews", "version": version}},
                                     "spec": {"containers": [{"name": "reviews",
                                              "image": format!("bookinfo/reviews:{version}")}]}}}})
    };
    support::fake_api::serve(move |_, path, _| {
        let path = path.split('?').next().unwrap_or(path);
        match path {
            "/api/v1/namespaces/shop" => (
                200,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
                    .to_string(),
            ),
            "/api/v1/namespaces/shop/services" => (
                200,
                list(json!([{"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "reviews", "namespace": "shop"},
                    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}])),
            ),
            "/apis/apps/v1/namespaces/shop/deployments" => {
                (200, list(json!([deployment("v2"), deployment("v1")])))
            }
            "/apis/networking.istio.io/v1/namespaces/shop/virtualservices" if istio => (
                200,
                list(
                    json!([{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "bookinfo", "namespace": "shop"},
                    "spec": {"hosts": ["*"], "gateways": ["istio-system/bookinfo-gateway"],
                             "http": [{"match": [{"uri": {"prefix": "/reviews"}}],
                                       "route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}]}]}}]),
                ),
            ),
            _ => (
                404,
                support::fake_api::status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            ),
        }
    })
    .url
}

#[test]
fn init_reads_the_live_namespace_and_writes_a_spec_that_lint_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop_server(true);
    let config = support::fake_api::kubeconfig(dir.path(), &url, "default");
    let run = canary([
        "--kubeconfig",
        config.to_str().unwrap(),
        "-n",
        "shop",
        "init",
        "deployment/reviews-v1",
    ])
    .code(0);
    assert_eq!(run.stderr, "");
    assert!(run
        .stdout
        .starts_with("# Release spec written by `kubectl canary init`"));
    let release = kubectl_canary::spec::parse_str(&run.stdout, "init output").unwrap();
    assert_eq!(release.name(), "reviews-v2");
    assert_eq!(release.namespace(), "shop");
    let service = &release.spec.services[0];
    assert_eq!(
        (
            service.stable.version.as_str(),
            service.canary.version.as_str()
        ),
        ("v1", "v2")
    );
    assert_eq!(service.gateways, ["istio-system/bookinfo-gateway"]);
    assert_eq!(service.hosts, ["*"]);
    assert!(run.stdout.contains("--adopt"), "{}", run.stdout);

    // lint takes the written spec as it is (with the objects it was made from, as files).
    let spec = support::write(dir.path(), "release.yaml", &run.stdout);
    let objects = support::write(
        dir.path(),
        "objects.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\n\
         spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: r1, namespace: shop, labels: {app: reviews, version: v1}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: r2, namespace: shop, labels: {app: reviews, version: v2}}\n",
    );
    canary([
        "lint",
        "--local",
        "-f",
        spec.to_str().unwrap(),
        "-f",
        objects.to_str().unwrap(),
    ])
    .code(0);

    // -o json is the same release, without comments.
    let run = canary([
        "--kubeconfig",
        config.to_str().unwrap(),
        "-n",
        "shop",
        "init",
        "reviews",
        "-o",
        "json",
    ])
    .code(0);
    let json = run.json();
    assert_eq!(json["metadata"]["name"], "reviews-v2");
    assert_eq!(json["spec"]["services"][0]["stable"]["version"], "v1");
}

#[test]
fn init_without_istio_warns_and_leaves_gateways_out() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop_server(false);
    let config = support::fake_api::kubeconfig(dir.path(), &url, "shop");
    let run = canary(["--kubeconfig", config.to_str().unwrap(), "init", "reviews"]).code(0);
    assert!(
        run.stderr
            .starts_with("warning: list VirtualServices in namespace shop: ")
            && run.stderr.contains("is Istio (1.22 or later) installed?")
            && run.stderr.ends_with("; gateways are not filled in\n"),
        "{}",
        run.stderr
    );
    let release = kubectl_canary::spec::parse_str(&run.stdout, "init output").unwrap();
    assert!(release.spec.services[0].gateways.is_empty());

    let run = canary([
        "--kubeconfig",
        config.to_str().unwrap(),
        "init",
        "reviews",
        "--canary-version",
        "v3",
    ])
    .code(1);
    // The warning about Istio, then the error.
    assert!(
        run.stderr
            .ends_with("pass --stable-version too, to say which of them serves users\n"),
        "{}",
        run.stderr
    );
    let run = canary([
        "--kubeconfig",
        config.to_str().unwrap(),
        "init",
        "reviews",
        "--canary-version",
        "v3",
        "--stable-version",
        "v2",
    ])
    .code(0);
    let release = kubectl_canary::spec::parse_str(&run.stdout, "init output").unwrap();
    assert_eq!(release.spec.services[0].stable.version, "v2");
    assert_eq!(release.spec.services[0].canary.version, "v3");
}
