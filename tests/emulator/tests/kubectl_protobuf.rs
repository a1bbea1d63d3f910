//! kubectl's generators (`kubectl create namespace|configmap|secret|deployment|service`, `kubectl
//! run`) send protobuf bodies. Each one is run against the emulator and the stored object is
//! compared with the oracle `kubectl ... --dry-run=client -o json` (the object kubectl would have
//! sent as JSON), and with a twin created from that JSON. kubectl 1.32 and later send these
//! bodies as protobuf; 1.27 to 1.31 send JSON (and are checked all the same).

mod common;

use common::{kubectl, ok, require_kubectl, runtime, versioned_kubectl, KUBECTL_MINORS};
use kube_emulator::{Emulator, Options};
use serde_json::Value;
use std::path::Path;

/// `(resource, name, namespaced, generator arguments)`.
const GENERATORS: &[(&str, &str, bool, &[&str])] = &[
    (
        "namespace",
        "proto-ns",
        false,
        &["create", "namespace", "proto-ns"],
    ),
    (
        "configmap",
        "cm",
        true,
        &[
            "create",
            "configmap",
            "cm",
            "--from-literal=a=b",
            "--from-literal=empty=",
        ],
    ),
    (
        "secret",
        "s",
        true,
        &["create", "secret", "generic", "s", "--from-literal=a=b"],
    ),
    (
        "deployment",
        "web",
        true,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
            "--port=80",
        ],
    ),
    (
        "deployment",
        "plain",
        true,
        &["create", "deployment", "plain", "--image=nginx:1.25"],
    ),
    (
        "service",
        "web",
        true,
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
    ),
    (
        "pod",
        "runner",
        true,
        &[
            "run",
            "runner",
            "--image=busybox",
            "--labels=app=runner",
            "--env=A=B",
            "--port=8080",
        ],
    ),
];

/// The user-owned part of an object: everything but server-managed metadata and status.
fn user_part(obj: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "data",
        "binaryData",
        "stringData",
        "spec",
        "type",
        "immutable",
    ] {
        if let Some(v) = obj.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    for key in ["labels", "annotations"] {
        if let Some(v) = obj["metadata"].get(key) {
            out.insert(format!("metadata.{key}"), v.clone());
        }
    }
    Value::Object(out)
}

/// A user part without what the server allocates per object (a Service's cluster IPs).
fn without_allocated(mut user: Value) -> Value {
    if let Some(spec) = user.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    user
}

/// Every non-null member of `want` is in `got` with the same value (lists element by element).
fn contains(got: &Value, want: &Value, path: &str) -> Result<(), String> {
    match (got, want) {
        (_, Value::Null) => Ok(()),
        (Value::Object(g), Value::Object(w)) => w.iter().try_for_each(|(k, wv)| {
            let gv = g.get(k).unwrap_or(&Value::Null);
            if gv.is_null() && !wv.is_null() && wv != &Value::Object(Default::default()) {
                return Err(format!("{path}.{k} missing (want {wv})"));
            }
            contains(gv, wv, &format!("{path}.{k}"))
        }),
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .try_for_each(|(i, (g, w))| contains(g, w, &format!("{path}[{i}]"))),
        (g, w) if g == w => Ok(()),
        (g, w) => Err(format!("{path}: got {g}, want {w}")),
    }
}

