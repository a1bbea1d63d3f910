//! The release engine: the protocol that reads the record and the live objects, writes the
//! record and applies the objects. What a command decides is the pure state machine's
//! ([`super::machine`]); this module only makes it happen safely against a cluster that other
//! operators, CI jobs and crashed runs act on at the same time.
//!
//! # The protocol
//!
//! Every record write bumps the record's `generation`, and every object the engine writes
//! (VirtualServices, DestinationRules, PeerAuthentications) is stamped with the generation it
//! was written for (annotation [`crate::cluster::order::GENERATION_ANNOTATION`]). One command:
//!
//! 1. **read** the record `R` (generation `g`, resourceVersion `rv`) and the release's live
//!    objects (one GET, one LIST per kind);
//! 2. **fence on read**: a live object stamped newer than `g` proves `R` stale — another
//!    command recorded a newer change after our read: exit 3, nothing applied;
//! 3. **converge**: if the live objects differ from what `R` describes, an earlier command was
//!    interrupted (or is still applying, or someone edited our objects): apply exactly what `R`
//!    describes — the *current* record, never an older read — with fenced writes (5). `step`
//!    stops there ("finished an interrupted change"); the commands whose target is absolute
//!    (`set-weight`, `promote`, `abort`, `finalize`, `undo`) go on to 4 on the converged state;
//! 4. **decide** (the policy or the operator, through [`super::machine`]); an "already done"
//!    writes nothing, and a hold writes nothing either unless the release's decisions rest on
//!    signals (an analysis or hooks): then the hold is recorded, with its numbers, in a record
//!    of the same generation, conditional on `rv`, and nothing is applied (so are `pause`,
//!    `resume` and `approve`). Otherwise **write the record first**, `R'` with generation
//!    `g+1`, conditional on `rv`: of two commands that read `R`, one wins and the other fails
//!    here having applied nothing (exit 3);
//! 5. **apply** `R'`'s objects in make-before-break batches
//!    ([`crate::cluster::order::plan_batches`]), every write conditional on the resourceVersion
//!    (deletes: and uid) the object had when read. A write refused as stale means someone wrote
//!    that object since: re-read the record — if it moved on, exit 3 (a newer change is being
//!    applied); if not (another command is converging the same record), re-read the objects
//!    and re-plan.
//!
//! # Why the record and the routing cannot drift
//!
//! - Only one command can write a given record generation (conditional record write), and a
//!   decision is only taken on a record whose objects are all in place (3 before 4).
//! - A command writes an object only if the object differed from its desired state when read,
//!   and only conditional on that read. For a newer decision to be taken, every object must have
//!   matched the (then current) record at the decider's read — so any object a slower command
//!   still meant to write was written in between, and the slower command's write fails. A
//!   command that reads the objects after a newer command began writing them sees a newer stamp
//!   (2). Hence no older read is ever re-applied over a newer change.
//! - Every write is one of make-before-break's batches, computed against what was read; a
//!   refused write stops the batch loop before anything that depended on it.
//!
//! - The stable Deployments a finalize deletes are the user's, so they are not rewritten; but
//!   the ones `undo` restores carry its generation stamp (created stamped, or *claimed*: one
//!   conditional annotation patch, [`crate::cluster::order::Op::Claim`]), and step 2 counts
//!   them. A command still holding the Finalized record therefore either sees the newer stamp
//!   (exit 3) or its delete's precondition fails — it never "finishes" the finalize by
//!   deleting what the newer record restored.
//! - Writes take the fields back from other field managers (forced server-side apply): the
//!   fences above, not field ownership, decide who may write, and a hand edit of an owned
//!   object is drift that the next command converges.
//!
//! What is not fenced: creating an object that did not exist when read (server-side apply has
//! no "must not exist" precondition); the objects concerned (a first start, a canary
//! Deployment, `undo`'s restored Deployments) are only created by the first generation that
//! wants them.

use std::collections::BTreeMap;

use kube::api::ListParams;
use std::sync::Arc;

use policy_sdk::{
    Action, Decision, Event, GateKind, Input, MetricSample, Phase, Role, WeightOverride,
    ABI_VERSION,
};
use serde_json::Value;

