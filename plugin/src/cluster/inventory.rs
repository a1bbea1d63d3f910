//! Reading what lint and `mtls status` look at from a live cluster.
//!
//! This module hands back plain Kubernetes objects (`serde_json::Value`); `lint` sorts them into
//! its own inventory. Neither module imports the other: the objects are the shared vocabulary.

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::connect::Cluster;
use super::error::{ClusterError, Target};
use super::resources::{self, Kind};

/// Read the namespace (when the Namespace may be read), its Services, Pods, DestinationRules, VirtualServices and
/// PeerAuthentications, the PeerAuthentications of Istio's root namespace, and Gateways in every
/// namespace (or only this one when listing cluster-wide is forbidden).
///
/// A namespace that does not exist is an error (when the Namespace may be read at all: with
/// namespace-scoped rights it may not, and the injection check is skipped); Istio kinds that are not served mean Istio is
/// not installed, which is an error too, worded as such.
pub async fn read(cluster: &Cluster, root_namespace: &str) -> Result<Vec<Value>, ClusterError> {
    let ns = cluster.namespace.clone();
    let mut inv = Vec::new();
    match get_namespace(cluster, &ns).await {
        Ok(namespace) => inv.push(namespace),
        // Namespace-scoped rights cannot read the Namespace object itself: no Namespace comes
        // back, so the injection check is skipped rather than the whole lint refused.
        Err(e) if e.status_code() == Some(403) => {}
        Err(e) => return Err(e),
    }
    for kind in [
        resources::SERVICE,
        resources::POD,
        resources::DESTINATION_RULE,
        resources::VIRTUAL_SERVICE,
        resources::PEER_AUTHENTICATION,
    ] {
        for obj in list(cluster, kind, Some(&ns)).await? {
            inv.push(obj);
        }
    }
    if root_namespace != ns {
        match list(
            cluster,
            resources::PEER_AUTHENTICATION,
            Some(root_namespace),
        )
        .await
        {
            Ok(items) => items.into_iter().for_each(|o| inv.push(o)),
            Err(e) if e.status_code() == Some(403) => {}
            Err(e) => return Err(e),
        }
    }
    match list(cluster, resources::GATEWAY, None).await {
        Ok(items) => items.into_iter().for_each(|o| inv.push(o)),
        Err(e) if e.status_code() == Some(403) => {
            for obj in list(cluster, resources::GATEWAY, Some(&ns)).await? {
                inv.push(obj);
            }
        }
        Err(e) => return Err(e),
    }
    Ok(inv)
}

/// Get the Namespace `ns`; one that does not exist is a 404 [`ClusterError::Api`] saying what to
/// check.
pub async fn get_namespace(cluster: &Cluster, ns: &str) -> Result<Value, ClusterError> {
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("", "v1", "Namespace"),
        "namespaces",
    );
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &ar);
    let target = Target::new("Namespace", "", ns);
    match api.get_opt(ns).await {
        Ok(Some(obj)) => to_value(obj, &target),
        Ok(None) => Err(ClusterError::Api {
            op: "get",
            target,
            code: 404,
            reason: "NotFound".into(),
            message: format!("namespace {ns:?} not found (check -n, or the namespace of your kubeconfig context)"),
        }),
        Err(e) => Err(ClusterError::from_kube("get", target, e)),
    }
}

/// List every object of `kind` in `namespace` (all namespaces when `None`), as JSON with
/// `apiVersion` and `kind` set.
pub async fn list(
    cluster: &Cluster,
    kind: Kind,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ClusterError> {
    list_selected(cluster, kind, namespace, &ListParams::default()).await
}

/// Like [`list`], with a label/field selector.
pub async fn list_selected(
    cluster: &Cluster,
    kind: Kind,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<Value>, ClusterError> {
    let ar = kind.api_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, &ar),
        None => Api::all_with(cluster.client.clone(), &ar),
    };
    let target = Target::new(&format!("{}s", kind.kind), namespace.unwrap_or(""), "");
    let list = api.list(params).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 404 && !kind.group.is_empty() => {
            ClusterError::Api {
                op: "list",
                target: target.clone(),
                code: 404,
                reason: "NotFound".into(),
                message: format!(
                    "the server does not serve {}/{} {}: is Istio (1.22 or later) installed?",
                    kind.group, kind.version, kind.plural
                ),
            }
        }
        other => ClusterError::from_kube("list", target.clone(), other),
    })?;
    list.items
        .into_iter()
        .map(|mut obj| {
            obj.types = Some(kube::core::TypeMeta {
                api_version: kind.api_version(),
                kind: kind.kind.to_string(),
            });
            to_value(obj, &target)
        })
        .collect()
}

/// `obj` as JSON. Its fields beside `apiVersion`, `kind` and `metadata` (the spec, the status)
/// are moved, not serialised again: a list of large objects would otherwise be held twice.
pub(crate) fn to_value(obj: DynamicObject, target: &Target) -> Result<Value, ClusterError> {
    let corrupt = |message: String| ClusterError::Corrupt {
        target: target.clone(),
        message,
    };
    let mut fields = match obj.data {
        Value::Object(fields) => fields,
        Value::Null => serde_json::Map::new(),
        other => return Err(corrupt(format!("the object is {other}, not a mapping"))),
    };
    let metadata = serde_json::to_value(&obj.metadata).map_err(|e| corrupt(e.to_string()))?;
    fields.insert("metadata".into(), metadata);
    if let Some(types) = obj.types {
        fields.insert("apiVersion".into(), Value::String(types.api_version));
        fields.insert("kind".into(), Value::String(types.kind));
    }
    Ok(Value::Object(fields))
}
