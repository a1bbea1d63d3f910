//! The HTTP side: authentication, routing, content negotiation, faults, audit, watch streams.

use crate::audit::{AuditLog, AuditRecord, Snapshot};
use crate::cluster::{Cluster, PatchType, WatchEvent, WriteOptions};
use crate::discovery;
use crate::error::ApiError;
use crate::faults::{status_body, FaultAction, Faults};
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::validation::FieldValidation;
use crate::wire::{event_line, List, Served};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// The response body type.
pub(crate) type ResBody = BoxBody<Bytes, Infallible>;

const MAX_BODY: usize = 3 * 1024 * 1024;

/// State shared by every connection.
pub(crate) struct Shared {
    pub cluster: Mutex<Cluster>,
    pub token: String,
    pub audit: AuditLog,
    pub faults: Faults,
    pub minor: u32,
    pub addr: String,
    pub data_dir: Option<PathBuf>,
    pub record_states: bool,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Service-account tokens issued by TokenRequests (see `rbac`).
    pub tokens: crate::rbac::Tokens,
    /// Where each Service port the proxy subresource reaches listens (see `service_proxy`).
    pub service_proxies: crate::service_proxy::Targets,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A streaming body fed by a channel (watch responses).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn json_response(code: u16, v: &Value) -> Response<ResBody> {
    bytes_response(code, serde_json::to_vec(v).unwrap_or_default())
}

/// A response with a JSON `body`.
fn bytes_response(code: u16, body: Vec<u8>) -> Response<ResBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<ResBody> {
    let mut r = json_response(e.code, &e.status());
    if e.code == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path segment decoded (`%3A` is `:`).
pub(crate) fn percent_decode_path(s: &str) -> String {
    percent_decode(&s.replace('+', "%2B"))
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// What a path addresses.
enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    Discovery(String, String),
    OpenApiV2,
    OpenApiV3,
    OpenApiV3Group(String, String),
    Resource {
        res: Box<ResourceInfo>,
        ns: Option<String>,
        name: Option<String>,
        sub: String,
    },
    /// `/api/v1/namespaces/NS/services/ID/proxy/...` (see `service_proxy`).
    ServiceProxy(crate::service_proxy::ProxyPath),
    NotFound,
}

fn route(cluster: &Cluster, path: &str) -> Route {
    if let Some(proxy) = crate::service_proxy::parse_path(path) {
        return Route::ServiceProxy(proxy);
    }
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let resource = |group: &str, version: &str, rest: &[&str]| -> Route {
        let (ns, rest) = if rest.len() >= 3
            && rest[0] == "namespaces"
            && cluster.resource(group, version, rest[2]).is_some()
        {
            (Some(rest[1].to_string()), &rest[2..])
        } else {
            (None, rest)
        };
        let Some(res) = cluster.resource(group, version, rest[0]) else {
            return Route::NotFound;
        };
        if rest.len() > 3 || (ns.is_some() && !res.namespaced) {
            return Route::NotFound;
        }
        Route::Resource {
            res: Box::new(res),
            ns,
            name: rest.get(1).map(|n| n.to_string()),
            sub: rest.get(2).map(|n| n.to_string()).unwrap_or_default(),
        }
    };
    match s.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api"] => Route::Api,
        ["api", v] => Route::Discovery(String::new(), v.to_string()),
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::Discovery(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3,
        ["openapi", "v3", "api", v] => Route::OpenApiV3Group(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3Group(g.to_string(), v.to_string()),
        _ => Route::NotFound,
    }
}

fn verb_of(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match (method.as_str(), has_name) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

struct Info {
    verb: &'static str,
    resource: String,
    sub: String,
    ns: String,
    name: String,
}

/// Serves one request. `Err` drops the connection (injected fault).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, std::io::Error> {
    let method = req.method().clone();
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let credentials = req.headers().get(header::AUTHORIZATION);
    let anonymous = credentials.is_none();
    let bearer = credentials
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let (route, info, user, attrs) = {
        let c = shared.lock();
        let r = route(&c, &path);
        let info = match &r {
            Route::Resource { res, ns, name, sub } => Info {
                verb: verb_of(&method, name.is_some(), watch),
                resource: res.plural.clone(),
                sub: sub.clone(),
                ns: ns.clone().unwrap_or_default(),
                name: name.clone().unwrap_or_default(),
            },
            Route::ServiceProxy(p) => Info {
                verb: crate::service_proxy::verb(&method),
                resource: "services".to_string(),
                sub: "proxy".to_string(),
                ns: p.namespace.clone(),
                name: p.id.clone(),
            },
            _ => Info {
                verb: if method == Method::GET {
                    "get"
                } else {
                    "unknown"
                },
                resource: String::new(),
                sub: String::new(),
                ns: String::new(),
                name: String::new(),
            },
        };
        // Authentication and RBAC (see `rbac`): who sent it, and what it asks to do.
        let user = match bearer.as_deref() {
            Some(t) if t == shared.token => Some(crate::rbac::User::Admin),
            Some(t) => shared.tokens.authenticate(&c, t),
            None => None,
        };
        let attrs = crate::rbac::Attributes {
            verb: info.verb.to_string(),
            group: match &r {
                Route::Resource { res, .. } => res.group.clone(),
                _ => String::new(),
            },
            resource: info.resource.clone(),
            subresource: info.sub.clone(),
            namespace: info.ns.clone(),
            name: info.name.clone(),
            path: path.clone(),
        };
        (r, info, user, attrs)
    };
    let username = user.as_ref().map(|u| u.username()).unwrap_or_default();
    let record = |status: u16| {
        let state = if shared.record_states {
            let c = shared.lock();
            Snapshot {
                objects: c.snapshot(),
                resource_version: c.resource_version(),
            }
        } else {
            Snapshot {
                objects: Default::default(),
                resource_version: 0,
            }
        };
        shared.audit.push(AuditRecord {
            seq: 0,
            verb: info.verb.to_string(),
            method: method.to_string(),
            path: path_q.clone(),
            resource: info.resource.clone(),
            subresource: info.sub.clone(),
            namespace: info.ns.clone(),
            name: info.name.clone(),
            status,
            user_agent: user_agent.clone(),
            user: username.clone(),
            state,
        });
    };
    // kube-apiserver lets anyone (system:public-info-viewer) read /healthz, /livez, /readyz and
    // /version; credentials that are present but wrong are still refused.
    let public = matches!(route, Route::Health | Route::Version) && method == Method::GET;
    if user.is_none() && !(public && anonymous) {
        let r = error_response(&ApiError::unauthorized());
        record(401);
        return Ok(r);
    }
    // (A statement of its own: the cluster lock is released before `record` takes it again.)
    let authorized = match &user {
        Some(user) => crate::rbac::authorize(&shared.lock(), user, &attrs),
        None => Ok(()),
    };
    if let Err(e) = authorized {
        record(e.code);
        return Ok(error_response(&e));
    }
    for action in shared.faults.on_request(info.verb, &info.resource) {
        match action {
            FaultAction::Delay(d) => tokio::time::sleep(d).await,
            FaultAction::Gate(gate) => gate.pass().await,
            FaultAction::Drop => {
                record(0);
                return Err(std::io::Error::other("injected fault: connection dropped"));
            }
            FaultAction::Status(code) => {
                let e = status_body(code, &info.resource, &info.name);
                record(code);
                return Ok(error_response(&e));
            }
        }
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let raw_query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            record(413);
            return Ok(error_response(&ApiError::too_large()));
        }
    };
    // The proxy answers whatever the upstream answers, in its media type.
    if let Route::ServiceProxy(proxy) = &route {
        let r = crate::service_proxy::forward(
            &shared,
            &method,
            proxy,
            raw_query.as_deref(),
            &headers,
            body,
        )
        .await
        .unwrap_or_else(|e| error_response(&e));
        record(r.status().as_u16());
        return Ok(r);
    }
    // Content negotiation happens before the handler runs (health answers in plain text to
    // any Accept).
    if !matches!(route, Route::Health) {
        if let Err(e) = crate::decode::check_accept(&accept) {
            record(e.code);
            return Ok(error_response(&e));
        }
    }
    let special = user
        .as_ref()
        .and_then(|user| crate::rbac::special(&shared.lock(), &shared.tokens, user, &attrs, &body));
    if let Some(answer) = special {
        let r = answer.map_or_else(|e| error_response(&e), |(code, v)| json_response(code, &v));
        record(r.status().as_u16());
        return Ok(r);
    }
    let rv_before = shared.lock().resource_version();
    let response = match route {
        Route::Resource { res, ns, name, sub } if info.verb == "watch" => watch_response(
            &shared,
            &res,
            ns.as_deref(),
            name.as_deref(),
            &query,
            sub.is_empty(),
            crate::table::wants_table(&accept),
        ),
        Route::Resource { res, ns, name, sub } => {
            let req = ResourceRequest {
                res: *res,
                ns,
                name,
                sub,
                query: &query,
                content_type: &content_type,
                body: &body,
                user_agent: &user_agent,
                table: crate::table::wants_table(&accept),
            };
            resource_request(&shared, &method, info.verb, req)
        }
        Route::OpenApiV2 if method == Method::GET && accept.contains("protobuf") => {
            let doc = crate::openapi_pb::document(
                shared.lock().resources(),
                &format!("v1.{}.0", shared.minor),
            );
            let mut r = Response::new(Full::new(Bytes::from(doc)).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::openapi_pb::MEDIA_TYPE),
            );
            Ok(r)
        }
        Route::Api | Route::Apis
            if method == Method::GET && discovery::wants_aggregated(&accept) =>
        {
            let doc = discovery::aggregated(shared.lock().resources(), matches!(route, Route::Api));
            let mut r = json_response(200, &doc);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_MEDIA_TYPE),
            );
            Ok(r)
        }
        other => non_resource(&shared, &method, other),
    };
    let response = response.unwrap_or_else(|e| error_response(&e));
    if let Some(dir) = &shared.data_dir {
        let c = shared.lock();
        if c.resource_version() != rv_before {
            if let Err(e) = crate::persist::save(&c, dir) {
                eprintln!("kube-emulator: cannot save state to {}: {e}", dir.display());
            }
        }
    }
    record(response.status().as_u16());
    Ok(response)
}

