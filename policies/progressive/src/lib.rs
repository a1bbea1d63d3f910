//! `progressive`: the built-in kubectl-canary policy.
//!
//! A weight ramp (`steps`, default `[10, 50, 100]`), optionally preceded by a testers-only stage
//! (`testers`: a cookie or a header), with source-label chaining for multi-service releases
//! (`chain`), a minimum `pause` per stage, and metric thresholds (`analysis`) that roll back when
//! breached. Events: `start` → stage 0; `step`/`tick` → the next stage once the pause has
//! elapsed (hold otherwise); `promote` → 100% canary; `abort` → 100% stable; `set-weight` → the
//! operator's weight.
//!
//! The decide function is a plain Rust function: the wasm module exports it through
//! [`policy_sdk::export_policy!`], and native code (tests, the host's benchmark) calls it directly.

use policy_sdk::config::{self, ConfigProblem};
use policy_sdk::stages::{self, StagePlan, Testers};
use policy_sdk::time::duration_seconds;
use policy_sdk::{log, Decision, Event, Input, Phase, Role, Stage};
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
    config_schema: r#"{"type":"object","additionalProperties":false,"properties":{"steps":{"type":"array","minItems":1,"items":{"type":"integer","minimum":0,"maximum":100},"default":[10,50,100],"description":"canary weights, increasing, the last one 100"},"pause":{"type":["string","integer"],"format":"duration","minimum":0,"description":"minimum time per stage, e.g. 5m (s, m, h, d; a bare number is seconds)"},"testers":{"type":"object","additionalProperties":false,"properties":{"cookie":{"type":"string","pattern":"^[^;\\s]*=[^;\\s]*$"},"header":{"type":"object","additionalProperties":false,"properties":{"name":{"type":"string","pattern":"^[a-z0-9!#$%&'*+.^_`|~-]+$"},"exact":{"type":"string","minLength":1},"prefix":{"type":"string","minLength":1},"regex":{"type":"string","minLength":1,"format":"re2"}},"required":["name"]}}},"chain":{"type":"boolean","default":false},"analysis":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"metric":{"type":"string","minLength":1},"min":{"type":"number"},"max":{"type":"number"}},"required":["metric"]}}}}"#,
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
    if let Some(analysis) = field("analysis") {
        match analysis.as_array() {
            None => problems.push(ConfigProblem::new(
                "analysis",
                format!("must be a list, got {}", config::json_kind(analysis)),
            )),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let min = item.get("min").and_then(Value::as_f64);
                    let max = item.get("max").and_then(Value::as_f64);
                    if let (Some(min), Some(max)) = (min, max) {
                        if min > max {
                            problems.push(ConfigProblem::new(
                                format!("analysis[{}].max", i),
                                format!("max {} is below min {}", max, min),
                            ));
                        }
                    }
                }
            }
        }
    }
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
    /// Thresholds on the canary's metrics.
    pub analysis: Vec<Threshold>,
}

/// A bound on one metric of the canary.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Metric name (a key of the input's `metrics`).
    pub metric: String,
    /// The canary's value must be at least this.
    pub min: Option<f64>,
    /// The canary's value must be at most this.
    pub max: Option<f64>,
}

impl Config {
    /// Reads the config; the error names the field.
    pub fn from_input(input: &Input) -> Result<Config, String> {
        let steps = match input.config_field("steps") {
            None => vec![10, 50, 100],
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
        let mut analysis = Vec::new();
        if let Some(value) = input.config_field("analysis") {
            let items = match value.as_array() {
                Some(items) => items,
                None => return Err(format!("config.analysis: expected a list, got {}", value)),
            };
            for (i, item) in items.iter().enumerate() {
                let metric = match item.get("metric").and_then(Value::as_str) {
                    Some(m) => m.to_string(),
                    None => {
                        return Err(format!(
                            "config.analysis[{}].metric: expected a metric name",
                            i
                        ))
                    }
                };
                let bound = |key: &str| -> Result<Option<f64>, String> {
                    match item.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                            format!(
                                "config.analysis[{}].{}: expected a number, got {}",
                                i, key, v
                            )
                        }),
                    }
                };
                analysis.push(Threshold {
                    metric,
                    min: bound("min")?,
                    max: bound("max")?,
                });
            }
        }
        Ok(Config {
            steps,
            pause_seconds,
            testers,
            chain,
            analysis,
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
            let stage = config.stage(input, 0);
            let reason = format!("start: stage 0 ({})", stage.name);
            finish_or_advance(stage, last == 0, reason, config.pause_seconds)
        }
        Event::Step | Event::Tick => next(input, &config, last),
        Event::Promote => {
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

fn next(input: &Input, config: &Config, last: usize) -> Decision {
    match input.state.phase {
        Phase::Progressing | Phase::Paused => {}
        phase => return Decision::hold(format!("the release is {:?}: nothing to advance", phase)),
    }
    for threshold in &config.analysis {
        let value = match input.metrics.get(&threshold.metric).and_then(|s| s.canary) {
            Some(value) => value,
            None => {
                return Decision::hold(format!(
                    "waiting for metric {} of the canary",
                    threshold.metric
                ))
                .requeue_after(config.pause_seconds.max(60))
            }
        };
        if let Some(min) = threshold.min {
            if value < min {
                let reason = format!(
                    "{} {} < {} (min): rolling back",
                    threshold.metric, value, min
                );
                log::warn(&reason);
                return Decision::rollback(rollback_stage(input), reason);
            }
        }
        if let Some(max) = threshold.max {
            if value > max {
                let reason = format!(
                    "{} {} > {} (max): rolling back",
                    threshold.metric, value, max
                );
                log::warn(&reason);
                return Decision::rollback(rollback_stage(input), reason);
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
    let reason = if config.analysis.is_empty() {
        format!("stage {} -> {} ({})", current, next, stage.name)
    } else {
        format!(
            "metrics within thresholds; stage {} -> {} ({})",
            current, next, stage.name
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
