//! `x-kubernetes-validations`: CEL rules compiled once per schema with the `cel` crate and
//! evaluated against each node, with the API server's error wording.
//!
//! The API server type-checks rules against the schema at CRD creation; the `cel` crate is a
//! dynamic interpreter, so a rule that calls a function the interpreter lacks (Kubernetes'
//! `url()`, `isURL()`, `quantity()`, `ip()`, ...) is refused at compile time here and listed as
//! unsupported instead of failing objects at run time.

use std::sync::{Arc, OnceLock};

use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use serde_json::{Map, Value};

/// Functions (and macros) the interpreter provides with the standard library and the strings
/// and lists extensions. Operators (`_==_`, `!_`, `@in`, ...) are always supported.
const SUPPORTED_FUNCTIONS: &[&str] = &[
    "size",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "duration",
    "timestamp",
    "dyn",
    "type",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "join",
    "substring",
    "reverse",
    "sort",
    "distinct",
    "flatten",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
];

/// The shared CEL environment: standard library plus the strings and lists extensions.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Both extensions register fresh names; a failure would only mean fewer functions.
        let _ = env.add_extension(cel::extensions::strings);
        let _ = env.add_extension(cel::extensions::lists);
        Arc::new(env)
    })
}

/// The root context rules are evaluated in (a child scope binds `self` per evaluation).
fn root_context() -> &'static Context<'static, 'static> {
    static ROOT: OnceLock<Context<'static, 'static>> = OnceLock::new();
    ROOT.get_or_init(|| Context::with_env(env().clone()))
}

/// One compiled `x-kubernetes-validations` entry.
pub(crate) struct Rule {
    pub source: String,
    program: Program,
    message: String,
    message_expression: Option<Program>,
    field_path: Option<String>,
    reason: Option<String>,
    /// Refers to `oldSelf`: a transition rule, evaluated on update only (never here).
    transition: bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("rule", &self.source).finish()
    }
}

/// Why a rule failed on a value, ready to become a field error.
pub(crate) struct Violation {
    /// Extra path below the node (`fieldPath` of the rule, normalised), if any.
    pub field_path: Option<String>,
    /// `FieldValueInvalid` unless the rule gives another `reason`.
    pub reason: Option<String>,
    pub detail: String,
}

fn compile_program(source: &str) -> Result<Program, String> {
    let program = env()
        .compile(source)
        .map_err(|e| format!("does not parse: {e}"))?;
    let references = program.references();
    let mut missing: Vec<&str> = references
        .functions()
        .into_iter()
        .filter(|f| f.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter(|f| !SUPPORTED_FUNCTIONS.contains(f))
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        let list: Vec<String> = missing.iter().map(|f| format!("{f}()")).collect();
        return Err(format!(
            "not supported by the CEL interpreter: {}",
            list.join(", ")
        ));
    }
    Ok(program)
}

