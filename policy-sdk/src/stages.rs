//! Helpers for the stage logic most policies share: weight ramps, tester matches, source-label
//! chaining across the services of a release, and small constructors for decisions.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::types::{
    Action, Decision, Destination, Input, Match, ReleaseInfo, Role, Rule, ServiceInfo, Stage,
    StringMatch,
};

/// How testers are recognised at the entry services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Testers {
    /// A cookie `name=value` anywhere in the `cookie` header (e.g. `user=tester`).
    Cookie(String),
    /// A request header with a given value.
    Header {
        /// Header name (lower case).
        name: String,
        /// How its value is compared.
        value: StringMatch,
    },
}

impl Testers {
    /// Reads the `testers` config value: `{"cookie": "user=tester"}` or
    /// `{"header": {"name": "canary", "exact": "canary-tester"}}` (or `prefix` / `regex`).
    /// `null` or absent gives `Ok(None)`; anything else an error naming the field.
    pub fn from_config(value: Option<&Value>) -> Result<Option<Testers>, String> {
        let value = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(value) => value,
        };
        if let Some(cookie) = value.get("cookie") {
            return match cookie.as_str() {
                Some(cookie) if !cookie.is_empty() => Ok(Some(Testers::Cookie(cookie.to_string()))),
                _ => Err(format!("config.testers.cookie: expected a non-empty string like \"user=tester\", got {}", cookie)),
            };
        }
        if let Some(header) = value.get("header") {
            let name = match header.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => name.to_ascii_lowercase(),
                _ => return Err("config.testers.header.name: expected a header name".to_string()),
            };
            let string = |key: &str| header.get(key).and_then(Value::as_str).map(str::to_string);
            let value = if let Some(v) = string("exact") {
                StringMatch::Exact(v)
            } else if let Some(v) = string("prefix") {
                StringMatch::Prefix(v)
            } else if let Some(v) = string("regex") {
                StringMatch::Regex(v)
            } else {
                return Err(
                    "config.testers.header: expected one of exact, prefix or regex".to_string(),
                );
            };
            return Ok(Some(Testers::Header { name, value }));
        }
        Err(format!("config.testers: expected {{cookie: ...}} or {{header: {{name, exact|prefix|regex}}}}, got {}", value))
    }

    /// The route match selecting testers.
    pub fn to_match(&self) -> Match {
        let (name, value) = match self {
            Testers::Cookie(cookie) => (
                "cookie".to_string(),
                StringMatch::Regex(cookie_regex(cookie)),
            ),
            Testers::Header { name, value } => (name.clone(), value.clone()),
        };
        let mut headers = BTreeMap::new();
        headers.insert(name, value);
        Match {
            headers,
            ..Match::default()
        }
    }
}

/// The RE2 matching a cookie `name=value` anywhere in a `cookie` header:
/// `user=tester` → `^(.*?;\s*)?(user=tester)(;.*)?$` (regex metacharacters in the cookie are
/// escaped: it is matched literally).
///
/// The tutorials' regex, `^(.*?;)?(user=tester)(;.*)?$`, only matches when the cookie comes
/// first: browsers separate cookies with `"; "` (RFC 6265 §4.2.1), so in `a=1; user=tester`
/// the tester cookie follows a space the tutorial regex has no room for. `\s*` makes room.
pub fn cookie_regex(cookie: &str) -> String {
    let mut escaped = String::with_capacity(cookie.len());
    for c in cookie.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("^(.*?;\\s*)?({})(;.*)?$", escaped)
}

/// Destinations sending `canary_weight` percent to the canary and the rest to stable; a single
/// destination at 0 and 100.
pub fn weighted(canary_weight: u32) -> Vec<Destination> {
    let canary_weight = canary_weight.min(100);
    match canary_weight {
        0 => vec![to(Role::Stable)],
        100 => vec![to(Role::Canary)],
        w => vec![
            Destination {
                subset: Role::Stable,
                weight: Some(100 - w),
            },
            Destination {
                subset: Role::Canary,
                weight: Some(w),
            },
        ],
    }
}

/// One destination taking all traffic of its rule.
pub fn to(role: Role) -> Destination {
    Destination {
        subset: role,
        weight: Some(100),
    }
}

/// The canary weight of every stage of a ramp: `steps` in order (duplicates dropped), a leading
/// `0` ("testers only") when testers are configured and the first step is not already 0, and a
/// final `100` when missing.
pub fn ramp_weights(steps: &[u32], testers: bool) -> Vec<u32> {
    let mut weights: Vec<u32> = Vec::new();
    if testers && steps.first() != Some(&0) {
        weights.push(0);
    }
    for &step in steps {
        let step = step.min(100);
        if weights.last() != Some(&step) {
            weights.push(step);
        }
    }
    if weights.last() != Some(&100) {
        weights.push(100);
    }
    weights
}

