//! The demo's Prometheus: Istio's request metrics simulated from the demo's own traffic, so a
//! metric gate can be shown with nothing outside the process.
//!
//! After each stage the demo tells it where its simulated requests landed ([`SimulatedMetrics::observe`]);
//! a query then answers from that load and an error model in which one canary fails under load.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::traffic::Landing;
use crate::signals::{MetricSource, Query, QueryError};

/// A canary that starts failing once it takes a given share of its service's traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Overload {
    /// The service.
    pub service: String,
    /// Its failing version.
    pub version: String,
    /// The share of the service's requests (0..=1) from which it fails.
    pub from_share: f64,
    /// The share of its requests answered 5xx then (0..=1).
    pub error_ratio: f64,
}

/// The share of requests any version answers 5xx otherwise.
const BASE_ERROR_RATIO: f64 = 0.001;

/// Requests per `(service, version)` of the last stage, and the error model.
#[derive(Debug)]
pub struct SimulatedMetrics {
    load: Mutex<BTreeMap<(String, String), u64>>,
    overload: Option<Overload>,
}

impl SimulatedMetrics {
    /// No traffic yet; `overload` is the one canary that fails under load, if any.
    pub fn new(overload: Option<Overload>) -> Self {
        SimulatedMetrics {
            load: Mutex::new(BTreeMap::new()),
            overload,
        }
    }

    /// Take the load of a stage: every hop of every simulated request.
    pub fn observe(&self, landing: &Landing) {
        let mut load = BTreeMap::new();
        for ((_, path), count) in landing {
            for hop in &path.hops {
                *load.entry(hop.clone()).or_insert(0) += count;
            }
        }
        *self.load.lock().unwrap_or_else(|e| e.into_inner()) = load;
    }

    /// The share of `service`'s requests that reached `version`, and how many that was.
    fn share(&self, service: &str, version: &str) -> (f64, u64) {
        let load = self.load.lock().unwrap_or_else(|e| e.into_inner());
        let total: u64 = load
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(_, n)| n)
            .sum();
        let mine = load
            .get(&(service.to_string(), version.to_string()))
            .copied()
            .unwrap_or(0);
        if total == 0 {
            (0.0, 0)
        } else {
            (mine as f64 / total as f64, mine)
        }
    }

    /// The success rate (percent) of `version` of `service` at the last stage's load; `None`
    /// (no data) when it got no request.
    pub fn success_rate(&self, service: &str, version: &str) -> Option<f64> {
        let (share, requests) = self.share(service, version);
        if requests == 0 {
            return None;
        }
        let failing = self
            .overload
            .as_ref()
            .is_some_and(|o| o.service == service && o.version == version && share >= o.from_share);
        let ratio = match &self.overload {
            Some(o) if failing => o.error_ratio,
            _ => BASE_ERROR_RATIO,
        };
        Some(((1.0 - ratio) * 100_000.0).round() / 1000.0)
    }
}

impl MetricSource for SimulatedMetrics {
    fn query<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
        // Only the success rate is simulated; any other query has no data.
        let value = if query.promql.contains("response_code!~\"5..\"") {
            self.success_rate(query.service, query.version)
        } else {
            None
        };
        Box::pin(async move { Ok(value) })
    }

    fn target(&self) -> String {
        "the demo's simulated Prometheus".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::traffic::Path;
    use super::*;

    #[test]
    fn the_canary_fails_once_it_takes_half_of_the_traffic() {
        let metrics = SimulatedMetrics::new(Some(Overload {
            service: "db".into(),
            version: "2.0".into(),
            from_share: 0.5,
            error_ratio: 0.07,
        }));
        let landing = |canary: u64| {
            let path = |v: &str| Path {
                hops: vec![("db".to_string(), v.to_string())],
                failure: None,
            };
            Landing::from([
                (("users".to_string(), path("1.0")), 100 - canary),
                (("users".to_string(), path("2.0")), canary),
            ])
        };
        assert_eq!(
            metrics.success_rate("db", "2.0"),
            None,
            "no traffic, no data"
        );
        metrics.observe(&landing(20));
        assert_eq!(metrics.success_rate("db", "2.0"), Some(99.9));
        metrics.observe(&landing(50));
        assert_eq!(metrics.success_rate("db", "2.0"), Some(93.0));
        assert_eq!(metrics.success_rate("db", "1.0"), Some(99.9));
    }
}
