//! A policy validates its own `config` (Kubewarden's `validate_settings` model).
//!
//! The host checks a release's `spec.policy.config` before anything runs (`lint`, `plan`,
//! `render`, `start`) in two steps:
//!
//! 1. against the JSON Schema in the module's `canary.metadata` (`config_schema`), and, when the
//!    schema accepts it,
//! 2. by calling the module's optional export `canary_validate_config(ptr, len) -> i64`, with the
//!    same memory, fuel and time limits as a decision. The input is the config JSON exactly as
//!    the decision will see it (`null` when the spec has none); the output, packed like
//!    `canary_decide`'s, is a [`ConfigValidation`]:
//!
//! ```json
//! {"valid": false, "message": "2 problems",
//!  "problems": [{"path": "steps[1]", "message": "weight 20 must be greater than the previous step (50)"}]}
//! ```
//!
//! `path` is relative to the config (`steps[1]`, `testers.cookie`, empty for the config
//! itself); the host prefixes it with `spec.policy.config` and prints one line per problem. A
//! module without the export is judged by its schema alone.
//!
//! With the SDK, write a function `fn(&Value) -> Vec<ConfigProblem>` and hand it to
//! [`export_policy!`](crate::export_policy) as `validate_config:`. Call the same function from
//! the decide function's config parsing (or share the parser), so that what validation accepts
//! is exactly what a decision accepts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The signature of a policy's config validator: every problem found, none when valid.
pub type ValidateFn = fn(&Value) -> Vec<ConfigProblem>;

/// One problem of a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// Field path inside the config: `steps[1]`, `testers.header.name`; empty for the config
    /// as a whole.
    #[serde(default)]
    pub path: String,
    /// What is wrong and what would be right, quoting the value.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `path` (relative to the config).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The answer of `canary_validate_config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValidation {
    /// Whether the config is acceptable.
    pub valid: bool,
    /// A one-line summary when it is not (used when `problems` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Every problem found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ConfigProblem>,
}

impl ConfigValidation {
    /// The answer for these problems: valid when there are none.
    pub fn from_problems(problems: Vec<ConfigProblem>) -> ConfigValidation {
        match problems.len() {
            0 => ConfigValidation {
                valid: true,
                message: None,
                problems,
            },
            n => ConfigValidation {
                valid: false,
                message: Some(if n == 1 {
                    "1 problem".to_string()
                } else {
                    format!("{} problems", n)
                }),
                problems,
            },
        }
    }
}

/// The whole validation on bytes: parse the config JSON, validate, serialise the answer. Config
/// bytes that are not JSON are a problem of the config itself. Used by the wasm export and by
/// [`testing`](crate::testing), so a native test exercises the same wire format.
pub fn validate_json(input: &[u8], validate: ValidateFn) -> Vec<u8> {
    let answer = match serde_json::from_slice::<Value>(input) {
        Ok(config) => ConfigValidation::from_problems(validate(&config)),
        Err(err) => ConfigValidation::from_problems(vec![ConfigProblem::new(
            "",
            format!("the policy cannot read its config: {}", err),
        )]),
    };
    match serde_json::to_vec(&answer) {
        Ok(bytes) => bytes,
        Err(_) => br#"{"valid":false,"message":"the policy cannot serialise its answer"}"#.to_vec(),
    }
}

/// `a.b`, `a[0]`: the path of `key` (a field) or `[i]` (an index) below `parent`.
pub fn join_path(parent: &str, child: &str) -> String {
    if parent.is_empty() || child.starts_with('[') {
        format!("{}{}", parent, child)
    } else {
        format!("{}.{}", parent, child)
    }
}

/// `a mapping`, `a list`, `a string`...: the kind of a JSON value, for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The fields of a config, each with a value (`null` counts as omitted): `None` when there is
/// nothing to check — the config was omitted, or it is not a mapping, which is then `problems`'
/// one problem.
pub fn fields<'a>(
    config: &'a Value,
    problems: &mut Vec<ConfigProblem>,
) -> Option<impl Fn(&str) -> Option<&'a Value>> {
    match config {
        Value::Null => None,
        Value::Object(object) => Some(move |key: &str| object.get(key).filter(|v| !v.is_null())),
        other => {
            problems.push(ConfigProblem::new(
                "",
                format!("must be a mapping, got {}", json_kind(other)),
            ));
            None
        }
    }
}

