//! The ABI v1 wire types: the input the host hands a policy, and the decision it returns.
//!
//! Input types ignore unknown fields (a newer host may add some); decision types refuse them, so a
//! typo in a policy's output is caught by the host instead of being silently dropped.
//! Maps are `BTreeMap` so every serialisation is byte-for-byte deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The ABI version this crate speaks.
pub const ABI_VERSION: u32 = 1;

/// What made the host ask for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// The release is being started: the policy returns stage 0.
    Start,
    /// An operator asked for one step (`kubectl canary step`).
    Step,
    /// A periodic re-evaluation from `kubectl canary run`.
    Tick,
    /// An operator asked to send all traffic to the canary now.
    Promote,
    /// An operator asked to send all traffic back to stable.
    Abort,
    /// An operator set a weight by hand; see [`State::override_`].
    SetWeight,
}

/// The input a policy receives, as JSON, for every decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// ABI version of the host; `1`.
    pub abi: u32,
    /// Why the decision is asked for.
    pub event: Event,
    /// The host's clock, RFC 3339 UTC. Policies have no clock of their own.
    pub now: String,
    /// The release being decided.
    pub release: ReleaseInfo,
    /// The spec's `policy.config`, verbatim.
    #[serde(default)]
    pub config: serde_json::Value,
    /// The release's state as stored in the cluster.
    pub state: State,
    /// Metric samples by metric name (the spec's `analysis`, measured by the host for this
    /// decision, or simulated by `plan`). A metric with no data is present with its values
    /// `null`; one whose query failed carries the cause in [`MetricSample::error`].
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSample>,
    /// Gates by name: the spec's gating webhooks asked for this decision (see [`Gate`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: BTreeMap<String, Gate>,
}

/// The release a decision is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInfo {
    /// Release name (`metadata.name` of the spec).
    pub name: String,
    /// Namespace of the release and its services.
    pub namespace: String,
    /// The services, in spec order.
    pub services: Vec<ServiceInfo>,
}

/// One service taking part in a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    /// The Kubernetes Service name; also the key of [`Stage::routes`].
    pub name: String,
    /// The host the VirtualService routes (usually the service name).
    pub host: String,
    /// The stable version.
    pub stable: VersionRef,
    /// The canary version.
    pub canary: VersionRef,
    /// True for services that receive traffic from outside the release (from a gateway or from
    /// callers that are not part of it): tester matches go here.
    #[serde(default)]
    pub entry: bool,
    /// Ingress gateways (`namespace/name`) bound to this service's VirtualService.
    #[serde(default)]
    pub gateways: Vec<String>,
}

/// One version of a service: the Istio subset name and the pod labels that select it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRef {
    /// The DestinationRule subset name (DNS-1123, derived from the version: `1.0` → `v1-0`).
    pub subset: String,
    /// Pod labels of this version (`app` and the version label).
    pub labels: BTreeMap<String, String>,
}

/// The phase of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Stages are being applied.
    Progressing,
    /// Held by an operator or a policy.
    Paused,
    /// All traffic goes to the canary; the stable version still runs.
    Promoted,
    /// The canary is the only version.
    Finalized,
    /// All traffic went back to stable by an operator's abort.
    Aborted,
    /// All traffic went back to stable by the policy's decision.
    RolledBack,
    /// The release cannot go on without an operator.
    Failed,
}

/// The release state the host keeps in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Index of the stage currently applied (0 before the first stage is applied).
    pub stage: u32,
    /// Current phase.
    pub phase: Phase,
    /// When the current stage was applied (RFC 3339), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<String>,
    /// Past decisions, oldest first (bounded by the host).
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// A manual weight set by `kubectl canary set-weight`, if any.
    #[serde(default, rename = "override")]
    pub override_: Option<WeightOverride>,
    /// True while an operator holds the release (`kubectl canary pause`, until `resume`): the
    /// phase is `Paused` and a policy should hold. (A `Paused` phase without it is a weight set
    /// by hand, which the next step hands back to the policy.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Stages an operator approved (`kubectl canary approve`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
}

impl State {
    /// True when an operator approved the stage with this index.
    pub fn approved(&self, stage: u32) -> bool {
        self.approvals.iter().any(|a| a.stage == stage)
    }
}

/// An operator's approval of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The stage index approved.
    pub stage: u32,
    /// Who approved it (the kubeconfig user).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One past decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The stage index the decision led to.
    pub stage: u32,
    /// When it was applied (RFC 3339).
    pub at: String,
    /// The action taken.
    pub action: Action,
    /// The reason given.
    pub reason: String,
    /// The metrics the decision was taken on (absent when the release has no analysis). A
    /// policy counts consecutive passing or failing checks from these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, MetricSample>,
    /// The gates the decision was taken on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: BTreeMap<String, Gate>,
}

/// A manual weight set by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightOverride {
    /// Percent of traffic for the canary, 0..=100.
    pub weight: u32,
    /// The one service it applies to; all services when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// A metric measured for both versions (either side may have no data: `None`, never 0).
