//! Issue 6: wall time of `kubectl canary step` against `kubectl apply --server-side -f` of the
//! same rendered objects, both as cold processes against the same emulated cluster. Prints the
//! ratio (target <= 0.5).

use canary_e2e::TestCluster;
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(c) = TestCluster::start("bench_step_vs_apply").await else {
        return;
    };
    let (spec, _) = c.example("bookinfo-reviews.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
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
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stage.yaml");
    std::fs::write(&file, &rendered).expect("write stage");

    let t = Instant::now();
    c.canary(["step", "reviews-v3", "-n", "default"]).success();
    let step = t.elapsed();

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
    let apply = t.elapsed();

    println!(
        "step: {:.1} ms, kubectl apply --server-side: {:.1} ms, ratio {:.2} (target <= 0.5)",
        step.as_secs_f64() * 1e3,
        apply.as_secs_f64() * 1e3,
        step.as_secs_f64() / apply.as_secs_f64()
    );
}
