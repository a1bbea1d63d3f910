//! Data-plane confirmation: wait until istiod reports that every proxy has the generation we
//! wrote, before the next step of a make-before-break plan depends on it.
//!
//! The API server accepting a VirtualService does not mean Envoy has it. With Istio's config
//! status on (`PILOT_ENABLE_STATUS`, `PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING`), istiod writes
//! into each object a condition `type: Reconciled` — `False` with `"k/N proxies up to date."`
//! while proxies are being pushed, `True` once all of them acknowledged — and
//! `status.observedGeneration`, the generation the condition is about. An object is
//! *propagated* when its `Reconciled` condition is `True` at `observedGeneration >=
//! metadata.generation`.
//!
//! [`Gate`] is the hook the ordered apply calls around its writes: it collects the Istio
//! objects of a batch (consecutive writes of one kind, see [`crate::cluster::order`]) and, before
//! the first write of the next batch and at the end, waits for all of them. Before the first
//! write it also waits for live objects a previous command left propagating, so a rerun after a
//! timeout resumes the wait instead of stacking a new change on an unconfirmed one.
//!
//! Waiting uses one watch per changed object, from the resourceVersion the write returned:
//! when propagation is already complete the first events carry the answer, so a step pays one
//! extra request per changed object and no polling.
//!
//! Without status ([`WaitPropagation::Auto`] seeing none on the first object within
//! [`PropagationOptions::status_window`]) the gate says so once, through
//! [`PropagationProgress`], and pauses [`PropagationOptions::settle`] after each batch instead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use kube::api::{Api, DynamicObject, WatchEvent, WatchParams};
use serde_json::Value;
use tokio::time::Instant;

use super::connect::Cluster;
use super::error::{ClusterError, Target};
use super::order::{ObjectSet, Op};
use super::resources::Kind;

/// The API groups whose objects istiod reports propagation for.
pub const TRACKED_GROUPS: [&str; 2] = ["networking.istio.io", "security.istio.io"];

/// `--wait-propagation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitPropagation {
    /// Wait when the cluster reports status; otherwise warn once and settle.
    #[default]
    Auto,
    /// Always wait; no status within the timeout is a failure.
    Always,
    /// Never wait (ordering at the API level only).
    Never,
}

/// How to confirm propagation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagationOptions {
    /// When to wait.
    pub mode: WaitPropagation,
    /// Give up on a batch after this long (`--propagation-timeout`).
    pub timeout: Duration,
    /// Pause after each batch when the cluster reports no status (`--settle`).
    pub settle: Duration,
    /// How long [`WaitPropagation::Auto`] waits for a first status before deciding there is none.
    pub status_window: Duration,
}

impl PropagationOptions {
    /// No waiting at all.
    pub fn never() -> Self {
        PropagationOptions {
            mode: WaitPropagation::Never,
            ..PropagationOptions::default()
        }
    }
}

impl Default for PropagationOptions {
    fn default() -> Self {
        PropagationOptions {
            mode: WaitPropagation::Auto,
            timeout: Duration::from_secs(120),
            settle: Duration::ZERO,
            status_window: Duration::from_secs(2),
        }
    }
}

/// What istiod says about one object, read from the object itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciliation {
    /// Every proxy has the current generation (`acked == total`).
    Propagated {
        /// Proxies reported.
        total: u64,
    },
    /// The current generation is still being pushed.
    Propagating {
        /// Proxies up to date, when the message says.
        acked: Option<u64>,
        /// Proxies in all, when the message says.
        total: Option<u64>,
    },
    /// istiod has reported on an older generation only.
    Behind {
        /// The generation reported.
        observed: i64,
        /// The object's generation.
        generation: i64,
    },
    /// No `Reconciled` condition: Istio's status is off (or istiod has not seen it yet).
    NoStatus,
}

