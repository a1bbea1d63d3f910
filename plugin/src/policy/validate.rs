//! Decision validation: the host trusts nothing a policy returns. Every check names the field
//! path (`stage.routes.voting-app[1].to[0].weight`) and the value. The Istio rules themselves
//! (RE2, weights, header names, gateway references) are `policy_sdk::rules`, shared with the
//! spec validator and the emulator.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use policy_sdk::rules::{self, quote};
use policy_sdk::{Action, Decision, Match, ReleaseInfo, Rule, StringMatch};

/// A refused decision: where, what value, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionError {
    /// Field path inside the decision.
    pub path: String,
    /// The offending value, quoted.
    pub value: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for DecisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.path, self.value, self.message)
    }
}

impl std::error::Error for DecisionError {}

fn refuse(
    path: impl Into<String>,
    value: impl Into<String>,
    message: impl Into<String>,
) -> DecisionError {
    DecisionError {
        path: path.into(),
        value: value.into(),
        message: message.into(),
    }
}

fn rule_error(path: String, err: rules::RuleError) -> DecisionError {
    let value = err.quoted_value();
    refuse(path, value, err.to_string())
}

/// Checks a decision against the release it is for.
pub fn validate_decision(decision: &Decision, release: &ReleaseInfo) -> Result<(), DecisionError> {
    let Some(stage) = &decision.stage else {
        return match decision.action {
            Action::Advance | Action::Complete => Err(refuse(
                "stage",
                "null",
                format!(
                    "action {} needs a stage (routes for every service)",
                    decision.action.as_str()
                ),
            )),
            Action::Hold | Action::Rollback => Ok(()),
        };
    };
    if stage.routes.is_empty() {
        return Err(refuse(
            "stage.routes",
            "{}",
            "empty route list: the stage must route every service of the release",
        ));
    }
    for (service, rules) in &stage.routes {
        if !release.services.iter().any(|s| &s.name == service) {
            let known: Vec<&str> = release.services.iter().map(|s| s.name.as_str()).collect();
            return Err(refuse(
                format!("stage.routes.{service}"),
                quote(service),
                format!("unknown service; the release has {}", known.join(", ")),
            ));
        }
        validate_rules(service, rules)?;
    }
    if let Some(missing) = release
        .services
        .iter()
        .find(|s| !stage.routes.contains_key(&s.name))
    {
        return Err(refuse(
            "stage.routes",
            quote(&missing.name),
            format!(
                "service {} of the release has no routes in stage {}",
                missing.name, stage.index
            ),
        ));
    }
    Ok(())
}

fn validate_rules(service: &str, rules: &[Rule]) -> Result<(), DecisionError> {
    let base = format!("stage.routes.{service}");
    let Some(last) = rules.last() else {
        return Err(refuse(
            base,
            "[]",
            format!("empty route list: traffic to {service} would have no route"),
        ));
    };
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("{base}[{i}]");
        if rule.to.is_empty() {
            return Err(refuse(
                format!("{path}.to"),
                "[]",
                "a rule needs at least one destination",
            ));
        }
        for (j, dest) in rule.to.iter().enumerate() {
            if let Some(weight) = dest.weight {
                rules::check_weight(i64::from(weight))
                    .map_err(|e| rule_error(format!("{path}.to[{j}].weight"), e))?;
            }
        }
        let total: u32 = rule
            .to
            .iter()
            .map(|d| d.weight.unwrap_or(if rule.to.len() == 1 { 100 } else { 0 }))
            .sum();
        if total == 0 {
            return Err(refuse(
                format!("{path}.to"),
                "0",
                "all weights are zero: the rule would send traffic nowhere",
            ));
        }
        for (k, m) in rule.matches.iter().enumerate() {
            validate_match(&format!("{path}.match[{k}]"), m)?;
        }
    }
    if !last.matches.is_empty() {
        return Err(refuse(
            format!("{base}[{}].match", rules.len() - 1),
            format!("{} condition(s)", last.matches.len()),
            "the last rule has a match, so requests matching no rule would get 404; end with a rule without `match`",
        ));
    }
    Ok(())
}

