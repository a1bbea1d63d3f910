//! The runner's Prometheus metrics, in the text exposition format (version 0.0.4).
//!
//! A handful of series, kept in one mutex: the runner makes a few decisions a minute, so a
//! metrics library would buy nothing but dependencies.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Histogram bucket bounds, seconds: from a fast API call to a slow policy decision.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    releases: BTreeMap<String, u64>,
    decisions: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    decision_seconds: Histogram,
    api_seconds: BTreeMap<String, Histogram>,
    leader: bool,
    ready: bool,
}

/// The runner's metrics and health state.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace the count of driven releases by phase.
    pub fn set_releases(&self, by_phase: BTreeMap<String, u64>) {
        self.lock().releases = by_phase;
    }

    /// Count one decision (`advance`, `hold`, `complete`, `rollback`, `converged`) and its time.
    pub fn decision(&self, action: &str, seconds: f64) {
        let mut inner = self.lock();
        *inner.decisions.entry(action.to_string()).or_default() += 1;
        inner.decision_seconds.observe(seconds);
    }

    /// Count one error by kind (`conflict`, `policy`, `api`, `lease`, `watch`).
    pub fn error(&self, kind: &str) {
        *self.lock().errors.entry(kind.to_string()).or_default() += 1;
    }

    /// Record the latency of one API request, by verb (`get`, `watch`, `patch`, `update`, ...).
    pub fn api(&self, what: &str, seconds: f64) {
        self.lock()
            .api_seconds
            .entry(what.to_string())
            .or_default()
            .observe(seconds);
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.lock().leader = leader;
    }

    /// The release watch has listed once: `/readyz` answers 200 from then on.
    pub fn set_ready(&self) {
        self.lock().ready = true;
    }

    /// True once the release watch has listed.
    pub fn ready(&self) -> bool {
        self.lock().ready
    }

    /// The text exposition of every series.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let counter_family = |out: &mut String,
                              name: &str,
                              kind: &str,
                              help: &str,
                              label: &str,
                              values: &BTreeMap<String, u64>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (k, v) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
            }
        };
        counter_family(
            &mut out,
            "kubectl_canary_runner_releases",
            "gauge",
            "Releases handed to the runner, by phase.",
            "phase",
            &inner.releases,
        );
        counter_family(
            &mut out,
            "kubectl_canary_runner_decisions_total",
            "counter",
            "Decisions made, by action.",
            "action",
            &inner.decisions,
        );
        counter_family(
            &mut out,
            "kubectl_canary_runner_errors_total",
            "counter",
            "Failures, by kind.",
            "kind",
            &inner.errors,
        );
        let _ = writeln!(
            out,
            "# HELP kubectl_canary_runner_decision_duration_seconds Time of one decision: read, policy, write, apply."
        );
        let _ = writeln!(
            out,
            "# TYPE kubectl_canary_runner_decision_duration_seconds histogram"
        );
        inner.decision_seconds.write(
            &mut out,
            "kubectl_canary_runner_decision_duration_seconds",
            "",
        );
        let _ = writeln!(
            out,
            "# HELP kubectl_canary_runner_api_request_duration_seconds Latency of every API request the runner made (decisions, the release watch, the Lease), by verb."
        );
        let _ = writeln!(
            out,
            "# TYPE kubectl_canary_runner_api_request_duration_seconds histogram"
        );
        for (what, h) in &inner.api_seconds {
            h.write(
                &mut out,
                "kubectl_canary_runner_api_request_duration_seconds",
                &format!("verb=\"{what}\""),
            );
        }
        let _ = writeln!(
            out,
            "# HELP kubectl_canary_runner_leader 1 while this replica holds the Lease and acts."
        );
        let _ = writeln!(out, "# TYPE kubectl_canary_runner_leader gauge");
        let _ = writeln!(
            out,
            "kubectl_canary_runner_leader {}",
            u8::from(inner.leader)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.set_releases(BTreeMap::from([("Progressing".to_string(), 2)]));
        m.decision("advance", 0.02);
        m.error("conflict");
        m.set_leader(true);
        let text = m.render();
        for line in [
            "# TYPE kubectl_canary_runner_releases gauge",
            "kubectl_canary_runner_releases{phase=\"Progressing\"} 2",
            "kubectl_canary_runner_decisions_total{action=\"advance\"} 1",
            "kubectl_canary_runner_errors_total{kind=\"conflict\"} 1",
            "kubectl_canary_runner_decision_duration_seconds_bucket{le=\"0.01\"} 0",
            "kubectl_canary_runner_decision_duration_seconds_bucket{le=\"0.025\"} 1",
            "kubectl_canary_runner_decision_duration_seconds_bucket{le=\"+Inf\"} 1",
            "kubectl_canary_runner_decision_duration_seconds_count 1",
            "kubectl_canary_runner_leader 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