impl Reconciliation {
    /// Read the status of `object`.
    pub fn of(object: &Value) -> Reconciliation {
        let Some(condition) = object
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Reconciled"))
            })
        else {
            return Reconciliation::NoStatus;
        };
        let generation = int(object.pointer("/metadata/generation")).unwrap_or(1);
        let observed = int(object.pointer("/status/observedGeneration"))
            .or_else(|| int(condition.get("observedGeneration")))
            .unwrap_or(0);
        if observed < generation {
            return Reconciliation::Behind {
                observed,
                generation,
            };
        }
        let (acked, total) = condition
            .get("message")
            .and_then(Value::as_str)
            .and_then(fraction)
            .map_or((None, None), |(k, n)| (Some(k), Some(n)));
        match condition.get("status").and_then(Value::as_str) {
            Some("True") => Reconciliation::Propagated {
                total: total.unwrap_or(0),
            },
            _ => Reconciliation::Propagating { acked, total },
        }
    }

    /// True when the current generation is on every proxy.
    pub fn is_propagated(&self) -> bool {
        matches!(self, Reconciliation::Propagated { .. })
    }

    /// Short text for tables: `4/4`, `3/4 propagating`, `pending`, `-` without status.
    pub fn short(&self) -> String {
        match self {
            Reconciliation::Propagated { total } if *total > 0 => format!("{total}/{total}"),
            Reconciliation::Propagated { .. } => "propagated".to_string(),
            Reconciliation::Propagating {
                acked: Some(k),
                total: Some(n),
            } => format!("{k}/{n} propagating"),
            Reconciliation::Propagating { .. } => "propagating".to_string(),
            Reconciliation::Behind { .. } => "pending".to_string(),
            Reconciliation::NoStatus => "-".to_string(),
        }
    }
}

/// An integer or an integer string (`x-kubernetes-int-or-string`).
fn int(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `k/N` at the start of istiod's message (`"61/122 proxies up to date."`, `"61/122 complete"`).
fn fraction(message: &str) -> Option<(u64, u64)> {
    let head = message.split_whitespace().next()?;
    let (k, n) = head.split_once('/')?;
    Some((k.parse().ok()?, n.parse().ok()?))
}

/// Something happened while confirming propagation (the cli draws it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// `object` is still propagating: `acked` of `total` proxies have it.
    Propagating {
        /// `virtualservice/frontend`.
        object: &'a str,
        /// Proxies up to date, when known.
        acked: Option<u64>,
        /// Proxies in all, when known.
        total: Option<u64>,
    },
    /// `object` reached every proxy.
    Propagated {
        /// `virtualservice/frontend`.
        object: &'a str,
        /// Proxies in all (0 when istiod did not say).
        total: u64,
        /// How long the wait took.
        waited: Duration,
    },
    /// Propagation cannot be confirmed on this cluster (said once per command).
    Unconfirmed {
        /// What and how to fix it.
        message: &'a str,
    },
    /// Pausing after a batch instead of confirming it.
    Settling {
        /// For how long.
        duration: Duration,
    },
}

/// Receives [`ProgressEvent`]s (a live line on a terminal, plain lines otherwise).
pub trait PropagationProgress: Send + Sync {
    /// One event.
    fn report(&self, event: ProgressEvent<'_>);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl PropagationProgress for Silent {
    fn report(&self, _: ProgressEvent<'_>) {}
}

/// Whether this cluster reports status, as learnt during one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detection {
    Unknown,
    Reported,
    Absent,
}

/// Confirms propagation on one cluster for one command.
pub struct Propagation {
    cluster: Option<Cluster>,
    options: PropagationOptions,
    progress: Arc<dyn PropagationProgress>,
    detection: Mutex<Detection>,
}

impl std::fmt::Debug for Propagation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Propagation")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Propagation {
    /// Confirm on `cluster` as `options` say, telling `progress`.
    pub fn new(
        cluster: Cluster,
        options: PropagationOptions,
        progress: Arc<dyn PropagationProgress>,
    ) -> Self {
        Propagation {
            cluster: Some(cluster),
            options,
            progress,
            detection: Mutex::new(Detection::Unknown),
        }
    }

