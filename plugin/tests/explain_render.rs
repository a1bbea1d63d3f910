//! `kubectl canary render` and `explain` through the real binary.

mod support;

use std::path::{Path, PathBuf};

use support::{example, TestCommand};

/// The weather release (seed 003) rendered at a tester stage with a 90/10 default.
fn weather_objects(dir: &Path) -> PathBuf {
    let stage = dir.join("stage.json");
    std::fs::write(
        &stage,
        r#"{"action": "advance", "reason": "test", "stage": {"index": 1, "name": "testers",
            "routes": {
              "frontend": [
                {"match": [{"headers": {"cookie": {"regex": "^(.*?;)?(user=tester)(;.*)?$"}}}],
                 "to": [{"subset": "canary"}]},
                {"to": [{"subset": "stable", "weight": 90}, {"subset": "canary", "weight": 10}]}],
              "forecast": [
                {"match": [{"sourceLabels": {"version": "v2"}}], "to": [{"subset": "canary"}]},
                {"to": [{"subset": "stable"}]}]}}}"#,
    )
    .unwrap();
    let run = TestCommand::new(["render", "-f"])
        .arg(example("weather-testers.yaml"))
        .arg("--stage")
        .arg(&stage)
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, run.stdout.as_str()).unwrap();
    objects
}

#[test]
fn explain_prints_the_decisive_rule_and_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let objects = weather_objects(dir.path());
    let run = TestCommand::new(["explain", "-f"])
        .arg(&objects)
        .args([
            "--host",
            "weather.example.com",
            "--gateway",
            "istio-system/weather-gateway",
            "--cookie",
            "user=tester",
        ])
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    assert_eq!(
        run.stdout.as_str(),
        "request: GET weather.example.com/ via istio-system/weather-gateway\n\
         \x20 VirtualService weather/frontend-gateway (host \"*\")\n\
         \x20 rule #0 (tester-cookie) matched: header cookie ~ ^(.*?;)?(user=tester)(;.*)?$\n\
         result: route\n\
         \n\
         HOST       SUBSET   PERCENT   NOTE\n\
         frontend   v2       100%\n"
    );
}

#[test]
fn explain_json_has_outcome_rule_and_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let objects = weather_objects(dir.path());
    let run = TestCommand::new(["explain", "-o", "json", "--host", "frontend", "-f"])
        .arg(&objects)
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    let json = run.json();
    assert_eq!(json["outcome"], "route");
    assert_eq!(json["rule"], 1);
    assert_eq!(
        json["destinations"],
        serde_json::json!([
            {"host": "frontend", "subset": "v1", "percent": 90},
            {"host": "frontend", "subset": "v2", "percent": 10}
        ])
    );
    // Chaining: a v2 caller of forecast reaches forecast v2.
    let run = TestCommand::new(["explain", "-o", "json", "--host", "forecast"])
        .args(["--source-labels", "app=frontend,version=v2", "-f"])
        .arg(&objects)
        .run();
    assert_eq!(run.json()["destinations"][0]["subset"], "v2");
}

#[test]
fn explain_exits_1_for_404_and_503() {
    let dir = tempfile::tempdir().unwrap();
    let objects = weather_objects(dir.path());
    // Mesh callers of a host no VirtualService routes get Kubernetes' default routing: routed,
    // and said so plainly.
    let run = TestCommand::new(["explain", "-o", "json", "--host", "ratings", "-f"])
        .arg(&objects)
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    assert_eq!(run.json()["outcome"], "route");
    assert_eq!(
        run.json()["defaultRouting"],
        "mesh callers of ratings reach every pod of the Service round-robin (Kubernetes default routing)"
    );
    // Through a gateway no VirtualService is bound to, the same host is a 404.
    let run = TestCommand::new(["explain", "-o", "json", "--host", "ratings"])
        .args(["--gateway", "istio-system/other-gateway", "-f"])
        .arg(&objects)
        .run();
    assert_eq!(run.exit_code(), 1);
    assert_eq!(run.json()["outcome"], "404");
    assert_eq!(run.json()["rule"], serde_json::Value::Null);
    // One line, the cause once (it used to be doubled around ": ").
    assert_eq!(
        run.stderr,
        "error: request to ratings is not routed: 404 (no route)\n"
    );

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: b}\n\
         spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: b}\n\
         spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v3}}]}]}\n",
    )
    .unwrap();
    let run = TestCommand::new(["explain", "--host", "reviews", "-f"])
        .arg(&broken)
        .run();
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.stdout
            .as_str()
            .contains("result: 503 (no subset v3 in DestinationRule reviews)\n"),
        "{}",
        run.stdout.as_str()
    );
    let run = TestCommand::new(["explain", "-o", "json", "--host", "reviews", "-f"])
        .arg(&broken)
        .run();
    assert_eq!(run.json()["outcome"], "503");
    assert_eq!(run.json()["rule"], 0);
}