/// The display name of a stage at `canary_weight`: `testers` for 0 with testers, else `N%`.
pub fn stage_name(canary_weight: u32, testers: bool) -> String {
    if canary_weight == 0 && testers {
        "testers".to_string()
    } else {
        format!("{}%", canary_weight)
    }
}

/// What one stage should do, for [`routes`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StagePlan {
    /// Percent of entry traffic for the canary.
    pub canary_weight: u32,
    /// Testers always reach the canary of entry services (below 100%).
    pub testers: Option<Testers>,
    /// Source-label chaining: non-entry services send canary callers to their canary and
    /// everyone else to stable, so v2 talks only to v2.
    pub chain: bool,
}

/// The routes of every service for one stage.
///
/// At 100% every service sends everything to the canary. Otherwise an entry service gets the
/// tester match (if any) to the canary, then the weighted default; a non-entry service with
/// chaining sends calls from the canaries of the other release services
/// ([`Match::from_canary_callers`], which the host expands into one `sourceLabels` block per
/// caller, [`chain_matches`]) to the canary, then everything else to stable; without chaining
/// it is weighted like an entry service.
///
/// Linear in the number of services: a chained service gets one compact caller match, not one
/// block per caller (which made a chained release quadratic in fuel and output).
pub fn routes(release: &ReleaseInfo, plan: &StagePlan) -> BTreeMap<String, Vec<Rule>> {
    let mut routes = BTreeMap::new();
    // How many services have a canary that labels tell apart from their stable: the callers
    // a chained service can recognise (itself excepted).
    let callers = if plan.chain && plan.canary_weight < 100 {
        release
            .services
            .iter()
            .filter(|s| distinguishable(s))
            .count()
    } else {
        0
    };
    for service in &release.services {
        let mut rules = Vec::new();
        if plan.canary_weight >= 100 {
            rules.push(Rule {
                matches: Vec::new(),
                to: vec![to(Role::Canary)],
            });
        } else if plan.chain && !service.entry {
            if callers > usize::from(distinguishable(service)) {
                rules.push(Rule {
                    matches: vec![Match::from_canary_callers()],
                    to: vec![to(Role::Canary)],
                });
            }
            rules.push(Rule {
                matches: Vec::new(),
                to: vec![to(Role::Stable)],
            });
        } else {
            if let (Some(testers), true) = (&plan.testers, service.entry) {
                rules.push(Rule {
                    matches: vec![testers.to_match()],
                    to: vec![to(Role::Canary)],
                });
            }
            rules.push(Rule {
                matches: Vec::new(),
                to: weighted(plan.canary_weight),
            });
        }
        routes.insert(service.name.clone(), rules);
    }
    routes
}

/// Routes sending all traffic of every service to one role.
pub fn all_to(release: &ReleaseInfo, role: Role) -> BTreeMap<String, Vec<Rule>> {
    release
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                vec![Rule {
                    matches: Vec::new(),
                    to: vec![to(role)],
                }],
            )
        })
        .collect()
}

/// The `sourceLabels` matches selecting the canary pods of the other services of the release
/// (its possible callers): one block per caller, with that caller's canary labels — its app label
/// and canary version, `{app: frontend, version: v2}` as seed 004 writes it — so an unrelated
/// workload that merely carries the same version label stays on stable. Callers whose canary
/// cannot be told from their stable by labels are left out.
///
/// This is what a [`Match::from_canary_callers`] block means; the host expands it with this
/// function when it renders. Its result grows with the number of services, so a policy
/// building it for every service of a release is quadratic: answer the compact match instead.
pub fn chain_matches(release: &ReleaseInfo, service: &ServiceInfo) -> Vec<Match> {
    release
        .services
        .iter()
        .filter(|caller| caller.name != service.name && distinguishable(caller))
        .map(|caller| Match {
            source_labels: caller.canary.labels.clone(),
            ..Match::default()
        })
        .collect()
}

/// Whether labels tell the service's canary pods from its stable ones (see [`version_labels`]).
fn distinguishable(service: &ServiceInfo) -> bool {
    service
        .canary
        .labels
        .iter()
        .any(|(key, value)| service.stable.labels.get(key) != Some(value))
}

