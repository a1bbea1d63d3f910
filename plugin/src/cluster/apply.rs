//! Server-side apply of the plugin's objects, one at a time, in the order the caller gives.
//!
//! Ordering (make-before-break) is the caller's job: this module only applies, deletes and reads
//! back, with the field manager, dry-run and conflict handling the operator asked for.

use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use serde_json::Value;

use super::connect::Cluster;
use super::error::{ClusterError, Target};
use super::order::{ObjectSet, Op, GENERATION_ANNOTATION};
use super::propagation::Gate;
use super::resources::Kind;

/// A batched apply that stopped: the writes that went through before it, and why it stopped.
#[derive(Debug)]
pub struct BatchError {
    /// Writes accepted before the failure, in order.
    pub applied: Vec<Op>,
    /// The failure ([`ClusterError::is_stale_write`] when an object changed since `live`).
    pub error: ClusterError,
}

/// How changes are sent.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Field manager for server-side apply (`--field-manager`).
    pub field_manager: String,
    /// Send with `dryRun=All`: validated by the server, not persisted (`--dry-run=server`).
    pub server_dry_run: bool,
    /// Take ownership of fields another manager set (`--adopt`).
    pub force: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            field_manager: "kubectl-canary".to_string(),
            server_dry_run: false,
            force: false,
        }
    }
}

/// Applies objects to one cluster.
#[derive(Debug, Clone)]
pub struct Applier {
    cluster: Cluster,
    options: ApplyOptions,
}

impl Applier {
    /// An applier for `cluster`.
    pub fn new(cluster: Cluster, options: ApplyOptions) -> Self {
        Applier { cluster, options }
    }

    /// The options in force.
    pub fn options(&self) -> &ApplyOptions {
        &self.options
    }

    /// Apply `batches` (from [`super::order::plan_batches`]) in order, every write fenced:
    /// conditional on the resourceVersion (and, for deletes, the uid) the object had in `live`,
    /// so a write never lands on an object someone changed since it was read — that write fails
    /// with a stale-write conflict instead, and nothing after it is sent.
    ///
    /// This is the one batch loop of the plugin: between two batches (the next depends on the
    /// previous having taken effect) and after the last one, `gate` confirms at the data plane
    /// what the batch changed ([`super::propagation`]); a gate that cannot confirm stops the
    /// loop there, before anything that depends on the unconfirmed change.
    pub async fn apply_batches(
        &self,
        batches: &[Vec<Op>],
        live: &ObjectSet,
        gate: &mut Gate<'_>,
    ) -> Result<Vec<Op>, BatchError> {
        let mut applied = Vec::new();
        // Our own writes move an object's resourceVersion: a later batch writing the same
        // object (a DestinationRule's bridge, then its final subsets) is conditional on that.
        let mut written: std::collections::BTreeMap<(String, String), String> =
            std::collections::BTreeMap::new();
        for (i, batch) in batches.iter().enumerate() {
            if i > 0 {
                // Between batches: every write before this point was accepted by the API
                // server, and the writes after it rely on them reaching the proxies.
                if let Err(error) = gate.end_batch().await {
                    return Err(BatchError { applied, error });
                }
            }
            for op in batch {
                if let Err(error) = gate.before(op).await {
                    return Err(BatchError { applied, error });
                }
                let result = match op {
                    Op::Apply(object) => {
                        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
                        let name = object
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let key = (kind.to_string(), name.to_string());
                        let mut fenced = Value::clone(object);
                        let rv = written.get(&key).map(String::as_str).or_else(|| {
                            live.get(kind, name)
                                .and_then(|o| meta_str(o, "resourceVersion"))
                        });
                        if let (Some(rv), Some(meta)) = (
                            rv,
                            fenced.get_mut("metadata").and_then(Value::as_object_mut),
                        ) {
                            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
                        }
                        self.apply_owned(fenced).await.map(|stored| {
                            if let Some(rv) = meta_str(&stored, "resourceVersion") {
                                written.insert(key, rv.to_string());
                            }
                            gate.applied(stored);
                        })
                    }
                    Op::Delete { kind, name } => {
                        let seen = live.get(kind.kind, name);
                        let preconditions = seen.map(|o| Preconditions {
                            resource_version: meta_str(o, "resourceVersion").map(str::to_string),
                            uid: meta_str(o, "uid").map(str::to_string),
                        });
                        self.delete_if(*kind, name, preconditions).await
                    }
                    Op::Claim {
                        kind,
                        name,
                        generation,
                    } => {
                        let rv = live
                            .get(kind.kind, name)
                            .and_then(|o| meta_str(o, "resourceVersion"));
                        self.claim(*kind, name, *generation, rv).await
                    }
                };
                match result {
                    Ok(()) => applied.push(op.clone()),
                    Err(error) => return Err(BatchError { applied, error }),
                }
            }
        }
        // A stage counts as applied once its last batch reached the proxies.
        if let Err(error) = gate.end_batch().await {
            return Err(BatchError { applied, error });
        }
        Ok(applied)
    }