use super::desired::{deployments_to_delete, desired_objects};
use super::machine::{self, Next, Refusal, Verdict};
use super::record::{json_sha256, KeptDecision, PolicyIdentity, ReleaseRecord};
use crate::cluster::apply::{Applier, ApplyOptions, BatchError};
use crate::cluster::clone::{canary_deployment, CloneError, CloneRequest};
use crate::cluster::order::{self, stamp_of, ObjectSet, Op};
use crate::cluster::propagation::Propagation;
use crate::cluster::state::{StateStore, Versioned};
use crate::cluster::{inventory, resources, Cluster, ClusterError};
use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL, RELEASE_LABEL};
use crate::render::RenderError;
use crate::signals::{self, hooks, MetricFailure, MetricSource, Prometheus, QueryError};
use crate::spec::{HookEvent, Release};

/// How many times a command re-reads and re-plans when another command converging the same
/// record wrote one of its objects first.
const APPLY_ATTEMPTS: usize = 5;

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
    /// The policy failed: the decision is hold and nothing was applied. `cause` already names
    /// the policy (`policy <name>@sha256:<12>: <cause>`); it is part of this one-line message,
    /// so it is not also reported as the error's source (which would print it twice).
    #[error("{cause}; holding (nothing applied)")]
    Policy {
        /// `name@sha256:<12 hex>`.
        policy: String,
        /// What went wrong.
        cause: Box<dyn std::error::Error + Send + Sync>,
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
    /// A policy decision that does not fit the command or does not mean what its action says.
    #[error("policy {policy}: {message}; holding (nothing applied)")]
    Refused {
        /// `name@sha256:<12 hex>`.
        policy: String,
        /// Why.
        message: String,
    },
    /// The operator's input does not fit the release (e.g. an unknown `--service`).
    #[error("{0}")]
    Input(Refusal),
    /// `start` could not measure the analysis: a query Prometheus refused, or Prometheus could
    /// not be reached. Nothing was applied.
    #[error("cannot start release {release:?} (nothing applied)")]
    Analysis {
        /// Release name.
        release: String,
        /// The first query that failed (boxed: it is large, and errors travel by value).
        #[source]
        failure: Box<MetricFailure>,
    },
    /// The analysis' Prometheus could not be set up (a token or CA file).
    #[error("spec.analysis.prometheus")]
    Prometheus(#[source] QueryError),
    /// A gating webhook closed its gate for a command the operator asked for (start, promote).
    #[error("{command} held: {gate}; nothing applied")]
    GateClosed {
        /// `start` or `promote`.
        command: &'static str,
        /// `gate NAME (KIND) is closed: ANSWER`.
        gate: String,
    },
    /// The release is paused.
    #[error("release {release:?} is paused by {by} since {at}: `kubectl canary resume {release}` lets it go on")]
    Paused {
        /// Release name.
        release: String,
        /// Who paused it.
        by: String,
        /// When.
        at: String,
    },
    /// The objects prove the record this command read stale: a newer change was recorded
    /// after it (exit 3).
    #[error("release {release} changed under you (its objects carry generation {seen}, newer than generation {read} this command read); nothing of this command was applied — rerun it to act on the current state")]
    StaleRead {
        /// Release name.
        release: String,
        /// The generation read.
        read: u64,
        /// The newest stamp found on its objects.
        seen: u64,
    },
    /// While this command applied its record, another recorded a newer change (exit 3).
    #[error("release {release} changed under you (generation {newer} was recorded while this command applied generation {applying}; the newer change is the one in force) — `kubectl canary get {release}` shows it")]
    Superseded {
        /// Release name.
        release: String,
        /// The generation this command applied.
        applying: u64,
        /// The generation found.
        newer: u64,
    },
}

impl EngineError {
    /// True when the command lost a race with another writer (exit 3).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            EngineError::Cluster(ClusterError::ReleaseChanged { .. })
                | EngineError::StaleRead { .. }
                | EngineError::Superseded { .. }
        )
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The record after the command (as written, or as it would be).
    pub record: ReleaseRecord,
    /// The decision's action (`None` when the command only converged or had nothing to do).
    pub action: Option<Action>,
    /// The reason recorded (or why nothing changed).
    pub reason: String,
    /// The writes, in order (applied, or planned under [`Mode::Preview`]).
    pub ops: Vec<Op>,
    /// True when the command finished an interrupted earlier one instead of deciding.
    pub converged: bool,
    /// When the policy wants to be asked again, seconds.
    pub requeue_after_seconds: Option<u64>,
    /// Hooks that could not be told (a told hook never changes the release).
    pub warnings: Vec<String>,
}

