//! The emulator answers the corners of the protocol as kube-apiserver does: content negotiation
//! (415 for a body without a Content-Type, 406 for an Accept it cannot produce), undecodable
//! `continue` tokens (400), the public health and version endpoints (no token needed), duplicate
//! JSON fields (strict decoding: a warning by default, an error with `fieldValidation=Strict`),
//! bodies nested too deeply (refused before parsing), and `kube-emulator serve --help`.

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_emulator::{Emulator, Options};
use serde_json::Value;

async fn config(emu: &Emulator) -> Config {
    let kc = Kubeconfig::read_from(emu.kubeconfig_path()).expect("kubeconfig");
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config")
}

async fn client(emu: &Emulator) -> Client {
    Client::try_from(config(emu).await).expect("client")
}

/// A client that sends no credentials at all.
async fn anonymous(emu: &Emulator) -> Client {
    let mut config = config(emu).await;
    config.auth_info = AuthInfo::default();
    Client::try_from(config).expect("client")
}

/// One request with the given headers: (status, body as JSON or a string, Warning headers).
async fn send(
    client: &Client,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value, Vec<String>) {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(body.to_vec()).expect("request");
    let res = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let code = res.status().as_u16();
    let warnings = res
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (code, body, warnings)
}

fn status(body: &Value) -> (Option<&str>, Option<&str>) {
    (body["reason"].as_str(), body["message"].as_str())
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn a_body_without_content_type_is_415() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let (code, body, _) = send(
        &client,
        "POST",
        CONFIGMAPS,
        &[],
        br#"{"metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(code, 415, "{body}");
    assert_eq!(
        status(&body),
        (
            Some("UnsupportedMediaType"),
            Some("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got \"\")")
        )
    );
    let (code, _, _) = send(&client, "GET", &format!("{CONFIGMAPS}/x"), &[], b"").await;
    assert_eq!(code, 404, "nothing was created");
    emu.shutdown().await;
}

#[tokio::test]
async fn an_accept_header_the_server_cannot_produce_is_406() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let (code, body, _) = send(
        &client,
        "GET",
        CONFIGMAPS,
        &[("accept", "application/bogus")],
        b"",
    )
    .await;
    assert_eq!(code, 406, "{body}");
    assert_eq!(
        status(&body),
        (
            Some("NotAcceptable"),
            Some("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf")
        )
    );
    // What real clients send still works: kubectl's table request, a wildcard.
    for accept in [
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        "*/*",
    ] {
        let (code, _, _) = send(&client, "GET", CONFIGMAPS, &[("accept", accept)], b"").await;
        assert_eq!(code, 200, "{accept}");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn an_undecodable_continue_token_is_400() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let (code, body, _) = send(
        &client,
        "GET",
        &format!("{CONFIGMAPS}?limit=1&continue=garbage!"),
        &[],
        b"",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        status(&body),
        (
            Some("BadRequest"),
            Some("invalid continue token: continue key is not valid: illegal base64 data at input byte 7")
        )
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn health_and_version_are_public_but_wrong_credentials_are_not() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let anonymous = anonymous(&emu).await;
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body, _) = send(&anonymous, "GET", path, &[], b"").await;
        assert_eq!((code, body), (200, Value::String("ok".into())), "{path}");
    }
    let (code, version, _) = send(&anonymous, "GET", "/version", &[], b"").await;
    assert_eq!(code, 200);
    assert_eq!(version["minor"], "33");
    // Everything else still needs the token.
    let (code, body, _) = send(&anonymous, "GET", CONFIGMAPS, &[], b"").await;
    assert_eq!((code, status(&body).0), (401, Some("Unauthorized")));
    // A wrong token is refused even for /healthz, as authentication comes first.
    let (code, _, _) = send(
        &anonymous,
        "GET",
        "/healthz",
        &[("authorization", "Bearer wrong")],
        b"",
    )
    .await;
    assert_eq!(code, 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn duplicate_json_fields_warn_by_default_and_fail_strict_validation() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup"},"data":{"a":"1","a":"2"}}"#;
    let json = [("content-type", "application/json")];
    let (code, reply, _) = send(
        &client,
        "POST",
        &format!("{CONFIGMAPS}?fieldValidation=Strict"),
        &json,
        body,
    )
    .await;
    assert_eq!(code, 400, "{reply}");
    assert_eq!(
        status(&reply),
        (
            Some("BadRequest"),
            Some("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"metadata.name\", duplicate field \"data.a\"")
        )
    );
    let (code, _, _) = send(&client, "GET", &format!("{CONFIGMAPS}/dup"), &[], b"").await;
    assert_eq!(code, 404, "the strict create stored nothing");
    let (code, created, warnings) = send(&client, "POST", CONFIGMAPS, &json, body).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        warnings,
        [
            "299 - \"duplicate field \\\"metadata.name\\\"\"",
            "299 - \"duplicate field \\\"data.a\\\"\""
        ]
    );
    // The last value wins, as with Go's decoder.
    assert_eq!(created["data"]["a"], "2");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_deeply_nested_apply_body_is_refused_before_parsing() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let mut body = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: ");
    body.push_str(&"[".repeat(100_000));
    let (code, reply, _) = send(
        &client,
        "PATCH",
        &format!("{CONFIGMAPS}/deep?fieldManager=test"),
        &[("content-type", "application/apply-patch+yaml")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(code, 400, "{reply}");
    assert_eq!(
        status(&reply),
        (
            Some("BadRequest"),
            Some("error decoding YAML: exceeded max depth of 128 at line 4 column 134")
        )
    );
    let (code, _, _) = send(&client, "GET", &format!("{CONFIGMAPS}/deep"), &[], b"").await;
    assert_eq!(code, 404, "nothing was applied");
    emu.shutdown().await;
}

#[test]
fn serve_help_describes_every_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["serve", "--help"])
        .output()
        .expect("run kube-emulator");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "kube-emulator serve: run the emulated Kubernetes API server on 127.0.0.1 until Ctrl-C or SIGTERM."
    );
    for flag in [
        "  --kubeconfig FILE  write a kubeconfig for kubectl and kube-rs here (required)",
        "  --port N           port to listen on (default: a free one)",
        "  -h, --help         print this help",
    ] {
        assert!(lines.contains(&flag), "{flag:?} missing from:\n{text}");
    }
    assert!(out.stderr.is_empty());
}

#[tokio::test]
async fn a_config_map_over_one_mebibyte_is_refused_as_the_api_server_does() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let json = [("content-type", "application/json")];
    let body = |name: &str, bytes: usize| {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"a": "x".repeat(bytes - 1), "b": "y"},
        }))
        .unwrap()
    };
    let (code, reply, _) = send(&client, "POST", CONFIGMAPS, &json, &body("big", 1 << 20)).await;
    assert_eq!(code, 201, "exactly 1 MiB of data fits: {reply}");
    let (code, reply, _) = send(
        &client,
        "POST",
        CONFIGMAPS,
        &json,
        &body("bigger", (1 << 20) + 1),
    )
    .await;
    assert_eq!(code, 422, "{reply}");
    assert_eq!(
        status(&reply),
        (
            Some("Invalid"),
            Some("ConfigMap \"bigger\" is invalid: []: Too long: must have at most 1048576 bytes")
        )
    );
    emu.shutdown().await;
}