/// Checks a weight ramp (`steps`): a non-empty list of whole numbers 0..=100, each greater than
/// the one before, the last 100. The rule of [`stages::ramp_weights`](crate::stages::ramp_weights)
/// users; problems go to `problems` with paths below `path`.
pub fn check_steps(path: &str, steps: &Value, problems: &mut Vec<ConfigProblem>) {
    let list = match steps.as_array() {
        Some(list) => list,
        None => {
            problems.push(ConfigProblem::new(
                path,
                format!(
                    "must be a list of canary weights such as [10, 50, 100], got {}",
                    json_kind(steps)
                ),
            ));
            return;
        }
    };
    if list.is_empty() {
        problems.push(ConfigProblem::new(
            path,
            "list at least one weight, the last one 100",
        ));
        return;
    }
    let mut previous: Option<u64> = None;
    let mut all_valid = true;
    for (k, step) in list.iter().enumerate() {
        let at = join_path(path, &format!("[{}]", k));
        let weight = match step.as_u64() {
            Some(weight) if weight <= 100 => weight,
            _ => {
                all_valid = false;
                problems.push(ConfigProblem::new(
                    at,
                    format!("must be a whole number 0..=100, got {}", step),
                ));
                continue;
            }
        };
        if let Some(prev) = previous {
            if weight <= prev {
                all_valid = false;
                problems.push(ConfigProblem::new(
                    at,
                    format!(
                        "weight {} must be greater than the previous step ({})",
                        weight, prev
                    ),
                ));
            }
        }
        previous = Some(weight);
    }
    if all_valid && previous != Some(100) {
        let last = list.len() - 1;
        problems.push(ConfigProblem::new(
            join_path(path, &format!("[{}]", last)),
            format!(
                "the last step must be 100 (all traffic on the canary), got {}",
                list[last]
            ),
        ));
    }
}

/// Checks a testers selector as [`stages::Testers::from_config`](crate::stages::Testers::from_config)
/// reads it: `{cookie: "name=value"}` or `{header: {name, exact|prefix|regex}}`, exactly one.
/// (A header regex is checked as RE2 by the host, through the schema's `"format": "re2"`.)
pub fn check_testers(path: &str, testers: &Value, problems: &mut Vec<ConfigProblem>) {
    let object = match testers.as_object() {
        Some(object) => object,
        None => {
            problems.push(ConfigProblem::new(
                path,
                format!(
                    "must be a mapping with cookie or header, got {}",
                    json_kind(testers)
                ),
            ));
            return;
        }
    };
    for key in object.keys() {
        if key != "cookie" && key != "header" {
            problems.push(ConfigProblem::new(
                join_path(path, key),
                format!("unknown field {:?}, expected cookie or header", key),
            ));
        }
    }
    match (object.get("cookie"), object.get("header")) {
        (Some(_), Some(_)) => problems.push(ConfigProblem::new(
            path,
            "set either cookie or header, not both",
        )),
        (None, None) => problems.push(ConfigProblem::new(path, "set cookie or header")),
        (Some(cookie), None) => {
            let at = join_path(path, "cookie");
            match cookie.as_str() {
                Some("") => problems.push(ConfigProblem::new(at, "must not be empty")),
                Some(text) if !text.contains('=') || text.contains(|c: char| c == ';' || c.is_whitespace()) => {
                    problems.push(ConfigProblem::new(
                        at,
                        format!(
                            "cookie {:?} must be name=value, without ';' or spaces (e.g. user=tester)",
                            text
                        ),
                    ))
                }
                Some(_) => {}
                None => problems.push(ConfigProblem::new(
                    at,
                    format!(
                        "must be a string such as \"user=tester\", got {}",
                        json_kind(cookie)
                    ),
                )),
            }
        }
        (None, Some(header)) => check_header(&join_path(path, "header"), header, problems),
    }
}

fn check_header(path: &str, header: &Value, problems: &mut Vec<ConfigProblem>) {
    let object = match header.as_object() {
        Some(object) => object,
        None => {
            problems.push(ConfigProblem::new(
                path,
                format!(
                    "must be a mapping {{name, exact|prefix|regex}}, got {}",
                    json_kind(header)
                ),
            ));
            return;
        }
    };
    const KEYS: [&str; 4] = ["name", "exact", "prefix", "regex"];
    for key in object.keys() {
        if !KEYS.contains(&key.as_str()) {
            problems.push(ConfigProblem::new(
                join_path(path, key),
                format!(
                    "unknown field {:?}, expected name, exact, prefix or regex",
                    key
                ),
            ));
        }
    }
    let name_path = join_path(path, "name");
    match object.get("name") {
        None => problems.push(ConfigProblem::new(
            name_path,
            "missing: the header name, e.g. canary",
        )),
        Some(Value::String(name)) => {
            let token = |c: char| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || "!#$%&'*+-.^_`|~".contains(c)
            };
            if name.is_empty() || !name.chars().all(token) {
                problems.push(ConfigProblem::new(
                    name_path,
                    format!(
                        "invalid header name {:?}: must be a lower-case HTTP token (letters, digits, and !#$%&'*+-.^_`|~)",
                        name
                    ),
                ));
            }
        }
        Some(other) => problems.push(ConfigProblem::new(
            name_path,
            format!("must be a string, got {}", json_kind(other)),
        )),
    }
    let matchers: Vec<&str> = ["exact", "prefix", "regex"]
        .iter()
        .copied()
        .filter(|k| object.contains_key(*k))
        .collect();
    if matchers.len() != 1 {
        problems.push(ConfigProblem::new(
            path,
            "set exactly one of exact, prefix or regex",
        ));
    }
    for key in matchers {
        let at = join_path(path, key);
        match &object[key] {
            Value::String(text) if text.is_empty() => {
                problems.push(ConfigProblem::new(at, "must not be empty"))
            }
            Value::String(_) => {}
            other => problems.push(ConfigProblem::new(
                at,
                format!("must be a string, got {}", json_kind(other)),
            )),
        }
    }
}

