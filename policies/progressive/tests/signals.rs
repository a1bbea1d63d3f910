//! `progressive` judging live signals: metrics against thresholds (failure limit, successes,
//! missing data), operator pause, approvals and gating webhooks. Whole reasons are asserted: the
//! host's end-to-end tests and operators read them.

use std::collections::BTreeMap;

use policy_sdk::testing::{canary_weight, run, validate_config, InputBuilder, ReleaseBuilder};
use policy_sdk::{Action, Decision, Event, GateKind, HistoryEntry, MetricSample, VersionValues};
use progressive::decide;

fn one_service() -> InputBuilder {
    let release = ReleaseBuilder::new("shop")
        .service("web", "v1", "v2")
        .build();
    InputBuilder::new(release)
        .event(Event::Step)
        .stage(1, "2026-11-22T09:00:00Z")
}

fn two_services() -> InputBuilder {
    let release = ReleaseBuilder::new("shop")
        .service("frontend", "v1", "v2")
        .service("backend", "v1", "v2")
        .build();
    InputBuilder::new(release)
        .event(Event::Tick)
        .stage(1, "2026-11-22T09:00:00Z")
}

fn per_service(values: &[(&str, Option<f64>)]) -> MetricSample {
    let mut sample = MetricSample::default();
    for (name, canary) in values {
        sample.services.insert(
            name.to_string(),
            VersionValues {
                stable: Some(99.9),
                canary: *canary,
            },
        );
    }
    sample
}

fn hold_in_stage(stage: u32, rate: f64) -> HistoryEntry {
    let mut metrics = BTreeMap::new();
    metrics.insert("success-rate".to_string(), MetricSample::both(rate));
    HistoryEntry {
        stage,
        at: "2026-11-22T09:30:00Z".into(),
        action: Action::Hold,
        reason: "earlier check".into(),
        metrics,
        gates: BTreeMap::new(),
    }
}

fn said(d: &Decision) -> (Action, &str) {
    (d.action, d.reason.as_str())
}

const MIN_99: &str = r#"{"thresholds": [{"metric": "success-rate", "min": 99}]}"#;

#[test]
fn a_breach_rolls_back_by_default() {
    let d = run(
        decide,
        &one_service()
            .config_json(MIN_99)
            .metric("success-rate", 99.9, 91.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Rollback,
            "success-rate 91.5 < 99 (min): 1 failed check in a row, more than failureLimit 0; rolling back"
        )
    );
    assert_eq!(canary_weight(&d, "web"), Some(0));
}

#[test]
fn the_old_analysis_key_still_works_but_not_with_thresholds() {
    let d = run(
        decide,
        &one_service()
            .config_json(r#"{"analysis": [{"metric": "latency", "max": 250}]}"#)
            .metric("latency", 100.0, 312.1234)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Rollback,
            "latency 312.123 > 250 (max): 1 failed check in a row, more than failureLimit 0; rolling back"
        )
    );
    let both =
        r#"{"analysis": [{"metric": "a", "min": 1}], "thresholds": [{"metric": "a", "min": 1}]}"#;
    let d = run(decide, &one_service().config_json(both).build());
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "invalid config: config.analysis: set thresholds or its older name analysis, not both"
        )
    );
}

#[test]
fn failures_within_the_limit_hold_and_the_next_one_rolls_back() {
    let config = r#"{"thresholds": [{"metric": "success-rate", "min": 99}], "failureLimit": 2}"#;
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .metric("success-rate", 99.9, 91.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "success-rate 91.5 < 99 (min): failed check 1 of 2 allowed (failureLimit); holding"
        )
    );
    assert_eq!(d.requeue_after_seconds, Some(60));
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .history(hold_in_stage(1, 92.0))
            .metric("success-rate", 99.9, 91.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "success-rate 91.5 < 99 (min): failed check 2 of 2 allowed (failureLimit); holding"
        )
    );
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .history(hold_in_stage(1, 92.0))
            .history(hold_in_stage(1, 90.0))
            .metric("success-rate", 99.9, 91.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Rollback,
            "success-rate 91.5 < 99 (min): 3 failed checks in a row, more than failureLimit 2; rolling back"
        )
    );
    // A pass in between starts the count again; so does another stage.
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .history(hold_in_stage(1, 92.0))
            .history(hold_in_stage(1, 90.0))
            .history(hold_in_stage(1, 99.5))
            .metric("success-rate", 99.9, 91.5)
            .build(),
    );
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .history(hold_in_stage(0, 92.0))
            .history(hold_in_stage(0, 90.0))
            .metric("success-rate", 99.9, 91.5)
            .build(),
    );
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
}

#[test]
fn multi_service_reasons_name_the_service() {
    let d = run(
        decide,
        &two_services()
            .config_json(MIN_99)
            .metric_sample(
                "success-rate",
                per_service(&[("frontend", Some(99.8)), ("backend", Some(91.5))]),
            )
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Rollback,
            "success-rate 91.5 < 99 (min) for the canary of backend: 1 failed check in a row, more than failureLimit 0; rolling back"
        )
    );
}

