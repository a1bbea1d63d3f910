//! Wall time of `kubectl canary step` against `kubectl apply --server-side -f` of the same
//! rendered objects, both as cold processes against the same emulated cluster; the median of
//! a few rounds, and the ratio.
//!
//! `STEP_VS_APPLY_BASELINE=/path/to/an/older/kubectl-canary` measures that binary too, in the
//! same run on a cluster of its own, so a change can be compared side by side with the build it
//! replaces.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canary_e2e::TestCluster;

const ROUNDS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(current) = TestCluster::start("bench_step_vs_apply").await else {
        return;
    };
    let (step, apply) = measure(&current);
    report("this build", step, apply);
    if let Some(baseline) = std::env::var_os("STEP_VS_APPLY_BASELINE") {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(&baseline, dir.path().join("kubectl-canary"))
            .expect("link the baseline binary");
        let Some(mut old) = TestCluster::start("bench_step_vs_apply_baseline").await else {
            return;
        };
        old.kubectl = old.kubectl.clone().env("PATH", path_with(dir.path()));
        let (step, apply) = measure(&old);
        report(&PathBuf::from(baseline).display().to_string(), step, apply);
    }
}

/// `dir` first on PATH (the baseline's `kubectl-canary` found before this build's).
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).expect("PATH")
}

/// Median step and apply times over [`ROUNDS`] rounds (each: start, then one step).
fn measure(c: &TestCluster) -> (Duration, Duration) {
    let (spec, _) = c.example("bookinfo-reviews.yaml");
    let spec = spec.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stage.yaml");
    let (mut steps, mut applies) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let _ = c.canary(["abort", "reviews-v3", "-n", "default"]);
        c.canary(["start", "-f", &spec]).success();
        // The objects the next stage renders, as YAML for kubectl apply.
        let rendered = c
            .canary([
                "step",
                "reviews-v3",
                "-n",
                "default",
                "--dry-run=client",
                "-o",
                "yaml",
            ])
            .success()
            .stdout;
        std::fs::write(&file, &rendered).expect("write stage");

        let t = Instant::now();
        c.canary(["step", "reviews-v3", "-n", "default"]).success();
        steps.push(t.elapsed());

        let t = Instant::now();
        c.kubectl
            .run([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                "bench",
                "-f",
                file.to_str().unwrap(),
            ])
            .success();
        applies.push(t.elapsed());
    }
    (median(steps), median(applies))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn report(what: &str, step: Duration, apply: Duration) {
    println!(
        "{what}: step {:.1} ms, kubectl apply --server-side {:.1} ms, ratio {:.3} (median of {ROUNDS})",
        step.as_secs_f64() * 1e3,
        apply.as_secs_f64() * 1e3,
        step.as_secs_f64() / apply.as_secs_f64()
    );
}
