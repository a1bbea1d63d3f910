//! kube-rs against the emulator: create/get/list/patch(apply)/watch, raw protocol errors,
//! concurrent writers, faults and the audit log.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_emulator::{Emulator, Fault, Options};
use serde_json::json;
use std::collections::BTreeMap;

async fn client(emu: &Emulator) -> Client {
    let kc = Kubeconfig::read_from(emu.kubeconfig_path()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .expect("configmap")
}

#[tokio::test]
async fn create_get_list_apply_watch_round_trip() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = api
        .create(&PostParams::default(), &cm("one", &[("a", "1")]))
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let got = api.get("one").await.expect("get");
    assert_eq!(got.data.unwrap()["a"], "1");
    let listed = api
        .list(&ListParams::default().labels("app=demo"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(api
        .list(&ListParams::default().labels("app!=demo"))
        .await
        .unwrap()
        .items
        .is_empty());

    let rv = listed.metadata.resource_version.clone().expect("list rv");
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();

    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"b": "2"}});
    let patched = api
        .patch(
            "one",
            &PatchParams::apply("tester"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("apply");
    let data = patched.data.clone().unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("1", "2"));
    let managers: Vec<String> = patched
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"tester".to_string()), "{managers:?}");

    let mut next = async || loop {
        match stream.try_next().await.expect("event") {
            Some(WatchEvent::Bookmark(_)) => continue,
            other => return other,
        }
    };
    match next().await {
        Some(WatchEvent::Modified(o)) => assert_eq!(o.data.unwrap()["b"], "2"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    api.delete("one", &Default::default())
        .await
        .expect("delete");
    match next().await {
        Some(WatchEvent::Deleted(o)) => assert_eq!(o.metadata.name.as_deref(), Some("one")),
        other => panic!("expected DELETED, got {other:?}"),
    }
    let err = api.get("one").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn deployment_controller_creates_ready_pods_and_rolls_the_template() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reviews-v2"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "reviews", "version": "v2"}},
                 "template": {"metadata": {"labels": {"app": "reviews", "version": "v2"}},
                              "spec": {"containers": [{"name": "r", "image": "reviews:2"}]}}}});
    deploys
        .patch("reviews-v2", &PatchParams::apply("test"), &Patch::Apply(&d))
        .await
        .expect("apply");
    let listed = pods
        .list(&ListParams::default().labels("app=reviews,version=v2"))
        .await
        .expect("pods");
    assert_eq!(listed.items.len(), 3);
    for p in &listed.items {
        let status = p.status.as_ref().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(p.metadata.name.as_ref().unwrap().starts_with("reviews-v2-"));
    }
    let got = deploys.get("reviews-v2").await.expect("get");
    let st = got.status.expect("status");
    assert_eq!(
        (
            st.replicas,
            st.ready_replicas,
            st.available_replicas,
            st.updated_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(st.observed_generation, got.metadata.generation);

    // template change: every pod replaced; scale down.
    let mut d2 = d.clone();
    d2["spec"]["replicas"] = json!(2);
    d2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("reviews:2.1");
    deploys
        .patch(
            "reviews-v2",
            &PatchParams::apply("test"),
            &Patch::Apply(&d2),
        )
        .await
        .expect("apply 2");
    let after = pods
        .list(&ListParams::default().labels("app=reviews"))
        .await
        .expect("pods");
    assert_eq!(after.items.len(), 2);
    let old: Vec<_> = listed
        .items
        .iter()
        .map(|p| p.metadata.name.clone())
        .collect();
    assert!(after.items.iter().all(|p| !old.contains(&p.metadata.name)));
    assert!(after
        .items
        .iter()
        .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("reviews:2.1")));
    emu.shutdown().await;
}

