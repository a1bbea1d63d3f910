//! `business-hours`: an example of organisation logic in a policy.
//!
//! The same weight ramp as `progressive` (steps, testers, chain), but a stage only advances
//! inside configured weekday/hour windows (UTC), computed from the input's `now`; outside them
//! the policy holds and asks to be called again at the next full hour. `promote` and `abort`
//! are always honoured; `step` and `tick` hold while an operator paused the release
//! (`state.paused`) or a pre-step gate is closed, as `progressive` does.
//!
//! Config: `{"windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": 9, "to": 17}],
//! "steps": [10, 50, 100], "testers": {...}, "chain": true}`; without `windows`, Monday to
//! Friday 09:00-17:00 UTC.

use policy_sdk::config::{self, ConfigProblem};
use policy_sdk::stages::{self, StagePlan, Testers};
use policy_sdk::time::{hour, weekday};
use policy_sdk::{Decision, Event, GateKind, Input, Role, Stage};
use serde_json::Value;

// Every decision runs in a fresh instance: a bump allocator beats dlmalloc (policy_sdk::alloc).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: policy_sdk::alloc::DecisionAllocator =
    policy_sdk::alloc::DecisionAllocator::new();

policy_sdk::export_policy!(
    decide: decide,
    validate_config: validate_config,
    name: "business-hours",
    version: "0.1.0",
    description: "Weight ramp that advances only inside weekday/hour windows (UTC)",
    config_schema: r#"{"type":"object","additionalProperties":false,"properties":{"windows":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"days":{"type":"array","items":{"type":"string","description":"mon, tue, wed, thu, fri, sat or sun"}},"from":{"type":"integer","minimum":0,"maximum":24,"default":9},"to":{"type":"integer","minimum":0,"maximum":24,"default":17}}},"description":"weekday/hour windows (UTC); default mon-fri 9-17"},"steps":{"type":"array","minItems":1,"items":{"type":"integer","minimum":0,"maximum":100},"default":[10,50,100]},"testers":{"type":"object","additionalProperties":false,"properties":{"cookie":{"type":"string","pattern":"^[^;\\s]*=[^;\\s]*$"},"header":{"type":"object","additionalProperties":false,"properties":{"name":{"type":"string","pattern":"^[a-z0-9!#$%&'*+.^_`|~-]+$"},"exact":{"type":"string","minLength":1},"prefix":{"type":"string","minLength":1},"regex":{"type":"string","minLength":1,"format":"re2"}},"required":["name"]}}},"chain":{"type":"boolean","default":false}}}"#,
);

/// Every problem of a config, with paths relative to it: what [`decide`] would refuse (windows)
/// and the ramp rules it shares with `progressive` (steps that increase to 100, one testers
/// selector). Exported as `canary_validate_config`.
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
    if let Some(testers) = field("testers") {
        config::check_testers("testers", testers, &mut problems);
    }
    if let Some(chain) = field("chain") {
        config::check_bool("chain", chain, &mut problems);
    }
    if field("windows").is_some() {
        match windows(field("windows")) {
            Err(err) => {
                let (path, message) = err.split_once(": ").unwrap_or(("windows", &err));
                problems.push(ConfigProblem::new(
                    path.trim_start_matches("config."),
                    message,
                ));
            }
            Ok(windows) => {
                for (i, w) in windows.iter().enumerate() {
                    if w.from >= w.to {
                        problems.push(ConfigProblem::new(
                            format!("windows[{}].to", i),
                            format!(
                                "the window ends at {} but starts at {}: it would never open",
                                w.to, w.from
                            ),
                        ));
                    }
                    if w.days.is_empty() {
                        problems.push(ConfigProblem::new(
                            format!("windows[{}].days", i),
                            "list at least one day (mon..sun): the window would never open",
                        ));
                    }
                }
            }
        }
    }
    problems
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A weekly window: `days` (0 = Monday) and hours `from..to` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Days of the week, 0 = Monday .. 6 = Sunday.
    pub days: Vec<u32>,
    /// First hour inside the window.
    pub from: u32,
    /// First hour after the window.
    pub to: u32,
}

impl Window {
    /// True when `seconds` (since the epoch) falls inside the window.
    pub fn contains(&self, seconds: i64) -> bool {
        let h = hour(seconds);
        self.days.contains(&weekday(seconds)) && h >= self.from && h < self.to
    }
}