#[test]
fn explain_help_documents_the_exit_codes() {
    let run = TestCommand::new(["explain", "--help"]).run();
    assert_eq!(run.exit_code(), 0);
    assert!(
        run.stdout
            .as_str()
            .contains("Exit status: 0 when the request is routed"),
        "{}",
        run.stdout.as_str()
    );
}

#[test]
fn explain_refuses_bad_input_with_usage_or_failure_codes() {
    let run = TestCommand::new(["explain", "--host", "x", "-f", "/nonexistent.yaml"]).run();
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.stderr
            .as_str()
            .starts_with("error: cannot read /nonexistent.yaml"),
        "{}",
        run.stderr.as_str()
    );
    let run = TestCommand::new(["explain", "--host", "x", "-f", "y", "--header", "novalue"]).run();
    assert_eq!(run.exit_code(), 2);
}

#[test]
fn render_prints_the_baseline_by_default_and_json_as_a_list() {
    let run = TestCommand::new(["render", "-f"])
        .arg(example("bookinfo-reviews.yaml"))
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    let out = run.stdout.as_str();
    assert!(
        out.starts_with("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"),
        "{out}"
    );
    assert_eq!(out.matches("\n---\n").count(), 1);
    assert!(out.contains("  http:\n  - name: all-stable\n    route:\n    - destination:\n        host: reviews\n        subset: v1\n"), "{out}");

    let run = TestCommand::new(["render", "-o", "json", "-f"])
        .arg(example("voting-app.yaml"))
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    let list = run.json();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.last(),
        Some(&"PeerAuthentication"),
        "strict mTLS from the spec"
    );
    assert_eq!(
        list["items"][0]["spec"]["trafficPolicy"]["tls"]["mode"],
        "ISTIO_MUTUAL"
    );
}

#[test]
fn render_refuses_a_stage_that_would_503() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage.yaml");
    std::fs::write(
        &stage,
        "index: 3\nname: done\nroutes:\n  reviews:\n  - to: [{subset: stable}]\n",
    )
    .unwrap();
    let run = TestCommand::new(["render", "--subsets", "canary", "--stage"])
        .arg(&stage)
        .arg("-f")
        .arg(example("bookinfo-reviews.yaml"))
        .run();
    assert_eq!(run.exit_code(), 1);
    assert!(run.stderr.as_str().starts_with("error: cannot render stage 3 (\"done\") of release reviews-v3: routes.reviews[0].to[0].subset:"), "{}", run.stderr.as_str());
    std::fs::write(
        &stage,
        "index: 3\nname: done\nroutes:\n  reviews:\n  - to: [{subset: primary}]\n",
    )
    .unwrap();
    let run = TestCommand::new(["render", "--stage"])
        .arg(&stage)
        .arg("-f")
        .arg(example("bookinfo-reviews.yaml"))
        .run();
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.stderr
            .as_str()
            .contains("stage.yaml: routes.reviews[0].to[0].subset: unknown variant `primary`"),
        "{}",
        run.stderr.as_str()
    );
}

#[test]
fn render_json_list_feeds_explain_with_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let run = TestCommand::new(["render", "-o", "json", "--final", "-f"])
        .arg(example("frontend-backend.yaml"))
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    let objects = dir.path().join("objects.json");
    std::fs::write(&objects, run.stdout.as_str()).unwrap();
    let run = TestCommand::new(["explain", "-n", "default", "--host", "backend:8080", "-f"])
        .arg(&objects)
        .run();
    assert_eq!(run.exit_code(), 0, "{}", run.stderr.as_str());
    assert!(run.stdout.as_str().starts_with("request: GET backend:8080/ via mesh\n  VirtualService default/backend (host \"backend\")\n"), "{}", run.stdout.as_str());
    assert!(
        run.stdout.as_str().ends_with("backend   v2       100%\n"),
        "{}",
        run.stdout.as_str()
    );
}
