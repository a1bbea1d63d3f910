//! Asking Prometheus: its HTTP API (`POST /api/v1/query`), directly or through the API server's
//! service proxy, and the reading of its answer as one number or none.

use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::cluster::Cluster;
use crate::spec::PrometheusSpec;

/// The most bytes of a Prometheus answer read: one number needs little, a query that returns a
/// large vector by mistake should not fill memory.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why a query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Prometheus could not be reached (the client's error, with its causes, is the source).
    #[error("cannot reach Prometheus at {target}")]
    Unreachable {
        /// The address or service.
        target: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer within the timeout.
    #[error("Prometheus at {target} did not answer within {after:?}")]
    Timeout {
        /// The address or service.
        target: String,
        /// The timeout.
        after: Duration,
    },
    /// Prometheus refused the query (`bad_data`: a PromQL syntax error, ...).
    #[error("Prometheus refused the query: {error_type}: {error}")]
    Refused {
        /// Prometheus' `errorType`.
        error_type: String,
        /// Prometheus' `error`.
        error: String,
    },
    /// An HTTP error without Prometheus' JSON (a proxy, the API server, an auth failure).
    #[error("Prometheus at {target} answered HTTP {status}: {body}")]
    Http {
        /// The address or service.
        target: String,
        /// HTTP status.
        status: u16,
        /// The start of the body, sanitised.
        body: String,
    },
    /// The answer is not one number.
    #[error("{0}")]
    Shape(String),
    /// A token or CA file could not be read.
    #[error("cannot read {what} {path}")]
    File {
        /// `bearerTokenFile` or `caFile`.
        what: &'static str,
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl QueryError {
    /// The error with its causes on one line (`cannot reach Prometheus at …: tcp connect
    /// error: Connection refused`), as the policy and the history receive it.
    pub fn with_causes(&self) -> String {
        crate::net::chain(self)
    }

    /// True when the query itself is wrong (not the connection): `start` refuses such a spec.
    pub fn is_bad_query(&self) -> bool {
        matches!(self, QueryError::Refused { .. } | QueryError::Shape(_))
    }
}

/// One query of a decision: the PromQL, and what it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The PromQL, variables replaced.
    pub promql: &'a str,
    /// The metric's name in the spec.
    pub metric: &'a str,
    /// The service measured.
    pub service: &'a str,
    /// Its version measured.
    pub version: &'a str,
    /// `stable` or `canary`.
    pub role: &'a str,
}

/// Something that answers the analysis' queries with one number or no data: Prometheus, or a
/// simulation (the demo's, which reads what a query measures rather than its PromQL).
pub trait MetricSource: Send + Sync {
    /// The value of `query` now: `Ok(None)` when there is no data (an empty vector, NaN, Inf).
    fn query<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Option<f64>, QueryError>>;
    /// Where the queries go, for messages (`http://prometheus:9090`).
    fn target(&self) -> String;
}

enum Transport {
    Direct {
        client: reqwest::Client,
        base: String,
        token: Option<String>,
    },
    Proxy {
        client: kube::Client,
        path: String,
    },
}

/// A Prometheus server.
pub struct Prometheus {
    transport: Transport,
    target: String,
    timeout: Duration,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Prometheus {
    /// The Prometheus `spec` names; `cluster` carries the service proxy's credentials.
    pub fn new(spec: &PrometheusSpec, cluster: &Cluster) -> Result<Prometheus, QueryError> {
        let timeout = spec.timeout();
        if let Some(service) = &spec.service {
            // Validated as namespace/name:port.
            let (namespace, name_port) = service.split_once('/').unwrap_or(("", service));
            return Ok(Prometheus {
                transport: Transport::Proxy {
                    client: cluster.proxy_client.clone(),
                    path: format!(
                        "/api/v1/namespaces/{namespace}/services/{name_port}/proxy/api/v1/query"
                    ),
                },
                target: format!("service {service} (through the API server's service proxy)"),
                timeout,
            });
        }
        let base = spec
            .address
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let token = match &spec.bearer_token_file {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| QueryError::File {
                        what: "bearerTokenFile",
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_string(),
            ),
        };
        let ca = match &spec.ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|source| QueryError::File {
                what: "caFile",
                path: path.clone(),
                source,
            })?),
        };
        let builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout);
        let client = crate::net::with_trust(builder, ca.as_deref())
            .build()
            .map_err(|e| QueryError::Unreachable {
                target: base.clone(),
                source: Box::new(e),
            })?;
        Ok(Prometheus {
            target: base.clone(),
            transport: Transport::Direct {
                client,
                base,
                token,
            },
            timeout,
        })
    }

    async fn send(&self, promql: &str) -> Result<(u16, Vec<u8>), QueryError> {
        let form = format!("query={}", form_encode(promql));
        let unreachable = |e: Box<dyn std::error::Error + Send + Sync>| QueryError::Unreachable {
            target: self.target.clone(),
            source: e,
        };
        match &self.transport {
            Transport::Direct {
                client,
                base,
                token,
            } => {
                let mut request = client
                    .post(format!("{base}/api/v1/query"))
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| unreachable(Box::new(e.without_url())))?;
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| unreachable(Box::new(e.without_url())))?;
                Ok((status, body.to_vec()))
            }
            Transport::Proxy { client, path } => {
                let request = http::Request::post(path.as_str())
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(kube::client::Body::from(form.into_bytes()))
                    .map_err(|e| unreachable(Box::new(e)))?;
                let response = client
                    .send(request)
                    .await
                    .map_err(|e| unreachable(Box::new(e)))?;
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| unreachable(Box::new(e)))?
                    .to_bytes();
                Ok((status, body.to_vec()))
            }
        }
    }
}

