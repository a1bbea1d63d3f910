use policy_sdk::testing::{canary_weight, matched_rules, run, InputBuilder, ReleaseBuilder};
use policy_sdk::{Action, Event};
use progressive::{decide, Config};

fn release() -> policy_sdk::ReleaseInfo {
    ReleaseBuilder::new("shop")
        .service("web", "v1", "v2")
        .service("api", "v1", "v2")
        .build()
}

#[test]
fn defaults_ramp_ten_fifty_hundred_without_testers() {
    let input = InputBuilder::new(release()).build();
    let config = Config::from_input(&input).unwrap();
    assert_eq!(config.weights(), vec![10, 50, 100]);
    let d = run(decide, &input);
    assert_eq!(
        (d.action, canary_weight(&d, "web"), canary_weight(&d, "api")),
        (Action::Advance, Some(10), Some(10))
    );
    assert_eq!(matched_rules(&d, "web"), 0);
}

#[test]
fn config_errors_name_the_field_and_hold() {
    for (config, field) in [
        (r#"{"steps": "fast"}"#, "config.steps"),
        (r#"{"steps": [10, 101]}"#, "config.steps[1]"),
        (r#"{"pause": "soon"}"#, "config.pause"),
        (r#"{"testers": {"cookie": ""}}"#, "config.testers.cookie"),
        (r#"{"chain": "yes"}"#, "config.chain"),
        (r#"{"analysis": [{"min": 1}]}"#, "config.analysis[0].metric"),
    ] {
        let d = run(
            decide,
            &InputBuilder::new(release()).config_json(config).build(),
        );
        assert_eq!(d.action, Action::Hold, "{config}");
        assert!(d.reason.contains(field), "{config}: {}", d.reason);
    }
}

#[test]
fn a_finished_release_holds() {
    let input = InputBuilder::new(release())
        .event(Event::Step)
        .phase(policy_sdk::Phase::Promoted)
        .build();
    assert_eq!(run(decide, &input).action, Action::Hold);
}

#[test]
fn step_past_the_end_stays_complete() {
    let input = InputBuilder::new(release())
        .event(Event::Tick)
        .stage(2, "2026-11-22T09:00:00Z")
        .build();
    let d = run(decide, &input);
    assert_eq!((d.action, d.stage.unwrap().index), (Action::Complete, 2));
}

/// What `canary_validate_config` answers, as `path: message` lines.
fn problems(config: &str) -> Vec<String> {
    let answer = policy_sdk::testing::validate_config(
        progressive::validate_config,
        &serde_json::from_str(config).unwrap(),
    );
    assert_eq!(answer.valid, answer.problems.is_empty(), "{config}");
    answer
        .problems
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

#[test]
fn validation_accepts_the_examples_and_names_every_problem() {
    for good in [
        "null",
        "{}",
        r#"{"steps": [30, 80, 100], "pause": "5m"}"#,
        r#"{"testers": {"cookie": "featureflag=on"}, "chain": true, "steps": [0, 100]}"#,
        r#"{"testers": {"header": {"name": "canary", "exact": "canary-tester"}}, "pause": 300}"#,
        r#"{"analysis": [{"metric": "success-rate", "min": 99}]}"#,
    ] {
        assert_eq!(problems(good), Vec::<String>::new(), "{good}");
    }
    assert_eq!(
        problems(
            r#"{"steps": [50, 20], "testers": {"cookie": "a=b", "header": {"name": "x", "exact": "y"}}, "analysis": [{"metric": "m", "min": 2, "max": 1}]}"#
        ),
        [
            "steps[1]: weight 20 must be greater than the previous step (50)",
            "testers: set either cookie or header, not both",
            "analysis[0].max: max 1 is below min 2",
        ]
    );
}

/// One duration grammar: what validation accepts the policy reads, what it refuses the policy
/// refuses with the same words.
#[test]
fn pause_means_the_same_in_validation_and_in_decisions() {
    let decide_with = |pause: &str| {
        let input = InputBuilder::new(release())
            .event(Event::Step)
            .stage(0, "2026-11-22T09:59:00Z")
            .now("2026-11-22T10:00:00Z")
            .config_json(&format!(r#"{{"pause": {pause}}}"#))
            .build();
        run(decide, &input)
    };
    for accepted in [r#""300""#, "300", r#""5m""#] {
        assert_eq!(
            problems(&format!(r#"{{"pause": {accepted}}}"#)),
            Vec::<String>::new()
        );
        let d = decide_with(accepted);
        assert_eq!(
            (d.action, d.reason.as_str()),
            (Action::Hold, "pausing: 240s of 300s left in stage 0"),
            "{accepted}"
        );
    }
    let refused =
        "invalid duration \"5min\": unknown unit \"min\" (units are ms, s, m, h and d, e.g. \
                   30s, 5m, 1h30m; a bare number is seconds)";
    assert_eq!(
        problems(r#"{"pause": "5min"}"#),
        [format!("pause: {refused}")]
    );
    let d = decide_with(r#""5min""#);
    assert_eq!(
        (d.action, d.reason),
        (
            Action::Hold,
            format!("invalid config: config.pause: {refused}")
        )
    );
}
