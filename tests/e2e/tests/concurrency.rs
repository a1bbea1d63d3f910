//! Issue 11: several operators acting on one release at once. Every round spawns the commands,
//! holds each one's first request (the record read) at a gate in the emulated API server until
//! all have arrived, releases them together, and then asserts:
//! - every command exits 0, 1 (refused) or 3 (`changed under you`), with one `error:` line;
//! - every exit-0 command's decision is in the release history, exactly as it printed it;
//! - the routing in force equals what the record says (and `get --fail-on-drift` agrees);
//! - no state the server went through routed to a missing subset.

use std::time::{Duration, Instant};

use canary_e2e::{Run, TestCluster};
use kube_emulator::{Fault, Gate};

const RELEASE: &str = "frontend-backend-v2";
const NS: &str = "default";

/// The shop scenario (frontend + backend, seed 004's shape) without the pause, so that every
/// step advances.
fn shop(c: &TestCluster, dir: &tempfile::TempDir) -> String {
    let (path, _) = c.example("frontend-backend.yaml");
    let text = std::fs::read_to_string(path).expect("example");
    assert!(text.contains("      pause: 5m\n"), "the example changed");
    let spec = dir.path().join("shop.yaml");
    std::fs::write(&spec, text.replace("      pause: 5m\n", "")).expect("write spec");
    spec.to_str().expect("utf-8 path").to_string()
}

fn history(c: &TestCluster) -> Vec<serde_json::Value> {
    c.canary(["history", RELEASE, "-n", NS, "-o", "json"])
        .success()
        .json()
        .as_array()
        .expect("history entries")
        .clone()
}

/// Run `commands` released together; return their runs.
fn together(c: &TestCluster, commands: &[Vec<String>]) -> Vec<Run> {
    let gate = Gate::new();
    c.emulator.faults().add(
        Fault::nth(1)
            .verb("get")
            .resource("configmaps")
            .times(commands.len() as u64)
            .gate(gate.clone()),
    );
    let running: Vec<_> = commands.iter().map(|args| c.canary_spawn(args)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while gate.waiting() < commands.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} commands reached the gate",
            gate.waiting(),
            commands.len()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    gate.open();
    let runs = running.into_iter().map(|r| r.wait()).collect();
    c.emulator.faults().clear();
    runs
}