impl MetricSource for Prometheus {
    fn query<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
        Box::pin(async move {
            let (status, body) = tokio::time::timeout(self.timeout, self.send(query.promql))
                .await
                .map_err(|_| QueryError::Timeout {
                    target: self.target.clone(),
                    after: self.timeout,
                })??;
            read_answer(&self.target, status, &body)
        })
    }

    fn target(&self) -> String {
        self.target.clone()
    }
}

/// `application/x-www-form-urlencoded` of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    /// `Status` when the API server answered itself (the service proxy found no endpoint).
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// Prometheus' answer as one number: a scalar, or a vector of at most one series. No series,
/// NaN and ±Inf are no data (`None`), never 0.
pub fn read_answer(target: &str, status: u16, body: &[u8]) -> Result<Option<f64>, QueryError> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(QueryError::Shape(format!(
            "the answer is over {} bytes: the query returns more than one number; aggregate it \
             (sum, max, ...)",
            MAX_ANSWER_BYTES
        )));
    }
    let answer: Answer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(_) => {
            return Err(QueryError::Http {
                target: target.to_string(),
                status,
                body: snippet(body),
            })
        }
    };
    if answer.kind.as_deref() == Some("Status") {
        return Err(QueryError::Http {
            target: target.to_string(),
            status,
            body: sanitise(answer.message.as_deref().unwrap_or("")),
        });
    }
    if answer.status != "success" {
        return Err(QueryError::Refused {
            error_type: sanitise(answer.error_type.as_deref().unwrap_or("error")),
            error: sanitise(answer.error.as_deref().unwrap_or("")),
        });
    }
    let Some(data) = answer.data else {
        return Err(QueryError::Shape("the answer has no data".to_string()));
    };
    let value = match data.result_type.as_str() {
        "scalar" => data.result.get(1).cloned(),
        "vector" => {
            let series = data.result.as_array().map_or(0, Vec::len);
            match series {
                0 => return Ok(None),
                1 => data.result[0]["value"].get(1).cloned(),
                n => {
                    return Err(QueryError::Shape(format!(
                        "the query returned {n} series, not one number; aggregate it (sum, max, ...)"
                    )))
                }
            }
        }
        other => {
            return Err(QueryError::Shape(format!(
                "the query returned a {other}, not one number (an instant vector of one series, or a scalar)"
            )))
        }
    };
    // Prometheus writes sample values as strings ("0.5", "NaN", "+Inf").
    let number = value
        .as_ref()
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| QueryError::Shape("a sample without a numeric value".to_string()))?;
    Ok(number.is_finite().then_some(number))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    sanitise(text.trim())
}

/// Text from a server, fit for one terminal line: control characters become spaces, at most
/// 200 characters.
pub fn sanitise(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<Option<f64>, String> {
        read_answer("http://p", 200, body.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn one_number_or_none() {
        assert_eq!(
            read(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"99.5"]}]}}"#
            ),
            Ok(Some(99.5))
        );
        assert_eq!(
            read(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#),
            Ok(Some(2.0))
        );
        for empty in [
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#,
        ] {
            assert_eq!(read(empty), Ok(None), "{empty}");
        }
    }

    #[test]
    fn refusals_and_shapes_are_errors() {
        assert_eq!(
            read(
                r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \n"}"#
            ),
            Err(
                "Prometheus refused the query: bad_data: 1:5: parse error: unexpected  "
                    .to_string()
            )
        );
        assert_eq!(
            read(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#
            ),
            Err(
                "the query returned 2 series, not one number; aggregate it (sum, max, ...)"
                    .to_string()
            )
        );
        assert_eq!(
            read_answer("http://p", 502, b"<html>bad gateway</html>").map_err(|e| e.to_string()),
            Err("Prometheus at http://p answered HTTP 502: <html>bad gateway</html>".to_string())
        );
        // The API server's own answer through the service proxy.
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"prometheus\"","reason":"ServiceUnavailable","code":503}"#;
        assert_eq!(
            read_answer("service p", 503, status).map_err(|e| e.to_string()),
            Err("Prometheus at service p answered HTTP 503: no endpoints available for service \"prometheus\"".to_string())
        );
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form_encode("sum(x{a=\"b c\"})&"),
            "sum%28x%7Ba%3D%22b+c%22%7D%29%26"
        );
    }
}