#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    let emu = Emulator::start(Options {
        record_states: false,
        ..Options::default()
    })
    .await
    .expect("start");
    let client = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("shared", &[]))
        .await
        .expect("create");
    let mut tasks = vec![];
    for w in 0..8 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut conflicts) = (0u32, 0u32);
            while ok < 10 {
                let mut cur = api.get("shared").await.expect("get");
                let data = cur.data.get_or_insert_with(BTreeMap::new);
                data.insert(format!("w{w}"), (ok + 1).to_string());
                match api.replace("shared", &PostParams::default(), &cur).await {
                    Ok(_) => ok += 1,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        assert!(
                            s.message.contains("the object has been modified"),
                            "{}",
                            s.message
                        );
                        conflicts += 1
                    }
                    Err(e) => panic!("unexpected error {e:?}"),
                }
            }
            (ok, conflicts)
        }));
    }
    let mut total_ok = 0;
    for t in tasks {
        total_ok += t.await.expect("writer").0;
    }
    let fin = api.get("shared").await.expect("get");
    let data = fin.data.expect("data");
    for w in 0..8 {
        assert_eq!(
            data.get(&format!("w{w}")).map(String::as_str),
            Some("10"),
            "writer {w} lost an update: {data:?}"
        );
    }
    // Every successful write produced exactly one new resourceVersion.
    let created_rv: u64 = api
        .get("shared")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total_ok, 80);
    let writes: Vec<_> = emu
        .audit()
        .records()
        .into_iter()
        .filter(|r| r.verb == "update" && r.status == 200)
        .collect();
    assert_eq!(writes.len(), 80);
    assert!(created_rv >= 80);
    emu.shutdown().await;
}

#[tokio::test]
async fn faults_and_audit_invariants() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    emu.faults().add(
        Fault::nth(2)
            .verb("create")
            .resource("configmaps")
            .status(500),
    );
    emu.faults().add(
        Fault::nth(1)
            .verb("delete")
            .resource("configmaps")
            .status(409),
    );
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .expect("first create");
    let err = api
        .create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500 && s.reason == "InternalError"),
        "{err:?}"
    );
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .expect("third create passes");
    let err = api.delete("a", &Default::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    emu.faults()
        .add(Fault::nth(1).verb("get").drop_connection());
    assert!(
        api.get("a").await.is_err(),
        "dropped connection must fail the request"
    );
    assert!(api.get("a").await.is_ok());

    // The audit log: every request with the state after it.
    let records = emu.audit().records();
    let creates: Vec<_> = records
        .iter()
        .filter(|r| r.verb == "create")
        .map(|r| r.status)
        .collect();
    assert_eq!(creates, vec![201, 500, 201]);
    let failed = records
        .iter()
        .find(|r| r.status == 500)
        .expect("500 recorded");
    assert!(failed.state.get("", "configmaps", "default", "a").is_some());
    assert!(failed.state.get("", "configmaps", "default", "b").is_none());
    let last = records.last().expect("records");
    assert!(last.state.get("", "configmaps", "default", "b").is_some());
    // An invariant checked over every intermediate state; a violated one names the request.
    emu.audit()
        .check(|s| {
            if s.of("", "configmaps").len() <= 2 {
                Ok(())
            } else {
                Err("too many".into())
            }
        })
        .expect("holds");
    let violation = emu.audit().check(|s| {
        if s.get("", "configmaps", "default", "b").is_none() {
            Ok(())
        } else {
            Err("b exists".into())
        }
    });
    let v = violation.unwrap_err();
    assert_eq!(
        (v.record.verb.as_str(), v.record.status, v.message.as_str()),
        ("create", 201, "b exists")
    );
    assert!(
        v.to_string()
            .contains("POST /api/v1/namespaces/default/configmaps"),
        "{v}"
    );
    emu.shutdown().await;
}

async fn raw(
    client: &Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value, Vec<String>) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(body)
        .expect("request");
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
    (
        code,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        warnings,
    )
}