/// Checks a duration of the [SDK's grammar](crate::time#durations): a string such as `"5m"`, or
/// a whole number of seconds.
pub fn check_duration(path: &str, value: &Value, problems: &mut Vec<ConfigProblem>) {
    match value {
        Value::String(text) => {
            if let Err(e) = crate::time::duration_seconds(text) {
                problems.push(ConfigProblem::new(path, e.to_string()));
            }
        }
        Value::Number(n) if n.as_u64().is_some() => {}
        other => problems.push(ConfigProblem::new(
            path,
            format!(
                "must be a duration such as \"5m\" or a whole number of seconds, got {}",
                json_kind(other)
            ),
        )),
    }
}

/// Checks a boolean.
pub fn check_bool(path: &str, value: &Value, problems: &mut Vec<ConfigProblem>) {
    if !value.is_boolean() {
        problems.push(ConfigProblem::new(
            path,
            format!("must be true or false, got {}", json_kind(value)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_steps(config: &Value) -> Vec<ConfigProblem> {
        match config.get("steps") {
            Some(steps) => vec![ConfigProblem::new(
                "steps",
                format!("this policy has no steps, got {}", json_kind(steps)),
            )],
            None => Vec::new(),
        }
    }

    #[test]
    fn answers_on_the_wire() {
        assert_eq!(
            validate_json(b"null", no_steps),
            br#"{"valid":true}"#.to_vec()
        );
        assert_eq!(
            String::from_utf8(validate_json(br#"{"steps":[1]}"#, no_steps)).unwrap(),
            r#"{"valid":false,"message":"1 problem","problems":[{"path":"steps","message":"this policy has no steps, got a list"}]}"#
        );
        let garbage: ConfigValidation =
            serde_json::from_slice(&validate_json(b"{", no_steps)).unwrap();
        assert!(!garbage.valid);
        assert_eq!(garbage.problems[0].path, "");
    }

    fn problems(check: fn(&str, &Value, &mut Vec<ConfigProblem>), json: &str) -> Vec<String> {
        let mut out = Vec::new();
        check("x", &serde_json::from_str(json).unwrap(), &mut out);
        out.into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn steps_increase_to_one_hundred() {
        assert!(problems(check_steps, "[0, 100]").is_empty());
        assert_eq!(
            problems(check_steps, "[50, 20, 101]"),
            [
                "x[1]: weight 20 must be greater than the previous step (50)",
                "x[2]: must be a whole number 0..=100, got 101"
            ]
        );
        assert_eq!(
            problems(check_steps, "[10, 50]"),
            ["x[1]: the last step must be 100 (all traffic on the canary), got 50"]
        );
        assert_eq!(
            problems(check_steps, "[]"),
            ["x: list at least one weight, the last one 100"]
        );
    }

    #[test]
    fn testers_are_a_cookie_or_a_header() {
        assert!(problems(check_testers, r#"{"cookie": "user=tester"}"#).is_empty());
        assert!(problems(
            check_testers,
            r#"{"header": {"name": "canary", "exact": "1"}}"#
        )
        .is_empty());
        assert_eq!(
            problems(check_testers, r#"{"cookie": "user tester"}"#),
            ["x.cookie: cookie \"user tester\" must be name=value, without ';' or spaces (e.g. user=tester)"]
        );
        assert_eq!(
            problems(check_testers, r#"{"header": {"name": "Canary", "exact": "1", "prefix": "2"}}"#),
            [
                "x.header.name: invalid header name \"Canary\": must be a lower-case HTTP token (letters, digits, and !#$%&'*+-.^_`|~)",
                "x.header: set exactly one of exact, prefix or regex"
            ]
        );
        assert_eq!(
            problems(check_testers, r#"{"cookie": "a=b", "header": {}}"#),
            ["x: set either cookie or header, not both"]
        );
    }

    #[test]
    fn durations_use_the_sdk_grammar() {
        assert!(problems(check_duration, r#""5m""#).is_empty());
        assert!(problems(check_duration, r#""300""#).is_empty());
        assert!(problems(check_duration, "300").is_empty());
        assert_eq!(
            problems(check_duration, r#""5min""#),
            ["x: invalid duration \"5min\": unknown unit \"min\" (units are ms, s, m, h and d, e.g. 30s, 5m, 1h30m; a bare number is seconds)"]
        );
        assert_eq!(
            problems(check_duration, "true"),
            ["x: must be a duration such as \"5m\" or a whole number of seconds, got a boolean"]
        );
    }

    #[test]
    fn paths_join() {
        assert_eq!(join_path("", "steps"), "steps");
        assert_eq!(join_path("steps", "[0]"), "steps[0]");
        assert_eq!(join_path("testers", "cookie"), "testers.cookie");
    }
}
