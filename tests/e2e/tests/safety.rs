//! The safety properties of issue 6: requests per step, two operators racing, and a crash at
//! every request of every mutating command.

use canary_e2e::TestCluster;
use kube_emulator::Fault;

/// One step costs: the objects it changes + 1 state write + at most one read per kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_reads_each_kind_once_and_writes_only_what_changed() {
    let Some(c) = TestCluster::start("requests_per_step").await else {
        return;
    };
    let (spec, _) = c.example("bookinfo-reviews.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    c.emulator.audit().clear();
    c.canary(["step", "reviews-v3", "-n", "default"]).success();
    let records = c.emulator.audit().records();
    let mut reads = std::collections::BTreeMap::<String, u32>::new();
    let mut writes = Vec::new();
    for r in &records {
        match r.verb.as_str() {
            "get" | "list" => *reads.entry(r.resource.clone()).or_default() += 1,
            _ => writes.push(format!("{} {}/{}", r.verb, r.resource, r.name)),
        }
    }
    for (kind, n) in &reads {
        assert!(*n <= 1, "{kind} read {n} times: {records:#?}");
    }
    // 50/50 -> 100: only the VirtualService changes, plus the state.
    assert_eq!(
        writes,
        [
            "update configmaps/canary-reviews-v3",
            "patch virtualservices/reviews"
        ],
        "{records:#?}"
    );
}

/// Two operators step the same release at once: exactly one wins; the other is told the
/// release changed under it, exits 3, and applied nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_steps_exactly_one_wins() {
    let Some(c) = TestCluster::start("concurrent_steps").await else {
        return;
    };
    let (spec, _) = c.example("bookinfo-reviews.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    c.emulator.audit().clear();
    // Slow every request down (1 s) so that both read the same resourceVersion even if one
    // process starts late on a loaded machine.
    c.emulator
        .faults()
        .set_latency(std::time::Duration::from_millis(1000));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| c.canary(["step", "reviews-v3", "-n", "default"]));
        let b = s.spawn(|| c.canary(["step", "reviews-v3", "-n", "default"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    c.emulator.faults().clear();
    let codes = [a.code, b.code];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(3)),
        "{a:#?}\n{b:#?}"
    );
    let loser = if a.code == Some(3) { &a } else { &b };
    assert!(
        loser.stderr.contains("changed under you"),
        "{}",
        loser.stderr
    );
    let vs_writes = c
        .emulator
        .audit()
        .records()
        .iter()
        .filter(|r| r.resource == "virtualservices" && r.is_successful_write())
        .count();
    assert_eq!(vs_writes, 1, "the loser must not have applied anything");
}

/// The objects and release state a command leaves, for comparing runs.
fn outcome(c: &TestCluster, ns: &str, release: &str) -> (String, String) {
    let objects = c
        .kubectl
        .run([
            "get",
            "virtualservices,destinationrules,deployments",
            "-n",
            ns,
            "-o",
            "json",
        ])
        .success()
        .json();
    let mut summary = Vec::new();
    for item in objects["items"].as_array().unwrap() {
        let spec = if item["kind"] == "Deployment" {
            serde_json::json!(item["spec"]["template"]["metadata"]["labels"])
        } else {
            item["spec"].clone()
        };
        summary.push(format!(
            "{} {} {}",
            item["kind"], item["metadata"]["name"], spec
        ));
    }
    summary.sort();
    let state = c
        .canary(["get", release, "-n", ns, "-o", "json"])
        .success()
        .json();
    (
        summary.join("\n"),
        format!(
            "{} {} {}",
            state["phase"], state["stage"]["index"], state["roles"]
        ),
    )
}

/// One mutating command under test: the example it runs on, the commands that set the release
/// up, and the command itself (`SPEC` stands for the example's path).
struct Scenario<'a> {
    example: &'a str,
    ns: &'a str,
    release: &'a str,
    setup: &'a [&'a [&'a str]],
    command: &'a [&'a str],
}

/// What the command does uninterrupted, on a cluster of its own.
struct Reference {
    /// Requests the command made.
    requests: usize,
    /// The objects and state it left.
    expected: (String, String),
    /// A second run of the command on that result.
    again: canary_e2e::Run,
}

