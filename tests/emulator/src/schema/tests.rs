//! Unit tests of the walker on small hand-written schemas: defaulting, null handling, pruning,
//! bounds, formats, list types, composition and CEL.

use serde_json::{json, Value};

use super::{Schema, UnknownFields};

fn schema(s: Value) -> Schema {
    Schema::from_openapi_v3(&s).expect("schema compiles")
}

fn errors(s: &Schema, obj: Value) -> Vec<String> {
    s.validate(&obj, UnknownFields::Strict)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn spec_schema(spec: Value) -> Schema {
    schema(json!({"type": "object", "properties": {"spec": spec}}))
}

#[test]
fn defaults_are_applied_in_objects_items_and_maps() {
    let s = spec_schema(json!({
        "type": "object",
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "mode": {"type": "string", "default": "PERMISSIVE"},
            "ports": {"type": "array", "items": {"type": "object", "properties": {
                "protocol": {"type": "string", "default": "TCP"},
                "port": {"type": "integer"}}}},
            "limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "max": {"type": "integer", "default": 10}}}}
        }
    }));
    let out = s.validate(
        &json!({"spec": {"mode": null, "ports": [{"port": 80}], "limits": {"cpu": {}}}}),
        UnknownFields::Strict,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        out.object,
        json!({"spec": {"replicas": 1, "mode": "PERMISSIVE",
            "ports": [{"protocol": "TCP", "port": 80}], "limits": {"cpu": {"max": 10}}}})
    );
}

#[test]
fn nulls_nullable_or_dropped_or_refused() {
    let s = spec_schema(json!({
        "type": "object",
        "properties": {
            "a": {"type": "string", "nullable": true},
            "b": {"type": "string"},
            "list": {"type": "array", "items": {"type": "string"}}
        }
    }));
    let out = s.validate(
        &json!({"spec": {"a": null, "b": null}}),
        UnknownFields::Strict,
    );
    assert!(out.errors.is_empty());
    assert_eq!(out.object, json!({"spec": {"a": null}}));
    // Items are not dropped: a null item is a type error.
    assert_eq!(
        errors(&s, json!({"spec": {"list": ["x", null]}})),
        [
            r#"spec.list[1]: Invalid value: "null": spec.list[1] in body must be of type string: "null""#
        ]
    );
}

#[test]
fn pruning_keeps_declared_preserved_and_embedded_fields() {
    let s = spec_schema(json!({
        "type": "object",
        "properties": {
            "known": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"inner": {"type": "object", "properties": {"x": {"type": "integer"}}}}},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "properties": {"spec": {"type": "object", "properties": {}}}}
        }
    }));
    let input = json!({"spec": {
        "known": "k", "gone": 1,
        "free": {"anything": [1, 2], "inner": {"x": 1, "y": 2}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"z": 1}, "w": 1}
    }});
    let out = s.validate(&input, UnknownFields::Warn);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        out.warnings,
        [
            r#"unknown field "spec.free.inner.y""#,
            r#"unknown field "spec.gone""#,
            r#"unknown field "spec.template.spec.z""#,
            r#"unknown field "spec.template.w""#,
        ]
    );
    assert_eq!(
        out.object,
        json!({"spec": {"known": "k", "free": {"anything": [1, 2], "inner": {"x": 1}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}})
    );
    // An embedded resource needs apiVersion and kind.
    assert_eq!(
        errors(&s, json!({"spec": {"template": {"spec": {}}}})),
        [
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.template.kind: Required value: must not be empty",
        ]
    );
}

#[test]
fn numeric_string_and_count_bounds() {
    let s = spec_schema(json!({
        "type": "object",
        "properties": {
            "weight": {"type": "integer", "minimum": 0, "maximum": 100},
            "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "multipleOf": 0.5},
            "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
            "hosts": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "labels": {"type": "object", "maxProperties": 1, "minProperties": 1,
                       "additionalProperties": {"type": "string"}},
            "port": {"x-kubernetes-int-or-string": true},
            "stamp": {"type": "string", "format": "date-time"}
        }
    }));
    assert!(errors(
        &s,
        json!({"spec": {"weight": 100, "ratio": 1.5, "name": "ab", "hosts": ["a"],
        "labels": {"a": "b"}, "port": "http", "stamp": "2024-01-01T00:00:00Z"}})
    )
    .is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"weight": 101, "ratio": 0, "name": "ABCDEF", "hosts": [],
            "labels": {"a": "b", "c": "d"}, "port": 1.5, "stamp": "now"}})),
        [
            "spec.hosts: Invalid value: 0: spec.hosts in body should have at least 1 items",
            "spec.labels: Too many: 2: must have at most 1 items",
            "spec.name: Too long: may not be more than 5 bytes",
            r#"spec.name: Invalid value: "ABCDEF": spec.name in body should match '^[a-z]+$'"#,
            r#"spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number""#,
            "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
            r#"spec.stamp: Invalid value: "now": spec.stamp in body must be of type date-time: "now""#,
            "spec.weight: Invalid value: 101: spec.weight in body should be less than or equal to 100",
        ]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"weight": -1, "ratio": 0.7, "name": "a"}})),
        [
            "spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long",
            "spec.ratio: Invalid value: 0.7: spec.ratio in body should be a multiple of 0.5",
            "spec.weight: Invalid value: -1: spec.weight in body should be greater than or equal to 0",
        ]
    );
}

