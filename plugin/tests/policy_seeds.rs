//! The built-in `progressive` policy reproduces every seed scenario's stage sequence (the
//! examples/ specs), through wasm, and the native build of the same decide function agrees
//! byte for byte.

mod common;

use std::path::PathBuf;

use kubectl_canary::policy::{Limits, LoadedPolicy, ModuleRef};
use kubectl_canary::spec;
use policy_sdk::stages::chain_matches;
use policy_sdk::testing::{canary_weight, matched_rules};
use policy_sdk::time::{format_rfc3339, parse_rfc3339};
use policy_sdk::{Action, Decision, Event, Input, Match, Phase, ReleaseInfo, State, StringMatch};

fn example(name: &str) -> (Input, u64) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let release = spec::load_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let pause = release
        .spec
        .policy
        .config
        .get("pause")
        .and_then(|p| p.as_str())
        .and_then(policy_sdk::time::parse_duration)
        .unwrap_or(0);
    let input = Input {
        abi: 1,
        event: Event::Start,
        now: "2026-11-23T10:00:00Z".into(),
        release: release.release_info(),
        config: release.spec.policy.config.clone(),
        state: State {
            stage: 0,
            phase: Phase::Progressing,
            stage_started_at: None,
            history: Vec::new(),
            override_: None,
            paused: false,
            approvals: Vec::new(),
        },
        metrics: Default::default(),
        gates: Default::default(),
    };
    (input, pause)
}

/// Runs start, then step until complete (at most 10 steps), advancing the clock by the pause.
/// Returns every applied decision. Each wasm decision is checked against the native one.
fn run_to_completion(policy: &LoadedPolicy, mut input: Input, pause: u64) -> Vec<Decision> {
    let mut applied = Vec::new();
    for _ in 0..10 {
        let decision = policy
            .decide(&input, &Limits::default())
            .expect("a valid decision");
        let native = policy_sdk::testing::run(progressive::decide, &input);
        assert_eq!(decision, native, "wasm and native disagree");
        match decision.action {
            Action::Advance | Action::Complete => {
                let stage = decision.stage.as_ref().expect("a stage");
                input.state.stage = stage.index;
                input.state.stage_started_at = Some(input.now.clone());
                let done = decision.action == Action::Complete;
                applied.push(decision);
                if done {
                    return applied;
                }
            }
            other => panic!("unexpected {other:?}: {}", decision.reason),
        }
        let now = parse_rfc3339(&input.now).unwrap() + pause as i64;
        input.now = format_rfc3339(now);
        input.event = Event::Step;
    }
    panic!("no completion after 10 steps");
}