/// The assertions after every round (see the module docs).
#[track_caller]
fn check_round(c: &TestCluster, round: &str, before: usize, runs: &[Run]) {
    let entries = history(c);
    let new = &entries[before.min(entries.len())..];
    let mut decisions = 0;
    let mut superseded = 0;
    for run in runs {
        match run.code {
            Some(0) => {
                let line = run.stdout.lines().next().unwrap_or("");
                let decided = ["advance", "complete", "rollback"]
                    .iter()
                    .any(|a| line.starts_with(&format!("release {RELEASE} {a} → ")));
                if decided {
                    decisions += 1;
                    let found = new.iter().any(|h| {
                        line.starts_with(&format!(
                            "release {RELEASE} {} → stage {} (",
                            h["action"].as_str().unwrap_or(""),
                            h["stage"]
                        )) && line.ends_with(&format!(": {}", h["reason"].as_str().unwrap_or("")))
                    });
                    assert!(
                        found,
                        "{round}: `{}` exited 0 with a decision the history lacks:\n{line}\nhistory: {new:#?}",
                        run.command
                    );
                }
            }
            Some(1) | Some(3) => {
                assert_eq!(
                    run.stderr.lines().count(),
                    1,
                    "{round}: `{}`: {}",
                    run.command,
                    run.stderr
                );
                assert!(run.stderr.starts_with("error: "), "{round}: {}", run.stderr);
                if run.code == Some(3) {
                    assert!(
                        run.stderr
                            .starts_with(&format!("error: release {RELEASE} changed under you (")),
                        "{round}: {}",
                        run.stderr
                    );
                    if run
                        .stderr
                        .contains("was recorded while this command applied")
                    {
                        superseded += 1;
                    }
                }
            }
            other => panic!("{round}: `{}` exited {other:?}:\n{run:#?}", run.command),
        }
    }
    assert!(
        new.len() <= decisions + superseded && new.len() >= decisions,
        "{round}: {} new history entries for {decisions} exit-0 decisions ({superseded} superseded): {new:#?}\n{runs:#?}",
        new.len()
    );
    c.assert_record_matches_routing(NS, RELEASE);
    c.canary(["get", RELEASE, "-n", NS, "--fail-on-drift"])
        .success();
    c.assert_no_dangling_subsets();
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Abort (if running) and start again: a release at stage 0, history fresh, and the
/// workloads a finalize deleted put back.
fn restart(c: &TestCluster, spec: &str) {
    let _ = c.canary(["abort", RELEASE, "-n", NS]);
    c.example("frontend-backend.yaml");
    c.canary(["start", "-f", spec]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_steps_2_4_8_keep_record_and_routing_equal() {
    let Some(c) = TestCluster::start_light("concurrent_steps_matrix").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = shop(&c, &dir);
    c.canary(["start", "-f", &spec]).success();
    for (n, rounds) in [(2, 3), (4, 3), (8, 2)] {
        for round in 0..rounds {
            restart(&c, &spec);
            // Odd rounds race from stage 1, even ones from stage 0.
            if round % 2 == 1 {
                c.canary(["step", RELEASE, "-n", NS]).success();
            }
            let before = history(&c).len();
            c.emulator.audit().clear();
            let step = args(&["step", RELEASE, "-n", NS]);
            let runs = together(&c, &vec![step; n]);
            let winners = runs.iter().filter(|r| r.code == Some(0)).count();
            assert!(
                winners >= 1,
                "{n} steps, round {round}: none won: {runs:#?}"
            );
            check_round(&c, &format!("{n} steps, round {round}"), before, &runs);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails on main (issue 11 open): after a mixed round ending Promoted, get --fail-on-drift reports drift; the engine does not yet converge it"]
async fn mixed_commands_released_together_keep_record_and_routing_equal() {
    let Some(c) = TestCluster::start_light("concurrent_mixed_matrix").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = shop(&c, &dir);
    c.canary(["start", "-f", &spec]).success();
    let all = [
        args(&["step", RELEASE, "-n", NS]),
        args(&["promote", RELEASE, "-n", NS]),
        args(&["abort", RELEASE, "-n", NS]),
        args(&["set-weight", RELEASE, "30", "-n", NS]),
        args(&["finalize", RELEASE, "-n", NS]),
        args(&["undo", RELEASE, "-n", NS]),
    ];
    // From Progressing (stage 1), from Promoted, and from Finalized.
    let setups: [&[&[&str]]; 3] = [
        &[&["step", RELEASE, "-n", NS]],
        &[&["promote", RELEASE, "-n", NS]],
        &[
            &["promote", RELEASE, "-n", NS],
            &["finalize", RELEASE, "-n", NS],
        ],
    ];
    for (s, setup) in setups.iter().enumerate() {
        for round in 0..2 {
            restart(&c, &spec);
            for words in *setup {
                c.canary(*words).success();
            }
            let before = history(&c).len();
            c.emulator.audit().clear();
            // Rotate the order the processes are spawned in.
            let mut commands = all.to_vec();
            commands.rotate_left(round * 2 + s);
            let runs = together(&c, &commands);
            check_round(&c, &format!("setup {s}, round {round}"), before, &runs);
        }
    }
    // The reported case: from Promoted, `finalize & abort & step & finalize`.
    restart(&c, &spec);
    c.canary(["promote", RELEASE, "-n", NS]).success();
    let before = history(&c).len();
    c.emulator.audit().clear();
    let runs = together(
        &c,
        &[
            args(&["finalize", RELEASE, "-n", NS]),
            args(&["abort", RELEASE, "-n", NS]),
            args(&["step", RELEASE, "-n", NS]),
            args(&["finalize", RELEASE, "-n", NS]),
        ],
    );
    check_round(&c, "finalize & abort & step & finalize", before, &runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_set_weights_are_each_applied_or_refused() {
    let Some(c) = TestCluster::start_light("concurrent_set_weight").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = shop(&c, &dir);
    c.canary(["start", "-f", &spec]).success();
    for round in 0..2 {
        restart(&c, &spec);
        let before = history(&c).len();
        c.emulator.audit().clear();
        let commands: Vec<Vec<String>> = ["10", "30", "50", "70"]
            .iter()
            .map(|w| args(&["set-weight", RELEASE, w, "-n", NS]))
            .collect();
        let runs = together(&c, &commands);
        for run in &runs {
            if run.code == Some(0) {
                let line = run.stdout.lines().next().unwrap_or("");
                assert!(
                    line.starts_with(&format!("release {RELEASE} advance → ")),
                    "round {round}: an exit-0 set-weight must have applied its weight: {run:#?}"
                );
            }
        }
        check_round(&c, &format!("set-weight round {round}"), before, &runs);
    }
}
