//! The Service proxy subresource (`services/NAME:PORT/proxy/...`), driven by the real kubectl
//! and kube-rs against a tiny upstream HTTP server: forwarding of method, path, query, body and
//! content type; kube-apiserver's 404, 503 and 403 answers, whole.

mod common;

use common::{fails, ok, runtime};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_emulator::{Emulator, Options};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};

const SETUP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: ns}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec:
  selector: {app: web}
  ports: [{name: http, port: 9090, targetPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: idle, namespace: ns}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: ns}
rules:
- apiGroups: [\"\"]
  resources: [services]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: reader, namespace: ns}
";

/// An upstream that answers every request with what it received:
/// `METHOD TARGET\ncontent-type: CT\nauthorization: AUTH\n\nBODY`, as `text/plain; upstream`
/// (status 418 for `/teapot`).
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let target = line.trim_end().to_string();
                let (mut length, mut ct, mut auth) = (0usize, String::new(), String::new());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => length = v.trim().parse().unwrap_or(0),
                        "content-type" => ct = v.trim().to_string(),
                        "authorization" => auth = v.trim().to_string(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let target = target.trim_end_matches(" HTTP/1.1").to_string();
                let status = if target.contains(" /teapot") {
                    "418 I'm a teapot"
                } else {
                    "200 OK"
                };
                let text = format!(
                    "{target}\ncontent-type: {ct}\nauthorization: {auth}\n\n{}",
                    String::from_utf8_lossy(&body)
                );
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; upstream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    addr
}