    /// Never wait.
    pub fn disabled() -> Self {
        Propagation {
            cluster: None,
            options: PropagationOptions::never(),
            progress: Arc::new(Silent),
            detection: Mutex::new(Detection::Absent),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &PropagationOptions {
        &self.options
    }

    /// A gate for one ordered apply from `live` (the objects read before planning).
    pub fn gate(&self, live: &ObjectSet) -> Gate<'_> {
        let unconfirmed = live
            .destination_rules
            .values()
            .chain(live.virtual_services.values())
            .chain(live.peer_authentications.values())
            .filter(|o| {
                let r = Reconciliation::of(o);
                if r != Reconciliation::NoStatus {
                    self.learn(Detection::Reported);
                }
                !r.is_propagated() && r != Reconciliation::NoStatus
            })
            .cloned()
            .collect();
        Gate {
            propagation: self,
            unconfirmed,
            pending: Vec::new(),
            last_kind: None,
        }
    }

    fn enabled(&self) -> bool {
        self.cluster.is_some() && self.options.mode != WaitPropagation::Never
    }

    fn detection(&self) -> Detection {
        *self.detection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn learn(&self, d: Detection) {
        let mut current = self.detection.lock().unwrap_or_else(|e| e.into_inner());
        if *current == Detection::Unknown {
            *current = d;
        }
    }

    /// Wait until every object of `batch` (as the server returned it) is propagated.
    async fn confirm(&self, batch: &[Value]) -> Result<(), ClusterError> {
        if !self.enabled() || batch.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.options.timeout;
        for object in batch {
            if self.options.mode == WaitPropagation::Auto && self.detection() == Detection::Absent {
                break;
            }
            self.wait_one(object, deadline).await?;
        }
        if self.options.mode == WaitPropagation::Auto
            && self.detection() == Detection::Absent
            && !self.options.settle.is_zero()
        {
            self.progress.report(ProgressEvent::Settling {
                duration: self.options.settle,
            });
            tokio::time::sleep(self.options.settle).await;
        }
        Ok(())
    }

    async fn wait_one(&self, object: &Value, deadline: Instant) -> Result<(), ClusterError> {
        let cluster = self.cluster.as_ref().expect("enabled");
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (api_version, kind_name, name) =
            (text("/apiVersion"), text("/kind"), text("/metadata/name"));
        let namespace = Some(text("/metadata/namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| cluster.namespace.clone());
        let Some(kind) = Kind::lookup(&api_version, &kind_name) else {
            return Ok(());
        };
        let label = format!("{}/{name}", kind.kind.to_lowercase());
        let target = Target::new(kind.kind, &namespace, &name);
        let started = Instant::now();
        let window_end = started + self.options.status_window;
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &namespace, &kind.api_resource());
        let mut current = object.clone();
        let mut last_reported = None;
        let mut stream: Option<BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>>> = None;
        loop {
            let state = Reconciliation::of(&current);
            if state != Reconciliation::NoStatus {
                self.learn(Detection::Reported);
            }
            match state {
                Reconciliation::Propagated { total } => {
                    self.progress.report(ProgressEvent::Propagated {
                        object: &label,
                        total,
                        waited: started.elapsed(),
                    });
                    return Ok(());
                }
                Reconciliation::Propagating { acked, total }
                    if last_reported != Some((acked, total)) =>
                {
                    last_reported = Some((acked, total));
                    self.progress.report(ProgressEvent::Propagating {
                        object: &label,
                        acked,
                        total,
                    });
                }
                _ => {}
            }
            let probing = self.options.mode == WaitPropagation::Auto
                && self.detection() == Detection::Unknown;
            let limit = if probing {
                window_end.min(deadline)
            } else {
                deadline
            };
            if stream.is_none() {
                let rv = text_of(&current, "/metadata/resourceVersion");
                let params = WatchParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .timeout(290);
                let opened = tokio::time::timeout_at(limit, api.watch(&params, &rv)).await;
                match opened {
                    Err(_) => {}
                    Ok(Ok(s)) => stream = Some(s.boxed()),
                    Ok(Err(kube::Error::Api(status))) if status.code == 410 => {
                        // Our resourceVersion fell out of the watch window: read the object.
                        match api.get_opt(&name).await {
                            Ok(Some(o)) => current = to_value(&o, &target)?,
                            Ok(None) => return Ok(()),
                            Err(e) => return Err(ClusterError::from_kube("get", target, e)),
                        }
                        continue;
                    }
                    Ok(Err(e)) => return Err(ClusterError::from_kube("watch", target, e)),
                }
            }
            let next = match stream.as_mut() {
                Some(s) => tokio::time::timeout_at(limit, s.next()).await.ok(),
                None => None,
            };
            match next {
                Some(Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)))) => {
                    current = to_value(&o, &target)?;
                }
                Some(Some(Ok(WatchEvent::Deleted(_)))) => return Ok(()),
                Some(Some(Ok(WatchEvent::Bookmark(b)))) => {
                    current["metadata"]["resourceVersion"] =
                        Value::String(b.metadata.resource_version);
                }
                Some(Some(Ok(WatchEvent::Error(e)))) if e.code == 410 => {
                    stream = None;
                    match api.get_opt(&name).await {
                        Ok(Some(o)) => current = to_value(&o, &target)?,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(ClusterError::from_kube("get", target, e)),
                    }
                }
                Some(Some(Ok(WatchEvent::Error(e)))) => {
                    return Err(ClusterError::from_kube(
                        "watch",
                        target,
                        kube::Error::Api(e),
                    ))
                }
                Some(Some(Err(e))) => return Err(ClusterError::from_kube("watch", target, e)),
                // The server ended the watch: resume from the last resourceVersion seen.
                Some(None) => stream = None,
                None if probing => {
                    self.learn(Detection::Absent);
                    self.progress.report(ProgressEvent::Unconfirmed {
                        message: &unconfirmed_message(&target, &self.options),
                    });
                    return Ok(());
                }
                None => {
                    return Err(ClusterError::NotPropagated {
                        target,
                        generation: int(current.pointer("/metadata/generation")).unwrap_or(1),
                        last: Reconciliation::of(&current),
                        waited: self.options.timeout,
                    })
                }
            }
        }
    }
}

