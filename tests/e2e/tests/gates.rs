//! Gates through kubectl: webhooks (gating and told), pause and resume, and `why --replay`.

use std::path::{Path, PathBuf};

use canary_e2e::webhook::Webhook;
use canary_e2e::TestCluster;

/// The shop release (frontend + backend, testers first, no pause) with `hooks` appended.
fn shop_with_hooks(c: &TestCluster, dir: &Path, hooks: &str) -> PathBuf {
    let spec = c.shop_without_pause(dir);
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str("  hooks:\n");
    text.push_str(hooks);
    std::fs::write(&spec, text).unwrap();
    spec
}

fn record(c: &TestCluster) -> serde_json::Value {
    let cm = c.get("configmaps", "default", "canary-frontend-backend-v2");
    serde_json::from_str(cm["data"]["state.json"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pre_step_gate_holds_until_it_opens_and_event_hooks_are_told() {
    let Some(c) = TestCluster::start("pre_step_gate").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let spec = shop_with_hooks(
        &c,
        dir.path(),
        &format!(
            "    - {{name: freeze, url: \"{}\", on: [pre-step]}}\n    - {{name: freeze-promote, url: \"{}\", on: [pre-promote]}}\n    - {{name: audit, url: \"{}\", on: [event]}}\n",
            hook.url("freeze"),
            hook.url("promote-gate"),
            hook.url("audit")
        ),
    );
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    hook.answer("freeze", 503, "change freeze until Monday");
    let held = c.canary(["step", "frontend-backend-v2"]).success();
    assert_eq!(
        held.stdout,
        "release frontend-backend-v2 hold → stage 0 (testers), Progressing: gate freeze (pre-step) is closed: 503 Service Unavailable: change freeze until Monday\n"
    );
    assert_eq!(
        c.default_weights("default", "frontend"),
        [("v1".to_string(), 100)]
    );
    // The hold is recorded with the gate it was taken on.
    let state = record(&c);
    let last = &state["history"][1];
    assert_eq!(last["action"], "hold");
    assert_eq!(last["gates"]["freeze"]["open"], false);
    hook.answer("freeze", 200, "");
    let advanced = c.canary(["step", "frontend-backend-v2"]).success();
    assert!(
        advanced.stdout.starts_with("release frontend-backend-v2 advance → stage 1 (10%), Progressing: stage 0 -> 1 (10%)\n"),
        "{}",
        advanced.stdout
    );
    // Each step also asks the pre-promote gate (a step may complete the release), at the same
    // time as the pre-step one.
    let received: Vec<(String, serde_json::Value)> = hook
        .received()
        .into_iter()
        .filter(|(p, _)| p != "/promote-gate")
        .collect();
    let paths: Vec<&str> = received.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/audit", "/freeze", "/audit", "/freeze", "/audit"],
        "start told audit; each step asked freeze, then told audit"
    );
    let promote_gate = hook
        .received()
        .iter()
        .filter(|(p, _)| p == "/promote-gate")
        .count();
    assert_eq!(promote_gate, 2);
    // `promote` is the operator's, but a closed pre-promote gate still stops it: the host
    // refuses before the policy is asked.
    hook.answer("promote-gate", 403, "release train closed");
    let refused = c.canary(["promote", "frontend-backend-v2"]).code(1);
    assert_eq!(
        refused.stderr,
        "error: promote held: gate freeze-promote (pre-promote) is closed: 403 Forbidden: release train closed; nothing applied\n"
    );
    assert_eq!(record(&c)["phase"], "Progressing");
    let (_, asked) = &received[1];
    assert_eq!(asked["release"], "frontend-backend-v2");
    assert_eq!(asked["namespace"], "default");
    assert_eq!(asked["hook"], "freeze");
    assert_eq!(asked["on"], "pre-step");
    assert_eq!(asked["event"], "step");
    assert_eq!(asked["phase"], "Progressing");
    assert_eq!(
        asked["stage"],
        serde_json::json!({"index": 0, "name": "testers"})
    );
    assert_eq!(asked["lastDecision"]["action"], "advance");
    let (_, told) = &received[4];
    assert_eq!(told["on"], "event");
    assert_eq!(told["stage"]["index"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_start_gate_that_times_out_stops_the_start_before_anything_is_created() {
    let Some(c) = TestCluster::start("pre_start_gate").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    hook.answer_after("ticket", std::time::Duration::from_secs(3));
    let spec = shop_with_hooks(
        &c,
        dir.path(),
        &format!(
            "    - {{name: ticket, url: \"{}\", on: [pre-start], timeout: 1s}}\n",
            hook.url("ticket")
        ),
    );
    let run = c.canary(["start", "-f", spec.to_str().unwrap()]).code(1);
    assert_eq!(
        run.stderr,
        "error: start held: gate ticket (pre-start) is closed: timed out after 1s; nothing applied\n"
    );
    assert!(!c.exists("configmaps", "default", "canary-frontend-backend-v2"));
    assert!(!c.exists("virtualservices", "default", "frontend"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_step_and_run_until_resume_and_records_who() {
    let Some(c) = TestCluster::start("pause_resume").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = c.shop_without_pause(dir.path());
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    let paused = c.canary(["pause", "frontend-backend-v2"]).success();
    assert_eq!(
        paused.stdout,
        "release frontend-backend-v2 hold → stage 0 (testers), Paused: paused by kube-emulator\n"
    );
    let state = record(&c);
    assert_eq!(state["phase"], "Paused");
    assert_eq!(state["paused"]["by"], "kube-emulator");
    let refused = c.canary(["step", "frontend-backend-v2"]).code(1);
    let at = state["paused"]["at"].as_str().unwrap();
    assert_eq!(
        refused.stderr,
        format!("error: release \"frontend-backend-v2\" is paused by kube-emulator since {at}: `kubectl canary resume frontend-backend-v2` lets it go on\n")
    );
    // `run` waits on a paused release instead of advancing it (and gives up after
    // --max-unchanged unchanged looks).
    let run = c
        .canary([
            "run",
            "frontend-backend-v2",
            "--no-wait",
            "--max-unchanged",
            "3",
        ])
        .code(1);
    assert!(
        run.stderr.starts_with("error: release frontend-backend-v2 made no progress in 3 consecutive decisions (the last: paused by kube-emulator since"),
        "{}",
        run.stderr
    );
    let get = c
        .canary(["get", "frontend-backend-v2", "--color=never"])
        .success();
    assert!(
        get.stdout
            .contains(&format!("paused by kube-emulator at {at}\n")),
        "{}",
        get.stdout
    );
    assert_eq!(
        c.default_weights("default", "frontend"),
        [("v1".to_string(), 100)]
    );
    let resumed = c.canary(["resume", "frontend-backend-v2"]).success();
    assert_eq!(
        resumed.stdout,
        format!("release frontend-backend-v2 hold → stage 0 (testers), Progressing: resumed by kube-emulator (paused by kube-emulator at {at})\n")
    );
    c.canary(["run", "frontend-backend-v2", "--no-wait"])
        .success();
    assert_eq!(record(&c)["phase"], "Promoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_shows_a_decision_and_replay_gives_the_same_answer_or_the_difference() {
    let Some(c) = TestCluster::start("why_replay").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = c.shop_without_pause(dir.path());
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    c.canary(["step", "frontend-backend-v2"]).success();
    let why = c
        .canary(["why", "frontend-backend-v2", "--replay"])
        .success();
    let state = record(&c);
    let kept = &state["decisions"][1];
    let expected = format!(
        "decision 1 of release frontend-backend-v2 (the newest is 1; inputs kept for the last 10)\n\
         INPUT\n\
         event     step\n\
         time      {now}\n\
         stage     0 in force since {since}, phase Progressing\n\
         history   1 earlier decisions shown to the policy\n\
         metrics: none (the release has no analysis)\n\
         answer: advance → stage 1 (10%): stage 0 -> 1 (10%)\n\
         module: sha256 {module}\n\
         replay: the same answer from progressive@sha256:{short} (output sha256 {out})\n",
        now = kept["now"].as_str().unwrap(),
        since = kept["state"]["stageStartedAt"].as_str().unwrap(),
        module = kept["moduleSha256"].as_str().unwrap(),
        short = &kept["moduleSha256"].as_str().unwrap()[..12],
        out = &kept["outputSha256"].as_str().unwrap()[..12],
    );
    assert_eq!(why.stdout, expected);
    // Another module on the same input: the difference, and that the module changed.
    let other = c
        .canary([
            "why",
            "frontend-backend-v2",
            "--decision",
            "0",
            "--replay",
            "--module",
            "builtin:business-hours",
            "-o",
            "json",
        ])
        .success()
        .json();
    assert_eq!(other["decision"], 0);
    assert_eq!(other["input"]["event"], "start");
    assert_eq!(other["output"]["action"], "advance");
    assert_eq!(other["replay"]["same"], false);
    assert_eq!(
        other["replay"]["module"]
            .as_str()
            .unwrap()
            .split('@')
            .next(),
        Some("business-hours")
    );
    let missing = c
        .canary(["why", "frontend-backend-v2", "--decision", "7"])
        .code(1);
    assert_eq!(
        missing.stderr,
        "error: decision 7 of release frontend-backend-v2 is not kept: the record keeps the whole input of the last 10 decisions (decisions 0–1); `kubectl canary history frontend-backend-v2` shows every decision's reason\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_before_waits_for_a_person_and_records_who() {
    let Some(c) = TestCluster::start("approve").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = c.shop_without_pause(dir.path());
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace(
            "      steps: [10, 50, 100]\n",
            "      steps: [10, 50, 100]\n      approveBefore: [100]\n",
        ),
    )
    .unwrap();
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    c.canary(["step", "frontend-backend-v2"]).success();
    c.canary(["step", "frontend-backend-v2"]).success();
    let waiting = c.canary(["step", "frontend-backend-v2"]).success();
    assert_eq!(
        waiting.stdout,
        "release frontend-backend-v2 hold → stage 2 (50%), Progressing: waiting for approval of stage 3 (100%): kubectl canary approve frontend-backend-v2 --stage 3\n"
    );
    let early = c
        .canary(["approve", "frontend-backend-v2", "--stage", "1"])
        .code(1);
    assert_eq!(
        early.stderr,
        "error: stage 1 is not ahead of the stage in force (2, 50%); approve a later stage\n"
    );
    let approved = c.canary(["approve", "frontend-backend-v2"]).success();
    assert_eq!(
        approved.stdout,
        "release frontend-backend-v2 hold → stage 2 (50%), Progressing: stage 3 approved by kube-emulator\n"
    );
    let state = record(&c);
    assert_eq!(state["approvals"][0]["stage"], 3);
    assert_eq!(state["approvals"][0]["by"], "kube-emulator");
    let get = c
        .canary(["get", "frontend-backend-v2", "--color=never"])
        .success();
    let at = state["approvals"][0]["at"].as_str().unwrap();
    assert!(
        get.stdout
            .contains(&format!("stage 3 approved by kube-emulator at {at}\n")),
        "{}",
        get.stdout
    );
    let done = c.canary(["step", "frontend-backend-v2"]).success();
    assert!(
        done.stdout.starts_with("release frontend-backend-v2 complete → stage 3 (100%), Promoted: stage 2 -> 3 (100%)\n"),
        "{}",
        done.stdout
    );
}
