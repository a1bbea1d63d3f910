//! A release's `spec.policy.config`, judged by the module that will read it.
//!
//! The host knows no policy's config: every module brings its own rules, in two forms
//! (Kubewarden's `validate_settings` model, see the policy ABI and `policy_sdk::config`):
//!
//! 1. the JSON Schema of its `canary.metadata` (`config_schema`), checked here with formats
//!    the host defines so that schema and policy read values alike: `duration` (the SDK's
//!    grammar, [`policy_sdk::time`]) and `re2` (a regex istiod accepts, [`policy_sdk::rules`]);
//! 2. when the schema accepts the config, the module's optional `canary_validate_config`
//!    export, run in a fresh sandbox with the decision's limits, for what a schema cannot say.
//!
//! Problems come back one per line, each with its field path below `spec.policy.config` and
//! the rule that refused it.

use std::fmt;

use serde_json::Value;

use super::error::Cause;

/// The field path of a release's policy config.
pub const CONFIG_PATH: &str = "spec.policy.config";

/// Problems listed in one error; past it the rest are counted.
pub const MAX_LISTED_PROBLEMS: usize = 20;

/// One problem of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Field path, from `spec.policy.config` (`spec.policy.config.steps[0]`).
    pub path: String,
    /// What is wrong, and the rule that says so.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The problems of a refused config, as the lines of an error: a count, then one line each.
pub(crate) fn describe(problems: &[ConfigProblem]) -> String {
    let mut out = match problems.len() {
        1 => format!("{CONFIG_PATH} is invalid (1 problem):"),
        n => format!("{CONFIG_PATH} is invalid ({n} problems):"),
    };
    for problem in problems.iter().take(MAX_LISTED_PROBLEMS) {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    if problems.len() > MAX_LISTED_PROBLEMS {
        out.push_str(&format!(
            "\n  … and {} more",
            problems.len() - MAX_LISTED_PROBLEMS
        ));
    }
    out
}

/// `duration`: the SDK's grammar, as the built-in policies parse `pause`.
fn is_duration(text: &str) -> bool {
    policy_sdk::time::duration_seconds(text).is_ok()
}

/// `re2`: a regex istiod accepts, as the host checks a decision's regex matches.
fn is_re2(text: &str) -> bool {
    policy_sdk::rules::check_regex(text).is_ok()
}

/// The schema, compiled; the error says why the module's schema is not one.
///
/// No `$ref` leaves the schema: the crate is built without its HTTP and file retrievers, so an
/// external reference is an error, never a fetch.
fn compile(schema: &Value) -> Result<jsonschema::Validator, Cause> {
    jsonschema::options()
        .should_validate_formats(true)
        .with_format("duration", is_duration)
        .with_format("re2", is_re2)
        .build(schema)
        .map_err(|e| Cause::Metadata(format!("config_schema is not a valid JSON Schema: {e}")))
}

/// Problems of `config` against `schema` (none when it conforms). An omitted config (`null`) is
/// checked as `{}`, so that a schema's `required` fields are asked for.
pub(crate) fn schema_problems(schema: &Value, config: &Value) -> Result<Vec<ConfigProblem>, Cause> {
    if schema.is_null() {
        return Ok(Vec::new());
    }
    let validator = compile(schema)?;
    let empty = Value::Object(Default::default());
    let instance = if config.is_null() { &empty } else { config };
    let problems = validator
        .iter_errors(instance)
        .map(|error| {
            let path = field_path(instance, error.instance_path().as_str());
            let keyword_path = error.schema_path().as_str().to_string();
            let message = match format_of(schema, &keyword_path) {
                // The SDK's own words, the ones the policy would hold with.
                Some("duration") => match error.instance().as_str() {
                    Some(text) => policy_sdk::time::duration_seconds(text)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| error.to_string()),
                    None => error.to_string(),
                },
                Some("re2") => match error.instance().as_str() {
                    Some(text) => policy_sdk::rules::check_regex(text)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| error.to_string()),
                    None => error.to_string(),
                },
                // A schema allowing no properties at all reports the first value it refused
                // ("False schema does not allow …"): name the fields instead, as
                // additionalProperties does when `properties` are listed.
                _ if matches!(
                    error.kind(),
                    jsonschema::error::ValidationErrorKind::FalseSchema
                ) && keyword_path.ends_with("/additionalProperties") =>
                {
                    unexpected_fields(
                        schema,
                        &keyword_path,
                        instance,
                        error.instance_path().as_str(),
                    )
                    .unwrap_or_else(|| error.to_string())
                }
                _ => error.to_string(),
            };
            ConfigProblem {
                path,
                message: format!("{message} (config_schema: {})", rule(schema, &keyword_path)),
            }
        })
        .collect::<Vec<ConfigProblem>>();
    // By field, so that the order does not depend on the schema's keyword order.
    let mut problems = problems;
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(problems)
}