#[test]
fn missing_data_never_advances() {
    let d = run(
        decide,
        &two_services()
            .config_json(MIN_99)
            .metric_sample(
                "success-rate",
                per_service(&[("frontend", Some(99.8)), ("backend", None)]),
            )
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "metric success-rate has no data for the canary of backend; holding: never advancing without data"
        )
    );
    assert_eq!(d.requeue_after_seconds, Some(60));
    let failed = MetricSample {
        error: Some("query timed out after 10s".into()),
        ..MetricSample::default()
    };
    let d = run(
        decide,
        &one_service()
            .config_json(
                r#"{"thresholds": [{"metric": "success-rate", "min": 99}], "pause": "5m"}"#,
            )
            .metric_sample("success-rate", failed)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "metric success-rate could not be measured: query timed out after 10s; holding: never advancing without data"
        )
    );
    assert_eq!(d.requeue_after_seconds, Some(300));
    let d = run(decide, &one_service().config_json(MIN_99).build());
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "metric success-rate is not measured (not among the input's metrics); holding: never advancing without data"
        )
    );
}

#[test]
fn successes_counts_passing_checks_in_the_stage() {
    let config = r#"{"thresholds": [{"metric": "success-rate", "min": 99}], "successes": 2}"#;
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .metric("success-rate", 99.9, 99.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "metrics within thresholds: check 1 of 2 passed; holding"
        )
    );
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .history(hold_in_stage(1, 99.2))
            .metric("success-rate", 99.9, 99.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Complete,
            "metrics within thresholds (check 2 of 2 passed); stage 1 -> 2 (100%)"
        )
    );
    // One pass is enough by default.
    let d = run(
        decide,
        &one_service()
            .config_json(MIN_99)
            .stage(0, "2026-11-22T09:00:00Z")
            .metric("success-rate", 99.9, 99.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Advance,
            "metrics within thresholds; stage 0 -> 1 (50%)"
        )
    );
}

#[test]
fn an_operator_pause_holds_a_tick() {
    let d = run(
        decide,
        &one_service()
            .event(Event::Tick)
            .paused()
            .config_json(MIN_99)
            .metric("success-rate", 99.9, 50.0)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "paused by an operator: kubectl canary resume shop"
        )
    );
}

#[test]
fn approval_gates_a_stage() {
    let config = r#"{"steps": [10, 50, 100], "approveBefore": [100]}"#;
    let d = run(decide, &one_service().config_json(config).build());
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "waiting for approval of stage 2 (100%): kubectl canary approve shop --stage 2"
        )
    );
    let d = run(
        decide,
        &one_service().config_json(config).approved(2).build(),
    );
    assert_eq!(said(&d), (Action::Complete, "stage 1 -> 2 (100%)"));
    // With a testers stage first, weights shift by one stage.
    let config =
        r#"{"steps": [10, 50, 100], "approveBefore": [10], "testers": {"cookie": "user=tester"}}"#;
    let d = run(
        decide,
        &one_service()
            .config_json(config)
            .stage(0, "2026-11-22T09:00:00Z")
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "waiting for approval of stage 1 (10%): kubectl canary approve shop --stage 1"
        )
    );
}

#[test]
fn gates_hold_in_their_place() {
    let closed = "503 Service Unavailable: freeze until Monday";
    let d = run(
        decide,
        &one_service()
            .stage(0, "2026-11-22T09:00:00Z")
            .gate("freeze", GateKind::PreStep, false, closed)
            .gate("qa", GateKind::PrePromote, false, "409 Conflict")
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "gate freeze (pre-step) is closed: 503 Service Unavailable: freeze until Monday"
        )
    );
    // A closed pre-promote gate does not hold a stage that does not complete...
    let d = run(
        decide,
        &one_service()
            .stage(0, "2026-11-22T09:00:00Z")
            .gate("qa", GateKind::PrePromote, false, "409 Conflict")
            .build(),
    );
    assert_eq!(said(&d), (Action::Advance, "stage 0 -> 1 (50%)"));
    // ...but holds the one that would, and promote.
    let d = run(
        decide,
        &one_service()
            .gate("qa", GateKind::PrePromote, false, "409 Conflict")
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "gate qa (pre-promote) is closed: 409 Conflict"
        )
    );
    let d = run(
        decide,
        &one_service()
            .event(Event::Promote)
            .gate("qa", GateKind::PrePromote, false, "409 Conflict")
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "gate qa (pre-promote) is closed: 409 Conflict"
        )
    );
    let d = run(
        decide,
        &one_service()
            .event(Event::Promote)
            .gate("qa", GateKind::PrePromote, true, "200 OK")
            .build(),
    );
    assert_eq!(d.action, Action::Complete);
    // A closed pre-start gate refuses the start.
    let d = run(
        decide,
        &one_service()
            .event(Event::Start)
            .stage(0, "2026-11-22T09:00:00Z")
            .gate(
                "change-window",
                GateKind::PreStart,
                false,
                "timed out after 5s",
            )
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "gate change-window (pre-start) is closed: timed out after 5s"
        )
    );
}

