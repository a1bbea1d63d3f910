//! One runner process driving 200 releases in one namespace of the emulator: CPU time per
//! decision, peak memory, and API requests per idle minute (the runner watches; it must not
//! poll). Run with `cargo bench -p kubectl-canary --bench runner`; `RELEASES=N` changes the
//! count. Figures are printed, not asserted.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubectl_canary::cluster::apply::ApplyOptions;
use kubectl_canary::cluster::Cluster;
use kubectl_canary::policy::{Limits, LoadedPolicy, ModuleRef, PolicyHost};
use kubectl_canary::release::record::PolicyIdentity;
use kubectl_canary::release::{Decider, Engine, Mode, StartOptions};
use policy_sdk::{Decision, Input};

const NS: &str = "bench";

struct Builtin {
    policy: LoadedPolicy,
    identity: PolicyIdentity,
}

impl Decider for Builtin {
    fn identity(&self) -> &PolicyIdentity {
        &self.identity
    }
    fn decide(&self, input: &Input) -> Result<Decision, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.policy.decide(input, &Limits::default())?)
    }
}

fn spec(i: usize) -> String {
    format!(
        "apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {{name: r{i}, namespace: {NS}}}
spec:
  services:
    - name: svc{i}
      stable: {{version: v1}}
      canary: {{version: v2}}
  policy:
    module: builtin:progressive
    config: {{steps: [20, 50, 100], pause: 2s}}
"
    )
}

/// utime + stime of `pid`, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command: state is 0, utime is 11, stime is 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let releases: usize = std::env::var("RELEASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt
        .block_on(kube_emulator::Emulator::start(kube_emulator::Options {
            record_states: false,
            ..Default::default()
        }))
        .unwrap();
    emu.apply_yaml(&kubectl_canary::demo::workloads::istio_crds())
        .unwrap();
    let host = PolicyHost::new(None).unwrap();
    let policy = host
        .load(&ModuleRef::parse("builtin:progressive"), None)
        .unwrap();
    let decider = Builtin {
        identity: PolicyIdentity {
            module: "builtin:progressive".into(),
            sha256: policy.sha256().to_string(),
            name: policy.name().to_string(),
            oci_digest: None,
        },
        policy,
    };
    // 200 releases, started and handed to the runner in-process.
    rt.block_on(async {
        let opts = kubectl_canary::cluster::ConnectOptions {
            kubeconfig: Some(emu.kubeconfig_path().to_path_buf()),
            namespace: Some(NS.into()),
            ..Default::default()
        };
        let cluster = Cluster::connect(&opts).await.unwrap();
        let engine = Engine::new(
            cluster.clone(),
            Mode::Apply,
            ApplyOptions {
                field_manager: "kubectl-canary".into(),
                server_dry_run: false,
                force: false,
            },
        );
        for i in 0..releases {
            let release: kubectl_canary::spec::Release =
                kubectl_canary::spec::parse_str(&spec(i), "bench").unwrap();
            for object in kubectl_canary::demo::workloads::workloads_for(&release) {
                emu.apply_yaml(&serde_yaml::to_string(&object).unwrap())
                    .unwrap();
            }
            engine
                .start(&release, &decider, &StartOptions::default())
                .await
                .unwrap();
            kubectl_canary::runner::detach(&cluster, &format!("r{i}"), "2026-01-01T00:00:00Z")
                .await
                .unwrap();
        }
    });
    emu.audit().clear();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-canary"))
        .args([
            "runner",
            "-n",
            NS,
            "--identity",
            "bench",
            "--interval",
            "10m",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", emu.kubeconfig_path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let mut decisions = 0usize;
    let mut completed = 0usize;
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    while completed < releases {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains(": release bench/") {
            decisions += 1;
            if line.contains(" complete ") {
                completed += 1;
            }
        }
    }
    let busy = started.elapsed();
    let cpu = cpu_seconds(pid);
    let hwm = status_kb(pid, "VmHWM:");
    // Idle: every release is Promoted; count the runner's requests over a window.
    emu.audit().clear();
    let window = Duration::from_secs(30);
    std::thread::sleep(window);
    let idle = emu.audit().records();
    let rss = status_kb(pid, "VmRSS:");
    // What the ConfigMap requests were, if any: a re-established watch is a list and a watch;
    // anything else while idle would be polling.
    let mut configmap_requests = std::collections::BTreeMap::<String, usize>::new();
    for r in idle.iter().filter(|r| r.resource == "configmaps") {
        *configmap_requests
            .entry(format!("{} -> {}", r.verb, r.status))
            .or_default() += 1;
    }
    let per_minute = idle.len() as f64 * 60.0 / window.as_secs_f64();
    let by_resource = |r: &str| {
        idle.iter().filter(|a| a.resource == r).count() as f64 * 60.0 / window.as_secs_f64()
    };
    let _ = child.kill();
    let _ = child.wait();
    println!("runner, {releases} releases in one namespace ({decisions} recorded decisions):");
    println!(
        "  driving: {:.1}s wall, {cpu:.2}s CPU, {:.2} ms CPU per recorded decision",
        busy.as_secs_f64(),
        cpu * 1000.0 / decisions.max(1) as f64
    );
    println!(
        "  memory: peak RSS {} MiB, idle RSS {} MiB",
        hwm / 1024,
        rss / 1024
    );
    println!(
        "  idle API requests per minute: {per_minute:.1} (leases {:.1}, configmaps {:.1})",
        by_resource("leases"),
        by_resource("configmaps")
    );
    if !configmap_requests.is_empty() {
        println!("  idle ConfigMap requests in {window:?}: {configmap_requests:?}");
    }
    rt.block_on(emu.shutdown());
}
