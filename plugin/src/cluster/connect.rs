//! Connecting to a cluster with kubectl's rules: `--kubeconfig` over `$KUBECONFIG` over
//! `~/.kube/config`, `--context` over the current context, `-n` over the context's namespace,
//! and `--request-timeout`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::ClusterError;

/// How to connect, straight from the global flags.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
    /// `--request-timeout` as given (`0` means none).
    pub request_timeout: Option<String>,
}

/// A connected cluster: the client and the namespace commands act in.
#[derive(Clone)]
pub struct Cluster {
    /// The kube-rs client.
    pub client: kube::Client,
    /// The namespace from `-n`, else the context's, else `default`.
    pub namespace: String,
    /// The same credentials without kube-rs' retries of 429/503/504: for the service proxy,
    /// where a 503 is the proxied server's answer (down, or no endpoints) and a retry would
    /// only spend the caller's timeout.
    pub proxy_client: kube::Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Build a client from the options. Nothing is sent to the server yet.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, ClusterError> {
        Self::connect_observed(opts, None).await
    }

    /// [`Cluster::connect`], telling `observer` about every request the client makes (a
    /// long-running process's API-latency metrics).
    pub async fn connect_observed(
        opts: &ConnectOptions,
        observer: Option<RequestObserver>,
    ) -> Result<Self, ClusterError> {
        let timeout = parse_request_timeout(opts.request_timeout.as_deref())?;
        let kube_opts = KubeConfigOptions {
            context: opts.context.clone(),
            cluster: None,
            user: None,
        };
        let path_label = opts.kubeconfig.as_ref().map(|p| p.display().to_string());
        let config_err = |message: String| ClusterError::Kubeconfig {
            path: path_label.clone(),
            message,
        };
        let mut config = match &opts.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|e| config_err(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube_opts)
                    .await
                    .map_err(|e| config_err(e.to_string()))?
            }
            // kubectl skips the files of $KUBECONFIG that do not exist and merges the rest
            // (the first to set a value wins); kube-rs refuses the whole list for one missing file.
            None if kubeconfig_env_has_several_or_missing() => {
                let kubeconfig = read_env_kubeconfigs().map_err(config_err)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube_opts)
                    .await
                    .map_err(|e| config_err(e.to_string()))?
            }
            None => kube::Config::from_kubeconfig(&kube_opts)
                .await
                .map_err(|e| match std::env::var_os("KUBECONFIG") {
                    None if matches!(e, kube::config::KubeconfigError::ReadConfig(..)) => {
                        config_err(
                            "no kubeconfig found ($KUBECONFIG is unset and ~/.kube/config \
                             cannot be read); pass --kubeconfig FILE"
                                .to_string(),
                        )
                    }
                    _ => config_err(e.to_string()),
                })?,
        };
        if let Some(timeout) = timeout {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            config.reset_reader_on_write = true;
        }
        // Name ourselves to the API server, as kubectl does: audit logs and the server's
        // per-client metrics then show who wrote what.
        config
            .headers
            .push((http::header::USER_AGENT, user_agent()));
        let namespace = opts
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client_err = |e: kube::Error| {
            config_err(match super::error::credential_failure(&e) {
                Some(failure) => {
                    format!("{failure} (check users[].user.exec of your kubeconfig context)")
                }
                None => e.to_string(),
            })
        };
        let mut no_retry = config.clone();
        no_retry.default_retry = false;
        let client = client_for(config, observer).map_err(client_err)?;
        let proxy_client = client_for(no_retry, None).map_err(client_err)?;
        Ok(Cluster {
            client,
            namespace,
            proxy_client,
        })
    }
}

/// Told about every request a client made: its verb, how long the answer took (to the
/// response headers; for a watch, until the stream opened) and the HTTP status (none when the
/// request failed below HTTP).
pub type RequestObserver = Arc<dyn Fn(&'static str, Duration, Option<u16>) + Send + Sync>;

/// A client for `config`, with `observer` timing each request when given.
pub fn client_for(
    config: kube::Config,
    observer: Option<RequestObserver>,
) -> Result<kube::Client, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(match observer {
        None => builder.build(),
        Some(observer) => builder.with_layer(&Timing { observer }).build(),
    })
}

/// The tower layer of [`client_for`].
struct Timing {
    observer: RequestObserver,
}

impl<S> tower_layer::Layer<S> for Timing {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            observer: self.observer.clone(),
        }
    }
}

/// One client's requests, timed.
#[derive(Clone)]
struct Timed<S> {
    inner: S,
    observer: RequestObserver,
}

