//! Object validation before a write: built-in rules for the built-in kinds, and the custom
//! resource's OpenAPI v3 schema for CRD kinds (one function, [`validate`], so the structural
//! schema validator can be wired in at a single place).

use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::schema::{invalid_status, strict_decoding_status, Schema, UnknownFields};
use crate::webhook;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Compiled CRD schemas (compiling CEL rules is not free), by the address of the shared schema
/// they were compiled from. Each entry keeps its schema alive, so an address is never reused
/// for a different schema while it is a key.
fn compiled(schema: &Arc<Value>) -> Option<Arc<Schema>> {
    type Cache = HashMap<usize, (Arc<Value>, Option<Arc<Schema>>)>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let key = Arc::as_ptr(schema) as usize;
    let cache = CACHE.get_or_init(Default::default);
    if let Some((_, hit)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let built = Schema::from_openapi_v3(schema).ok().map(Arc::new);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (schema.clone(), built.clone()));
    built
}

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Unknown fields are errors.
    Strict,
    /// Unknown fields are dropped with a `Warning` header (the apiserver's default).
    #[default]
    Warn,
    /// Unknown fields are dropped silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter value (`Strict`, `Warn`, `Ignore`; empty means Warn).
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}; supported values: Ignore, Strict, Warn"
            ))),
        }
    }
}

/// The result of validating an object: the (pruned, defaulted) object and warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The object to store.
    pub object: Value,
    /// `Warning` header texts (`unknown field "spec.foo"`).
    pub warnings: Vec<String>,
}

