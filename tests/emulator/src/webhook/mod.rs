//! The semantic checks istiod's validating webhook (`validation.istio.io`) adds on top of the CRD
//! schemas: a negative weight passes the VirtualService schema, istiod refuses it.
//!
//! The primitive rules are the ones the plugin validates its own input with
//! (`policy_sdk::rules`), so the emulated cluster and the plugin cannot disagree on them. This
//! module only walks the objects and says where a rule failed:
//!
//! - VirtualService: at least one host, route weights `0..=100` and not all zero, regexes (RE2, at most 1024
//!   characters), match header names lower case, gateway references well formed; a rule without
//!   `match` that is not the last one is a warning (the rules after it are never used);
//! - DestinationRule: subset names are DNS-1123 labels, unique, and select some labels;
//! - PeerAuthentication: `mtls.mode` (and port-level modes) one of the Istio modes.

use policy_sdk::rules::{self, RuleError};
use serde_json::{json, Map, Value};

use crate::schema::{FieldError, FieldErrorKind};

/// The webhook's name, as the API server quotes it in denials.
pub const WEBHOOK_NAME: &str = "validation.istio.io";

/// The mTLS modes of a PeerAuthentication.
pub const MTLS_MODES: [&str; 4] = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"];

/// The webhook's verdict on one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admission {
    /// Why the object is refused; empty when admitted.
    pub errors: Vec<FieldError>,
    /// Warnings returned with an admitted object.
    pub warnings: Vec<String>,
}

impl Admission {
    /// Whether the object is admitted.
    pub fn allowed(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks an Istio object as istiod's webhook does. Objects of other kinds are admitted.
pub fn admit(obj: &Value) -> Admission {
    let mut a = Admission::default();
    let group = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(spec) = obj.get("spec").and_then(Value::as_object) else {
        return a;
    };
    match (group, kind) {
        ("networking.istio.io", "VirtualService") => virtual_service(spec, &mut a),
        ("networking.istio.io", "DestinationRule") => destination_rule(spec, &mut a),
        ("security.istio.io", "PeerAuthentication") => peer_authentication(spec, &mut a),
        _ => {}
    }
    a
}

/// The `Status` the API server answers when the webhook denies a request (400, as
/// `webhookerrors.ToStatusErr` builds it).
pub fn denial_status(admission: &Admission) -> Value {
    let list: Vec<String> = admission.errors.iter().map(ToString::to_string).collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "admission webhook \"{WEBHOOK_NAME}\" denied the request: configuration is invalid: {}",
            list.join(", ")
        ),
        "code": 400
    })
}

fn rule_error(path: String, value: Value, e: RuleError) -> FieldError {
    FieldError {
        path,
        kind: FieldErrorKind::Invalid,
        value: Some(value),
        detail: e.reason,
    }
}

fn check(a: &mut Admission, path: String, value: &Value, r: Result<(), RuleError>) {
    if let Err(e) = r {
        a.errors.push(rule_error(path, value.clone(), e));
    }
}

fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn gateways(a: &mut Admission, list: &[Value], at: &str) {
    for (i, g) in list.iter().enumerate() {
        if let Some(s) = g.as_str() {
            check(a, format!("{at}[{i}]"), g, rules::check_gateway_ref(s));
        }
    }
}

/// The `StringMatch` fields that hold a regex.
fn string_match(a: &mut Admission, m: &Value, at: &str) {
    if let Some(re) = m.get("regex") {
        if let Some(s) = re.as_str() {
            check(a, format!("{at}.regex"), re, rules::check_regex(s));
        }
    }
}

