//! Server-side apply of the plugin's objects, one at a time, in the order the caller gives.
//!
//! Ordering (make-before-break) is the caller's job: this module only applies, deletes and reads
//! back, with the field manager, dry-run and conflict handling the operator asked for.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use serde_json::Value;

use super::connect::Cluster;
use super::error::{ClusterError, Target};
use super::resources::Kind;

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

    /// Server-side apply `object` (a complete manifest with apiVersion, kind, metadata.name and,
    /// for namespaced kinds, metadata.namespace — the cluster's namespace when absent).
    /// Returns the object as the server stored it.
    pub async fn apply(&self, object: &Value) -> Result<Value, ClusterError> {
        let (kind, namespace, name) = self.identify(object)?;
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
        let mut body = object.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
        let applied = api
            .patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| ClusterError::from_kube("apply", target.clone(), e))?;
        serde_json::to_value(applied).map_err(|e| ClusterError::Corrupt {
            target,
            message: e.to_string(),
        })
    }

    /// Delete `kind` `name` in the cluster's namespace, cascading to dependents in the
    /// background as kubectl does. Deleting something already gone is success (idempotence).
    pub async fn delete(&self, kind: Kind, name: &str) -> Result<(), ClusterError> {
        let namespace = self.cluster.namespace.clone();
        let target = Target::new(kind.kind, &namespace, name);
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.cluster.client.clone(),
            &namespace,
            &kind.api_resource(),
        );
        let params = DeleteParams {
            dry_run: self.options.server_dry_run,
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::from_kube("delete", target, e)),
        }
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