#[test]
fn order_paused_then_gates_then_metrics_then_pause_then_approval() {
    let config = r#"{"thresholds": [{"metric": "success-rate", "min": 99}], "pause": "1h", "approveBefore": [100]}"#;
    let base = || {
        one_service()
            .now("2026-11-22T09:10:00Z")
            .config_json(config)
    };
    // A closed pre-step gate comes before a breached threshold.
    let d = run(
        decide,
        &base()
            .gate("freeze", GateKind::PreStep, false, "503")
            .metric("success-rate", 99.9, 50.0)
            .build(),
    );
    assert_eq!(
        said(&d),
        (Action::Hold, "gate freeze (pre-step) is closed: 503")
    );
    // A breach comes before the pause time.
    let d = run(decide, &base().metric("success-rate", 99.9, 50.0).build());
    assert_eq!(d.action, Action::Rollback);
    // The pause time comes before the approval.
    let d = run(decide, &base().metric("success-rate", 99.9, 99.5).build());
    assert_eq!(
        said(&d),
        (Action::Hold, "pausing: 3000s of 3600s left in stage 1")
    );
    let d = run(
        decide,
        &base()
            .now("2026-11-22T10:10:00Z")
            .metric("success-rate", 99.9, 99.5)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "waiting for approval of stage 2 (100%): kubectl canary approve shop --stage 2"
        )
    );
}

#[test]
fn start_refuses_thresholds_on_unmeasured_metrics() {
    let config = r#"{"thresholds": [{"metric": "success-rate", "min": 99}, {"metric": "latency", "max": 250}]}"#;
    let start = || {
        one_service()
            .event(Event::Start)
            .stage(0, "2026-11-22T09:00:00Z")
            .config_json(config)
    };
    let d = run(
        decide,
        &start()
            .metric_sample("success-rate", MetricSample::default())
            .metric_sample("errors", MetricSample::default())
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Rollback,
            "config.thresholds[1].metric: no metric \"latency\" in spec.analysis (its metrics: errors, success-rate)"
        )
    );
    let d = run(decide, &start().build());
    assert_eq!(
        said(&d),
        (
            Action::Rollback,
            "config.thresholds[0].metric: no metric \"success-rate\" in spec.analysis (spec.analysis has none)"
        )
    );
    let d = run(
        decide,
        &start()
            .metric_sample("success-rate", MetricSample::default())
            .metric_sample("latency", MetricSample::default())
            .build(),
    );
    assert_eq!(said(&d), (Action::Advance, "start: stage 0 (10%)"));
}

fn problems(config: &str) -> Vec<String> {
    let answer = validate_config(
        progressive::validate_config,
        &serde_json::from_str(config).unwrap(),
    );
    answer
        .problems
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

#[test]
fn validation_covers_the_signal_keys() {
    assert!(problems(
        r#"{"thresholds": [{"metric": "a", "min": 1}], "failureLimit": 2, "successes": 3, "approveBefore": [50, 100]}"#
    )
    .is_empty());
    assert_eq!(
        problems(
            r#"{"thresholds": [{"metric": "a"}, {"metric": "b", "min": 2, "max": 1}, {"metric": "", "max": 1}]}"#
        ),
        [
            "thresholds[0]: set min, max or both",
            "thresholds[1].max: max 1 is below min 2",
            "thresholds[2].metric: must be a non-empty string (a metric of spec.analysis)"
        ]
    );
    assert_eq!(
        problems(r#"{"analysis": [{"metric": "b", "min": 2, "max": 1}]}"#),
        ["analysis[0].max: max 1 is below min 2"]
    );
    assert_eq!(
        problems(r#"{"failureLimit": -1, "successes": 0}"#),
        [
            "failureLimit: must be a whole number 0 or more, got -1",
            "successes: must be at least 1"
        ]
    );
    assert_eq!(
        problems(r#"{"failureLimit": "2", "successes": 1.5}"#),
        [
            "failureLimit: must be a whole number 0 or more, got a string",
            "successes: must be a whole number 1 or more, got 1.5"
        ]
    );
    assert_eq!(
        problems(r#"{"approveBefore": [30, 10, 100]}"#),
        [
            "approveBefore[0]: 30 is not one of steps [10, 50, 100]",
            "approveBefore[1]: 10 is the first stage, applied by start: only later stages wait for an approval"
        ]
    );
    assert!(problems(r#"{"approveBefore": [10], "testers": {"cookie": "a=b"}}"#).is_empty());
    assert_eq!(
        problems(r#"{"steps": [20, 100], "approveBefore": "all"}"#),
        ["approveBefore: must be a list of canary weights of steps, such as [100], got a string"]
    );
}

#[test]
fn decisions_refuse_what_validation_refuses() {
    let d = run(
        decide,
        &one_service()
            .config_json(r#"{"approveBefore": [30]}"#)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "invalid config: config.approveBefore[0]: 30 is not one of steps [10, 50, 100]"
        )
    );
    let d = run(
        decide,
        &one_service()
            .config_json(r#"{"thresholds": [{"metric": "a", "min": 2, "max": 1}]}"#)
            .build(),
    );
    assert_eq!(
        said(&d),
        (
            Action::Hold,
            "invalid config: config.thresholds[0].max: max 1 is below min 2"
        )
    );
}
