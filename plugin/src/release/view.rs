//! Building the `get` tree's view model from a release record and the pods in the namespace.

use policy_sdk::{Role, Rule};
use serde_json::Value;

use super::record::ReleaseRecord;
use crate::lint::inventory::{map_at, selects};
use crate::ui::tree::{DecisionView, ReleaseView, ServiceView, SubsetView};

/// The view of `record`, with pod counts from `pods` (the namespace's Pods).
pub fn release_view(record: &ReleaseRecord, pods: &[Value]) -> ReleaseView {
    let info = record.spec.release_info();
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
            let subsets = record
                .roles
                .iter()
                .map(|role| {
                    let version = match role {
                        Role::Stable => &svc.stable,
                        Role::Canary => &svc.canary,
                    };
                    let (ready, total) = pod_counts(pods, &version.labels);
                    SubsetView {
                        role: *role,
                        subset: version.subset.clone(),
                        version: version.labels.values().last().cloned().unwrap_or_default(),
                        weight: default_rule.map(|r| share(r, *role)),
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
            action: crate::ui::action_name(h.action).to_string(),
            at: h.at.clone(),
            reason: h.reason.clone(),
        }),
    }
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

/// (ready, total) pods carrying every label in `labels`.
fn pod_counts(pods: &[Value], labels: &std::collections::BTreeMap<String, String>) -> (u32, u32) {
    let selected: Vec<&Value> = pods
        .iter()
        .filter(|p| selects(labels, &map_at(p, "/metadata/labels")))
        .collect();
    let ready = selected.iter().filter(|p| pod_ready(p)).count();
    (
        u32::try_from(ready).unwrap_or(u32::MAX),
        u32::try_from(selected.len()).unwrap_or(u32::MAX),
    )
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
