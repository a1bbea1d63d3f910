//! The kinds the emulator serves: built-ins and those defined by CustomResourceDefinitions.

use serde_json::Value;
use std::sync::Arc;

/// One served resource (a group/version/kind with its REST name and scope).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    /// API group (`""` for the core group).
    pub group: String,
    /// Served version (`v1`).
    pub version: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Plural REST name (`deployments`).
    pub plural: String,
    /// Singular name (`deployment`).
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether the `status` subresource is served.
    pub status_subresource: bool,
    /// Whether this version is the storage version (CRDs) or the only one (built-ins).
    pub storage: bool,
    /// The OpenAPI v3 schema of a custom resource version. Shared: a `ResourceInfo` is cloned
    /// for every request, and Istio's schemas are hundreds of kilobytes.
    pub schema: Option<Arc<Value>>,
    /// Printer columns of a custom resource (`additionalPrinterColumns`).
    pub printer_columns: Vec<Value>,
}

impl ResourceInfo {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`.
    pub fn qualified(&self) -> String {
        crate::error::qualified(&self.group, &self.plural)
    }

    /// Whether it is a custom resource (defined by a CRD).
    pub fn is_custom(&self) -> bool {
        self.schema.is_some()
    }

    /// The verbs discovery advertises.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    fn builtin(
        group: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        ResourceInfo {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: if ["Pod", "Service", "Deployment"].contains(&kind) {
                vec!["all".into()]
            } else {
                vec![]
            },
            status_subresource: status,
            storage: true,
            schema: None,
            printer_columns: vec![],
        }
    }
}

/// The built-in kinds: Namespace, Service, Pod, ConfigMap, Secret, Deployment and CRDs.
pub fn builtins() -> Vec<ResourceInfo> {
    let mut builtins = vec![
        ResourceInfo::builtin("", "ConfigMap", "configmaps", true, &["cm"], false),
        ResourceInfo::builtin("", "Namespace", "namespaces", false, &["ns"], true),
        ResourceInfo::builtin("", "Pod", "pods", true, &["po"], true),
        ResourceInfo::builtin("", "Secret", "secrets", true, &[], false),
        ResourceInfo::builtin("", "Service", "services", true, &["svc"], true),
        ResourceInfo::builtin("apps", "Deployment", "deployments", true, &["deploy"], true),
        ResourceInfo::builtin(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
        ),
    ];
    // ServiceAccounts, RBAC, SelfSubjectAccessReviews and Leases.
    builtins.extend(crate::rbac::resources());
    builtins
}

/// The served versions of a CustomResourceDefinition object, or `None` if it is malformed.
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        spec["names"]["kind"].as_str(),
        spec["names"]["plural"].as_str(),
    ) else {
        return vec![];
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = vec![];
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let Some(version) = v["name"].as_str() else {
            continue;
        };
        out.push(ResourceInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: spec["names"]["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strings(&spec["names"]["shortNames"]),
            categories: strings(&spec["names"]["categories"]),
            status_subresource: v["subresources"]["status"].is_object(),
            storage: v["storage"].as_bool().unwrap_or(false),
            schema: Some(Arc::new(v["schema"]["openAPIV3Schema"].clone())),
            printer_columns: v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        });
    }
    out
}

/// How a list field merges (server-side apply) and which keys identify its items.
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Items identified by these keys.
    Map(Vec<String>),
    /// A set of scalars.
    Set,
}

/// The list type of the field at `path` (field names only, list items skipped) of a resource.
pub fn list_type(res: &ResourceInfo, path: &[&str]) -> ListType {
    if path.first() == Some(&"metadata") {
        return match path.last() {
            Some(&"finalizers") => ListType::Set,
            Some(&"ownerReferences") => ListType::Map(vec!["uid".into()]),
            _ => ListType::Atomic,
        };
    }
    if let Some(schema) = res.schema.as_deref() {
        let mut node = schema;
        for seg in path {
            let next = &node["properties"][*seg];
            if next.is_null() {
                return ListType::Atomic;
            }
            node = next;
            if node["type"] == "array" && seg != path.last().unwrap_or(&"") {
                node = &node["items"];
            }
        }
        return match node["x-kubernetes-list-type"].as_str() {
            Some("map") => ListType::Map(
                node["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        };
    }
    let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
    let parent = if path.len() >= 2 {
        path[path.len() - 2]
    } else {
        ""
    };
    match path.last().copied().unwrap_or("") {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "imagePullSecrets"
        | "volumes"
        | "env" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "conditions" => keys(&["type"]),
        "hostAliases" => keys(&["ip"]),
        "ports" if parent == "containers" || parent == "initContainers" => {
            keys(&["containerPort", "protocol"])
        }
        "ports" if res.kind == "Service" => keys(&["port", "protocol"]),
        _ => ListType::Atomic,
    }
}

/// The strategic-merge-patch merge key of a built-in list field (`patchMergeKey`), if it merges.
pub fn patch_merge_key(res: &ResourceInfo, path: &[&str]) -> Option<&'static str> {
    if res.is_custom() {
        return None;
    }
    let parent = if path.len() >= 2 {
        path[path.len() - 2]
    } else {
        ""
    };
    Some(match path.last().copied().unwrap_or("") {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "imagePullSecrets"
        | "volumes"
        | "env" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "hostAliases" => "ip",
        "ownerReferences" => "uid",
        "ports" if parent == "containers" || parent == "initContainers" => "containerPort",
        "ports" if res.kind == "Service" => "port",
        _ => return None,
    })
}

/// Whether a primitive list merges as a set under strategic merge patch (`finalizers`).
pub fn patch_merges_primitives(path: &[&str]) -> bool {
    path == ["metadata", "finalizers"]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_versions_become_resources() {
        let crd = json!({"spec": {"group": "networking.istio.io", "scope": "Namespaced",
            "names": {"kind": "VirtualService", "plural": "virtualservices", "shortNames": ["vs"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object"}}},
                          {"name": "v1alpha3", "served": false}]}});
        let r = from_crd(&crd);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].api_version(), "networking.istio.io/v1");
        assert_eq!(r[0].singular, "virtualservice");
        assert!(r[0].status_subresource && r[0].namespaced && r[0].is_custom());
    }

    #[test]
    fn builtin_list_types() {
        let deploy = builtins()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap();
        assert_eq!(
            list_type(&deploy, &["spec", "template", "spec", "containers"]),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            list_type(
                &deploy,
                &["spec", "template", "spec", "containers", "ports"]
            ),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            list_type(&deploy, &["spec", "template", "spec", "tolerations"]),
            ListType::Atomic
        );
        assert_eq!(
            patch_merge_key(&deploy, &["spec", "template", "spec", "containers", "env"]),
            Some("name")
        );
    }
}
