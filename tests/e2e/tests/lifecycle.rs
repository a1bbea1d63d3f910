//! Life-cycle coverage: dry runs change nothing, abort, and bad input.

use canary_e2e::TestCluster;

/// Successful writes that were not server-side dry runs.
fn real_writes(c: &TestCluster) -> Vec<String> {
    c.emulator
        .audit()
        .records()
        .iter()
        .filter(|r| r.is_successful_write() && !r.path.contains("dryRun"))
        .map(|r| format!("{} {} {}/{}", r.verb, r.path, r.resource, r.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_of_start_change_nothing() {
    let Some(c) = TestCluster::start("dry_run_start").await else {
        return;
    };
    let (spec, _) = c.example("bookinfo-reviews.yaml");
    let spec = spec.to_str().unwrap();
    for mode in ["--dry-run=client", "--dry-run=server"] {
        for output in [None, Some("yaml"), Some("json")] {
            c.emulator.audit().clear();
            let mut args = vec!["start", "-f", spec, mode];
            if let Some(o) = output {
                args.extend(["-o", o]);
            }
            let run = c.canary(args.clone()).success();
            assert_eq!(real_writes(&c), Vec::<String>::new(), "{args:?}: {run:#?}");
            if output == Some("yaml") {
                assert!(
                    run.stdout.contains("kind: VirtualService"),
                    "{}",
                    run.stdout
                );
            }
            if output == Some("json") {
                serde_json::from_str::<serde_json::Value>(&run.stdout)
                    .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", run.stdout));
            }
        }
    }
    assert!(!c.exists("virtualservices", "default", "reviews"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_returns_traffic_to_stable_and_step_is_refused() {
    let Some(c) = TestCluster::start("abort").await else {
        return;
    };
    let (spec, _) = c.example("bookinfo-reviews.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    c.canary(["abort", "reviews-v3", "-n", "default"]).success();
    let weights = c.default_weights("default", "reviews");
    assert_eq!(weights.len(), 1, "{weights:?}");
    assert_eq!(weights[0].1, 100, "{weights:?}");
    c.assert_no_dangling_subsets();
    let step = c.canary(["step", "reviews-v3", "-n", "default"]).code(1);
    assert!(step.stderr.starts_with("error: "), "{}", step.stderr);
    assert!(
        step.stderr.contains("Aborted") || step.stderr.contains("aborted"),
        "{}",
        step.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_release_is_not_found_in_namespace() {
    let Some(c) = TestCluster::start_light("unknown_release").await else {
        return;
    };
    let run = c.canary(["step", "no-such-release", "-n", "default"]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stderr.contains("not found in namespace"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_spec_sends_no_write() {
    let Some(c) = TestCluster::start_light("bad_spec").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: canary.dev/v1\nkind: Release\nmetadata: [\n",
    )
    .unwrap();
    c.emulator.audit().clear();
    let run = c.canary(["start", "-f", path.to_str().unwrap()]).code(1);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(
        c.emulator.audit().records().is_empty(),
        "nothing may be sent"
    );
}
