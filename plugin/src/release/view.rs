//! The view model of `get`, `get --watch` and `list`: a release record beside the objects live
//! in the cluster, built here from the record, the live objects and the pods; `ui::tree` draws
//! it and knows nothing of records or clusters.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use policy_sdk::{Phase, Role, Rule};
use serde_json::Value;

use super::desired::{deployments_to_delete, desired_objects};
use super::record::ReleaseRecord;
use crate::cluster::order::{differs, ObjectSet};
use crate::lint::inventory::map_at;

/// Everything the tree shows about a release.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseView {
    /// Release name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Phase (`Progressing`, `Promoted`, ...).
    pub phase: String,
    /// Current stage index and name, if a stage was applied.
    pub stage: Option<(u32, String)>,
    /// The policy, as `name@sha256:<12 hex>`.
    pub policy: String,
    /// Services in spec order.
    pub services: Vec<ServiceView>,
    /// The last decision recorded.
    pub last_decision: Option<DecisionView>,
    /// The operator's gates, one line each: `paused by alice at ...`, `stage 3 approved by
    /// bob at ...`.
    pub gates: Vec<String>,
    /// Where the live objects differ from the record, one sentence each (empty: in sync).
    pub drift: Vec<String>,
}

/// One service of the release.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    /// Service name.
    pub name: String,
    /// Versions present.
    pub subsets: Vec<SubsetView>,
    /// The routing rules in force, in order.
    pub rules: Vec<Rule>,
}

/// One version of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsetView {
    /// Its role.
    pub role: Role,
    /// Istio subset name.
    pub subset: String,
    /// Version label value.
    pub version: String,
    /// Share of default (unmatched) traffic the record says, percent.
    pub weight: Option<f64>,
    /// Share of default traffic the live VirtualService gives it, percent (`None`: no live
    /// VirtualService, or it has no default route).
    pub live_weight: Option<f64>,
    /// Ready pods.
    pub pods_ready: u32,
    /// All pods.
    pub pods_total: u32,
}

/// The last policy decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionView {
    /// Action (`advance`, `hold`, ...).
    pub action: String,
    /// When (RFC 3339).
    pub at: String,
    /// The policy's reason.
    pub reason: String,
    /// The canary's metrics it was taken on (`success-rate 99.5, latency-p99 120`), if any.
    pub metrics: Vec<(String, String)>,
}

/// A metric value as the views print it, as the policies quote it in their reasons
/// ([`policy_sdk::analysis::number`]: `99.5`, `120`), or `no data`.
pub fn metric_value(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), policy_sdk::analysis::number)
}