/// `object` without what waiting for it never reads: its spec and managed fields.
fn skeleton(object: Value) -> Value {
    let Value::Object(mut fields) = object else {
        return object;
    };
    fields.retain(|key, _| matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
    if let Some(Value::Object(meta)) = fields.get_mut("metadata") {
        meta.remove("managedFields");
    }
    Value::Object(fields)
}

fn text_of(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn to_value(o: &DynamicObject, target: &Target) -> Result<Value, ClusterError> {
    serde_json::to_value(o).map_err(|e| ClusterError::Corrupt {
        target: target.clone(),
        message: e.to_string(),
    })
}

/// The one-time warning when the cluster reports no propagation status.
pub fn unconfirmed_message(target: &Target, options: &PropagationOptions) -> String {
    format!(
        "cannot confirm that changes reached the proxies: istiod wrote no Reconciled status on {target} within {}. \
Enable Istio's config status (istiod environment PILOT_ENABLE_STATUS=true and PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING=true, \
e.g. istioctl install --set values.pilot.env.PILOT_ENABLE_STATUS=true --set values.pilot.env.PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING=true); \
until then each change is followed by --settle {} instead",
        humantime::format_duration(options.status_window),
        humantime::format_duration(options.settle)
    )
}

/// The hook of an ordered apply: call [`Gate::before`] before each write, [`Gate::applied`]
/// with what each apply returned, and [`Gate::end_batch`] after each batch ([`super::apply::Applier::apply_batches`]).
pub struct Gate<'a> {
    propagation: &'a Propagation,
    /// Live objects a previous command left propagating (waited for before the first write).
    unconfirmed: Vec<Value>,
    /// Istio objects written in the current batch.
    pending: Vec<Value>,
    /// The kind of the previous write (a batch is a run of writes of one kind).
    last_kind: Option<String>,
}

impl std::fmt::Debug for Gate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("pending", &self.pending.len())
            .field("last_kind", &self.last_kind)
            .finish_non_exhaustive()
    }
}

