//! Render and route-simulation throughput for a large release, and `explain` process latency.
//!
//! Targets (issue 3): render + simulate a 200-service release in < 50 ms; `kubectl canary
//! explain` from process start to exit in < 20 ms.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use kubectl_canary::render::{render, RenderOptions};
use kubectl_canary::sim::{GatewayRef, Request, RouteTable};
use policy_sdk::{
    Destination, Match, ReleaseInfo, Role, Rule, ServiceInfo, Stage, StringMatch, VersionRef,
};

const SERVICES: usize = 200;

fn version(app: &str, v: &str) -> VersionRef {
    VersionRef {
        subset: v.to_string(),
        labels: BTreeMap::from([
            ("app".to_string(), app.to_string()),
            ("version".to_string(), v.to_string()),
        ]),
    }
}

/// 200 services; the first is gateway-facing. Each has a tester cookie rule, a chaining rule
/// and a 90/10 default: the shape of a real multi-service stage.
fn release_and_stage() -> (ReleaseInfo, Stage, RenderOptions) {
    let mut services = Vec::new();
    let mut routes = BTreeMap::new();
    for i in 0..SERVICES {
        let name = format!("svc-{i:03}");
        let gateways = if i == 0 {
            vec!["istio-system/ingress".to_string()]
        } else {
            vec![]
        };
        services.push(ServiceInfo {
            name: name.clone(),
            host: name.clone(),
            stable: version(&name, "v1"),
            canary: version(&name, "v2"),
            entry: i == 0,
            gateways,
        });
        let to = |role, weight| Destination {
            subset: role,
            weight,
        };
        let tester = Match {
            headers: BTreeMap::from([(
                "cookie".to_string(),
                StringMatch::Regex("^(.*?;)?(user=tester)(;.*)?$".to_string()),
            )]),
            ..Default::default()
        };
        let caller = Match {
            source_labels: BTreeMap::from([("version".to_string(), "v2".to_string())]),
            ..Default::default()
        };
        routes.insert(
            name,
            vec![
                Rule {
                    matches: vec![tester],
                    to: vec![to(Role::Canary, None)],
                },
                Rule {
                    matches: vec![caller],
                    to: vec![to(Role::Canary, None)],
                },
                Rule {
                    matches: vec![],
                    to: vec![to(Role::Stable, Some(90)), to(Role::Canary, Some(10))],
                },
            ],
        );
    }
    let release = ReleaseInfo {
        name: "big".to_string(),
        namespace: "shop".to_string(),
        services,
    };
    let stage = Stage {
        index: 1,
        name: "10%".to_string(),
        routes,
    };
    let opts = RenderOptions {
        gateway_hosts: BTreeMap::from([("svc-000".to_string(), vec!["*".to_string()])]),
        ..Default::default()
    };
    (release, stage, opts)
}

/// One request per service, alternating tester, canary caller and plain traffic.
fn requests() -> Vec<Request> {
    (0..SERVICES)
        .map(|i| {
            let r = Request::new(format!("svc-{i:03}"));
            match i % 3 {
                0 => r.cookie("session", "x").cookie("user", "tester"),
                1 => r.source_label("version", "v2"),
                _ => r,
            }
        })
        .collect()
}

fn bench_render_sim(c: &mut Criterion) {
    let (release, stage, opts) = release_and_stage();
    let requests = requests();
    c.bench_function("render 200 services", |b| {
        b.iter(|| render(black_box(&release), black_box(&stage), &opts).unwrap())
    });
    let rendered = render(&release, &stage, &opts).unwrap();
    c.bench_function("route table from 200 services", |b| {
        b.iter(|| RouteTable::new(black_box(rendered.objects()).iter().cloned()).unwrap())
    });
    let table = RouteTable::new(rendered.objects().iter().cloned()).unwrap();
    c.bench_function("simulate 200 requests", |b| {
        b.iter(|| {
            for r in &requests {
                black_box(table.simulate(r).unwrap());
            }
        })
    });
    c.bench_function("render + simulate 200-service release", |b| {
        b.iter(|| {
            let rendered = render(&release, &stage, &opts).unwrap();
            let table = RouteTable::new(rendered).unwrap();
            for r in &requests {
                black_box(table.simulate(r).unwrap());
            }
        })
    });
}

fn bench_explain_process(c: &mut Criterion) {
    let (release, stage, opts) = release_and_stage();
    let rendered = render(&release, &stage, &opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects.yaml");
    std::fs::write(&objects, rendered.to_yaml()).unwrap();
    let bin = env!("CARGO_BIN_EXE_kubectl-canary");
    let ingress = GatewayRef::parse("istio-system/ingress").to_string();
    let mut group = c.benchmark_group("explain process");
    group.sample_size(30);
    group.bench_function("explain, 200-service objects, start to exit", |b| {
        b.iter(|| {
            let out = Command::new(bin)
                .args([
                    "explain",
                    "--host",
                    "shop.example.com",
                    "--gateway",
                    &ingress,
                ])
                .args(["--cookie", "user=tester", "-o", "json", "-f"])
                .arg(&objects)
                .output()
                .unwrap();
            assert!(out.status.success());
        })
    });
    group.bench_function("version, start to exit (process floor)", |b| {
        b.iter(|| {
            let out = Command::new(bin).arg("version").output().unwrap();
            assert!(out.status.success());
        })
    });
    group.finish();
}

criterion_group!(benches, bench_render_sim, bench_explain_process);
criterion_main!(benches);