/// A metric's canary values as one short text: `99.5`, `web 99.5 api 97`, `no data`, or
/// `error: ...`.
pub fn canary_text(sample: &policy_sdk::MetricSample) -> String {
    let value = metric_value;
    if let Some(error) = &sample.error {
        return format!("error: {error}");
    }
    if sample.services.is_empty() {
        return value(sample.canary);
    }
    sample
        .services
        .iter()
        .map(|(svc, v)| format!("{svc} {}", value(v.canary)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The view of `record` beside `live` (its live objects), with pod counts from `pods` (the
/// namespace's Pods).
pub fn release_view(record: &ReleaseRecord, live: &ObjectSet, pods: &[Value]) -> ReleaseView {
    let info = record.spec.release_info();
    let pod_counts = PodCounts::new(pods);
    let services = info
        .services
        .iter()
        .map(|svc| {
            let rules: Vec<Rule> = record
                .stage
                .routes
                .get(&svc.name)
                .cloned()
                .unwrap_or_default();
            let default_rule = rules.iter().rev().find(|r| r.matches.is_empty());
            let live_split = live
                .virtual_services
                .get(&svc.name)
                .and_then(live_default_split);
            let subsets = record
                .roles
                .iter()
                .map(|role| {
                    let version = match role {
                        Role::Stable => &svc.stable,
                        Role::Canary => &svc.canary,
                    };
                    let (ready, total) = pod_counts.of(&version.labels);
                    SubsetView {
                        role: *role,
                        subset: version.subset.clone(),
                        version: version.labels.values().last().cloned().unwrap_or_default(),
                        weight: default_rule.map(|r| share(r, *role)),
                        live_weight: live_split
                            .as_ref()
                            .map(|split| split.get(&version.subset).copied().unwrap_or(0.0)),
                        pods_ready: ready,
                        pods_total: total,
                    }
                })
                .collect();
            ServiceView {
                name: svc.name.clone(),
                subsets,
                rules,
            }
        })
        .collect();
    ReleaseView {
        name: record.spec.name().to_string(),
        namespace: record.spec.namespace().to_string(),
        phase: format!("{:?}", record.phase),
        stage: Some((record.stage.index, record.stage.name.clone())),
        policy: record.policy.short(),
        services,
        last_decision: record.history.last().map(|h| DecisionView {
            action: h.action.as_str().to_string(),
            at: h.at.clone(),
            reason: h.reason.clone(),
            metrics: h
                .metrics
                .iter()
                .map(|(name, sample)| (name.clone(), canary_text(sample)))
                .collect(),
        }),
        gates: record
            .paused
            .iter()
            .map(|p| format!("paused by {} at {}", p.by, p.at))
            .chain(
                record
                    .approvals
                    .iter()
                    .map(|a| format!("stage {} approved by {} at {}", a.stage, a.by, a.at)),
            )
            .collect(),
        drift: drift(record, live),
    }
}

/// The command that converges a release in its phase (every mutating command first finishes
/// what the record describes).
pub fn converging_command(record: &ReleaseRecord) -> String {
    let verb = match record.phase {
        Phase::Progressing | Phase::Paused => "step",
        Phase::Promoted => "promote",
        Phase::Finalized => "finalize",
        Phase::Aborted | Phase::RolledBack | Phase::Failed => "abort",
    };
    format!(
        "kubectl canary {verb} {} -n {}",
        record.spec.name(),
        record.spec.namespace()
    )
}

/// Every difference between the objects `record` describes and `live`, one sentence each,
/// naming the object, what is live, what the record says, and the command that converges it.
pub fn drift(record: &ReleaseRecord, live: &ObjectSet) -> Vec<String> {
    let Ok(want) = desired_objects(record) else {
        return vec!["the record's stage cannot be rendered".to_string()];
    };
    let fix = format!("`{}` will converge it", converging_command(record));
    let info = record.spec.release_info();
    let role_of = |service: &str, subset: &str| {
        info.services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| {
                if s.stable.subset == subset {
                    Some("stable")
                } else if s.canary.subset == subset {
                    Some("canary")
                } else {
                    None
                }
            })
            .map_or_else(|| format!("subset {subset}"), str::to_string)
    };
    let split_text = |service: &str, split: Option<BTreeMap<String, f64>>| match split {
        None => "no default route".to_string(),
        Some(split) => split
            .iter()
            .map(|(subset, pct)| format!("{} {pct:.0}%", role_of(service, subset)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut out = Vec::new();
    for (name, want_vs) in &want.virtual_services {
        match live.virtual_services.get(name) {
            None => out.push(format!("the VirtualService {name} is missing; {fix}")),
            Some(have) if differs(Some(have), want_vs) => {
                let (l, w) = (
                    split_text(name, live_default_split(have)),
                    split_text(name, live_default_split(want_vs)),
                );
                if l == w {
                    out.push(format!(
                        "the VirtualService {name} differs from the record in its other rules; {fix}"
                    ));
                } else {
                    out.push(format!(
                        "the VirtualService {name} routes {l}, the record says {w}; {fix}"
                    ));
                }
            }
            Some(_) => {}
        }
    }
    let subsets = |dr: &Value| {
        dr.pointer("/spec/subsets")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .join(", ")
    };
    for (name, want_dr) in &want.destination_rules {
        match live.destination_rules.get(name) {
            None => out.push(format!("the DestinationRule {name} is missing; {fix}")),
            Some(have) if differs(Some(have), want_dr) => {
                let (l, w) = (subsets(have), subsets(want_dr));
                if l == w {
                    out.push(format!(
                        "the DestinationRule {name} differs from the record in its traffic policy; {fix}"
                    ));
                } else {
                    out.push(format!(
                        "the DestinationRule {name} has subsets [{l}], the record says [{w}]; {fix}"
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for (name, want_pa) in &want.peer_authentications {
        if differs(live.peer_authentications.get(name), want_pa) {
            out.push(format!(
                "the PeerAuthentication {name} differs from the record; {fix}"
            ));
        }
    }
    for name in want.deployments.keys() {
        if !live.deployments.contains_key(name) {
            out.push(format!("the Deployment {name} is missing; {fix}"));
        }
    }
    for name in deployments_to_delete(record) {
        if live.deployments.contains_key(&name) {
            out.push(format!(
                "the Deployment {name} is still there, the record says finalize deleted it; {fix}"
            ));
        }
    }
    out
}

/// Percent of a VirtualService's default (last, match-less) mesh route per subset name.
fn live_default_split(vs: &Value) -> Option<BTreeMap<String, f64>> {
    let rules = vs.pointer("/spec/http")?.as_array()?;
    let rule = rules.iter().rev().find(|r| {
        r.get("match")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    })?;
    let route = rule.get("route")?.as_array()?;
    let weight = |d: &Value| {
        d.get("weight")
            .and_then(Value::as_f64)
            .unwrap_or(if route.len() == 1 { 100.0 } else { 0.0 })
    };
    let total: f64 = route.iter().map(weight).sum();
    let mut split = BTreeMap::new();
    for d in route {
        let subset = d
            .pointer("/destination/subset")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let pct = if total == 0.0 {
            0.0
        } else {
            weight(d) * 100.0 / total
        };
        *split.entry(subset).or_insert(0.0) += pct;
    }
    Some(split)
}

/// Percent of a rule's traffic that goes to `role` (Istio's relative weights).
pub fn share(rule: &Rule, role: Role) -> f64 {
    let weight = |w: Option<u32>| f64::from(w.unwrap_or(0));
    if let [only] = rule.to.as_slice() {
        return if only.subset == role && only.weight != Some(0) {
            100.0
        } else {
            0.0
        };
    }
    let total: f64 = rule.to.iter().map(|d| weight(d.weight)).sum();
    if total == 0.0 {
        return 0.0;
    }
    rule.to
        .iter()
        .filter(|d| d.subset == role)
        .map(|d| weight(d.weight))
        .sum::<f64>()
        * 100.0
        / total
}

/// (ready, total) pods carrying every label of a selector, for many selectors.
///
/// The pods are counted once per distinct set of selector keys (a release's selectors all
/// use its app and version labels) into a table by those keys' values, rather than scanned once
/// per selector: `get` on a release of a thousand services and two thousand pods would
/// otherwise compare millions of label sets.
struct PodCounts<'a> {
    pods: &'a [Value],
    /// One table per distinct set of selector keys.
    tables: RefCell<HashMap<Vec<String>, CountsByValues>>,
}

/// The values a pod has for a set of selector keys → (ready, total) pods with those values.
type CountsByValues = HashMap<Vec<String>, (u32, u32)>;

impl<'a> PodCounts<'a> {
    fn new(pods: &'a [Value]) -> Self {
        PodCounts {
            pods,
            tables: RefCell::new(HashMap::new()),
        }
    }

    /// (ready, total) pods carrying every label in `labels`.
    fn of(&self, labels: &BTreeMap<String, String>) -> (u32, u32) {
        let keys: Vec<String> = labels.keys().cloned().collect();
        let values: Vec<String> = labels.values().cloned().collect();
        let mut tables = self.tables.borrow_mut();
        let table = tables.entry(keys).or_insert_with_key(|keys| {
            let mut table = CountsByValues::new();
            for pod in self.pods {
                let have = map_at(pod, "/metadata/labels");
                let Some(values) = keys.iter().map(|k| have.get(k).cloned()).collect() else {
                    continue;
                };
                let counts = table.entry(values).or_default();
                counts.0 = counts.0.saturating_add(u32::from(pod_ready(pod)));
                counts.1 = counts.1.saturating_add(1);
            }
            table
        });
        table.get(&values).copied().unwrap_or_default()
    }
}

/// A pod is ready when its `Ready` condition is `True`.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

#[cfg(test)]
mod tests {
    use policy_sdk::Destination;

    use super::*;

    #[test]
    fn shares_follow_relative_weights() {
        let d = |subset, weight| Destination { subset, weight };
        let rule = Rule {
            matches: vec![],
            to: vec![d(Role::Stable, Some(1)), d(Role::Canary, Some(3))],
        };
        assert_eq!(share(&rule, Role::Canary), 75.0);
        let rule = Rule {
            matches: vec![],
            to: vec![d(Role::Canary, None)],
        };
        assert_eq!(share(&rule, Role::Canary), 100.0);
        assert_eq!(share(&rule, Role::Stable), 0.0);
        let rule = Rule {
            matches: vec![],
            to: vec![d(Role::Stable, Some(90)), d(Role::Canary, None)],
        };
        assert_eq!(share(&rule, Role::Stable), 100.0);
    }
}
