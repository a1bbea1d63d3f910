//! `progressive`: the built-in kubectl-canary policy.
//!
//! A weight ramp (`steps`, default `[10, 50, 100]`), optionally preceded by a testers-only stage
//! (`testers`: a cookie or a header), with source-label chaining for multi-service releases
//! (`chain`), a minimum `pause` per stage, metric `thresholds` (formerly `analysis`) judged on
//! the host's live measurements, with a tolerated `failureLimit` of consecutive failed checks
//! before rolling back and a number of consecutive passing checks (`successes`) before
//! advancing, stages that wait for an operator's approval (`approveBefore`), and gating webhooks
//! (`input.gates`). Events: `start` → stage 0; `step`/`tick` → the next stage once every signal
//! allows it (hold otherwise); `promote` → 100% canary; `abort` → 100% stable; `set-weight` →
//! the operator's weight.
//!
//! Within `step`/`tick` the order is: phase → paused by an operator → closed pre-step gates →
//! metrics (a failure beyond `failureLimit` rolls back, within it holds; missing data holds; too
//! few consecutive passing checks hold) → pause time → approval → (when the next stage
//! completes the release) closed pre-promote gates → advance.
//!
//! The decide function is a plain Rust function: the wasm module exports it through
//! [`policy_sdk::export_policy!`], and native code (tests, the host's benchmark) calls it directly.

use policy_sdk::analysis::{self, Check, Threshold};
use policy_sdk::config::{self, ConfigProblem};
use policy_sdk::stages::{self, StagePlan, Testers};
use policy_sdk::time::duration_seconds;
use policy_sdk::{log, Decision, Event, GateKind, Input, Phase, Role, Stage};
use serde_json::Value;

// Every decision runs in a fresh instance: a bump allocator beats dlmalloc (policy_sdk::alloc).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: policy_sdk::alloc::DecisionAllocator =
    policy_sdk::alloc::DecisionAllocator::new();

policy_sdk::export_policy!(
    decide: decide,
    validate_config: validate_config,
    name: "progressive",
    version: "0.1.0",
    description: "Weight ramp with optional testers-only stage, source-label chaining, pauses and metric thresholds",
    config_schema: r#"{"type":"object","additionalProperties":false,"properties":{"steps":{"type":"array","minItems":1,"items":{"type":"integer","minimum":0,"maximum":100},"default":[10,50,100],"description":"canary weights, increasing, the last one 100"},"pause":{"type":["string","integer"],"format":"duration","minimum":0,"description":"minimum time per stage, e.g. 5m (s, m, h, d; a bare number is seconds)"},"testers":{"type":"object","additionalProperties":false,"properties":{"cookie":{"type":"string","pattern":"^[^;\\s]*=[^;\\s]*$"},"header":{"type":"object","additionalProperties":false,"properties":{"name":{"type":"string","pattern":"^[a-z0-9!#$%&'*+.^_`|~-]+$"},"exact":{"type":"string","minLength":1},"prefix":{"type":"string","minLength":1},"regex":{"type":"string","minLength":1,"format":"re2"}},"required":["name"]}}},"chain":{"type":"boolean","default":false},"thresholds":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"metric":{"type":"string"},"min":{"type":"number"},"max":{"type":"number"}}},"description":"bounds on the canary's metrics (metrics of spec.analysis), each with min, max or both"},"analysis":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"metric":{"type":"string"},"min":{"type":"number"},"max":{"type":"number"}}},"description":"older name of thresholds"},"failureLimit":{"type":"integer","default":0,"description":"consecutive failed checks tolerated in a stage (0 or more); the next one rolls back"},"successes":{"type":"integer","default":1,"description":"consecutive passing checks needed in a stage before it advances (at least 1)"},"approveBefore":{"type":"array","items":{"type":"integer","minimum":0,"maximum":100},"description":"canary weights (of steps) whose stage waits for kubectl canary approve"}}}"#,
);

