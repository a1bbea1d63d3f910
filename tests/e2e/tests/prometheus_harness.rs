//! The Prometheus harness itself: Debian's Prometheus scraping the Istio-metrics exporter gives
//! back the configured traffic through PromQL (rates, error rates, p99 in the configured
//! latency's bucket), through the emulator's Service proxy too, and survives a stop and restart.

use canary_e2e::prometheus::{has_value, value_of, Exporter, Prometheus, Traffic};
use canary_e2e::TestCluster;
use std::time::Duration;

const CANARY: &str = "reporter=\"destination\",destination_service_name=\"web\",destination_workload_namespace=\"shop\",destination_version=\"v2\"";

fn errors_query() -> String {
    format!("sum(rate(istio_requests_total{{{CANARY},response_code=~\"5..\"}}[5s]))")
}

fn p99_query() -> String {
    format!("histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{{{CANARY}}}[5s])))")
}

#[test]
fn prometheus_measures_the_configured_traffic_and_survives_a_restart() {
    let exporter = Exporter::start();
    exporter.set("shop", "web", "v1", Traffic::new(50.0, 0.0, 20.0));
    exporter.set("shop", "web", "v2", Traffic::new(100.0, 0.1, 120.0));
    let Some(mut prometheus) = Prometheus::start(exporter.addr()) else {
        return;
    };
    // Wait until a 5s window holds enough scrapes for a steady rate (4+ samples).
    prometheus.wait_for(
        &format!("count_over_time(istio_requests_total{{{CANARY},response_code=\"503\"}}[5s])"),
        |d| value_of(d).is_some_and(|n| n >= 4.0),
        Duration::from_secs(30),
    );
    // A 5s window on a loaded 2-core machine may miss a scrape (rate() then extrapolates less
    // than the window): the rates must settle within the tolerance, not be hit by the first
    // query.
    let near = |want: f64, tolerance: f64| {
        move |d: &serde_json::Value| value_of(d).is_some_and(|v| (v - want).abs() < tolerance)
    };
    let errors =
        value_of(&prometheus.wait_for(&errors_query(), near(10.0, 1.0), Duration::from_secs(30)));
    eprintln!("canary 5xx rate: {errors:?}");
    let total = value_of(&prometheus.wait_for(
        &format!("sum(rate(istio_requests_total{{{CANARY}}}[5s]))"),
        near(100.0, 10.0),
        Duration::from_secs(30),
    ));
    eprintln!("canary rate: {total:?}");
    let p99 = prometheus
        .query_value(&p99_query())
        .expect("p99")
        .expect("a value");
    eprintln!("canary p99: {p99}");
    assert!(p99 > 100.0 && p99 <= 250.0, "p99 {p99}, want in (100, 250]");
    let stable_p99 = prometheus
        .query_value(&p99_query().replace("\"v2\"", "\"v1\""))
        .expect("p99")
        .expect("a value");
    assert!(
        stable_p99 > 10.0 && stable_p99 <= 25.0,
        "stable p99 {stable_p99}"
    );
    // No errors on the stable: an explicit 0, not an empty vector.
    let stable_errors = prometheus
        .query_value(&errors_query().replace("\"v2\"", "\"v1\""))
        .expect("stable error rate");
    assert_eq!(stable_errors, Some(0.0));
    // A changed setting shows in the next windows.
    exporter.set("shop", "web", "v2", Traffic::new(100.0, 0.5, 600.0));
    prometheus.wait_for(&errors_query(), near(50.0, 5.0), Duration::from_secs(30));

    // Stopped: queries fail; restarted on the same port with the same data: they answer again.
    let address = prometheus.address();
    prometheus.stop();
    let err = prometheus.query("up").expect_err("Prometheus is stopped");
    eprintln!("while stopped: {err}");
    assert!(err.contains("refused"), "{err}");
    prometheus.restart();
    assert_eq!(prometheus.address(), address);
    prometheus.wait_for(&errors_query(), has_value, Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reaches_prometheus_through_the_service_proxy() {
    let Some(cluster) =
        TestCluster::start_light("kubectl_reaches_prometheus_through_the_service_proxy").await
    else {
        return;
    };
    let exporter = Exporter::start();
    exporter.set("shop", "web", "v2", Traffic::new(100.0, 0.1, 120.0));
    let Some(prometheus) = Prometheus::start(exporter.addr()) else {
        return;
    };
    cluster.expose_service("istio-system", "prometheus", 9090, prometheus.socket_addr());
    let prometheus = tokio::task::spawn_blocking(move || {
        prometheus.wait_for(&errors_query(), has_value, Duration::from_secs(30));
        prometheus
    })
    .await
    .expect("wait");
    let query = "sum(istio_requests_total)".replace(' ', "");
    let run = tokio::task::spawn_blocking({
        let kubectl = cluster.kubectl.clone();
        move || {
            kubectl.run([
                "get",
                "--raw",
                &format!("/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query?query={query}"),
            ])
        }
    })
    .await
    .expect("kubectl")
    .success();
    let answer = run.json();
    assert_eq!(answer["status"], "success", "{answer}");
    let data = &answer["data"];
    assert!(value_of(data).is_some_and(|v| v > 0.0), "{answer}");
    drop(prometheus);
}
