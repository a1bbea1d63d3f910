//! The compiled form of a structural OpenAPI v3 schema: one [`Node`] per schema object, with its
//! regexes and CEL programs compiled once.

use regex::Regex;
use serde_json::{Map, Value};

use super::cel::Rule;
use super::error::SchemaError;

/// A JSON type of a structural schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl JsonType {
    fn parse(s: &str) -> Option<JsonType> {
        Some(match s {
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
        }
    }
}

/// `x-kubernetes-list-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// `additionalProperties`.
#[derive(Debug)]
pub(crate) enum Additional {
    /// Not given, or `false`.
    None,
    /// `true`: any value, kept.
    Any,
    /// A schema for every value of a map.
    Schema(Box<Node>),
}

/// One compiled schema object.
#[derive(Debug)]
pub(crate) struct Node {
    pub ty: Option<JsonType>,
    pub int_or_string: bool,
    pub nullable: bool,
    pub preserve_unknown: bool,
    pub embedded_resource: bool,
    /// Sorted by name (binary search).
    pub properties: Vec<(String, Node)>,
    /// Indices into `properties` of those with a default.
    pub defaulted: Vec<usize>,
    pub additional: Additional,
    pub items: Option<Box<Node>>,
    pub required: Vec<String>,
    pub enum_values: Option<Vec<Value>>,
    pub pattern: Option<(String, Regex)>,
    pub format: Option<String>,
    pub minimum: Option<(f64, bool)>,
    pub maximum: Option<(f64, bool)>,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub default: Option<Value>,
    pub list_type: ListType,
    pub one_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub all_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub rules: Vec<Rule>,
}

/// Counts of what compiling met, for [`super::Schema::unsupported_rules`].
#[derive(Debug, Default)]
pub(crate) struct CompileStats {
    pub rules: usize,
    pub unsupported: Vec<super::UnsupportedRule>,
}

