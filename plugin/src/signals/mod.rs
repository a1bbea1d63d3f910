//! Live signals: what the host measures before a decision and hands to the policy as
//! `input.metrics` and `input.gates`: the spec's analysis queries, run against Prometheus for
//! the stable and the canary version of every service, and the gating webhooks' answers. The
//! policy judges them; nothing here decides anything.

pub mod hooks;
pub mod prometheus;

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use policy_sdk::{MetricSample, VersionValues};

pub use prometheus::{MetricSource, Prometheus, Query, QueryError};

use crate::spec::analysis::{expand, metric_query, promql_duration, QueryVars};
use crate::spec::{AnalysisSpec, Release};

/// How many queries run at once: parallel enough that a multi-service release's metrics take
/// about one round trip, bounded so that a large one does not flood Prometheus.
pub const QUERY_CONCURRENCY: usize = 16;

/// A query that failed, for `start`, which refuses a spec whose queries do not all answer.
#[derive(Debug, thiserror::Error)]
#[error("spec.analysis.metrics[{index}] ({metric}), {role} of {service}")]
pub struct MetricFailure {
    /// Index of the metric in `spec.analysis.metrics`.
    pub index: usize,
    /// The metric's name.
    pub metric: String,
    /// The service queried.
    pub service: String,
    /// `stable` or `canary`.
    pub role: &'static str,
    /// Why.
    #[source]
    pub source: QueryError,
}

/// What one decision's queries found.
#[derive(Debug, Default)]
pub struct Measured {
    /// By metric name, as the policy receives them.
    pub metrics: BTreeMap<String, MetricSample>,
    /// Every query that failed, in spec order (the samples carry the first cause each).
    pub failures: Vec<MetricFailure>,
}

