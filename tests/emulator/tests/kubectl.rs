//! The real kubectl against the emulator: `/usr/bin/kubectl` (the version dispatcher) and every
//! versioned binary in /usr/lib/google-cloud-sdk/bin.

mod common;

use common::{
    fails, kubectl, ok, require_kubectl, runtime, versioned_kubectl, Lines, KUBECTL_MINORS,
};
use kube_emulator::{Emulator, Options};
use std::path::Path;
use std::time::Duration;

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, version: v1}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
";

const CM: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {tier: back}}
data: {mode: a}
";

/// The smoke set every kubectl version must pass.
fn smoke(bin: &Path, emu: &Emulator) {
    let kc = emu.kubeconfig_path();
    let minor = bin
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("kubectl.1."))
        .map(String::from);
    let version = ok(bin, kc, &["version", "-o", "json"], None);
    assert!(version.contains("\"serverVersion\""), "{version}");
    let resources = ok(bin, kc, &["api-resources"], None);
    for kind in [
        "Deployment",
        "ConfigMap",
        "Namespace",
        "CustomResourceDefinition",
    ] {
        assert!(
            resources.contains(kind),
            "api-resources lacks {kind}:\n{resources}"
        );
    }

    // create (from a file) and get/list with label selectors and output formats
    assert!(ok(bin, kc, &["create", "-f", "-"], Some(CM)).contains("configmap/settings created"));
    let err = fails(bin, kc, &["create", "-f", "-"], Some(CM));
    assert!(err.contains("already exists"), "{err}");
    assert!(ok(
        bin,
        kc,
        &["get", "cm", "-l", "tier=back", "-o", "name"],
        None
    )
    .contains("configmap/settings"));
    assert!(ok(
        bin,
        kc,
        &["get", "cm", "-l", "tier!=back", "-o", "name"],
        None
    )
    .trim()
    .is_empty());
    assert!(ok(
        bin,
        kc,
        &["get", "cm", "-l", "tier in (back,front)", "-o", "name"],
        None
    )
    .contains("settings"));
    let yaml = ok(bin, kc, &["get", "cm", "settings", "-o", "yaml"], None);
    assert!(
        yaml.contains("mode: a") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(bin, kc, &["get", "cm", "-o", "json"], None)).expect("json list");
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["kind"], "ConfigMap");

    // client-side apply: create, then configure, then unchanged
    assert!(
        ok(bin, kc, &["apply", "-f", "-"], Some(DEPLOY)).contains("deployment.apps/web created")
    );
    let three = DEPLOY.replace("replicas: 2", "replicas: 3");
    assert!(ok(bin, kc, &["apply", "-f", "-"], Some(&three)).contains("configured"));
    assert!(ok(bin, kc, &["apply", "-f", "-"], Some(&three)).contains("unchanged"));
    let pods = ok(
        bin,
        kc,
        &["get", "pods", "-l", "app=web,version=v1", "-o", "name"],
        None,
    );
    assert_eq!(pods.lines().count(), 3, "{pods}");

    // server-side apply: conflict with the client-side applier, then forced
    let ssa = DEPLOY.replace("replicas: 2", "replicas: 4");
    let err = fails(
        bin,
        kc,
        &["apply", "--server-side", "--field-manager=ssa", "-f", "-"],
        Some(&ssa),
    );
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"), "{err}");
    assert!(ok(
        bin,
        kc,
        &[
            "apply",
            "--server-side",
            "--field-manager=ssa",
            "--force-conflicts",
            "-f",
            "-"
        ],
        Some(&ssa)
    )
    .contains("serverside-applied"));
    assert_eq!(
        ok(
            bin,
            kc,
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
            None
        ),
        "4"
    );

    // patches of every type
    ok(
        bin,
        kc,
        &[
            "patch",
            "deploy",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":1}}"#,
        ],
        None,
    );
    ok(
        bin,
        kc,
        &[
            "patch",
            "deploy",
            "web",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
        ],
        None,
    );
    ok(
        bin,
        kc,
        &[
            "patch",
            "deploy",
            "web",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}"#,
        ],
        None,
    );
    let got = ok(bin, kc, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].name} {.spec.template.spec.containers[*].image}"], None);
    assert_eq!(got, "2 web nginx:1.27");

    // scale (the deployments/scale subresource) and rollout status
    assert!(ok(bin, kc, &["scale", "deploy", "web", "--replicas=3"], None).contains("scaled"));
    assert_eq!(
        ok(
            bin,
            kc,
            &["get", "pods", "-l", "app=web", "-o", "name"],
            None
        )
        .lines()
        .count(),
        3
    );
    assert!(ok(bin, kc, &["rollout", "status", "deploy", "web"], None)
        .contains("successfully rolled out"));
    let table = ok(bin, kc, &["get", "deploy", "web"], None);
    assert!(
        table.starts_with("NAME") && table.contains("READY") && table.contains("3/3"),
        "{table}"
    );

    // label, annotate, replace (and a stale replace)
    ok(bin, kc, &["label", "cm", "settings", "owner=me"], None);
    ok(bin, kc, &["annotate", "cm", "settings", "note=hello"], None);
    let current = ok(bin, kc, &["get", "cm", "settings", "-o", "yaml"], None);
    assert!(
        current.contains("owner: me") && current.contains("note: hello"),
        "{current}"
    );
    let replaced = current.replace("mode: a", "mode: b");
    assert!(ok(bin, kc, &["replace", "-f", "-"], Some(&replaced)).contains("replaced"));
    let err = fails(bin, kc, &["replace", "-f", "-"], Some(&replaced));
    assert!(err.contains("the object has been modified; please apply your changes to the latest version and try again"), "{err}");

    // server-side dry run changes nothing
    let dry = CM.replace("settings", "dry");
    assert!(ok(
        bin,
        kc,
        &["create", "--dry-run=server", "-f", "-"],
        Some(&dry)
    )
    .contains("(server dry run)"));
    assert!(!kubectl(bin, kc, &["get", "cm", "dry"], None).ok);

    // get -w sees a change made while it watches: wait for its first line (the watch is
    // established), change the object, wait for the new value; deadlines, not sleeps.
    let mut watch = std::process::Command::new(bin)
        .args([
            "get",
            "cm",
            "settings",
            "-w",
            "-o",
            "jsonpath={.data.mode}{\"\\n\"}",
            "--request-timeout=20s",
        ])
        .env("KUBECONFIG", kc)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let lines = Lines::of(&mut watch);
    lines
        .wait_for(Duration::from_secs(20), |_| true)
        .expect("get -w printed the current value");
    ok(
        bin,
        kc,
        &[
            "patch",
            "cm",
            "settings",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"watched"}}"#,
        ],
        None,
    );
    let seen = lines.wait_for(Duration::from_secs(20), |l| l == "watched");
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen.is_ok(), "get -w did not see the change: {seen:?}");

    // delete, with the Deployment's pods garbage-collected
    assert!(ok(bin, kc, &["delete", "deploy", "web"], None).contains("deleted"));
    assert!(ok(bin, kc, &["get", "pods", "-o", "name"], None)
        .trim()
        .is_empty());
    assert!(ok(bin, kc, &["delete", "cm", "settings"], None).contains("deleted"));
    let err = fails(bin, kc, &["get", "cm", "settings"], None);
    assert!(err.contains("configmaps \"settings\" not found"), "{err}");
    eprintln!(
        "kubectl smoke passed with {} (minor {minor:?})",
        bin.display()
    );
}