/// The callers `service`'s first rule sends to its canary, as the host renders them: the policy
/// answers the compact caller match, which the host expands into one `sourceLabels` block per
/// other release service (`app=…,version=…` each).
fn chained_callers(release: &ReleaseInfo, decision: &Decision, service: &str) -> Vec<String> {
    let rule = &decision.stage.as_ref().expect("a stage").routes[service][0];
    assert_eq!(rule.matches, [Match::from_canary_callers()], "{service}");
    let service = release
        .services
        .iter()
        .find(|s| s.name == service)
        .expect("a service of the release");
    chain_matches(release, service)
        .iter()
        .map(|m| {
            m.source_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

fn names(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .map(|d| d.stage.as_ref().unwrap().name.clone())
        .collect()
}

fn progressive() -> LoadedPolicy {
    common::host()
        .load(&ModuleRef::parse("builtin:progressive"), None)
        .expect("progressive loads")
}

#[test]
fn seed_000_voting_app_feature_flag_then_all() {
    let (input, pause) = example("voting-app.yaml");
    let release = input.release.clone();
    let stages = run_to_completion(&progressive(), input, pause);
    assert_eq!(names(&stages), ["testers", "100%"]);
    let testers = &stages[0];
    let app = &testers.stage.as_ref().unwrap().routes["voting-app"];
    assert_eq!(
        app[0].matches[0].headers["cookie"],
        StringMatch::Regex("^(.*?;\\s*)?(featureflag=on)(;.*)?$".into())
    );
    assert_eq!(canary_weight(testers, "voting-app"), Some(0));
    // Non-entry services: the other services' canaries (version 2.0) reach the canary, others
    // stable.
    assert_eq!(
        chained_callers(&release, testers, "voting-analytics"),
        [
            "app=voting-app,version=2.0",
            "app=voting-storage,version=2.0"
        ]
    );
    assert_eq!(
        chained_callers(&release, testers, "voting-storage"),
        [
            "app=voting-app,version=2.0",
            "app=voting-analytics,version=2.0"
        ]
    );
    for service in ["voting-analytics", "voting-storage"] {
        assert_eq!(canary_weight(testers, service), Some(0));
    }
    assert_eq!(canary_weight(&stages[1], "voting-storage"), Some(100));
    assert_eq!(stages[1].action, Action::Complete);
}

#[test]
fn seed_001_nginx_weight_ramp() {
    let (input, pause) = example("nginx-weighted.yaml");
    let stages = run_to_completion(&progressive(), input, pause);
    assert_eq!(names(&stages), ["30%", "80%", "100%"]);
    let weights: Vec<_> = stages.iter().map(|d| canary_weight(d, "nginx")).collect();
    assert_eq!(weights, [Some(30), Some(80), Some(100)]);
    assert_eq!(stages[0].requeue_after_seconds, Some(300));
}

#[test]
fn seed_002_bookinfo_reviews_fifty_fifty() {
    let (input, pause) = example("bookinfo-reviews.yaml");
    let stages = run_to_completion(&progressive(), input, pause);
    assert_eq!(names(&stages), ["50%", "100%"]);
    assert_eq!(canary_weight(&stages[0], "reviews"), Some(50));
}

#[test]
fn seed_003_weather_testers_and_source_labels() {
    let (input, pause) = example("weather-testers.yaml");
    let release = input.release.clone();
    let stages = run_to_completion(&progressive(), input, pause);
    assert_eq!(names(&stages), ["testers", "100%"]);
    let routes = &stages[0].stage.as_ref().unwrap().routes;
    assert_eq!(
        routes["frontend"][0].matches[0].headers["cookie"],
        StringMatch::Regex("^(.*?;\\s*)?(user=tester)(;.*)?$".into())
    );
    assert_eq!(
        chained_callers(&release, &stages[0], "forecast"),
        ["app=frontend,version=v2"]
    );
    assert_eq!(matched_rules(&stages[0], "forecast"), 1);
}

#[test]
fn seed_004_frontend_backend_header_testers_ramp_and_chain() {
    let (input, pause) = example("frontend-backend.yaml");
    assert_eq!(pause, 300);
    let release = input.release.clone();
    let stages = run_to_completion(&progressive(), input, pause);
    assert_eq!(names(&stages), ["testers", "10%", "50%", "100%"]);
    let weights: Vec<_> = stages
        .iter()
        .map(|d| canary_weight(d, "frontend"))
        .collect();
    assert_eq!(weights, [Some(0), Some(10), Some(50), Some(100)]);
    let ten = &stages[1].stage.as_ref().unwrap().routes;
    assert_eq!(
        ten["frontend"][0].matches[0].headers["canary"],
        StringMatch::Exact("canary-tester".into())
    );
    // backend: only frontend-v2 reaches backend-v2.
    assert_eq!(
        chained_callers(&release, &stages[1], "backend"),
        ["app=frontend,version=v2"]
    );
    assert_eq!(canary_weight(&stages[1], "backend"), Some(0));
}

#[test]
fn step_before_the_pause_has_elapsed_holds() {
    let (mut input, _) = example("frontend-backend.yaml");
    input.event = Event::Step;
    input.state.stage = 1;
    input.state.stage_started_at = Some("2026-11-23T09:58:00Z".into());
    let decision = progressive().decide(&input, &Limits::default()).unwrap();
    assert_eq!(decision.action, Action::Hold);
    assert_eq!(decision.requeue_after_seconds, Some(180));
}

#[test]
fn promote_abort_and_set_weight() {
    let (mut input, _) = example("nginx-weighted.yaml");
    let policy = progressive();
    input.event = Event::Promote;
    let d = policy.decide(&input, &Limits::default()).unwrap();
    assert_eq!(
        (d.action, canary_weight(&d, "nginx")),
        (Action::Complete, Some(100))
    );
    input.event = Event::Abort;
    let d = policy.decide(&input, &Limits::default()).unwrap();
    assert_eq!(
        (d.action, canary_weight(&d, "nginx")),
        (Action::Rollback, Some(0))
    );
    input.event = Event::SetWeight;
    input.state.override_ = Some(policy_sdk::WeightOverride {
        weight: 25,
        service: None,
    });
    let d = policy.decide(&input, &Limits::default()).unwrap();
    assert_eq!(
        (d.action, canary_weight(&d, "nginx")),
        (Action::Advance, Some(25))
    );
}

#[test]
fn breached_threshold_rolls_back() {
    let (mut input, _) = example("bookinfo-reviews.yaml");
    input.config["analysis"] = serde_json::json!([{"metric": "success-rate", "min": 99.0}]);
    input.event = Event::Step;
    let policy = progressive();
    let d = policy.decide(&input, &Limits::default()).unwrap();
    assert_eq!(d.action, Action::Hold, "no sample yet: {}", d.reason);
    input.metrics.insert(
        "success-rate".into(),
        policy_sdk::MetricSample {
            stable: Some(99.9),
            canary: Some(97.5),
            ..Default::default()
        },
    );
    let evaluation = policy.evaluate(&input, &Limits::default()).unwrap();
    assert_eq!(evaluation.decision.action, Action::Rollback);
    assert_eq!(canary_weight(&evaluation.decision, "reviews"), Some(0));
    assert!(
        evaluation.logs[0].message.contains("97.5 < 99"),
        "{:?}",
        evaluation.logs
    );
    input.metrics.get_mut("success-rate").unwrap().canary = Some(99.5);
    let d = policy.decide(&input, &Limits::default()).unwrap();
    assert_eq!(
        (d.action, canary_weight(&d, "reviews")),
        (Action::Complete, Some(100))
    );
}
