//! What the metric queries add to a step: `kubectl canary step --dry-run=client` (a whole
//! decision, measured and decided, nothing written) of a one-service release with no
//! analysis, and with 2 and 10 metrics, against a local Prometheus (Debian's) scraping Istio's
//! standard metrics every second. Each step is a cold process; the median of [`ROUNDS`] runs per
//! size, side by side in one run, and the ratios to the step without analysis.
//!
//! `cargo bench --profile dev -p canary-e2e --bench analysis` (2 and 10 metrics are 4 and 20
//! queries: each metric for both versions).

use std::path::Path;
use std::time::{Duration, Instant};

use canary_e2e::prometheus::{has_value, Exporter, Prometheus, Traffic};
use canary_e2e::TestCluster;

const ROUNDS: usize = 15;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(c) = TestCluster::start("bench_analysis").await else {
        return;
    };
    let exporter = Exporter::start();
    let sizes = [0usize, 2, 10];
    for n in sizes {
        let ns = format!("shop{n}");
        exporter.set(&ns, "web", "v1", Traffic::new(100.0, 0.001, 20.0));
        exporter.set(&ns, "web", "v2", Traffic::new(100.0, 0.001, 20.0));
    }
    let Some(prometheus) = Prometheus::start(exporter.addr()) else {
        return;
    };
    prometheus.wait_for(
        "sum(rate(istio_requests_total{destination_workload_namespace=\"shop10\",destination_version=\"v2\"}[10s]))",
        has_value,
        Duration::from_secs(60),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut medians = Vec::new();
    for n in sizes {
        let ns = format!("shop{n}");
        let spec = release(&c, dir.path(), &ns, n, &prometheus.address());
        c.canary(["start", "-f", spec.to_str().unwrap()]).success();
        // One warm-up, then the rounds.
        c.canary(["step", "web-v2", "-n", &ns, "--dry-run=client"])
            .success();
        let mut times: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                c.canary(["step", "web-v2", "-n", &ns, "--dry-run=client"])
                    .success();
                t.elapsed()
            })
            .collect();
        times.sort();
        medians.push((n, times[ROUNDS / 2]));
    }
    let base = medians[0].1;
    println!("step --dry-run=client, median of {ROUNDS} cold processes:");
    for (n, median) in &medians {
        println!(
            "  {n:>2} metrics ({:>2} queries): {:>7.1} ms  ×{:.2} of no analysis  (+{:.1} ms)",
            n * 2,
            median.as_secs_f64() * 1000.0,
            median.as_secs_f64() / base.as_secs_f64(),
            (median.as_secs_f64() - base.as_secs_f64()) * 1000.0
        );
    }
}

/// Release `web-v2` in `ns` with `metrics` distinct queries (none: no analysis), thresholds on
/// each that always pass, and its workloads.
fn release(
    c: &TestCluster,
    dir: &Path,
    ns: &str,
    metrics: usize,
    address: &str,
) -> std::path::PathBuf {
    let mut text = format!(
        "apiVersion: canary.kubectl.dev/v1alpha1\nkind: Release\nmetadata: {{name: web-v2, namespace: {ns}}}\nspec:\n  services:\n    - {{name: web, stable: {{version: v1}}, canary: {{version: v2}}}}\n  policy:\n    module: builtin:progressive\n    config:\n      steps: [10, 50, 100]\n"
    );
    if metrics > 0 {
        let thresholds: Vec<String> = (0..metrics)
            .map(|i| format!("{{metric: m{i}, min: 0}}"))
            .collect();
        text.push_str(&format!(
            "      thresholds: [{}]\n  analysis:\n    prometheus: {{address: \"{address}\"}}\n    interval: 10s\n    metrics:\n",
            thresholds.join(", ")
        ));
        for i in 0..metrics {
            text.push_str(&format!(
                "      - {{name: m{i}, query: 'sum(rate(istio_requests_total{{destination_service_name=\"{{{{service}}}}\",destination_workload_namespace=\"{{{{namespace}}}}\",destination_version=\"{{{{version}}}}\"}}[{{{{interval}}}}])) * {}'}}\n",
                i + 1
            ));
        }
    }
    let path = dir.join(format!("{ns}.yaml"));
    std::fs::write(&path, text).expect("write the spec");
    let spec = kubectl_canary::spec::load_file(&path).expect("the spec is valid");
    for object in kubectl_canary::demo::workloads::workloads_for(&spec) {
        c.emulator
            .apply_yaml(&serde_yaml::to_string(&object).expect("yaml"))
            .expect("create the workloads");
    }
    path
}
