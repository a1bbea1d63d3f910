//! Metric analysis against a real Prometheus (Debian's), scraping Istio's standard metrics from
//! the test's exporter every second: a healthy canary promotes, a failing one rolls back with
//! the numbers, an outage holds and recovers, a bad query stops `start`, and the service-proxy
//! path goes through the emulated API server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use canary_e2e::prometheus::{has_value, Exporter, Prometheus, Traffic};
use canary_e2e::TestCluster;

const NS: &str = "shop";

/// A one-service release `web-v2` (web v1 → v2, steps 50 then 100, no pause) whose analysis
/// reaches Prometheus through `prometheus` (the YAML of `spec.analysis.prometheus`), with
/// `metrics` (YAML list items) and `config` (extra policy config lines), written to `dir`, with
/// its workloads created.
fn web_release(
    c: &TestCluster,
    dir: &Path,
    prometheus: &str,
    metrics: &str,
    config: &str,
) -> PathBuf {
    let text = format!(
        "apiVersion: canary.kubectl.dev/v1alpha1\nkind: Release\nmetadata: {{name: web-v2, namespace: {NS}}}\nspec:\n  services:\n    - {{name: web, stable: {{version: v1}}, canary: {{version: v2}}}}\n  policy:\n    module: builtin:progressive\n    config:\n      steps: [50, 100]\n{config}  analysis:\n    prometheus: {prometheus}\n    interval: 10s\n    metrics:\n{metrics}"
    );
    let path = dir.join("web.yaml");
    std::fs::write(&path, text).unwrap();
    // The workloads of web v1 and v2, whatever the analysis (which may be the bad input).
    let workloads = format!(
        "apiVersion: canary.kubectl.dev/v1alpha1\nkind: Release\nmetadata: {{name: web-v2, namespace: {NS}}}\nspec:\n  services:\n    - {{name: web, stable: {{version: v1}}, canary: {{version: v2}}}}\n  policy: {{module: builtin:progressive}}\n"
    );
    let spec = kubectl_canary::spec::parse_str(&workloads, "web").expect("the spec is valid");
    for object in kubectl_canary::demo::workloads::workloads_for(&spec) {
        c.emulator
            .apply_yaml(&serde_yaml::to_string(&object).unwrap())
            .unwrap();
    }
    path
}

const METRICS: &str = "      - {name: success-rate, template: request-success-rate}\n      - {name: latency-p99, template: request-duration-p99}\n";
const THRESHOLDS: &str =
    "      thresholds: [{metric: success-rate, min: 99}, {metric: latency-p99, max: 500}]\n";

/// An exporter with both versions of web at 50 rps, 20 ms, the canary failing `canary_errors`,
/// and a Prometheus that has scraped enough of it for a 10s rate of the canary.
fn mesh(canary_errors: f64) -> Option<(Exporter, Prometheus)> {
    let exporter = Exporter::start();
    exporter.set(NS, "web", "v1", Traffic::new(50.0, 0.0, 20.0));
    exporter.set(NS, "web", "v2", Traffic::new(50.0, canary_errors, 20.0));
    let prometheus = Prometheus::start(exporter.addr())?;
    wait_for_canary_data(&prometheus);
    Some((exporter, prometheus))
}

fn wait_for_canary_data(prometheus: &Prometheus) {
    prometheus.wait_for(
        "sum(rate(istio_requests_total{destination_service_name=\"web\",destination_version=\"v2\"}[10s]))",
        has_value,
        Duration::from_secs(60),
    );
}

