//! The passes over an object, in the API server's order: drop non-nullable nulls, apply
//! defaults and prune unknown fields (one mutating pass), then validate the result against the
//! schema, its list types and its CEL rules.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::cel::to_cel;
use super::error::{go_float, FieldError, FieldErrorKind};
use super::format;
use super::node::{Additional, JsonType, ListType, Node};

/// A field path being walked: rendered with dots for schema errors (`spec.labels.app`, as
/// kube-openapi names fields) and with map keys in brackets for CEL errors
/// (`spec.labels[app]`, as `field.Path.Key` renders them).
#[derive(Default)]
pub(crate) struct Path {
    text: String,
    /// Byte ranges of `text` holding map keys (each preceded by a `.` unless at the start).
    keys: Vec<(usize, usize)>,
}

impl std::ops::Deref for Path {
    type Target = String;
    fn deref(&self) -> &String {
        &self.text
    }
}

impl Path {
    fn truncate(&mut self, len: usize) {
        self.text.truncate(len);
        while self.keys.last().is_some_and(|(start, _)| *start >= len) {
            self.keys.pop();
        }
    }

    /// The path as a CEL error names it: map keys in brackets.
    pub(crate) fn cel(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 2);
        let mut at = 0;
        for (start, end) in &self.keys {
            let dot = if *start > 0 { start - 1 } else { *start };
            out.push_str(&self.text[at..dot]);
            out.push('[');
            out.push_str(&self.text[*start..*end]);
            out.push(']');
            at = *end;
        }
        out.push_str(&self.text[at..]);
        out
    }
}

/// Appends `.name` (or `name` at the root) to `path`, runs `f`, and restores `path`.
fn with_child<R>(path: &mut Path, name: &str, f: impl FnOnce(&mut Path) -> R) -> R {
    let len = path.text.len();
    if !path.text.is_empty() {
        path.text.push('.');
    }
    path.text.push_str(name);
    let r = f(path);
    path.truncate(len);
    r
}

/// Appends a map key (`.key`, `[key]` for CEL), runs `f`, and restores `path`.
fn with_key<R>(path: &mut Path, key: &str, f: impl FnOnce(&mut Path) -> R) -> R {
    let len = path.text.len();
    if !path.text.is_empty() {
        path.text.push('.');
    }
    let start = path.text.len();
    path.text.push_str(key);
    path.keys.push((start, path.text.len()));
    let r = f(path);
    path.truncate(len);
    r
}

/// Appends `[i]` to `path`, runs `f`, and restores `path`.
fn with_index<R>(path: &mut Path, i: usize, f: impl FnOnce(&mut Path) -> R) -> R {
    let len = path.text.len();
    path.text.push('[');
    path.text.push_str(&i.to_string());
    path.text.push(']');
    let r = f(path);
    path.truncate(len);
    r
}

/// Keys kept at the root of every object and inside embedded resources.
const TYPE_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Drops nulls of non-nullable fields without a default, applies defaults, and prunes the fields
/// the schema does not declare, recording their paths in `pruned`.
pub(crate) fn normalize(
    node: &Node,
    value: &mut Value,
    path: &mut Path,
    root: bool,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(obj) => {
            if node.ty != Some(JsonType::Object) && node.properties.is_empty() {
                if let Additional::None = node.additional {
                    // Untyped (preserve-unknown) or int-or-string node: nothing declared below.
                    return;
                }
            }
            normalize_object(node, obj, path, root, pruned)
        }
        Value::Array(items) => {
            if let Some(item_node) = &node.items {
                for (i, item) in items.iter_mut().enumerate() {
                    if item.is_null() && !item_node.nullable {
                        if let Some(d) = &item_node.default {
                            *item = d.clone();
                        }
                    }
                    with_index(path, i, |p| normalize(item_node, item, p, false, pruned));
                }
            }
        }
        // The API server decodes `1.0` as a float and encodes it back as `1`: an integral float
        // in an integer field comes back as an integer.
        Value::Number(n)
            if !(n.is_i64() || n.is_u64())
                && (node.ty == Some(JsonType::Integer) || node.int_or_string) =>
        {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *value = Value::from(f as i64);
            }
        }
        _ => {}
    }
}