/// Every problem of a config, with paths relative to it (`steps[1]`): the rules the schema
/// cannot say. The host calls it through `canary_validate_config` once the schema accepts the
/// config; [`Config::from_input`] refuses the same values when a decision meets them.
pub fn validate_config(config: &Value) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    // (No `let … else`: the policies build with rustc 1.63.)
    let field = match config::fields(config, &mut problems) {
        Some(field) => field,
        None => return problems,
    };
    if let Some(steps) = field("steps") {
        config::check_steps("steps", steps, &mut problems);
    }
    if let Some(pause) = field("pause") {
        config::check_duration("pause", pause, &mut problems);
    }
    if let Some(testers) = field("testers") {
        config::check_testers("testers", testers, &mut problems);
    }
    if let Some(chain) = field("chain") {
        config::check_bool("chain", chain, &mut problems);
    }
    let steps = match field("steps") {
        None => Some(DEFAULT_STEPS.to_vec()),
        Some(value) => {
            let mut found = Vec::new();
            config::check_steps("steps", value, &mut found);
            if found.is_empty() {
                value.as_array().map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_u64)
                        .map(|w| w as u32)
                        .collect()
                })
            } else {
                None
            }
        }
    };
    let testers = field("testers").is_some();
    let (_, found) = signals(&field, steps.as_deref(), testers);
    problems.extend(found);
    problems
}

/// The policy's configuration (`policy.config` of the spec).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Canary weights of the ramp.
    pub steps: Vec<u32>,
    /// Minimum seconds per stage before `step`/`tick` advances.
    pub pause_seconds: u64,
    /// Who reaches the canary before everyone else.
    pub testers: Option<Testers>,
    /// Source-label chaining across services.
    pub chain: bool,
    /// Thresholds on the canary's metrics, and the rules counting their checks.
    pub signals: Signals,
}

/// The default ramp.
pub const DEFAULT_STEPS: [u32; 3] = [10, 50, 100];

/// The settings judging live signals: `thresholds` (or its older name `analysis`),
/// `failureLimit`, `successes` and `approveBefore`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    /// Bounds on the canary's metrics.
    pub thresholds: Vec<Threshold>,
    /// The config key the thresholds were read from (`thresholds` or `analysis`), for messages.
    pub thresholds_key: &'static str,
    /// Consecutive failed checks tolerated in a stage (`failureLimit`, default 0).
    pub failure_limit: u32,
    /// Consecutive passing checks needed in a stage before it advances (default 1).
    pub successes: u32,
    /// Canary weights whose stage waits for an operator's approval.
    pub approve_before: Vec<u32>,
}

fn whole_number(path: &str, value: &Value, least: u64, problems: &mut Vec<ConfigProblem>) -> u32 {
    match value.as_u64() {
        Some(n) if n >= least && n <= u32::MAX as u64 => n as u32,
        Some(_) if least > 0 => {
            problems.push(ConfigProblem::new(
                path,
                format!("must be at least {}", least),
            ));
            least as u32
        }
        _ => {
            if value.as_i64().is_some() && least > 0 {
                problems.push(ConfigProblem::new(
                    path,
                    format!("must be at least {}, got {}", least, value),
                ));
            } else {
                problems.push(ConfigProblem::new(
                    path,
                    format!(
                        "must be a whole number {} or more, got {}",
                        least,
                        match value {
                            Value::Number(_) => value.to_string(),
                            other => config::json_kind(other).to_string(),
                        }
                    ),
                ));
            }
            least as u32
        }
    }
}