async fn client(emu: &Emulator) -> Client {
    let kc = Kubeconfig::read_from(emu.kubeconfig_path()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// (status, content type, body) of one request through kube-rs.
async fn send(
    client: &Client,
    method: &str,
    uri: &str,
    ct: &str,
    body: &str,
) -> (u16, String, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ct)
        .body(body.as_bytes().to_vec())
        .expect("request");
    let res = tokio::time::timeout(
        std::time::Duration::from_secs(40),
        client.send(req.map(kube::client::Body::from)),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {uri}: no answer in 40s"))
    .expect("send");
    let code = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    (code, ct, String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn kubectl_reaches_a_service_through_the_proxy_subresource() {
    let Some(bin) = common::require_kubectl() else {
        return;
    };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("emulator");
    emu.apply_yaml(SETUP).expect("setup");
    let upstream = echo_server();
    emu.register_service_proxy("ns", "web", 9090, upstream);
    let admin = emu.kubeconfig_path();

    // GET with a query string: path and query arrive as sent, the caller's token does not.
    for id in ["web:9090", "http:web:9090", "web:http"] {
        let out = ok(
            &bin,
            admin,
            &[
                "get",
                "--raw",
                &format!(
                    "/api/v1/namespaces/ns/services/{id}/proxy/some/path?x=1&q=rate(a%5B5s%5D)"
                ),
            ],
            None,
        );
        assert_eq!(
            out, // kubectl re-encodes and sorts the query (Go's url.Values); it arrives as kubectl sent it.
            "GET /some/path?q=rate%28a%5B5s%5D%29&x=1\ncontent-type: \nauthorization: \n\n",
            "{id}"
        );
    }

    // kube-apiserver's refusals, whole.
    let none = fails(
        &bin,
        admin,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/ns/services/nosuch:9090/proxy/x",
        ],
        None,
    );
    assert_eq!(
        none,
        "Error from server (NotFound): services \"nosuch\" not found\n"
    );
    let idle = fails(
        &bin,
        admin,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/ns/services/idle:80/proxy/x",
        ],
        None,
    );
    assert_eq!(
        idle,
        "Error from server (ServiceUnavailable): no endpoints available for service \"idle\"\n"
    );
    let no_port = fails(
        &bin,
        admin,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/ns/services/web:1234/proxy/x",
        ],
        None,
    );
    assert_eq!(
        no_port,
        "Error from server (ServiceUnavailable): no service port 1234 found for service \"web\"\n"
    );
    // A registered target that listens no more.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    emu.register_service_proxy("ns", "idle", 80, closed);
    let refused = fails(
        &bin,
        admin,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/ns/services/idle:80/proxy/x",
        ],
        None,
    );
    assert_eq!(
        refused,
        format!("Error from server (ServiceUnavailable): error trying to reach service: dial tcp {closed}: connect: connection refused\n")
    );

    // A Service whose port's target is unregistered has no endpoints again.
    let web = emu.unregister_service_proxy("ns", "web", 9090);
    assert_eq!(web, Some(upstream));
    let unregistered = fails(
        &bin,
        admin,
        &["get", "--raw", "/api/v1/namespaces/ns/services/web/proxy/"],
        None,
    );
    assert_eq!(
        unregistered,
        "Error from server (ServiceUnavailable): no endpoints available for service \"web\"\n"
    );
    emu.register_service_proxy("ns", "web", 9090, upstream);

    // RBAC: `services/proxy` is a subresource of its own; `get` on services does not grant it.
    let token = ok(
        &bin,
        admin,
        &["create", "token", "reader", "-n", "ns"],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa-kubeconfig");
    emu.write_kubeconfig_with_token(&sa, token.trim(), "ns")
        .expect("kubeconfig");
    ok(&bin, &sa, &["get", "service", "web"], None);
    let forbidden = fails(
        &bin,
        &sa,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/ns/services/web:9090/proxy/x",
        ],
        None,
    );
    assert_eq!(
        forbidden,
        "Error from server (Forbidden): services \"web:9090\" is forbidden: User \"system:serviceaccount:ns:reader\" cannot get resource \"services/proxy\" in API group \"\" in the namespace \"ns\"\n"
    );
    emu.apply_yaml(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: ns}
rules:
- apiGroups: [\"\"]
  resources: [services, services/proxy]
  verbs: [get]
",
    )
    .expect("grant services/proxy");
    assert_eq!(
        ok(
            &bin,
            &sa,
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/ns/services/web:9090/proxy/x"
            ],
            None
        ),
        "GET /x\ncontent-type: \nauthorization: \n\n"
    );
    // POST is `create` on services/proxy.
    let post = rt.block_on(async {
        let kc = Kubeconfig::read_from(&sa).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("config");
        let client = Client::try_from(config).expect("client");
        send(
            &client,
            "POST",
            "/api/v1/namespaces/ns/services/web:9090/proxy/api/v1/query",
            "application/x-www-form-urlencoded",
            "query=up",
        )
        .await
    });
    assert_eq!(post.0, 403, "{post:?}");
    assert!(
        post.2
            .contains("cannot create resource \\\"services/proxy\\\""),
        "{post:?}"
    );
}

#[test]
fn post_bodies_content_types_and_upstream_statuses_pass_through() {
    let rt = runtime();
    rt.block_on(async {
        let emu = Emulator::start(Options::default()).await.expect("emulator");
        emu.apply_yaml(SETUP).expect("setup");
        emu.register_service_proxy("ns", "web", 9090, echo_server());
        let client = client(&emu).await;
        let (code, ct, body) = send(
            &client,
            "POST",
            "/api/v1/namespaces/ns/services/web:9090/proxy/api/v1/query",
            "application/x-www-form-urlencoded",
            "query=sum(rate(x%5B5s%5D))&time=1",
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(ct, "text/plain; upstream");
        assert_eq!(
            body,
            "POST /api/v1/query\ncontent-type: application/x-www-form-urlencoded\nauthorization: \n\nquery=sum(rate(x%5B5s%5D))&time=1"
        );
        let (code, _, body) = send(
            &client,
            "GET",
            "/api/v1/namespaces/ns/services/web:9090/proxy/teapot",
            "text/plain",
            "",
        )
        .await;
        assert_eq!(code, 418, "{body}");
        // (The proxy's own 503s are checked through kubectl: kube-rs retries a 503.)
        emu.unregister_service_proxy("ns", "web", 9090);
    });
}