fn normalize_object(
    node: &Node,
    obj: &mut Map<String, Value>,
    path: &mut Path,
    root: bool,
    pruned: &mut Vec<String>,
) {
    // Non-nullable nulls: defaulted when the field has a default, dropped otherwise.
    let nulls: Vec<String> = obj
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for key in nulls {
        if let Some(prop) = node.property(&key) {
            if !prop.nullable {
                match &prop.default {
                    Some(d) => {
                        obj.insert(key, d.clone());
                    }
                    None => {
                        obj.remove(&key);
                    }
                }
            }
        }
    }
    for &i in &node.defaulted {
        let (name, prop) = &node.properties[i];
        if !obj.contains_key(name) {
            if let Some(d) = &prop.default {
                obj.insert(name.clone(), d.clone());
            }
        }
    }
    let keep_unknown = node.preserve_unknown || matches!(node.additional, Additional::Any);
    let mut unknown = Vec::new();
    for (key, v) in obj.iter_mut() {
        if (root || node.embedded_resource) && TYPE_META.contains(&key.as_str()) {
            continue;
        }
        if let Some(prop) = node.property(key) {
            with_child(path, key, |p| normalize(prop, v, p, false, pruned));
        } else if let Additional::Schema(sub) = &node.additional {
            if v.is_null() && !sub.nullable {
                if let Some(d) = &sub.default {
                    *v = d.clone();
                }
            }
            with_key(path, key, |p| normalize(sub, v, p, false, pruned));
        } else if !keep_unknown {
            unknown.push(key.clone());
        }
    }
    for key in unknown {
        obj.remove(&key);
        with_child(path, &key, |p| pruned.push(p.to_string()));
    }
}

/// The JSON type name of a value as kube-openapi reports it (`float64` values are `number`).
fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a value is a JSON integer (an integral float counts, as kube-openapi's `isFloatInt`).
fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
        }
        _ => false,
    }
}

/// The type check; `Some(expected)` when the value does not fit.
fn type_mismatch(node: &Node, value: &Value) -> Option<&'static str> {
    if node.int_or_string {
        return (!(is_integer(value) || value.is_string())).then_some("integer,string");
    }
    let ty = node.ty?;
    let ok = match ty {
        JsonType::Object => value.is_object(),
        JsonType::Array => value.is_array(),
        JsonType::String => value.is_string(),
        JsonType::Integer => is_integer(value),
        JsonType::Number => value.is_number(),
        JsonType::Boolean => value.is_boolean(),
    };
    (!ok).then_some(ty.name())
}

/// Compares JSON values as the API server's enum check does (numbers by value).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn in_body(path: &str) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        path.to_string()
    }
}

fn num(n: f64) -> String {
    go_float(n)
}

/// Errors found by one walk: the API server runs the OpenAPI validation over the whole object
/// first and the CEL rules after it, so their errors are reported in that order.
#[derive(Default)]
pub(crate) struct Errors {
    /// OpenAPI (type, required, enum, bounds, ...) and list-type errors.
    pub schema: Vec<FieldError>,
    /// CEL rule violations.
    pub cel: Vec<FieldError>,
}

impl Errors {
    fn push(&mut self, e: FieldError) {
        self.schema.push(e);
    }
}

/// What to check on top of the value validations.
#[derive(Clone, Copy)]
pub(crate) struct Checks {
    /// Evaluate CEL rules (and list-type uniqueness): not inside oneOf/anyOf/allOf/not.
    pub structural: bool,
}

/// Validates `value` against `node`, appending errors.
pub(crate) fn validate(
    node: &Node,
    value: &Value,
    path: &mut Path,
    root: bool,
    checks: Checks,
    errors: &mut Errors,
) {
    if value.is_null() {
        if node.nullable || (node.ty.is_none() && !node.int_or_string) {
            return;
        }
        let expected = if node.int_or_string {
            "integer,string"
        } else {
            node.type_name()
        };
        errors.push(type_error(path, expected, "null"));
        return;
    }
    let mut type_ok = true;
    if let Some(expected) = type_mismatch(node, value) {
        errors.push(type_error(path, expected, value_type(value)));
        type_ok = false;
    }
    if let Some(values) = &node.enum_values {
        if !values.iter().any(|v| json_equal(v, value)) {
            let supported: Vec<String> = values
                .iter()
                .map(|v| match v {
                    Value::String(s) => super::error::go_quote(s),
                    other => super::error::go_quote(&other.to_string()),
                })
                .collect();
            errors.push(FieldError::new(
                path.clone(),
                FieldErrorKind::NotSupported,
                Some(value.clone()),
                format!("supported values: {}", supported.join(", ")),
            ));
        }
    }
    match value {
        Value::String(s) => validate_string(node, s, value, path, errors),
        Value::Number(n) => {
            validate_number(node, n.as_f64().unwrap_or(f64::NAN), value, path, errors)
        }
        Value::Array(items) => {
            validate_array(node, items, path, checks, type_ok, errors);
        }
        Value::Object(obj) => validate_object(node, obj, path, root, checks, errors),
        _ => {}
    }
    validate_composition(node, value, path, errors);
    if checks.structural && type_ok && !node.rules.is_empty() {
        let cel_value = to_cel(value);
        for rule in &node.rules {
            if let Some(v) = rule.check(&cel_value) {
                let mut at = path.cel();
                if let Some(fp) = &v.field_path {
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(fp);
                }
                let type_name = Value::String(node.type_name().to_string());
                let e = match v.reason.as_deref() {
                    Some("FieldValueForbidden") => {
                        FieldError::new(at, FieldErrorKind::Forbidden, None, v.detail)
                    }
                    Some("FieldValueRequired") => {
                        FieldError::new(at, FieldErrorKind::Required, None, v.detail)
                    }
                    Some("FieldValueDuplicate") => {
                        FieldError::new(at, FieldErrorKind::Duplicate, Some(type_name), "")
                    }
                    _ => FieldError::new(at, FieldErrorKind::Invalid, Some(type_name), v.detail),
                };
                errors.cel.push(e);
            }
        }
    }
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::new(
        path,
        FieldErrorKind::TypeInvalid,
        Some(Value::String(actual.to_string())),
        format!(
            "{} in body must be of type {expected}: {}",
            in_body(path),
            super::error::go_quote(actual)
        ),
    )
}

