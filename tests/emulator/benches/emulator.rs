//! Benchmarks: listing 1,000 objects over HTTP, server-side apply of 200 VirtualServices by
//! kubectl in one call, and the memory (RSS) of an emulator holding 5,000 objects.

use criterion::{criterion_main, Criterion};
use kube_emulator::{Emulator, Options};
use std::process::Command;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn configmaps(n: usize, offset: usize) -> String {
    (0..n)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{}, namespace: default, labels: {{app: bench}}}}\ndata: {{key: value-{i}, other: \"{}\"}}\n---\n", i + offset, "x".repeat(200)))
        .collect()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt
        .block_on(Emulator::start(Options {
            record_states: false,
            ..Options::default()
        }))
        .expect("start");
    emu.apply_yaml(&configmaps(1000, 0)).expect("seed");
    let kc = kube::config::Kubeconfig::read_from(emu.kubeconfig_path()).expect("kubeconfig");
    let client = rt.block_on(async {
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(cfg).expect("client")
    });
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, "default");
    c.bench_function("list 1000 configmaps (kube-rs, HTTPS)", |b| {
        b.iter(|| {
            let l = rt.block_on(api.list(&Default::default())).expect("list");
            assert_eq!(l.items.len(), 1000);
        })
    });

    if std::path::Path::new("/usr/bin/kubectl").exists() {
        if let Some(crds) = ["../../../shared", "../../../../shared", "/work/shared"]
            .iter()
            .map(|p| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(p)
                    .join("fixtures/istio/customresourcedefinitions.gen.yaml")
            })
            .find(|p| p.exists())
        {
            let run = |args: &[&str]| {
                let out = Command::new("/usr/bin/kubectl")
                    .args(args)
                    .env("KUBECONFIG", emu.kubeconfig_path())
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
    }

    let before = rss_kib();
    emu.apply_yaml(&configmaps(4000, 1000)).expect("more");
    let after = rss_kib();
    eprintln!("RSS of the bench process with 5,000 objects stored: {} MiB (grew {} MiB from 1,000 objects)", after / 1024, after.saturating_sub(before) / 1024);
    rt.block_on(emu.shutdown());
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(emulator, super::benches);
}
use group::emulator;
criterion_main!(emulator);
