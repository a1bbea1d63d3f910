//! Judging the canary's metrics against thresholds.
//!
//! The host measures every metric of the spec's `analysis` for each decision and hands the
//! values to the policy in [`Input::metrics`](crate::Input::metrics); the thresholds are the
//! policy's (its `config`). This module reads them from a config, judges one input's metrics
//! against them ([`check`]), and counts consecutive failed or passed checks of the current stage
//! from the release history ([`failed_in_stage`], [`passed_in_stage`]), re-judging each recorded
//! decision's metrics with the same thresholds.
//!
//! ```
//! use policy_sdk::analysis::{check, thresholds_from_config, Check};
//! use policy_sdk::MetricSample;
//! let config = serde_json::json!([{"metric": "success-rate", "min": 99}]);
//! let thresholds = thresholds_from_config("thresholds", &config).unwrap();
//! let mut metrics = std::collections::BTreeMap::new();
//! metrics.insert("success-rate".to_string(), MetricSample::both(91.5));
//! assert_eq!(
//!     check(&thresholds, &metrics),
//!     Check::Fail { reason: "success-rate 91.5 < 99 (min)".to_string() }
//! );
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{join_path, json_kind, ConfigProblem};
use crate::types::{Action, MetricSample, State};

/// A bound on one metric of the canary: its value must be at least `min` and at most `max`
/// (at least one of them is set).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Metric name: a key of the input's `metrics` (a metric of the spec's `analysis`).
    pub metric: String,
    /// The canary's value must be at least this.
    pub min: Option<f64>,
    /// The canary's value must be at most this.
    pub max: Option<f64>,
}

/// Reads a threshold list as a config holds it, `[{metric, min?, max?}]`, at `path` (for
/// problems, e.g. `thresholds`). Every problem is returned, with paths such as
/// `thresholds[1].max`; use [`check_thresholds`] in a config validator, so that validation and
/// decisions accept exactly the same lists.
pub fn thresholds_from_config(
    path: &str,
    value: &Value,
) -> Result<Vec<Threshold>, Vec<ConfigProblem>> {
    let items = match value.as_array() {
        Some(items) => items,
        None => {
            return Err(vec![ConfigProblem::new(
                path,
                format!(
                    "must be a list of {{metric, min, max}} such as [{{\"metric\": \"success-rate\", \"min\": 99}}], got {}",
                    json_kind(value)
                ),
            )])
        }
    };
    let mut problems = Vec::new();
    let mut thresholds = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = join_path(path, &format!("[{}]", i));
        let object = match item.as_object() {
            Some(object) => object,
            None => {
                problems.push(ConfigProblem::new(
                    at,
                    format!(
                        "must be a mapping {{metric, min, max}}, got {}",
                        json_kind(item)
                    ),
                ));
                continue;
            }
        };
        let before = problems.len();
        for key in object.keys() {
            if key != "metric" && key != "min" && key != "max" {
                problems.push(ConfigProblem::new(
                    join_path(&at, key),
                    format!("unknown field {:?}, expected metric, min or max", key),
                ));
            }
        }
        let metric = match object.get("metric") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => {
                problems.push(ConfigProblem::new(
                    join_path(&at, "metric"),
                    "must be a non-empty string (a metric of spec.analysis)",
                ));
                String::new()
            }
        };
        let mut bound = |key: &str| -> Option<f64> {
            match object.get(key) {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_f64() {
                    Some(n) => Some(n),
                    None => {
                        problems.push(ConfigProblem::new(
                            join_path(&at, key),
                            format!("must be a number, got {}", json_kind(v)),
                        ));
                        None
                    }
                },
            }
        };
        let min = bound("min");
        let max = bound("max");
        let has = |key: &str| matches!(object.get(key), Some(v) if !v.is_null());
        if !has("min") && !has("max") {
            problems.push(ConfigProblem::new(at.clone(), "set min, max or both"));
        }
        if let (Some(lo), Some(hi)) = (min, max) {
            if hi < lo {
                problems.push(ConfigProblem::new(
                    join_path(&at, "max"),
                    format!("max {} is below min {}", number(hi), number(lo)),
                ));
            }
        }
        if problems.len() == before {
            thresholds.push(Threshold { metric, min, max });
        }
    }
    if problems.is_empty() {
        Ok(thresholds)
    } else {
        Err(problems)
    }
}