fn validate_string(node: &Node, s: &str, value: &Value, path: &str, errors: &mut Errors) {
    let len = s.chars().count() as u64;
    if let Some(max) = node.max_length {
        if len > max {
            errors.push(FieldError::new(
                path,
                FieldErrorKind::TooLong,
                Some(value.clone()),
                // Kubernetes 1.32+ wording (`field.TooLong`); before: "may not be longer than N".
                format!(
                    "may not be more than {max} {}",
                    if max == 1 { "byte" } else { "bytes" }
                ),
            ));
        }
    }
    if let Some(min) = node.min_length {
        if len < min {
            errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(value.clone()),
                format!(
                    "{} in body should be at least {min} chars long",
                    in_body(path)
                ),
            ));
        }
    }
    if let Some((source, re)) = &node.pattern {
        if !re.is_match(s) {
            errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(value.clone()),
                format!("{} in body should match '{source}'", in_body(path)),
            ));
        }
    }
    if let Some(f) = &node.format {
        if !format::check(f, s) {
            errors.push(FieldError::new(
                path,
                FieldErrorKind::TypeInvalid,
                Some(value.clone()),
                format!(
                    "{} in body must be of type {f}: {}",
                    in_body(path),
                    super::error::go_quote(s)
                ),
            ));
        }
    }
}

fn validate_number(node: &Node, n: f64, value: &Value, path: &str, errors: &mut Errors) {
    let invalid = |detail: String| {
        FieldError::new(path, FieldErrorKind::Invalid, Some(value.clone()), detail)
    };
    if let Some(m) = node.multiple_of {
        if m > 0.0 && (n / m).fract() != 0.0 {
            errors.push(invalid(format!(
                "{} in body should be a multiple of {}",
                in_body(path),
                num(m)
            )));
        }
    }
    if let Some((max, exclusive)) = node.maximum {
        if exclusive && n >= max {
            errors.push(invalid(format!(
                "{} in body should be less than {}",
                in_body(path),
                num(max)
            )));
        } else if !exclusive && n > max {
            errors.push(invalid(format!(
                "{} in body should be less than or equal to {}",
                in_body(path),
                num(max)
            )));
        }
    }
    if let Some((min, exclusive)) = node.minimum {
        if exclusive && n <= min {
            errors.push(invalid(format!(
                "{} in body should be greater than {}",
                in_body(path),
                num(min)
            )));
        } else if !exclusive && n < min {
            errors.push(invalid(format!(
                "{} in body should be greater than or equal to {}",
                in_body(path),
                num(min)
            )));
        }
    }
}

fn validate_array(
    node: &Node,
    items: &[Value],
    path: &mut Path,
    checks: Checks,
    type_ok: bool,
    errors: &mut Errors,
) {
    let len = items.len() as u64;
    if let Some(max) = node.max_items {
        if len > max {
            errors.push(FieldError::new(
                path.clone(),
                FieldErrorKind::TooMany,
                Some(Value::from(len)),
                format!("must have at most {max} items"),
            ));
        }
    }
    if let Some(min) = node.min_items {
        if len < min {
            errors.push(FieldError::new(
                path.clone(),
                FieldErrorKind::Invalid,
                Some(Value::from(len)),
                format!("{} in body should have at least {min} items", in_body(path)),
            ));
        }
    }
    if let Some(item_node) = &node.items {
        for (i, item) in items.iter().enumerate() {
            with_index(path, i, |p| {
                validate(item_node, item, p, false, checks, errors)
            });
        }
    }
    if checks.structural && type_ok {
        match &node.list_type {
            ListType::Atomic => {}
            ListType::Set => {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].iter().any(|prev| json_equal(prev, item)) {
                        with_index(path, i, |p| {
                            errors.push(FieldError::new(
                                p.clone(),
                                FieldErrorKind::Duplicate,
                                Some(item.clone()),
                                "",
                            ))
                        });
                    }
                }
            }
            ListType::Map(keys) => {
                let mut seen: HashSet<String> = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(obj) = item.as_object() else {
                        continue;
                    };
                    let mut key_obj = Map::new();
                    for k in keys {
                        if let Some(v) = obj.get(k) {
                            key_obj.insert(k.clone(), v.clone());
                        }
                    }
                    let key = Value::Object(key_obj);
                    if !seen.insert(key.to_string()) {
                        with_index(path, i, |p| {
                            errors.push(FieldError::new(
                                p.clone(),
                                FieldErrorKind::Duplicate,
                                Some(key.clone()),
                                "",
                            ))
                        });
                    }
                }
            }
        }
    }
}

