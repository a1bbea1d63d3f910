//! `kubectl canary rbac` prints the least Role: every life-cycle command passes with exactly
//! that Role (a service account's token, RBAC enforced by the emulator), and with any one verb
//! removed, the command that needs it fails with one `error:` line naming verb and resource.

use std::path::Path;

use canary_e2e::{Kubectl, TestCluster};
use kubectl_canary::cluster::rbac::{Rule, OPERATOR};

const NS: &str = "shop";
const USER: &str = "system:serviceaccount:shop:operator";

const SPEC: &str = "apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {name: web-v2, namespace: shop}
spec:
  services:
    - name: web
      stable: {version: v1}
      canary: {version: v2, image: \"web:2\"}
  policy:
    module: builtin:progressive
    config: {steps: [20, 50, 100]}
  mtls: strict
";

/// Every command of the life cycle, in an order that is valid end to end.
const COMMANDS: &[&[&str]] = &[
    &["start", "-f", "SPEC"],
    &["step", "web-v2"],
    &["set-weight", "web-v2", "30"],
    &["get", "web-v2"],
    &["list"],
    &["history", "web-v2"],
    &["run", "web-v2", "--detach"],
    &["run", "web-v2", "--attach"],
    &["promote", "web-v2"],
    &["finalize", "web-v2"],
    &["undo", "web-v2"],
    &["abort", "web-v2"],
];

/// A cluster with the release's workloads and an `operator` service account bound to a Role
/// with `rules` (as YAML); kubectl authenticated as that account.
async fn cluster_with_role(
    test: &str,
    role_yaml: &str,
    dir: &Path,
) -> Option<(TestCluster, Kubectl)> {
    let c = TestCluster::start_light(test).await?;
    let spec_path = dir.join("web-v2.yaml");
    std::fs::write(&spec_path, SPEC).unwrap();
    let spec = kubectl_canary::spec::load_file(&spec_path).expect("spec");
    for object in kubectl_canary::demo::workloads::workloads_for(&spec) {
        c.emulator
            .apply_yaml(&serde_yaml::to_string(&object).unwrap())
            .expect("workload");
    }
    c.kubectl
        .run_with_stdin(["apply", "-f", "-"], role_yaml)
        .success();
    c.emulator
        .apply_yaml(
            "apiVersion: v1
kind: ServiceAccount
metadata: {name: operator, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: operator, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: kubectl-canary}
subjects:
- {kind: ServiceAccount, name: operator, namespace: shop}
",
        )
        .expect("service account");
    let token = c.emulator.service_account_token(NS, "operator").unwrap();
    let kubeconfig = dir.join("operator.kubeconfig");
    c.emulator
        .write_kubeconfig_with_token(&kubeconfig, &token, NS)
        .unwrap();
    let operator = c.kubectl.clone().kubeconfig(kubeconfig);
    Some((c, operator))
}

/// Runs the life cycle as the operator; the first failing command and its run, if any.
fn life_cycle(operator: &Kubectl, dir: &Path) -> Option<(String, canary_e2e::Run)> {
    let spec = dir.join("web-v2.yaml");
    for command in COMMANDS {
        let mut args = vec!["canary".to_string()];
        args.extend(command.iter().map(|a| {
            if *a == "SPEC" {
                spec.display().to_string()
            } else {
                a.to_string()
            }
        }));
        let run = operator.run(&args);
        if run.code != Some(0) {
            return Some((command.join(" "), run));
        }
    }
    None
}

fn role_without(rule: usize, verb: &str) -> String {
    let rules: Vec<Rule> = OPERATOR
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            if i != rule {
                return Some(*r);
            }
            let verbs: Vec<&'static str> = r.verbs.iter().copied().filter(|v| *v != verb).collect();
            (!verbs.is_empty()).then(|| Rule {
                verbs: Box::leak(verbs.into_boxed_slice()),
                ..*r
            })
        })
        .collect();
    kubectl_canary::cluster::rbac::role_yaml("kubectl-canary", NS, &rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_role_is_enough_and_each_verb_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    // The Role exactly as printed.
    let Some(probe) = TestCluster::start_light("rbac_printed").await else {
        return;
    };
    let printed = probe.canary(["rbac", "-n", NS]).success().stdout;
    assert_eq!(
        printed,
        kubectl_canary::cluster::rbac::role_yaml("kubectl-canary", NS, OPERATOR)
    );
    drop(probe);
    let (_c, operator) = cluster_with_role("rbac_printed", &printed, dir.path())
        .await
        .expect("cluster");
    if let Some((command, run)) = life_cycle(&operator, dir.path()) {
        panic!("`kubectl canary {command}` failed with exactly the printed Role:\n{run:#?}");
    }

    // Each verb removed in turn: a command fails, saying which verb on which resource.
    for (i, rule) in OPERATOR.iter().enumerate() {
        for verb in rule.verbs {
            let dir = tempfile::tempdir().unwrap();
            let (_c, operator) =
                cluster_with_role("rbac_minus_one", &role_without(i, verb), dir.path())
                    .await
                    .expect("cluster");
            let Some((command, run)) = life_cycle(&operator, dir.path()) else {
                panic!(
                    "no command needs {verb} on {}: the Role is not the least",
                    rule.resource
                );
            };
            assert_eq!(run.code, Some(1), "`{command}`: {run:#?}");
            let want = format!(
                "is forbidden: User \"{USER}\" cannot {verb} resource \"{}\" in API group \"{}\" in the namespace \"shop\" (missing RBAC permission: `kubectl canary rbac` prints the Role the commands need; check yours with `kubectl auth can-i`)\n",
                rule.resource, rule.group
            );
            assert!(
                run.stderr.starts_with("error: ")
                    && run.stderr.ends_with(&want)
                    && run.stderr.lines().count() == 1,
                "without {verb} {}: `kubectl canary {command}` said:\n{}",
                rule.resource,
                run.stderr
            );
        }
    }
}
