//! Make-before-break ordering: from the objects live in the cluster and the objects a release
//! wants, the ordered list of writes such that **no intermediate state has a VirtualService
//! route to a subset missing from its DestinationRule**, and mTLS clients switch before servers.
//!
//! The order, per transition:
//! 1. missing Deployments (a subset must select pods before traffic is sent to it; existing
//!    Deployments are never rewritten);
//! 2. DestinationRules with the *union* of live and desired subsets (subsets before references);
//! 3. VirtualServices (references move);
//! 4. DestinationRules with exactly the desired subsets (old subsets go once unreferenced);
//! 5. PeerAuthentications (servers switch to STRICT after clients speak mTLS);
//! 6. Deployments no longer wanted are deleted (after their subset is gone).
//!
//! Only objects whose content differs are written, so a rerun after a crash at any point applies
//! exactly what is still missing, and an up-to-date release costs no writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::resources::{self, Kind};

/// The annotation stamping every object the plugin writes with the generation of the release
/// record it was written for. Not compared by [`differs`]: a stamp alone never costs a write.
pub const GENERATION_ANNOTATION: &str = "canary.kubectl.dev/generation";

/// The generation an object was written for (0 when unstamped).
pub fn stamp_of(object: &Value) -> u64 {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(GENERATION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// A set of objects of the kinds a release touches, by kind then name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectSet {
    /// Deployments by name.
    pub deployments: BTreeMap<String, Value>,
    /// DestinationRules by name.
    pub destination_rules: BTreeMap<String, Value>,
    /// VirtualServices by name.
    pub virtual_services: BTreeMap<String, Value>,
    /// PeerAuthentications by name.
    pub peer_authentications: BTreeMap<String, Value>,
}

impl ObjectSet {
    /// Sort objects into the set by their `kind`; other kinds are returned back.
    pub fn from_objects(objects: impl IntoIterator<Item = Value>) -> (ObjectSet, Vec<Value>) {
        let mut set = ObjectSet::default();
        let mut other = Vec::new();
        for obj in objects {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let slot = match obj.get("kind").and_then(Value::as_str) {
                Some("Deployment") => &mut set.deployments,
                Some("DestinationRule") => &mut set.destination_rules,
                Some("VirtualService") => &mut set.virtual_services,
                Some("PeerAuthentication") => &mut set.peer_authentications,
                _ => {
                    other.push(obj);
                    continue;
                }
            };
            slot.insert(name, obj);
        }
        (set, other)
    }

    /// The object of `kind` named `name`, if the set has it.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        match kind {
            "Deployment" => self.deployments.get(name),
            "DestinationRule" => self.destination_rules.get(name),
            "VirtualService" => self.virtual_services.get(name),
            "PeerAuthentication" => self.peer_authentications.get(name),
            _ => None,
        }
    }

    /// The routing objects (DestinationRules, VirtualServices, PeerAuthentications).
    pub fn routing(&self) -> impl Iterator<Item = &Value> {
        self.destination_rules
            .values()
            .chain(self.virtual_services.values())
            .chain(self.peer_authentications.values())
    }
}

/// Set `object`'s [`GENERATION_ANNOTATION`] to `generation`.
pub fn stamp(object: &mut Value, generation: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                GENERATION_ANNOTATION.into(),
                Value::String(generation.to_string()),
            );
        }
    }
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Server-side apply this object. Shared, not copied, by the plan, the applied list and
    /// the command's outcome: a large release's objects are most of a command's memory.
    Apply(Arc<Value>),
    /// Delete this object.
    Delete {
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: String,
    },
    /// Stamp an existing object the release relies on but does not own (a restored stable
    /// Deployment) with the record's generation, conditional on the resourceVersion read. A
    /// concurrent command that planned to delete it from an older read (finalize) then fails
    /// its precondition instead of deleting what the newer record needs, and if it was deleted
    /// first, this claim fails and the command re-plans (and re-creates it).
    Claim {
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: String,
        /// The record generation to stamp.
        generation: u64,
    },
}

