//! The Service proxy subresource, as kube-apiserver serves it:
//! `/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH?QUERY` is forwarded (method,
//! query string, body, headers but the caller's credentials) to where the Service's port
//! listens, and the upstream's status, headers and body come back.
//!
//! The emulator runs no pods, so where a Service's port "really" listens is registered by the
//! test ([`crate::Emulator::register_service_proxy`], `kube-emulator serve --service-proxy`). The
//! Service object itself must exist, and its `spec.ports` must name the port, as
//! kube-apiserver's `ResourceLocation` requires; refusals carry kube-apiserver's words.

use crate::error::ApiError;
use crate::server::{ResBody, Shared};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// How long the upstream may take to connect, and then to answer in full.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Registered targets: (namespace, service, port number) -> where it listens.
#[derive(Default)]
pub(crate) struct Targets(Mutex<HashMap<(String, String, u16), SocketAddr>>);

impl Targets {
    pub(crate) fn set(&self, namespace: &str, service: &str, port: u16, target: SocketAddr) {
        self.lock()
            .insert((namespace.to_string(), service.to_string(), port), target);
    }

    pub(crate) fn remove(&self, namespace: &str, service: &str, port: u16) -> Option<SocketAddr> {
        self.lock()
            .remove(&(namespace.to_string(), service.to_string(), port))
    }

    fn get(&self, namespace: &str, service: &str, port: u16) -> Option<SocketAddr> {
        self.lock()
            .get(&(namespace.to_string(), service.to_string(), port))
            .copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, u16), SocketAddr>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request for the proxy subresource, split from its raw (undecoded) path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyPath {
    pub namespace: String,
    /// `NAME`, `NAME:PORT` or `SCHEME:NAME:PORT`, as in the URL (the RBAC `name`).
    pub id: String,
    /// The path sent upstream, from its leading `/` (`/` when the URL ends at `proxy`).
    pub rest: String,
}

/// `Some` when `path` is `/api/v1/namespaces/NS/services/ID/proxy[/REST]`.
pub(crate) fn parse_path(path: &str) -> Option<ProxyPath> {
    let tail = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, tail) = tail.split_once('/')?;
    let tail = tail.strip_prefix("services/")?;
    let (id, tail) = tail.split_once('/')?;
    let rest = match tail.strip_prefix("proxy")? {
        "" => "/",
        r if r.starts_with('/') => r,
        _ => return None,
    };
    if namespace.is_empty() || id.is_empty() {
        return None;
    }
    Some(ProxyPath {
        namespace: crate::server::percent_decode_path(namespace),
        id: crate::server::percent_decode_path(id),
        rest: rest.to_string(),
    })
}

/// kube-apiserver's verb for a proxy request's method (RBAC `services/proxy`).
pub(crate) fn verb(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "proxy",
    }
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", message)
}

/// `SCHEME:NAME:PORT` split as Kubernetes' `SplitSchemeNamePort` splits it.
fn split_id(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Hop-by-hop headers, never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn forwardable(name: &header::HeaderName) -> bool {
    !HOP_BY_HOP.contains(&name.as_str())
}

/// Serves one proxy request.
pub(crate) async fn forward(
    shared: &Shared,
    method: &Method,
    proxy: &ProxyPath,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResBody>, ApiError> {
    let Some((scheme, name, port)) = split_id(&proxy.id) else {
        return Err(ApiError::bad_request(format!(
            "invalid service request {:?}",
            proxy.id
        )));
    };
    let service = {
        let c = shared.lock();
        let res = c
            .resource_for("v1", "Service")
            .ok_or_else(ApiError::page_not_found)?;
        c.get(&res, &proxy.namespace, name)?
    };
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let number = match port.parse::<u16>() {
        Ok(n) => ports
            .iter()
            .any(|p| p["port"].as_u64() == Some(u64::from(n)))
            .then_some(n)
            .ok_or_else(|| {
                unavailable(format!("no service port {n} found for service {name:?}"))
            })?,
        // A named port (or none: the Service's unnamed one).
        Err(_) => ports
            .iter()
            .find(|p| p["name"].as_str().unwrap_or("") == port)
            .and_then(|p| p["port"].as_u64())
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| {
                unavailable(format!("no endpoints available for service {:?}", proxy.id))
            })?,
    };
    let target = shared
        .service_proxies
        .get(&proxy.namespace, name, number)
        .ok_or_else(|| unavailable(format!("no endpoints available for service {name:?}")))?;
    if scheme == "https" {
        return Err(unavailable(format!(
            "error trying to reach service: the emulator proxies to http only, not to https://{target}"
        )));
    }
    let reach = |why: String| unavailable(format!("error trying to reach service: {why}"));
    let stream = match tokio::time::timeout(
        UPSTREAM_TIMEOUT,
        tokio::net::TcpStream::connect(target),
    )
    .await
    {
        Err(_) => return Err(reach(format!("dial tcp {target}: i/o timeout"))),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(reach(format!(
                "dial tcp {target}: connect: connection refused"
            )))
        }
        Ok(Err(e)) => return Err(reach(format!("dial tcp {target}: {e}"))),
        Ok(Ok(s)) => s,
    };
    let uri = match query {
        Some(q) => format!("{}?{q}", proxy.rest),
        None => proxy.rest.clone(),
    };
    let mut upstream = Request::builder()
        .method(method.clone())
        .uri(&uri)
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(format!("invalid proxy path {uri:?}: {e}")))?;
    for (k, v) in headers {
        // The API server's authenticator removes the caller's credentials before proxying.
        if forwardable(k) && k != header::AUTHORIZATION && k != header::HOST {
            upstream.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(&target.to_string()) {
        upstream.headers_mut().insert(header::HOST, host);
    }
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let response = sender
            .send_request(upstream)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((parts, body))
    };
    let (parts, body) = match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
        Err(_) => {
            return Err(reach(format!(
                "net/http: timeout awaiting response headers from {target}"
            )))
        }
        Ok(Err(e)) => return Err(reach(e)),
        Ok(Ok(answer)) => answer,
    };
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if forwardable(k) && k != header::CONTENT_LENGTH {
            r.headers_mut().append(k.clone(), v.clone());
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_split_as_kube_apiserver_splits_them() {
        let p = parse_path("/api/v1/namespaces/shop/services/web:9090/proxy/api/v1/query").unwrap();
        assert_eq!(
            p,
            ProxyPath {
                namespace: "shop".into(),
                id: "web:9090".into(),
                rest: "/api/v1/query".into()
            }
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/shop/services/http:web:9090/proxy")
                .unwrap()
                .rest,
            "/"
        );
        assert_eq!(parse_path("/api/v1/namespaces/shop/services/web"), None);
        assert_eq!(
            parse_path("/api/v1/namespaces/shop/services/web/proxyx"),
            None
        );
        assert_eq!(parse_path("/api/v1/namespaces/shop/pods/web/proxy/x"), None);
        assert_eq!(split_id("web"), Some(("", "web", "")));
        assert_eq!(split_id("web:9090"), Some(("", "web", "9090")));
        assert_eq!(
            split_id("https:web:metrics"),
            Some(("https", "web", "metrics"))
        );
        assert_eq!(split_id("ftp:web:21"), None);
        assert_eq!(split_id(":9090"), None);
        assert_eq!(verb(&Method::GET), "get");
        assert_eq!(verb(&Method::POST), "create");
    }
}
