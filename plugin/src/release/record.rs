//! The release record kept in the cluster (ConfigMap `canary-<release>`, key `state.json`).
//!
//! It holds everything needed to recompute the objects a release wants, so any machine can
//! resume a release and a rerun after a crash can finish the interrupted work: the spec as
//! started, the policy's identity, the phase, the routing stage in force, the history, and what
//! finalize deleted (so undo can restore it).

use std::collections::BTreeMap;

use policy_sdk::{
    Action, Approval, Event, Gate, HistoryEntry, MetricSample, Phase, Role, Stage, WeightOverride,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::state::StateRecord;
use crate::spec::Release;

/// How many history entries a policy is shown (the newest).
pub const HISTORY_LIMIT: usize = 100;

/// How many decisions keep their whole input, for `kubectl canary why --replay` (the newest).
pub const KEPT_DECISIONS: usize = 10;

/// How many history entries the record keeps (oldest dropped first): the policy's
/// [`HISTORY_LIMIT`], plus enough that every kept decision's input history is still there.
pub const RECORD_HISTORY: usize = HISTORY_LIMIT + KEPT_DECISIONS;

use crate::labels::PHASE_LABEL;

/// The policy a release runs, pinned by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyIdentity {
    /// `policy.module` as written in the spec.
    pub module: String,
    /// sha256 of the module bytes (hex): a resumed release runs exactly this module.
    pub sha256: String,
    /// The name from the module's metadata (or the module reference).
    pub name: String,
    /// `sha256:<hex>` of the OCI manifest, when the module came from a registry: a `step` on
    /// another machine fetches this digest (the same bytes), and refuses a tag that moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_digest: Option<String>,
}

impl PolicyIdentity {
    /// `name@sha256:<12 hex>`, as error messages and `get` show it.
    pub fn short(&self) -> String {
        format!(
            "{}@sha256:{}",
            self.name,
            &self.sha256[..self.sha256.len().min(12)]
        )
    }
}

/// What finalize removed, so `undo` can put it back.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Stable Deployments as they were (server fields stripped), by name.
    pub deployments: BTreeMap<String, Value>,
    /// The stage in force before finalize (100% canary with both subsets).
    pub stage: Option<Stage>,
    /// When finalize ran.
    pub at: String,
}

/// The record of one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    /// The spec as started (later edits of the file do not change a running release).
    pub spec: Release,
    /// The policy deciding the stages.
    pub policy: PolicyIdentity,
    /// Current phase.
    pub phase: Phase,
    /// Bumped by every write of a decision. Every object the release writes is stamped with the
    /// generation it was written for ([`crate::cluster::order::GENERATION_ANNOTATION`]): an
    /// object stamped newer than a record read proves that read stale (see
    /// [`super::engine`]'s protocol). 0 in records written before generations existed.
    #[serde(default)]
    pub generation: u64,
    /// The routing stage in force (what the VirtualServices route by).
    pub stage: Stage,
    /// When the current stage was applied (RFC 3339).
    pub stage_started_at: String,
    /// The roles that have a subset in the DestinationRules: both until finalize, then canary.
    pub roles: Vec<Role>,
    /// Decisions so far, oldest first, at most [`HISTORY_LIMIT`].
    pub history: Vec<HistoryEntry>,
    /// A weight set by hand with `set-weight`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_override: Option<WeightOverride>,
    /// Deployments the plugin creates (cloned canaries), by name, as applied: a rerun re-creates
    /// them if they are missing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created_deployments: BTreeMap<String, Value>,
    /// Stable Deployments finalize deletes (empty with `--keep-old`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_deployments: Vec<String>,
    /// What finalize removed, for `undo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// When to ask the policy again (from its last decision), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_decision_at: Option<String>,
    /// Who drives the release: absent while the operator's CLI does; the runner after
    /// `run --detach` (see [`super::driver`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<super::driver::Driver>,
    /// Set while an operator holds the release (`pause`, until `resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<PauseMark>,
    /// Stages an operator approved (`approve`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// How many history entries were dropped from the front: entry `i` of `history` is
    /// decision number `history_base + i` (numbers start at 0 with the start).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_base: u64,
    /// The inputs of the newest decisions (at most [`KEPT_DECISIONS`]), for `why --replay`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<KeptDecision>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Who paused a release, when, and the phase `resume` returns it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseMark {
    /// The kubeconfig user.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// The phase before the pause.
    pub phase: Phase,
}

/// sha256 (hex) of `value`'s JSON: how a kept decision's input and output are fingerprinted,
/// when kept and when replayed.
pub fn json_sha256(value: &impl Serialize) -> String {
    crate::policy::sha256_hex(&serde_json::to_vec(value).unwrap_or_default())
}