fn non_resource(
    shared: &Shared,
    method: &Method,
    route: Route,
) -> Result<Response<ResBody>, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    let c = shared.lock();
    let res = c.resources();
    let doc = match route {
        Route::Version => discovery::version(shared.minor),
        Route::Health => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(r);
        }
        Route::Api => discovery::core_versions(&shared.addr),
        Route::Apis => discovery::group_list(res),
        Route::Group(g) => discovery::group(res, &g).ok_or_else(ApiError::page_not_found)?,
        Route::Discovery(g, v) => {
            discovery::resource_list(res, &g, &v).ok_or_else(ApiError::page_not_found)?
        }
        Route::OpenApiV2 => discovery::openapi_v2(res),
        Route::OpenApiV3 => discovery::openapi_v3_index(res, c.resource_version()),
        Route::OpenApiV3Group(g, v) => {
            discovery::openapi_v3_group(res, &g, &v).ok_or_else(ApiError::page_not_found)?
        }
        Route::NotFound | Route::Resource { .. } | Route::ServiceProxy(_) => {
            return Err(ApiError::page_not_found())
        }
    };
    Ok(json_response(200, &doc))
}

struct ResourceRequest<'a> {
    res: ResourceInfo,
    ns: Option<String>,
    name: Option<String>,
    sub: String,
    query: &'a HashMap<String, String>,
    content_type: &'a str,
    body: &'a Bytes,
    user_agent: &'a str,
    table: bool,
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The media types of create and update bodies (protobuf only for `protobuf::KINDS`).
const BODY_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    crate::protobuf::MEDIA_TYPE,
];

