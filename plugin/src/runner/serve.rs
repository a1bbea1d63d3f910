//! `/healthz`, `/readyz` and `/metrics` over HTTP/1, for the kubelet's probes and Prometheus.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;

/// Binds `addr` (port 0: any free port) and returns the bound address and the serving task,
/// which ends when `stop` turns true.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let metrics = metrics.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| answer(metrics.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        }
    });
    Ok((bound, task))
}

async fn answer<B>(
    metrics: Arc<Metrics>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (code, content_type, body) = match req.uri().path() {
        "/healthz" | "/livez" => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok".to_string(),
        ),
        "/readyz" if metrics.ready() => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok".to_string(),
        ),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "the release watch has not listed yet".to_string(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /healthz, /readyz or /metrics".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    Ok(response)
}
