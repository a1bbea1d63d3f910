//! A native test harness: build inputs fluently, run a decide function through the same JSON
//! wire format the host uses, and look at the routes it returned.
//!
//! ```
//! use policy_sdk::testing::{InputBuilder, ReleaseBuilder, canary_weight};
//! use policy_sdk::{Decision, Event, Input, stages};
//!
//! fn decide(input: &Input) -> Decision {
//!     let routes = stages::routes(&input.release, &stages::StagePlan { canary_weight: 10, ..Default::default() });
//!     Decision::advance(policy_sdk::Stage { index: 0, name: "10%".into(), routes }, "start")
//! }
//!
//! let release = ReleaseBuilder::new("demo").service("web", "v1", "v2").build();
//! let input = InputBuilder::new(release).event(Event::Start).build();
//! let decision = policy_sdk::testing::run(decide, &input);
//! assert_eq!(canary_weight(&decision, "web"), Some(10));
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

use crate::abi::{decide_json, DecideFn};
use crate::types::{
    Approval, Decision, Event, Gate, GateKind, HistoryEntry, Input, MetricSample, Phase,
    ReleaseInfo, Role, ServiceInfo, State, VersionRef, WeightOverride, ABI_VERSION,
};

/// Builds a [`ReleaseInfo`] service by service.
#[derive(Debug, Clone)]
pub struct ReleaseBuilder {
    release: ReleaseInfo,
}

impl ReleaseBuilder {
    /// A release named `name` in namespace `default`, without services yet.
    pub fn new(name: &str) -> ReleaseBuilder {
        ReleaseBuilder {
            release: ReleaseInfo {
                name: name.to_string(),
                namespace: "default".to_string(),
                services: Vec::new(),
            },
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: &str) -> ReleaseBuilder {
        self.release.namespace = namespace.to_string();
        self
    }

    /// Adds a service with pods labelled `app=<name>,version=<stable|canary>`. The first service
    /// added is an entry service; later ones are not, unless [`entry`](Self::entry) says so.
    pub fn service(mut self, name: &str, stable: &str, canary: &str) -> ReleaseBuilder {
        let version = |v: &str| {
            let mut labels = BTreeMap::new();
            labels.insert("app".to_string(), name.to_string());
            labels.insert("version".to_string(), v.to_string());
            VersionRef {
                subset: subset_of(v),
                labels,
            }
        };
        let entry = self.release.services.is_empty();
        self.release.services.push(ServiceInfo {
            name: name.to_string(),
            host: name.to_string(),
            stable: version(stable),
            canary: version(canary),
            entry,
            gateways: Vec::new(),
        });
        self
    }

    /// Marks the last added service as an entry service or not.
    pub fn entry(mut self, entry: bool) -> ReleaseBuilder {
        if let Some(service) = self.release.services.last_mut() {
            service.entry = entry;
        }
        self
    }

    /// Binds the last added service to an ingress gateway (`namespace/name`).
    pub fn gateway(mut self, gateway: &str) -> ReleaseBuilder {
        if let Some(service) = self.release.services.last_mut() {
            service.gateways.push(gateway.to_string());
        }
        self
    }

    /// The release.
    pub fn build(self) -> ReleaseInfo {
        self.release
    }
}

/// `1.0` → `v1-0`, `v2` → `v2` (the host's subset naming, simplified for tests).
fn subset_of(version: &str) -> String {
    let lowered: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if lowered.starts_with('v') {
        lowered
    } else {
        format!("v{}", lowered)
    }
}

/// Builds an [`Input`]: event `start` at `2026-11-22T10:00:00Z`, stage 0, phase `Progressing`,
/// no config and no metrics unless set.
#[derive(Debug, Clone)]
pub struct InputBuilder {
    input: Input,
}

impl InputBuilder {
    /// An input for `release`.
    pub fn new(release: ReleaseInfo) -> InputBuilder {
        InputBuilder {
            input: Input {
                abi: ABI_VERSION,
                event: Event::Start,
                now: "2026-11-22T10:00:00Z".to_string(),
                release,
                config: Value::Null,
                state: State {
                    stage: 0,
                    phase: Phase::Progressing,
                    stage_started_at: None,
                    history: Vec::new(),
                    override_: None,
                    paused: false,
                    approvals: Vec::new(),
                },
                metrics: BTreeMap::new(),
                gates: BTreeMap::new(),
            },
        }
    }

    /// Sets the event.
    pub fn event(mut self, event: Event) -> InputBuilder {
        self.input.event = event;
        self
    }

    /// Sets `now` (RFC 3339).
    pub fn now(mut self, now: &str) -> InputBuilder {
        self.input.now = now.to_string();
        self
    }

