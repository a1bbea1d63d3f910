//! The in-cluster runner: drives the releases handed to it (`run --detach`) with the same
//! engine as `step`, while it holds a Lease.
//!
//! How it works:
//! - one WATCH on the state ConfigMaps labelled `app.kubernetes.io/managed-by=kubectl-canary`
//!   and `canary.kubectl.dev/driver=runner` (plus the operator's `--selector`), in one namespace
//!   or all: no polling, an idle runner sends no request about releases;
//! - each driven release is due at once when it appears or someone else changes it, then when
//!   its policy asked to be asked again (`requeueAfterSeconds`, else `--interval`);
//! - while this replica leads ([`lease`]), due releases are decided one at a time, each with
//!   [`Engine::decide`] on [`Event::Tick`] (the policy judges pauses and gates, as under
//!   `run`); leadership is checked right before each decision, so a replica whose renewals
//!   fail stops before its Lease can pass to another;
//! - on shutdown the decision in flight finishes (the engine's own write-then-apply protocol),
//!   no new one starts, and the Lease is released.

pub mod install;
pub mod lease;
pub mod metrics;
pub mod serve;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use policy_sdk::{Event, Phase};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::apply::ApplyOptions;
use crate::cluster::propagation::{Propagation, PropagationOptions, PropagationProgress};
use crate::cluster::state::{StateStore, Versioned, STATE_KEY};
use crate::cluster::{Cluster, ClusterError};
use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL, RELEASE_LABEL};
use crate::release::driver::{Driver, DRIVER_LABEL, RUNNER};
use crate::release::record::ReleaseRecord;
use crate::release::{Decider, Engine, EngineError, Mode};

use lease::{Elector, Leadership, LeaseConfig};
use metrics::Metrics;

/// Builds the decider for a release (the policy host in production; the CLI caches modules).
pub type DeciderFactory = Box<dyn Fn(&ReleaseRecord) -> anyhow::Result<Arc<dyn Decider>>>;

/// What the runner drives, and how.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The namespace to watch; `None` for all namespaces.
    pub namespace: Option<String>,
    /// An extra label selector on the state ConfigMaps (`team=shop`).
    pub selector: Option<String>,
    /// The Lease and its timing.
    pub lease: LeaseConfig,
    /// Field manager for server-side apply.
    pub field_manager: String,
    /// Wait between decisions when the policy does not say.
    pub interval: Duration,
}

/// Why the runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The options are inconsistent.
    #[error("{0}")]
    Options(String),
}

/// Errors-by-kind label for the metrics.
fn error_kind(e: &EngineError) -> &'static str {
    match e {
        // A lost race, as `step` exits 3 on it: a stale read (nothing applied), a lost
        // conditional record write, or a newer change recorded while applying.
        e if e.is_conflict() => "conflict",
        EngineError::Cluster(ClusterError::Api { code: 403, .. }) => "forbidden",
        EngineError::Cluster(_) => "api",
        EngineError::Policy { .. } | EngineError::Refused { .. } => "policy",
        _ => "engine",
    }
}

/// The runner's view of one driven release.
#[derive(Debug)]
struct Tracked {
    phase: Phase,
    /// When to decide next; `None`: nothing to do (Promoted or terminal).
    due: Option<Instant>,
    /// The record as this runner last wrote it: seeing it come back on the watch is no news.
    own: Option<ReleaseRecord>,
}

/// `namespace/release`.
type Key = (String, String);

/// How decisions are confirmed at the data plane: `run`'s `--wait-propagation` flags and
/// where their progress goes.
#[derive(Clone)]
pub struct PropagationSetup {
    /// `--wait-propagation`, `--propagation-timeout`, `--settle`.
    pub options: PropagationOptions,
    /// Progress lines (the runner's log).
    pub progress: Arc<dyn PropagationProgress>,
}

/// The runner: a watch, a Lease, the engine.
pub struct Runner {
    client: kube::Client,
    options: RunnerOptions,
    propagation: Option<PropagationSetup>,
    metrics: Arc<Metrics>,
    decider: DeciderFactory,
    engines: HashMap<String, Engine>,
    releases: HashMap<Key, Tracked>,
    log: Box<dyn Fn(&str)>,
}

