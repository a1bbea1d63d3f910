//! A chained release as it grows (issue 16 item 5): wall time and peak RSS of `plan`, `start`,
//! `step` and `get` for 250, 500 and 1,000 services, each a cold `kubectl-canary` process
//! against the emulated API server (with Istio's CRD bundle when `../shared` is present), one
//! run each, side by side in one run. Also the sizes that grow with the release: the record
//! (`state.json` in the release's ConfigMap, which Kubernetes caps at 1 MiB) and the rendered
//! VirtualServices, which name every caller and so grow with the square of the services.
//!
//! `cargo bench -p canary-e2e --bench scale` (`SCALE_SIZES=100,1000` to choose the sizes;
//! `SCALE_BASELINE=/path/to/an/older/kubectl-canary` runs that binary too, on a cluster of its
//! own, right after this build at each size). Peak RSS is the process's `VmHWM` and CPU its
//! user + system time, read from `/proc` while it runs (the emulated API server runs in the
//! bench process, so wall time includes the server's work).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canary_e2e::TestCluster;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![250, 500, 1000]);
    let mut binaries = vec![(
        "this build".to_string(),
        canary_e2e::plugin_dir().join("kubectl-canary"),
    )];
    if let Some(baseline) = std::env::var_os("SCALE_BASELINE") {
        let baseline = PathBuf::from(baseline);
        binaries.push((baseline.display().to_string(), baseline));
    }
    println!(
        "binary      services  command  wall       CPU        peak RSS   | record bytes  rendered VirtualService bytes"
    );
    for n in sizes {
        for (label, binary) in &binaries {
            run_size(label, binary, n).await;
        }
    }
}

/// Plan, start, step and get of an `n`-service chained release with `binary`, on a fresh
/// emulated cluster; one line each.
async fn run_size(label: &str, binary: &Path, n: usize) {
    let Some(c) = TestCluster::start("bench_scale").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = c.chained_mesh(dir.path(), n);
    let spec = spec.to_str().expect("utf-8 path");
    let commands: [(&str, Vec<&str>); 4] = [
        ("plan", vec!["plan", "-f", spec]),
        ("start", vec!["start", "-f", spec]),
        ("step", vec!["step", "mesh-v2", "-n", "mesh"]),
        ("get", vec!["get", "mesh-v2", "-n", "mesh"]),
    ];
    for (name, args) in commands {
        let (wall, cpu, peak_kib) = measure(binary, c.emulator.kubeconfig_path(), &args);
        let sizes = if name == "step" {
            let record = c
                .kubectl
                .run([
                    "get",
                    "configmap",
                    "canary-mesh-v2",
                    "-n",
                    "mesh",
                    "-o",
                    "json",
                ])
                .success()
                .json();
            let record = record["data"]["state.json"].as_str().unwrap_or("").len();
            let rendered = c
                .kubectl
                .run(["get", "virtualservices", "-n", "mesh", "-o", "json"])
                .success()
                .json();
            let rendered: usize = rendered["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|vs| serde_json::to_vec(&vs["spec"]).expect("json").len())
                .sum();
            format!("| {record:>12}  {rendered:>12}")
        } else {
            "|".to_string()
        };
        let label: String = label
            .chars()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        println!(
            "{label:<10}  {n:>8}  {name:<7}  {:>7.2} s  {:>7.2} s  {:>6} MiB {sizes}",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            peak_kib / 1024
        );
    }
}

/// Runs the plugin once; its wall time, CPU time and peak RSS (KiB). Panics when it fails.
fn measure(binary: &Path, kubeconfig: &Path, args: &[&str]) -> (Duration, Duration, u64) {
    let stderr = tempfile::tempfile().expect("stderr file");
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECTL_CANARY_WAIT_PROPAGATION", "never")
        .stdout(Stdio::null())
        // A file, not a pipe: a pipe nobody reads while the process runs could fill and stall it.
        .stderr(stderr.try_clone().expect("stderr file"))
        .spawn()
        .expect("run kubectl-canary");
    let status_path = format!("/proc/{}/status", child.id());
    let stat_path = format!("/proc/{}/stat", child.id());
    let (mut peak, mut ticks) = (0, 0);
    let status = loop {
        // utime and stime, fields 14 and 15, after the `(comm)` that may hold spaces.
        if let Some(fields) = std::fs::read_to_string(&stat_path)
            .ok()
            .and_then(|t| t.rsplit_once(')').map(|(_, rest)| rest.to_string()))
        {
            let fields: Vec<u64> = fields
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            if fields.len() > 13 {
                ticks = ticks.max(fields[11] + fields[12]);
            }
        }
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = started.elapsed();
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    let cpu = Duration::from_millis(ticks * 10);
    if !status.success() {
        let mut text = String::new();
        let mut stderr = stderr;
        let _ = std::io::Seek::rewind(&mut stderr);
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        panic!("kubectl-canary {args:?} failed ({status}): {text}");
    }
    (wall, cpu, peak)
}