    /// Sets the policy config (e.g. from `serde_json::json!` or parsed text).
    pub fn config(mut self, config: Value) -> InputBuilder {
        self.input.config = config;
        self
    }

    /// Sets the policy config from JSON text; panics on invalid JSON (test code only).
    pub fn config_json(self, json: &str) -> InputBuilder {
        let config = serde_json::from_str(json).expect("config_json: invalid JSON");
        self.config(config)
    }

    /// Sets the current stage and when it started.
    pub fn stage(mut self, index: u32, started_at: &str) -> InputBuilder {
        self.input.state.stage = index;
        self.input.state.stage_started_at = Some(started_at.to_string());
        self
    }

    /// Sets the phase.
    pub fn phase(mut self, phase: Phase) -> InputBuilder {
        self.input.state.phase = phase;
        self
    }

    /// Sets a manual weight override (event `set-weight`).
    pub fn override_weight(mut self, weight: u32) -> InputBuilder {
        self.input.state.override_ = Some(WeightOverride {
            weight,
            service: None,
        });
        self
    }

    /// Adds a metric sample.
    pub fn metric(mut self, name: &str, stable: f64, canary: f64) -> InputBuilder {
        self.input.metrics.insert(
            name.to_string(),
            MetricSample {
                stable: Some(stable),
                canary: Some(canary),
                ..MetricSample::default()
            },
        );
        self
    }

    /// Adds a metric sample as the host builds it (per service, no data, or an error).
    pub fn metric_sample(mut self, name: &str, sample: MetricSample) -> InputBuilder {
        self.input.metrics.insert(name.to_string(), sample);
        self
    }

    /// Adds a gate's answer.
    pub fn gate(mut self, name: &str, on: GateKind, open: bool, answer: &str) -> InputBuilder {
        self.input.gates.insert(
            name.to_string(),
            Gate {
                on,
                open,
                answer: answer.to_string(),
            },
        );
        self
    }

    /// Pauses the release as `kubectl canary pause` does (phase `Paused`, `state.paused`).
    pub fn paused(mut self) -> InputBuilder {
        self.input.state.phase = Phase::Paused;
        self.input.state.paused = true;
        self
    }

    /// Records an operator's approval of `stage`.
    pub fn approved(mut self, stage: u32) -> InputBuilder {
        self.input.state.approvals.push(Approval {
            stage,
            by: "operator".to_string(),
            at: self.input.now.clone(),
        });
        self
    }

    /// Appends a past decision to the history.
    pub fn history(mut self, entry: HistoryEntry) -> InputBuilder {
        self.input.state.history.push(entry);
        self
    }

    /// The input.
    pub fn build(self) -> Input {
        self.input
    }
}

/// Runs `decide` on `input` through the wire format (input serialised to JSON and parsed back,
/// decision likewise), exactly as the wasm export does. Panics if the decision is not valid JSON
/// of the ABI's shape, which would be a bug in the SDK.
pub fn run(decide: DecideFn, input: &Input) -> Decision {
    let bytes = serde_json::to_vec(input).expect("inputs always serialise");
    let output = decide_json(&bytes, decide);
    serde_json::from_slice(&output).expect("the SDK writes decisions the host can read")
}

/// Runs a config validator on `config` through the wire format, exactly as the wasm export
/// `canary_validate_config` does.
pub fn validate_config(
    validate: crate::config::ValidateFn,
    config: &Value,
) -> crate::config::ConfigValidation {
    let bytes = serde_json::to_vec(config).expect("JSON values always serialise");
    let output = crate::config::validate_json(&bytes, validate);
    serde_json::from_slice(&output).expect("the SDK writes answers the host can read")
}

/// The canary's share (percent) of the catch-all (last) rule of `service`, if the decision has
/// a stage with routes for it.
pub fn canary_weight(decision: &Decision, service: &str) -> Option<u32> {
    let rules = decision.stage.as_ref()?.routes.get(service)?;
    let last = rules.last()?;
    let total: u32 = last.to.iter().map(|d| d.weight.unwrap_or(100)).sum();
    let canary: u32 = last
        .to
        .iter()
        .filter(|d| d.subset == Role::Canary)
        .map(|d| d.weight.unwrap_or(100))
        .sum();
    if total == 0 {
        return Some(0);
    }
    Some(canary * 100 / total)
}

/// How many rules with a match precede the catch-all of `service`.
pub fn matched_rules(decision: &Decision, service: &str) -> usize {
    decision
        .stage
        .as_ref()
        .and_then(|s| s.routes.get(service))
        .map(|rules| rules.iter().filter(|r| !r.matches.is_empty()).count())
        .unwrap_or(0)
}
