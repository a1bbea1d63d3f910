//! A real Prometheus for the metric-analysis tests: Debian's `/usr/bin/prometheus` on a free
//! 127.0.0.1 port, scraping every second an [`Exporter`] that serves Istio's standard metrics
//! (`istio_requests_total`, `istio_request_duration_milliseconds`) as the destination's proxy
//! reports them, for traffic the test sets and changes at any time.
//!
//! The exporter's counters are the integral of the configured rate over real elapsed time, so
//! `rate(istio_requests_total[…])` gives the configured requests per second.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Prometheus binary of Debian's `prometheus` package.
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// Istio's default buckets of `istio_request_duration_milliseconds` (ms; `+Inf` follows).
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The traffic one (namespace, service, version) receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Requests per second.
    pub rps: f64,
    /// The share of them answered 503 (0.0–1.0); the rest are 200.
    pub error_ratio: f64,
    /// Every request's duration in ms (counted in the first bucket `>=` it).
    pub latency_ms: f64,
}

impl Traffic {
    /// `rps` requests a second, `error_ratio` of them 503, each taking `latency_ms`.
    pub fn new(rps: f64, error_ratio: f64, latency_ms: f64) -> Traffic {
        Traffic {
            rps,
            error_ratio,
            latency_ms,
        }
    }
}

/// Counters of one series, integrated up to `at`.
#[derive(Debug, Clone)]
struct Counters {
    traffic: Traffic,
    at: Instant,
    /// Requests by response code ("200", "503").
    ok: f64,
    errors: f64,
    /// Non-cumulative bucket counts (index `BUCKETS.len()` is `+Inf`), per response code.
    buckets_ok: [f64; BUCKETS.len() + 1],
    buckets_err: [f64; BUCKETS.len() + 1],
    sum_ok: f64,
    sum_err: f64,
}

impl Counters {
    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let t = self.traffic;
        let n = t.rps.max(0.0) * dt;
        let errors = n * t.error_ratio.clamp(0.0, 1.0);
        let ok = n - errors;
        let bucket = BUCKETS
            .iter()
            .position(|le| *le >= t.latency_ms)
            .unwrap_or(BUCKETS.len());
        self.ok += ok;
        self.errors += errors;
        self.buckets_ok[bucket] += ok;
        self.buckets_err[bucket] += errors;
        self.sum_ok += ok * t.latency_ms;
        self.sum_err += errors * t.latency_ms;
    }
}

type Key = (String, String, String);

/// An HTTP server on 127.0.0.1 serving `/metrics` (Prometheus text format) with Istio's
/// standard metrics for the series set with [`Exporter::set`]. Stopped when dropped.
pub struct Exporter {
    addr: SocketAddr,
    series: Arc<Mutex<BTreeMap<Key, Counters>>>,
    stop: Arc<AtomicBool>,
}

