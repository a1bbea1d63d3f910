//! Every file input is bounded before it is parsed (size, nesting, number of services), problem
//! lists are capped, and the messages of the error paths are one exact line.

mod support;

use std::path::Path;

use serde_json::json;
use support::fake_api::{kubeconfig, serve, status};
use support::{canary, example, write, TestCommand};

/// A valid spec with `services` services, padded with a comment to `pad` bytes.
fn spec_with_services(services: usize) -> String {
    let mut text = String::from(
        "apiVersion: canary.kubectl.dev/v1alpha1\nkind: Release\nmetadata: {name: big, namespace: shop}\nspec:\n  services:\n",
    );
    for i in 0..services {
        text.push_str(&format!(
            "  - {{name: s{i}, entry: true, stable: {{version: v1}}, canary: {{version: v2}}}}\n"
        ));
    }
    text.push_str("  policy: {module: builtin:progressive}\n");
    text
}

fn padded(text: &str, size: usize) -> String {
    let mut out = text.to_string();
    let line = format!("# {}\n", "x".repeat(1021));
    while out.len() + line.len() <= size {
        out.push_str(&line);
    }
    out.push_str(&"#".repeat(size - out.len()));
    out
}

const MIB: usize = 1 << 20;

#[test]
fn a_spec_over_1_mib_is_refused_by_every_command_that_reads_one() {
    let dir = tempfile::tempdir().unwrap();
    let big = write(
        dir.path(),
        "spec.yaml",
        &padded(&spec_with_services(1), 3 * MIB + MIB / 5),
    );
    let line = format!(
        "error: {}: 3.2 MiB is over the 1 MiB limit for a release spec",
        big.display()
    );
    for args in [vec!["plan", "-f"], vec!["render", "-f"]] {
        canary(args.iter().copied().chain([big.to_str().unwrap()]))
            .code(1)
            .stderr_is(&line);
    }
    // lint reads the file as a manifest (up to 3 MiB), then as a spec (up to 1 MiB).
    let two = write(
        dir.path(),
        "two.yaml",
        &padded(&spec_with_services(1), 2 * MIB),
    );
    canary(["lint", "--local", "-f", two.to_str().unwrap()])
        .code(1)
        .stderr_is(&format!(
            "error: {}: 2 MiB is over the 1 MiB limit for a release spec",
            two.display()
        ));
    // From stdin the whole input is counted, not kept.
    let text = std::fs::read_to_string(&big).unwrap();
    TestCommand::new(["plan", "-f", "-"])
        .stdin(text)
        .run()
        .code(1)
        .stderr_is("error: <stdin>: 3.2 MiB is over the 1 MiB limit for a release spec");
}

#[test]
fn start_refuses_an_oversized_spec_before_any_request() {
    let server = serve(|_, _, _| (500, status(500, "InternalError", "no request expected")));
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &server.url, "shop");
    let big = write(
        dir.path(),
        "spec.yaml",
        &padded(&spec_with_services(1), 2 * MIB),
    );
    canary([
        "--kubeconfig",
        config.to_str().unwrap(),
        "start",
        "-f",
        big.to_str().unwrap(),
    ])
    .code(1)
    .stderr_is(&format!(
        "error: {}: 2 MiB is over the 1 MiB limit for a release spec",
        big.display()
    ));
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn nesting_deeper_than_the_limit_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    // 200 KB of `[`: the input that took a YAML parser ~50 s of CPU.
    let deep = write(
        dir.path(),
        "deep.yaml",
        &format!("apiVersion: v1\nspec: {}\n", "[".repeat(200_000)),
    );
    let line = format!(
        "error: {}:2:70: nesting deeper than 64 levels is over the limit for a release spec",
        deep.display()
    );
    for command in ["plan", "render"] {
        canary([command, "-f", deep.to_str().unwrap()])
            .code(1)
            .stderr_is(&line);
    }
    // As a manifest (lint reads objects too), the same limit under the manifest's name.
    let objects = write(
        dir.path(),
        "objects.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {}\n",
            "{".repeat(100_000)
        ),
    );
    canary(["lint", "--local", "-f", objects.to_str().unwrap()])
        .code(1)
        .stderr_is(&format!(
            "error: {}:4:70: nesting deeper than 64 levels is over the limit for a manifest file",
            objects.display()
        ));
    canary(["explain", "--host", "x", "-f", objects.to_str().unwrap()])
        .code(1)
        .stderr_is(&format!(
            "error: {}:4:70: nesting deeper than 64 levels is over the limit for a manifest file",
            objects.display()
        ));
}

#[test]
fn more_services_than_the_limit_is_one_problem() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "spec.yaml", &spec_with_services(1_001));
    canary(["render", "-f", spec.to_str().unwrap()])
        .code(1)
        .stderr_is(
            "error: invalid release spec (1 problem):\n  spec.services: 1,001 services is over \
             the limit of 1,000 services in one release",
        );
}

#[test]
fn a_long_problem_list_is_capped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let text = spec_with_services(200).replace("{version: v2}", "{version: \"bad version\"}");
    let spec = write(dir.path(), "spec.yaml", &text);
    let run = canary(["plan", "-f", spec.to_str().unwrap()]).code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines[0], "error: invalid release spec (200 problems):");
    assert_eq!(lines.len(), 1 + 50 + 1, "{}", run.stderr);
    assert_eq!(lines[51], "  … and 150 more");
}

