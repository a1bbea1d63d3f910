//! The release record kept in the cluster (ConfigMap `canary-<release>`, key `state.json`).
//!
//! It holds everything needed to recompute the objects a release wants, so any machine can
//! resume a release and a rerun after a crash can finish the interrupted work: the spec as
//! started, the policy's identity, the phase, the routing stage in force, the history, and what
//! finalize deleted (so undo can restore it).

use std::collections::BTreeMap;

use policy_sdk::{Action, HistoryEntry, Phase, Role, Stage, WeightOverride};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::state::StateRecord;
use crate::spec::Release;

/// How many history entries are kept (oldest dropped first).
pub const HISTORY_LIMIT: usize = 100;

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
        if self.history.len() > HISTORY_LIMIT {
            let excess = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..excess);
        }
    }

    /// The state as the policy sees it.
    pub fn policy_state(&self) -> policy_sdk::State {
        policy_sdk::State {
            stage: self.stage.index,
            phase: self.phase,
            stage_started_at: Some(self.stage_started_at.clone()),
            history: self.history.clone(),
            override_: self.weight_override.clone(),
            paused: false,
            approvals: Vec::new(),
        }
    }

    /// True once the release can no longer change routing by policy decisions.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.phase,
            Phase::Finalized | Phase::Aborted | Phase::RolledBack | Phase::Failed
        )
    }
}
