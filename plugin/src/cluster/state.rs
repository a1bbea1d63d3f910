//! The release state record, kept in a ConfigMap `canary-<release>` in the release namespace.
//!
//! Why a ConfigMap and not a CRD: a plugin must work with namespace-scoped rights and no
//! cluster-admin install step. Every write is conditional on the resourceVersion read before it,
//! so two operators can never both advance a release: the loser gets
//! [`ClusterError::ReleaseChanged`] and must not have applied anything of its own (callers write
//! the state *before* applying routing objects, and apply only after the write succeeded).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::connect::Cluster;
use super::error::{ClusterError, Target};

use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL, RELEASE_LABEL};
/// The ConfigMap key holding the JSON record.
pub const STATE_KEY: &str = "state.json";

/// The ConfigMap name for a release.
pub fn configmap_name(release: &str) -> String {
    format!("canary-{release}")
}

/// A record type the store can keep. `labels` are copied onto the ConfigMap so that
/// `kubectl get cm -l canary.kubectl.dev/phase=Progressing` works without decoding JSON.
pub trait StateRecord: Serialize + DeserializeOwned {
    /// Extra labels describing the record (phase, ...).
    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// A record as read from the cluster, with the resourceVersion to make the next write
/// conditional on.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<R> {
    /// The decoded record.
    pub record: R,
    /// The ConfigMap's resourceVersion when read.
    pub resource_version: String,
}

/// Reads and writes release records of type `R` in the cluster's namespace.
#[derive(Debug, Clone)]
pub struct StateStore<R> {
    api: Api<ConfigMap>,
    namespace: String,
    dry_run: bool,
    _record: PhantomData<fn() -> R>,
}

impl<R: StateRecord> StateStore<R> {
    /// A store in `cluster`'s namespace. With `dry_run`, writes are sent with `dryRun=All`.
    pub fn new(cluster: &Cluster, dry_run: bool) -> Self {
        StateStore {
            api: Api::namespaced(cluster.client.clone(), &cluster.namespace),
            namespace: cluster.namespace.clone(),
            dry_run,
            _record: PhantomData,
        }
    }

    fn target(&self, release: &str) -> Target {
        Target::new("ConfigMap", &self.namespace, &configmap_name(release))
    }

    /// Load the record of `release`; `None` if the release does not exist.
    pub async fn load(&self, release: &str) -> Result<Option<Versioned<R>>, ClusterError> {
        let target = self.target(release);
        let found = self
            .api
            .get_opt(&configmap_name(release))
            .await
            .map_err(|e| ClusterError::from_kube("get", target.clone(), e))?;
        found.map(|cm| decode(cm, target)).transpose()
    }

    /// All release records in the namespace, by release name.
    pub async fn list(&self) -> Result<Vec<(String, Versioned<R>)>, ClusterError> {
        let target = Target::new("ConfigMap", &self.namespace, "");
        let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let list = self
            .api
            .list(&params)
            .await
            .map_err(|e| ClusterError::from_kube("list", target, e))?;
        let mut out = Vec::new();
        for cm in list.items {
            let Some(release) = cm
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(RELEASE_LABEL))
                .cloned()
            else {
                continue;
            };
            let target = self.target(&release);
            out.push((release, decode(cm, target)?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Create the record of a new release. Fails with a 409 `AlreadyExists` API error if the
    /// release exists.
    pub async fn create(&self, release: &str, record: &R) -> Result<Versioned<R>, ClusterError> {
        let target = self.target(release);
        let cm = self.encode(release, record, None, &target)?;
        let created = self
            .api
            .create(&self.post_params(), &cm)
            .await
            .map_err(|e| ClusterError::from_kube("create", target.clone(), e))?;
        decode(created, target)
    }

    /// Replace the record, on condition that the ConfigMap is still at `resource_version`.
    /// A stale version gives [`ClusterError::ReleaseChanged`].
    pub async fn update(
        &self,
        release: &str,
        record: &R,
        resource_version: &str,
    ) -> Result<Versioned<R>, ClusterError> {
        let target = self.target(release);
        let cm = self.encode(release, record, Some(resource_version), &target)?;
        match self
            .api
            .replace(&configmap_name(release), &self.post_params(), &cm)
            .await
        {
            Ok(updated) => decode(updated, target),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Err(ClusterError::ReleaseChanged {
                    release: release.to_string(),
                    expected: resource_version.to_string(),
                })
            }
            Err(e) => Err(ClusterError::from_kube("update", target, e)),
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.dry_run,
            field_manager: Some(MANAGED_BY.to_string()),
        }
    }

    fn encode(
        &self,
        release: &str,
        record: &R,
        resource_version: Option<&str>,
        target: &Target,
    ) -> Result<ConfigMap, ClusterError> {
        let json = serde_json::to_string_pretty(record).map_err(|e| ClusterError::Corrupt {
            target: target.clone(),
            message: format!("cannot encode release state: {e}"),
        })?;
        let mut labels = record.labels();
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels.insert(RELEASE_LABEL.into(), release.into());
        Ok(ConfigMap {
            metadata: ObjectMeta {
                name: Some(configmap_name(release)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                resource_version: resource_version.map(str::to_string),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(STATE_KEY.to_string(), json)])),
            ..ConfigMap::default()
        })
    }
}

fn decode<R: DeserializeOwned>(
    cm: ConfigMap,
    target: Target,
) -> Result<Versioned<R>, ClusterError> {
    let resource_version = cm.metadata.resource_version.clone().unwrap_or_default();
    let json = cm
        .data
        .as_ref()
        .and_then(|d| d.get(STATE_KEY))
        .ok_or_else(|| ClusterError::Corrupt {
            target: target.clone(),
            message: format!(
                "no {STATE_KEY} key: this ConfigMap was not written by kubectl-canary"
            ),
        })?;
    let record = serde_json::from_str(json).map_err(|e| ClusterError::Corrupt {
        target,
        message: format!("{STATE_KEY} does not decode ({e}); was it edited by hand?"),
    })?;
    Ok(Versioned {
        record,
        resource_version,
    })
}
