//! The release engine: one command = read state and live objects, decide, write state, apply.
//!
//! The protocol that makes releases safe to run from any machine and to rerun after a crash:
//! 1. read the record (one GET) and the release's live objects (one LIST per kind);
//! 2. if the live objects differ from what the record wants, an earlier command was interrupted
//!    (or someone edited our objects): converge — apply the difference — and stop there;
//! 3. otherwise decide (the policy, or the operator's command), and compute the new record;
//! 4. write the record, conditional on the resourceVersion read in 1: of two operators racing,
//!    the loser fails here and has applied nothing;
//! 5. apply the new objects in make-before-break order ([`crate::cluster::order`]).

use std::collections::BTreeMap;

use kube::api::ListParams;
use policy_sdk::{
    Action, Decision, Destination, Event, Input, Phase, Role, Stage, WeightOverride, ABI_VERSION,
};
use serde_json::Value;

use super::desired::{deployments_to_delete, desired_objects};
use super::record::{PolicyIdentity, ReleaseRecord, Snapshot};
use crate::cluster::apply::{Applier, ApplyOptions};
use crate::cluster::clone::{canary_deployment, CloneError, CloneRequest};
use crate::cluster::order::{self, ObjectSet, Op};
use crate::cluster::state::{StateStore, Versioned};
use crate::cluster::{inventory, resources, Cluster, ClusterError};
use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL, RELEASE_LABEL};
use crate::render::{self, RenderError};
use crate::spec::Release;

/// Something that decides stages: the policy host in production.
pub trait Decider {
    /// The policy's identity, recorded with the release.
    fn identity(&self) -> &PolicyIdentity;
    /// One decision for `input`, already validated against the release. An error means hold.
    fn decide(&self, input: &Input) -> Result<Decision, Box<dyn std::error::Error + Send + Sync>>;
}

/// How changes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write the state and apply.
    Apply,
    /// Compute and report, write nothing (`--dry-run=client`).
    Preview,
    /// Send every write with `dryRun=All` (`--dry-run=server`).
    ServerDryRun,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Talking to the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The stage cannot be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The policy failed: the decision is hold and nothing was applied. `source` already names
    /// the policy (`policy <name>@sha256:<12>: <cause>`).
    #[error("{source}; holding (nothing applied)")]
    Policy {
        /// `name@sha256:<12 hex>`.
        policy: String,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The release does not exist.
    #[error("release {release:?} not found in namespace {namespace} (kubectl canary list -n {namespace} shows the releases there)")]
    NotFound {
        /// Release name.
        release: String,
        /// Namespace.
        namespace: String,
    },
    /// `start` for a name that is already running with another spec.
    #[error("release {release:?} already exists in namespace {namespace} (phase {phase:?}) with a different spec; step, promote or abort it, or start under another name")]
    Exists {
        /// Release name.
        release: String,
        /// Namespace.
        namespace: String,
        /// Its phase.
        phase: Phase,
    },
    /// The command does not apply in the release's phase.
    #[error("release {release:?} is {phase:?}: {hint}")]
    WrongPhase {
        /// Release name.
        release: String,
        /// Its phase.
        phase: Phase,
        /// What to do instead.
        hint: String,
    },
    /// `start`'s safety checks failed.
    #[error("cannot start release {release:?}:\n{}", problems.join("\n"))]
    Precheck {
        /// Release name.
        release: String,
        /// One line per problem, with its fix.
        problems: Vec<String>,
    },
    /// The canary Deployment could not be cloned.
    #[error(transparent)]
    Clone(#[from] CloneError),
    /// A policy decision that does not fit the command.
    #[error("policy {policy}: {message}; holding (nothing applied)")]
    Refused {
        /// `name@sha256:<12 hex>`.
        policy: String,
        /// Why.
        message: String,
    },
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The record after the command (as written, or as it would be).
    pub record: ReleaseRecord,
    /// The decision's action (`None` when the command only converged).
    pub action: Option<Action>,
    /// The reason recorded (or why nothing changed).
    pub reason: String,
    /// The writes, in order (applied, or planned under [`Mode::Preview`]).
    pub ops: Vec<Op>,
    /// True when the command finished an interrupted earlier one instead of deciding.
    pub converged: bool,
    /// When the policy wants to be asked again, seconds.
    pub requeue_after_seconds: Option<u64>,
}

/// A loaded release, before a command acts on it.
enum Ready {
    /// An interrupted earlier command was finished; this is its outcome.
    Interrupted(Outcome),
    /// Up to date: the record, its resourceVersion, and the live objects.
    Ready(ReleaseRecord, String, ObjectSet),
}

/// Options of `start`.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Take over VirtualServices/DestinationRules of the same names owned by another manager.
    pub adopt: bool,
}