/// Reads the signal settings through `field` (a config lookup), with every problem found (paths
/// relative to the config). `steps` is the ramp when it is valid (`None` skips the check of
/// `approveBefore` against it); `testers` whether a testers stage comes first.
pub fn signals<'a, F>(
    field: &F,
    steps: Option<&[u32]>,
    testers: bool,
) -> (Signals, Vec<ConfigProblem>)
where
    F: Fn(&str) -> Option<&'a Value>,
{
    let mut problems = Vec::new();
    let (thresholds_key, thresholds_value) = match (field("thresholds"), field("analysis")) {
        (Some(_), Some(_)) => {
            problems.push(ConfigProblem::new(
                "analysis",
                "set thresholds or its older name analysis, not both",
            ));
            ("thresholds", None)
        }
        (Some(value), None) => ("thresholds", Some(value)),
        (None, Some(value)) => ("analysis", Some(value)),
        (None, None) => ("thresholds", None),
    };
    let thresholds = match thresholds_value {
        None => Vec::new(),
        Some(value) => match analysis::thresholds_from_config(thresholds_key, value) {
            Ok(list) => list,
            Err(found) => {
                problems.extend(found);
                Vec::new()
            }
        },
    };
    let failure_limit = match field("failureLimit") {
        None => 0,
        Some(value) => whole_number("failureLimit", value, 0, &mut problems),
    };
    let successes = match field("successes") {
        None => 1,
        Some(value) => whole_number("successes", value, 1, &mut problems),
    };
    let mut approve_before = Vec::new();
    if let Some(value) = field("approveBefore") {
        match value.as_array() {
            None => problems.push(ConfigProblem::new(
                "approveBefore",
                format!(
                    "must be a list of canary weights of steps, such as [100], got {}",
                    config::json_kind(value)
                ),
            )),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("approveBefore[{}]", i);
                    let weight = match item.as_u64() {
                        Some(w) if w <= 100 => w as u32,
                        _ => {
                            problems.push(ConfigProblem::new(
                                at,
                                format!("must be a whole number 0..=100, got {}", item),
                            ));
                            continue;
                        }
                    };
                    if let Some(steps) = steps {
                        let list = steps
                            .iter()
                            .map(|w| w.to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        if !steps.contains(&weight) {
                            problems.push(ConfigProblem::new(
                                at,
                                format!("{} is not one of steps [{}]", weight, list),
                            ));
                            continue;
                        }
                        if stages::ramp_weights(steps, testers).first() == Some(&weight) {
                            problems.push(ConfigProblem::new(
                                at,
                                format!(
                                    "{} is the first stage, applied by start: only later stages wait for an approval",
                                    weight
                                ),
                            ));
                            continue;
                        }
                    }
                    approve_before.push(weight);
                }
            }
        }
    }
    (
        Signals {
            thresholds,
            thresholds_key,
            failure_limit,
            successes,
            approve_before,
        },
        problems,
    )
}

impl Config {
    /// Reads the config; the error names the field.
    pub fn from_input(input: &Input) -> Result<Config, String> {
        let steps = match input.config_field("steps") {
            None => DEFAULT_STEPS.to_vec(),
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut steps = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_u64() {
                        Some(w) if w <= 100 => steps.push(w as u32),
                        _ => {
                            return Err(format!(
                                "config.steps[{}]: expected a weight 0..=100, got {}",
                                i, item
                            ))
                        }
                    }
                }
                steps
            }
            Some(other) => {
                return Err(format!(
                    "config.steps: expected a list of weights, got {}",
                    other
                ))
            }
        };
        let pause_seconds = match input.config_field("pause") {
            None => 0,
            Some(Value::String(text)) => match duration_seconds(text) {
                Ok(seconds) => seconds,
                Err(err) => return Err(format!("config.pause: {}", err)),
            },
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
            Some(other) => {
                return Err(format!(
                    "config.pause: expected a duration like 5m, got {}",
                    other
                ))
            }
        };
        let testers = Testers::from_config(input.config_field("testers"))?;
        let chain = match input.config_field("chain") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "config.chain: expected true or false, got {}",
                    other
                ))
            }
        };
        let (signals, problems) = signals(
            &|key: &str| input.config_field(key),
            Some(&steps),
            testers.is_some(),
        );
        if let Some(problem) = problems.first() {
            return Err(format!(
                "{}: {}",
                config::join_path("config", &problem.path),
                problem.message
            ));
        }
        Ok(Config {
            steps,
            pause_seconds,
            testers,
            chain,
            signals,
        })
    }

    /// Canary weight of every stage.
    pub fn weights(&self) -> Vec<u32> {
        stages::ramp_weights(&self.steps, self.testers.is_some())
    }

    /// The stage at `index` of the ramp (clamped to the last one).
    pub fn stage(&self, input: &Input, index: usize) -> Stage {
        let weights = self.weights();
        let index = index.min(weights.len() - 1);
        self.stage_at_weight(input, index as u32, weights[index], None)
    }

    fn stage_at_weight(
        &self,
        input: &Input,
        index: u32,
        weight: u32,
        name: Option<String>,
    ) -> Stage {
        let plan = StagePlan {
            canary_weight: weight,
            testers: self.testers.clone(),
            chain: self.chain,
        };
        Stage {
            index,
            name: name.unwrap_or_else(|| stages::stage_name(weight, self.testers.is_some())),
            routes: stages::routes(&input.release, &plan),
        }
    }
}

