//! What the operator sees when the API server says no: a namespace that does not exist (404),
//! missing RBAC (403), refused credentials (401). Served by a canned HTTP server until the
//! emulated API server can play these parts (tests/e2e then covers them with real kubectl).

mod support;

use support::canary;
use support::fake_api::{kubeconfig, serve, status};

/// Every command that reads the namespace, with the namespace `ns`.
fn commands(kubeconfig: &str) -> Vec<Vec<String>> {
    [
        vec!["lint"],
        vec!["mtls", "status"],
        vec!["init", "reviews"],
    ]
    .into_iter()
    .map(|args| {
        ["--kubeconfig", kubeconfig]
            .into_iter()
            .chain(args)
            .map(str::to_string)
            .collect()
    })
    .collect()
}

#[test]
fn a_namespace_that_does_not_exist_is_named_with_what_to_check() {
    let url = serve(|_, path, _| {
        if path.starts_with("/api/v1/namespaces/nope") {
            (
                404,
                status(404, "NotFound", "namespaces \"nope\" not found"),
            )
        } else {
            (
                500,
                status(500, "InternalError", &format!("unexpected {path}")),
            )
        }
    })
    .url;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &url, "nope");
    for args in commands(config.to_str().unwrap()) {
        let run = canary(&args).code(1);
        let line = run.one_line_error();
        assert!(
            line.contains(
                "get Namespace nope: namespace \"nope\" not found (check -n, or the namespace of \
                 your kubeconfig context)"
            ),
            "{line}"
        );
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn missing_rbac_says_which_request_was_forbidden() {
    let url = serve(|_, path, _| {
        (
            403,
            status(
                403,
                "Forbidden",
                &format!("User \"dev\" cannot access {path}"),
            ),
        )
    })
    .url;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &url, "shop");
    for args in commands(config.to_str().unwrap()) {
        let run = canary(&args).code(1);
        let line = run.one_line_error();
        assert!(
            line.starts_with(
                "error: list Services in namespace shop: User \"dev\" cannot access \
                 /api/v1/namespaces/shop/services"
            ) && line.ends_with("(missing RBAC permission: `kubectl canary rbac` prints the Role the commands need; check yours with `kubectl auth can-i`)"),
            "{line}"
        );
    }
    let run = canary(["--kubeconfig", config.to_str().unwrap(), "mtls", "enable"]).code(1);
    let line = run.one_line_error();
    assert!(
        line.starts_with(
            "error: cannot list the DestinationRules of namespace shop: list DestinationRules in \
             namespace shop: User \"dev\" cannot access /apis/networking.istio.io/v1/namespaces/shop/destinationrules"
        ),
        "{line}"
    );
}

#[test]
fn namespace_scoped_rights_are_enough_to_lint() {
    // The Namespace object itself is forbidden (a RoleBinding grants nothing cluster-wide), and
    // so are cluster-wide Gateways; everything in the namespace may be listed, and is empty.
    let url = serve(|_, path, _| {
        let namespaced = path.starts_with("/api/v1/namespaces/shop/")
            || path.contains("/namespaces/shop/")
            || path.contains("/namespaces/istio-system/");
        if namespaced {
            (
                200,
                r#"{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []}"#
                    .to_string(),
            )
        } else {
            (
                403,
                status(403, "Forbidden", &format!("cannot access {path}")),
            )
        }
    })
    .url;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &url, "shop");
    let config = config.to_str().unwrap();
    let run = canary(["--kubeconfig", config, "lint"]).code(0);
    assert_eq!(run.stdout, "✔ no problems found in namespace shop\n");
    let run = canary(["--kubeconfig", config, "mtls", "status"]).code(0);
    assert_eq!(run.stdout, "no services in namespace shop\n");
    let run = canary(["--kubeconfig", config, "init", "reviews"]).code(1);
    assert_eq!(
        run.one_line_error(),
        "error: service reviews not found in namespace shop (check the name and -n: kubectl get \
         services -n shop)"
    );
}

#[test]
fn refused_credentials_point_at_the_kubeconfig_user() {
    let url = serve(|_, _, _| (401, status(401, "Unauthorized", "Unauthorized"))).url;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &url, "shop");
    let run = canary(["--kubeconfig", config.to_str().unwrap(), "lint"]).code(1);
    assert!(
        run.one_line_error()
            .ends_with("(your credentials were refused: check the user in your kubeconfig)"),
        "{}",
        run.stderr
    );
}