    /// Server-side apply `object` (a complete manifest with apiVersion, kind, metadata.name and,
    /// for namespaced kinds, metadata.namespace — the cluster's namespace when absent).
    /// Returns the object as the server stored it.
    pub async fn apply(&self, object: &Value) -> Result<Value, ClusterError> {
        self.apply_owned(object.clone()).await
    }

    /// [`Applier::apply`] of an object the caller no longer needs (no copy is made).
    async fn apply_owned(&self, mut body: Value) -> Result<Value, ClusterError> {
        let (kind, namespace, name) = self.identify(&body)?;
        let target = Target::new(kind.kind, &namespace, &name);
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.cluster.client.clone(),
            &namespace,
            &kind.api_resource(),
        );
        let mut params = PatchParams::apply(&self.options.field_manager);
        if self.options.force {
            params = params.force();
        }
        if self.options.server_dry_run {
            params = params.dry_run();
        }
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
        let applied = api
            .patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| ClusterError::from_kube("apply", target.clone(), e))?;
        super::inventory::to_value(applied, &target)
    }

    /// Delete `kind` `name` in the cluster's namespace, cascading to dependents in the
    /// background as kubectl does. Deleting something already gone is success (idempotence).
    pub async fn delete(&self, kind: Kind, name: &str) -> Result<(), ClusterError> {
        self.delete_if(kind, name, None).await
    }

    /// [`Applier::delete`], conditional on `preconditions` (the uid and resourceVersion the
    /// object was seen with).
    pub async fn delete_if(
        &self,
        kind: Kind,
        name: &str,
        preconditions: Option<Preconditions>,
    ) -> Result<(), ClusterError> {
        let (target, api) = self.namespaced(kind, name);
        let params = DeleteParams {
            dry_run: self.options.server_dry_run,
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions,
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::from_kube("delete", target, e)),
        }
    }

    /// Stamp `kind` `name` with the release generation `generation` (a merge patch of one
    /// annotation, so no other field changes owner), conditional on `resource_version`: a
    /// changed object is a 409 conflict, a deleted one [`ClusterError::Gone`].
    pub async fn claim(
        &self,
        kind: Kind,
        name: &str,
        generation: u64,
        resource_version: Option<&str>,
    ) -> Result<(), ClusterError> {
        let (target, api) = self.namespaced(kind, name);
        let mut metadata = serde_json::json!({
            "annotations": {GENERATION_ANNOTATION: generation.to_string()}
        });
        if let Some(rv) = resource_version {
            metadata["resourceVersion"] = Value::String(rv.to_string());
        }
        let mut params = PatchParams::default();
        if self.options.server_dry_run {
            params = params.dry_run();
        }
        params.field_manager = Some(self.options.field_manager.clone());
        let patch = serde_json::json!({ "metadata": metadata });
        match api.patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(ClusterError::Gone {
                op: "claim",
                target,
            }),
            Err(e) => Err(ClusterError::from_kube("claim", target, e)),
        }
    }

    /// `kind` `name` in the cluster's namespace: its name for messages, and its API.
    fn namespaced(&self, kind: Kind, name: &str) -> (Target, Api<DynamicObject>) {
        let namespace = &self.cluster.namespace;
        let api =
            Api::namespaced_with(self.cluster.client.clone(), namespace, &kind.api_resource());
        (Target::new(kind.kind, namespace, name), api)
    }

    /// Read `kind` `name` from the cluster's namespace; `None` when it does not exist.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<Value>, ClusterError> {
        get(&self.cluster, kind, name).await
    }

    fn identify(&self, object: &Value) -> Result<(Kind, String, String), ClusterError> {
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(object, |v, k| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let api_version = field(&["apiVersion"]);
        let kind_name = field(&["kind"]);
        let name = field(&["metadata", "name"]);
        let namespace = Some(field(&["metadata", "namespace"]))
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| self.cluster.namespace.clone());
        let target = Target::new(&kind_name, &namespace, &name);
        let kind = Kind::lookup(&api_version, &kind_name).ok_or_else(|| ClusterError::Corrupt {
            target: target.clone(),
            message: format!("kubectl-canary does not manage {api_version} {kind_name} objects"),
        })?;
        if name.is_empty() {
            return Err(ClusterError::Corrupt {
                target,
                message: "object has no metadata.name".into(),
            });
        }
        Ok((kind, namespace, name))
    }
}

/// Read `kind` `name` from the cluster's namespace; `None` when it does not exist.
pub async fn get(cluster: &Cluster, kind: Kind, name: &str) -> Result<Option<Value>, ClusterError> {
    let target = Target::new(kind.kind, &cluster.namespace, name);
    let api: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        &cluster.namespace,
        &kind.api_resource(),
    );
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::from_kube("get", target.clone(), e))?;
    found
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| ClusterError::Corrupt {
            target,
            message: e.to_string(),
        })
}

fn meta_str<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}