/// The decision for `input`.
pub fn decide(input: &Input) -> Decision {
    let config = match Config::from_input(input) {
        Ok(config) => config,
        Err(err) => return Decision::hold(format!("invalid config: {}", err)),
    };
    let weights = config.weights();
    let last = weights.len() - 1;
    match input.event {
        Event::Start => {
            if let Some(refusal) = unknown_metric(input, &config.signals) {
                return refusal;
            }
            if let Some(hold) = closed_gate(input, GateKind::PreStart) {
                return hold;
            }
            let stage = config.stage(input, 0);
            let reason = format!("start: stage 0 ({})", stage.name);
            finish_or_advance(stage, last == 0, reason, config.pause_seconds)
        }
        Event::Step | Event::Tick => next(input, &config, last),
        Event::Promote => {
            if let Some(hold) = closed_gate(input, GateKind::PrePromote) {
                return hold;
            }
            let stage = Stage {
                index: last as u32,
                name: "100%".to_string(),
                routes: stages::all_to(&input.release, Role::Canary),
            };
            Decision::complete(stage, "promoted by operator: all traffic to the canary")
        }
        Event::Abort => Decision::rollback(
            rollback_stage(input),
            "aborted by operator: all traffic to stable",
        ),
        Event::SetWeight => match &input.state.override_ {
            Some(o) => {
                let weight = o.weight.min(100);
                let name = format!("{}% (set by operator)", weight);
                let stage = config.stage_at_weight(input, input.state.stage, weight, Some(name));
                Decision::advance(
                    stage,
                    format!("weight set by operator: {}% to the canary", weight),
                )
            }
            None => Decision::hold("set-weight without an override weight in the state"),
        },
    }
}

/// Seconds before a hold waiting on a signal (a gate, data, an approval) asks again.
const RECHECK_SECONDS: u64 = 60;

