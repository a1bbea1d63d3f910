//! The analysis' queries: the built-in templates on Istio's standard metrics, and the variables a
//! query names (`{{service}}`, `{{version}}`, ...), replaced for each service and version.
//!
//! Pure text: the host that runs the queries is `crate::signals`.

use std::time::Duration;

use super::model::{AnalysisSpec, MetricSpec, MetricTemplate, PrometheusSpec};

/// The variables a query may name, in the order the error messages list them.
pub const VARIABLES: [&str; 5] = ["service", "namespace", "version", "role", "interval"];

/// Default `analysis.interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default `analysis.prometheus.timeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a query or a hook may be given.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Istio's request metrics of one workload version, as its own (destination) proxy reports them.
const SELECTOR: &str = r#"reporter="destination",destination_service_name="{{service}}",destination_workload_namespace="{{namespace}}",destination_version="{{version}}""#;

/// The PromQL of a built-in template, with its variables still in place.
pub fn template_query(template: MetricTemplate) -> String {
    let requests = format!("istio_requests_total{{{SELECTOR}}}");
    let quantile = |q: &str| {
        format!(
            "histogram_quantile({q}, sum(rate(istio_request_duration_milliseconds_bucket{{{SELECTOR}}}[{{{{interval}}}}])) by (le))"
        )
    };
    match template {
        MetricTemplate::RequestSuccessRate => {
            let ok = format!(
                "istio_requests_total{{{},response_code!~\"5..\"}}",
                SELECTOR
            );
            format!(
                "sum(rate({ok}[{{{{interval}}}}])) / sum(rate({requests}[{{{{interval}}}}])) * 100"
            )
        }
        MetricTemplate::RequestDurationP99 => quantile("0.99"),
        MetricTemplate::RequestDurationP90 => quantile("0.90"),
        MetricTemplate::RequestDurationP50 => quantile("0.50"),
        MetricTemplate::RequestRate => format!("sum(rate({requests}[{{{{interval}}}}]))"),
    }
}

/// The query of a metric (its template's, or its own), variables still in place.
pub fn metric_query(metric: &MetricSpec) -> String {
    match (&metric.template, &metric.query) {
        (Some(template), _) => template_query(*template),
        (None, Some(query)) => query.clone(),
        (None, None) => String::new(),
    }
}

/// The values of a query's variables for one service and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryVars<'a> {
    /// The service name.
    pub service: &'a str,
    /// The release namespace.
    pub namespace: &'a str,
    /// The version label's value.
    pub version: &'a str,
    /// `stable` or `canary`.
    pub role: &'a str,
    /// The rate window, as PromQL writes durations (`60s`).
    pub interval: &'a str,
}

/// A `{{name}}` a query names that is not one of [`VARIABLES`], or a `{{` never closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// An unknown variable.
    #[error("unknown variable {{{{{0}}}}} (known: {known})", known = VARIABLES.map(|v| format!("{{{{{v}}}}}")).join(", "))]
    Unknown(String),
    /// `{{` without `}}`.
    #[error("unclosed {{{{ at byte {0}")]
    Unclosed(usize),
}

/// `query` with every `{{variable}}` replaced. Values are escaped for a PromQL double-quoted
/// string (a version could hold `"` or `\`), since that is where the templates put them.
pub fn expand(query: &str, vars: &QueryVars<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(query.len() + 64);
    let mut rest = query;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or(TemplateError::Unclosed(offset + open))?;
        let name = after[..close].trim();
        let value = match name {
            "service" => vars.service,
            "namespace" => vars.namespace,
            "version" => vars.version,
            "role" => vars.role,
            "interval" => vars.interval,
            other => return Err(TemplateError::Unknown(other.to_string())),
        };
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `seconds` as a PromQL duration (`60s`).
pub fn promql_duration(seconds: u64) -> String {
    format!("{seconds}s")
}

impl AnalysisSpec {
    /// The rate window (validated specs only; the default otherwise).
    pub fn interval(&self) -> Duration {
        policy_sdk::time::duration_seconds(&self.interval)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_INTERVAL)
    }
}

impl PrometheusSpec {
    /// The per-query timeout (validated specs only; the default otherwise).
    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| policy_sdk::time::duration_millis(t).ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_QUERY_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> QueryVars<'static> {
        QueryVars {
            service: "web",
            namespace: "shop",
            version: "v\"2",
            role: "canary",
            interval: "60s",
        }
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(
            expand(
                r#"sum(rate(x{a="{{service}}",b="{{ version }}"}[{{interval}}])) # {{role}} {{namespace}}"#,
                &vars()
            ),
            Ok(r#"sum(rate(x{a="web",b="v\"2"}[60s])) # canary shop"#.to_string())
        );
    }

    #[test]
    fn refuses_unknown_and_unclosed_variables() {
        let unknown = expand("x{a=\"{{svc}}\"}", &vars()).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown variable {{svc}} (known: {{service}}, {{namespace}}, {{version}}, {{role}}, {{interval}})"
        );
        assert_eq!(
            expand("ab {{service", &vars()).unwrap_err().to_string(),
            "unclosed {{ at byte 3"
        );
    }

    #[test]
    fn templates_name_istio_standard_metrics() {
        let q = expand(
            &template_query(MetricTemplate::RequestSuccessRate),
            &QueryVars {
                version: "v2",
                ..vars()
            },
        )
        .unwrap();
        assert_eq!(
            q,
            "sum(rate(istio_requests_total{reporter=\"destination\",destination_service_name=\"web\",destination_workload_namespace=\"shop\",destination_version=\"v2\",response_code!~\"5..\"}[60s])) / sum(rate(istio_requests_total{reporter=\"destination\",destination_service_name=\"web\",destination_workload_namespace=\"shop\",destination_version=\"v2\"}[60s])) * 100"
        );
        let p99 = template_query(MetricTemplate::RequestDurationP99);
        assert_eq!(
            p99,
            "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_service_name=\"{{service}}\",destination_workload_namespace=\"{{namespace}}\",destination_version=\"{{version}}\"}[{{interval}}])) by (le))"
        );
    }
}