impl Exporter {
    /// Starts serving on a free 127.0.0.1 port, with no series.
    pub fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the exporter");
        let addr = listener.local_addr().expect("exporter address");
        let series: Arc<Mutex<BTreeMap<Key, Counters>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, flag) = (series.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve_one(stream, &s));
            }
        });
        Exporter { addr, series, stop }
    }

    /// The listening address (scrape `http://ADDR/metrics`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, `namespace/service` version `version` receives `traffic` (counters so far
    /// are kept: they only grow).
    pub fn set(&self, namespace: &str, service: &str, version: &str, traffic: Traffic) {
        let now = Instant::now();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            namespace.to_string(),
            service.to_string(),
            version.to_string(),
        );
        let counters = series.entry(key).or_insert(Counters {
            traffic,
            at: now,
            ok: 0.0,
            errors: 0.0,
            buckets_ok: [0.0; BUCKETS.len() + 1],
            buckets_err: [0.0; BUCKETS.len() + 1],
            sum_ok: 0.0,
            sum_err: 0.0,
        });
        counters.advance(now);
        counters.traffic = traffic;
    }

    /// The `/metrics` text as of now.
    pub fn render(&self) -> String {
        render(&self.series)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn render(series: &Mutex<BTreeMap<Key, Counters>>) -> String {
    let now = Instant::now();
    let mut series = series.lock().unwrap_or_else(|e| e.into_inner());
    let mut requests = String::from("# TYPE istio_requests_total counter\n");
    let mut durations = String::from("# TYPE istio_request_duration_milliseconds histogram\n");
    for ((ns, service, version), c) in series.iter_mut() {
        c.advance(now);
        for (code, total, buckets, sum) in [
            ("200", c.ok, &c.buckets_ok, c.sum_ok),
            ("503", c.errors, &c.buckets_err, c.sum_err),
        ] {
            let labels = format!(
                "reporter=\"destination\",destination_service=\"{service}.{ns}.svc.cluster.local\",destination_service_name=\"{service}\",destination_service_namespace=\"{ns}\",destination_workload=\"{service}-{version}\",destination_workload_namespace=\"{ns}\",destination_version=\"{version}\",request_protocol=\"http\",response_code=\"{code}\""
            );
            requests.push_str(&format!("istio_requests_total{{{labels}}} {total}\n"));
            let mut cumulative = 0.0;
            for (i, count) in buckets.iter().enumerate() {
                cumulative += count;
                let le = BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                durations.push_str(&format!(
                    "istio_request_duration_milliseconds_bucket{{{labels},le=\"{le}\"}} {cumulative}\n"
                ));
            }
            durations.push_str(&format!(
                "istio_request_duration_milliseconds_sum{{{labels}}} {sum}\n"
            ));
            durations.push_str(&format!(
                "istio_request_duration_milliseconds_count{{{labels}}} {total}\n"
            ));
        }
    }
    requests + &durations
}

fn serve_one(stream: TcpStream, series: &Mutex<BTreeMap<Key, Counters>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        ("200 OK", render(series))
    } else {
        ("404 Not Found", "not found\n".to_string())
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A running Prometheus scraping one [`Exporter`] every second; killed when dropped.
pub struct Prometheus {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on a free 127.0.0.1 port (data in a temporary directory), scraping
    /// `http://EXPORTER/metrics` every second, and waits until it is ready. `None` (a skip; a
    /// failure under `CI=true`) when Debian's `prometheus` is not installed.
    #[track_caller]
    pub fn start(exporter: SocketAddr) -> Option<Prometheus> {
        kube_emulator::testing::require(
            Path::new(PROMETHEUS_BIN).is_file().then_some(()),
            "/usr/bin/prometheus (Debian's prometheus)",
        )?;
        let dir = tempfile::tempdir().expect("Prometheus directory");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: istio-mesh\n    static_configs:\n      - targets: ['{exporter}']\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write the config");
        std::fs::create_dir_all(dir.path().join("data")).expect("data directory");
        // A free port: bind, read, release (Prometheus binds it a moment later).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut prometheus = Prometheus {
            child: None,
            port,
            dir,
        };
        prometheus.spawn();
        Some(prometheus)
    }

    fn spawn(&mut self) {
        let root = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("prometheus.log"))
            .expect("log file");
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!(
                "--config.file={}",
                root.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                root.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            // Debian's console templates live in /etc; none are used, none are looked for.
            .arg(format!("--web.console.templates={}", root.display()))
            .arg(format!("--web.console.libraries={}", root.display()))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(self.port, "/-/ready") {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "prometheus exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready on 127.0.0.1:{} after 60s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` (e.g. to register as a Service's proxy target in the emulator).
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What Prometheus logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Kills Prometheus and waits for it (its port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data, and waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `GET /api/v1/query?query=…`: the `data` of a success, else the error (connection,
    /// HTTP status or Prometheus' `errorType: error`).
    pub fn query(&self, promql: &str) -> Result<Value, String> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        let (status, body) = http_get(self.port, &path).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {status}: not JSON ({e}): {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!(
                "HTTP {status}: {}: {}",
                v["errorType"].as_str().unwrap_or(""),
                v["error"].as_str().unwrap_or(&body)
            ));
        }
        Ok(v["data"].clone())
    }

    /// The one number a query gives: `None` for an empty vector; the first sample of a vector.
    pub fn query_value(&self, promql: &str) -> Result<Option<f64>, String> {
        Ok(value_of(&self.query(promql)?))
    }

    /// Polls the query until its `data` satisfies `predicate`, for at most `deadline`; returns
    /// that `data`. Panics (with the last answer and Prometheus' log) when time runs out.
    pub fn wait_for(
        &self,
        promql: &str,
        predicate: impl Fn(&Value) -> bool,
        deadline: Duration,
    ) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let answer = self.query(promql);
            if let Ok(data) = &answer {
                if predicate(data) {
                    return data.clone();
                }
            }
            assert!(
                Instant::now() < end,
                "{promql}: not satisfied after {deadline:?}; last answer {answer:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first sample's value of a query's `data` (vector or scalar), `None` when empty.
pub fn value_of(data: &Value) -> Option<f64> {
    let sample = match data["resultType"].as_str() {
        Some("vector") => data["result"].get(0)?.get("value")?.clone(),
        Some("scalar") => data["result"].clone(),
        _ => return None,
    };
    sample.get(1)?.as_str()?.parse().ok()
}

/// A predicate for [`Prometheus::wait_for`]: a vector with a finite first value.
pub fn has_value(data: &Value) -> bool {
    value_of(data).is_some_and(f64::is_finite)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain HTTP/1.0 GET to 127.0.0.1:port (no chunking, the body ends with the connection).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_integrate_the_rate_and_buckets_hold_the_latency() {
        let exporter = Exporter::start();
        exporter.set("shop", "web", "v2", Traffic::new(100.0, 0.1, 120.0));
        std::thread::sleep(Duration::from_millis(200));
        let text = exporter.render();
        let value = |prefix: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(prefix) || l.contains(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{prefix} in\n{text}"))
        };
        let errors = value("response_code=\"503\"} ");
        assert!((1.5..4.0).contains(&errors), "{errors}\n{text}");
        assert_eq!(value("response_code=\"503\",le=\"100\"}"), 0.0);
        assert_eq!(value("response_code=\"503\",le=\"250\"}"), errors);
        assert!(text.contains("destination_service_name=\"web\",destination_service_namespace=\"shop\",destination_workload=\"web-v2\",destination_workload_namespace=\"shop\",destination_version=\"v2\""));
        assert_eq!(urlencode("rate(x[5s])"), "rate%28x%5B5s%5D%29");
    }
}