/// `Additional properties are not allowed ('a', 'b' were unexpected)` for the object at
/// `pointer` in `instance`, against the `properties` beside `additionalProperties` in `schema`.
fn unexpected_fields(
    schema: &Value,
    keyword_path: &str,
    instance: &Value,
    pointer: &str,
) -> Option<String> {
    let object = instance.pointer(pointer)?.as_object()?;
    let parent = keyword_path.strip_suffix("/additionalProperties")?;
    let declared = schema
        .pointer(&format!("{parent}/properties"))
        .and_then(Value::as_object);
    let names: Vec<String> = object
        .keys()
        .filter(|k| !declared.is_some_and(|d| d.contains_key(*k)))
        .map(|k| format!("'{k}'"))
        .collect();
    match names.len() {
        0 => None,
        1 => Some(format!(
            "Additional properties are not allowed ({} was unexpected)",
            names[0]
        )),
        _ => Some(format!(
            "Additional properties are not allowed ({} were unexpected)",
            names.join(", ")
        )),
    }
}

/// The `format` a failed keyword names, when the keyword is `format`.
fn format_of<'a>(schema: &'a Value, keyword_path: &str) -> Option<&'a str> {
    if !keyword_path.ends_with("/format") {
        return None;
    }
    schema.pointer(keyword_path).and_then(Value::as_str)
}

/// The schema's rule at `keyword_path`, quoted as it is written: `"maximum": 100`.
fn rule(schema: &Value, keyword_path: &str) -> String {
    const MAX_RULE_CHARS: usize = 120;
    let keyword = keyword_path
        .rsplit('/')
        .next()
        .map(unescape_pointer)
        .unwrap_or_default();
    let value = schema
        .pointer(keyword_path)
        .map(Value::to_string)
        .unwrap_or_else(|| "?".to_string());
    let mut text = format!("{}: {value}", Value::String(keyword));
    if text.chars().count() > MAX_RULE_CHARS {
        text = text.chars().take(MAX_RULE_CHARS).collect::<String>() + "…";
    }
    text
}