/// The media types of patch bodies.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// The media types of patches to the scale subresource.
const SCALE_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn parse_object(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    match media_type(ct).as_str() {
        "application/json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("json parse error: {e}"))),
        "application/yaml" => {
            crate::decode::check_yaml_depth(body)?;
            serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("yaml parse error: {e}")))
        }
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode(body),
        other => Err(ApiError::unsupported_media_type(other, BODY_TYPES)),
    }
}

/// Duplicate fields of a JSON create/update body, as kube-apiserver's strict decoder sees them:
/// an error with `fieldValidation=Strict`, warnings with `Warn` (the default), nothing with
/// `Ignore`.
fn duplicates(
    res: &ResourceInfo,
    content_type: &str,
    body: &[u8],
    opts: &WriteOptions,
) -> Result<Vec<String>, ApiError> {
    if media_type(content_type) != "application/json"
        || opts.field_validation == FieldValidation::Ignore
    {
        return Ok(vec![]);
    }
    let found = crate::decode::duplicate_fields(body);
    if opts.field_validation == FieldValidation::Strict && !found.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            found.join(", "),
            kind = res.kind,
            version = res.version
        )));
    }
    Ok(found)
}

fn warning_headers(r: &mut Response<ResBody>, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
}

fn resource_request(
    shared: &Shared,
    method: &Method,
    verb: &str,
    r: ResourceRequest<'_>,
) -> Result<Response<ResBody>, ApiError> {
    let res = &r.res;
    let ns = r.ns.clone().unwrap_or_default();
    if res.namespaced && r.ns.is_none() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::page_not_found());
    }
    if r.sub == "scale" && res.kind == "Deployment" && r.name.is_some() {
        return scale_request(shared, verb, &r);
    }
    if !r.sub.is_empty() && (r.sub != "status" || !res.status_subresource || r.name.is_none()) {
        return Err(ApiError::page_not_found());
    }
    let q = r.query;
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            )))
        }
    };
    let ua_manager = r
        .user_agent
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(128)
        .collect::<String>();
    let mut opts = WriteOptions {
        dry_run,
        manager: q.get("fieldManager").cloned().unwrap_or(ua_manager),
        field_validation: FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?,
        force: matches!(q.get("force").map(String::as_str), Some("true" | "1")),
    };
    let name = r.name.clone().unwrap_or_default();
    let mut c = shared.lock();
    let check_gvk = |obj: &Value| -> Result<(), ApiError> {
        if let Some(av) = obj.get("apiVersion").and_then(|v| v.as_str()) {
            if av != res.api_version() {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    res.api_version()
                )));
            }
        }
        if let Some(k) = obj.get("kind").and_then(|v| v.as_str()) {
            if k != res.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.kind
                )));
            }
        }
        Ok(())
    };
    let (code, value, warnings) = match verb {
        "get" if r.table => {
            let obj = c.get(res, &ns, &name)?;
            let include = q
                .get("includeObject")
                .map(String::as_str)
                .unwrap_or("Metadata");
            (
                200,
                crate::table::table(res, &[obj], c.resource_version(), include),
                vec![],
            )
        }
        "get" => (200, c.get(res, &ns, &name)?, vec![]),
        "list" => {
            crate::decode::check_continue(q.get("continue").map(String::as_str).unwrap_or(""))?;
            let labels =
                LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
            let fields = FieldSelector::parse(
                q.get("fieldSelector").map(String::as_str).unwrap_or(""),
                &res.kind,
            )?;
            // The stored objects (and their serialised forms) are shared: take them, unlock,
            // then render.
            if r.table {
                let (items, rv) = c.list_stored(res, r.ns.as_deref(), &labels, &fields);
                drop(c);
                let include = q
                    .get("includeObject")
                    .map(String::as_str)
                    .unwrap_or("Metadata");
                let t = crate::table::table(res, &items, rv, include);
                return Ok(json_response(200, &t));
            }
            let (items, rv) = c.list_json(res, r.ns.as_deref(), &labels, &fields);
            drop(c);
            return Ok(bytes_response(200, List::new(res, &items, rv).to_vec()));
        }
        "create" => {
            if r.name.is_some() {
                return Err(ApiError::method_not_allowed("POST"));
            }
            let obj = parse_object(r.content_type, r.body)?;
            check_gvk(&obj)?;
            let duplicates = duplicates(res, r.content_type, r.body, &opts)?;
            let (v, w) = c.create(res, &ns, obj, &opts)?;
            (201, v, [duplicates, w].concat())
        }
        "update" => {
            let obj = parse_object(r.content_type, r.body)?;
            check_gvk(&obj)?;
            let duplicates = duplicates(res, r.content_type, r.body, &opts)?;
            let (v, w) = c.update(res, &ns, &name, obj, &r.sub, &opts)?;
            (200, v, [duplicates, w].concat())
        }
        "patch" => {
            let kind = match media_type(r.content_type).as_str() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchType::Apply,
                other => return Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
            };
            let body: Value = if kind == PatchType::Apply {
                opts.manager = q.get("fieldManager").cloned().unwrap_or_default();
                crate::decode::check_yaml_depth(r.body)?;
                serde_yaml::from_slice(r.body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
            } else {
                serde_json::from_slice(r.body)
                    .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))?
            };
            let existed = c.get(res, &ns, &name).is_ok();
            let (v, w) = c.patch(res, &ns, &name, kind, &body, &r.sub, &opts)?;
            (if existed { 200 } else { 201 }, v, w)
        }
        "delete" => {
            let opts_body: Value = if r.body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(r.body).unwrap_or(json!({}))
            };
            if opts_body["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"))
            {
                opts.dry_run = true;
            }
            let propagation = q
                .get("propagationPolicy")
                .cloned()
                .or_else(|| opts_body["propagationPolicy"].as_str().map(String::from));
            if let Some(p) = &propagation {
                if !matches!(p.as_str(), "Background" | "Foreground" | "Orphan") {
                    return Err(ApiError::bad_request(format!(
                        "unsupported propagationPolicy {p:?}"
                    )));
                }
            }
            (
                200,
                c.delete(res, &ns, &name, propagation.as_deref(), &opts)?,
                vec![],
            )
        }
        "deletecollection" => {
            let labels =
                LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
            let fields = FieldSelector::parse(
                q.get("fieldSelector").map(String::as_str).unwrap_or(""),
                &res.kind,
            )?;
            let (items, _) = c.list(res, r.ns.as_deref(), &labels, &fields);
            let mut deleted = vec![];
            for i in items {
                let (n, inner_ns) = (
                    i["metadata"]["name"].as_str().unwrap_or(""),
                    i["metadata"]["namespace"].as_str().unwrap_or(""),
                );
                deleted.push(c.delete(
                    res,
                    inner_ns,
                    n,
                    q.get("propagationPolicy").map(String::as_str),
                    &opts,
                )?);
            }
            let doc = json!({"apiVersion": res.api_version(), "kind": format!("{}List", res.kind),
                             "metadata": {"resourceVersion": c.resource_version().to_string()}, "items": deleted});
            (200, doc, vec![])
        }
        _ => return Err(ApiError::method_not_allowed(method.as_str())),
    };
    let mut resp = json_response(code, &value);
    warning_headers(&mut resp, &warnings);
    Ok(resp)
}

