//! kubectl finds `kubectl-canary` on PATH and dispatches `kubectl canary ...` to it.

use canary_e2e::{skip, Kubectl};

#[test]
fn kubectl_plugin_list_shows_the_plugin() {
    let Some(kubectl) = Kubectl::new() else {
        return skip("kubectl_plugin_list_shows_the_plugin", "no kubectl on PATH");
    };
    let run = kubectl.run(["plugin", "list"]).success();
    assert!(
        run.stdout.lines().any(|l| l.ends_with("/kubectl-canary")),
        "kubectl plugin list:\n{}{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn kubectl_canary_dispatches_to_the_plugin() {
    let Some(kubectl) = Kubectl::new() else {
        return skip(
            "kubectl_canary_dispatches_to_the_plugin",
            "no kubectl on PATH",
        );
    };
    let run = kubectl.run(["canary", "version", "-o", "json"]).success();
    let v = run.json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["policyAbi"], 1);

    let run = kubectl.run(["canary", "--help"]).success();
    assert!(
        run.stdout.contains("Usage: kubectl canary"),
        "{}",
        run.stdout
    );

    // Usage errors keep kubectl's plugin exit code 2 and name the problem.
    let run = kubectl.run(["canary", "no-such-command"]).code(2);
    assert!(
        run.stderr
            .contains("unrecognized subcommand 'no-such-command'"),
        "{}",
        run.stderr
    );
}