///
/// In a one-service release the values are `stable` and `canary`. In a multi-service release
/// they are per service, in `services`, and `stable`/`canary` are absent: a policy judges each
/// service's canary ([`MetricSample::canary_values`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSample {
    /// Value for the stable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<f64>,
    /// Value for the canary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<f64>,
    /// Values per service name (multi-service releases).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, VersionValues>,
    /// Why the metric could not be measured (Prometheus unreachable, a query error); the values
    /// are then absent. A policy must not advance on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The values of a metric for one service's two versions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionValues {
    /// Value for the stable version (`None`: no data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<f64>,
    /// Value for the canary version (`None`: no data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<f64>,
}

impl MetricSample {
    /// The same value for both versions of a one-service release.
    pub fn both(value: f64) -> MetricSample {
        MetricSample {
            stable: Some(value),
            canary: Some(value),
            ..MetricSample::default()
        }
    }

    /// The canary's values to judge, as `(service, value)`: one per service of `services`
    /// (service name), or the top-level `canary` (service `None`) when `services` is empty.
    /// A service without data gives `None`.
    pub fn canary_values(&self) -> Vec<(Option<&str>, Option<f64>)> {
        if self.services.is_empty() {
            vec![(None, self.canary)]
        } else {
            self.services
                .iter()
                .map(|(name, v)| (Some(name.as_str()), v.canary))
                .collect()
        }
    }
}

/// When a gating webhook is asked (`spec.hooks[].on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// Before the first stage: a closed gate stops `start`.
    PreStart,
    /// Before every step or tick: a closed gate holds the release.
    PreStep,
    /// Before the release is completed (by a step that completes it, or `promote`).
    PrePromote,
}

/// The answer of one gating webhook for this decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// When the hook is asked.
    pub on: GateKind,
    /// True when the hook answered 2xx in time.
    pub open: bool,
    /// What the hook answered (`200 OK`, `503 Service Unavailable: freeze until Monday`), or
    /// why it could not be asked (`timed out after 5s`): sanitised, at most 200 characters.
    pub answer: String,
}

/// What the policy wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Apply the returned stage.
    Advance,
    /// Keep the current stage; nothing is applied.
    Hold,
    /// Send all traffic back to stable (the returned stage, or the host's default).
    Rollback,
    /// The release is done: the returned stage sends all traffic to the canary.
    Complete,
}

impl Action {
    /// The action's name as written on the wire and in the release history (`advance`, `hold`,
    /// `rollback`, `complete`): the same text serde writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Advance => "advance",
            Action::Hold => "hold",
            Action::Rollback => "rollback",
            Action::Complete => "complete",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The routing stage to apply; required for `advance` and `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// When to ask again (used by `kubectl canary run` and `plan`'s clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue_after_seconds: Option<u64>,
    /// A human-readable reason, recorded in the release history.
    pub reason: String,
}

/// A routing stage: the routing intent for every service of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// Stage index (0-based, increasing as the release advances).
    pub index: u32,
    /// A short name shown to operators (`10%`, `testers`, `100%`).
    pub name: String,
    /// Ordered rules per service name. The first rule whose match applies wins; the last rule
    /// must have no match (a catch-all) so no request is left without a route.
    pub routes: BTreeMap<String, Vec<Rule>>,
}

/// One routing rule of a service: when `matches` applies (any of them; all when empty), send
/// traffic to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Alternatives (OR); inside one [`Match`] every condition must hold (AND).
    /// Empty means the rule matches everything.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<Match>,
    /// Weighted destinations.
    pub to: Vec<Destination>,
}

/// Conditions that must all hold for a request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// Request headers by lower-case name (cookies through the `cookie` header).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// The request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Labels of the calling workload (mesh traffic only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Restrict the match to these gateways (`namespace/name`, or `mesh` for sidecar traffic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Calls from the canary of any other service of this release (source-label chaining).
    ///
    /// The host expands it when it renders, into one `sourceLabels` block per such caller (its
    /// app label and canary version, as [`crate::stages::chain_matches`] lists them), each
    /// keeping this block's other conditions. A policy answers one block per service instead of
    /// one per caller, so a chained stage stays linear in the number of services; the rendered
    /// VirtualServices still name every caller, as Istio needs. Cannot be combined with
    /// `sourceLabels`. A rule whose matches expand to no caller (a one-service release) is left
    /// out of the rendered routes: it could match no request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary_callers: bool,
}

impl Match {
    /// The match of calls from the canary of any other service of the release
    /// ([`Match::canary_callers`](#structfield.canary_callers)).
    pub fn from_canary_callers() -> Match {
        Match {
            canary_callers: true,
            ..Match::default()
        }
    }
}

/// How a string is compared (Istio `StringMatch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum StringMatch {
    /// Byte-for-byte equality.
    Exact(String),
    /// Byte prefix.
    Prefix(String),
    /// RE2 regular expression that must match the whole value.
    Regex(String),
}

/// A role of a version inside a release; the host maps it to the Istio subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The version serving users before the release.
    Stable,
    /// The new version.
    Canary,
}

/// A weighted destination of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// Which version (a role, never a raw subset name).
    pub subset: Role,
    /// Relative weight 0..=100; absent means "all of it" when it is the only destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn action_names_are_the_wire_names() {
        for action in [
            Action::Advance,
            Action::Hold,
            Action::Rollback,
            Action::Complete,
        ] {
            let wire = serde_json::to_value(action).unwrap();
            assert_eq!(wire, serde_json::Value::String(action.as_str().to_string()));
            assert_eq!(action.to_string(), action.as_str());
        }
    }
}
