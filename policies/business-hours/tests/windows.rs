use business_hours::decide;
use policy_sdk::testing::{canary_weight, run, InputBuilder, ReleaseBuilder};
use policy_sdk::{Action, Event};

fn input(event: Event, now: &str) -> policy_sdk::Input {
    let release = ReleaseBuilder::new("shop")
        .service("web", "v1", "v2")
        .build();
    InputBuilder::new(release)
        .event(event)
        .now(now)
        .stage(0, "2026-11-23T09:00:00Z")
        .config_json(
            r#"{"steps": [20, 100], "windows": [{"days": ["mon", "tue"], "from": 9, "to": 17}]}"#,
        )
        .build()
}

#[test]
fn advances_inside_the_window() {
    // 2026-11-23 is a Monday.
    let d = run(decide, &input(Event::Step, "2026-11-23T10:15:00Z"));
    assert_eq!(d.action, Action::Complete);
    assert_eq!(canary_weight(&d, "web"), Some(100));
    let d = run(decide, &input(Event::Start, "2026-11-23T16:59:59Z"));
    assert_eq!(
        (d.action, canary_weight(&d, "web")),
        (Action::Advance, Some(20))
    );
}

#[test]
fn holds_outside_until_the_next_hour() {
    let d = run(decide, &input(Event::Step, "2026-11-23T17:20:00Z"));
    assert_eq!(d.action, Action::Hold);
    assert_eq!(d.requeue_after_seconds, Some(2400));
    // Wednesday is not in the window.
    let d = run(decide, &input(Event::Step, "2026-11-25T10:00:00Z"));
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("wed 10:00"), "{}", d.reason);
}

#[test]
fn abort_is_always_honoured() {
    let d = run(decide, &input(Event::Abort, "2026-11-25T03:00:00Z"));
    assert_eq!(
        (d.action, canary_weight(&d, "web")),
        (Action::Rollback, Some(0))
    );
}

#[test]
fn bad_windows_hold_with_the_field() {
    let release = ReleaseBuilder::new("shop")
        .service("web", "v1", "v2")
        .build();
    let i = InputBuilder::new(release)
        .config_json(r#"{"windows": [{"days": ["someday"]}]}"#)
        .build();
    let d = run(decide, &i);
    assert_eq!(d.action, Action::Hold);
    assert!(
        d.reason.contains("config.windows[0].days[0]"),
        "{}",
        d.reason
    );
}

#[test]
fn validation_names_bad_windows() {
    let problems = |config: &str| -> Vec<String> {
        policy_sdk::testing::validate_config(
            business_hours::validate_config,
            &serde_json::from_str(config).unwrap(),
        )
        .problems
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
    };
    assert_eq!(
        problems(r#"{"windows": [{"days": ["mon"], "from": 8, "to": 18}]}"#),
        Vec::<String>::new()
    );
    assert_eq!(
        problems(r#"{"windows": [{"days": ["mon", "someday"]}]}"#),
        ["windows[0].days[1]: expected mon..sun, got \"someday\""]
    );
    assert_eq!(
        problems(r#"{"windows": [{"days": ["sat"], "from": 18, "to": 9}], "steps": [10, 50]}"#),
        [
            "steps[1]: the last step must be 100 (all traffic on the canary), got 50",
            "windows[0].to: the window ends at 9 but starts at 18: it would never open",
        ]
    );
}

#[test]
fn an_operator_pause_and_a_closed_pre_step_gate_hold() {
    let mut paused = input(Event::Tick, "2026-11-23T10:15:00Z");
    paused.state.phase = policy_sdk::Phase::Paused;
    paused.state.paused = true;
    let d = run(decide, &paused);
    assert_eq!(
        (d.action, d.reason.as_str()),
        (
            Action::Hold,
            "paused by an operator: kubectl canary resume shop"
        )
    );
    let mut gated = input(Event::Step, "2026-11-23T10:15:00Z");
    gated.gates.insert(
        "freeze".into(),
        policy_sdk::Gate {
            on: policy_sdk::GateKind::PreStep,
            open: false,
            answer: "503 Service Unavailable: freeze until Monday".into(),
        },
    );
    let d = run(decide, &gated);
    assert_eq!(
        (d.action, d.reason.as_str()),
        (
            Action::Hold,
            "gate freeze (pre-step) is closed: 503 Service Unavailable: freeze until Monday"
        )
    );
    // An open gate, or a closed one of another kind, does not hold a step.
    gated.gates.get_mut("freeze").unwrap().on = policy_sdk::GateKind::PreStart;
    assert_eq!(run(decide, &gated).action, Action::Complete);
}
