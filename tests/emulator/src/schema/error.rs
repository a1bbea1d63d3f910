//! Field errors worded exactly as the Kubernetes API server words them
//! (`k8s.io/apimachinery/pkg/util/validation/field`), and the `Status` objects that carry them.

use std::fmt;

use serde_json::{json, Value};

/// The kind of a field error: `field.ErrorType` of apimachinery, plus the strict-decoding
/// unknown field that the API server reports outside field errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `Required value` (`FieldValueRequired`).
    Required,
    /// `Invalid value` (`FieldValueInvalid`).
    Invalid,
    /// `Invalid value` for a value of the wrong type (`FieldValueTypeInvalid`).
    TypeInvalid,
    /// `Unsupported value` (`FieldValueNotSupported`): not one of an enum's values.
    NotSupported,
    /// `Duplicate value` (`FieldValueDuplicate`).
    Duplicate,
    /// `Forbidden` (`FieldValueForbidden`).
    Forbidden,
    /// `Too long` (`FieldValueTooLong`).
    TooLong,
    /// `Too many` (`FieldValueTooMany`).
    TooMany,
    /// A field the schema does not declare, refused under `fieldValidation=Strict`
    /// (`unknown field "spec.x"`, a strict decoding error rather than a field error).
    UnknownField,
}

impl FieldErrorKind {
    /// The `reason` of a `StatusCause` (`FieldValueInvalid`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::UnknownField => "FieldValueUnknown",
        }
    }

    /// The human wording of the kind (`Required value`, `Invalid value`, ...).
    pub fn label(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::UnknownField => "unknown field",
        }
    }
}

/// One validation error on one field, as `field.Error` of apimachinery.
///
/// `Display` gives exactly the API server's text, e.g.
/// `spec.hosts: Required value` or
/// `spec.http[0].route[0].weight: Invalid value: "string": spec.http[0].route[0].weight in body must be of type integer: "string"`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path (`spec.http[0].route[0].weight`); `<nil>` for the errors the API server
    /// reports without a path (oneOf/anyOf/not failures).
    pub path: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The bad value as printed (`None` prints nothing, as `Required`/`Forbidden`/`Too long` do).
    pub value: Option<Value>,
    /// The detail after the value (may be empty).
    pub detail: String,
}

impl FieldError {
    pub(crate) fn new(
        path: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            path: path.into(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// The message without the field path (`ErrorBody()` of apimachinery); the `message` of a
    /// `StatusCause`.
    pub fn body(&self) -> String {
        if self.kind == FieldErrorKind::UnknownField {
            return format!("unknown field {}", go_quote(&self.path));
        }
        let mut s = self.kind.label().to_string();
        let omit_value = matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if !omit_value {
            if let Some(value) = &self.value {
                s.push_str(": ");
                s.push_str(&bad_value(value));
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == FieldErrorKind::UnknownField {
            return f.write_str(&self.body());
        }
        write!(f, "{}: {}", self.path, self.body())
    }
}

/// Prints a bad value as `ErrorBody()` does: strings Go-quoted (`%q`), numbers and booleans
/// plainly (`%v`), `null` for null, maps and lists as Go's `%#v` prints the decoded
/// `map[string]interface {}` / `[]interface {}`.
pub(crate) fn bad_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        other => go_sharp_v(other),
    }
}

/// Go's `%#v` of a decoded JSON value held in an `interface{}`.
fn go_sharp_v(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            // Go prints map keys sorted.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_sharp_v(v)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

/// Formats a JSON number as Go's `%v` does for the `int64`/`float64` the API server decodes.
pub(crate) fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Formats a float as Go's `%v` does (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest
/// representation, in exponent form when the exponent is below -4 or at least 6
/// (`4294967295` → `4.294967295e+09`, `100` → `100`, `0.00001` → `1e-05`).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return "0".to_string();
    }
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Quotes a string as Go's `%q` / `strconv.Quote` does.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let cp = c as u32;
                if cp <= 0xffff {
                    out.push_str(&format!("\\u{cp:04x}"));
                } else {
                    out.push_str(&format!("\\U{cp:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Errors building a schema or a CRD set, or looking a kind up.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The OpenAPI v3 schema is not a structural schema this validator understands.
    #[error("invalid schema at {path}: {reason}")]
    InvalidSchema {
        /// JSON-pointer-like location inside the schema (`properties.spec.properties.hosts`).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CRD YAML does not parse.
    #[error("invalid CRD YAML (document {document}): {reason}")]
    Yaml {
        /// 1-based index of the YAML document.
        document: usize,
        /// The parser's message.
        reason: String,
    },
    /// A CRD is missing a field needed to serve it.
    #[error("CustomResourceDefinition {name:?}: {reason}")]
    InvalidCrd {
        /// The CRD's `metadata.name` (empty when missing).
        name: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// The object has no `apiVersion`/`kind`.
    #[error("object has no apiVersion and kind")]
    MissingTypeMeta,
    /// No CRD in the set serves this group, version and kind.
    #[error("no matches for kind {kind:?} in version {api_version:?}")]
    UnknownKind {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
    },
}

/// A `metav1.Status` 422 `Invalid`, as the API server answers an object that fails validation:
/// message `VirtualService.networking.istio.io "reviews" is invalid: [..., ...]` and one
/// `details.causes` entry per error. Unknown-field errors (strict decoding) are not field errors:
/// send [`strict_decoding_status`] for those.
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    // `ToAggregate()` drops repeated messages; one error prints alone, several as `[a, b]`.
    let mut messages: Vec<String> = Vec::new();
    for e in errors {
        let m = e.to_string();
        if !messages.contains(&m) {
            messages.push(m);
        }
    }
    let message = match messages.len() {
        0 => format!("{qualified} {} is invalid", go_quote(name)),
        1 => format!("{qualified} {} is invalid: {}", go_quote(name), messages[0]),
        _ => format!(
            "{qualified} {} is invalid: [{}]",
            go_quote(name),
            messages.join(", ")
        ),
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.kind.reason(), "message": e.body(), "field": e.path}))
        .collect();
    let mut details = serde_json::Map::new();
    if !name.is_empty() {
        details.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), json!(group));
    }
    details.insert("kind".into(), json!(kind));
    if !causes.is_empty() {
        details.insert("causes".into(), Value::Array(causes));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": Value::Object(details),
        "code": 422
    })
}