type Cause = (String, &'static str, String);

/// The most bytes of data a ConfigMap or Secret may hold (kube-apiserver's `MaxSecretSize`,
/// which also bounds ConfigMaps: 1 MiB).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

fn required(causes: &mut Vec<Cause>, field: &str) {
    causes.push((
        field.to_string(),
        "FieldValueRequired",
        "Required value".into(),
    ));
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Validates an object about to be stored under `res`.
pub fn validate(
    res: &ResourceInfo,
    obj: Value,
    mode: FieldValidation,
) -> Result<Validated, ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut causes: Vec<Cause> = vec![];
    if !is_dns1123_subdomain(&name) {
        causes.push((
            "metadata.name".into(),
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        ));
    }
    for field in ["labels", "annotations"] {
        if let Some(m) = obj["metadata"][field].as_object() {
            for (k, v) in m {
                if !v.is_string() {
                    causes.push((
                        format!("metadata.{field}.{k}"),
                        "FieldValueInvalid",
                        "Invalid value: must be a string".into(),
                    ));
                }
            }
        }
    }
    let mut object = obj;
    let mut warnings = vec![];
    match (res.group.as_str(), res.kind.as_str()) {
        ("apps", "Deployment") => {
            let spec = &object["spec"];
            if !spec["selector"].is_object() {
                required(&mut causes, "spec.selector");
            } else if let Some(sel) = spec["selector"]["matchLabels"].as_object() {
                let labels = &spec["template"]["metadata"]["labels"];
                if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                    causes.push((
                        "spec.template.metadata.labels".into(),
                        "FieldValueInvalid",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            labels
                        ),
                    ));
                }
            }
            containers(&spec["template"]["spec"], "spec.template.spec", &mut causes);
        }
        ("", "Pod") => containers(&object["spec"], "spec", &mut causes),
        ("", "Service") => {
            for (i, p) in object["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !p["port"].is_u64() {
                    required(&mut causes, &format!("spec.ports[{i}].port"));
                }
            }
        }
        ("", "ConfigMap") | ("", "Secret") => {
            let mut total = 0;
            for (k, v) in object["data"].as_object().into_iter().flatten() {
                match v.as_str() {
                    Some(text) => total += text.len(),
                    None => causes.push((
                        format!("data[{k}]"),
                        "FieldValueInvalid",
                        "Invalid value: must be a string".into(),
                    )),
                }
            }
            for v in object["binaryData"].as_object().into_iter().flatten() {
                // base64 on the wire: the stored bytes are three quarters of the text.
                total += v.1.as_str().map_or(0, |b64| b64.len() / 4 * 3);
            }
            if total > MAX_CONFIG_BYTES {
                // kube-apiserver names the whole object (`[]`), as `field.TooLong` on the root.
                causes.push((
                    "[]".into(),
                    "FieldValueTooLong",
                    format!("Too long: must have at most {MAX_CONFIG_BYTES} bytes"),
                ));
            }
        }
        _ => {}
    }
    if let Some(schema) = &res.schema {
        match compiled(schema) {
            Some(compiled) => {
                let unknown = match mode {
                    FieldValidation::Strict => UnknownFields::Strict,
                    FieldValidation::Warn => UnknownFields::Warn,
                    FieldValidation::Ignore => UnknownFields::Ignore,
                };
                let out = compiled.validate(&object, unknown);
                let unknown_fields = out.unknown_fields();
                if !unknown_fields.is_empty() {
                    return Err(ApiError::from_status(&strict_decoding_status(
                        &unknown_fields,
                    )));
                }
                let errors = out.field_errors();
                if !errors.is_empty() {
                    return Err(ApiError::from_status(&invalid_status(
                        &res.kind, &res.group, &name, &errors,
                    )));
                }
                warnings.extend(out.warnings);
                object = out.object;
            }
            None => {
                let out = crate_schema_validate(schema, &object, mode);
                causes.extend(out.0);
                let unknown: Vec<String> = out
                    .1
                    .iter()
                    .map(|p| format!("unknown field {p:?}"))
                    .collect();
                match mode {
                    FieldValidation::Strict if !unknown.is_empty() => {
                        return Err(ApiError::bad_request(format!(
                            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                            unknown.join(", "),
                            kind = res.kind,
                            version = res.version
                        )));
                    }
                    FieldValidation::Warn => warnings.extend(unknown),
                    _ => {}
                }
                object = out.2;
            }
        }
        if causes.is_empty() {
            let admission = webhook::admit(&object);
            if !admission.allowed() {
                // kube-apiserver's answer for a denying webhook: 400 with the webhook's
                // message and no reason (Istio's webhook sets none).
                return Err(ApiError::new(400, "", webhook::denial_message(&admission)));
            }
            warnings.extend(admission.warnings);
        }
    }
    if causes.is_empty() {
        Ok(Validated { object, warnings })
    } else {
        Err(ApiError::invalid(&res.group, &res.kind, &name, &causes))
    }
}

fn containers(pod_spec: &Value, at: &str, causes: &mut Vec<Cause>) {
    match pod_spec["containers"].as_array() {
        Some(list) if !list.is_empty() => {
            for (i, c) in list.iter().enumerate() {
                if c["name"].as_str().unwrap_or("").is_empty() {
                    required(causes, &format!("{at}.containers[{i}].name"));
                }
                if c["image"].as_str().unwrap_or("").is_empty() {
                    required(causes, &format!("{at}.containers[{i}].image"));
                }
            }
        }
        _ => required(causes, &format!("{at}.containers")),
    }
}

/// Schema validation of a custom resource: `(causes, unknown field paths, pruned object)`.
///
/// A small structural check (types, required, enums, unknown fields) until the full
/// structural-schema validator is wired in here.
fn crate_schema_validate(
    schema: &Value,
    obj: &Value,
    mode: FieldValidation,
) -> (Vec<Cause>, Vec<String>, Value) {
    let mut causes = vec![];
    let mut warnings = vec![];
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        for (k, v) in m.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            check(
                &schema["properties"][k.as_str()],
                v,
                k,
                mode,
                &mut causes,
                &mut warnings,
            );
        }
        let unknown: Vec<String> = m
            .keys()
            .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
            .filter(|k| {
                schema["properties"].get(k.as_str()).is_none()
                    && schema["x-kubernetes-preserve-unknown-fields"] != true
            })
            .cloned()
            .collect();
        for k in unknown {
            unknown_field(m, &k, &k, mode, &mut causes, &mut warnings);
        }
    }
    for r in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
    {
        if obj.get(r).is_none() {
            required(&mut causes, r);
        }
    }
    (causes, warnings, out)
}