/// The Kubernetes verb of a request, as kube-apiserver's metrics name them (without telling a
/// get from a list: both are reads of the path).
fn verb_of(request: &http::Request<kube::client::Body>) -> &'static str {
    let watch = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *request.method() {
        http::Method::GET if watch => "watch",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

impl<S, B> tower_service::Service<http::Request<kube::client::Body>> for Timed<S>
where
    S: tower_service::Service<http::Request<kube::client::Body>, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let verb = verb_of(&request);
        let observer = self.observer.clone();
        let started = std::time::Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            observer(
                verb,
                started.elapsed(),
                answer.as_ref().ok().map(|r| r.status().as_u16()),
            );
            answer
        })
    }
}

/// The entries of `$KUBECONFIG` (empty ones dropped), when it is set.
fn kubeconfig_env_paths() -> Option<Vec<PathBuf>> {
    let value = std::env::var_os("KUBECONFIG")?;
    let paths: Vec<PathBuf> = std::env::split_paths(&value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    (!paths.is_empty()).then_some(paths)
}

/// True when `$KUBECONFIG` lists several files or a file that does not exist: the cases where
/// kubectl's rule (skip the missing, merge the rest) differs from kube-rs's.
/// Who the operator is, for the record of `pause`, `resume` and `approve`: the user of the
/// kubeconfig context in use (`--context`, else the current one), as kubectl's
/// `config view --minify` names it; in a pod without a kubeconfig, its service account.
pub fn kubeconfig_user(opts: &ConnectOptions) -> String {
    let kubeconfig = match &opts.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok(),
        None if kubeconfig_env_has_several_or_missing() => read_env_kubeconfigs().ok(),
        None => Kubeconfig::read().ok(),
    };
    let from_kubeconfig = kubeconfig.and_then(|k| {
        let context = opts.context.clone().or(k.current_context.clone())?;
        k.contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone())
    });
    if let Some(user) = from_kubeconfig {
        return user;
    }
    let account =
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .ok()
            .map(|ns| format!("system:serviceaccount:{}", ns.trim()));
    account.unwrap_or_else(|| "unknown".to_string())
}

fn kubeconfig_env_has_several_or_missing() -> bool {
    kubeconfig_env_paths().is_some_and(|paths| paths.len() > 1 || !paths[0].exists())
}

/// Read and merge the files of `$KUBECONFIG` that exist, as kubectl does.
fn read_env_kubeconfigs() -> Result<Kubeconfig, String> {
    let paths = kubeconfig_env_paths().unwrap_or_default();
    let mut merged: Option<Kubeconfig> = None;
    for path in paths.iter().filter(|p| p.exists()) {
        let next = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
        merged = Some(match merged {
            None => next,
            Some(config) => config.merge(next).map_err(|e| e.to_string())?,
        });
    }
    merged.ok_or_else(|| {
        format!(
            "no kubeconfig found: none of the files of $KUBECONFIG exists ({}); pass --kubeconfig FILE",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Parse `--request-timeout`: `0` (or empty) means no timeout, otherwise a duration in the one
/// grammar kubectl-canary uses everywhere ([`policy_sdk::time`]: `30s`, `1m`, `1h30m`, `2d`; a
/// bare number counts as seconds). kubectl's own examples (`1s`, `2m`, `3h`) read the same.
pub fn parse_request_timeout(value: Option<&str>) -> Result<Option<Duration>, ClusterError> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let secs = policy_sdk::time::duration_seconds(raw).map_err(|e| ClusterError::InvalidFlag {
        flag: "--request-timeout",
        value: raw.to_string(),
        message: format!(
            "{} ({}; 0 for none)",
            e.reason,
            policy_sdk::time::DURATION_HINT
        ),
    })?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// `kubectl-canary/0.1.0 (linux/x86_64)`: the shape of kubectl's own User-Agent.
pub fn user_agent() -> http::HeaderValue {
    let text = format!(
        "kubectl-canary/{} ({}/{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    // Built only from the crate version and Rust's platform names: always visible ASCII.
    http::HeaderValue::from_str(&text).unwrap_or(http::HeaderValue::from_static("kubectl-canary"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeout_follows_kubectl() {
        assert_eq!(parse_request_timeout(None).unwrap(), None);
        assert_eq!(parse_request_timeout(Some("0")).unwrap(), None);
        assert_eq!(
            parse_request_timeout(Some("30")).unwrap(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_request_timeout(Some("1m30s")).unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_request_timeout(Some("2m")).unwrap(),
            Some(Duration::from_secs(120))
        );
        let err = parse_request_timeout(Some("soon")).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid --request-timeout \"soon\": unknown unit \"soon\" (units are ms, s, m, h and \
             d, e.g. 30s, 5m, 1h30m; a bare number is seconds; 0 for none)"
        );
    }
}
