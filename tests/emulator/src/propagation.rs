//! istiod's configuration status writer, emulated.
//!
//! With `PILOT_ENABLE_STATUS` and `PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING`, istiod reports in
//! each Istio object how far its current generation has reached the data plane: a condition
//! `type: Reconciled` that is `False` with the message `"k/N proxies up to date."` while proxies
//! are still being pushed, and `True` once every proxy has acknowledged the generation, with
//! `status.observedGeneration` naming that generation (istio/istio
//! `pilot/pkg/status/distribution/state.go`, `ReconcileStatuses`).
//!
//! [`Propagation`] makes the emulator do the same for every write of a `networking.istio.io` or
//! `security.istio.io` object: right after the write a `False "0/N ..."` status at the new
//! generation, then `k` counting up over `N` simulated proxies, and `True "N/N ..."` once the
//! configured delay has passed. Status writes go through the status subresource as istiod's do:
//! their own field manager (`pilot-discovery`), generation unchanged, resourceVersion bumped,
//! a watch event, and a record in the audit log. A newer generation written meanwhile replaces
//! the older one's progress. Objects named in [`Propagation::stuck`] stay at `N-1` until released.
//! Without a [`Propagation`] no status is written at all: a cluster with Istio's status off.

use crate::audit::{AuditRecord, Snapshot};
use crate::cluster::{ObjectRef, PatchType, WatchEvent, WriteOptions};
use crate::resources::ResourceInfo;
use crate::server::Shared;
use crate::time::now_rfc3339;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The API groups whose objects istiod tracks.
pub const TRACKED_GROUPS: [&str; 2] = ["networking.istio.io", "security.istio.io"];

/// The field manager (and user agent) of istiod's status writes.
pub const STATUS_MANAGER: &str = "pilot-discovery";

/// How the emulated istiod reports propagation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    /// From a write to `Reconciled True` at its generation.
    pub delay: Duration,
    /// Simulated proxies (`N` in `k/N`); at least 1.
    pub proxies: u32,
    /// Object names that never finish propagating (they stay at `N-1/N`).
    pub stuck: Vec<String>,
}

impl Propagation {
    /// Every write propagates after `delay` to 4 simulated proxies.
    pub fn after(delay: Duration) -> Self {
        Propagation {
            delay,
            proxies: 4,
            stuck: Vec::new(),
        }
    }

    /// The same, with `name` kept unreconciled.
    pub fn with_stuck(mut self, name: impl Into<String>) -> Self {
        self.stuck.push(name.into());
        self
    }
}

/// The `Reconciled` condition istiod writes for `acked` of `total` proxies.
pub fn reconciled_condition(acked: u32, total: u32, now: &str) -> Value {
    json!({
        "type": "Reconciled",
        "status": if acked == total { "True" } else { "False" },
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "message": format!("{acked}/{total} proxies up to date."),
    })
}

/// The writer's configuration, changeable while the emulator runs
/// ([`crate::Emulator::set_propagation`]).
pub(crate) type Config = Arc<Mutex<Option<Propagation>>>;

fn current(config: &Config) -> Option<Propagation> {
    config.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Starts the status writer on `shared`'s cluster; it ends when the emulator shuts down.
pub(crate) fn spawn(shared: Arc<Shared>, config: Config) {
    let mut events = shared.lock().subscribe();
    let mut shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        // The newest generation scheduled per object: a status run for an older one stops.
        let mut scheduled: HashMap<ObjectRef, i64> = HashMap::new();
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => return,
                e = events.recv() => e,
            };
            let event: Arc<WatchEvent> = match event {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            if !TRACKED_GROUPS.contains(&event.key.group.as_str()) || event.kind == "DELETED" {
                continue;
            }
            if current(&config).is_none() {
                continue;
            }
            let generation = event.object["metadata"]["generation"].as_i64().unwrap_or(1);
            if scheduled.get(&event.key) == Some(&generation) {
                continue; // our own status write, or a write that kept the generation
            }
            scheduled.insert(event.key.clone(), generation);
            let shared = shared.clone();
            let config = config.clone();
            let key = event.key.clone();
            tokio::spawn(async move { propagate(shared, config, key, generation).await });
        }
    });
}