#[test]
fn a_bad_request_timeout_is_a_usage_error() {
    let run = canary(["--request-timeout", "banana", "list"]).code(2);
    run.stderr_is(
        "error: invalid --request-timeout \"banana\": unknown unit \"banana\" (units are ms, s, m, \
         h and d, e.g. 30s, 5m, 1h30m; a bare number is seconds; 0 for none)",
    );
}

#[test]
fn plan_prints_the_stages_it_reached_when_max_decisions_is_hit() {
    let run = TestCommand::new([
        "plan",
        "-f",
        "examples/frontend-backend.yaml",
        "--max-decisions",
        "2",
    ])
    .in_repo()
    .run()
    .code(1)
    .stderr_is(
        "error: the policy did not finish within 2 decisions (--max-decisions): the plan \
             stops at stage 1 (10%), still Progressing",
    );
    assert!(
        run.stdout.starts_with("stage 0 (testers) — advance: "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\nstage 1 (10%) — advance: "),
        "{}",
        run.stdout
    );
}

/// A server that answers every request with an HTML page (a proxy's error page, a web server).
#[test]
fn an_html_answer_is_not_reported_as_an_unreachable_server() {
    let html = "<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n";
    for code in [502, 200] {
        let server = serve(move |_, _, _| (code, html.to_string()));
        let dir = tempfile::tempdir().unwrap();
        let config = kubeconfig(dir.path(), &server.url, "shop");
        let answer = match code {
            502 => "HTTP 502 with an HTML page".to_string(),
            _ => "with a body that is not Kubernetes JSON (expected value at line 1 column 1)"
                .to_string(),
        };
        canary(["--kubeconfig", config.to_str().unwrap(), "lint"])
            .code(1)
            .stderr_is(&format!(
                "error: get Namespace shop: the server answered {answer}, not a Kubernetes API \
                 response (check the server address of your kubeconfig context with `kubectl \
                 config view --minify`: it may point at a proxy or a web page)"
            ));
    }
}

#[test]
fn a_failing_credential_plugin_is_one_line_with_its_stderr() {
    let server = serve(|_, _, _| (500, status(500, "InternalError", "no request expected")));
    let dir = tempfile::tempdir().unwrap();
    let plugin = write(
        dir.path(),
        "credential.sh",
        "#!/bin/sh\necho 'token expired: run login' >&2\nexit 3\n",
    );
    let config = write(
        dir.path(),
        "exec.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n\
             \x20     command: /bin/sh\n      args: [\"{}\"]\n      interactiveMode: Never\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: shop}}\ncurrent-context: c\n",
            server.url,
            plugin.display()
        ),
    );
    let run = canary(["--kubeconfig", config.to_str().unwrap(), "lint"]).code(1);
    run.stderr_is(&format!(
        "error: cannot use kubeconfig {}: the credential plugin /bin/sh exited with status 3: \
         token expired: run login (check users[].user.exec of your kubeconfig context)",
        config.display()
    ));
    assert!(server.requests().is_empty());
}

#[test]
fn a_missing_file_in_kubeconfig_env_is_skipped_as_kubectl_does() {
    let server = serve(|_, path, _| {
        if path.starts_with("/api/v1/namespaces/shop/services/reviews") {
            (
                404,
                status(404, "NotFound", "services \"reviews\" not found"),
            )
        } else if path.starts_with("/api/v1/namespaces/shop") && !path.contains("/services") {
            (
                200,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
                    .to_string(),
            )
        } else {
            (
                200,
                r#"{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []}"#
                    .to_string(),
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let good = kubeconfig(dir.path(), &server.url, "shop");
    let missing = dir.path().join("missing.kubeconfig");
    let list = std::env::join_paths([missing.as_path(), good.as_path()]).unwrap();
    let run = TestCommand::new(["init", "reviews"])
        .env("KUBECONFIG", &list)
        .run()
        .code(1);
    run.stderr_is(
        "error: service reviews not found in namespace shop (check the name and -n: kubectl get \
         services -n shop)",
    );
    assert!(
        !server.requests().is_empty(),
        "the good kubeconfig was used"
    );
    // Every file missing: said once, with the list.
    let none = std::env::join_paths([missing.as_path(), Path::new("/also/missing")]).unwrap();
    TestCommand::new(["init", "reviews"])
        .env("KUBECONFIG", &none)
        .run()
        .code(1)
        .stderr_is(&format!(
            "error: cannot use kubeconfig: no kubeconfig found: none of the files of $KUBECONFIG \
             exists ({}, /also/missing); pass --kubeconfig FILE",
            missing.display()
        ));
}

#[test]
fn the_example_specs_are_far_below_the_limits() {
    // The limits must never refuse a real spec.
    for name in [
        "voting-app.yaml",
        "frontend-backend.yaml",
        "bookinfo-reviews.yaml",
    ] {
        let text = std::fs::read_to_string(example(name)).unwrap();
        assert!(text.len() < 64 * 1024, "{name}");
        TestCommand::new(["render", "-f", example(name).to_str().unwrap()])
            .run()
            .code(0);
    }
}