impl Gate<'_> {
    /// Before `op`: on the first write, wait for live objects still propagating; when `op`
    /// starts a new batch, wait for the previous one.
    pub async fn before(&mut self, op: &Op) -> Result<(), ClusterError> {
        if !self.unconfirmed.is_empty() {
            let live = std::mem::take(&mut self.unconfirmed);
            self.propagation.confirm(&live).await?;
        }
        let kind = match op {
            Op::Apply(o) => o.get("kind").and_then(Value::as_str).unwrap_or("").into(),
            Op::Delete { kind, .. } | Op::Claim { kind, .. } => kind.kind.to_string(),
        };
        if self.last_kind.as_ref().is_some_and(|k| *k != kind) {
            self.flush().await?;
        }
        self.last_kind = Some(kind);
        Ok(())
    }

    /// `object` was written; the server returned it as `stored`.
    ///
    /// Only what a wait reads is kept (identity, generation, status): a batch can be every
    /// VirtualService of a large release, and their specs are most of a command's memory.
    pub fn applied(&mut self, stored: Value) {
        if !self.propagation.enabled() {
            return;
        }
        let group = stored
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.split_once('/'))
            .map(|(g, _)| g.to_string())
            .unwrap_or_default();
        if TRACKED_GROUPS.contains(&group.as_str()) {
            self.pending.push(skeleton(stored));
        }
    }

    /// At the end of a batch (and after the last one: a stage is applied once it propagated):
    /// wait until everything the batch wrote is confirmed.
    pub async fn end_batch(&mut self) -> Result<(), ClusterError> {
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), ClusterError> {
        let batch = std::mem::take(&mut self.pending);
        self.propagation.confirm(&batch).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "a", "generation": generation}, "status": status})
    }

    #[test]
    fn reads_istiods_reconciled_condition_at_the_objects_generation() {
        let reconciled = |s: &str, m: &str, observed: Value| {
            json!({"observedGeneration": observed, "conditions": [
                {"type": "PassedValidation", "status": "True"},
                {"type": "Reconciled", "status": s, "message": m}]})
        };
        assert_eq!(
            Reconciliation::of(&object(
                3,
                reconciled("True", "122/122 proxies up to date.", json!(3))
            )),
            Reconciliation::Propagated { total: 122 }
        );
        assert_eq!(
            Reconciliation::of(&object(
                3,
                reconciled("False", "61/122 complete", json!("3"))
            )),
            Reconciliation::Propagating {
                acked: Some(61),
                total: Some(122)
            }
        );
        assert_eq!(
            Reconciliation::of(&object(
                4,
                reconciled("True", "2/2 proxies up to date.", json!(3))
            )),
            Reconciliation::Behind {
                observed: 3,
                generation: 4
            }
        );
        assert_eq!(
            Reconciliation::of(&object(1, json!({"conditions": []}))),
            Reconciliation::NoStatus
        );
        assert_eq!(Reconciliation::of(&json!({})), Reconciliation::NoStatus);
        assert_eq!(
            Reconciliation::of(&object(3, reconciled("False", "syncing", json!(3)))).short(),
            "propagating"
        );
        assert_eq!(Reconciliation::Propagated { total: 4 }.short(), "4/4");
        assert_eq!(
            Reconciliation::Propagating {
                acked: Some(3),
                total: Some(4)
            }
            .short(),
            "3/4 propagating"
        );
    }
}