fn validate_match(path: &str, m: &Match) -> Result<(), DecisionError> {
    if m.headers.is_empty()
        && m.uri.is_none()
        && m.source_labels.is_empty()
        && m.gateways.is_empty()
        && !m.canary_callers
    {
        return Err(refuse(
            path.to_string(),
            "{}",
            "an empty match matches everything; drop it or move the rule last",
        ));
    }
    for (name, value) in &m.headers {
        let header = format!("{path}.headers.{name}");
        rules::check_header_name(name).map_err(|e| rule_error(header.clone(), e))?;
        validate_string_match(&header, value)?;
    }
    if let Some(uri) = &m.uri {
        validate_string_match(&format!("{path}.uri"), uri)?;
    }
    if m.canary_callers && !m.source_labels.is_empty() {
        return Err(refuse(
            format!("{path}.sourceLabels"),
            format!("{} label(s)", m.source_labels.len()),
            "canaryCallers already selects the callers by their labels; drop sourceLabels or canaryCallers",
        ));
    }
    for (key, value) in &m.source_labels {
        if key.is_empty() || value.len() > rules::MAX_LABEL_VALUE_LEN {
            return Err(refuse(
                format!("{path}.sourceLabels.{key}"),
                quote(value),
                "label keys must be non-empty and values at most 63 characters",
            ));
        }
    }
    for (g, gateway) in m.gateways.iter().enumerate() {
        rules::check_gateway_ref(gateway)
            .map_err(|e| rule_error(format!("{path}.gateways[{g}]"), e))?;
    }
    Ok(())
}

fn validate_string_match(path: &str, value: &StringMatch) -> Result<(), DecisionError> {
    if let StringMatch::Regex(regex) = value {
        check_regex_memoised(regex).map_err(|e| rule_error(format!("{path}.regex"), e))?;
    }
    Ok(())
}

/// Regexes that passed [`rules::check_regex`] in this process, so that a policy returning the
/// same tester regex stage after stage does not pay for compiling it each time (compiling is
/// most of the cost of validating a decision). Refusals are not kept: they are rare and their
/// message is rebuilt each time.
static ACCEPTED_REGEXES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// How many accepted regexes are remembered; past it the set starts again.
const ACCEPTED_REGEXES_MAX: usize = 256;