fn virtual_service(spec: &Map<String, Value>, a: &mut Admission) {
    // istiod: "virtual service must have at least one host" (the CRD schema does not say so).
    if array(spec, "hosts").is_empty() {
        a.errors.push(FieldError {
            path: "spec.hosts".into(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: String::new(),
        });
    }
    gateways(a, array(spec, "gateways"), "spec.gateways");
    let http = array(spec, "http");
    for (i, rule) in http.iter().enumerate() {
        let at = format!("spec.http[{i}]");
        let Some(rule) = rule.as_object() else {
            continue;
        };
        let matches = array(rule, "match");
        // No match, or a match block without conditions (`match: [{}]`), matches everything.
        let catch_all = matches.is_empty()
            || matches
                .iter()
                .any(|m| m.as_object().is_some_and(|o| o.keys().all(|k| k == "name")));
        if catch_all && i + 1 < http.len() {
            a.warnings.push(format!(
                "{at}: this rule matches every request and is not the last one, so the {} rule(s) after it are never used",
                http.len() - i - 1
            ));
        }
        for (j, m) in matches.iter().enumerate() {
            let mat = format!("{at}.match[{j}]");
            for field in ["uri", "scheme", "method", "authority"] {
                if let Some(sm) = m.get(field) {
                    string_match(a, sm, &format!("{mat}.{field}"));
                }
            }
            for field in ["headers", "withoutHeaders", "queryParams"] {
                let Some(map) = m.get(field).and_then(Value::as_object) else {
                    continue;
                };
                for (name, sm) in map {
                    let key_at = format!("{mat}.{field}.{name}");
                    if field != "queryParams" {
                        check(
                            a,
                            format!("{mat}.{field}"),
                            &Value::String(name.clone()),
                            rules::check_header_name(name),
                        );
                    }
                    string_match(a, sm, &key_at);
                }
            }
            if let Some(list) = m.get("gateways").and_then(Value::as_array) {
                gateways(a, list, &format!("{mat}.gateways"));
            }
        }
        let route = array(rule, "route");
        let mut all_weighted = !route.is_empty();
        let mut total = 0i64;
        for (j, dest) in route.iter().enumerate() {
            match dest.get("weight") {
                // A weight that is not an integer is the schema's error, not the webhook's.
                Some(w) if !w.is_i64() => all_weighted = false,
                Some(w) => {
                    let weight = w.as_i64().unwrap_or_default();
                    total = total.saturating_add(weight.max(0));
                    check(
                        a,
                        format!("{at}.route[{j}].weight"),
                        w,
                        rules::check_weight(weight),
                    );
                }
                None => all_weighted = false,
            }
        }
        if all_weighted && total == 0 {
            a.errors.push(FieldError {
                path: format!("{at}.route"),
                kind: FieldErrorKind::Invalid,
                value: Some(json!(0)),
                detail: "total destination weight is 0: at least one destination needs a positive weight".into(),
            });
        }
    }
}

fn destination_rule(spec: &Map<String, Value>, a: &mut Admission) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, subset) in array(spec, "subsets").iter().enumerate() {
        let at = format!("spec.subsets[{i}]");
        match subset.get("name") {
            Some(name_value @ Value::String(name)) => {
                check(
                    a,
                    format!("{at}.name"),
                    name_value,
                    rules::check_dns1123_label(name),
                );
                if seen.contains(&name.as_str()) {
                    a.errors.push(FieldError {
                        path: format!("{at}.name"),
                        kind: FieldErrorKind::Duplicate,
                        value: Some(name_value.clone()),
                        detail: String::new(),
                    });
                } else {
                    seen.push(name);
                }
            }
            _ => a.errors.push(FieldError {
                path: format!("{at}.name"),
                kind: FieldErrorKind::Required,
                value: None,
                detail: "a subset needs a name".into(),
            }),
        }
        let labels = subset.get("labels").and_then(Value::as_object);
        if labels.is_none_or(Map::is_empty) {
            a.errors.push(FieldError {
                path: format!("{at}.labels"),
                kind: FieldErrorKind::Required,
                value: None,
                detail: "a subset must select pods by at least one label".into(),
            });
        }
    }
}