fn unescape_pointer(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// `/steps/0` in `config` → `spec.policy.config.steps[0]` (an index where the value is a
/// list, a field otherwise).
fn field_path(config: &Value, pointer: &str) -> String {
    let mut path = CONFIG_PATH.to_string();
    let mut at = Some(config);
    for segment in pointer.split('/').skip(1) {
        let segment = unescape_pointer(segment);
        match at {
            Some(Value::Array(items)) => {
                path.push_str(&format!("[{segment}]"));
                at = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                path.push('.');
                path.push_str(&segment);
                at = other.and_then(|v| v.get(&segment));
            }
        }
    }
    path
}

/// The module's answer from `canary_validate_config`, as problems with full paths.
pub(crate) fn export_problems(answer: &[u8]) -> Result<Vec<ConfigProblem>, Cause> {
    let answer: policy_sdk::config::ConfigValidation =
        serde_json::from_slice(answer).map_err(|e| {
            Cause::InvalidOutput(format!(
                "canary_validate_config must answer {{\"valid\": bool, \"message\", \"problems\": \
                 [{{\"path\", \"message\"}}]}}: {e}"
            ))
        })?;
    let mut problems: Vec<ConfigProblem> = answer
        .problems
        .into_iter()
        .map(|p| ConfigProblem {
            path: join(&p.path),
            message: p.message,
        })
        .collect();
    if !answer.valid && problems.is_empty() {
        problems.push(ConfigProblem {
            path: CONFIG_PATH.to_string(),
            message: answer
                .message
                .unwrap_or_else(|| "refused by the policy, which gave no reason".to_string()),
        });
    }
    Ok(problems)
}

/// A path relative to the config (`steps[0]`, `testers.cookie`, empty) below [`CONFIG_PATH`].
fn join(relative: &str) -> String {
    let relative = relative.trim_start_matches('.');
    if relative.is_empty() {
        CONFIG_PATH.to_string()
    } else if relative.starts_with('[') {
        format!("{CONFIG_PATH}{relative}")
    } else {
        format!("{CONFIG_PATH}.{relative}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(schema: Value, config: Value) -> Vec<String> {
        schema_problems(&schema, &config)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn problems_name_the_field_and_quote_the_rule() {
        let schema = json!({"type": "object", "additionalProperties": false, "properties": {
            "steps": {"type": "array", "items": {"type": "integer", "maximum": 100}},
            "pause": {"type": "string", "format": "duration"},
            "regex": {"type": "string", "format": "re2"},
            "a/b": {"type": "boolean"}}});
        assert_eq!(
            lines(
                schema.clone(),
                json!({"steps": [10, 150], "pause": "5min", "a/b": 1})
            ),
            [
                "spec.policy.config.a/b: 1 is not of type \"boolean\" (config_schema: \"type\": \"boolean\")",
                "spec.policy.config.pause: invalid duration \"5min\": unknown unit \"min\" (units are ms, s, m, h and d, e.g. 30s, 5m, 1h30m; a bare number is seconds) (config_schema: \"format\": \"duration\")",
                "spec.policy.config.steps[1]: 150 is greater than the maximum of 100 (config_schema: \"maximum\": 100)",
            ]
        );
        assert_eq!(
            lines(schema.clone(), json!({"step": [1]})),
            ["spec.policy.config: Additional properties are not allowed ('step' was unexpected) (config_schema: \"additionalProperties\": false)"]
        );
        let regex = lines(schema.clone(), json!({"regex": "(?=x)"}));
        assert_eq!(regex.len(), 1);
        assert!(
            regex[0].starts_with("spec.policy.config.regex: ")
                && regex[0].ends_with(" (config_schema: \"format\": \"re2\")"),
            "{regex:?}"
        );
        assert_eq!(
            lines(schema, Value::Null),
            Vec::<String>::new(),
            "an omitted config is {{}}"
        );
    }

    #[test]
    fn no_schema_accepts_anything_and_a_bad_schema_is_the_modules_fault() {
        assert!(lines(Value::Null, json!({"x": 1})).is_empty());
        let err = schema_problems(&json!({"type": "bogus"}), &json!({})).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid canary.metadata section: config_schema is not a valid JSON Schema: "
            ),
            "{err}"
        );
    }

    #[test]
    fn remote_refs_are_never_fetched() {
        let schema = json!({"$ref": "https://example.com/schema.json"});
        assert!(schema_problems(&schema, &json!({})).is_err());
    }

    #[test]
    fn export_answers_get_full_paths() {
        let problems = export_problems(
            br#"{"valid":false,"problems":[{"path":"steps[1]","message":"m"},{"path":"","message":"n"}]}"#,
        )
        .unwrap();
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["spec.policy.config.steps[1]: m", "spec.policy.config: n"]
        );
        let bare = export_problems(br#"{"valid":false}"#).unwrap();
        assert_eq!(
            bare[0].to_string(),
            "spec.policy.config: refused by the policy, which gave no reason"
        );
        assert!(export_problems(br#"{"valid":true}"#).unwrap().is_empty());
        assert!(export_problems(b"yes").is_err());
    }

    #[test]
    fn long_lists_are_capped() {
        let problems: Vec<ConfigProblem> = (0..25)
            .map(|i| ConfigProblem {
                path: format!("{CONFIG_PATH}.f{i}"),
                message: "bad".into(),
            })
            .collect();
        let text = describe(&problems);
        assert_eq!(text.lines().count(), 1 + MAX_LISTED_PROBLEMS + 1);
        assert!(text.ends_with("\n  … and 5 more"), "{text}");
    }
}