impl Scenario<'_> {
    /// `words` with `SPEC` replaced by the example's path.
    fn args(&self, words: &[&str]) -> Vec<String> {
        let spec = canary_e2e::workspace_root()
            .join("examples")
            .join(self.example);
        words
            .iter()
            .map(|w| {
                if *w == "SPEC" {
                    spec.to_str().expect("utf-8 path").to_string()
                } else {
                    w.to_string()
                }
            })
            .collect()
    }

    /// A new cluster for test `name` with the example's workloads and the setup done (None:
    /// no kubectl).
    async fn fresh(&self, name: &str) -> Option<TestCluster> {
        let c = TestCluster::start_light(name).await?;
        c.example(self.example);
        for step in self.setup {
            c.canary(self.args(step)).success();
        }
        c.emulator.audit().clear();
        Some(c)
    }

    /// The command run uninterrupted, then once more.
    async fn reference(&self, name: &str) -> Option<Reference> {
        let c = self.fresh(name).await?;
        c.canary(self.args(self.command)).success();
        let requests = c.emulator.audit().records().len();
        let expected = outcome(&c, self.ns, self.release);
        assert!(requests > 1, "{name}: the command made {requests} requests");
        let again = c.canary(self.args(self.command));
        assert_eq!(
            outcome(&c, self.ns, self.release),
            expected,
            "{name}: a second run changed the result"
        );
        Some(Reference {
            requests,
            expected,
            again,
        })
    }
}

/// `start` of the nginx example.
const START: Scenario<'static> = Scenario {
    example: "nginx-weighted.yaml",
    ns: "demo",
    release: "nginx-v2",
    setup: &[],
    command: &["start", "-f", "SPEC"],
};

/// A `step` of bookinfo's reviews to its last stage (Promoted).
const STEP: Scenario<'static> = Scenario {
    example: "bookinfo-reviews.yaml",
    ns: "default",
    release: "reviews-v3",
    setup: &[&["start", "-f", "SPEC"]],
    command: &["step", "reviews-v3", "-n", "default"],
};

/// `promote` of the shop (frontend + backend).
const PROMOTE: Scenario<'static> = Scenario {
    example: "frontend-backend.yaml",
    ns: "default",
    release: "frontend-backend-v2",
    setup: &[&["start", "-f", "SPEC"]],
    command: &["promote", "frontend-backend-v2", "-n", "default"],
};

/// `set-weight 40` of the shop.
const SET_WEIGHT: Scenario<'static> = Scenario {
    example: "frontend-backend.yaml",
    ns: "default",
    release: "frontend-backend-v2",
    setup: &[&["start", "-f", "SPEC"]],
    command: &["set-weight", "frontend-backend-v2", "40", "-n", "default"],
};

/// `abort` of the shop at 40%.
const ABORT: Scenario<'static> = Scenario {
    example: "frontend-backend.yaml",
    ns: "default",
    release: "frontend-backend-v2",
    setup: &[
        &["start", "-f", "SPEC"],
        &["set-weight", "frontend-backend-v2", "40", "-n", "default"],
    ],
    command: &["abort", "frontend-backend-v2", "-n", "default"],
};

/// `finalize` of the promoted nginx example.
const FINALIZE: Scenario<'static> = Scenario {
    example: "nginx-weighted.yaml",
    ns: "demo",
    release: "nginx-v2",
    setup: &[
        &["start", "-f", "SPEC"],
        &["promote", "nginx-v2", "-n", "demo"],
    ],
    command: &["finalize", "nginx-v2", "-n", "demo"],
};

/// `undo` of the finalized nginx example.
const UNDO: Scenario<'static> = Scenario {
    example: "nginx-weighted.yaml",
    ns: "demo",
    release: "nginx-v2",
    setup: &[
        &["start", "-f", "SPEC"],
        &["promote", "nginx-v2", "-n", "demo"],
        &["finalize", "nginx-v2", "-n", "demo"],
    ],
    command: &["undo", "nginx-v2", "-n", "demo"],
};