/// Drives releases in one namespace.
pub struct Engine {
    cluster: Cluster,
    store: StateStore<ReleaseRecord>,
    applier: Applier,
    mode: Mode,
    clock: Box<dyn Fn() -> jiff::Timestamp + Send + Sync>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cluster", &self.cluster)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `cluster`'s namespace.
    pub fn new(cluster: Cluster, mode: Mode, apply: ApplyOptions) -> Self {
        let apply = ApplyOptions {
            server_dry_run: mode == Mode::ServerDryRun,
            ..apply
        };
        Engine {
            store: StateStore::new(&cluster, mode == Mode::ServerDryRun),
            applier: Applier::new(cluster.clone(), apply),
            cluster,
            mode,
            clock: Box::new(jiff::Timestamp::now),
        }
    }

    /// Replace the clock (tests and `demo` advance time without waiting).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> jiff::Timestamp + Send + Sync + 'static,
    ) -> Self {
        self.clock = Box::new(clock);
        self
    }

    fn now(&self) -> String {
        (self.clock)().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// The namespace the engine works in.
    pub fn namespace(&self) -> &str {
        &self.cluster.namespace
    }

    /// Load a release's record.
    pub async fn load(&self, release: &str) -> Result<Versioned<ReleaseRecord>, EngineError> {
        self.store
            .load(release)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                release: release.to_string(),
                namespace: self.cluster.namespace.clone(),
            })
    }

    /// Start `spec` with `decider`'s first stage. Rerunning `start` with the same spec finishes
    /// an interrupted start; a terminal release of the same name is replaced.
    pub async fn start(
        &self,
        spec: &Release,
        decider: &dyn Decider,
        options: &StartOptions,
    ) -> Result<Outcome, EngineError> {
        let name = spec.name();
        let existing = self.store.load(name).await?;
        if let Some(current) = &existing {
            if current.record.spec == *spec && !current.record.is_terminal() {
                let live = self.read_live(&current.record).await?;
                return self
                    .converge_or(current.record.clone(), live, "already started")
                    .await;
            }
            if !current.record.is_terminal() {
                return Err(EngineError::Exists {
                    release: name.to_string(),
                    namespace: self.cluster.namespace.clone(),
                    phase: current.record.phase,
                });
            }
        }
        let created = self.precheck_and_clone(spec, options).await?;
        let now = self.now();
        let info = spec.release_info();
        let input = Input {
            abi: ABI_VERSION,
            event: Event::Start,
            now: now.clone(),
            release: info.clone(),
            config: spec.spec.policy.config.clone(),
            state: policy_sdk::State {
                stage: 0,
                phase: Phase::Progressing,
                stage_started_at: None,
                history: Vec::new(),
                override_: None,
            },
            metrics: BTreeMap::new(),
        };
        let decision = self.ask(decider, &input)?;
        let stage = match (decision.action, decision.stage.clone()) {
            (Action::Advance | Action::Complete, Some(stage)) => stage,
            (Action::Hold, _) => render::baseline_stage(&info),
            (action, _) => {
                return Err(EngineError::Refused {
                    policy: decider.identity().short(),
                    message: format!("answered {action:?} to start; expected advance with a stage"),
                })
            }
        };
        let mut record = ReleaseRecord {
            spec: spec.clone(),
            policy: decider.identity().clone(),
            phase: Phase::Progressing,
            stage: stage.clone(),
            stage_started_at: now.clone(),
            roles: vec![Role::Stable, Role::Canary],
            history: Vec::new(),
            weight_override: None,
            created_deployments: created,
            delete_deployments: Vec::new(),
            snapshot: None,
            next_decision_at: None,
            driver: None,
        };
        record.record(decision.action, Some(stage), &decision.reason, &now);
        // Check the stage renders before anything is written.
        desired_objects(&record)?;
        let live = self.read_live(&record).await?;
        if self.mode != Mode::Preview {
            match &existing {
                None => {
                    self.store
                        .create(name, &record)
                        .await
                        .map_err(|e| match e {
                            ClusterError::Api { code: 409, .. } => ClusterError::ReleaseChanged {
                                release: name.to_string(),
                                expected: "none (it was created meanwhile)".to_string(),
                            },
                            other => other,
                        })?;
                }
                Some(old) => {
                    self.store
                        .update(name, &record, &old.resource_version)
                        .await?;
                }
            }
        }
        let ops = self.apply(&record, &live).await?;
        Ok(Outcome {
            record,
            action: Some(decision.action),
            reason: decision.reason,
            ops,
            converged: false,
            requeue_after_seconds: decision.requeue_after_seconds,
        })
    }

    /// Ask the policy about `event` (step, tick, promote, abort, set-weight) and apply its
    /// decision. Promote and abort are the operator's: the policy may shape the stage, but a
    /// hold does not block them, and abort does not even need a working policy.
    pub async fn decide(
        &self,
        current: Versioned<ReleaseRecord>,
        event: Event,
        decider: &dyn Decider,
        weight: Option<WeightOverride>,
    ) -> Result<Outcome, EngineError> {
        let (record, resource_version, live) = match self.ready(current).await? {
            Ready::Interrupted(outcome) => return Ok(outcome),
            Ready::Ready(record, resource_version, live) => (record, resource_version, live),
        };
        self.check_phase(&record, event)?;
        let now = self.now();
        let mut next = record.clone();
        if event == Event::SetWeight {
            next.weight_override = weight.clone();
        }
        let input = Input {
            abi: ABI_VERSION,
            event,
            now: now.clone(),
            release: record.spec.release_info(),
            config: record.spec.spec.policy.config.clone(),
            state: next.policy_state(),
            metrics: BTreeMap::new(),
        };
        let decision = match (event, self.ask(decider, &input)) {
            (_, Ok(decision)) => decision,
            (Event::Abort, Err(e)) => Decision {
                action: Action::Rollback,
                stage: None,
                requeue_after_seconds: None,
                reason: format!("aborted by operator (the policy failed: {e})"),
            },
            (_, Err(e)) => return Err(e),
        };
        let info = record.spec.release_info();
        let (action, stage, phase, reason) = match (event, decision.action) {
            (Event::Abort, _) => (
                Action::Rollback,
                match decision.action {
                    Action::Rollback => decision.stage.clone(),
                    _ => None,
                }
                .unwrap_or_else(|| render::baseline_stage(&info)),
                Phase::Aborted,
                reason_or(&decision, "aborted by operator: all traffic to stable"),
            ),
            (Event::Promote, _) => (
                Action::Complete,
                match decision.action {
                    Action::Complete => decision.stage.clone(),
                    _ => None,
                }
                .unwrap_or_else(|| render::final_stage(&info)),
                Phase::Promoted,
                reason_or(&decision, "promoted by operator: all traffic to canary"),
            ),
            (Event::SetWeight, Action::Hold) | (Event::SetWeight, Action::Advance)
                if decision.stage.is_none() =>
            {
                let w = weight.as_ref().map_or(0, |w| w.weight);
                (
                    Action::Advance,
                    with_weight(&record.stage, weight.as_ref()),
                    Phase::Paused,
                    format!("weight set by operator: canary {w}%"),
                )
            }
            (Event::SetWeight, _) => (
                Action::Advance,
                decision
                    .stage
                    .clone()
                    .unwrap_or_else(|| record.stage.clone()),
                Phase::Paused,
                reason_or(&decision, "weight set by operator"),
            ),
            (_, Action::Hold) => {
                return Ok(Outcome {
                    record,
                    action: Some(Action::Hold),
                    reason: decision.reason,
                    ops: Vec::new(),
                    converged: false,
                    requeue_after_seconds: decision.requeue_after_seconds,
                })
            }
            (_, Action::Advance) => (
                Action::Advance,
                self.stage_of(decider, &decision)?,
                Phase::Progressing,
                decision.reason.clone(),
            ),
            (_, Action::Complete) => (
                Action::Complete,
                self.stage_of(decider, &decision)?,
                Phase::Promoted,
                decision.reason.clone(),
            ),
            (_, Action::Rollback) => (
                Action::Rollback,
                decision
                    .stage
                    .clone()
                    .unwrap_or_else(|| render::baseline_stage(&info)),
                Phase::RolledBack,
                decision.reason.clone(),
            ),
        };
        if event != Event::SetWeight && action == Action::Advance {
            next.weight_override = None;
        }
        next.phase = phase;
        next.record(action, Some(stage), &reason, &now);
        self.commit(
            next,
            &resource_version,
            live,
            action,
            reason,
            decision.requeue_after_seconds,
        )
        .await
    }

    /// Make the canary the only version: routes to the canary subset only, the stable subset
    /// removed, the stable Deployments deleted unless `keep_old`. Only after a promotion.
    pub async fn finalize(
        &self,
        current: Versioned<ReleaseRecord>,
        keep_old: bool,
    ) -> Result<Outcome, EngineError> {
        let (record, resource_version, live) = match self.ready(current).await? {
            Ready::Interrupted(outcome) => return Ok(outcome),
            Ready::Ready(record, resource_version, live) => (record, resource_version, live),
        };
        if record.phase != Phase::Promoted {
            return Err(EngineError::WrongPhase {
                release: record.spec.name().to_string(),
                phase: record.phase,
                hint:
                    "finalize needs all traffic on the canary first: run `kubectl canary promote`"
                        .into(),
            });
        }
        let now = self.now();
        let stable = self.stable_deployments(&record, &live);
        let mut next = record.clone();
        next.snapshot = Some(Snapshot {
            deployments: stable.clone(),
            stage: Some(record.stage.clone()),
            at: now.clone(),
        });
        next.delete_deployments = if keep_old {
            Vec::new()
        } else {
            stable.keys().cloned().collect()
        };
        next.roles = vec![Role::Canary];
        next.phase = Phase::Finalized;
        let info = record.spec.release_info();
        let reason = if keep_old {
            "finalized: canary is the only version (old Deployments kept)".to_string()
        } else {
            format!(
                "finalized: canary is the only version; deleting {}",
                if stable.is_empty() {
                    "nothing".to_string()
                } else {
                    stable.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            )
        };
        let mut stage = render::final_stage(&info);
        stage.index = record.stage.index + 1;
        next.record(Action::Complete, Some(stage), &reason, &now);
        self.commit(
            next,
            &resource_version,
            live,
            Action::Complete,
            reason,
            None,
        )
        .await
    }

    /// Undo a finalize: restore the deleted Deployments, then the stable subset, then the
    /// routing in force before finalize. The release is Promoted again.
    pub async fn undo(&self, current: Versioned<ReleaseRecord>) -> Result<Outcome, EngineError> {
        let (record, resource_version, live) = match self.ready(current).await? {
            Ready::Interrupted(outcome) => return Ok(outcome),
            Ready::Ready(record, resource_version, live) => (record, resource_version, live),
        };
        let snapshot = match (&record.phase, &record.snapshot) {
            (Phase::Finalized, Some(snapshot)) => snapshot.clone(),
            _ => {
                return Err(EngineError::WrongPhase {
                    release: record.spec.name().to_string(),
                    phase: record.phase,
                    hint: "undo reverts a finalize, and this release is not finalized".into(),
                })
            }
        };
        let now = self.now();
        let info = record.spec.release_info();
        let mut next = record.clone();
        next.roles = vec![Role::Stable, Role::Canary];
        next.phase = Phase::Promoted;
        next.delete_deployments = Vec::new();
        let reason = format!(
            "undo of finalize ({}): stable version restored",
            snapshot.at
        );
        let stage = snapshot
            .stage
            .clone()
            .unwrap_or_else(|| render::final_stage(&info));
        next.record(Action::Complete, Some(stage), &reason, &now);
        self.commit(
            next,
            &resource_version,
            live,
            Action::Complete,
            reason,
            None,
        )
        .await
    }

    /// Read the live objects of a loaded release and, if an earlier command was interrupted
    /// (they differ from what the record wants), finish that command instead of a new one.
    async fn ready(&self, current: Versioned<ReleaseRecord>) -> Result<Ready, EngineError> {
        let Versioned {
            record,
            resource_version,
        } = current;
        let live = self.read_live(&record).await?;
        let want = desired_objects(&record)?;
        if order::plan(&live, &want, &deployments_to_delete(&record)).is_empty() {
            Ok(Ready::Ready(record, resource_version, live))
        } else {
            Ok(Ready::Interrupted(
                self.converge_or(record, live, "").await?,
            ))
        }
    }

    /// Write `next` conditional on `rv`, then apply it.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        next: ReleaseRecord,
        rv: &str,
        live: ObjectSet,
        action: Action,
        reason: String,
        requeue_after_seconds: Option<u64>,
    ) -> Result<Outcome, EngineError> {
        desired_objects(&next)?;
        if self.mode != Mode::Preview {
            self.store.update(next.spec.name(), &next, rv).await?;
        }
        let ops = self.apply(&next, &live).await?;
        Ok(Outcome {
            record: next,
            action: Some(action),
            reason,
            ops,
            converged: false,
            requeue_after_seconds,
        })
    }

    /// Apply whatever the record wants that the cluster lacks; report `none_reason` if nothing.
    async fn converge_or(
        &self,
        record: ReleaseRecord,
        live: ObjectSet,
        none_reason: &str,
    ) -> Result<Outcome, EngineError> {
        let ops = self.apply(&record, &live).await?;
        let converged = !ops.is_empty();
        Ok(Outcome {
            reason: if converged {
                format!(
                    "finished an interrupted change: stage {} ({}) now fully applied; run the command again to go on",
                    record.stage.index, record.stage.name
                )
            } else {
                none_reason.to_string()
            },
            record,
            action: None,
            ops,
            converged,
            requeue_after_seconds: None,
        })
    }

    /// Plan from `live` to the record's objects and apply (or, in preview, only plan).
    async fn apply(
        &self,
        record: &ReleaseRecord,
        live: &ObjectSet,
    ) -> Result<Vec<Op>, EngineError> {
        let want = desired_objects(record)?;
        let ops = order::plan(live, &want, &deployments_to_delete(record));
        if self.mode == Mode::Preview {
            return Ok(ops);
        }
        for op in &ops {
            match op {
                Op::Apply(object) => {
                    self.applier.apply(object).await?;
                }
                Op::Delete { kind, name } => self.applier.delete(*kind, name).await?,
            }
        }
        Ok(ops)
    }

    fn ask(&self, decider: &dyn Decider, input: &Input) -> Result<Decision, EngineError> {
        decider.decide(input).map_err(|source| EngineError::Policy {
            policy: decider.identity().short(),
            source,
        })
    }

    fn stage_of(&self, decider: &dyn Decider, decision: &Decision) -> Result<Stage, EngineError> {
        decision.stage.clone().ok_or_else(|| EngineError::Refused {
            policy: decider.identity().short(),
            message: format!("answered {:?} without a stage", decision.action),
        })
    }

    fn check_phase(&self, record: &ReleaseRecord, event: Event) -> Result<(), EngineError> {
        let hint = match (record.phase, event) {
            (Phase::Finalized, _) => Some("it is done; `kubectl canary undo` reverts the finalize"),
            (Phase::Aborted | Phase::RolledBack | Phase::Failed, Event::Abort) => None,
            (Phase::Aborted | Phase::RolledBack | Phase::Failed, _) => {
                Some("all traffic is on stable; start the release again to retry")
            }
            (Phase::Promoted, Event::Step | Event::Tick | Event::SetWeight) => {
                Some("all traffic is on the canary; finalize it, or abort to go back to stable")
            }
            _ => None,
        };
        match hint {
            Some(hint) => Err(EngineError::WrongPhase {
                release: record.spec.name().to_string(),
                phase: record.phase,
                hint: hint.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Live objects of the release: one LIST per kind it uses.
    async fn read_live(&self, record: &ReleaseRecord) -> Result<ObjectSet, EngineError> {
        let ns = Some(self.cluster.namespace.as_str());
        let selector =
            ListParams::default().labels(&format!("{RELEASE_LABEL}={}", record.spec.name()));
        let mut objects = Vec::new();
        objects.extend(
            inventory::list_selected(&self.cluster, resources::DESTINATION_RULE, ns, &selector)
                .await?,
        );
        objects.extend(
            inventory::list_selected(&self.cluster, resources::VIRTUAL_SERVICE, ns, &selector)
                .await?,
        );
        if record.spec.spec.mtls.is_some() {
            objects.extend(
                inventory::list_selected(
                    &self.cluster,
                    resources::PEER_AUTHENTICATION,
                    ns,
                    &selector,
                )
                .await?,
            );
        }
        let needs_deployments = !record.created_deployments.is_empty()
            || record.snapshot.is_some()
            || record.phase == Phase::Promoted;
        if needs_deployments {
            objects.extend(inventory::list(&self.cluster, resources::DEPLOYMENT, ns).await?);
        }
        Ok(ObjectSet::from_objects(objects).0)
    }

    /// The stable Deployments of the release's services, cleaned for re-creation.
    fn stable_deployments(
        &self,
        record: &ReleaseRecord,
        live: &ObjectSet,
    ) -> BTreeMap<String, Value> {
        let info = record.spec.release_info();
        live.deployments
            .iter()
            .filter(|(_, d)| {
                let labels = crate::lint::inventory::map_at(d, "/spec/template/metadata/labels");
                info.services
                    .iter()
                    .any(|s| crate::lint::inventory::selects(&s.stable.labels, &labels))
            })
            .map(|(name, d)| (name.clone(), clean_for_recreate(d)))
            .collect()
    }

    /// `start`'s safety checks, and the canary Deployments to clone.
    async fn precheck_and_clone(
        &self,
        spec: &Release,
        options: &StartOptions,
    ) -> Result<BTreeMap<String, Value>, EngineError> {
        let ns = Some(self.cluster.namespace.as_str());
        let info = spec.release_info();
        let pods = inventory::list(&self.cluster, resources::POD, ns).await?;
        let deployments = inventory::list(&self.cluster, resources::DEPLOYMENT, ns).await?;
        let autoscalers = if spec.spec.services.iter().any(|s| s.canary.image.is_some()) {
            autoscalers(&self.cluster).await?
        } else {
            Vec::new()
        };
        let mut problems = Vec::new();
        let mut created = BTreeMap::new();
        let has_pods = |labels: &BTreeMap<String, String>| {
            pods.iter().any(|p| {
                crate::lint::inventory::selects(
                    labels,
                    &crate::lint::inventory::map_at(p, "/metadata/labels"),
                )
            })
        };
        for (svc_spec, svc) in spec.spec.services.iter().zip(&info.services) {
            if !has_pods(&svc.stable.labels) {
                problems.push(format!(
                    "  service {}: no pod has the stable labels {} (check the version label of the running pods)",
                    svc.name,
                    labels_text(&svc.stable.labels)
                ));
            }
            match &svc_spec.canary.image {
                Some(image) => {
                    let stable = deployments.iter().find(|d| {
                        crate::lint::inventory::selects(
                            &svc.stable.labels,
                            &crate::lint::inventory::map_at(d, "/spec/template/metadata/labels"),
                        )
                    });
                    let Some(stable) = stable else {
                        problems.push(format!(
                            "  service {}: canary.image is set but no Deployment has pods labelled {} to clone",
                            svc.name,
                            labels_text(&svc.stable.labels)
                        ));
                        continue;
                    };
                    let mut manifest = canary_deployment(&CloneRequest {
                        stable,
                        service: &svc.name,
                        version_label: &svc_spec.version_label,
                        stable_version: &svc_spec.stable.version,
                        canary_version: &svc_spec.canary.version,
                        image,
                        replicas: hpa_min_replicas(&autoscalers, stable),
                    })?;
                    manifest["metadata"]["labels"][RELEASE_LABEL] =
                        Value::String(spec.name().to_string());
                    let name = manifest["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    created.insert(name, manifest);
                }
                None => {
                    if !has_pods(&svc.canary.labels) {
                        problems.push(format!(
                            "  service {}: no pod has the canary labels {} (deploy the canary, or set canary.image to have start clone the stable Deployment)",
                            svc.name,
                            labels_text(&svc.canary.labels)
                        ));
                    }
                }
            }
        }
        if !options.adopt {
            for kind in [resources::VIRTUAL_SERVICE, resources::DESTINATION_RULE] {
                for svc in &info.services {
                    if let Some(obj) = self.applier.get(kind, &svc.name).await? {
                        let labels = crate::lint::inventory::map_at(&obj, "/metadata/labels");
                        let ours = labels.get(MANAGED_BY_LABEL).map(String::as_str)
                            == Some(MANAGED_BY)
                            && labels.get(RELEASE_LABEL).map(String::as_str) == Some(spec.name());
                        if !ours {
                            problems.push(format!(
                                "  {} {}/{} exists and is not managed by this release: rerun with --adopt to take it over",
                                kind.kind, self.cluster.namespace, svc.name
                            ));
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(created)
        } else {
            Err(EngineError::Precheck {
                release: spec.name().to_string(),
                problems,
            })
        }
    }
}

/// The namespace's HorizontalPodAutoscalers; none when the API is not served (or not readable:
/// cloning then simply copies the replicas).
async fn autoscalers(cluster: &Cluster) -> Result<Vec<Value>, EngineError> {
    let ns = Some(cluster.namespace.as_str());
    match inventory::list(cluster, resources::HORIZONTAL_POD_AUTOSCALER, ns).await {
        Ok(list) => Ok(list),
        Err(e) if matches!(e.status_code(), Some(403 | 404)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// When an autoscaler scales `deployment`, the replicas a clone should start with: the
/// autoscaler's `minReplicas` (default 1). The stable Deployment's current count reflects its
/// own load, not the canary's.
fn hpa_min_replicas(autoscalers: &[Value], deployment: &Value) -> Option<i64> {
    let name = deployment.pointer("/metadata/name")?.as_str()?;
    autoscalers
        .iter()
        .find(|hpa| {
            hpa.pointer("/spec/scaleTargetRef/kind")
                .and_then(Value::as_str)
                == Some("Deployment")
                && hpa
                    .pointer("/spec/scaleTargetRef/name")
                    .and_then(Value::as_str)
                    == Some(name)
        })
        .map(|hpa| {
            hpa.pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        })
}

fn reason_or(decision: &Decision, default: &str) -> String {
    if decision.reason.trim().is_empty() {
        default.to_string()
    } else {
        format!("{default} ({})", decision.reason)
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `stage` with the catch-all rule of every service (or just `weight.service`) split
/// `100 - w` stable / `w` canary; other rules (testers, chaining) stay.
pub fn with_weight(stage: &Stage, weight: Option<&WeightOverride>) -> Stage {
    let Some(weight) = weight else {
        return stage.clone();
    };
    let mut next = stage.clone();
    for (service, rules) in &mut next.routes {
        if weight.service.as_ref().is_some_and(|s| s != service) {
            continue;
        }
        if let Some(rule) = rules.iter_mut().rev().find(|r| r.matches.is_empty()) {
            let w = weight.weight.min(100);
            rule.to = vec![
                Destination {
                    subset: Role::Stable,
                    weight: Some(100 - w),
                },
                Destination {
                    subset: Role::Canary,
                    weight: Some(w),
                },
            ];
        }
    }
    next.name = format!("manual {}%", weight.weight);
    next
}

/// A Deployment as read, made fit to create again: server-set fields removed.
fn clean_for_recreate(deployment: &Value) -> Value {
    let mut d = deployment.clone();
    if let Some(obj) = d.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "ownerReferences",
        ] {
            meta.remove(key);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove("deployment.kubernetes.io/revision");
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_clone_of_an_autoscaled_deployment_starts_at_min_replicas() {
        let deployment = json!({"metadata": {"name": "web-v1"}, "spec": {"replicas": 12}});
        let hpa = |target: &str, min: Option<i64>| {
            let mut spec = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}});
            if let Some(min) = min {
                spec["minReplicas"] = json!(min);
            }
            json!({"metadata": {"name": "h"}, "spec": spec})
        };
        assert_eq!(hpa_min_replicas(&[], &deployment), None);
        assert_eq!(
            hpa_min_replicas(&[hpa("other", Some(3))], &deployment),
            None
        );
        assert_eq!(
            hpa_min_replicas(&[hpa("web-v1", Some(3))], &deployment),
            Some(3)
        );
        assert_eq!(
            hpa_min_replicas(&[hpa("web-v1", None)], &deployment),
            Some(1)
        );
    }

    #[test]
    fn set_weight_rewrites_only_the_catch_all_rules() {
        let release = crate::spec::load_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/voting-app.yaml"),
        )
        .unwrap()
        .release_info();
        let mut stage = render::baseline_stage(&release);
        let tester = policy_sdk::Rule {
            matches: vec![policy_sdk::Match::default()],
            to: vec![Destination {
                subset: Role::Canary,
                weight: None,
            }],
        };
        stage
            .routes
            .get_mut("voting-app")
            .unwrap()
            .insert(0, tester.clone());
        let only_app = WeightOverride {
            weight: 30,
            service: Some("voting-app".into()),
        };
        let next = with_weight(&stage, Some(&only_app));
        let app = &next.routes["voting-app"];
        assert_eq!(app[0], tester);
        assert_eq!(
            app[1].to,
            vec![
                Destination {
                    subset: Role::Stable,
                    weight: Some(70)
                },
                Destination {
                    subset: Role::Canary,
                    weight: Some(30)
                }
            ]
        );
        assert_eq!(
            next.routes["voting-analytics"],
            stage.routes["voting-analytics"]
        );
        assert_eq!(next.name, "manual 30%");
    }
}