#[test]
fn list_types_refuse_duplicates() {
    let s = spec_schema(json!({
        "type": "object",
        "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["port", "protocol"],
                      "items": {"type": "object", "properties": {
                          "port": {"type": "integer"}, "protocol": {"type": "string"}, "name": {"type": "string"}}}}
        }
    }));
    assert_eq!(
        errors(
            &s,
            json!({"spec": {
            "tags": ["a", "b", "a"],
            "ports": [{"port": 80, "protocol": "TCP", "name": "x"}, {"port": 80, "protocol": "UDP"},
                      {"port": 80, "protocol": "TCP", "name": "y"}]}})
        ),
        [
            r#"spec.ports[2]: Duplicate value: map[string]interface {}{"port":80, "protocol":"TCP"}"#,
            r#"spec.tags[2]: Duplicate value: "a""#,
        ]
    );
}

#[test]
fn cel_rules_with_field_path_reason_and_message_expression() {
    let s = spec_schema(json!({
        "type": "object",
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}, "note": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"},
            {"rule": "self.max < 100", "messageExpression": "'max is ' + string(self.max)", "reason": "FieldValueForbidden"},
            {"rule": "oldSelf.max <= self.max", "message": "transition rules are skipped on create"}
        ]
    }));
    assert!(errors(&s, json!({"spec": {"min": 1, "max": 2}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"min": 200, "max": 150}})),
        [
            r#"spec.min: Invalid value: "object": min must not exceed max"#,
            "spec: Forbidden: max is 150",
        ]
    );
    // A missing field the rule reads is a run-time error, reported as the API server does.
    assert_eq!(
        errors(&s, json!({"spec": {"min": 1}})),
        [
            r#"spec: Invalid value: "object": no such key: max evaluating rule: min must not exceed max"#,
            r#"spec: Invalid value: "object": no such key: max evaluating rule: self.max < 100"#,
        ]
    );
    // OpenAPI errors of the whole object come before CEL errors, as the API server runs them.
    assert_eq!(
        errors(&s, json!({"spec": {"min": 1, "max": 200, "note": 5}})),
        [
            r#"spec.note: Invalid value: "integer": spec.note in body must be of type string: "integer""#,
            "spec: Forbidden: max is 200",
        ]
    );
    assert_eq!(s.rule_count(), 3);
    assert!(s.unsupported_rules().is_empty());
}

#[test]
fn composition_not_and_all_of() {
    let s = spec_schema(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "not": {"required": ["a", "b"]},
        "allOf": [{"properties": {"a": {"maxLength": 1}}}]
    }));
    assert!(errors(&s, json!({"spec": {"a": "x"}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"a": "xy", "b": "z"}})),
        [
            "spec.a: Too long: may not be more than 1 byte",
            r#"<nil>: Invalid value: "": "spec" must validate all the schemas (allOf)"#,
            r#"<nil>: Invalid value: "": "spec" must not validate the schema (not)"#,
        ]
    );
}

#[test]
fn bad_schemas_are_refused() {
    assert!(Schema::from_openapi_v3(&json!({"type": "objekt"})).is_err());
    assert!(Schema::from_openapi_v3(&json!({"type": "string", "pattern": "("})).is_err());
    assert!(Schema::from_openapi_v3(
        &json!({"type": "array", "x-kubernetes-list-type": "map", "items": {}})
    )
    .is_err());
    assert!(Schema::from_openapi_v3(&json!([1])).is_err());
}

/// Run-time errors read as cel-go words them: Istio's CRD rule on `portLevelMtls` keys
/// (`int(key)`) refuses a non-numeric key with "type conversion error from 'string' to 'int'".
#[test]
fn cel_run_time_errors_use_cel_go_texts() {
    let s = spec_schema(json!({
        "type": "object",
        "additionalProperties": {"type": "string"},
        "x-kubernetes-validations": [
            {"rule": "self.all(key, 0 < int(key) && int(key) <= 65535)", "message": "port must be between 1-65535"}
        ]
    }));
    assert!(errors(&s, json!({"spec": {"8080": "STRICT"}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"acd": "STRICT"}})),
        [
            r#"spec: Invalid value: "object": type conversion error from 'string' to 'int' evaluating rule: port must be between 1-65535"#
        ]
    );
}

#[test]
fn schema_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Schema>();
}
