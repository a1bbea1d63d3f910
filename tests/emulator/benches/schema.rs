//! Validating a 20-rule VirtualService against Istio's schema (the per-object cost the emulated
//! API server pays on every create/update/apply), compared with compiling the whole bundle.
//! Needs `../shared/fixtures/istio/` beside the workspace (or `ISTIO_CRDS`); prints a message and
//! does nothing without it.

use criterion::{criterion_group, criterion_main, Criterion};
use kube_emulator::schema::{CrdSet, UnknownFields};
use serde_json::{json, Value};

fn bundle() -> Option<String> {
    let path = std::env::var_os("ISTIO_CRDS")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/fixtures/istio/customresourcedefinitions.gen.yaml")
        });
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("SKIPPED: no Istio CRD bundle at {} ({e})", path.display());
            None
        }
    }
}

/// A VirtualService with 20 HTTP rules: header, cookie-regex, source-label and URI matches,
/// weighted routes with ports, timeouts and retries (so CEL duration rules run too).
fn twenty_rule_vs() -> Value {
    let rules: Vec<Value> = (0..20)
        .map(|i| {
            let m = match i % 4 {
                0 => json!({"headers": {"canary": {"exact": format!("tester-{i}")}}}),
                1 => json!({"headers": {"cookie": {"regex": "^(.*?;)?(user=tester)(;.*)?$"}}}),
                2 => json!({"sourceLabels": {"app": "frontend", "version": "v2"}}),
                _ => json!({"uri": {"prefix": format!("/api/{i}")}}),
            };
            json!({
                "name": format!("rule-{i}"),
                "match": [m],
                "route": [
                    {"destination": {"host": "backend.default.svc.cluster.local", "subset": "v1", "port": {"number": 80}}, "weight": 90},
                    {"destination": {"host": "backend.default.svc.cluster.local", "subset": "v2", "port": {"number": 80}}, "weight": 10}
                ],
                "timeout": "5s",
                "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"}
            })
        })
        .collect();
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "backend", "namespace": "default"},
        "spec": {"hosts": ["backend.default.svc.cluster.local"], "gateways": ["mesh"], "http": rules}})
}

fn bench(c: &mut Criterion) {
    let Some(yaml) = bundle() else { return };
    let set = CrdSet::from_yaml(&yaml).expect("bundle compiles");
    let vs = twenty_rule_vs();
    let out = set.validate(&vs, UnknownFields::Strict).expect("served");
    assert!(out.errors.is_empty(), "{:?}", out.errors);

    c.bench_function("validate 20-rule VirtualService", |b| {
        b.iter(|| set.validate(std::hint::black_box(&vs), UnknownFields::Strict))
    });
    c.bench_function("compile the Istio CRD bundle", |b| {
        b.iter(|| CrdSet::from_yaml(std::hint::black_box(&yaml)).map(|s| s.len()))
    });
}

// criterion's macro generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(20)
            .measurement_time(std::time::Duration::from_secs(4));
        targets = bench
    }
}
criterion_main!(group::benches);