/// Checks a threshold list for a config validator: the problems of [`thresholds_from_config`].
pub fn check_thresholds(path: &str, value: &Value, problems: &mut Vec<ConfigProblem>) {
    if let Err(found) = thresholds_from_config(path, value) {
        problems.extend(found);
    }
}

/// The result of judging one decision's metrics against thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Every value is within its thresholds.
    Pass,
    /// A value breaches a threshold: `success-rate 91.5 < 99 (min)`, with
    /// ` for the canary of backend` in a multi-service release.
    Fail {
        /// Metric, value and threshold, as above.
        reason: String,
    },
    /// A value needed is missing (no data, the query failed, or the metric is not measured):
    /// a policy must not advance on it. No failure was seen.
    NoData {
        /// Which metric (and service) and why.
        reason: String,
    },
}

impl Check {
    /// The reason of a failure or of missing data; empty for a pass.
    pub fn reason(&self) -> &str {
        match self {
            Check::Pass => "",
            Check::Fail { reason } | Check::NoData { reason } => reason,
        }
    }
}

/// A number as reasons print it: at most 3 decimals, trailing zeros trimmed (`91.5`, `99`,
/// `0.123`).
pub fn number(value: f64) -> String {
    let text = format!("{:.3}", value);
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    if text == "-0" {
        "0".to_string()
    } else {
        text
    }
}

fn whose(service: Option<&str>) -> String {
    match service {
        Some(name) => format!(" for the canary of {}", name),
        None => String::new(),
    }
}

/// Judges `metrics` (an input's, or a history entry's) against `thresholds`, in order: the
/// canary's value of every service ([`MetricSample::canary_values`]) must be within each
/// threshold. The first failure is the answer; without one, the first missing value
/// (`NoData`: the metric is absent from `metrics`, its query failed — the reason quotes the
/// error —, or a value is `null`); otherwise `Pass`. No thresholds: `Pass`.
pub fn check(thresholds: &[Threshold], metrics: &BTreeMap<String, MetricSample>) -> Check {
    let mut no_data: Option<String> = None;
    for threshold in thresholds {
        let sample = match metrics.get(&threshold.metric) {
            Some(sample) => sample,
            None => {
                if no_data.is_none() {
                    no_data = Some(format!(
                        "metric {} is not measured (not among the input's metrics)",
                        threshold.metric
                    ));
                }
                continue;
            }
        };
        if let Some(error) = &sample.error {
            if no_data.is_none() {
                no_data = Some(format!(
                    "metric {} could not be measured: {}",
                    threshold.metric, error
                ));
            }
            continue;
        }
        for (service, value) in sample.canary_values() {
            let value = match value {
                Some(value) => value,
                None => {
                    if no_data.is_none() {
                        no_data = Some(format!(
                            "metric {} has no data{}",
                            threshold.metric,
                            match service {
                                Some(name) => format!(" for the canary of {}", name),
                                None => " for the canary".to_string(),
                            }
                        ));
                    }
                    continue;
                }
            };
            if let Some(min) = threshold.min {
                if value < min {
                    return Check::Fail {
                        reason: format!(
                            "{} {} < {} (min){}",
                            threshold.metric,
                            number(value),
                            number(min),
                            whose(service)
                        ),
                    };
                }
            }
            if let Some(max) = threshold.max {
                if value > max {
                    return Check::Fail {
                        reason: format!(
                            "{} {} > {} (max){}",
                            threshold.metric,
                            number(value),
                            number(max),
                            whose(service)
                        ),
                    };
                }
            }
        }
    }
    match no_data {
        Some(reason) => Check::NoData { reason },
        None => Check::Pass,
    }
}

/// The checks of the current stage's recorded holds, newest first: walks back from the newest
/// history entry while `entry.stage == state.stage` and `entry.action == hold`, re-judging each
/// entry's recorded `metrics`; an entry without metrics ends the walk.
fn stage_checks<'a>(
    thresholds: &'a [Threshold],
    state: &'a State,
) -> impl Iterator<Item = Check> + 'a {
    state
        .history
        .iter()
        .rev()
        .take_while(move |e| {
            e.stage == state.stage && e.action == Action::Hold && !e.metrics.is_empty()
        })
        .map(move |e| check(thresholds, &e.metrics))
}

