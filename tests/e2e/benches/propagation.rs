//! Issue 13: what confirming propagation costs a step. The same `kubectl canary set-weight`
//! (one VirtualService changed) as cold processes against one emulated cluster whose istiod
//! status writer is instant, alternating `--wait-propagation=always` and `never` side by side,
//! then against proxies that take 200ms. Prints medians, the ratio, and the requests per step.

use std::time::{Duration, Instant};

use canary_e2e::propagation::start_propagating;
use canary_e2e::TestCluster;
use kube_emulator::Propagation;

const ROUNDS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One timed `set-weight` with `mode`, and the requests it made.
fn step(c: &TestCluster, weight: u32, mode: &str) -> (Duration, usize) {
    c.emulator.audit().clear();
    let t = Instant::now();
    c.canary([
        "set-weight",
        "reviews-v3",
        &weight.to_string(),
        "-n",
        "default",
        &format!("--wait-propagation={mode}"),
    ])
    .success();
    let elapsed = t.elapsed();
    let requests = c
        .emulator
        .audit()
        .records()
        .iter()
        .filter(|r| r.user_agent.starts_with("kubectl-canary"))
        .count();
    (elapsed, requests)
}

async fn cluster(name: &str, delay: Duration) -> Option<TestCluster> {
    let c = start_propagating(name, Some(Propagation::after(delay))).await?;
    let (spec, _) = c.example("bookinfo-reviews.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    Some(c)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(c) = cluster("bench_propagation", Duration::ZERO).await else {
        return;
    };
    let (mut wait, mut skip) = (Vec::new(), Vec::new());
    let (mut wait_requests, mut skip_requests) = (0, 0);
    for round in 0..ROUNDS {
        let w = 10 + (round as u32 % 8) * 10;
        let (t, n) = step(&c, w, "always");
        wait.push(t);
        wait_requests = n;
        let (t, n) = step(&c, w + 5, "never");
        skip.push(t);
        skip_requests = n;
    }
    let (wait, skip) = (median(wait), median(skip));
    println!(
        "propagation already complete, {ROUNDS} rounds side by side (median of cold processes):\n  \
         step waiting:     {:.1} ms, {wait_requests} requests\n  \
         step not waiting: {:.1} ms, {skip_requests} requests\n  \
         ratio {:.2}, {} extra request(s) for 1 changed object",
        ms(wait),
        ms(skip),
        wait.as_secs_f64() / skip.as_secs_f64(),
        wait_requests as i64 - skip_requests as i64
    );

    let Some(slow) = cluster("bench_propagation_200ms", Duration::from_millis(200)).await else {
        return;
    };
    let (mut wait, mut skip) = (Vec::new(), Vec::new());
    for round in 0..5 {
        let w = 10 + (round as u32 % 8) * 10;
        wait.push(step(&slow, w, "always").0);
        skip.push(step(&slow, w + 5, "never").0);
        // Untimed: let the unconfirmed change land before the next waiting step is timed.
        step(&slow, w, "always");
    }
    let (wait, skip) = (median(wait), median(skip));
    println!(
        "proxies taking 200ms, 5 rounds:\n  step waiting: {:.1} ms\n  step not waiting: {:.1} ms\n  ratio {:.2}",
        ms(wait),
        ms(skip),
        wait.as_secs_f64() / skip.as_secs_f64()
    );
}