/// The `autoscaling/v1` `Scale` view of a Deployment.
fn scale_of(deploy: &Value) -> Value {
    let selector: Vec<String> = deploy["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let md = &deploy["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
                     "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"]},
        "spec": {"replicas": deploy["spec"]["replicas"]},
        "status": {"replicas": deploy["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")},
    })
}

/// `deployments/<name>/scale`: get, update and patch the replica count.
fn scale_request(
    shared: &Shared,
    verb: &str,
    r: &ResourceRequest<'_>,
) -> Result<Response<ResBody>, ApiError> {
    let (res, ns, name) = (
        &r.res,
        r.ns.clone().unwrap_or_default(),
        r.name.clone().unwrap_or_default(),
    );
    let mut c = shared.lock();
    let current = c.get(res, &ns, &name)?;
    let mut scale = scale_of(&current);
    let new_scale = match verb {
        "get" => return Ok(json_response(200, &scale)),
        "update" => parse_object(r.content_type, r.body)?,
        "patch" => {
            let body: Value = serde_json::from_slice(r.body)
                .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))?;
            match media_type(r.content_type).as_str() {
                "application/json-patch+json" => crate::patch::json_patch(&mut scale, &body)?,
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    crate::patch::merge_patch(&mut scale, &body)
                }
                other => return Err(ApiError::unsupported_media_type(other, SCALE_PATCH_TYPES)),
            }
            scale
        }
        _ => return Err(ApiError::method_not_allowed(verb)),
    };
    if let Some(rv) = new_scale["metadata"]["resourceVersion"].as_str() {
        if rv
            != current["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
        {
            return Err(ApiError::conflict(&res.group, &res.plural, &name));
        }
    }
    let Some(replicas) = new_scale["spec"]["replicas"].as_i64().filter(|n| *n >= 0) else {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            &name,
            &[(
                "spec.replicas".into(),
                "FieldValueInvalid",
                "Invalid value: must be greater than or equal to 0".into(),
            )],
        ));
    };
    let q = r.query;
    let opts = WriteOptions {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        manager: q
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| r.user_agent.split('/').next().unwrap_or("").to_string()),
        ..Default::default()
    };
    let (updated, _) = c.patch(
        res,
        &ns,
        &name,
        PatchType::Merge,
        &json!({"spec": {"replicas": replicas}}),
        "",
        &opts,
    )?;
    Ok(json_response(200, &scale_of(&updated)))
}