/// Mark `release` as driven by the runner (`run --detach`), conditional on the version read.
/// Returns the record as written; a release already handed over is left as it is.
pub async fn detach(
    cluster: &Cluster,
    release: &str,
    now: &str,
) -> Result<Versioned<ReleaseRecord>, EngineError> {
    let store = StateStore::<ReleaseRecord>::new(cluster, false);
    let current = store
        .load(release)
        .await?
        .ok_or_else(|| EngineError::NotFound {
            release: release.to_string(),
            namespace: cluster.namespace.clone(),
        })?;
    if current
        .record
        .driver
        .as_ref()
        .is_some_and(Driver::is_runner)
    {
        return Ok(current);
    }
    let mut record = current.record.clone();
    record.driver = Some(Driver::runner(now));
    Ok(store
        .update(release, &record, &current.resource_version)
        .await?)
}

/// Take a release back from the runner (`run --attach`): the CLI drives it again.
pub async fn attach(cluster: &Cluster, release: &str) -> Result<ReleaseRecord, EngineError> {
    let store = StateStore::<ReleaseRecord>::new(cluster, false);
    let current = store
        .load(release)
        .await?
        .ok_or_else(|| EngineError::NotFound {
            release: release.to_string(),
            namespace: cluster.namespace.clone(),
        })?;
    if current.record.driver.is_none() {
        return Ok(current.record);
    }
    let mut record = current.record.clone();
    record.driver = None;
    Ok(store
        .update(release, &record, &current.resource_version)
        .await?
        .record)
}

fn decode(cm: &ConfigMap) -> Option<(Key, ReleaseRecord)> {
    let ns = cm.metadata.namespace.clone()?;
    let release = cm.metadata.labels.as_ref()?.get(RELEASE_LABEL)?.clone();
    let json = cm.data.as_ref()?.get(STATE_KEY)?;
    let record = serde_json::from_str(json).ok()?;
    Some(((ns, release), record))
}

fn active(phase: Phase) -> bool {
    !matches!(
        phase,
        Phase::Promoted | Phase::Finalized | Phase::Aborted | Phase::RolledBack | Phase::Failed
    )
}

impl Runner {
    /// A runner on `client`; `log` receives one line per decision and event worth telling.
    pub fn new(
        client: kube::Client,
        options: RunnerOptions,
        metrics: Arc<Metrics>,
        decider: DeciderFactory,
        log: impl Fn(&str) + 'static,
    ) -> Result<Self, RunnerError> {
        options.lease.validate().map_err(RunnerError::Options)?;
        Ok(Runner {
            client,
            options,
            metrics,
            decider,
            engines: HashMap::new(),
            releases: HashMap::new(),
            log: Box::new(log),
            propagation: None,
        })
    }

    /// Confirm each decision's batches at the data plane as `run` does (none by default). One
    /// gate per namespace for the runner's life, so whether the cluster reports Istio's
    /// config status is learnt (and warned about) once, not on every decision.
    pub fn with_propagation(mut self, setup: PropagationSetup) -> Self {
        self.propagation = Some(setup);
        self
    }

    fn selector(&self) -> String {
        let mut s = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{DRIVER_LABEL}={RUNNER}");
        if let Some(extra) = self.options.selector.as_deref().filter(|s| !s.is_empty()) {
            s.push(',');
            s.push_str(extra);
        }
        s
    }

