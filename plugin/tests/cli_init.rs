//! `kubectl-canary init` through the real binary, for what needs no cluster: usage, bad targets,
//! and an unreachable cluster. The scaffolding itself is tested in `spec::scaffold`; live runs
//! against the emulated API server are in tests/e2e.

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