fn watch_response(
    shared: &Arc<Shared>,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: Option<&str>,
    q: &HashMap<String, String>,
    main: bool,
    table: bool,
) -> Result<Response<ResBody>, ApiError> {
    let include = q
        .get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".into());
    // Renders a stored object (shared, not copied) as an event line.
    let render = {
        let res = res.clone();
        let api_version = res.api_version();
        move |kind: &str, obj: &Value| -> Bytes {
            if table {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                event_line(
                    kind,
                    &crate::table::table(&res, std::slice::from_ref(obj), rv, &include),
                )
            } else {
                event_line(kind, &Served::new(obj, &api_version, &res.kind))
            }
        }
    };
    if !main {
        return Err(ApiError::page_not_found());
    }
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let mut field_sel = q.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(n) = name {
        field_sel = if field_sel.is_empty() {
            format!("metadata.name={n}")
        } else {
            format!("{field_sel},metadata.name={n}")
        };
    }
    let fields = FieldSelector::parse(&field_sel, &res.kind)?;
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let matches = {
        let (res, ns, labels, fields) = (
            res.clone(),
            ns.map(String::from),
            labels.clone(),
            fields.clone(),
        );
        move |e: &WatchEvent| {
            e.key.group == res.group
                && e.key.plural == res.plural
                && ns.as_deref().is_none_or(|n| n == e.key.namespace)
                && labels.matches(&e.object)
                && fields.matches(&e.object)
        }
    };
    // The initial events: stored objects taken under the lock, rendered after it.
    let (initial, sub, current_rv) = {
        let c = shared.lock();
        let initial: Result<Vec<(&'static str, Arc<Value>)>, ApiError> =
            if rv_param.is_empty() || rv_param == "0" {
                let (items, _) = c.list_stored(res, ns, &labels, &fields);
                Ok(items.into_iter().map(|o| ("ADDED", o)).collect())
            } else {
                let from: u64 = rv_param.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv_param}"))
                })?;
                c.events_since(&res.group, &res.plural, from).map(|events| {
                    events
                        .iter()
                        .filter(|e| matches(e))
                        .map(|e| (e.kind, e.object.clone()))
                        .collect()
                })
            };
        (initial, c.subscribe(), c.resource_version())
    };
    let initial: Vec<Bytes> = match initial {
        Ok(events) => events.iter().map(|(kind, o)| render(kind, o)).collect(),
        Err(e) => vec![event_line("ERROR", &e.status())],
    };
    let mut shutdown = shared.shutdown.clone();
    let res = res.clone();
    tokio::spawn(async move {
        let mut sub = sub;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut last_rv = current_rv;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
                _ = tick.tick(), if bookmarks => {
                    let bm = json!({"apiVersion": res.api_version(), "kind": res.kind, "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(event_line("BOOKMARK", &bm)).await.is_err() { return; }
                }
                ev = sub.recv() => match ev {
                    Ok(e) => {
                        last_rv = e.rv;
                        if matches(&e) && tx.send(render(e.kind, &e.object)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
            }
        }
    });
    let mut r = Response::new(BodyExt::boxed(ChannelBody(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
