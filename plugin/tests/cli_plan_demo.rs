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
