//! The request log: every request with its outcome and the cluster state right after it.

use crate::cluster::{ObjectRef, Objects};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The cluster state after a request (shared, cheap to keep).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The objects.
    pub objects: Objects,
    /// The resourceVersion at that point.
    pub resource_version: u64,
}

impl Snapshot {
    /// Objects of one `group`/`plural` (e.g. `("networking.istio.io", "virtualservices")`), all namespaces.
    pub fn of(&self, group: &str, plural: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.group == group && k.plural == plural)
            .map(|(_, v)| v.as_ref())
            .collect()
    }

    /// One object.
    pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<&Value> {
        let key = ObjectRef {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.objects.get(&key).map(|v| v.as_ref())
    }
}

/// One served request.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...).
    pub verb: String,
    /// HTTP method.
    pub method: String,
    /// Request path with query.
    pub path: String,
    /// Resource plural (empty for non-resource paths).
    pub resource: String,
    /// Subresource (`status`) or empty.
    pub subresource: String,
    /// Namespace or empty.
    pub namespace: String,
    /// Object name or empty.
    pub name: String,
    /// HTTP status code sent (0 if the connection was dropped).
    pub status: u16,
    /// `User-Agent` header.
    pub user_agent: String,
    /// The authenticated user (`kubernetes-admin`, `system:serviceaccount:NS:NAME`), empty
    /// when authentication failed.
    pub user: String,
    /// The cluster state after the request.
    pub state: Snapshot,
}

impl AuditRecord {
    /// Whether the request could have changed state (a write verb that succeeded).
    pub fn is_successful_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) && (200..300).contains(&self.status)
    }
}

/// An invariant that failed after a request.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The request after which it failed.
    pub record: AuditRecord,
    /// The invariant's message.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.record;
        write!(
            f,
            "after request #{} ({} {} -> {}): {}",
            r.seq, r.method, r.path, r.status, self.message
        )
    }
}

/// The shared request log.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl AuditLog {
    pub(crate) fn push(&self, mut rec: AuditRecord) {
        let mut r = self.records.lock().unwrap_or_else(|e| e.into_inner());
        rec.seq = r.len() as u64 + 1;
        r.push(rec);
    }

    /// All records so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the records so far.
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The distinct states after successful writes, in order: what an invariant must hold for.
    pub fn states(&self) -> Vec<Snapshot> {
        let mut out: Vec<Snapshot> = vec![];
        for r in self.records() {
            if out
                .last()
                .is_none_or(|s| s.resource_version != r.state.resource_version)
            {
                out.push(r.state.clone());
            }
        }
        out
    }

    /// Checks `invariant` on the state after every request; returns the first violation.
    pub fn check<F>(&self, mut invariant: F) -> Result<(), Box<Violation>>
    where
        F: FnMut(&Snapshot) -> Result<(), String>,
    {
        for r in self.records() {
            if let Err(message) = invariant(&r.state) {
                return Err(Box::new(Violation { record: r, message }));
            }
        }
        Ok(())
    }
}