/// Consecutive failed checks recorded in the current stage, newest first (not counting the
/// decision being taken): the walk of the history described in the module, stopping at the
/// first passing check. A `NoData` check neither counts nor stops the count: a gap in the data
/// does not forgive earlier failures.
pub fn failed_in_stage(thresholds: &[Threshold], state: &State) -> u32 {
    let mut failed = 0;
    for c in stage_checks(thresholds, state) {
        match c {
            Check::Fail { .. } => failed += 1,
            Check::NoData { .. } => {}
            Check::Pass => break,
        }
    }
    failed
}

/// Consecutive passed checks recorded in the current stage, newest first (not counting the
/// decision being taken), stopping at the first check that did not pass: a failure or a gap in
/// the data starts the count again.
pub fn passed_in_stage(thresholds: &[Threshold], state: &State) -> u32 {
    stage_checks(thresholds, state)
        .take_while(|c| *c == Check::Pass)
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{HistoryEntry, Phase, VersionValues};

    fn thresholds(json: &str) -> Vec<Threshold> {
        thresholds_from_config("thresholds", &serde_json::from_str(json).unwrap()).unwrap()
    }

    fn problems(json: &str) -> Vec<String> {
        let mut out = Vec::new();
        check_thresholds("thresholds", &serde_json::from_str(json).unwrap(), &mut out);
        out.into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    fn metrics(pairs: &[(&str, MetricSample)]) -> BTreeMap<String, MetricSample> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn numbers_print_readably() {
        assert_eq!(number(91.5), "91.5");
        assert_eq!(number(99.0), "99");
        assert_eq!(number(0.12345), "0.123");
        assert_eq!(number(250.0004), "250");
        assert_eq!(number(-0.0001), "0");
        assert_eq!(number(-2.5), "-2.5");
    }

    #[test]
    fn config_problems_have_paths() {
        assert!(problems(r#"[{"metric": "a", "min": 1, "max": 2}]"#).is_empty());
        assert_eq!(
            problems(r#"[{"metric": "a", "min": 1}, {"metric": "b", "min": 2, "max": 1}]"#),
            ["thresholds[1].max: max 1 is below min 2"]
        );
        assert_eq!(
            problems(r#"[{"metric": "a"}]"#),
            ["thresholds[0]: set min, max or both"]
        );
        assert_eq!(
            problems(r#"[{"metric": "", "min": 1}, {"min": 1}]"#),
            [
                "thresholds[0].metric: must be a non-empty string (a metric of spec.analysis)",
                "thresholds[1].metric: must be a non-empty string (a metric of spec.analysis)"
            ]
        );
        assert_eq!(
            problems(r#"[{"metric": "a", "min": "99", "mx": 1}]"#),
            [
                "thresholds[0].mx: unknown field \"mx\", expected metric, min or max",
                "thresholds[0].min: must be a number, got a string"
            ]
        );
        assert_eq!(
            problems(r#""a""#),
            ["thresholds: must be a list of {metric, min, max} such as [{\"metric\": \"success-rate\", \"min\": 99}], got a string"]
        );
        assert_eq!(
            problems(r#"[3]"#),
            ["thresholds[0]: must be a mapping {metric, min, max}, got a number"]
        );
    }

    #[test]
    fn one_service_checks() {
        let t = thresholds(
            r#"[{"metric": "success-rate", "min": 99}, {"metric": "latency", "max": 500}]"#,
        );
        let ok = metrics(&[
            ("success-rate", MetricSample::both(99.5)),
            ("latency", MetricSample::both(120.0)),
        ]);
        assert_eq!(check(&t, &ok), Check::Pass);
        let slow = metrics(&[
            ("success-rate", MetricSample::both(99.5)),
            ("latency", MetricSample::both(612.25)),
        ]);
        assert_eq!(check(&t, &slow).reason(), "latency 612.25 > 500 (max)");
        let no_data = metrics(&[
            ("success-rate", MetricSample::default()),
            ("latency", MetricSample::both(120.0)),
        ]);
        assert_eq!(
            check(&t, &no_data),
            Check::NoData {
                reason: "metric success-rate has no data for the canary".into()
            }
        );
        let failed = metrics(&[
            (
                "success-rate",
                MetricSample {
                    error: Some("prometheus: connection refused".into()),
                    ..MetricSample::default()
                },
            ),
            ("latency", MetricSample::both(120.0)),
        ]);
        assert_eq!(
            check(&t, &failed).reason(),
            "metric success-rate could not be measured: prometheus: connection refused"
        );
        assert_eq!(
            check(&t, &metrics(&[("success-rate", MetricSample::both(99.5))])).reason(),
            "metric latency is not measured (not among the input's metrics)"
        );
        // A failure wins over missing data elsewhere.
        let both = metrics(&[
            ("success-rate", MetricSample::default()),
            ("latency", MetricSample::both(900.0)),
        ]);
        assert_eq!(check(&t, &both).reason(), "latency 900 > 500 (max)");
        assert_eq!(check(&[], &BTreeMap::new()), Check::Pass);
    }

    #[test]
    fn multi_service_checks_name_the_service() {
        let t = thresholds(r#"[{"metric": "success-rate", "min": 99}]"#);
        let mut sample = MetricSample::default();
        sample.services.insert(
            "backend".into(),
            VersionValues {
                stable: Some(99.9),
                canary: Some(91.5),
            },
        );
        sample.services.insert(
            "frontend".into(),
            VersionValues {
                stable: Some(99.9),
                canary: None,
            },
        );
        assert_eq!(
            check(&t, &metrics(&[("success-rate", sample.clone())])).reason(),
            "success-rate 91.5 < 99 (min) for the canary of backend"
        );
        sample.services.get_mut("backend").unwrap().canary = Some(99.2);
        assert_eq!(
            check(&t, &metrics(&[("success-rate", sample)])).reason(),
            "metric success-rate has no data for the canary of frontend"
        );
    }

    fn entry(stage: u32, action: Action, rate: Option<f64>) -> HistoryEntry {
        let mut metrics = BTreeMap::new();
        match rate {
            Some(r) if r < 0.0 => {
                metrics.insert("success-rate".to_string(), MetricSample::default());
            }
            Some(r) => {
                metrics.insert("success-rate".to_string(), MetricSample::both(r));
            }
            None => {}
        }
        HistoryEntry {
            stage,
            at: "2026-11-22T10:00:00Z".into(),
            action,
            reason: String::new(),
            metrics,
            gates: BTreeMap::new(),
        }
    }

    fn state(stage: u32, history: Vec<HistoryEntry>) -> State {
        State {
            stage,
            phase: Phase::Progressing,
            stage_started_at: None,
            history,
            override_: None,
            paused: false,
            approvals: Vec::new(),
        }
    }

    #[test]
    fn streaks_walk_the_current_stage() {
        let t = thresholds(r#"[{"metric": "success-rate", "min": 99}]"#);
        let s = state(
            1,
            vec![
                entry(0, Action::Hold, Some(90.0)),
                entry(1, Action::Advance, Some(99.5)),
                entry(1, Action::Hold, Some(99.5)),
                entry(1, Action::Hold, Some(90.0)),
                entry(1, Action::Hold, Some(-1.0)),
                entry(1, Action::Hold, Some(91.0)),
            ],
        );
        // newest first: fail, no data (skipped), fail, then a pass stops the count.
        assert_eq!(failed_in_stage(&t, &s), 2);
        assert_eq!(passed_in_stage(&t, &s), 0);
        let s = state(
            1,
            vec![
                entry(1, Action::Advance, Some(99.5)),
                entry(1, Action::Hold, Some(99.1)),
                entry(1, Action::Hold, Some(99.5)),
            ],
        );
        assert_eq!((failed_in_stage(&t, &s), passed_in_stage(&t, &s)), (0, 2));
        // An entry without metrics ends the walk; so does another stage.
        let s = state(
            1,
            vec![
                entry(1, Action::Hold, Some(99.5)),
                entry(1, Action::Hold, None),
                entry(1, Action::Hold, Some(99.5)),
            ],
        );
        assert_eq!(passed_in_stage(&t, &s), 1);
        let s = state(2, vec![entry(1, Action::Hold, Some(90.0))]);
        assert_eq!(failed_in_stage(&t, &s), 0);
        // A gap in the data restarts the passing count.
        let s = state(
            1,
            vec![
                entry(1, Action::Hold, Some(99.5)),
                entry(1, Action::Hold, Some(-1.0)),
            ],
        );
        assert_eq!(passed_in_stage(&t, &s), 0);
    }
}