/// Report one generation's progress until it is reconciled (or superseded, or deleted).
async fn propagate(shared: Arc<Shared>, config: Config, key: ObjectRef, generation: i64) {
    let Some(first) = current(&config) else {
        return;
    };
    let total = first.proxies.max(1);
    let step = first.delay / total;
    for acked in 0..total {
        if acked > 0 {
            tokio::time::sleep(step).await;
        }
        if *shared.shutdown.borrow() || !write_status(&shared, &key, generation, acked, total) {
            return;
        }
    }
    // The last proxy acknowledges unless the object is kept stuck (checked again and again,
    // so a test can release it).
    loop {
        tokio::time::sleep(step.max(Duration::from_millis(10))).await;
        if *shared.shutdown.borrow() {
            return;
        }
        let stuck = current(&config).is_some_and(|c| c.stuck.contains(&key.name));
        if !stuck {
            write_status(&shared, &key, generation, total, total);
            return;
        }
        if !is_generation(&shared, &key, generation) {
            return;
        }
    }
}

/// The tracked resource of `key`, preferring the storage version.
fn resource_of(cluster: &crate::cluster::Cluster, key: &ObjectRef) -> Option<ResourceInfo> {
    cluster
        .resources()
        .iter()
        .filter(|r| r.group == key.group && r.plural == key.plural)
        .max_by_key(|r| r.storage)
        .cloned()
}

/// True while the object exists at `generation`.
fn is_generation(shared: &Shared, key: &ObjectRef, generation: i64) -> bool {
    let cluster = shared.lock();
    resource_of(&cluster, key)
        .and_then(|res| cluster.get(&res, &key.namespace, &key.name).ok())
        .is_some_and(|o| o["metadata"]["generation"].as_i64().unwrap_or(1) == generation)
}

/// Write `acked/total` at `generation` through the status subresource; false when the object
/// is gone or has moved on to another generation.
fn write_status(shared: &Shared, key: &ObjectRef, generation: i64, acked: u32, total: u32) -> bool {
    let mut cluster = shared.lock();
    let Some(res) = resource_of(&cluster, key) else {
        return false;
    };
    let Ok(current) = cluster.get(&res, &key.namespace, &key.name) else {
        return false;
    };
    if current["metadata"]["generation"].as_i64().unwrap_or(1) != generation {
        return false;
    }
    let now = now_rfc3339();
    let mut conditions: Vec<Value> = current["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "Reconciled")
        .collect();
    conditions.push(reconciled_condition(acked, total, &now));
    let body = json!({"status": {"conditions": conditions, "observedGeneration": generation}});
    let opts = WriteOptions {
        manager: STATUS_MANAGER.into(),
        ..Default::default()
    };
    let result = cluster.patch(
        &res,
        &key.namespace,
        &key.name,
        PatchType::Merge,
        &body,
        "status",
        &opts,
    );
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.code,
    };
    let state = if shared.record_states {
        Snapshot {
            objects: cluster.snapshot(),
            resource_version: cluster.resource_version(),
        }
    } else {
        Snapshot {
            objects: Default::default(),
            resource_version: 0,
        }
    };
    if let Some(dir) = &shared.data_dir {
        if result.is_ok() {
            if let Err(e) = crate::persist::save(&cluster, dir) {
                eprintln!("kube-emulator: cannot save state to {}: {e}", dir.display());
            }
        }
    }
    drop(cluster);
    let prefix = if key.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/{}", key.group, res.version)
    };
    shared.audit.push(AuditRecord {
        seq: 0,
        verb: "patch".into(),
        method: "PATCH".into(),
        path: format!(
            "{prefix}/namespaces/{}/{}/{}/status?fieldManager={STATUS_MANAGER}",
            key.namespace, key.plural, key.name
        ),
        resource: key.plural.clone(),
        subresource: "status".into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        status,
        user_agent: format!("{STATUS_MANAGER}/emulated"),
        // istiod writes config status with its own service account.
        user: "system:serviceaccount:istio-system:istiod".into(),
        state,
    });
    result.is_ok()
}