/// A `metav1.Status` 400 `BadRequest` for unknown fields under `fieldValidation=Strict`:
/// `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`.
pub fn strict_decoding_status(unknown: &[FieldError]) -> Value {
    let list: Vec<String> = unknown.iter().map(|e| e.to_string()).collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("strict decoding error: {}", list.join(", ")),
        "reason": "BadRequest",
        "code": 400
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_go() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\x01é""#);
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100.0), "100");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
        assert_eq!(go_float(4294967295.0), "4.294967295e+09");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(-0.00001), "-1e-05");
    }

    #[test]
    fn bodies_match_apimachinery() {
        let e = FieldError::new("spec.hosts", FieldErrorKind::Required, None, "");
        assert_eq!(e.to_string(), "spec.hosts: Required value");
        let e = FieldError::new(
            "spec.foo",
            FieldErrorKind::NotSupported,
            Some(json!("X")),
            "supported values: \"A\", \"B\"",
        );
        assert_eq!(
            e.to_string(),
            r#"spec.foo: Unsupported value: "X": supported values: "A", "B""#
        );
        let e = FieldError::new(
            "spec.x",
            FieldErrorKind::TooMany,
            Some(json!(5)),
            "must have at most 3 items",
        );
        assert_eq!(
            e.to_string(),
            "spec.x: Too many: 5: must have at most 3 items"
        );
        let e = FieldError::new(
            "spec.ports[1]",
            FieldErrorKind::Duplicate,
            Some(json!({"protocol": "TCP", "port": 80})),
            "",
        );
        assert_eq!(
            e.to_string(),
            r#"spec.ports[1]: Duplicate value: map[string]interface {}{"port":80, "protocol":"TCP"}"#
        );
        let e = FieldError::new("spec.x", FieldErrorKind::UnknownField, None, "");
        assert_eq!(e.to_string(), r#"unknown field "spec.x""#);
    }

    #[test]
    fn invalid_status_has_causes_and_aggregate_message() {
        let errs = vec![
            FieldError::new("spec.hosts", FieldErrorKind::Required, None, ""),
            FieldError::new("spec.hosts", FieldErrorKind::Required, None, ""),
            FieldError::new("spec.x", FieldErrorKind::Invalid, Some(json!(-1)), "bad"),
        ];
        let s = invalid_status("VirtualService", "networking.istio.io", "reviews", &errs);
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(
            s["message"],
            r#"VirtualService.networking.istio.io "reviews" is invalid: [spec.hosts: Required value, spec.x: Invalid value: -1: bad]"#
        );
        assert_eq!(s["details"]["causes"].as_array().map(Vec::len), Some(3));
        assert_eq!(s["details"]["causes"][2]["reason"], "FieldValueInvalid");
        assert_eq!(
            s["details"]["causes"][2]["message"],
            "Invalid value: -1: bad"
        );
        assert_eq!(s["details"]["causes"][2]["field"], "spec.x");
    }
}
