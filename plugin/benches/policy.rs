//! Policy host benchmarks: a warm decision of `progressive` for a 3-service release (wasm vs
//! the same decide function compiled natively), a cached module load, and an uncached compile.
//!
//! `cargo bench -p kubectl-canary --bench policy`
#![allow(missing_docs)] // criterion_group! writes an undocumented pub fn

use criterion::{criterion_group, criterion_main, Criterion};
use kubectl_canary::policy::{validate_decision, CacheStatus, Limits, ModuleRef, PolicyHost};
use policy_sdk::testing::{InputBuilder, ReleaseBuilder};
use policy_sdk::{Event, Input};

fn three_services() -> Input {
    let release = ReleaseBuilder::new("voting-v2")
        .namespace("voting")
        .service("voting-app", "1.0", "2.0")
        .gateway("voting/voting-app-gateway")
        .service("voting-analytics", "1.1", "2.0")
        .service("voting-storage", "1.0", "2.0")
        .build();
    InputBuilder::new(release)
        .event(Event::Step)
        .stage(1, "2026-11-22T09:00:00Z")
        .config_json(r#"{"testers": {"cookie": "user=tester"}, "chain": true, "steps": [10, 50, 100], "pause": "5m"}"#)
        .build()
}

fn decisions(c: &mut Criterion) {
    let host = PolicyHost::new(None).expect("host");
    let policy = host
        .load(&ModuleRef::parse("builtin:progressive"), None)
        .expect("progressive");
    let input = three_services();
    let limits = Limits::default();
    let mut group = c.benchmark_group("decide progressive 3 services");
    group.bench_function("wasm (validated)", |b| {
        b.iter(|| policy.decide(&input, &limits).expect("decision"))
    });
    let json = serde_json::to_vec(&input).expect("input JSON");
    group.bench_function("wasm call only (raw JSON, unvalidated)", |b| {
        b.iter(|| policy.decide_raw(&json, &limits).expect("output"))
    });
    let decision = policy.decide(&input, &limits).expect("decision");
    group.bench_function("host validation only", |b| {
        b.iter(|| validate_decision(&decision, &input.release).expect("valid"))
    });
    group.bench_function("native (same JSON wire)", |b| {
        b.iter(|| policy_sdk::testing::run(progressive::decide, &input))
    });
    group.bench_function("native (typed, no JSON)", |b| {
        b.iter(|| progressive::decide(&input))
    });
    group.finish();

    // The host's fixed cost per decision: a policy that does almost nothing (hand-written WAT),
    // so what is measured is a fresh instance, the ABI calls and the copies in and out.
    let trivial = host
        .load(&ModuleRef::parse("builtin:all-at-once"), None)
        .expect("all-at-once");
    c.bench_function("host overhead per decision (all-at-once, raw)", |b| {
        b.iter(|| trivial.decide_raw(&json, &limits).expect("output"))
    });
}

fn loading(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("temp dir");
    let host = PolicyHost::new(Some(cache.path().to_path_buf())).expect("host");
    let module = ModuleRef::parse("builtin:progressive");
    host.load(&module, None).expect("warm the cache");
    let mut group = c.benchmark_group("load progressive");
    group.bench_function("cached (deserialize + checks + InstancePre)", |b| {
        b.iter(|| {
            let policy = host.load(&module, None).expect("load");
            assert_eq!(policy.cache_status(), CacheStatus::Hit);
        })
    });
    group.sample_size(10);
    let uncached = PolicyHost::new(None).expect("host");
    group.bench_function("uncached (cranelift compile)", |b| {
        b.iter(|| uncached.load(&module, None).expect("load"))
    });
    group.finish();
}

criterion_group!(benches, decisions, loading);
criterion_main!(benches);