/// At start: a threshold on a metric the spec's `analysis` does not measure (the host sends every
/// metric of it as a key of `input.metrics`) is a config error. The answer is a rollback, which
/// the host takes at start as the policy refusing to begin: nothing is applied, and the user
/// sees the field.
fn unknown_metric(input: &Input, signals: &Signals) -> Option<Decision> {
    for (i, threshold) in signals.thresholds.iter().enumerate() {
        if input.metrics.contains_key(&threshold.metric) {
            continue;
        }
        let known = if input.metrics.is_empty() {
            "spec.analysis has none".to_string()
        } else {
            format!(
                "its metrics: {}",
                input.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        return Some(Decision::rollback(
            rollback_stage(input),
            format!(
                "config.{}[{}].metric: no metric {:?} in spec.analysis ({})",
                signals.thresholds_key, i, threshold.metric, known
            ),
        ));
    }
    None
}

/// A hold for the first closed gate of this kind (by name), if any.
fn closed_gate(input: &Input, kind: GateKind) -> Option<Decision> {
    input
        .gates
        .iter()
        .find(|(_, gate)| gate.on == kind && !gate.open)
        .map(|(name, gate)| {
            let on = match kind {
                GateKind::PreStart => "pre-start",
                GateKind::PreStep => "pre-step",
                GateKind::PrePromote => "pre-promote",
            };
            Decision::hold(format!("gate {} ({}) is closed: {}", name, on, gate.answer))
                .requeue_after(RECHECK_SECONDS)
        })
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{} {}", n, if n == 1 { one } else { many })
}

fn next(input: &Input, config: &Config, last: usize) -> Decision {
    match input.state.phase {
        Phase::Progressing | Phase::Paused => {}
        phase => return Decision::hold(format!("the release is {:?}: nothing to advance", phase)),
    }
    if input.state.paused {
        return Decision::hold(format!(
            "paused by an operator: kubectl canary resume {}",
            input.release.name
        ));
    }
    if let Some(hold) = closed_gate(input, GateKind::PreStep) {
        return hold;
    }
    let signals = &config.signals;
    let mut passed_note = None;
    if !signals.thresholds.is_empty() {
        match analysis::check(&signals.thresholds, &input.metrics) {
            Check::Fail { reason } => {
                let failed = 1 + analysis::failed_in_stage(&signals.thresholds, &input.state);
                if failed > signals.failure_limit {
                    let reason = format!(
                        "{}: {} in a row, more than failureLimit {}; rolling back",
                        reason,
                        plural(failed, "failed check", "failed checks"),
                        signals.failure_limit
                    );
                    log::warn(&reason);
                    return Decision::rollback(rollback_stage(input), reason);
                }
                let reason = format!(
                    "{}: failed check {} of {} allowed (failureLimit); holding",
                    reason, failed, signals.failure_limit
                );
                log::warn(&reason);
                return Decision::hold(reason).requeue_after(RECHECK_SECONDS);
            }
            Check::NoData { reason } => {
                return Decision::hold(format!("{}; holding: never advancing without data", reason))
                    .requeue_after(config.pause_seconds.max(RECHECK_SECONDS))
            }
            Check::Pass => {
                let passed = 1 + analysis::passed_in_stage(&signals.thresholds, &input.state);
                if passed < signals.successes {
                    return Decision::hold(format!(
                        "metrics within thresholds: check {} of {} passed; holding",
                        passed, signals.successes
                    ))
                    .requeue_after(RECHECK_SECONDS);
                }
                if signals.successes > 1 {
                    passed_note = Some(format!(
                        " (check {} of {} passed)",
                        passed.min(signals.successes),
                        signals.successes
                    ));
                }
            }
        }
    }
    if config.pause_seconds > 0 {
        if let Some(elapsed) = input.seconds_in_stage() {
            if elapsed < config.pause_seconds as i64 {
                let remaining = config.pause_seconds - elapsed.max(0) as u64;
                return Decision::hold(format!(
                    "pausing: {}s of {}s left in stage {}",
                    remaining, config.pause_seconds, input.state.stage
                ))
                .requeue_after(remaining);
            }
        }
    }
    let current = input.state.stage as usize;
    let next = (current + 1).min(last);
    let stage = config.stage(input, next);
    let weight = config.weights()[next];
    if next != current
        && signals.approve_before.contains(&weight)
        && !input.state.approved(next as u32)
    {
        return Decision::hold(format!(
            "waiting for approval of stage {} ({}): kubectl canary approve {} --stage {}",
            next, stage.name, input.release.name, next
        ))
        .requeue_after(RECHECK_SECONDS);
    }
    if next == last {
        if let Some(hold) = closed_gate(input, GateKind::PrePromote) {
            return hold;
        }
    }
    let reason = if signals.thresholds.is_empty() {
        format!("stage {} -> {} ({})", current, next, stage.name)
    } else {
        format!(
            "metrics within thresholds{}; stage {} -> {} ({})",
            passed_note.unwrap_or_default(),
            current,
            next,
            stage.name
        )
    };
    finish_or_advance(stage, next == last, reason, config.pause_seconds)
}

fn finish_or_advance(stage: Stage, is_last: bool, reason: String, pause: u64) -> Decision {
    if is_last {
        Decision::complete(stage, reason)
    } else if pause > 0 {
        Decision::advance(stage, reason).requeue_after(pause)
    } else {
        Decision::advance(stage, reason)
    }
}

fn rollback_stage(input: &Input) -> Stage {
    Stage {
        index: input.state.stage,
        name: "rollback".to_string(),
        routes: stages::all_to(&input.release, Role::Stable),
    }
}