fn record(c: &TestCluster) -> serde_json::Value {
    let cm = c.get("configmaps", NS, "canary-web-v2");
    serde_json::from_str(cm["data"]["state.json"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_promotes_and_the_history_keeps_the_numbers() {
    let Some(c) = TestCluster::start("analysis_healthy").await else {
        return;
    };
    let Some((_exporter, prometheus)) = mesh(0.0) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let address = format!("{{address: \"{}\"}}", prometheus.address());
    let spec = web_release(&c, dir.path(), &address, METRICS, THRESHOLDS);
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    let done = c.canary(["step", "web-v2", "-n", NS]).success();
    assert!(
        done.stdout.starts_with(
            "release web-v2 complete → stage 1 (100%), Promoted: metrics within thresholds; stage 0 -> 1 (100%)\n"
        ),
        "{}",
        done.stdout
    );
    let state = record(&c);
    let used = &state["history"][1]["metrics"];
    assert_eq!(used["success-rate"]["canary"], 100.0, "{used}");
    assert_eq!(used["success-rate"]["stable"], 100.0, "{used}");
    // Every request takes 20 ms: the p99 is interpolated inside Istio's (10, 25] bucket.
    let p99 = used["latency-p99"]["canary"].as_f64().unwrap();
    assert!((10.0..=25.0).contains(&p99), "{used}");
    let history = c.canary(["history", "web-v2", "-n", NS]).success();
    assert!(
        history.stdout.contains("latency-p99 ") && history.stdout.contains(", success-rate 100 "),
        "{}",
        history.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_errors_above_the_threshold_roll_back_with_the_numbers() {
    let Some(c) = TestCluster::start("analysis_errors").await else {
        return;
    };
    let Some((_exporter, prometheus)) = mesh(0.2) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let address = format!("{{address: \"{}\"}}", prometheus.address());
    let spec = web_release(&c, dir.path(), &address, METRICS, THRESHOLDS);
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    assert_eq!(
        c.default_weights(NS, "web"),
        [("v1".to_string(), 50), ("v2".to_string(), 50)]
    );
    let rolled = c.canary(["step", "web-v2", "-n", NS]).success();
    assert!(
        rolled.stdout.starts_with(
            "release web-v2 rollback → stage 0 (rollback), RolledBack: success-rate 80 < 99 (min): 1 failed check in a row, more than failureLimit 0; rolling back\n"
        ),
        "{}",
        rolled.stdout
    );
    assert_eq!(c.default_weights(NS, "web"), [("v1".to_string(), 100)]);
    let why = c.canary(["why", "web-v2", "-n", NS]).success();
    assert!(
        why.stdout
            .contains("\n  success-rate   -         100      80\n"),
        "{}",
        why.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stopped_mid_release_holds_and_progress_resumes_when_it_is_back() {
    let Some(c) = TestCluster::start("analysis_outage").await else {
        return;
    };
    let Some((_exporter, mut prometheus)) = mesh(0.0) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let address = format!("{{address: \"{}\"}}", prometheus.address());
    let spec = web_release(&c, dir.path(), &address, METRICS, THRESHOLDS);
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    prometheus.stop();
    let held = c.canary(["step", "web-v2", "-n", NS]).success();
    let prefix = format!(
        "release web-v2 hold → stage 0 (50%), Progressing: metric success-rate could not be measured: stable: cannot reach Prometheus at {}: ",
        prometheus.address()
    );
    assert!(held.stdout.starts_with(&prefix), "{}", held.stdout);
    assert!(
        held.stdout
            .ends_with("; holding: never advancing without data\n"),
        "{}",
        held.stdout
    );
    assert_eq!(
        c.default_weights(NS, "web"),
        [("v1".to_string(), 50), ("v2".to_string(), 50)]
    );
    // The hold is recorded with the cause, as the policy saw it.
    let state = record(&c);
    assert_eq!(state["history"][1]["action"], "hold");
    assert!(state["history"][1]["metrics"]["success-rate"]["error"]
        .as_str()
        .unwrap()
        .contains("cannot reach Prometheus"));
    prometheus.restart();
    wait_for_canary_data(&prometheus);
    let done = c.canary(["step", "web-v2", "-n", NS]).success();
    assert!(
        done.stdout
            .starts_with("release web-v2 complete → stage 1 (100%), Promoted: "),
        "{}",
        done.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promql_syntax_error_stops_start_naming_the_metric() {
    let Some(c) = TestCluster::start("analysis_bad_query").await else {
        return;
    };
    let exporter = Exporter::start();
    let Some(prometheus) = Prometheus::start(exporter.addr()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let address = format!("{{address: \"{}\"}}", prometheus.address());
    let metrics = format!(
        "{METRICS}      - {{name: errors, query: 'sum(rate(istio_requests_total{{destination_service_name=\"{{{{service}}}}\"}}[{{{{interval}}}}])'}}\n"
    );
    let spec = web_release(&c, dir.path(), &address, &metrics, "");
    let run = c.canary(["start", "-f", spec.to_str().unwrap()]).code(1);
    assert!(
        run.stderr.starts_with(
            "error: cannot start release \"web-v2\" (nothing applied): spec.analysis.metrics[2] (errors), stable of web: Prometheus refused the query: bad_data: invalid parameter \"query\": 1:"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .ends_with(": parse error: unclosed left parenthesis\n"),
        "{}",
        run.stderr
    );
    assert!(!c.exists("configmaps", NS, "canary-web-v2"));
    assert!(!c.exists("virtualservices", NS, "web"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_proxy_reaches_an_in_cluster_prometheus() {
    let Some(c) = TestCluster::start("analysis_proxy").await else {
        return;
    };
    let Some((_exporter, prometheus)) = mesh(0.0) else {
        return;
    };
    c.emulator
        .apply_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: monitoring}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: prometheus, namespace: monitoring}\nspec:\n  selector: {app: prometheus}\n  ports: [{name: web, port: 9090}]\n",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = web_release(
        &c,
        dir.path(),
        "{service: monitoring/prometheus:9090}",
        METRICS,
        THRESHOLDS,
    );
    // No target yet: the API server answers 503, and start says so.
    let refused = c.canary(["start", "-f", spec.to_str().unwrap()]).code(1);
    assert_eq!(
        refused.stderr,
        "error: cannot start release \"web-v2\" (nothing applied): spec.analysis.metrics[0] (success-rate), stable of web: Prometheus at service monitoring/prometheus:9090 (through the API server's service proxy) answered HTTP 503: no endpoints available for service \"prometheus\"\n"
    );
    c.emulator
        .register_service_proxy("monitoring", "prometheus", 9090, prometheus.socket_addr());
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    let done = c.canary(["step", "web-v2", "-n", NS]).success();
    assert!(
        done.stdout.starts_with(
            "release web-v2 complete → stage 1 (100%), Promoted: metrics within thresholds; stage 0 -> 1 (100%)\n"
        ),
        "{}",
        done.stdout
    );
    assert_eq!(
        record(&c)["history"][1]["metrics"]["success-rate"]["canary"],
        100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_analysis_input_names_the_field_and_applies_nothing() {
    let Some(c) = TestCluster::start("analysis_bad_input").await else {
        return;
    };
    let exporter = Exporter::start();
    let Some(prometheus) = Prometheus::start(exporter.addr()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let address = format!("{{address: \"{}\"}}", prometheus.address());
    let address = address.as_str();
    let cases = [
        (
            "      - {name: ok, template: request-sucess-rate}\n",
            "",
            "spec.analysis.metrics[0].template: unknown variant `request-sucess-rate`, expected one of `request-success-rate`, `request-duration-p99`, `request-duration-p90`, `request-duration-p50`, `request-rate`",
        ),
        (
            METRICS,
            "      thresholds: [{metric: errors, max: 1}]\n",
            ": refused to start: config.thresholds[0].metric: no metric \"errors\" in spec.analysis (its metrics: latency-p99, success-rate); holding (nothing applied)\n",
        ),
    ];
    for (metrics, config, expected) in cases {
        let spec = web_release(&c, dir.path(), address, metrics, config);
        let run = c.canary(["start", "-f", spec.to_str().unwrap()]).code(1);
        assert!(run.stderr.contains(expected), "{}", run.stderr);
        assert!(!c.exists("configmaps", NS, "canary-web-v2"));
    }
    // A bad interval.
    let spec = web_release(&c, dir.path(), address, METRICS, "");
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("interval: 10s", "interval: 10x");
    std::fs::write(&spec, text).unwrap();
    let run = c.canary(["start", "-f", spec.to_str().unwrap()]).code(1);
    assert!(
        run.stderr
            .contains("spec.analysis.interval: invalid duration \"10x\""),
        "{}",
        run.stderr
    );
    assert!(!c.exists("configmaps", NS, "canary-web-v2"));
}
