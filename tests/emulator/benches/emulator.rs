//! Benchmarks of issue #5, measured against the `kube-emulator serve` binary in its own process
//! (so the numbers are the server's, not the bench's):
//!
//! - listing 1,000 ConfigMaps over HTTPS, both as kube-rs sees it (typed decode) and raw (the
//!   body bytes only, same client and connection), which leaves the server's share visible;
//! - the resident memory (`VmRSS`) of the server process holding 5,000 ConfigMaps;
//! - server-side apply of 200 VirtualServices by `kubectl` in one call.
//!
//! For comparison with earlier measurements it also reports the RSS of this bench process with
//! an in-process emulator holding 5,000 objects (that number includes the kube-rs client and
//! criterion, so it is not the target's measure).

use criterion::{criterion_main, Criterion};
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube_emulator::{Emulator, Options};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The ConfigMaps every measurement uses, as YAML (for the in-process emulator).
fn configmaps_yaml(n: usize, offset: usize) -> String {
    (0..n)
        .map(|i| {
            let i = i + offset;
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: default, labels: {{app: bench}}}}\ndata: {{key: value-{i}, other: \"{}\"}}\n---\n", "x".repeat(200))
        })
        .collect()
}

/// The same ConfigMap, typed (for the API).
fn configmap(i: usize) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("cm-{i}"), "namespace": "default", "labels": {"app": "bench"}},
        "data": {"key": format!("value-{i}"), "other": "x".repeat(200)},
    }))
    .expect("configmap")
}

/// A `kube-emulator serve` child process, killed on drop.
struct Server {
    child: Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the binary and waits until it serves (it logs a line once the kubeconfig is written).
    fn spawn() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
            .args(["serve", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kube-emulator");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("serving") {
                    let _ = ready_tx.send(());
                }
                eprintln!("[server] {line}");
            }
        });
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("kube-emulator did not start");
        Server {
            child,
            kubeconfig,
            _dir: dir,
        }
    }

    /// (`VmRSS`, `VmHWM`) of the server process in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        memory_kib(&self.child.id().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

/// Creates ConfigMaps `range` through the API (a few requests in flight); returns the seconds taken.
async fn load(api: &kube::Api<ConfigMap>, range: std::ops::Range<usize>) -> f64 {
    let start = Instant::now();
    futures::stream::iter(range)
        .map(|i| async move { api.create(&Default::default(), &configmap(i)).await })
        .buffer_unordered(4)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("create");
    start.elapsed().as_secs_f64()
}

/// `GET` of the list, body bytes only (no decode); returns the body length.
async fn raw_list(client: &kube::Client) -> usize {
    let req = http::Request::get("/api/v1/namespaces/default/configmaps")
        .body(kube::client::Body::from(Vec::new()))
        .expect("request");
    let resp = client.send(req).await.expect("list");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn kubectl_ssa(c: &mut Criterion, kubeconfig: &Path) {
    if !Path::new("/usr/bin/kubectl").exists() {
        eprintln!("no /usr/bin/kubectl: skipping the server-side apply bench");
        return;
    }
    let Some(crds) = ["../../../shared", "../../../../shared", "/work/shared"]
        .iter()
        .map(|p| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(p)
                .join("fixtures/istio/customresourcedefinitions.gen.yaml")
        })
        .find(|p| p.exists())
    else {
        eprintln!("no Istio CRD fixture: skipping the server-side apply bench");
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new("/usr/bin/kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["apply", "--server-side", "-f", crds.to_str().expect("path")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("kubectl");
    group.sample_size(10);
    let mut round = 0;
    group.bench_function("server-side apply of 200 VirtualServices", |b| {
        b.iter(|| {
            round += 1;
            let docs: String = (0..200)
                .map(|i| format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{i}}}\nspec:\n  hosts: [svc-{i}]\n  http:\n  - route:\n    - destination: {{host: svc-{i}, subset: v1}}\n      weight: {}\n    - destination: {{host: svc-{i}, subset: v2}}\n      weight: {}\n---\n", 100 - round % 100, round % 100))
                .collect();
            let file = dir.path().join("vs.yaml");
            std::fs::write(&file, docs).expect("write");
            run(&["apply", "--server-side", "-f", file.to_str().expect("path")]);
        })
    });
    group.finish();
}

/// The old measure: this whole process's RSS with an in-process emulator holding 5,000 objects.
fn in_process_rss(rt: &tokio::runtime::Runtime) {
    let (before, _) = memory_kib("self");
    let emu = rt
        .block_on(Emulator::start(Options {
            record_states: false,
            ..Options::default()
        }))
        .expect("start");
    emu.apply_yaml(&configmaps_yaml(5000, 0)).expect("load");
    let (after, _) = memory_kib("self");
    eprintln!(
        "RSS of the bench process (in-process emulator + kube-rs client + criterion; not the target's measure) with 5,000 objects: {:.1} MiB (the emulator added {:.1} MiB)",
        mib(after),
        mib(after.saturating_sub(before))
    );
    rt.block_on(emu.shutdown());
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = Server::spawn();
    let (empty, _) = server.memory_kib();
    let client = rt.block_on(client(&server.kubeconfig));
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "default");
    let secs = rt.block_on(load(&api, 0..1000));
    eprintln!("loaded 1,000 ConfigMaps through the API in {secs:.2} s");

    c.bench_function("list 1000 configmaps (kube-rs typed, HTTPS)", |b| {
        b.iter(|| {
            let l = rt.block_on(api.list(&Default::default())).expect("list");
            assert_eq!(l.items.len(), 1000);
        })
    });
    let bytes = rt.block_on(raw_list(&client));
    eprintln!(
        "a list of 1,000 ConfigMaps is {:.0} KiB of JSON",
        bytes as f64 / 1024.0
    );
    c.bench_function("list 1000 configmaps (raw body bytes, HTTPS)", |b| {
        b.iter(|| rt.block_on(raw_list(&client)))
    });

    let (one_k, _) = server.memory_kib();
    let secs = rt.block_on(load(&api, 1000..5000));
    eprintln!("loaded 4,000 more ConfigMaps through the API in {secs:.2} s");
    let (five_k, peak) = server.memory_kib();
    eprintln!(
        "RSS of the kube-emulator server process: {:.1} MiB empty, {:.1} MiB with 1,000 ConfigMaps, {:.1} MiB with 5,000 ConfigMaps (target < 100 MiB; peak {:.1} MiB)",
        mib(empty),
        mib(one_k),
        mib(five_k),
        mib(peak)
    );

    kubectl_ssa(c, &server.kubeconfig);
    let (after_ssa, peak) = server.memory_kib();
    eprintln!(
        "RSS of the kube-emulator server process after the server-side apply bench (5,000 ConfigMaps, 200 VirtualServices and their watch history): {:.1} MiB (peak {:.1} MiB)",
        mib(after_ssa),
        mib(peak)
    );
    drop(server);

    in_process_rss(&rt);
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(emulator, super::benches);
}
use group::emulator;
criterion_main!(emulator);