/// The canary's labels that tell it apart from stable (the version label), e.g. `{version: v2}`.
pub fn version_labels(service: &ServiceInfo) -> BTreeMap<String, String> {
    service
        .canary
        .labels
        .iter()
        .filter(|(key, value)| service.stable.labels.get(*key) != Some(*value))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Input {
    /// A field of `config`, if the config is an object holding it (and it is not `null`).
    pub fn config_field(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    /// `now` as seconds since the epoch.
    pub fn now_seconds(&self) -> Option<i64> {
        crate::time::parse_rfc3339(&self.now)
    }

    /// Seconds since the current stage was applied, when both times are known.
    pub fn seconds_in_stage(&self) -> Option<i64> {
        let started = self
            .state
            .stage_started_at
            .as_deref()
            .and_then(crate::time::parse_rfc3339)?;
        Some(self.now_seconds()? - started)
    }
}

impl Decision {
    /// Apply `stage`.
    pub fn advance(stage: Stage, reason: impl Into<String>) -> Decision {
        Decision {
            action: Action::Advance,
            stage: Some(stage),
            requeue_after_seconds: None,
            reason: reason.into(),
        }
    }

    /// The release is done with `stage` (all traffic to the canary).
    pub fn complete(stage: Stage, reason: impl Into<String>) -> Decision {
        Decision {
            action: Action::Complete,
            stage: Some(stage),
            requeue_after_seconds: None,
            reason: reason.into(),
        }
    }

    /// Send everything back to stable with `stage`.
    pub fn rollback(stage: Stage, reason: impl Into<String>) -> Decision {
        Decision {
            action: Action::Rollback,
            stage: Some(stage),
            requeue_after_seconds: None,
            reason: reason.into(),
        }
    }

    /// Keep the current stage.
    pub fn hold(reason: impl Into<String>) -> Decision {
        Decision {
            action: Action::Hold,
            stage: None,
            requeue_after_seconds: None,
            reason: reason.into(),
        }
    }

    /// Ask to be called again after `seconds`.
    pub fn requeue_after(mut self, seconds: u64) -> Decision {
        self.requeue_after_seconds = Some(seconds);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ReleaseBuilder;

    #[test]
    fn cookie_regex_matches_the_seed() {
        assert_eq!(
            cookie_regex("user=tester"),
            "^(.*?;\\s*)?(user=tester)(;.*)?$"
        );
        assert_eq!(cookie_regex("a.b=c"), "^(.*?;\\s*)?(a\\.b=c)(;.*)?$");
    }

    #[test]
    fn ramps() {
        assert_eq!(ramp_weights(&[10, 50, 100], false), vec![10, 50, 100]);
        assert_eq!(ramp_weights(&[10, 50, 100], true), vec![0, 10, 50, 100]);
        assert_eq!(ramp_weights(&[0, 100], true), vec![0, 100]);
        assert_eq!(ramp_weights(&[30, 80], false), vec![30, 80, 100]);
    }

    #[test]
    fn chained_routes_for_a_multi_service_release() {
        let release = ReleaseBuilder::new("weather-v2")
            .service("frontend", "v1", "v2")
            .entry(true)
            .service("forecast", "v1", "v2")
            .build();
        let plan = StagePlan {
            canary_weight: 0,
            testers: Some(Testers::Cookie("user=tester".into())),
            chain: true,
        };
        let routes = routes(&release, &plan);
        let frontend = &routes["frontend"];
        assert_eq!(frontend.len(), 2);
        assert_eq!(
            frontend[0].matches[0].headers["cookie"],
            StringMatch::Regex("^(.*?;\\s*)?(user=tester)(;.*)?$".into())
        );
        assert_eq!(frontend[1].to, vec![to(Role::Stable)]);
        let forecast = &routes["forecast"];
        let frontend_v2: BTreeMap<String, String> = [("app", "frontend"), ("version", "v2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // One compact block for the callers; the host expands it into one block per caller,
        // naming the caller's app and canary version.
        assert_eq!(forecast[0].matches, vec![Match::from_canary_callers()]);
        assert_eq!(forecast[0].to, vec![to(Role::Canary)]);
        let expanded = chain_matches(&release, &release.services[1]);
        assert_eq!(expanded.len(), 1);
        assert_eq!(expanded[0].source_labels, frontend_v2);
        assert_eq!(forecast[1].to, vec![to(Role::Stable)]);
    }

    #[test]
    fn chain_matches_name_each_caller() {
        let release = ReleaseBuilder::new("r")
            .service("web", "v1", "v2")
            .entry(true)
            .service("api", "v1", "v2")
            .service("db", "1.0", "1.1")
            .build();
        let db = &release.services[2];
        let blocks: Vec<Vec<(String, String)>> = chain_matches(&release, db)
            .into_iter()
            .map(|m| m.source_labels.into_iter().collect())
            .collect();
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            blocks,
            [
                vec![pair("app", "web"), pair("version", "v2")],
                vec![pair("app", "api"), pair("version", "v2")],
            ]
        );
    }

    #[test]
    fn testers_from_config() {
        let header: Value =
            serde_json::from_str(r#"{"header": {"name": "Canary", "exact": "canary-tester"}}"#)
                .unwrap();
        assert_eq!(
            Testers::from_config(Some(&header)).unwrap(),
            Some(Testers::Header {
                name: "canary".into(),
                value: StringMatch::Exact("canary-tester".into())
            })
        );
        let bad: Value = serde_json::from_str(r#"{"cookie": 3}"#).unwrap();
        assert!(Testers::from_config(Some(&bad))
            .unwrap_err()
            .contains("config.testers.cookie"));
    }
}
