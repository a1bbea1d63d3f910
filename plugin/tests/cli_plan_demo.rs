//! `plan` and `demo` through the real binary.

mod support;

use std::path::Path;

use serde_json::Value;
use support::TestCommand;

/// `kubectl-canary <args>` in the repository root: (exit code, stdout, stderr).
fn canary(args: &[&str]) -> (Option<i32>, String, String) {
    let run = TestCommand::new(args).in_repo().run();
    (run.code, run.stdout, run.stderr)
}

#[test]
fn plan_json_lists_every_stage_of_seed_004() {
    let (code, stdout, stderr) =
        canary(&["plan", "-f", "examples/frontend-backend.yaml", "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let stages = plan["stages"].as_array().unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["testers", "10%", "50%", "100%"]);
    let actions: Vec<&str> = stages
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["advance", "advance", "advance", "complete"]);
    // Stage 1: testers by header, then 90/10 for everyone else.
    let frontend = stages[1]["services"]["frontend"].as_array().unwrap();
    assert_eq!(frontend.len(), 2);
    assert_eq!(
        frontend[0]["destinations"],
        serde_json::json!([{"subset": "v2", "percent": 100.0}])
    );
    assert_eq!(
        frontend[1]["destinations"],
        serde_json::json!([{"subset": "v1", "percent": 90.0}, {"subset": "v2", "percent": 10.0}])
    );
    assert!(frontend[1]["match"].is_null());
    // The backend is chained: the canary of another release service (rendered as frontend's
    // app and canary version, not any v2 workload) reaches v2.
    let backend = stages[1]["services"]["backend"].as_array().unwrap();
    assert_eq!(
        backend[0]["match"],
        serde_json::json!(["caller is another service's canary"])
    );
}

#[test]
fn plan_yaml_prints_the_objects_of_every_stage() {
    let (code, stdout, stderr) =
        canary(&["plan", "-f", "examples/bookinfo-reviews.yaml", "-o", "yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.matches("# stage ").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("kind: VirtualService").count(), 2);
    assert_eq!(stdout.matches("kind: DestinationRule").count(), 2);
}

#[test]
fn plan_refuses_a_bad_spec_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo-reviews.yaml"),
    )
    .unwrap()
    .replace("steps: [50, 100]", "steps: [50, 150]");
    std::fs::write(&spec, text).unwrap();
    let (code, _, stderr) = canary(&["plan", "-f", spec.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("spec.policy.config.steps[1]"), "{stderr}");
}

#[test]
fn demo_runs_the_voting_release_to_the_end() {
    let (code, stdout, stderr) = canary(&["demo", "--requests", "100"]);
    assert_eq!(code, Some(0), "{stderr}");
    for stage in [
        "stage 0 (testers)",
        "stage 1 (20%)",
        "stage 2 (50%)",
        "stage 3 (100%)",
        "Finalized",
    ] {
        assert!(stdout.contains(stage), "{stage} missing:\n{stdout}");
    }
    // At stage 0 testers reach 2.0 all the way down; users stay on 1.x.
    let stage0 = stdout.split("━━ stage 1").next().unwrap();
    assert!(
        stage0
            .contains("testers     10  voting-app 2.0 → voting-analytics 2.0 → voting-storage 2.0"),
        "{stage0}"
    );
    assert!(
        stage0
            .contains("users       90  voting-app 1.0 → voting-analytics 1.1 → voting-storage 1.0"),
        "{stage0}"
    );
    // Nothing ever lands on a mixed chain or fails.
    assert!(
        !stdout.contains("404") && !stdout.contains("503"),
        "{stdout}"
    );
    for line in stdout.lines().filter(|l| l.contains("voting-app 2.0")) {
        assert!(
            !line.contains("1.1") && !line.contains("storage 1.0"),
            "mixed chain: {line}"
        );
    }
}

#[test]
fn demo_rollback_breaks_the_success_rate_gate_at_50_percent() {
    let (code, stdout, stderr) = canary(&["demo", "--scenario", "rollback", "--requests", "100"]);
    assert_eq!(code, Some(0), "{stderr}");
    // 20%: the canaries are healthy, the gate passes.
    assert!(
        stdout.contains(
            "━━ stage 1 (20%) — advance: metrics within thresholds; stage 0 -> 1 (20%)\n"
        ),
        "{stdout}"
    );
    // 50%: voting-storage 2.0 takes more than half of its traffic and fails 7% of it; the next
    // check rolls back, quoting the number and the threshold.
    let rollback = "rollback: success-rate 93 < 99 (min) for the canary of voting-storage: 1 \
                    failed check in a row, more than failureLimit 0; rolling back";
    assert!(
        stdout.contains(&format!("━━ stage 2 (rollback) — {rollback}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  canary metrics: success-rate voting-analytics 99.9 voting-app 99.9 voting-storage 93\n"
        ),
        "{stdout}"
    );
    let after = stdout.split("━━ stage 2 (rollback)").nth(1).unwrap();
    assert!(
        after
            .contains("users       90  voting-app 1.0 → voting-analytics 1.1 → voting-storage 1.0"),
        "{after}"
    );
    assert!(!stdout.contains("stage 3 (100%)"), "{stdout}");
    assert!(!stdout.contains("Finalized"), "{stdout}");
}

/// `examples/frontend-backend.yaml` with `config` added to its policy config and `analysis`
/// appended, written to a temporary file.
fn frontend_backend_with(config: &str, analysis: &str) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/frontend-backend.yaml"),
    )
    .unwrap();
    let text = text.replace("      pause: 5m\n", &format!("      pause: 5m\n{config}")) + analysis;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

const SUCCESS_RATE: &str = "  analysis:\n    prometheus: {address: \"http://prometheus:9090\"}\n    metrics:\n      - {name: success-rate, template: request-success-rate}\n";

#[test]
fn plan_counts_passing_checks_and_assumes_approvals() {
    let spec = frontend_backend_with(
        "      thresholds: [{metric: success-rate, min: 99}]\n      successes: 2\n      approveBefore: [100]\n",
        SUCCESS_RATE,
    );
    let (code, stdout, stderr) =
        canary(&["plan", "-f", spec.path().to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let reasons: Vec<&str> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "start: stage 0 (testers)",
            "metrics within thresholds (check 2 of 2 passed); stage 0 -> 1 (10%)",
            "metrics within thresholds (check 2 of 2 passed); stage 1 -> 2 (50%)",
            "metrics within thresholds (check 2 of 2 passed); stage 2 -> 3 (100%)",
        ]
    );
}

#[test]
fn a_threshold_on_a_metric_the_analysis_lacks_is_refused_naming_the_field() {
    let spec = frontend_backend_with(
        "      thresholds: [{metric: success-rate, min: 99}, {metric: latency-p99, max: 500}]\n",
        SUCCESS_RATE,
    );
    let (code, _, stderr) = canary(&["plan", "-f", spec.path().to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: the policy refused to start: config.thresholds[1].metric: no metric \"latency-p99\" in spec.analysis (its metrics: success-rate)\n"
    );
}
