//! Discovery documents (`/version`, `/api`, `/apis`, `/apis/<g>/<v>`) and OpenAPI v2/v3.

use crate::resources::ResourceInfo;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `/version` for Kubernetes `1.<minor>`.
pub fn version(minor: u32) -> Value {
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "emulationMajor": "1",
        "emulationMinor": minor.to_string(),
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": (minor - 1).to_string(),
        "gitVersion": format!("v1.{minor}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

/// Groups and their served versions (in order), excluding the core group.
fn groups(resources: &[ResourceInfo]) -> BTreeMap<String, Vec<String>> {
    let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        let versions = g.entry(r.group.clone()).or_default();
        if !versions.contains(&r.version) {
            versions.push(r.version.clone());
        }
    }
    for (group, versions) in g.iter_mut() {
        // The storage version first (preferred), like the apiserver's priority order.
        if let Some(pos) = resources
            .iter()
            .position(|r| &r.group == group && r.storage)
        {
            let preferred = resources[pos].version.clone();
            versions.retain(|v| v != &preferred);
            versions.insert(0, preferred);
        }
    }
    g
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0].clone()})
}

/// `/apis`.
pub fn group_list(resources: &[ResourceInfo]) -> Value {
    let list: Vec<Value> = groups(resources)
        .iter()
        .map(|(n, v)| group_doc(n, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list})
}

/// `/apis/<group>`.
pub fn group(resources: &[ResourceInfo], name: &str) -> Option<Value> {
    let g = groups(resources);
    let versions = g.get(name)?;
    let mut doc = group_doc(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let mut list = vec![];
    for r in resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut doc = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
            "storageVersionHash": crate::controller::template_hash(&json!([r.group, r.kind])),
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            doc["categories"] = json!(r.categories);
        }
        list.push(doc);
        if r.status_subresource {
            list.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                             "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.kind == "Deployment" && r.group == "apps" {
            list.push(json!({"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
                             "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

/// The media type of aggregated discovery (`apidiscovery.k8s.io/v2`), which kubectl 1.30+ and
/// client-go ask `/api` and `/apis` for first: every group's versions and resources in one
/// document per path instead of one request per group version.
pub const AGGREGATED_MEDIA_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header offers aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|t| {
        let params: Vec<&str> = t.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn resource_discovery(r: &ResourceInfo) -> Value {
    let mut subresources = vec![];
    if r.status_subresource {
        subresources.push(json!({"subresource": "status",
            "responseKind": response_kind(&r.group, &r.version, &r.kind),
            "verbs": ["get", "patch", "update"]}));
    }
    if r.kind == "Deployment" && r.group == "apps" {
        subresources.push(json!({"subresource": "scale",
            "responseKind": response_kind("autoscaling", "v1", "Scale"),
            "verbs": ["get", "patch", "update"]}));
    }
    let mut doc = json!({
        "resource": r.plural,
        "responseKind": response_kind(&r.group, &r.version, &r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        doc["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        doc["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        doc["subresources"] = json!(subresources);
    }
    doc
}

/// `/api` (`core`) or `/apis` as an aggregated `APIGroupDiscoveryList` (see
/// [`AGGREGATED_MEDIA_TYPE`]); versions in preference order, like the API server.
pub fn aggregated(resources: &[ResourceInfo], core: bool) -> Value {
    let order: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(resources).into_iter().collect()
    };
    let items: Vec<Value> = order
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let rs: Vec<Value> = resources
                        .iter()
                        .filter(|r| &r.group == group && &r.version == v)
                        .map(resource_discovery)
                        .collect();
                    json!({"version": v, "resources": rs, "freshness": "Current"})
                })
                .collect();
            let metadata = if group.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
           "metadata": {}, "items": items})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn openapi_v3_index(resources: &[ResourceInfo], rv: u64) -> Value {
    let mut paths = serde_json::Map::new();
    for r in resources {
        let p = gv_path(&r.group, &r.version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={rv:016X}")}),
        );
    }
    json!({"paths": paths})
}

fn schema_name(r: &ResourceInfo) -> String {
    let group = if r.group.is_empty() {
        "core".to_string()
    } else {
        r.group.clone()
    };
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

/// `/openapi/v3/<api|apis/g>/<v>`: paths with their query parameters and the kinds' schemas.
/// Built-in kinds get an open object schema (kubectl then falls back to its compiled-in types).
pub fn openapi_v3_group(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let gvp = gv_path(group, version);
    let params = json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
    ]);
    for r in &rs {
        let gvk = json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        let name = schema_name(r);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let op = |verb: &str| {
            json!({"operationId": format!("{verb}{}", r.kind), "parameters": params,
                   "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk[0],
                   "responses": {"200": {"content": {"application/json": {"schema": reference}}}}})
        };
        let base = if r.namespaced {
            format!("/{gvp}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{gvp}/{}", r.plural)
        };
        paths.insert(base.clone(), json!({"get": op("list"), "post": op("post")}));
        paths.insert(format!("{base}/{{name}}"), json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        let mut schema = match r.schema.as_deref() {
            Some(s) if s.is_object() => s.clone(),
            _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        };
        schema["x-kubernetes-group-version-kind"] = gvk;
        if r.is_custom() {
            if let Some(props) = schema["properties"].as_object_mut() {
                props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
                props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
                props.insert(
                    "metadata".into(),
                    json!({"type": "object", "description": "Standard object's metadata."}),
                );
            }
        }
        schemas.insert(name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v2` (JSON): definitions for custom kinds, paths for all.
pub fn openapi_v2(resources: &[ResourceInfo]) -> Value {
    let mut definitions = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    for r in resources {
        let gvk = json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        let mut schema = r
            .schema
            .as_deref()
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        schema["x-kubernetes-group-version-kind"] = gvk;
        definitions.insert(schema_name(r), schema);
        let gvp = gv_path(&r.group, &r.version);
        let base = if r.namespaced {
            format!("/{gvp}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{gvp}/{}", r.plural)
        };
        let params = json!([{"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true}]);
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"patch": {"parameters": params}}),
        );
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths, "definitions": definitions})
}