/// Options of `start`.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Take over VirtualServices/DestinationRules of the same names owned by another manager.
    pub adopt: bool,
}

/// A release read and brought in line with its record, ready for a decision.
struct Current {
    record: ReleaseRecord,
    resource_version: String,
    live: ObjectSet,
    /// Writes made to finish an interrupted change (empty when none was needed).
    converged: Vec<Op>,
}

/// The live objects of `record`'s release: one LIST per kind it uses.
pub async fn live_objects(
    cluster: &Cluster,
    record: &ReleaseRecord,
) -> Result<ObjectSet, ClusterError> {
    let ns = Some(cluster.namespace.as_str());
    let selector = ListParams::default().labels(&format!("{RELEASE_LABEL}={}", record.spec.name()));
    let mut objects = Vec::new();
    objects.extend(
        inventory::list_selected(cluster, resources::DESTINATION_RULE, ns, &selector).await?,
    );
    objects.extend(
        inventory::list_selected(cluster, resources::VIRTUAL_SERVICE, ns, &selector).await?,
    );
    if record.spec.spec.mtls.is_some() {
        objects.extend(
            inventory::list_selected(cluster, resources::PEER_AUTHENTICATION, ns, &selector)
                .await?,
        );
    }
    let needs_deployments = !record.created_deployments.is_empty()
        || record.snapshot.is_some()
        || record.phase == Phase::Promoted;
    if needs_deployments {
        objects.extend(inventory::list(cluster, resources::DEPLOYMENT, ns).await?);
    }
    Ok(ObjectSet::from_objects(objects).0)
}

/// The newest generation stamped on the release's routing objects.
pub fn newest_stamp(live: &ObjectSet) -> u64 {
    live.routing().map(stamp_of).max().unwrap_or(0)
}

