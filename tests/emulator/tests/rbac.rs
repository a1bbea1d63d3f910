//! ServiceAccounts, their tokens, RBAC enforcement and Leases, driven by the real kubectl.

mod common;

use common::{fails, kubectl, ok, runtime, system_kubectl};
use kube_emulator::{Emulator, Options};

const SETUP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: canary, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules:
- apiGroups: [\"\"]
  resources: [configmaps]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments, deployments/scale]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: canary, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: a}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
";

fn kubectl_bin() -> Option<std::path::PathBuf> {
    let bin = system_kubectl();
    if bin.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/usr/bin/kubectl is required when CI=true"
        );
        eprintln!("skipping: /usr/bin/kubectl not found");
    }
    bin
}

const USER: &str = "User \"system:serviceaccount:shop:canary\"";

#[test]
fn service_account_tokens_are_authorized_by_rbac() {
    let Some(bin) = kubectl_bin() else { return };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("emulator");
    emu.apply_yaml(SETUP).expect("setup");
    let admin = emu.kubeconfig_path();

    // `kubectl create token` sends a TokenRequest to serviceaccounts/canary/token.
    let token = ok(
        &bin,
        admin,
        &["create", "token", "canary", "-n", "shop"],
        None,
    );
    let token = token.trim();
    assert!(token.starts_with("emu-sa-"), "{token}");
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa-kubeconfig");
    emu.write_kubeconfig_with_token(&sa, token, "shop")
        .expect("kubeconfig");

    // Allowed: get and list ConfigMaps in shop.
    assert_eq!(
        ok(
            &bin,
            &sa,
            &["get", "cm", "settings", "-o", "jsonpath={.data.mode}"],
            None
        ),
        "a"
    );
    assert!(ok(&bin, &sa, &["get", "cm", "-o", "name"], None).contains("configmap/settings"));

    // Refused, worded as kube-apiserver words it: named, collection, other namespace, cluster
    // scope, subresource, watch.
    let cases: [(&[&str], String); 6] = [
        (
            &["delete", "cm", "settings"],
            format!("Error from server (Forbidden): configmaps \"settings\" is forbidden: {USER} cannot delete resource \"configmaps\" in API group \"\" in the namespace \"shop\"\n"),
        ),
        (
            &["get", "deployments"],
            format!("Error from server (Forbidden): deployments.apps is forbidden: {USER} cannot list resource \"deployments\" in API group \"apps\" in the namespace \"shop\"\n"),
        ),
        (
            &["get", "cm", "-n", "default"],
            format!("Error from server (Forbidden): configmaps is forbidden: {USER} cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\"\n"),
        ),
        (
            &["get", "namespaces"],
            format!("Error from server (Forbidden): namespaces is forbidden: {USER} cannot list resource \"namespaces\" in API group \"\" at the cluster scope\n"),
        ),
        (
            &["scale", "deployment", "web", "--replicas", "2"],
            format!("Error from server (Forbidden): deployments.apps \"web\" is forbidden: {USER} cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"shop\"\n"),
        ),
        (
            &["get", "cm", "--watch-only", "--request-timeout", "5s"],
            format!("Error from server (Forbidden): configmaps is forbidden: {USER} cannot watch resource \"configmaps\" in API group \"\" in the namespace \"shop\"\n"),
        ),
    ];
    for (args, want) in cases {
        let err = fails(&bin, &sa, args, None);
        assert_eq!(err, want, "kubectl {args:?}");
    }

    // `kubectl auth can-i` asks with a SelfSubjectAccessReview.
    assert_eq!(
        ok(&bin, &sa, &["auth", "can-i", "list", "configmaps"], None),
        "yes\n"
    );
    let no = kubectl(&bin, &sa, &["auth", "can-i", "create", "configmaps"], None);
    assert!(!no.ok);
    assert_eq!(no.stdout, "no\n");
    assert_eq!(
        ok(
            &bin,
            &sa,
            &[
                "auth",
                "can-i",
                "get",
                "deployments",
                "--subresource",
                "scale"
            ],
            None
        ),
        "yes\n"
    );
    assert_eq!(
        ok(
            &bin,
            admin,
            &["auth", "can-i", "delete", "namespaces"],
            None
        ),
        "yes\n"
    );

    // Granting a rule takes effect at once; a ClusterRoleBinding grants in every namespace.
    emu.apply_yaml(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deploy-reader}
rules:
- {apiGroups: [apps], resources: [deployments], verbs: [list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: deploy-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: deploy-reader}
subjects:
- {kind: Group, name: \"system:serviceaccounts:shop\"}
",
    )
    .expect("cluster role");
    ok(&bin, &sa, &["get", "deployments", "-n", "default"], None);

    // A token dies with its service account; an unknown token is 401.
    ok(
        &bin,
        admin,
        &["delete", "serviceaccount", "canary", "-n", "shop"],
        None,
    );
    let err = fails(&bin, &sa, &["get", "cm"], None);
    assert_eq!(
        err,
        "error: You must be logged in to the server (Unauthorized)\n"
    );
    rt.block_on(emu.shutdown());
}

#[test]
fn leases_are_served_with_resource_version_preconditions() {
    let Some(bin) = kubectl_bin() else { return };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("emulator");
    let kc = emu.kubeconfig_path();
    let lease = "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader, namespace: default}
spec:
  holderIdentity: a
  leaseDurationSeconds: 15
  renewTime: \"2026-01-02T03:04:05.000000Z\"
";
    assert_eq!(
        ok(&bin, kc, &["create", "-f", "-"], Some(lease)),
        "lease.coordination.k8s.io/leader created\n"
    );
    let stored = ok(&bin, kc, &["get", "lease", "leader", "-o", "json"], None);
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "a");
    let rv = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // An update at the version read succeeds; a second one at that (now stale) version is 409.
    let mut next = stored.clone();
    next["spec"]["holderIdentity"] = "b".into();
    let body = serde_json::to_string(&next).unwrap();
    assert_eq!(
        ok(&bin, kc, &["replace", "-f", "-"], Some(&body)),
        "lease.coordination.k8s.io/leader replaced\n"
    );
    let err = fails(&bin, kc, &["replace", "-f", "-"], Some(&body));
    assert_eq!(
        err,
        "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on leases.coordination.k8s.io \"leader\": the object has been modified; please apply your changes to the latest version and try again\n"
    );
    assert_ne!(
        ok(
            &bin,
            kc,
            &[
                "get",
                "lease",
                "leader",
                "-o",
                "jsonpath={.metadata.resourceVersion}"
            ],
            None
        ),
        rv
    );
    assert_eq!(
        ok(
            &bin,
            kc,
            &[
                "get",
                "lease",
                "leader",
                "-o",
                "jsonpath={.spec.holderIdentity}"
            ],
            None
        ),
        "b"
    );
    assert!(ok(
        &bin,
        kc,
        &["api-resources", "--api-group", "coordination.k8s.io"],
        None
    )
    .contains("leases"));
    rt.block_on(emu.shutdown());
}