fn get_json(bin: &Path, kc: &Path, resource: &str, name: &str, ns: Option<&str>) -> Value {
    let mut args = vec!["get", resource, name, "-o", "json"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    serde_json::from_str(&ok(bin, kc, &args, None)).expect("get -o json")
}

/// Runs every generator with `bin`. `protobuf`: whether this kubectl's typed clients send
/// protobuf (1.32 and later; 1.27 to 1.31 send JSON), `None` if unknown (the dispatcher).
fn generators(bin: &Path, emu: &Emulator, protobuf: Option<bool>) {
    let kc = emu.kubeconfig_path();
    ok(bin, kc, &["create", "namespace", "twin"], None);
    for (resource, name, namespaced, args) in GENERATORS {
        let ns_args: &[&str] = if *namespaced { &["-n", "default"] } else { &[] };
        // the oracle: what kubectl would send as JSON
        let dry_args: Vec<&str> = args
            .iter()
            .chain(ns_args)
            .chain(&["--dry-run=client", "-o", "json"])
            .copied()
            .collect();
        let dry: Value = serde_json::from_str(&ok(bin, kc, &dry_args, None)).expect("dry-run json");

        // the generator itself: a protobuf body
        let real_args: Vec<&str> = args
            .iter()
            .chain(ns_args)
            .chain(&["-v=8"])
            .copied()
            .collect();
        let run = kubectl(bin, kc, &real_args, None);
        assert!(
            run.ok,
            "{} {real_args:?} failed:\n{}",
            bin.display(),
            run.stderr
        );
        assert!(
            run.stdout.contains("created"),
            "{} {real_args:?}: {}",
            bin.display(),
            run.stdout
        );
        let sent_protobuf = run.stderr.lines().any(|l| {
            l.contains("Content-Type") && l.contains("application/vnd.kubernetes.protobuf")
        });
        // `kubectl run` builds its Pod as unstructured JSON in every version
        let want = if args[0] == "run" {
            Some(false)
        } else {
            protobuf
        };
        if let Some(want) = want {
            assert_eq!(
                sent_protobuf,
                want,
                "{} {real_args:?}: protobuf body expected {want}:\n{}",
                bin.display(),
                run.stderr
            );
        }
        let ns = namespaced.then_some("default");
        let stored = get_json(bin, kc, resource, name, ns);

        // the twin: the oracle's JSON created as such
        let twin_name = format!("{name}-json");
        let mut twin = dry.clone();
        twin["metadata"]["name"] = Value::String(twin_name.clone());
        let twin_ns = namespaced.then_some("twin");
        if let Some(obj) = twin["metadata"].as_object_mut() {
            obj.remove("namespace");
        }
        let mut create = vec!["create", "-f", "-"];
        if let Some(ns) = twin_ns {
            create.extend(["-n", ns]);
        }
        ok(bin, kc, &create, Some(&twin.to_string()));
        let twin_stored = get_json(bin, kc, resource, &twin_name, twin_ns);

        let (got, want) = (user_part(&stored), user_part(&dry));
        if let Err(e) = contains(&got, &want, resource) {
            panic!(
                "{} {args:?}: stored object differs from the dry-run JSON: {e}\nstored: {got:#}\ndry-run: {want:#}",
                bin.display()
            );
        }
        // the twin's name may show in its user part (kubernetes.io/metadata.name): undo the rename
        let twin_user = user_part(&twin_stored)
            .to_string()
            .replace(&format!("\"{twin_name}\""), &format!("\"{name}\""));
        assert_eq!(
            without_allocated(got),
            without_allocated(serde_json::from_str(&twin_user).expect("json")),
            "{} {args:?}: protobuf and JSON creates stored different objects",
            bin.display()
        );
    }
    eprintln!("kubectl generators passed with {}", bin.display());
}

#[test]
fn usr_bin_kubectl_generators_send_protobuf() {
    let Some(bin) = require_kubectl() else {
        return;
    };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("start");
    generators(&bin, &emu, None);
    rt.block_on(emu.shutdown());
}

#[test]
fn versioned_kubectl_generators_send_protobuf() {
    let rt = runtime();
    for minor in KUBECTL_MINORS {
        let Some(bin) = versioned_kubectl(minor) else {
            continue;
        };
        let emu = rt
            .block_on(Emulator::start(Options {
                minor,
                ..Options::default()
            }))
            .expect("start");
        generators(&bin, &emu, Some(minor >= 32));
        rt.block_on(emu.shutdown());
    }
}

/// Appends a length-delimited protobuf field (field numbers and lengths below 128).
fn field(out: &mut Vec<u8>, num: u8, bytes: &[u8]) {
    out.push(num << 3 | 2);
    out.push(u8::try_from(bytes.len()).expect("short field"));
    out.extend_from_slice(bytes);
}

/// A protobuf ConfigMap `raw` body whose ObjectMeta carries `extra` (raw field bytes) after the
/// name, with a `data` entry `k: v` when `data` is set.
fn configmap_body(extra: &[u8], data: Option<(&str, &str)>) -> Vec<u8> {
    let mut meta = Vec::new();
    field(&mut meta, 1, b"raw");
    meta.extend_from_slice(extra);
    let mut cm = Vec::new();
    field(&mut cm, 1, &meta);
    if let Some((k, v)) = data {
        let mut entry = Vec::new();
        field(&mut entry, 1, k.as_bytes());
        field(&mut entry, 2, v.as_bytes());
        field(&mut cm, 2, &entry);
    }
    let mut type_meta = Vec::new();
    field(&mut type_meta, 1, b"v1");
    field(&mut type_meta, 2, b"ConfigMap");
    let mut body = b"k8s\0".to_vec();
    field(&mut body, 1, &type_meta);
    field(&mut body, 2, &cm);
    body
}

#[test]
fn raw_protobuf_bodies_are_decoded_or_refused() {
    let rt = runtime();
    rt.block_on(async {
        let emu = Emulator::start(Options::default()).await.expect("start");
        let kc = kube::config::Kubeconfig::read_from(emu.kubeconfig_path()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let post = |body: Vec<u8>, ct: &str| {
            http::Request::post("/api/v1/namespaces/default/configmaps")
                .header("Content-Type", ct)
                .body(body)
                .expect("request")
        };
        let pb = "application/vnd.kubernetes.protobuf";
        // accepted; the response is JSON
        let text = client
            .request_text(post(configmap_body(&[], None), pb))
            .await
            .expect("create");
        let v: Value = serde_json::from_str(&text).expect("a JSON response");
        assert_eq!(v["metadata"]["name"], "raw");
        // update (PUT) with a protobuf body naming the stored resourceVersion
        let mut rv = Vec::new();
        let stored_rv = v["metadata"]["resourceVersion"].as_str().expect("rv");
        field(&mut rv, 6, stored_rv.as_bytes());
        let put = http::Request::put("/api/v1/namespaces/default/configmaps/raw")
            .header("Content-Type", pb)
            .body(configmap_body(&rv, Some(("k", "v"))))
            .expect("request");
        let text = client.request_text(put).await.expect("update");
        let v: Value = serde_json::from_str(&text).expect("a JSON response");
        assert_eq!(v["data"], serde_json::json!({"k": "v"}));
        // ObjectMeta has no field 15: refused with 415, nothing stored
        let mut unknown = Vec::new();
        field(&mut unknown, 15, b"x");
        match client.request_text(post(configmap_body(&unknown, None), pb)).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 415);
                assert_eq!(e.reason, "UnsupportedMediaType");
                assert_eq!(
                    e.message,
                    "protobuf field 15 of message ObjectMeta is not supported by kube-emulator; send JSON"
                );
            }
            other => panic!("expected a 415, got {other:?}"),
        }
        // truncated: 400
        let mut cut = configmap_body(&[], None);
        cut.pop();
        match client.request_text(post(cut, pb)).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 400, "{}", e.message),
            other => panic!("expected a 400, got {other:?}"),
        }
        // an unknown media type: the 415 lists what is really accepted
        match client.request_text(post(b"x".to_vec(), "text/plain")).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 415);
                assert!(
                    e.message.contains("accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got \"text/plain\")"),
                    "{}",
                    e.message
                );
            }
            other => panic!("expected a 415, got {other:?}"),
        }
        assert_eq!(emu.list("v1", "ConfigMap", Some("default")).len(), 1);
        emu.shutdown().await;
    });
}