/// Drives releases in one namespace.
pub struct Engine {
    cluster: Cluster,
    store: StateStore<ReleaseRecord>,
    applier: Applier,
    mode: Mode,
    clock: Box<dyn Fn() -> jiff::Timestamp + Send + Sync>,
    propagation: Propagation,
    metric_source: Option<Arc<dyn MetricSource>>,
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
        // Every write is fenced on the resourceVersion read and checked against the release's
        // generation stamp (protocol steps 3 and 5), and objects the release does not own are
        // refused at `start` unless adopted. So field-manager conflicts would only ever stop
        // us converging our own objects after someone edited them by hand (`kubectl patch`,
        // `kubectl edit`): take those fields back, as the record says they must be.
        let apply = ApplyOptions {
            server_dry_run: mode == Mode::ServerDryRun,
            force: true,
            ..apply
        };
        Engine {
            store: StateStore::new(&cluster, mode == Mode::ServerDryRun),
            applier: Applier::new(cluster.clone(), apply),
            cluster,
            mode,
            clock: Box::new(jiff::Timestamp::now),
            propagation: Propagation::disabled(),
            metric_source: None,
        }
    }

    /// Measure the analysis with `source` instead of the spec's Prometheus (`demo`, tests).
    pub fn with_metric_source(mut self, source: Arc<dyn MetricSource>) -> Self {
        self.metric_source = Some(source);
        self
    }

    /// Replace the clock (tests and `demo` advance time without waiting).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> jiff::Timestamp + Send + Sync + 'static,
    ) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Confirm each batch at the data plane ([`crate::cluster::propagation`]); none by default.
    pub fn with_propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = propagation;
        self
    }

    fn now(&self) -> String {
        (self.clock)().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// The cluster the engine works on.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
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
                let current = self.ready(current.clone()).await?;
                let converged = !current.converged.is_empty();
                return Ok(Outcome {
                    reason: if converged {
                        interrupted_reason(&current.record, "")
                    } else {
                        "already started".to_string()
                    },
                    record: current.record,
                    action: None,
                    ops: current.converged,
                    converged,
                    requeue_after_seconds: None,
                    warnings: Vec::new(),
                });
            }
            if !current.record.is_terminal() {
                return Err(EngineError::Exists {
                    release: name.to_string(),
                    namespace: self.cluster.namespace.clone(),
                    phase: current.record.phase,
                });
            }
        }
        let now = self.now();
        // Measured first: a query Prometheus refuses, or a closed gate, stops the start before
        // anything (a cloned canary Deployment) is created.
        let measured = self.measure(spec, true).await?;
        let payload = hook_payload(spec, None, Event::Start, &now);
        let gates = hooks::gates(&spec.spec.hooks, &[GateKind::PreStart], &payload).await;
        if let Some(gate) = hooks::closed(&gates, &[GateKind::PreStart]) {
            return Err(EngineError::GateClosed {
                command: "start",
                gate,
            });
        }
        let created = self.precheck_and_clone(spec, options).await?;
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
                paused: false,
                approvals: Vec::new(),
            },
            metrics: measured,
            gates,
        };
        let decision = self.ask(decider, &input)?;
        let blank = ReleaseRecord {
            spec: spec.clone(),
            policy: decider.identity().clone(),
            phase: Phase::Progressing,
            generation: 0,
            stage: crate::render::baseline_stage(&info),
            stage_started_at: now.clone(),
            roles: vec![Role::Stable, Role::Canary],
            history: Vec::new(),
            weight_override: None,
            created_deployments: created,
            delete_deployments: Vec::new(),
            snapshot: None,
            next_decision_at: None,
            driver: None,
            paused: None,
            approvals: Vec::new(),
            history_base: 0,
            decisions: Vec::new(),
        };
        let live = live_objects(&self.cluster, &blank).await?;
        // Objects left by an earlier release of this name may carry newer stamps than its
        // record (deleted by hand): the new generation is above both.
        let previous = existing
            .as_ref()
            .map_or(0, |v| v.record.generation)
            .max(newest_stamp(&live));
        let mut next =
            machine::start(blank, &decision, previous, &now).map_err(|r| refused(decider, r))?;
        keep(&mut next.record, &input, 0, &decision, decider);
        // Check the stage renders before anything is written.
        // Rendered before the record is written (a record that cannot render is never
        // stored), and applied as rendered.
        let want = desired_objects(&next.record)?;
        let resource_version = match (&existing, self.mode) {
            (_, Mode::Preview) => String::new(),
            (None, _) => {
                self.store
                    .create(name, &next.record)
                    .await
                    .map_err(|e| match e {
                        ClusterError::Api { code: 409, .. } => ClusterError::ReleaseChanged {
                            release: name.to_string(),
                            expected: "none (it was created meanwhile)".to_string(),
                        },
                        other => other,
                    })?
                    .resource_version
            }
            (Some(old), _) => {
                self.store
                    .update(name, &next.record, &old.resource_version)
                    .await?
                    .resource_version
            }
        };
        let ops = self
            .apply_record(&next.record, &resource_version, live, Some(want))
            .await?;
        let warnings = if self.mode == Mode::Apply {
            tell(&next.record, Event::Start, &now).await
        } else {
            Vec::new()
        };
        Ok(Outcome {
            warnings,
            ..outcome(next, ops)
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
        if let Some(weight) = &weight {
            machine::check_weight(&current.record, weight).map_err(EngineError::Input)?;
        }
        let current = self.ready(current).await?;
        if !current.converged.is_empty() && matches!(event, Event::Step | Event::Tick) {
            // A step is relative to the stage in force: finishing the interrupted change is
            // this run's whole work, so that a rerun after a crash does not step twice.
            return Ok(Outcome {
                reason: interrupted_reason(&current.record, "run the command again to go on"),
                record: current.record,
                action: None,
                ops: current.converged,
                converged: true,
                requeue_after_seconds: None,
                warnings: Vec::new(),
            });
        }
        let record = &current.record;
        machine::check_phase(record.phase, event).map_err(|r| wrong_phase(record, r))?;
        if let Some(mark) = &record.paused {
            match event {
                Event::Step => {
                    return Err(EngineError::Paused {
                        release: record.spec.name().to_string(),
                        by: mark.by.clone(),
                        at: mark.at.clone(),
                    })
                }
                // `run` and the runner wait: nothing is measured, no hook is asked.
                Event::Tick => {
                    return Ok(Outcome {
                        reason: format!(
                            "paused by {} since {}: `kubectl canary resume {}` lets it go on",
                            mark.by,
                            mark.at,
                            record.spec.name()
                        ),
                        record: current.record,
                        action: Some(Action::Hold),
                        ops: current.converged,
                        converged: false,
                        requeue_after_seconds: None,
                        warnings: Vec::new(),
                    });
                }
                _ => {}
            }
        }
        let now = self.now();
        let mut state = record.policy_state();
        if event == Event::SetWeight {
            state.override_ = weight.clone();
        }
        // The operator's abort and set-weight do not wait on measurements; the rest are
        // measured and gated.
        let gate_kinds: &[GateKind] = match event {
            Event::Step | Event::Tick => &[GateKind::PreStep, GateKind::PrePromote],
            Event::Promote => &[GateKind::PrePromote],
            _ => &[],
        };
        let (metrics, gates) = if gate_kinds.is_empty() {
            (BTreeMap::new(), BTreeMap::new())
        } else {
            let metrics = self.measure(&record.spec, false).await?;
            let payload = hook_payload(&record.spec, Some(record), event, &now);
            let gates = hooks::gates(&record.spec.spec.hooks, gate_kinds, &payload).await;
            (metrics, gates)
        };
        if event == Event::Promote {
            if let Some(gate) = hooks::closed(&gates, &[GateKind::PrePromote]) {
                return Err(EngineError::GateClosed {
                    command: "promote",
                    gate,
                });
            }
        }
        let input = Input {
            abi: ABI_VERSION,
            event,
            now: now.clone(),
            release: record.spec.release_info(),
            config: record.spec.spec.policy.config.clone(),
            state,
            metrics,
            gates,
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
        let mut verdict = machine::decide(record, event, &decision, weight.as_ref(), &now)
            .map_err(|r| refused(decider, r))?;
        // The host holds the gates whatever the policy answered: a closed pre-step gate stops
        // any new stage, a closed pre-promote gate stops completing.
        if let Verdict::Change(next) = &verdict {
            let kinds: &[GateKind] = match next.action {
                Action::Advance if matches!(event, Event::Step | Event::Tick) => {
                    &[GateKind::PreStep]
                }
                Action::Complete if matches!(event, Event::Step | Event::Tick) => {
                    &[GateKind::PreStep, GateKind::PrePromote]
                }
                _ => &[],
            };
            if let Some(gate) = hooks::closed(&input.gates, kinds) {
                verdict = Verdict::Unchanged {
                    action: Some(Action::Hold),
                    reason: format!(
                        "{gate}; holding (the policy answered {}: {})",
                        next.action.as_str(),
                        decision.reason
                    ),
                    requeue_after_seconds: decision.requeue_after_seconds,
                };
            }
        }
        let measured = record.spec.measures_signals();
        let number = record.last_number().map_or(0, |n| n + 1);
        let history_from = record.policy_history_from();
        let verdict = match verdict {
            // A release whose decisions rest on signals keeps every check (see
            // `machine::recorded_hold`).
            Verdict::Unchanged {
                action: Some(Action::Hold),
                reason,
                ..
            } if measured => {
                let mut next = machine::recorded_hold(record, &decision, &reason, &now);
                keep(&mut next.record, &input, history_from, &decision, decider);
                debug_assert_eq!(next.record.last_number(), Some(number));
                Verdict::Change(Box::new(next))
            }
            Verdict::Change(mut next) => {
                keep(&mut next.record, &input, history_from, &decision, decider);
                Verdict::Change(next)
            }
            unchanged => unchanged,
        };
        let mut outcome = self.commit(current, verdict).await?;
        if self.mode == Mode::Apply && outcome.action.is_some() && measured {
            outcome.warnings = tell(&outcome.record, event, &now).await;
        }
        Ok(outcome)
    }

    /// `pause`: hold the release until `resume`, whoever drives it (`by`: the kubeconfig user).
    pub async fn pause(
        &self,
        current: Versioned<ReleaseRecord>,
        by: &str,
    ) -> Result<Outcome, EngineError> {
        let current = self.ready(current).await?;
        let verdict = machine::pause(&current.record, by, &self.now())
            .map_err(|r| wrong_phase(&current.record, r))?;
        self.commit(current, verdict).await
    }

    /// `resume`: a paused release goes on from where it was.
    pub async fn resume(
        &self,
        current: Versioned<ReleaseRecord>,
        by: &str,
    ) -> Result<Outcome, EngineError> {
        let current = self.ready(current).await?;
        let verdict =
            machine::resume(&current.record, by).map_err(|r| wrong_phase(&current.record, r))?;
        self.commit(current, verdict).await
    }

    /// `approve`: record `by`'s approval of `stage` (default: the next one).
    pub async fn approve(
        &self,
        current: Versioned<ReleaseRecord>,
        stage: Option<u32>,
        by: &str,
    ) -> Result<Outcome, EngineError> {
        let current = self.ready(current).await?;
        let verdict = machine::approve(&current.record, stage, by, &self.now())
            .map_err(|r| wrong_phase(&current.record, r))?;
        self.commit(current, verdict).await
    }

    /// The analysis' metrics of `spec`, measured now (none without an analysis). `strict`
    /// (`start`) refuses a spec whose queries do not all answer; otherwise failures stay in the
    /// samples, for the policy to hold on.
    async fn measure(
        &self,
        spec: &Release,
        strict: bool,
    ) -> Result<BTreeMap<String, MetricSample>, EngineError> {
        let Some(analysis) = &spec.spec.analysis else {
            return Ok(BTreeMap::new());
        };
        let source: Arc<dyn MetricSource> = match &self.metric_source {
            Some(source) => source.clone(),
            None => Arc::new(
                Prometheus::new(&analysis.prometheus, &self.cluster)
                    .map_err(EngineError::Prometheus)?,
            ),
        };
        let mut measured = signals::measure(source.as_ref(), analysis, spec).await;
        if strict && !measured.failures.is_empty() {
            return Err(EngineError::Analysis {
                release: spec.name().to_string(),
                failure: Box::new(measured.failures.remove(0)),
            });
        }
        Ok(measured.metrics)
    }

    /// Make the canary the only version: routes to the canary subset only, the stable subset
    /// removed, the stable Deployments deleted unless `keep_old`. Only after a promotion; a
    /// finalized release is reported "already finalized".
    pub async fn finalize(
        &self,
        current: Versioned<ReleaseRecord>,
        keep_old: bool,
    ) -> Result<Outcome, EngineError> {
        let current = self.ready(current).await?;
        let stable = self.stable_deployments(&current.record, &current.live);
        let verdict = machine::finalize(&current.record, stable, keep_old, &self.now())
            .map_err(|r| wrong_phase(&current.record, r))?;
        self.commit(current, verdict).await
    }

    /// Undo a finalize: restore the deleted Deployments, then the stable subset, then the
    /// routing in force before finalize. The release is Promoted again.
    pub async fn undo(&self, current: Versioned<ReleaseRecord>) -> Result<Outcome, EngineError> {
        let current = self.ready(current).await?;
        let verdict = machine::undo(&current.record, &self.now())
            .map_err(|r| wrong_phase(&current.record, r))?;
        self.commit(current, verdict).await
    }

    /// Read the live objects of a loaded release, check they are not ahead of it (protocol
    /// step 2) and, if an earlier command was interrupted, finish it (step 3).
    async fn ready(&self, current: Versioned<ReleaseRecord>) -> Result<Current, EngineError> {
        let Versioned {
            record,
            resource_version,
        } = current;
        let live = live_objects(&self.cluster, &record).await?;
        let pending = !order::plan_batches(
            &live,
            desired_objects(&record)?,
            &deployments_to_delete(&record),
        )
        .is_empty();
        if !pending {
            check_stamps(&record, &live)?;
            return Ok(Current {
                record,
                resource_version,
                live,
                converged: Vec::new(),
            });
        }
        let converged = self
            .apply_record(&record, &resource_version, live.clone(), None)
            .await?;
        // Read again rather than simulate: the next writes are fenced on these resourceVersions.
        let live = if self.mode == Mode::Preview {
            let mut live = live;
            order::simulate(&mut live, &converged);
            live
        } else {
            live_objects(&self.cluster, &record).await?
        };
        Ok(Current {
            record,
            resource_version,
            live,
            converged,
        })
    }

    /// Write a verdict's record (conditional on the resourceVersion read: step 4) and apply it
    /// (step 5); report an unchanged verdict as it is.
    async fn commit(&self, current: Current, verdict: Verdict) -> Result<Outcome, EngineError> {
        let Current {
            record,
            resource_version,
            live,
            converged,
        } = current;
        let next = match verdict {
            Verdict::Unchanged {
                action,
                reason,
                requeue_after_seconds,
            } => {
                return Ok(Outcome {
                    record,
                    action,
                    reason,
                    ops: converged,
                    converged: false,
                    requeue_after_seconds,
                    warnings: Vec::new(),
                })
            }
            Verdict::Change(next) => *next,
        };
        if next.record.generation == record.generation {
            // Only the record changes (a recorded hold, a pause, an approval): the routing is
            // the one in force, so nothing is applied. The write is still conditional on the
            // resourceVersion read, which fences it like any other.
            if self.mode != Mode::Preview {
                self.store
                    .update(next.record.spec.name(), &next.record, &resource_version)
                    .await?;
            }
            return Ok(outcome(next, converged));
        }
        // Rendered before the record is written (a record that cannot render is never
        // stored), and applied as rendered.
        let want = desired_objects(&next.record)?;
        let written = if self.mode == Mode::Preview {
            resource_version
        } else {
            self.store
                .update(next.record.spec.name(), &next.record, &resource_version)
                .await?
                .resource_version
        };
        let mut ops = converged;
        ops.extend(
            self.apply_record(&next.record, &written, live, Some(want))
                .await?,
        );
        Ok(outcome(next, ops))
    }

    /// Apply what `record` (stored at `record_rv`) describes, from `live`, with fenced writes
    /// (protocol step 5); `rendered` is its desired objects when the caller has them already.
    /// Returns the writes made (planned, in preview).
    async fn apply_record(
        &self,
        record: &ReleaseRecord,
        record_rv: &str,
        mut live: ObjectSet,
        mut rendered: Option<ObjectSet>,
    ) -> Result<Vec<Op>, EngineError> {
        let delete = deployments_to_delete(record);
        let mut done = Vec::new();
        for _ in 0..APPLY_ATTEMPTS {
            check_stamps(record, &live)?;
            // Rendered again on a retry rather than kept: the plan holds what it writes, and a
            // second copy of every object of a large release is most of a command's memory.
            let want = match rendered.take() {
                Some(want) => want,
                None => desired_objects(record)?,
            };
            let batches = order::plan_batches(&live, want, &delete);
            if self.mode == Mode::Preview {
                return Ok(batches.into_iter().flatten().collect());
            }
            match self
                .applier
                .apply_batches(&batches, &live, &mut self.propagation.gate(&live))
                .await
            {
                Ok(applied) => {
                    done.extend(applied);
                    return Ok(done);
                }
                Err(BatchError { applied, error }) if error.is_stale_write() => {
                    done.extend(applied);
                    self.check_still_current(record, record_rv).await?;
                    live = live_objects(&self.cluster, record).await?;
                }
                Err(BatchError { error, .. }) => return Err(error.into()),
            }
        }
        Err(ClusterError::ReleaseChanged {
            release: record.spec.name().to_string(),
            expected: record_rv.to_string(),
        }
        .into())
    }

    /// After a stale object write: fail if the record moved on since `record_rv`.
    async fn check_still_current(
        &self,
        record: &ReleaseRecord,
        record_rv: &str,
    ) -> Result<(), EngineError> {
        let now = self.load(record.spec.name()).await?;
        if now.resource_version == record_rv {
            return Ok(());
        }
        Err(EngineError::Superseded {
            release: record.spec.name().to_string(),
            applying: record.generation,
            newer: now.record.generation,
        })
    }

    fn ask(&self, decider: &dyn Decider, input: &Input) -> Result<Decision, EngineError> {
        decider.decide(input).map_err(|cause| EngineError::Policy {
            policy: decider.identity().short(),
            cause,
        })
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

/// Protocol step 2: no live object may carry a generation newer than the record read — the
/// routing objects, and the stable Deployments a finalize of this release removes and an undo
/// restores (stamped when restored, so a command still holding the Finalized record cannot
/// "finish" the finalize by deleting what the undo just put back).
fn check_stamps(record: &ReleaseRecord, live: &ObjectSet) -> Result<(), EngineError> {
    let restorable = record
        .snapshot
        .iter()
        .flat_map(|s| s.deployments.keys())
        .chain(&record.delete_deployments);
    let seen = restorable
        .filter_map(|name| live.deployments.get(name))
        .map(stamp_of)
        .fold(newest_stamp(live), u64::max);
    if seen > record.generation {
        return Err(EngineError::StaleRead {
            release: record.spec.name().to_string(),
            read: record.generation,
            seen,
        });
    }
    Ok(())
}

/// Keep `input` and `decision` in `record` (whose newest history entry is the decision's), with
/// the signals on that entry.
fn keep(
    record: &mut ReleaseRecord,
    input: &Input,
    history_from: u64,
    decision: &Decision,
    decider: &dyn Decider,
) {
    record.record_signals(&input.metrics, &input.gates);
    let mut state = input.state.clone();
    state.history = Vec::new();
    let kept = KeptDecision {
        number: record.last_number().unwrap_or(0),
        event: input.event,
        now: input.now.clone(),
        state,
        history_from,
        metrics: input.metrics.clone(),
        gates: input.gates.clone(),
        input_sha256: json_sha256(input),
        module_sha256: decider.identity().sha256.clone(),
        output_sha256: json_sha256(decision),
        action: decision.action,
        reason: decision.reason.clone(),
        stage: decision.stage.as_ref().map(|s| (s.index, s.name.clone())),
    };
    record.keep_decision(kept);
}

/// The JSON a webhook receives: the release, the stage in force, the phase and the last
/// decision. Hooks add their own name, `on` and `metadata`.
fn hook_payload(spec: &Release, record: Option<&ReleaseRecord>, event: Event, now: &str) -> Value {
    let last = record.and_then(|r| r.history.last());
    serde_json::json!({
        "release": spec.name(),
        "namespace": spec.namespace(),
        "event": event,
        "at": now,
        "phase": record.map(|r| r.phase),
        "stage": record.map(|r| serde_json::json!({"index": r.stage.index, "name": r.stage.name})),
        "lastDecision": last.map(|h| serde_json::json!({"action": h.action, "reason": h.reason, "at": h.at, "stage": h.stage})),
    })
}

/// Tell the hooks about a recorded decision: `event` hooks always, `post-promote` when it
/// promoted, `rollback` when it rolled back or aborted. Returns warnings for hooks not told.
async fn tell(record: &ReleaseRecord, event: Event, now: &str) -> Vec<String> {
    let hooks_spec = &record.spec.spec.hooks;
    if hooks_spec.is_empty() {
        return Vec::new();
    }
    let payload = hook_payload(&record.spec, Some(record), event, now);
    let mut told = vec![HookEvent::Event];
    match record.history.last().map(|h| h.action) {
        Some(Action::Complete) => told.push(HookEvent::PostPromote),
        Some(Action::Rollback) => told.push(HookEvent::Rollback),
        _ => {}
    }
    let mut warnings = Vec::new();
    for on in told {
        warnings.extend(hooks::tell(hooks_spec, on, &payload).await);
    }
    warnings
}

fn interrupted_reason(record: &ReleaseRecord, then: &str) -> String {
    let mut reason = format!(
        "finished an interrupted change: stage {} ({}) now fully applied",
        record.stage.index, record.stage.name
    );
    if !then.is_empty() {
        reason.push_str("; ");
        reason.push_str(then);
    }
    reason
}

fn outcome(next: Next, ops: Vec<Op>) -> Outcome {
    Outcome {
        record: next.record,
        action: Some(next.action),
        reason: next.reason,
        ops,
        converged: false,
        requeue_after_seconds: next.requeue_after_seconds,
        warnings: Vec::new(),
    }
}

fn refused(decider: &dyn Decider, refusal: Refusal) -> EngineError {
    match refusal {
        Refusal::Decision(message) => EngineError::Refused {
            policy: decider.identity().short(),
            message,
        },
        other => EngineError::Input(other),
    }
}

fn wrong_phase(record: &ReleaseRecord, refusal: Refusal) -> EngineError {
    match refusal {
        Refusal::WrongPhase { phase, hint } => EngineError::WrongPhase {
            release: record.spec.name().to_string(),
            phase,
            hint,
        },
        other => EngineError::Input(other),
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

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
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
}