fn unknown_field(
    m: &mut serde_json::Map<String, Value>,
    key: &str,
    path: &str,
    mode: FieldValidation,
    causes: &mut Vec<Cause>,
    warnings: &mut Vec<String>,
) {
    let _ = (mode, causes);
    warnings.push(path.to_string());
    m.remove(key);
}

fn check(
    schema: &Value,
    v: &mut Value,
    path: &str,
    mode: FieldValidation,
    causes: &mut Vec<Cause>,
    warnings: &mut Vec<String>,
) {
    if schema.is_null() || schema["x-kubernetes-int-or-string"] == true {
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok && !v.is_null() {
        causes.push((
            path.into(),
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: {:?}: {path} in body must be of type {ty}: {:?}",
                json_type(v),
                json_type(v)
            ),
        ));
        return;
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            causes.push((
                path.into(),
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {v}: supported values: {}",
                    list.join(", ")
                ),
            ));
        }
    }
    match v {
        Value::Object(m) => {
            for r in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
            {
                if !m.contains_key(r) {
                    required(causes, &format!("{path}.{r}"));
                }
            }
            let props = &schema["properties"];
            let additional = &schema["additionalProperties"];
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child_path = format!("{path}.{k}");
                if let Some(p) = props.get(&k) {
                    check(
                        p,
                        m.get_mut(&k).expect("key"),
                        &child_path,
                        mode,
                        causes,
                        warnings,
                    );
                } else if additional.is_object() {
                    check(
                        additional,
                        m.get_mut(&k).expect("key"),
                        &child_path,
                        mode,
                        causes,
                        warnings,
                    );
                } else if props.is_object()
                    && schema["x-kubernetes-preserve-unknown-fields"] != true
                    && additional != &Value::Bool(true)
                {
                    unknown_field(m, &k, &child_path, mode, causes, warnings);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                check(
                    &schema["items"],
                    item,
                    &format!("{path}[{i}]"),
                    mode,
                    causes,
                    warnings,
                );
            }
        }
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtins;
    use serde_json::json;

    #[test]
    fn deployment_selector_must_match_template() {
        let d = builtins()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap();
        let obj = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let e = validate(&d, obj, FieldValidation::Warn).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.contains("spec.template.metadata.labels"),
            "{}",
            e.message
        );
    }

    #[test]
    fn custom_resource_types_and_unknown_fields() {
        let mut r = builtins()[0].clone();
        r.schema = Some(Arc::new(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "hosts": {"type": "array", "items": {"type": "string"}}}}}}),
        ));
        r.kind = "VirtualService".into();
        let obj = json!({"metadata": {"name": "vs"}, "spec": {"hosts": ["a"], "extra": 1}});
        let ok = validate(&r, obj.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(
            ok.warnings,
            vec!["unknown field \"spec.extra\"".to_string()]
        );
        assert!(ok.object["spec"].get("extra").is_none());
        let strict = validate(&r, obj.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(strict.code, 400);
        assert!(
            strict
                .message
                .ends_with("strict decoding error: unknown field \"spec.extra\""),
            "{}",
            strict.message
        );
        assert!(validate(&r, obj, FieldValidation::Ignore)
            .unwrap()
            .warnings
            .is_empty());
        let bad = json!({"metadata": {"name": "vs"}, "spec": {"hosts": "a"}});
        let e = validate(&r, bad, FieldValidation::Ignore).unwrap_err();
        assert!(e.message.contains("spec.hosts"), "{}", e.message);
    }
}