    /// Runs until `stop` turns true: then finishes the decision in flight, releases the Lease
    /// and returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), RunnerError> {
        let metrics = self.metrics.clone();
        let (elector, mut leadership) = Elector::new(
            self.client.clone(),
            self.options.lease.clone(),
            // The Lease requests' latency is counted with every other request, by verb
            // (the client's timing layer, `cluster::connect::client_for`).
            move |failed| {
                if failed {
                    metrics.error("lease");
                }
            },
        );
        let (elector_stop, elector_stop_rx) = watch::channel(false);
        let log_identity = self.options.lease.identity.clone();
        let elector_task = tokio::spawn(elector.run(elector_stop_rx, move |e| {
            eprintln!("runner {log_identity}: lease: {e}");
        }));
        let api: Api<ConfigMap> = match &self.options.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let config = watcher::Config::default().labels(&self.selector());
        // Backoff: a refused or broken watch is retried (client-go's pace), not in a tight loop.
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        let mut relisting: Option<HashSet<Key>> = None;
        let mut was_leading = false;
        loop {
            let leading = leadership.acting();
            self.leadership_changed(leading, &mut was_leading);
            self.metrics.set_leader(leading);
            let next_due = self.releases.values().filter_map(|t| t.due).min();
            let acting_until = leadership.acting_until();
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                event = events.next() => match event {
                    Some(Ok(event)) => self.on_event(event, &mut relisting),
                    Some(Err(e)) => {
                        self.metrics.error("watch");
                        eprintln!(
                            "runner {}: watch: {}",
                            self.options.lease.identity,
                            watch_error(e, self.options.namespace.as_deref())
                        );
                    }
                    None => break,
                },
                _ = leadership.changed() => {}
                _ = sleep_until(next_due), if leading && next_due.is_some() => {}
                _ = sleep_until(acting_until), if leading => {}
            }
            // Decide what is due, one at a time, while leading and not asked to stop (a
            // Lease just acquired is said before the first decision it allows).
            self.leadership_changed(leadership.acting(), &mut was_leading);
            while let Some(key) = self.next_due() {
                if *stop.borrow() || !leadership.acting() {
                    break;
                }
                self.decide(&key, &leadership).await;
            }
            self.publish_phases();
        }
        // The decision in flight (if any) has finished: the loop only stops between decisions.
        self.metrics.set_leader(false);
        let _ = elector_stop.send(true);
        let _ = elector_task.await;
        (self.log)(&format!(
            "runner {}: stopped; Lease released",
            self.options.lease.identity
        ));
        Ok(())
    }

    /// Log a change of leadership; a new leader decides every release once (it does not know
    /// the last one's schedule).
    fn leadership_changed(&mut self, leading: bool, was_leading: &mut bool) {
        if leading == *was_leading {
            return;
        }
        (self.log)(&format!(
            "runner {}: {}",
            self.options.lease.identity,
            if leading {
                "leading: acquired the Lease"
            } else {
                "standing by: not holding the Lease"
            }
        ));
        *was_leading = leading;
        if leading {
            for t in self.releases.values_mut() {
                if active(t.phase) {
                    t.due = Some(Instant::now());
                }
            }
        }
        self.metrics.set_leader(leading);
    }

    fn next_due(&self) -> Option<Key> {
        let now = Instant::now();
        self.releases
            .iter()
            .filter_map(|(k, t)| t.due.filter(|d| *d <= now).map(|d| (d, k)))
            .min()
            .map(|(_, k)| k.clone())
    }

    fn publish_phases(&self) {
        let mut by_phase = BTreeMap::new();
        for t in self.releases.values() {
            *by_phase.entry(format!("{:?}", t.phase)).or_insert(0) += 1;
        }
        self.metrics.set_releases(by_phase);
    }

    fn on_event(&mut self, event: watcher::Event<ConfigMap>, relisting: &mut Option<HashSet<Key>>) {
        match event {
            watcher::Event::Init => *relisting = Some(HashSet::new()),
            watcher::Event::InitApply(cm) => {
                if let Some((key, _)) = decode(&cm) {
                    if let Some(seen) = relisting.as_mut() {
                        seen.insert(key);
                    }
                }
                self.on_apply(&cm);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = relisting.take() {
                    self.releases.retain(|k, _| seen.contains(k));
                }
                self.metrics.set_ready();
            }
            watcher::Event::Apply(cm) => self.on_apply(&cm),
            watcher::Event::Delete(cm) => {
                if let Some((key, _)) = decode(&cm) {
                    self.releases.remove(&key);
                }
            }
        }
        self.publish_phases();
    }

    fn on_apply(&mut self, cm: &ConfigMap) {
        let Some((key, record)) = decode(cm) else {
            return;
        };
        if !record.driver.as_ref().is_some_and(Driver::is_runner) {
            self.releases.remove(&key);
            return;
        }
        let phase = record.phase;
        match self.releases.get_mut(&key) {
            // Our own write coming back: the schedule set after the decision stands.
            Some(t) if t.own.as_ref() == Some(&record) => t.phase = phase,
            Some(t) => {
                t.phase = phase;
                t.own = None;
                t.due = active(phase).then(Instant::now);
            }
            None => {
                self.releases.insert(
                    key,
                    Tracked {
                        phase,
                        due: active(phase).then(Instant::now),
                        own: None,
                    },
                );
            }
        }
    }

    /// The engine of `namespace`, built as `step`'s and `run`'s are (fenced writes, the
    /// propagation gate between batches).
    fn engine(&mut self, namespace: &str) -> &Engine {
        let client = self.client.clone();
        let field_manager = self.options.field_manager.clone();
        let propagation = self.propagation.clone();
        self.engines
            .entry(namespace.to_string())
            .or_insert_with(|| {
                let cluster = Cluster {
                    client: client.clone(),
                    proxy_client: client,
                    namespace: namespace.to_string(),
                };
                let gate = match propagation {
                    Some(setup) => Propagation::new(cluster.clone(), setup.options, setup.progress),
                    None => Propagation::disabled(),
                };
                Engine::new(
                    cluster,
                    Mode::Apply,
                    ApplyOptions {
                        field_manager,
                        ..ApplyOptions::default()
                    },
                )
                .with_propagation(gate)
            })
    }

    /// One decision for `key`, exactly what `kubectl canary step` does, on the policy's clock.
    async fn decide(&mut self, key: &Key, leadership: &Leadership) {
        let (ns, name) = key.clone();
        let started = Instant::now();
        let interval = self.options.interval;
        let result: Result<Option<crate::release::Outcome>, EngineError> = async {
            let engine = self.engine(&ns);
            let current = engine.load(&name).await?;
            if !current
                .record
                .driver
                .as_ref()
                .is_some_and(Driver::is_runner)
                || !active(current.record.phase)
            {
                return Ok(None);
            }
            let decider = (self.decider)(&current.record).map_err(|e| EngineError::Refused {
                policy: current.record.policy.short(),
                message: format!("{e:#}"),
            })?;
            // The last check before writing: a runner whose renewals failed stops here.
            if !leadership.acting() {
                return Ok(None);
            }
            let engine = self.engine(&ns);
            engine
                .decide(current, Event::Tick, decider.as_ref(), None)
                .await
                .map(Some)
        }
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        let identity = self.options.lease.identity.clone();
        let Some(tracked) = self.releases.get_mut(key) else {
            return;
        };
        match result {
            Ok(None) => tracked.due = None,
            Ok(Some(outcome)) => {
                let action = match outcome.action {
                    None => "converged".to_string(),
                    Some(a) => format!("{a:?}").to_lowercase(),
                };
                self.metrics.decision(&action, elapsed);
                tracked.phase = outcome.record.phase;
                tracked.own = outcome.action.is_some().then(|| outcome.record.clone());
                tracked.due = if !active(outcome.record.phase) {
                    None
                } else if outcome.converged {
                    Some(Instant::now())
                } else {
                    Some(
                        Instant::now()
                            + outcome
                                .requeue_after_seconds
                                .map(Duration::from_secs)
                                .unwrap_or(interval),
                    )
                };
                if outcome.action != Some(policy_sdk::Action::Hold) {
                    (self.log)(&format!(
                        "runner {identity}: release {ns}/{name} {action} → stage {} ({}), {:?}: {}",
                        outcome.record.stage.index,
                        outcome.record.stage.name,
                        outcome.record.phase,
                        outcome.reason
                    ));
                }
            }
            Err(EngineError::NotFound { .. }) => {
                self.releases.remove(key);
            }
            Err(EngineError::WrongPhase { .. }) => tracked.due = None,
            Err(e) => {
                self.metrics.error(error_kind(&e));
                // A lost race is retried as soon as the watch shows the winner's write (or in
                // a second); anything else waits for the interval.
                tracked.due = Some(
                    Instant::now()
                        + match error_kind(&e) {
                            "conflict" => Duration::from_secs(1),
                            _ => interval,
                        },
                );
                tracked.own = None;
                (self.log)(&format!(
                    "runner {identity}: release {ns}/{name}: error: {e}"
                ));
            }
        }
    }
}

/// A watch failure in the words of every other cluster error (a 403 names the verb and the
/// resource, and says where the Role comes from).
fn watch_error(e: watcher::Error, namespace: Option<&str>) -> String {
    let target = crate::cluster::Target::new("ConfigMap", namespace.unwrap_or_default(), "");
    match e {
        watcher::Error::InitialListFailed(e) => {
            ClusterError::from_kube("list", target, e).to_string()
        }
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            ClusterError::from_kube("watch", target, e).to_string()
        }
        other => other.to_string(),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