fn peer_authentication(spec: &Map<String, Value>, a: &mut Admission) {
    let mut mode = |m: Option<&Value>, at: String| {
        let Some(m) = m else { return };
        if !m.as_str().is_some_and(|s| MTLS_MODES.contains(&s)) {
            a.errors.push(FieldError {
                path: at,
                kind: FieldErrorKind::NotSupported,
                value: Some(m.clone()),
                detail: format!(
                    "supported values: {}",
                    MTLS_MODES
                        .iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    };
    mode(
        spec.get("mtls").and_then(|m| m.get("mode")),
        "spec.mtls.mode".into(),
    );
    if let Some(ports) = spec.get("portLevelMtls").and_then(Value::as_object) {
        for (port, m) in ports {
            mode(m.get("mode"), format!("spec.portLevelMtls.{port}.mode"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(http: Value) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "r"}, "spec": {"hosts": ["r"], "http": http}})
    }

    #[test]
    fn negative_weight_and_all_zero_are_refused() {
        let a = admit(&vs(json!([{"route": [
            {"destination": {"host": "r", "subset": "v1"}, "weight": -10},
            {"destination": {"host": "r", "subset": "v2"}, "weight": 110}]}])));
        let msgs: Vec<String> = a.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "spec.http[0].route[0].weight: Invalid value: -10: must be between 0 and 100",
                "spec.http[0].route[1].weight: Invalid value: 110: must be between 0 and 100",
            ]
        );
        let a = admit(&vs(json!([{"route": [
            {"destination": {"host": "r", "subset": "v1"}, "weight": 0},
            {"destination": {"host": "r", "subset": "v2"}, "weight": 0}]}])));
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.errors[0].path, "spec.http[0].route");
        // A single destination without weight takes everything.
        assert!(admit(&vs(json!([{"route": [{"destination": {"host": "r"}}]}]))).allowed());
        // A string weight is left to the schema.
        assert!(admit(&vs(
            json!([{"route": [{"destination": {"host": "r"}, "weight": "5"}]}])
        ))
        .allowed());
    }

    #[test]
    fn hosts_are_required() {
        let mut obj = vs(json!([{"route": [{"destination": {"host": "r"}}]}]));
        obj["spec"]["hosts"] = json!([]);
        let a = admit(&obj);
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.errors[0].to_string(), "spec.hosts: Required value");
    }

    #[test]
    fn regex_header_and_gateway_checks() {
        let a = admit(&vs(json!([
            {"match": [{"headers": {"Cookie": {"regex": "(?=x)"}}, "gateways": ["bad/ns/x"]}],
             "route": [{"destination": {"host": "r"}}]},
            {"route": [{"destination": {"host": "r"}}]}])));
        let paths: Vec<&str> = a.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.http[0].match[0].headers",
                "spec.http[0].match[0].headers.Cookie.regex",
                "spec.http[0].match[0].gateways[0]",
            ]
        );
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn catch_all_rule_before_others_warns() {
        let a = admit(&vs(json!([
            {"route": [{"destination": {"host": "r"}}]},
            {"match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"host": "r"}}]}])));
        assert!(a.allowed());
        assert_eq!(a.warnings.len(), 1);
        assert!(
            a.warnings[0].starts_with("spec.http[0]: "),
            "{}",
            a.warnings[0]
        );
        let a = admit(&vs(json!([
            {"match": [{"uri": {"prefix": "/a"}}, {"name": "all"}], "route": [{"destination": {"host": "r"}}]},
            {"match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"host": "r"}}]},
            {"match": [{}], "route": [{"destination": {"host": "r"}}]}])));
        assert_eq!(
            a.warnings,
            ["spec.http[0]: this rule matches every request and is not the last one, so the 2 rule(s) after it are never used"]
        );
    }

    #[test]
    fn destination_rule_subsets() {
        let dr = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "r"}, "spec": {"host": "r", "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "V_2", "labels": {}}]}});
        let msgs: Vec<String> = admit(&dr).errors.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(msgs[0], r#"spec.subsets[1].name: Duplicate value: "v1""#);
        assert!(
            msgs[1].starts_with(r#"spec.subsets[2].name: Invalid value: "V_2": "#),
            "{}",
            msgs[1]
        );
        assert_eq!(
            msgs[2],
            "spec.subsets[2].labels: Required value: a subset must select pods by at least one label"
        );
    }

    #[test]
    fn peer_authentication_modes() {
        let pa = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICTER"}}});
        let a = admit(&pa);
        assert_eq!(
            a.errors[0].to_string(),
            r#"spec.mtls.mode: Unsupported value: "STRICTER": supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT""#
        );
        let s = denial_status(&a);
        assert_eq!(s["code"], 400);
        assert!(s["message"]
            .as_str()
            .unwrap()
            .starts_with("admission webhook \"validation.istio.io\" denied the request: configuration is invalid: spec.mtls.mode"));
    }
}