fn check_regex_memoised(regex: &str) -> Result<(), rules::RuleError> {
    let known = |regex: &str| {
        ACCEPTED_REGEXES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(regex)
    };
    if known(regex) {
        return Ok(());
    }
    rules::check_regex(regex)?;
    let mut accepted = ACCEPTED_REGEXES.lock().unwrap_or_else(|e| e.into_inner());
    if accepted.len() >= ACCEPTED_REGEXES_MAX {
        accepted.clear();
    }
    accepted.insert(regex.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_sdk::testing::ReleaseBuilder;

    fn release() -> ReleaseInfo {
        ReleaseBuilder::new("voting-v2")
            .service("voting-app", "1.0", "2.0")
            .service("voting-storage", "1.0", "2.0")
            .build()
    }

    /// A decision from JSON, checked; the error's `path = value: message`.
    fn check(json: &str) -> Result<(), String> {
        let decision: Decision = serde_json::from_str(json).expect("test JSON is a decision");
        validate_decision(&decision, &release()).map_err(|e| e.to_string())
    }

    fn stage(app: &str, storage: &str) -> String {
        format!(
            r#"{{"action":"advance","reason":"r","stage":{{"index":1,"name":"s","routes":{{"voting-app":{app},"voting-storage":{storage}}}}}}}"#
        )
    }

    const STABLE: &str = r#"[{"to":[{"subset":"stable"}]}]"#;

    #[test]
    fn accepted_regexes_are_remembered_refused_ones_are_not() {
        // Accepted once, accepted again from the memo; a bad one is refused both times.
        let good = "^(.*?;\\s*)?(user=tester)(;.*)?$";
        assert!(check_regex_memoised(good).is_ok());
        assert!(ACCEPTED_REGEXES.lock().unwrap().contains(good));
        assert!(check_regex_memoised(good).is_ok());
        for _ in 0..2 {
            assert!(check_regex_memoised("(?=lookahead)").is_err());
        }
        assert!(!ACCEPTED_REGEXES.lock().unwrap().contains("(?=lookahead)"));
    }

    #[test]
    fn a_good_decision_passes() {
        let app = r#"[{"match":[{"headers":{"cookie":{"regex":"^(.*?;)?(user=tester)(;.*)?$"}}}],"to":[{"subset":"canary"}]},
                     {"to":[{"subset":"stable","weight":90},{"subset":"canary","weight":10}]}]"#;
        check(&stage(app, STABLE)).unwrap();
        check(r#"{"action":"hold","reason":"wait"}"#).unwrap();
        let chained = r#"[{"match":[{"canaryCallers":true}],"to":[{"subset":"canary"}]},{"to":[{"subset":"stable"}]}]"#;
        check(&stage(STABLE, chained)).unwrap();
    }

    #[test]
    fn each_refusal_names_path_and_value() {
        let cases = [
            (
                stage(r#"[{"to":[{"subset":"stable","weight":50},{"subset":"canary","weight":150}]}]"#, STABLE),
                "stage.routes.voting-app[0].to[1].weight = \"150\"",
            ),
            (
                stage(r#"[{"to":[{"subset":"stable","weight":0},{"subset":"canary","weight":0}]}]"#, STABLE),
                "stage.routes.voting-app[0].to = 0: all weights are zero",
            ),
            (
                stage(r#"[{"match":[{"headers":{"cookie":{"regex":"(?=x)"}}}],"to":[{"subset":"canary"}]},{"to":[{"subset":"stable"}]}]"#, STABLE),
                "stage.routes.voting-app[0].match[0].headers.cookie.regex = \"(?=x)\"",
            ),
            (
                stage(&format!(r#"[{{"match":[{{"uri":{{"regex":"{}"}}}}],"to":[{{"subset":"canary"}}]}},{{"to":[{{"subset":"stable"}}]}}]"#, "a".repeat(2000)), STABLE),
                "stage.routes.voting-app[0].match[0].uri.regex",
            ),
            (
                stage(r#"[{"match":[{"headers":{"Canary":{"exact":"x"}}}],"to":[{"subset":"canary"}]},{"to":[{"subset":"stable"}]}]"#, STABLE),
                "stage.routes.voting-app[0].match[0].headers.Canary = \"Canary\"",
            ),
            (
                stage(r#"[{"match":[{"headers":{"canary":{"exact":"x"}}}],"to":[{"subset":"canary"}]}]"#, STABLE),
                "stage.routes.voting-app[0].match = 1 condition(s): the last rule has a match",
            ),
            (stage("[]", STABLE), "stage.routes.voting-app = []: empty route list"),
            (
                r#"{"action":"advance","reason":"r","stage":{"index":1,"name":"s","routes":{"voting-app":[{"to":[{"subset":"stable"}]}]}}}"#.to_string(),
                "stage.routes = \"voting-storage\": service voting-storage of the release has no routes",
            ),
            (
                r#"{"action":"advance","reason":"r","stage":{"index":1,"name":"s","routes":{}}}"#.to_string(),
                "stage.routes = {}: empty route list",
            ),
            (
                r#"{"action":"complete","reason":"r"}"#.to_string(),
                "stage = null: action complete needs a stage",
            ),
            (
                stage(STABLE, STABLE).replace("voting-storage", "voting-store"),
                "stage.routes.voting-store = \"voting-store\": unknown service; the release has voting-app, voting-storage",
            ),
            (
                stage(r#"[{"match":[{"gateways":["bad/gw/x"]}],"to":[{"subset":"canary"}]},{"to":[{"subset":"stable"}]}]"#, STABLE),
                "stage.routes.voting-app[0].match[0].gateways[0] = \"bad/gw/x\"",
            ),
            (
                stage(STABLE, r#"[{"match":[{"canaryCallers":true,"sourceLabels":{"app":"voting-app"}}],"to":[{"subset":"canary"}]},{"to":[{"subset":"stable"}]}]"#),
                "stage.routes.voting-storage[0].match[0].sourceLabels = 1 label(s): canaryCallers already selects the callers by their labels; drop sourceLabels or canaryCallers",
            ),
        ];
        for (json, expected) in cases {
            let err = check(&json).expect_err(expected);
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }
}