/// One decision's input, kept whole but for what the record already holds (the spec gives the
/// release and the config; the history gives the entries the input showed), and its output's
/// digest: enough to rerun it exactly and tell whether the answer is the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptDecision {
    /// The decision's number: its history entry is number `number`.
    pub number: u64,
    /// The input's event.
    pub event: Event,
    /// The input's clock.
    pub now: String,
    /// The input's state, its `history` left out.
    pub state: policy_sdk::State,
    /// The number of the first history entry the input showed (it showed entries
    /// `history_from..number`).
    pub history_from: u64,
    /// The input's metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, MetricSample>,
    /// The input's gates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: BTreeMap<String, Gate>,
    /// sha256 (hex) of the input's JSON, as the policy received it.
    pub input_sha256: String,
    /// sha256 (hex) of the module that decided.
    pub module_sha256: String,
    /// sha256 (hex) of the decision's JSON, as the policy answered it.
    pub output_sha256: String,
    /// The policy's action.
    pub action: Action,
    /// The policy's reason.
    pub reason: String,
    /// Index and name of the stage it answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<(u32, String)>,
}

impl StateRecord for ReleaseRecord {
    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(PHASE_LABEL.to_string(), format!("{:?}", self.phase))]);
        if self.driver.as_ref().is_some_and(|d| d.is_runner()) {
            labels.insert(
                super::driver::DRIVER_LABEL.to_string(),
                super::driver::RUNNER.to_string(),
            );
        }
        labels
    }
}

impl ReleaseRecord {
    /// Record a decision: append to the history (bounded) and, when it changed the stage,
    /// move to it and restart the stage clock.
    pub fn record(&mut self, action: Action, stage: Option<Stage>, reason: &str, now: &str) {
        if let Some(stage) = stage {
            if stage != self.stage {
                self.stage_started_at = now.to_string();
            }
            self.stage = stage;
        }
        self.history.push(HistoryEntry {
            stage: self.stage.index,
            at: now.to_string(),
            action,
            reason: reason.to_string(),
            metrics: BTreeMap::new(),
            gates: BTreeMap::new(),
        });
        if self.history.len() > RECORD_HISTORY {
            let excess = self.history.len() - RECORD_HISTORY;
            self.history.drain(..excess);
            self.history_base += excess as u64;
        }
    }

    /// The number of the newest history entry (`None` before the first).
    pub fn last_number(&self) -> Option<u64> {
        (self.history_base + self.history.len() as u64).checked_sub(1)
    }

    /// Attach the signals a decision was taken on to its (the newest) history entry.
    pub fn record_signals(
        &mut self,
        metrics: &BTreeMap<String, MetricSample>,
        gates: &BTreeMap<String, Gate>,
    ) {
        if let Some(entry) = self.history.last_mut() {
            entry.metrics.clone_from(metrics);
            entry.gates.clone_from(gates);
        }
    }

    /// Keep a decision's input (the newest [`KEPT_DECISIONS`]).
    pub fn keep_decision(&mut self, kept: KeptDecision) {
        self.decisions.push(kept);
        if self.decisions.len() > KEPT_DECISIONS {
            let excess = self.decisions.len() - KEPT_DECISIONS;
            self.decisions.drain(..excess);
        }
    }

    /// The state as the policy sees it: the newest [`HISTORY_LIMIT`] history entries.
    pub fn policy_state(&self) -> policy_sdk::State {
        let from = self.history.len().saturating_sub(HISTORY_LIMIT);
        policy_sdk::State {
            stage: self.stage.index,
            phase: self.phase,
            stage_started_at: Some(self.stage_started_at.clone()),
            history: self.history[from..].to_vec(),
            override_: self.weight_override.clone(),
            paused: self.paused.is_some(),
            approvals: self.approvals.clone(),
        }
    }

    /// The number of the first history entry [`ReleaseRecord::policy_state`] shows.
    pub fn policy_history_from(&self) -> u64 {
        self.history_base + self.history.len().saturating_sub(HISTORY_LIMIT) as u64
    }

    /// The input `kept` was decided on, rebuilt from this record; `Err` names what is missing.
    pub fn kept_input(&self, kept: &KeptDecision) -> Result<policy_sdk::Input, String> {
        if kept.history_from < self.history_base {
            return Err(format!(
                "the history decision {} was shown (from decision {}) was trimmed",
                kept.number, kept.history_from
            ));
        }
        let from = (kept.history_from - self.history_base) as usize;
        let to = (kept.number.saturating_sub(self.history_base)) as usize;
        let history = self
            .history
            .get(from..to)
            .ok_or_else(|| format!("decision {} is not in the history", kept.number))?
            .to_vec();
        let mut state = kept.state.clone();
        state.history = history;
        Ok(policy_sdk::Input {
            abi: policy_sdk::ABI_VERSION,
            event: kept.event,
            now: kept.now.clone(),
            release: self.spec.release_info(),
            config: self.spec.spec.policy.config.clone(),
            state,
            metrics: kept.metrics.clone(),
            gates: kept.gates.clone(),
        })
    }

    /// True once the release can no longer change routing by policy decisions.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.phase,
            Phase::Finalized | Phase::Aborted | Phase::RolledBack | Phase::Failed
        )
    }
}
