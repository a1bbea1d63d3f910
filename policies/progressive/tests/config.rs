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