#[test]
fn usr_bin_kubectl_smoke() {
    let Some(bin) = require_kubectl() else {
        return;
    };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("start");
    smoke(&bin, &emu);
    rt.block_on(emu.shutdown());
}

#[test]
fn versioned_kubectl_smoke() {
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
        smoke(&bin, &emu);
        rt.block_on(emu.shutdown());
    }
}

#[test]
fn unauthenticated_kubectl_is_refused() {
    let Some(bin) = require_kubectl() else {
        return;
    };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(emu.kubeconfig_path())
        .expect("kubeconfig")
        .replace(emu.token(), "wrong-token");
    std::fs::write(&bad, text).expect("write");
    let err = fails(&bin, &bad, &["get", "cm"], None);
    assert!(
        err.contains("provide credentials") || err.contains("Unauthorized"),
        "{err}"
    );
    rt.block_on(emu.shutdown());
}

#[test]
fn kubectl_uses_aggregated_discovery() {
    let Some(bin) = require_kubectl() else {
        return;
    };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("start");
    // A fresh discovery cache (HOME is the kubeconfig's directory): kubectl must ask the server.
    let run = kubectl(
        &bin,
        emu.kubeconfig_path(),
        &["api-resources", "-v=6"],
        None,
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("deployments") && run.stdout.contains("configmaps"),
        "{}",
        run.stdout
    );
    // -v=6 logs each request: the two aggregated documents, and no per-group-version ones.
    for path in ["/api?timeout", "/apis?timeout"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(path) && l.contains("200 OK")),
            "no {path} in:\n{}",
            run.stderr
        );
    }
    for path in ["/api/v1?timeout", "/apis/apps/v1?timeout"] {
        assert!(
            !run.stderr.contains(path),
            "{path} was fetched:\n{}",
            run.stderr
        );
    }
    let discovery_paths: Vec<String> = emu
        .audit()
        .records()
        .iter()
        .map(|r| r.path.split('?').next().unwrap_or("").to_string())
        .filter(|p| p.starts_with("/api"))
        .collect();
    assert_eq!(discovery_paths, ["/api", "/apis"], "{discovery_paths:?}");
    rt.block_on(emu.shutdown());
}
