//! A set of CustomResourceDefinitions, read from multi-document YAML, with one compiled
//! [`Schema`] per served (group, version, kind).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Outcome, Schema, SchemaError, UnknownFields};

/// A group, version and kind (`networking.istio.io`, `v1`, `VirtualService`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvk {
    /// API group (empty for the core group).
    pub group: String,
    /// Version (`v1`).
    pub version: String,
    /// Kind (`VirtualService`).
    pub kind: String,
}

impl Gvk {
    /// Builds a GVK.
    pub fn new(group: &str, version: &str, kind: &str) -> Gvk {
        Gvk {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// The GVK of an object from its `apiVersion` and `kind`.
    pub fn of(obj: &Value) -> Result<Gvk, SchemaError> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str);
        let kind = obj.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return Err(SchemaError::MissingTypeMeta);
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Ok(Gvk::new(group, version, kind))
    }

    /// `group/version` (or `version` for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Compiled schemas of every served version of every CRD in a bundle.
#[derive(Debug, Default)]
pub struct CrdSet {
    schemas: BTreeMap<Gvk, Schema>,
    definitions: Vec<Value>,
}

impl CrdSet {
    /// Reads every `CustomResourceDefinition` (apiextensions.k8s.io/v1) of a multi-document YAML
    /// stream; other documents are skipped. Each served version with a schema is compiled.
    pub fn from_yaml(yaml: &str) -> Result<CrdSet, SchemaError> {
        let mut set = CrdSet::default();
        for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let value = Value::deserialize(doc).map_err(|e| SchemaError::Yaml {
                document: i + 1,
                reason: e.to_string(),
            })?;
            if value.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            set.add_crd(&value)?;
        }
        Ok(set)
    }

    /// Adds one CRD object (JSON form).
    pub fn add_crd(&mut self, crd: &Value) -> Result<(), SchemaError> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let bad = |reason: &str| SchemaError::InvalidCrd {
            name: name.clone(),
            reason: reason.to_string(),
        };
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("spec.group is missing"))?;
        let kind = crd
            .pointer("/spec/names/kind")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("spec.names.kind is missing"))?;
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("spec.versions is missing"))?;
        for v in versions {
            let version = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a version has no name"))?;
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            // A version without a schema accepts anything (as `x-kubernetes-preserve-unknown-fields`).
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
            let compiled =
                Schema::from_openapi_v3(&schema).map_err(|e| SchemaError::InvalidCrd {
                    name: name.clone(),
                    reason: format!("version {version}: {e}"),
                })?;
            self.schemas
                .insert(Gvk::new(group, version, kind), compiled);
        }
        self.definitions.push(crd.clone());
        Ok(())
    }

    /// The CRD objects read, as JSON, in input order (what an API server serves under
    /// `apiextensions.k8s.io/v1`).
    pub fn definitions(&self) -> &[Value] {
        &self.definitions
    }

    /// The schema of a group, version and kind.
    pub fn get(&self, gvk: &Gvk) -> Option<&Schema> {
        self.schemas.get(gvk)
    }

    /// Every (group, version, kind) served, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &Gvk> {
        self.schemas.keys()
    }

    /// Number of (group, version, kind) schemas.
    pub fn len(&self) -> usize {
        self.schemas.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty()
    }

    /// Validates an object by its `apiVersion` and `kind`; `Err` when no CRD serves them.
    pub fn validate(&self, obj: &Value, unknown: UnknownFields) -> Result<Outcome, SchemaError> {
        let gvk = Gvk::of(obj)?;
        let schema = self
            .schemas
            .get(&gvk)
            .ok_or_else(|| SchemaError::UnknownKind {
                api_version: gvk.api_version(),
                kind: gvk.kind.clone(),
            })?;
        Ok(schema.validate(obj, unknown))
    }
}