impl Op {
    /// `kind/name` of the object the op writes, for progress and dry-run output.
    pub fn describe(&self) -> String {
        match self {
            Op::Apply(obj) => format!(
                "apply {}/{}",
                obj.get("kind").and_then(Value::as_str).unwrap_or("?"),
                obj.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            Op::Delete { kind, name } => format!("delete {}/{name}", kind.kind),
            Op::Claim { kind, name, .. } => format!("claim {}/{name}", kind.kind),
        }
    }
}

/// The ordered writes that take `live` to `desired` (see the module docs for the order).
///
/// Deployments absent from `desired` but present in `live` are deleted only if
/// `delete_deployments` lists them: the plugin never deletes what it was not asked to.
pub fn plan(live: &ObjectSet, desired: &ObjectSet, delete_deployments: &[String]) -> Vec<Op> {
    plan_batches(live, desired.clone(), delete_deployments)
        .into_iter()
        .flatten()
        .collect()
}

/// [`plan`]'s writes in batches: the writes of one batch do not depend on each other; each
/// batch depends on the previous ones having taken effect (subsets before the routes that use
/// them, routes away before subsets go). Empty batches are left out.
///
/// `desired` is taken, not borrowed: the objects to write move into the plan instead of being
/// copied, as a large release's objects are most of a command's memory.
pub fn plan_batches(
    live: &ObjectSet,
    desired: ObjectSet,
    delete_deployments: &[String],
) -> Vec<Vec<Op>> {
    let ObjectSet {
        deployments: desired_deployments,
        destination_rules,
        virtual_services,
        peer_authentications,
    } = desired;
    let deletes = delete_deployments
        .iter()
        .filter(|name| {
            live.deployments.contains_key(*name) && !desired_deployments.contains_key(*name)
        })
        .map(|name| Op::Delete {
            kind: resources::DEPLOYMENT,
            name: name.clone(),
        })
        .collect();
    // Deployments are only ever created: once running, their spec is defaulted by the server
    // and owned by whoever scales or edits them, and the plugin must not fight that.
    // The ones the release relies on without owning them carry its generation stamp: those are
    // claimed (stamped) when present, so a stale delete of them fails (see [`Op::Claim`]).
    let deployments = desired_deployments
        .into_iter()
        .filter_map(|(name, want)| match live.deployments.get(&name) {
            None => Some(Op::Apply(Arc::new(want))),
            Some(have) if stamp_of(&want) != 0 && stamp_of(have) != stamp_of(&want) => {
                Some(Op::Claim {
                    kind: resources::DEPLOYMENT,
                    name,
                    generation: stamp_of(&want),
                })
            }
            Some(_) => None,
        })
        .collect();
    let mut bridges = Vec::new();
    let mut final_rules = Vec::new();
    for (name, want) in destination_rules {
        let have = live.destination_rules.get(&name);
        let bridge = with_union_subsets(have, &want);
        let last = differs(Some(&bridge), &want);
        if differs(have, &bridge) {
            bridges.push(Op::Apply(Arc::new(bridge)));
        }
        if last {
            final_rules.push(Op::Apply(Arc::new(want)));
        }
    }
    let changed = |live: &BTreeMap<String, Value>, desired: BTreeMap<String, Value>| -> Vec<Op> {
        desired
            .into_iter()
            .filter(|(name, want)| differs(live.get(name), want))
            .map(|(_, want)| Op::Apply(Arc::new(want)))
            .collect()
    };
    let routes = changed(&live.virtual_services, virtual_services);
    let peer = changed(&live.peer_authentications, peer_authentications);
    [deployments, bridges, routes, final_rules, peer, deletes]
        .into_iter()
        .filter(|batch: &Vec<Op>| !batch.is_empty())
        .collect()
}

/// True when applying `desired` would change `live`: absent, a different `spec`, or a label or
/// annotation of `desired` that `live` lacks or has with another value. Fields the server adds
/// (status, managedFields, other managers' labels) do not count.
pub fn differs(live: Option<&Value>, desired: &Value) -> bool {
    let Some(live) = live else { return true };
    if live.get("spec") != desired.get("spec") {
        return true;
    }
    ["labels", "annotations"].iter().any(|key| {
        let want = desired
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_object);
        let have = live
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_object);
        want.is_some_and(|want| {
            want.iter()
                .any(|(k, v)| k != GENERATION_ANNOTATION && have.and_then(|h| h.get(k)) != Some(v))
        })
    })
}