impl Node {
    pub(crate) fn property(&self, name: &str) -> Option<&Node> {
        self.properties
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| &self.properties[i].1)
    }

    /// The schema's type as the API server names it in CEL errors (`sts.Type`): empty for
    /// int-or-string and untyped schemas.
    pub(crate) fn type_name(&self) -> &'static str {
        self.ty.map(JsonType::name).unwrap_or("")
    }

    pub(crate) fn compile(
        schema: &Value,
        at: &str,
        stats: &mut CompileStats,
    ) -> Result<Node, SchemaError> {
        let invalid = |reason: String| SchemaError::InvalidSchema {
            path: if at.is_empty() {
                "<root>".into()
            } else {
                at.to_string()
            },
            reason,
        };
        let obj = schema
            .as_object()
            .ok_or_else(|| invalid("a schema must be an object".into()))?;
        let child = |key: &str| {
            if at.is_empty() {
                key.to_string()
            } else {
                format!("{at}.{key}")
            }
        };
        let bool_of = |key: &str| obj.get(key).and_then(Value::as_bool).unwrap_or(false);
        let u64_of = |key: &str| -> Result<Option<u64>, SchemaError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("{key} must be a non-negative integer"))),
            }
        };
        let f64_of = |key: &str| -> Result<Option<f64>, SchemaError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("{key} must be a number"))),
            }
        };

        let ty = match obj.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                Some(JsonType::parse(s).ok_or_else(|| invalid(format!("unknown type {s:?}")))?)
            }
            Some(_) => return Err(invalid("type must be a string".into())),
        };

        let mut properties = Vec::new();
        if let Some(props) = obj.get("properties") {
            let props = props
                .as_object()
                .ok_or_else(|| invalid("properties must be an object".into()))?;
            for (name, sub) in props {
                let node = Node::compile(sub, &child(&format!("properties.{name}")), stats)?;
                properties.push((name.clone(), node));
            }
        }
        properties.sort_by(|a: &(String, Node), b| a.0.cmp(&b.0));
        let defaulted = properties
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| n.default.is_some())
            .map(|(i, _)| i)
            .collect();
        let additional = match obj.get("additionalProperties") {
            None | Some(Value::Bool(false)) | Some(Value::Null) => Additional::None,
            Some(Value::Bool(true)) => Additional::Any,
            Some(sub) => Additional::Schema(Box::new(Node::compile(
                sub,
                &child("additionalProperties"),
                stats,
            )?)),
        };
        let items = match obj.get("items") {
            None | Some(Value::Null) => None,
            Some(sub) => Some(Box::new(Node::compile(sub, &child("items"), stats)?)),
        };
        let required = match obj.get("required") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid("required must list strings".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("required must be an array".into())),
        };
        let enum_values = match obj.get("enum") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(invalid("enum must be an array".into())),
        };
        let pattern = match obj.get("pattern").and_then(Value::as_str) {
            None => None,
            Some(p) => {
                let re = Regex::new(p)
                    .map_err(|e| invalid(format!("pattern {p:?} does not compile: {e}")))?;
                Some((p.to_string(), re))
            }
        };
        let minimum = f64_of("minimum")?.map(|m| (m, bool_of("exclusiveMinimum")));
        let maximum = f64_of("maximum")?.map(|m| (m, bool_of("exclusiveMaximum")));
        let list_type = match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys = obj
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if keys.is_empty() {
                    return Err(invalid(
                        "x-kubernetes-list-type map needs x-kubernetes-list-map-keys".into(),
                    ));
                }
                ListType::Map(keys)
            }
            _ => ListType::Atomic,
        };
        let sub_list = |key: &str, stats: &mut CompileStats| -> Result<Vec<Node>, SchemaError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Node::compile(s, &child(&format!("{key}[{i}]")), stats))
                    .collect(),
                Some(_) => Err(invalid(format!("{key} must be an array"))),
            }
        };
        let one_of = sub_list("oneOf", stats)?;
        let any_of = sub_list("anyOf", stats)?;
        let all_of = sub_list("allOf", stats)?;
        let not = match obj.get("not") {
            None | Some(Value::Null) => None,
            Some(sub) => Some(Box::new(Node::compile(sub, &child("not"), stats)?)),
        };
        let mut node = Node {
            ty,
            int_or_string: bool_of("x-kubernetes-int-or-string"),
            nullable: bool_of("nullable"),
            preserve_unknown: bool_of("x-kubernetes-preserve-unknown-fields"),
            embedded_resource: bool_of("x-kubernetes-embedded-resource"),
            properties,
            defaulted,
            additional,
            items,
            required,
            enum_values,
            pattern,
            format: obj
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_string),
            minimum,
            maximum,
            multiple_of: f64_of("multipleOf")?,
            min_length: u64_of("minLength")?,
            max_length: u64_of("maxLength")?,
            min_items: u64_of("minItems")?,
            max_items: u64_of("maxItems")?,
            min_properties: u64_of("minProperties")?,
            max_properties: u64_of("maxProperties")?,
            default: obj.get("default").cloned(),
            list_type,
            one_of,
            any_of,
            all_of,
            not,
            rules: Vec::new(),
        };
        if let Some(rules) = obj.get("x-kubernetes-validations") {
            let rules = rules
                .as_array()
                .ok_or_else(|| invalid("x-kubernetes-validations must be an array".into()))?;
            for (i, rule) in rules.iter().enumerate() {
                stats.rules += 1;
                let where_ = child(&format!("x-kubernetes-validations[{i}]"));
                match Rule::compile(rule.as_object().unwrap_or(&Map::new())) {
                    Ok(r) => node.rules.push(r),
                    Err(reason) => stats.unsupported.push(super::UnsupportedRule {
                        location: where_,
                        rule: rule
                            .get("rule")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        reason,
                    }),
                }
            }
        }
        Ok(node)
    }
}
