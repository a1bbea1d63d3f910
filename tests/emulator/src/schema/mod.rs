//! Validation of objects against a CustomResourceDefinition version's structural OpenAPI v3
//! schema, with the Kubernetes API server's semantics and its error wording.
//!
//! [`Schema::validate`] does what the API server does to a custom resource on create/update:
//!
//! 1. drops `null`s of non-nullable fields that have no default, and applies `default`s;
//! 2. prunes fields the schema does not declare (kept under
//!    `x-kubernetes-preserve-unknown-fields`, in maps, and `apiVersion`/`kind`/`metadata` at the
//!    root and in `x-kubernetes-embedded-resource` objects); with [`UnknownFields::Strict`] they
//!    are errors, with [`UnknownFields::Warn`] warnings (`unknown field "spec.x"`);
//! 3. validates types (`integer` accepts `1.0`, `x-kubernetes-int-or-string`, `nullable`),
//!    `required`, `enum`, `pattern` (the `regex` crate, RE2 syntax), `format` (the formats the API
//!    server checks), bounds, lengths, item and property counts, `oneOf`/`anyOf`/`allOf`/`not`,
//!    `x-kubernetes-list-type` `set`/`map` uniqueness and `metadata.name`;
//! 4. evaluates `x-kubernetes-validations` CEL rules with the `cel` crate, compiled once per
//!    schema. Rules calling functions the interpreter lacks are not enforced: see
//!    [`Schema::unsupported_rules`].
//!
//! Errors are [`FieldError`]s whose `Display` is the API server's text; [`invalid_status`] wraps
//! them into the `422 Invalid` `Status` the API server sends.

mod cel;
mod crd;
mod error;
mod format;
mod node;
mod walk;

use serde_json::Value;

pub use crd::{CrdSet, Gvk};
pub use error::{invalid_status, strict_decoding_status, FieldError, FieldErrorKind, SchemaError};

use node::{CompileStats, Node};
use walk::Checks;

/// What to do with fields the schema does not declare: the API server's `fieldValidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownFields {
    /// Refuse the object: each unknown field is an error of kind [`FieldErrorKind::UnknownField`].
    Strict,
    /// Prune them and warn (`unknown field "spec.x"`), as `kubectl` does by default.
    #[default]
    Warn,
    /// Prune them silently.
    Ignore,
}

/// The result of validating one object.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every error found; empty when the object is valid.
    pub errors: Vec<FieldError>,
    /// Warnings (unknown fields under [`UnknownFields::Warn`]).
    pub warnings: Vec<String>,
    /// The object as the API server would store it: pruned and defaulted.
    pub object: Value,
}

impl Outcome {
    /// Whether the object passed.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The unknown-field errors (strict decoding), which the API server answers with a
    /// `400 BadRequest` ([`strict_decoding_status`]) rather than a `422`.
    pub fn unknown_fields(&self) -> Vec<FieldError> {
        self.errors
            .iter()
            .filter(|e| e.kind == FieldErrorKind::UnknownField)
            .cloned()
            .collect()
    }

    /// The field errors other than unknown fields (for [`invalid_status`]).
    pub fn field_errors(&self) -> Vec<FieldError> {
        self.errors
            .iter()
            .filter(|e| e.kind != FieldErrorKind::UnknownField)
            .cloned()
            .collect()
    }
}

/// A CEL rule the interpreter cannot compile: it is not enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedRule {
    /// Where in the schema (`properties.spec.properties.url.x-kubernetes-validations[0]`).
    pub location: String,
    /// The rule's source.
    pub rule: String,
    /// Why it is not supported.
    pub reason: String,
}

/// A compiled structural schema; compile once, validate many objects (it is `Send + Sync`).
///
/// ```
/// use kube_emulator::schema::{Schema, UnknownFields};
/// use serde_json::json;
///
/// let schema = Schema::from_openapi_v3(&json!({
///     "type": "object",
///     "properties": {"spec": {"type": "object", "required": ["hosts"], "properties": {
///         "hosts": {"type": "array", "items": {"type": "string"}},
///         "weight": {"type": "integer", "default": 100}}}}
/// }))
/// .unwrap();
/// let out = schema.validate(&json!({"spec": {"foo": 1}}), UnknownFields::Warn);
/// assert_eq!(out.errors[0].to_string(), "spec.hosts: Required value");
/// assert_eq!(out.warnings, [r#"unknown field "spec.foo""#]);
/// assert_eq!(out.object, json!({"spec": {"weight": 100}}));
/// ```
#[derive(Debug)]
pub struct Schema {
    root: Node,
    rules: usize,
    unsupported: Vec<UnsupportedRule>,
}

impl Schema {
    /// Compiles an `openAPIV3Schema` (patterns and CEL rules included).
    pub fn from_openapi_v3(schema: &Value) -> Result<Schema, SchemaError> {
        let mut stats = CompileStats::default();
        let root = Node::compile(schema, "", &mut stats)?;
        Ok(Schema {
            root,
            rules: stats.rules,
            unsupported: stats.unsupported,
        })
    }

    /// How many `x-kubernetes-validations` rules the schema declares.
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// The rules the CEL interpreter cannot compile, which are therefore not enforced.
    pub fn unsupported_rules(&self) -> &[UnsupportedRule] {
        &self.unsupported
    }

    /// Validates `obj`: see the [module documentation](self) for what is done, in order.
    pub fn validate(&self, obj: &Value, unknown: UnknownFields) -> Outcome {
        let mut object = obj.clone();
        let mut pruned = Vec::new();
        walk::normalize(
            &self.root,
            &mut object,
            &mut walk::Path::default(),
            true,
            &mut pruned,
        );
        pruned.sort();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        match unknown {
            UnknownFields::Strict => errors.extend(
                pruned
                    .iter()
                    .map(|p| FieldError::new(p.clone(), FieldErrorKind::UnknownField, None, "")),
            ),
            UnknownFields::Warn => warnings.extend(
                pruned
                    .iter()
                    .map(|p| format!("unknown field {}", error::go_quote(p))),
            ),
            UnknownFields::Ignore => {}
        }
        validate_metadata_name(&object, &mut errors);
        let mut found = walk::Errors::default();
        walk::validate(
            &self.root,
            &object,
            &mut walk::Path::default(),
            true,
            Checks { structural: true },
            &mut found,
        );
        errors.extend(found.schema);
        errors.extend(found.cel);
        Outcome {
            errors,
            warnings,
            object,
        }
    }
}

/// The regex the API server quotes for DNS-1123 subdomains.
const DNS1123_SUBDOMAIN: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// `metadata.name` of a custom resource must be a DNS-1123 subdomain (when given: a missing name
/// with `generateName` is the API server's business).
fn validate_metadata_name(obj: &Value, errors: &mut Vec<FieldError>) {
    let Some(name) = obj.pointer("/metadata/name") else {
        return;
    };
    let Some(name) = name.as_str() else {
        errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::TypeInvalid,
            Some(name.clone()),
            "must be a string",
        ));
        return;
    };
    let mut problems = Vec::new();
    if name.len() > 253 {
        problems.push("must be no more than 253 characters".to_string());
    }
    let valid = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !valid {
        problems.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN}')"
        ));
    }
    for p in problems {
        errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::Invalid,
            Some(Value::String(name.to_string())),
            p,
        ));
    }
}

#[cfg(test)]
mod tests;