/// `desired` with the live subsets it drops kept, so nothing live references a missing subset.
/// Live subsets keep their place (with the desired definition where the name is kept) and new
/// ones follow, so a bridge that adds nothing equals the live object and costs no write.
fn with_union_subsets(live: Option<&Value>, desired: &Value) -> Value {
    let subsets_of = |v: Option<&Value>| {
        v.and_then(|v| v.pointer("/spec/subsets"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let wanted = subsets_of(Some(desired));
    let name_of = |s: &Value| s.get("name").cloned();
    let mut merged: Vec<Value> = subsets_of(live)
        .into_iter()
        .map(|old| {
            wanted
                .iter()
                .find(|w| name_of(w) == name_of(&old))
                .cloned()
                .unwrap_or(old)
        })
        .collect();
    for new in &wanted {
        if !merged.iter().any(|m| name_of(m) == name_of(new)) {
            merged.push(new.clone());
        }
    }
    let mut bridge = desired.clone();
    if let Some(spec) = bridge.get_mut("spec").and_then(Value::as_object_mut) {
        if merged.is_empty() {
            spec.remove("subsets");
        } else {
            spec.insert("subsets".into(), Value::Array(merged));
        }
    }
    bridge
}

/// Subsets a VirtualService routes to that its host's DestinationRule (in `set`) lacks, as
/// `(virtual service, subset)` pairs: the 503 window. Hosts are matched by the DR's `host` and
/// the route destination's `host` as written (the plugin writes both as the service name).
pub fn dangling_subsets(set: &ObjectSet) -> Vec<(String, String)> {
    let mut defined: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for dr in set.destination_rules.values() {
        let host = dr
            .pointer("/spec/host")
            .and_then(Value::as_str)
            .unwrap_or("");
        let names: Vec<&str> = dr
            .pointer("/spec/subsets")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(|s| s.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        defined.entry(host).or_default().extend(names);
    }
    let mut dangling = Vec::new();
    for (vs_name, vs) in &set.virtual_services {
        let routes = vs
            .pointer("/spec/http")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|rule| rule.get("route").and_then(Value::as_array))
            .flatten();
        for dest in routes {
            let host = dest
                .pointer("/destination/host")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some(subset) = dest.pointer("/destination/subset").and_then(Value::as_str) {
                let ok = defined.get(host).is_some_and(|d| d.contains(&subset));
                if !ok {
                    dangling.push((vs_name.clone(), subset.to_string()));
                }
            }
        }
    }
    dangling
}

/// Apply `ops` to an in-memory set, as the cluster would (used to check plans and to preview).
pub fn simulate(set: &mut ObjectSet, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Apply(obj) => {
                let (one, _) = ObjectSet::from_objects([Value::clone(obj)]);
                set.deployments.extend(one.deployments);
                set.destination_rules.extend(one.destination_rules);
                set.virtual_services.extend(one.virtual_services);
                set.peer_authentications.extend(one.peer_authentications);
            }
            Op::Delete { kind, name } => {
                if *kind == resources::DEPLOYMENT {
                    set.deployments.remove(name);
                }
            }
            Op::Claim {
                kind,
                name,
                generation,
            } => {
                if let Some(deployment) = (*kind == resources::DEPLOYMENT)
                    .then(|| set.deployments.get_mut(name))
                    .flatten()
                {
                    stamp(deployment, *generation);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dr(subsets: &[&str], tls: bool) -> Value {
        let mut spec = json!({
            "host": "reviews",
            "subsets": subsets.iter().map(|s| json!({"name": s, "labels": {"version": s}})).collect::<Vec<_>>(),
        });
        if tls {
            spec["trafficPolicy"] = json!({"tls": {"mode": "ISTIO_MUTUAL"}});
        }
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
               "metadata": {"name": "reviews"}, "spec": spec})
    }

    fn vs(weights: &[(&str, u32)]) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "reviews"},
               "spec": {"hosts": ["reviews"], "http": [{"route": weights.iter().map(|(s, w)|
                   json!({"destination": {"host": "reviews", "subset": s}, "weight": w})).collect::<Vec<_>>()}]}})
    }

    fn deploy(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
               "spec": {"replicas": 1}})
    }

    fn set(objects: Vec<Value>) -> ObjectSet {
        ObjectSet::from_objects(objects).0
    }

    /// The states a release goes through, as (objects, deployments to delete on entry).
    fn states() -> Vec<ObjectSet> {
        vec![
            set(vec![deploy("reviews-v1")]),
            set(vec![
                deploy("reviews-v1"),
                dr(&["v1"], false),
                vs(&[("v1", 100)]),
            ]),
            set(vec![
                deploy("reviews-v1"),
                deploy("reviews-v3"),
                dr(&["v1", "v3"], false),
                vs(&[("v1", 90), ("v3", 10)]),
            ]),
            set(vec![
                deploy("reviews-v1"),
                deploy("reviews-v3"),
                dr(&["v1", "v3"], true),
                vs(&[("v1", 50), ("v3", 50)]),
            ]),
            set(vec![
                deploy("reviews-v1"),
                deploy("reviews-v3"),
                dr(&["v1", "v3"], false),
                vs(&[("v3", 100)]),
            ]),
            set(vec![
                deploy("reviews-v3"),
                dr(&["v3"], false),
                vs(&[("v3", 100)]),
            ]),
            set(vec![
                deploy("reviews-v3"),
                dr(&["v4"], false),
                vs(&[("v4", 100)]),
            ]),
        ]
    }

    #[test]
    fn every_transition_and_every_prefix_of_it_keeps_routes_resolvable() {
        let states = states();
        for (i, from) in states.iter().enumerate() {
            for (j, to) in states.iter().enumerate() {
                let delete: Vec<String> = from.deployments.keys().cloned().collect();
                let ops = plan(from, to, &delete);
                let mut cluster = from.clone();
                // Subsets must also select pods: check the Deployment exists whenever a route
                // references a subset whose pods it would run.
                for (k, op) in ops.iter().enumerate() {
                    simulate(&mut cluster, std::slice::from_ref(op));
                    assert!(
                        dangling_subsets(&cluster).is_empty()
                            || !dangling_subsets(from).is_empty()
                            || !dangling_subsets(to).is_empty(),
                        "transition {i}->{j}: after op {k} ({}) a route dangles: {:?}",
                        op.describe(),
                        dangling_subsets(&cluster)
                    );
                }
                // Converges, and a second plan is empty (idempotence).
                // Deployments are deleted only when listed; VirtualServices and
                // DestinationRules the target lacks are left alone, never deleted.
                let mut expected = to.clone();
                for (name, d) in &from.deployments {
                    if !delete.contains(name) {
                        expected.deployments.insert(name.clone(), d.clone());
                    }
                }
                for (name, o) in &from.destination_rules {
                    expected
                        .destination_rules
                        .entry(name.clone())
                        .or_insert_with(|| o.clone());
                }
                for (name, o) in &from.virtual_services {
                    expected
                        .virtual_services
                        .entry(name.clone())
                        .or_insert_with(|| o.clone());
                }
                assert_eq!(cluster, expected, "transition {i}->{j} did not converge");
                assert!(
                    plan(&cluster, to, &delete).is_empty(),
                    "{i}->{j} not idempotent"
                );
            }
        }
    }

    #[test]
    fn adding_a_version_puts_the_subset_first_and_removing_it_puts_it_last() {
        let states = states();
        let ops = plan(&states[1], &states[2], &[]);
        let order: Vec<String> = ops.iter().map(Op::describe).collect();
        assert_eq!(
            order,
            [
                "apply Deployment/reviews-v3",
                "apply DestinationRule/reviews",
                "apply VirtualService/reviews"
            ]
        );
        let ops = plan(&states[4], &states[5], &["reviews-v1".to_string()]);
        let order: Vec<String> = ops.iter().map(Op::describe).collect();
        assert_eq!(
            order,
            [
                "apply DestinationRule/reviews",
                "delete Deployment/reviews-v1"
            ]
        );
        // A weight change alone writes the VirtualService only.
        let ops = plan(
            &states[2],
            &set(vec![
                deploy("reviews-v1"),
                deploy("reviews-v3"),
                dr(&["v1", "v3"], false),
                vs(&[("v1", 50), ("v3", 50)]),
            ]),
            &[],
        );
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].describe(), "apply VirtualService/reviews");
    }

    #[test]
    fn replacing_every_subset_bridges_through_the_union() {
        let states = states();
        let ops = plan(&states[5], &states[6], &[]);
        let Op::Apply(bridge) = &ops[0] else {
            panic!("{ops:?}")
        };
        let names: Vec<&str> = bridge["spec"]["subsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["v3", "v4"]);
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn differs_ignores_server_fields_but_not_our_labels() {
        let want = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"a": 1}});
        let mut have = want.clone();
        have["status"] = json!({"ok": true});
        have["metadata"]["labels"]["other"] = json!("y");
        have["metadata"]["resourceVersion"] = json!("9");
        assert!(!differs(Some(&have), &want));
        have["metadata"]["labels"]["x"] = json!("2");
        assert!(differs(Some(&have), &want));
        assert!(differs(None, &want));
    }

    #[test]
    fn stamped_deployments_are_created_when_missing_and_claimed_when_stamped_older() {
        let stamped = |name: &str, generation: u64| {
            let mut d = deploy(name);
            d["metadata"]["annotations"] = json!({GENERATION_ANNOTATION: generation.to_string()});
            d
        };
        let live = set(vec![
            deploy("kept-v1"),
            stamped("old-v1", 3),
            stamped("same-v1", 4),
        ]);
        let desired = set(vec![
            stamped("kept-v1", 4),
            stamped("old-v1", 4),
            stamped("same-v1", 4),
            stamped("gone-v1", 4),
            deploy("canary-v2"),
        ]);
        let ops: Vec<String> = plan(&live, &desired, &[])
            .iter()
            .map(Op::describe)
            .collect();
        assert_eq!(
            ops,
            [
                "apply Deployment/canary-v2",
                "apply Deployment/gone-v1",
                "claim Deployment/kept-v1",
                "claim Deployment/old-v1"
            ]
        );
        let mut after = live.clone();
        simulate(&mut after, &plan(&live, &desired, &[]));
        assert!(plan(&after, &desired, &[]).is_empty());
        assert_eq!(stamp_of(&after.deployments["kept-v1"]), 4);
    }
}