fn windows(value: Option<&Value>) -> Result<Vec<Window>, String> {
    let items = match value {
        None => {
            return Ok(vec![Window {
                days: vec![0, 1, 2, 3, 4],
                from: 9,
                to: 17,
            }])
        }
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("config.windows: expected a list, got {}", other)),
    };
    let mut windows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut days = Vec::new();
        for (j, day) in item
            .get("days")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match day
                .as_str()
                .and_then(|d| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)))
            {
                Some(d) => days.push(d as u32),
                None => {
                    return Err(format!(
                        "config.windows[{}].days[{}]: expected mon..sun, got {}",
                        i, j, day
                    ))
                }
            }
        }
        let hour_of = |key: &str, default: u64| -> Result<u32, String> {
            match item.get(key) {
                None => Ok(default as u32),
                Some(v) => match v.as_u64() {
                    Some(h) if h <= 24 => Ok(h as u32),
                    _ => Err(format!(
                        "config.windows[{}].{}: expected an hour 0..=24, got {}",
                        i, key, v
                    )),
                },
            }
        };
        windows.push(Window {
            days,
            from: hour_of("from", 9)?,
            to: hour_of("to", 17)?,
        });
    }
    Ok(windows)
}

/// The decision for `input`.
pub fn decide(input: &Input) -> Decision {
    let windows = match windows(input.config_field("windows")) {
        Ok(w) => w,
        Err(err) => return Decision::hold(format!("invalid config: {}", err)),
    };
    let testers = match Testers::from_config(input.config_field("testers")) {
        Ok(t) => t,
        Err(err) => return Decision::hold(format!("invalid config: {}", err)),
    };
    let steps: Vec<u32> = match input.config_field("steps").and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .filter_map(Value::as_u64)
            .map(|w| w.min(100) as u32)
            .collect(),
        None => vec![10, 50, 100],
    };
    let chain = input
        .config_field("chain")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let weights = stages::ramp_weights(&steps, testers.is_some());
    let last = weights.len() - 1;
    let stage_at = |index: usize| {
        let weight = weights[index];
        let plan = StagePlan {
            canary_weight: weight,
            testers: testers.clone(),
            chain,
        };
        Stage {
            index: index as u32,
            name: stages::stage_name(weight, testers.is_some()),
            routes: stages::routes(&input.release, &plan),
        }
    };
    match input.event {
        Event::Promote => {
            return Decision::complete(
                Stage {
                    index: last as u32,
                    name: "100%".into(),
                    routes: stages::all_to(&input.release, Role::Canary),
                },
                "promoted by operator",
            )
        }
        Event::Abort => {
            return Decision::rollback(
                Stage {
                    index: input.state.stage,
                    name: "rollback".into(),
                    routes: stages::all_to(&input.release, Role::Stable),
                },
                "aborted by operator",
            )
        }
        Event::Step | Event::Tick => {
            if input.state.paused {
                return Decision::hold(format!(
                    "paused by an operator: kubectl canary resume {}",
                    input.release.name
                ));
            }
            let closed = input
                .gates
                .iter()
                .find(|(_, gate)| gate.on == GateKind::PreStep && !gate.open);
            if let Some((name, gate)) = closed {
                return Decision::hold(format!(
                    "gate {} (pre-step) is closed: {}",
                    name, gate.answer
                ))
                .requeue_after(60);
            }
        }
        _ => {}
    }
    let now = match input.now_seconds() {
        Some(now) => now,
        None => return Decision::hold(format!("cannot read now {:?}", input.now)),
    };
    if !windows.iter().any(|w| w.contains(now)) {
        let to_next_hour = 3600 - now.rem_euclid(3600) as u64;
        return Decision::hold(format!(
            "outside business hours ({} {:02}:00 UTC): holding",
            DAYS[weekday(now) as usize],
            hour(now)
        ))
        .requeue_after(to_next_hour);
    }
    let index = match input.event {
        Event::Start => 0,
        Event::SetWeight => {
            return Decision::hold(
                "business-hours does not take manual weights; use promote or abort",
            )
        }
        _ => (input.state.stage as usize + 1).min(last),
    };
    let stage = stage_at(index);
    let reason = format!("inside business hours: stage {} ({})", index, stage.name);
    if index == last {
        Decision::complete(stage, reason)
    } else {
        Decision::advance(stage, reason)
    }
}
