//! Propagation-aware checks: make-before-break at the data plane, not only at the API.
//!
//! The emulator's istiod status writer records, like every request, the cluster state after
//! each status write, so the audit log is a timeline of what the API held *and* of which
//! generation of each Istio object every proxy had acknowledged (`Reconciled True` at
//! `status.observedGeneration`). [`check_data_plane_order`] walks that timeline and checks:
//!
//! 1. no route references a subset before the DestinationRule generation that added it is
//!    reconciled (proxies would answer 503 NC for it);
//! 2. no subset is removed while a route that may still be on proxies uses it: every
//!    VirtualService generation from its last reconciled one to its current one could be live
//!    in some proxy.

use std::collections::{BTreeMap, BTreeSet};

use kube_emulator::{AuditRecord, Propagation};
use serde_json::Value;

use crate::{Kubectl, TestCluster};

/// `namespace/name`.
type Key = String;

/// What the timeline taught about one object.
#[derive(Debug, Default)]
struct History {
    /// Per generation: subset names (DestinationRule) or `host/subset` routes (VirtualService).
    by_generation: BTreeMap<i64, BTreeSet<String>>,
    /// The newest generation seen `Reconciled True`.
    reconciled: Option<i64>,
}

fn generation(o: &Value) -> i64 {
    o.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn key(o: &Value) -> Key {
    format!(
        "{}/{}",
        o.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// The generation istiod reports every proxy has, if any.
fn reconciled_generation(o: &Value) -> Option<i64> {
    let observed = o.pointer("/status/observedGeneration").and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })?;
    let reconciled = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .any(|c| c["type"] == "Reconciled" && c["status"] == "True");
    reconciled.then_some(observed)
}

fn subsets(dr: &Value) -> BTreeSet<String> {
    dr.pointer("/spec/subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

fn routes(vs: &Value) -> BTreeSet<String> {
    vs.pointer("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|rule| rule.get("route").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| {
            let host = d.pointer("/destination/host")?.as_str()?;
            let subset = d.pointer("/destination/subset")?.as_str()?;
            Some(format!("{host}/{subset}"))
        })
        .collect()
}

fn learn(history: &mut BTreeMap<Key, History>, o: &Value, facts: BTreeSet<String>) {
    let h = history.entry(key(o)).or_default();
    h.by_generation.insert(generation(o), facts);
    if let Some(g) = reconciled_generation(o) {
        h.reconciled = Some(h.reconciled.map_or(g, |r| r.max(g)));
    }
}

/// Check the two data-plane ordering rules over `records` (an audit log with states).
/// Returns one line per violation, naming the request after which it happened.
pub fn check_data_plane_order(records: &[AuditRecord]) -> Vec<String> {
    let mut rules: BTreeMap<Key, History> = BTreeMap::new();
    let mut services: BTreeMap<Key, History> = BTreeMap::new();
    let mut previous_subsets: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for record in records {
        let state = &record.state;
        let drs = state.of("networking.istio.io", "destinationrules");
        let vss = state.of("networking.istio.io", "virtualservices");
        for dr in &drs {
            learn(&mut rules, dr, subsets(dr));
        }
        for vs in &vss {
            learn(&mut services, vs, routes(vs));
        }
        let at = format!(
            "after request {} ({} {} {})",
            record.seq, record.verb, record.resource, record.name
        );
        // Rule 1: every route's subset is in the DestinationRule's reconciled generation.
        for vs in &vss {
            let ns = key(vs).split('/').next().unwrap_or("").to_string();
            for route in routes(vs) {
                let (host, subset) = route.split_once('/').unwrap_or((&route, ""));
                let dr = drs.iter().find(|dr| {
                    key(dr).starts_with(&format!("{ns}/"))
                        && dr.pointer("/spec/host").and_then(Value::as_str) == Some(host)
                });
                let confirmed = dr.is_some_and(|dr| {
                    rules.get(&key(dr)).is_some_and(|h| {
                        h.reconciled
                            .and_then(|g| h.by_generation.get(&g))
                            .is_some_and(|s| s.contains(subset))
                    })
                });
                if !confirmed {
                    violations.push(format!(
                        "{at}: VirtualService {} generation {} routes to subset {subset} of {host} before a DestinationRule generation defining it is reconciled",
                        key(vs),
                        generation(vs)
                    ));
                }
            }
        }
        // Rule 2: a subset leaves only when no possibly-live route generation uses it.
        for dr in &drs {
            let now = subsets(dr);
            let host = dr
                .pointer("/spec/host")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ns = key(dr).split('/').next().unwrap_or("").to_string();
            if let Some(before) = previous_subsets.get(&key(dr)) {
                for removed in before.difference(&now) {
                    for vs in vss
                        .iter()
                        .filter(|vs| key(vs).starts_with(&format!("{ns}/")))
                    {
                        let Some(h) = services.get(&key(vs)) else {
                            continue;
                        };
                        let from = h.reconciled.unwrap_or(1);
                        let live_use = h
                            .by_generation
                            .range(from..=generation(vs))
                            .find(|(_, r)| r.contains(&format!("{host}/{removed}")));
                        if let Some((g, _)) = live_use {
                            violations.push(format!(
                                "{at}: subset {removed} left DestinationRule {} while VirtualService {} generation {g} (not superseded by a reconciled one) may still route to it",
                                key(dr),
                                key(vs)
                            ));
                        }
                    }
                }
            }
            previous_subsets.insert(key(dr), now);
        }
    }
    violations.dedup();
    violations
}

/// An emulated cluster whose istiod status writer reports propagation as `propagation` says
/// (None: no status, Istio's status off), with Istio's real CRDs when `../shared` is there;
/// kubectl-canary runs with its default `--wait-propagation`. `None` when kubectl is missing.
pub async fn start_propagating(
    test: &str,
    propagation: Option<Propagation>,
) -> Option<TestCluster> {
    let Some(kubectl) = Kubectl::new() else {
        crate::skip(test, "no kubectl on PATH");
        return None;
    };
    let emulator = kube_emulator::Emulator::start(kube_emulator::Options {
        propagation,
        ..kube_emulator::Options::default()
    })
    .await
    .expect("start the emulated API server");
    let crds =
        crate::istio_crd_bundle().unwrap_or_else(kubectl_canary::demo::workloads::istio_crds);
    emulator.apply_yaml(&crds).expect("install Istio CRDs");
    let kubectl = kubectl.kubeconfig(emulator.kubeconfig_path());
    Some(TestCluster { emulator, kubectl })
}