/// Runs every metric's query of `analysis` for the stable and canary version of every service
/// of `release`, [`QUERY_CONCURRENCY`] at a time. A one-service release's values are the
/// sample's `stable`/`canary`, a multi-service release's are per service. No data stays `None`;
/// a failed query leaves its value `None` and its cause in the sample's `error`.
pub async fn measure(
    source: &dyn MetricSource,
    analysis: &AnalysisSpec,
    release: &Release,
) -> Measured {
    let interval = promql_duration(analysis.interval().as_secs());
    let namespace = release.namespace();
    let mut queries = Vec::new();
    for (index, metric) in analysis.metrics.iter().enumerate() {
        let query = metric_query(metric);
        for service in &release.spec.services {
            for (role, version) in [
                ("stable", service.stable.version.as_str()),
                ("canary", service.canary.version.as_str()),
            ] {
                let vars = QueryVars {
                    service: &service.name,
                    namespace,
                    version,
                    role,
                    interval: &interval,
                };
                // Validated with the spec: every variable is known.
                let promql = expand(&query, &vars).unwrap_or_default();
                queries.push((index, service.name.as_str(), version, role, promql));
            }
        }
    }
    let answers: Vec<_> = stream::iter(queries.into_iter().map(
        |(index, service, version, role, promql)| async move {
            let query = Query {
                promql: &promql,
                metric: &analysis.metrics[index].name,
                service,
                version,
                role,
            };
            let answer = source.query(query).await;
            (index, service, role, answer)
        },
    ))
    .buffered(QUERY_CONCURRENCY)
    .collect()
    .await;
    let single = release.spec.services.len() == 1;
    let mut measured = Measured::default();
    for metric in &analysis.metrics {
        measured
            .metrics
            .insert(metric.name.clone(), MetricSample::default());
    }
    for (index, service, role, answer) in answers {
        let name = &analysis.metrics[index].name;
        let sample = measured.metrics.entry(name.clone()).or_default();
        let value = match answer {
            Ok(value) => value,
            Err(source) => {
                if sample.error.is_none() {
                    let cause = source.with_causes();
                    sample.error = Some(if single {
                        format!("{role}: {cause}")
                    } else {
                        format!("{role} of {service}: {cause}")
                    });
                }
                measured.failures.push(MetricFailure {
                    index,
                    metric: name.clone(),
                    service: service.to_string(),
                    role,
                    source,
                });
                None
            }
        };
        let slot = if single {
            match role {
                "stable" => &mut sample.stable,
                _ => &mut sample.canary,
            }
        } else {
            let values: &mut VersionValues =
                sample.services.entry(service.to_string()).or_default();
            match role {
                "stable" => &mut values.stable,
                _ => &mut values.canary,
            }
        };
        *slot = value;
    }
    measured
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;

    /// Answers from a table of query substrings, recording every query.
    struct Table {
        answers: Vec<(&'static str, Result<Option<f64>, &'static str>)>,
        asked: Mutex<Vec<String>>,
    }

    impl MetricSource for Table {
        fn query<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
            let promql = query.promql;
            self.asked.lock().unwrap().push(promql.to_string());
            let found = self
                .answers
                .iter()
                .find(|(needle, _)| promql.contains(needle))
                .map(|(_, a)| *a)
                .unwrap_or(Ok(None));
            Box::pin(async move { found.map_err(|e| QueryError::Shape(e.to_string())) })
        }
        fn target(&self) -> String {
            "table".into()
        }
    }

    fn release(services: &[&str]) -> Release {
        let mut yaml = String::from(
            "apiVersion: canary.kubectl.dev/v1alpha1\nkind: Release\nmetadata: {name: r, namespace: shop}\nspec:\n  services:\n",
        );
        for s in services {
            yaml.push_str(&format!(
                "    - {{name: {s}, stable: {{version: v1}}, canary: {{version: v2}}}}\n"
            ));
        }
        yaml.push_str(
            "  policy: {module: builtin:progressive}\n  analysis:\n    prometheus: http://p:9090\n    interval: 30s\n    metrics:\n      - {name: ok, query: 'ok{s=\"{{service}}\",v=\"{{version}}\"}[{{interval}}]'}\n      - {name: lat, query: 'lat{s=\"{{service}}\",v=\"{{version}}\"}'}\n",
        );
        crate::spec::parse_str(&yaml, "t").unwrap()
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn one_service_values_are_top_level_and_no_data_is_none() {
        let release = release(&["web"]);
        let table = Table {
            answers: vec![
                ("ok{s=\"web\",v=\"v1\"}[30s]", Ok(Some(99.9))),
                ("ok{s=\"web\",v=\"v2\"}[30s]", Ok(Some(97.0))),
            ],
            asked: Mutex::new(Vec::new()),
        };
        let m = block(measure(
            &table,
            release.spec.analysis.as_ref().unwrap(),
            &release,
        ));
        assert_eq!(
            m.metrics["ok"],
            MetricSample {
                stable: Some(99.9),
                canary: Some(97.0),
                ..Default::default()
            }
        );
        assert_eq!(
            m.metrics["lat"],
            MetricSample::default(),
            "no data is None, never 0"
        );
        assert!(m.failures.is_empty());
        assert_eq!(table.asked.lock().unwrap().len(), 4);
    }

    #[test]
    fn multi_service_values_are_per_service_and_failures_are_reported() {
        let release = release(&["web", "api"]);
        let table = Table {
            answers: vec![
                ("ok{s=\"api\",v=\"v2\"}", Err("boom")),
                ("ok{s=\"web\",v=\"v2\"}", Ok(Some(98.0))),
            ],
            asked: Mutex::new(Vec::new()),
        };
        let m = block(measure(
            &table,
            release.spec.analysis.as_ref().unwrap(),
            &release,
        ));
        let ok = &m.metrics["ok"];
        assert_eq!((ok.stable, ok.canary), (None, None));
        assert_eq!(ok.services["web"].canary, Some(98.0));
        assert_eq!(ok.services["api"].canary, None);
        assert_eq!(ok.error.as_deref(), Some("canary of api: boom"));
        assert_eq!(
            m.failures
                .iter()
                .map(|f| crate::net::chain(f))
                .collect::<Vec<_>>(),
            ["spec.analysis.metrics[0] (ok), canary of api: boom"]
        );
        assert_eq!(table.asked.lock().unwrap().len(), 8);
    }
}