impl Rule {
    /// Compiles one `x-kubernetes-validations` entry; `Err` says why it is unsupported.
    pub(crate) fn compile(entry: &Map<String, Value>) -> Result<Rule, String> {
        let source = entry
            .get("rule")
            .and_then(Value::as_str)
            .ok_or("the entry has no rule")?
            .to_string();
        let program = compile_program(&source)?;
        let transition = program.references().has_variable("oldSelf");
        let message_expression = match entry.get("messageExpression").and_then(Value::as_str) {
            Some(expr) => compile_program(expr).ok(),
            None => None,
        };
        let field_path = entry
            .get("fieldPath")
            .and_then(Value::as_str)
            .map(normalize_field_path)
            .filter(|p| !p.is_empty());
        Ok(Rule {
            message: entry
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_string(),
            source,
            program,
            message_expression,
            field_path,
            reason: entry
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_string),
            transition,
        })
    }

    /// `ruleErrorString`: the message if any, else the rule.
    fn error_string(&self) -> &str {
        if self.message.is_empty() {
            self.source.trim()
        } else {
            &self.message
        }
    }

    /// Evaluates the rule with `self` bound to `value`. `None` when it holds (or cannot apply:
    /// transition rules, and rules the interpreter turns out not to support at run time).
    pub(crate) fn check(&self, value: &CelValue) -> Option<Violation> {
        if self.transition {
            return None;
        }
        let mut ctx = root_context().new_inner_scope();
        ctx.add_variable_from_value("self", value.clone());
        let violation = |detail: String| Violation {
            field_path: self.field_path.clone(),
            reason: self.reason.clone(),
            detail,
        };
        match self.program.execute(&ctx) {
            Ok(CelValue::Bool(true)) => None,
            Ok(CelValue::Bool(false)) => {
                let detail = self
                    .message_expression
                    .as_ref()
                    .and_then(|m| match m.execute(&ctx) {
                        Ok(CelValue::String(s)) if !s.trim().is_empty() => {
                            Some(s.trim().to_string())
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| {
                        if self.message.is_empty() {
                            format!("failed rule: {}", self.error_string())
                        } else {
                            self.message.clone()
                        }
                    });
                Some(violation(detail))
            }
            Ok(other) => Some(Violation {
                field_path: None,
                reason: None,
                detail: format!(
                    "rule {} did not evaluate to a bool: {:?}",
                    self.error_string(),
                    other
                ),
            }),
            Err(ExecutionError::UndeclaredReference(_)) => None,
            Err(ExecutionError::NoSuchOverload(e)) => Some(Violation {
                field_path: None,
                reason: None,
                detail: format!(
                    "'{e}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                    self.error_string()
                ),
            }),
            Err(e) => Some(Violation {
                field_path: None,
                reason: None,
                detail: format!("{} evaluating rule: {}", cel_go_text(&e), self.error_string()),
            }),
        }
    }
}

/// A run-time error as cel-go (which kube-apiserver runs) words it, where its text is known;
/// otherwise the evaluator's own.
fn cel_go_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::FunctionError { function, message }
            if matches!(function.as_str(), "int" | "uint" | "double")
                && message.starts_with("string parse error") =>
        {
            format!("type conversion error from 'string' to '{function}'")
        }
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        other => other.to_string(),
    }
}

/// `.spec.foo` / `spec['foo']` → `spec.foo` (the path appended to the node's path).
fn normalize_field_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']").unwrap_or(r.len());
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&r[..end]);
            rest = r.get(end + 2..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

/// Converts a JSON value to a CEL value (integers stay `int`, other numbers are `double`).
pub(crate) fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => {
            let map: std::collections::HashMap<String, CelValue> =
                o.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            CelValue::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Result<Rule, String> {
        Rule::compile(v.as_object().unwrap())
    }

    #[test]
    fn duration_rule_holds_and_fails_with_message() {
        let r = rule(json!({"rule": "duration(self) >= duration('1ms')", "message": "must be a valid duration greater than 1ms"})).unwrap();
        assert!(r.check(&to_cel(&json!("10s"))).is_none());
        let v = r.check(&to_cel(&json!("0s"))).unwrap();
        assert_eq!(v.detail, "must be a valid duration greater than 1ms");
    }

    #[test]
    fn default_message_and_macros() {
        let r = rule(json!({"rule": "self.all(key, key.size() != 0)"})).unwrap();
        assert!(r.check(&to_cel(&json!({"a": 1}))).is_none());
        let v = r.check(&to_cel(&json!({"": 1}))).unwrap();
        assert_eq!(v.detail, "failed rule: self.all(key, key.size() != 0)");
        let r = rule(json!({"rule": "self.all(l1, self.exists_one(l2, l1.number == l2.number))"}))
            .unwrap();
        assert!(r
            .check(&to_cel(&json!([{"number": 1}, {"number": 2}])))
            .is_none());
        assert!(r
            .check(&to_cel(&json!([{"number": 1}, {"number": 1}])))
            .is_some());
    }

    #[test]
    fn unknown_functions_are_unsupported() {
        let err = rule(json!({"rule": "url(self).getScheme() in ['http']"})).unwrap_err();
        assert_eq!(
            err,
            "not supported by the CEL interpreter: getScheme(), url()"
        );
        assert!(rule(json!({"rule": "self.size( == "})).is_err());
    }

    #[test]
    fn field_paths_normalise() {
        assert_eq!(normalize_field_path(".spec.foo"), "spec.foo");
        assert_eq!(normalize_field_path(".spec['a.b'].c"), "spec.a.b.c");
    }
}