#[tokio::test]
async fn bad_requests_get_status_errors_and_the_server_keeps_serving() {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let client = client(&emu).await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, status, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(
        (code, status["kind"].as_str(), status["reason"].as_str()),
        (400, Some("Status"), Some("BadRequest"))
    );
    let (code, status, _) = raw(&client, "POST", path, "text/plain", b"{}".to_vec()).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let big = format!("{{\"data\":\"{}\"}}", "x".repeat(3 * 1024 * 1024 + 10));
    let (code, status, _) = raw(&client, "POST", path, "application/json", big.into_bytes()).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );
    let (code, status, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps/nope",
        "",
        vec![],
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (404, Some("configmaps \"nope\" not found"))
    );
    let (code, status, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/missing/configmaps",
        "application/json",
        br#"{"metadata":{"name":"x"}}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (404, Some("namespaces \"missing\" not found"))
    );
    let (code, status, _) = raw(
        &client,
        "GET",
        "/api/v1/configmaps?labelSelector=a%20in%20b",
        "",
        vec![],
    )
    .await;
    assert_eq!(code, 400, "{status}");
    let (code, _, _) = raw(
        &client,
        "POST",
        path,
        "application/yaml",
        b"metadata: {name: fine}\ndata: {a: b}\n".to_vec(),
    )
    .await;
    assert_eq!(code, 201);
    let (code, list, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dfine",
        "",
        vec![],
    )
    .await;
    assert_eq!(
        (code, list["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    // dryRun=All stores nothing
    let (code, _, _) = raw(
        &client,
        "POST",
        &format!("{path}?dryRun=All"),
        "application/json",
        br#"{"metadata":{"name":"dry"}}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _, _) = raw(&client, "GET", &format!("{path}/dry"), "", vec![]).await;
    assert_eq!(code, 404);
    emu.shutdown().await;
}

#[tokio::test]
async fn discovery_documents_have_the_apiserver_shapes() {
    let emu = Emulator::start(Options {
        minor: 31,
        ..Options::default()
    })
    .await
    .expect("start");
    let client = client(&emu).await;
    let (_, version, _) = raw(&client, "GET", "/version", "", vec![]).await;
    assert_eq!(
        (
            version["major"].as_str(),
            version["minor"].as_str(),
            version["gitVersion"].as_str()
        ),
        (Some("1"), Some("31"), Some("v1.31.0"))
    );
    let (_, apis, _) = raw(&client, "GET", "/apis", "", vec![]).await;
    assert_eq!(apis["kind"], "APIGroupList");
    assert!(apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "apps" && g["preferredVersion"]["groupVersion"] == "apps/v1"));
    let (_, core, _) = raw(&client, "GET", "/api/v1", "", vec![]).await;
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .expect("pods");
    assert_eq!(
        (
            pods["kind"].as_str(),
            pods["namespaced"].as_bool(),
            pods["shortNames"][0].as_str()
        ),
        (Some("Pod"), Some(true), Some("po"))
    );
    assert!(core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "pods/status"));
    // CRDs are served as soon as they exist.
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer}
              color: {type: string, enum: [red, blue]}
"#;
    emu.apply_yaml(crd).expect("crd");
    let (code, group, _) = raw(&client, "GET", "/apis/example.com/v1", "", vec![]).await;
    assert_eq!(
        (code, group["resources"][0]["kind"].as_str()),
        (200, Some("Widget"))
    );
    let (code, status, _) = raw(&client, "POST", "/apis/example.com/v1/namespaces/default/widgets", "application/json",
        br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"green"}}"#.to_vec()).await;
    assert_eq!(code, 422, "{status}");
    let msg = status["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Widget.example.com \"w\" is invalid: ["),
        "{msg}"
    );
    assert!(
        msg.contains("spec.size: Required value")
            && msg.contains("spec.color: Unsupported value: \"green\""),
        "{msg}"
    );
    let (code, obj, warnings) = raw(&client, "POST", "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Warn", "application/json",
        br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":1,"extra":true}}"#.to_vec()).await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(
        warnings,
        vec!["299 - \"unknown field \\\"spec.extra\\\"\"".to_string()]
    );
    assert!(obj["spec"].get("extra").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn persistence_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        data_dir: Some(dir.path().to_path_buf()),
        ..Options::default()
    };
    let emu = Emulator::start(opts.clone()).await.expect("start");
    let api: Api<ConfigMap> = Api::namespaced(client(&emu).await, "default");
    let created = api
        .create(&PostParams::default(), &cm("kept", &[("k", "v")]))
        .await
        .expect("create");
    emu.shutdown().await;
    let emu = Emulator::start(opts).await.expect("restart");
    let api: Api<ConfigMap> = Api::namespaced(client(&emu).await, "default");
    let got = api.get("kept").await.expect("still there");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
    let next = api
        .create(&PostParams::default(), &cm("new", &[]))
        .await
        .expect("create after restart");
    let (a, b): (u64, u64) = (
        created.metadata.resource_version.unwrap().parse().unwrap(),
        next.metadata.resource_version.unwrap().parse().unwrap(),
    );
    assert!(b > a, "resourceVersion must keep growing across restarts");
    emu.shutdown().await;
}
