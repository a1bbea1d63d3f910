//! One end-to-end test per seed scenario: the real kubectl drives `kubectl canary` against the
//! emulated API server, and every step is checked by reading the Istio objects back with
//! kubectl. Each test also checks, over the server's audit log, that no intermediate state ever
//! routed to a subset missing from its DestinationRule.

use canary_e2e::TestCluster;
use serde_json::Value;

/// Route a request with `kubectl canary explain` against the live objects of `namespace`.
fn explain(c: &TestCluster, namespace: &str, args: &[&str]) -> Value {
    let objects = c
        .kubectl
        .run([
            "get",
            "virtualservices,destinationrules",
            "-n",
            namespace,
            "-o",
            "yaml",
        ])
        .success();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, &objects.stdout).unwrap();
    let mut all = vec!["explain", "-f", file.to_str().unwrap(), "-o", "json"];
    all.extend_from_slice(args);
    c.canary(all).json()
}

fn subset_of(verdict: &Value) -> Vec<(String, f64)> {
    verdict["destinations"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|d| {
            (
                d["subset"].as_str().unwrap_or_default().to_string(),
                d["percent"].as_f64().unwrap_or_default(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(s, w)| (s.to_string(), *w)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_nginx_weights_takeover_and_old_version_removed() {
    let Some(c) = TestCluster::start("seed_001").await else {
        return;
    };
    let (spec, _) = c.example("nginx-weighted.yaml");
    let spec = spec.to_str().unwrap();

    let run = c.canary(["start", "-f", spec]).success();
    assert!(
        run.stdout.contains("release nginx-v2 advance"),
        "{}",
        run.stdout
    );
    // The canary Deployment was cloned from v1 with the new image.
    let v2 = c.get("deployment", "demo", "nginx-v2");
    assert_eq!(
        v2["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.15"
    );
    assert_eq!(v2["spec"]["selector"]["matchLabels"]["version"], "v2");
    assert_eq!(
        c.default_weights("demo", "nginx"),
        pairs(&[("v1", 70), ("v2", 30)])
    );
    let dr = c.get("destinationrule", "demo", "nginx");
    let subsets: Vec<&str> = dr["spec"]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(subsets, ["v1", "v2"]);

    // The tutorial's second split, set by hand: v1 20% / v2 80%.
    c.canary(["set-weight", "nginx-v2", "80", "-n", "demo"])
        .success();
    assert_eq!(
        c.default_weights("demo", "nginx"),
        pairs(&[("v1", 20), ("v2", 80)])
    );
    let state = c
        .canary(["get", "nginx-v2", "-n", "demo", "-o", "json"])
        .success()
        .json();
    assert_eq!(state["phase"], "Paused");
    assert_eq!(state["weightOverride"]["weight"], 80);

    // Take over all traffic, then remove the old version.
    c.canary(["promote", "nginx-v2", "-n", "demo"]).success();
    assert_eq!(c.default_weights("demo", "nginx"), pairs(&[("v2", 100)]));
    c.canary(["finalize", "nginx-v2", "-n", "demo"]).success();
    assert!(
        !c.exists("deployment", "demo", "nginx-v1"),
        "old Deployment still there"
    );
    let dr = c.get("destinationrule", "demo", "nginx");
    assert_eq!(dr["spec"]["subsets"].as_array().unwrap().len(), 1);
    assert_eq!(dr["spec"]["subsets"][0]["name"], "v2");

    // Undo restores the old Deployment and its subset.
    c.canary(["undo", "nginx-v2", "-n", "demo"]).success();
    assert!(c.exists("deployment", "demo", "nginx-v1"));
    let dr = c.get("destinationrule", "demo", "nginx");
    assert_eq!(dr["spec"]["subsets"].as_array().unwrap().len(), 2);

    let history = c
        .canary(["history", "nginx-v2", "-n", "demo", "-o", "json"])
        .success()
        .json();
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["advance", "advance", "complete", "complete", "complete"]
    );
    c.assert_no_dangling_subsets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_voting_testers_chaining_mtls_then_finalize() {
    let Some(c) = TestCluster::start("seed_000").await else {
        return;
    };
    let (spec, _) = c.example("voting-app.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();

    // Strict mTLS: clients speak ISTIO_MUTUAL, servers require it.
    let pa = c.get("peerauthentication", "voting", "default");
    assert_eq!(pa["spec"]["mtls"]["mode"], "STRICT");
    for svc in ["voting-app", "voting-analytics", "voting-storage"] {
        let dr = c.get("destinationrule", "voting", svc);
        assert_eq!(
            dr["spec"]["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL",
            "{svc}"
        );
    }

    // Stage 0: testers (cookie featureflag=on) reach 2.0 at the gateway; others stay on 1.x.
    let gw = [
        "--gateway",
        "voting/voting-app-gateway",
        "--host",
        "voting-app",
    ];
    let tester = explain(
        &c,
        "voting",
        &[&gw[..], &["--cookie", "featureflag=on"]].concat(),
    );
    assert_eq!(subset_of(&tester), [("v2-0".to_string(), 100.0)]);
    let user = explain(&c, "voting", &gw);
    assert_eq!(subset_of(&user), [("v1-0".to_string(), 100.0)]);
    // Chaining: a 2.0 caller reaches only 2.0 callees, a 1.x caller only 1.x.
    let from_v2 = explain(
        &c,
        "voting",
        &[
            "--host",
            "voting-analytics",
            "--source-labels",
            "app=voting-app,version=2.0",
        ],
    );
    assert_eq!(subset_of(&from_v2), [("v2-0".to_string(), 100.0)]);
    let from_v1 = explain(
        &c,
        "voting",
        &[
            "--host",
            "voting-storage",
            "--source-labels",
            "app=voting-analytics,version=1.1",
        ],
    );
    assert_eq!(subset_of(&from_v1), [("v1-0".to_string(), 100.0)]);

    // Everyone on 2.0, then finalize removes the 1.x subsets and Deployments.
    c.canary(["step", "voting-v2", "-n", "voting"]).success();
    let state = c
        .canary(["get", "voting-v2", "-n", "voting", "-o", "json"])
        .success()
        .json();
    assert_eq!(state["phase"], "Promoted");
    c.canary(["finalize", "voting-v2", "-n", "voting"])
        .success();
    for (svc, old) in [
        ("voting-app", "voting-app-v1-0"),
        ("voting-analytics", "voting-analytics-v1-1"),
        ("voting-storage", "voting-storage-v1-0"),
    ] {
        assert!(!c.exists("deployment", "voting", old), "{old} not deleted");
        let dr = c.get("destinationrule", "voting", svc);
        let names: Vec<&str> = dr["spec"]["subsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["v2-0"], "{svc}");
    }
    c.assert_no_dangling_subsets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_002_reviews_half_then_all() {
    let Some(c) = TestCluster::start("seed_002").await else {
        return;
    };
    let (spec, release) = c.example("bookinfo-reviews.yaml");
    let ns = release.namespace().to_string();
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    assert_eq!(
        c.default_weights(&ns, "reviews"),
        pairs(&[("v1", 50), ("v3", 50)])
    );
    c.canary(["step", "reviews-v3", "-n", &ns]).success();
    assert_eq!(c.default_weights(&ns, "reviews"), pairs(&[("v3", 100)]));
    c.assert_no_dangling_subsets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_weather_cookie_testers_and_chain_through_the_gateway() {
    let Some(c) = TestCluster::start("seed_003").await else {
        return;
    };
    let (spec, _) = c.example("weather-testers.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    let gw = [
        "--gateway",
        "istio-system/weather-gateway",
        "--host",
        "frontend",
    ];
    // The tester cookie in the middle of the header still matches.
    let tester = explain(
        &c,
        "weather",
        &[&gw[..], &["--header", "cookie=a=1; user=tester; b=2"]].concat(),
    );
    assert_eq!(subset_of(&tester), [("v2".to_string(), 100.0)]);
    let user = explain(&c, "weather", &gw);
    assert_eq!(subset_of(&user), [("v1".to_string(), 100.0)]);
    let chained = explain(
        &c,
        "weather",
        &[
            "--host",
            "forecast",
            "--source-labels",
            "app=frontend,version=v2",
        ],
    );
    assert_eq!(subset_of(&chained), [("v2".to_string(), 100.0)]);
    c.canary(["step", "weather-v2", "-n", "weather"]).success();
    assert_eq!(
        c.default_weights("weather", "frontend"),
        pairs(&[("v2", 100)])
    );
    c.assert_no_dangling_subsets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_header_testers_then_a_ramp_run_to_the_end() {
    let Some(c) = TestCluster::start("seed_004").await else {
        return;
    };
    let (spec, release) = c.example("frontend-backend.yaml");
    let ns = release.namespace().to_string();
    let name = release.name().to_string();
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    // Stage 0: only requests with `canary: canary-tester` reach v2, and v2 frontends call v2
    // backends.
    let tester = explain(
        &c,
        &ns,
        &["--host", "frontend", "--header", "canary=canary-tester"],
    );
    assert_eq!(subset_of(&tester), [("v2".to_string(), 100.0)]);
    let user = explain(&c, &ns, &["--host", "frontend"]);
    assert_eq!(subset_of(&user), [("v1".to_string(), 100.0)]);
    let chained = explain(
        &c,
        &ns,
        &[
            "--host",
            "backend",
            "--source-labels",
            "app=frontend,version=v2",
        ],
    );
    assert_eq!(subset_of(&chained), [("v2".to_string(), 100.0)]);

    // The 5m pauses would make `step` hold; `run --no-wait` advances the policy's clock instead
    // and goes 10% -> 50% -> 100%.
    let run = c
        .canary(["run", &name, "-n", &ns, "--no-wait", "--timeout", "60s"])
        .success();
    assert!(run.stdout.contains("complete"), "{}", run.stdout);
    assert_eq!(c.default_weights(&ns, "frontend"), pairs(&[("v2", 100)]));
    let history = c
        .canary(["history", &name, "-n", &ns, "-o", "json"])
        .success()
        .json();
    let stages: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage"].as_u64().unwrap())
        .collect();
    assert_eq!(stages, [0, 1, 2, 3], "{history}");
    c.assert_no_dangling_subsets();
}