/// Run `setup`, then `command` with request N failing (500), then `command` again without
/// faults, for every N the command makes; each must converge to the fault-free result, with
/// no intermediate state routing to a missing subset.
async fn crash_matrix(name: &str, s: &Scenario<'_>) {
    let (ns, release, command) = (s.ns, s.release, s.command);
    let Some(reference) = s.reference(name).await else {
        return;
    };
    for n in 1..=reference.requests as u64 {
        let c = s.fresh(name).await.expect("kubectl was there a moment ago");
        c.emulator.faults().add(Fault::nth(n).status(500));
        let crashed = c.canary(s.args(command));
        c.emulator.faults().clear();
        if crashed.code != Some(0) {
            assert!(
                crashed.stderr.starts_with("error: "),
                "{name} N={n}: {}",
                crashed.stderr
            );
        }
        // One rerun converges to the fault-free result: it either finishes what the crashed
        // run wrote to the state, or does the whole command if the state was not written.
        c.canary(s.args(command)).success();
        assert_eq!(
            outcome(&c, ns, release),
            reference.expected,
            "{name}: failing request {n} of {}",
            reference.requests
        );
        c.assert_no_dangling_subsets();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_start() {
    crash_matrix("crash_start", &START).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_step() {
    crash_matrix("crash_step", &STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_finalize() {
    crash_matrix("crash_finalize", &FINALIZE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_undo() {
    crash_matrix("crash_undo", &UNDO).await;
}

/// Run `setup`, then `command` killed with SIGKILL once the server has seen `k` of its
/// requests, for k from 1 to the number the command makes (each request slowed down so the
/// kill lands between two of them); then rerun `command`: it must converge to the
/// uninterrupted result, and no state the server went through may route to a missing subset.
///
/// When the kill came after the command's last write (the state already is the uninterrupted
/// result), the rerun is a second command on that state, not a recovery: `step` on a Promoted
/// release is refused. It must then answer exactly as a second run does on the reference.
async fn sigkill_matrix(name: &str, s: &Scenario<'_>) {
    let (ns, release, command) = (s.ns, s.release, s.command);
    let Some(reference) = s.reference(name).await else {
        return;
    };
    let requests = reference.requests;
    for k in 1..=requests {
        let c = s.fresh(name).await.expect("kubectl was there a moment ago");
        c.emulator
            .faults()
            .set_latency(std::time::Duration::from_millis(40));
        let mut running = c.canary_spawn(s.args(command));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let seen = c.emulator.audit().records().len();
            let exited = running
                .child
                .try_wait()
                .expect("poll the command")
                .is_some();
            if seen >= k || exited {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} k={k}: the command made only {seen} requests"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let killed = running.kill();
        c.emulator.faults().clear();
        assert!(
            killed.code.is_none() || killed.code == Some(0),
            "{name} k={k}: {killed:#?}"
        );
        // (A kill before the record was created leaves no release to compare.)
        let recorded = c.canary(["get", release, "-n", ns]).code == Some(0);
        let done = recorded && outcome(&c, ns, release) == reference.expected;
        let rerun = c.canary(s.args(command));
        if done {
            assert_eq!(
                (rerun.code, rerun.stderr.as_str()),
                (reference.again.code, reference.again.stderr.as_str()),
                "{name}: killed after request {k} of {requests}, with every write made: the rerun answers as a second run"
            );
        } else {
            assert_eq!(
                rerun.code,
                Some(0),
                "{name}: killed after request {k} of {requests}: the rerun failed: {rerun:#?}"
            );
        }
        assert_eq!(
            outcome(&c, ns, release),
            reference.expected,
            "{name}: killed after request {k} of {requests}"
        );
        c.assert_no_dangling_subsets();
        c.assert_record_matches_routing(ns, release);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_matrix_start() {
    sigkill_matrix("sigkill_start", &START).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_matrix_step_and_promote() {
    sigkill_matrix("sigkill_step", &STEP).await;
    sigkill_matrix("sigkill_promote", &PROMOTE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_matrix_set_weight_and_abort() {
    sigkill_matrix("sigkill_set_weight", &SET_WEIGHT).await;
    sigkill_matrix("sigkill_abort", &ABORT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_matrix_finalize_and_undo() {
    sigkill_matrix("sigkill_finalize", &FINALIZE).await;
    sigkill_matrix("sigkill_undo", &UNDO).await;
}