fn validate_object(
    node: &Node,
    obj: &Map<String, Value>,
    path: &mut Path,
    root: bool,
    checks: Checks,
    errors: &mut Errors,
) {
    let count = obj.len() as u64;
    if let Some(max) = node.max_properties {
        if count > max {
            errors.push(FieldError::new(
                path.clone(),
                FieldErrorKind::TooMany,
                Some(Value::from(count)),
                format!("must have at most {max} items"),
            ));
        }
    }
    if let Some(min) = node.min_properties {
        if count < min {
            errors.push(FieldError::new(
                path.clone(),
                FieldErrorKind::Invalid,
                Some(Value::from(count)),
                format!(
                    "{} in body should have at least {min} properties",
                    in_body(path)
                ),
            ));
        }
    }
    for name in &node.required {
        if !obj.contains_key(name) {
            with_child(path, name, |p| {
                errors.push(FieldError::new(
                    p.clone(),
                    FieldErrorKind::Required,
                    None,
                    "",
                ))
            });
        }
    }
    for (key, v) in obj {
        if (root || node.embedded_resource) && TYPE_META.contains(&key.as_str()) {
            continue;
        }
        if let Some(prop) = node.property(key) {
            with_child(path, key, |p| validate(prop, v, p, false, checks, errors));
        } else if let Additional::Schema(sub) = &node.additional {
            with_key(path, key, |p| validate(sub, v, p, false, checks, errors));
        }
    }
    if node.embedded_resource && checks.structural {
        for key in ["apiVersion", "kind"] {
            if obj
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                with_child(path, key, |p| {
                    errors.push(FieldError::new(
                        p.clone(),
                        FieldErrorKind::Required,
                        None,
                        "must not be empty",
                    ))
                });
            }
        }
    }
}

/// Runs `node` as a value validation (no CEL, no list types) and says whether it passes.
fn passes(node: &Node, value: &Value, path: &mut Path) -> bool {
    let mut errs = Errors::default();
    validate(
        node,
        value,
        path,
        false,
        Checks { structural: false },
        &mut errs,
    );
    errs.schema.is_empty()
}

/// A path quoted for composite messages (`"spec.x"`), built only when one is reported.
fn quoted(path: &str) -> String {
    super::error::go_quote(&in_body(path))
}

fn validate_composition(node: &Node, value: &Value, path: &mut Path, errors: &mut Errors) {
    let composite = |detail: String| {
        FieldError::new(
            "<nil>",
            FieldErrorKind::Invalid,
            Some(Value::String(String::new())),
            detail,
        )
    };
    if node.one_of.is_empty()
        && node.any_of.is_empty()
        && node.all_of.is_empty()
        && node.not.is_none()
    {
        return;
    }
    if !node.one_of.is_empty() {
        let valid = node
            .one_of
            .iter()
            .filter(|n| passes(n, value, path))
            .count();
        if valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errors.push(composite(format!(
                "{} must validate one and only one schema (oneOf). {found}",
                quoted(path)
            )));
        }
    }
    if !node.any_of.is_empty() && !node.any_of.iter().any(|n| passes(n, value, path)) {
        errors.push(composite(format!(
            "{} must validate at least one schema (anyOf)",
            quoted(path)
        )));
    }
    if !node.all_of.is_empty() {
        let mut sub = Errors::default();
        for n in &node.all_of {
            validate(
                n,
                value,
                path,
                false,
                Checks { structural: false },
                &mut sub,
            );
        }
        if !sub.schema.is_empty() {
            errors.schema.extend(sub.schema);
            errors.push(composite(format!(
                "{} must validate all the schemas (allOf)",
                quoted(path)
            )));
        }
    }
    if let Some(not) = &node.not {
        if passes(not, value, path) {
            errors.push(composite(format!(
                "{} must not validate the schema (not)",
                quoted(path)
            )));
        }
    }
}
