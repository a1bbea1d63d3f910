use super::*;

/// A valid spec exercising every optional part.
const FULL: &str = r#"apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {name: voting-v2, namespace: voting}
spec:
  services:
    - name: voting-app
      versionLabel: version
      stable: {version: "1.0"}
      canary: {version: "2.0", image: "repo/voting-app:2.0"}
      gateways: [istio-system/voting-gateway]
      hosts: ["*"]
    - name: analytics
      appLabel: app.kubernetes.io/name
      stable: {version: "1.0"}
      canary: {version: "2.0"}
  policy:
    module: builtin:progressive
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    config:
      testers: {cookie: "user=tester"}
      chain: true
      steps: [10, 50, 100]
      pause: 5m
    limits: {memoryMiB: 16, fuel: 1000000, timeoutMs: 500}
  analysis:
    prometheus: http://prometheus.istio-system:9090
    metrics:
      - {name: success-rate, template: request-success-rate}
      - {name: errors, query: "sum(rate(x{a=\"{{service}}\"}[{{interval}}]))"}
  hooks:
    - {name: freeze, url: "https://hooks.example.com/freeze", on: [pre-step, pre-promote], timeout: 5s}
  mtls: strict
"#;

/// A valid minimal spec; tests replace parts of it.
const MINIMAL: &str = r#"apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {name: r, namespace: ns}
spec:
  services:
    - name: svc
      stable: {version: "1.0"}
      canary: {version: "2.0"}
  policy:
    module: builtin:progressive
"#;

fn with_config(config: &str) -> String {
    format!("{MINIMAL}    config:\n{config}")
}

fn invalid(yaml: &str) -> Vec<FieldError> {
    match parse_str(yaml, "t.yaml") {
        Err(SpecError::Invalid(errors)) => errors,
        other => panic!("expected SpecError::Invalid, got {other:?}"),
    }
}

/// `path: message` of every problem.
fn problems(yaml: &str) -> Vec<String> {
    invalid(yaml).iter().map(ToString::to_string).collect()
}

fn yaml_error(yaml: &str) -> String {
    match parse_str(yaml, "t.yaml") {
        Err(e @ SpecError::Yaml { .. }) => e.to_string(),
        other => panic!("expected SpecError::Yaml, got {other:?}"),
    }
}

#[test]
fn full_spec_parses_with_every_field() {
    let release = parse_str(FULL, "t.yaml").expect("valid");
    assert_eq!(release.name(), "voting-v2");
    assert_eq!(release.namespace(), "voting");
    let app = &release.spec.services[0];
    assert_eq!(app.app_label, "app");
    assert_eq!(app.canary.image.as_deref(), Some("repo/voting-app:2.0"));
    assert_eq!(app.hosts, ["*"]);
    assert_eq!(release.spec.services[1].version_label, "version");
    let limits = release.spec.policy.limits.expect("limits");
    assert_eq!(limits.memory_mib, Some(16));
    assert_eq!(limits.timeout_ms, Some(500));
    assert_eq!(release.spec.mtls, Some(MtlsMode::Strict));
    assert_eq!(
        release.spec.policy.config["testers"]["cookie"],
        serde_json::json!("user=tester")
    );
    let analysis = release.spec.analysis.as_ref().expect("analysis");
    assert_eq!(
        analysis.prometheus.address.as_deref(),
        Some("http://prometheus.istio-system:9090"),
        "a bare URL is short for {{address: URL}}"
    );
    assert_eq!(analysis.interval(), std::time::Duration::from_secs(60));
    assert_eq!(
        analysis.metrics[0].template,
        Some(super::MetricTemplate::RequestSuccessRate)
    );
    assert_eq!(
        release.spec.hooks[0].on,
        [super::HookEvent::PreStep, super::HookEvent::PrePromote]
    );
}

#[test]
fn release_info_maps_services_subsets_labels_and_entry() {
    let info = parse_str(FULL, "t.yaml").unwrap().release_info();
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "voting-v2",
            "namespace": "voting",
            "services": [
                {"name": "voting-app", "host": "voting-app",
                 "stable": {"subset": "v1-0", "labels": {"app": "voting-app", "version": "1.0"}},
                 "canary": {"subset": "v2-0", "labels": {"app": "voting-app", "version": "2.0"}},
                 "entry": true, "gateways": ["istio-system/voting-gateway"]},
                {"name": "analytics", "host": "analytics",
                 "stable": {"subset": "v1-0",
                            "labels": {"app.kubernetes.io/name": "analytics", "version": "1.0"}},
                 "canary": {"subset": "v2-0",
                            "labels": {"app.kubernetes.io/name": "analytics", "version": "2.0"}},
                 "entry": false, "gateways": []}
            ]
        })
    );
}

#[test]
fn entry_defaults_to_gateway_services_else_the_first() {
    let two = MINIMAL.replace(
        "  policy:",
        "    - name: second\n      stable: {version: v1}\n      canary: {version: v2}\n  policy:",
    );
    let release = parse_str(&two, "t").unwrap();
    assert!(release.is_entry(0));
    assert!(!release.is_entry(1));
    assert!(!release.is_entry(2));

    let second_has_gateway = two.replace(
        "canary: {version: v2}",
        "canary: {version: v2}\n      gateways: [istio-system/gw]",
    );
    let release = parse_str(&second_has_gateway, "t").unwrap();
    assert!(!release.is_entry(0));
    assert!(release.is_entry(1));

    let explicit = two.replace(
        "canary: {version: v2}",
        "canary: {version: v2}\n      entry: true",
    );
    let release = parse_str(&explicit, "t").unwrap();
    assert!(release.is_entry(0) && release.is_entry(1));
}

#[test]
fn no_entry_service_is_refused() {
    let none = MINIMAL.replace(
        "canary: {version: \"2.0\"}",
        "canary: {version: \"2.0\"}\n      entry: false",
    );
    assert_eq!(
        problems(&none),
        [
            "spec.services: no entry service: set `entry: true` on the service that receives \
          traffic from outside the release"
        ]
    );
}

#[test]
fn serialises_back_to_an_equal_release() {
    let release = parse_str(FULL, "t.yaml").unwrap();
    let yaml = serde_yaml::to_string(&release).unwrap();
    assert_eq!(parse_str(&yaml, "again").unwrap(), release);
    let minimal = parse_str(MINIMAL, "t").unwrap();
    let yaml = serde_yaml::to_string(&minimal).unwrap();
    assert!(!yaml.contains("config"), "{yaml}");
    assert_eq!(parse_str(&yaml, "again").unwrap(), minimal);
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    assert_eq!(
        yaml_error("apiVersion: canary.kubectl.dev/v1alpha1\nkind: \"Release\nmetadata: {}\n"),
        "t.yaml:4:1: kind: found unexpected end of stream at line 4 column 1, while scanning a \
         quoted scalar at line 2 column 7"
    );
    let e = parse_str(
        "apiVersion: v1\nkind: Release\nmetadata: {name: a, namespace: b]\n",
        "t.yaml",
    )
    .unwrap_err();
    match e {
        SpecError::Yaml {
            line,
            column,
            ref message,
            ..
        } => {
            let e = message;
            assert_eq!((line, column), (Some(3), Some(33)), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_document_is_a_yaml_error() {
    for blank in ["", "# only a comment\n---\n", "---\n...\n"] {
        assert!(
            yaml_error(blank).contains("the document is empty"),
            "{blank:?}"
        );
    }
    assert_eq!(
        yaml_error("  \n"),
        "t.yaml: the document is empty; a Release needs apiVersion, kind, metadata and spec"
    );
}

#[test]
fn unknown_field_reports_its_path() {
    let typo = MINIMAL.replace("canary: {version: \"2.0\"}", "canary: {vesion: \"2.0\"}");
    assert_eq!(
        yaml_error(&typo),
        "t.yaml:8:16: spec.services[0].canary.vesion: unknown field `vesion`, expected \
         `version` or `image`"
    );
    let top = format!("{MINIMAL}extra: 1\n");
    assert_eq!(
        yaml_error(&top),
        "t.yaml:11:1: extra: unknown field `extra`, expected one of `apiVersion`, `kind`, \
         `metadata`, `spec`"
    );
}

#[test]
fn wrong_types_and_missing_fields_report_their_path() {
    let number = MINIMAL.replace("stable: {version: \"1.0\"}", "stable: {version: 1.0}");
    assert_eq!(
        yaml_error(&number),
        "t.yaml:7:25: spec.services[0].stable.version: version 1.0 is a YAML number; quote it \
         as written, e.g. \"1.0\""
    );
    let missing = MINIMAL.replace("metadata: {name: r, namespace: ns}", "metadata: {name: r}");
    assert_eq!(
        yaml_error(&missing),
        "t.yaml:3:11: metadata: missing field `namespace`"
    );
    let mtls = format!("{MINIMAL}  mtls: strikt\n");
    assert_eq!(
        yaml_error(&mtls),
        "t.yaml:11:9: spec.mtls: unknown variant `strikt`, expected one of `strict`, \
         `permissive`, `disable`"
    );
}

#[test]
fn duplicate_services_are_refused() {
    let yaml = MINIMAL.replace(
        "  policy:",
        "    - name: svc\n      stable: {version: v1}\n      canary: {version: v2}\n  policy:",
    );
    let errors = invalid(&yaml);
    assert_eq!(
        errors,
        [FieldError::new(
            "spec.services[1].name",
            "svc",
            "duplicate service \"svc\" (already at spec.services[0])"
        )]
    );
}

#[test]
fn non_dns1123_names_are_refused() {
    let yaml = MINIMAL
        .replace("name: r,", "name: My_Release,")
        .replace("namespace: ns", "namespace: ns.x")
        .replace("- name: svc", "- name: Svc");
    assert_eq!(
        problems(&yaml),
        [
            "metadata.name: invalid DNS-1123 label \"My_Release\": 'M' is not allowed (lower-case \
             letters, digits and '-' only)",
            "metadata.namespace: invalid DNS-1123 label \"ns.x\": '.' is not allowed (lower-case \
             letters, digits and '-' only)",
            "spec.services[0].name: invalid DNS-1123 label \"Svc\": 'S' is not allowed \
             (lower-case letters, digits and '-' only)",
        ]
    );
}

#[test]
fn versions_must_differ_and_map_to_subsets() {
    let same = MINIMAL.replace("{version: \"2.0\"}", "{version: \"1.0\"}");
    assert_eq!(
        problems(&same),
        [
            "spec.services[0].canary.version: \"1.0\" is also the stable version; the canary must \
          be another version"
        ]
    );
    let collide = MINIMAL.replace("{version: \"2.0\"}", "{version: \"1_0\"}");
    assert_eq!(
        problems(&collide),
        ["spec.services[0].canary.version: \"1_0\" and stable version \"1.0\" both map to subset \
          name \"v1-0\"; choose versions that differ in more than case, '.' and '_'"]
    );
    let bad = MINIMAL.replace("{version: \"2.0\"}", "{version: \"2.0/beta\"}");
    let errors = invalid(&bad);
    assert_eq!(errors[0].path, "spec.services[0].canary.version");
    assert_eq!(errors[0].value, "2.0/beta");
    assert_eq!(
        errors[0].message,
        "invalid version \"2.0/beta\": '/' is not allowed in a label value (letters, digits, '-', \
         '_' and '.' only)"
    );
}

#[test]
fn gateways_hosts_and_labels_are_checked() {
    let yaml = MINIMAL.replace(
        "canary: {version: \"2.0\"}",
        "canary: {version: \"2.0\", image: \"a b\"}\n      versionLabel: app\n      \
         gateways: [mesh, gw, Istio/gw, ns/gw, ns/gw]\n      hosts: [\"*\", \"*.example.com\", \"Bad Host\"]",
    );
    assert_eq!(
        problems(&yaml),
        [
            "spec.services[0].versionLabel: \"app\" is also the appLabel; the version needs its \
             own label",
            "spec.services[0].canary.image: invalid image \"a b\": must be a non-empty image \
             reference without spaces",
            "spec.services[0].gateways[0]: \"mesh\" is not an ingress gateway; mesh traffic is \
             always routed, list ingress gateways only",
            "spec.services[0].gateways[1]: gateway \"gw\" needs its namespace: write \
             namespace/name (e.g. istio-system/gw)",
            "spec.services[0].gateways[2]: invalid gateway reference \"Istio/gw\": namespace \
             \"Istio\": 'I' is not allowed (lower-case letters, digits and '-' only)",
            "spec.services[0].gateways[4]: duplicate gateway \"ns/gw\"",
            "spec.services[0].hosts[2]: invalid host \"Bad Host\": must be \"*\", a DNS name or \
             *.<DNS name>, lower case",
        ]
    );
    let hosts_only = MINIMAL.replace(
        "canary: {version: \"2.0\"}",
        "canary: {version: \"2.0\"}\n      hosts: [\"*\"]\n      appLabel: \"-x\"",
    );
    assert_eq!(
        problems(&hosts_only),
        [
            "spec.services[0].appLabel: invalid label key \"-x\": must be [prefix/]name, name up \
             to 63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit",
            "spec.services[0].hosts: hosts are only used with gateways; add gateways or remove \
             hosts",
        ]
    );
}

#[test]
fn policy_module_pin_and_limits() {
    for ok in [
        "builtin:progressive",
        "./org-policy.wasm",
        "/abs/p.wat",
        "https://example.com/p.wasm",
        "oci://ghcr.io/org/policy:1.0",
        "oci://ghcr.io/org/policy@sha256:abc",
    ] {
        let yaml = MINIMAL.replace("builtin:progressive", ok);
        assert!(parse_str(&yaml, "t").is_ok(), "{ok}");
    }
    let yaml = MINIMAL.replace(
        "module: builtin:progressive",
        "module: builtin:Prog\n    sha256: abc\n    limits: {fuel: 0}",
    );
    assert_eq!(
        problems(&yaml),
        [
            "spec.policy.module: invalid built-in policy name \"Prog\": 'P' is not allowed \
             (lower-case letters, digits and '-' only)",
            "spec.policy.sha256: invalid sha256 pin \"abc\": must be 64 hex digits (the output of \
             `sha256sum` or `kubectl canary policy inspect`)",
            "spec.policy.limits.fuel: must be at least 1 (omit it to use the default)",
        ]
    );
    let yaml = MINIMAL.replace("builtin:progressive", "policy.so");
    assert_eq!(
        problems(&yaml),
        ["spec.policy.module: invalid policy module \"policy.so\": must be builtin:<name>, a path \
          to a .wasm or .wat file, an https:// URL or an oci:// reference"]
    );
    // The config's shape is the module's: the spec accepts any value and the policy judges it
    // (plugin/tests/policy_config.rs).
    assert!(parse_str(&with_config("      - 1\n"), "t").is_ok());
}

#[test]
fn analysis_is_checked() {
    let yaml = format!(
        "{MINIMAL}  analysis:\n    prometheus: prometheus:9090\n    interval: 0s\n    metrics:\n      \
         - {{name: ok, query: \"x{{a=\\\"{{{{svc}}}}\\\"}}\"}}\n      \
         - {{name: ok, query: \" \"}}\n      \
         - {{name: both, query: q, template: request-rate}}\n      \
         - {{name: none}}\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "spec.analysis.prometheus.address: invalid Prometheus URL \"prometheus:9090\": must be \
             http:// or https:// with a host",
            "spec.analysis.interval: must be at least 1s",
            "spec.analysis.metrics[0].query: unknown variable {{svc}} (known: {{service}}, \
             {{namespace}}, {{version}}, {{role}}, {{interval}})",
            "spec.analysis.metrics[1].name: duplicate metric \"ok\" (already at \
             spec.analysis.metrics[0])",
            "spec.analysis.metrics[1].query: must not be empty",
            "spec.analysis.metrics[2]: set template or query, not both",
            "spec.analysis.metrics[3]: set template (request-success-rate, request-duration-p99, \
             ...) or query (PromQL)",
        ]
    );
    let yaml = format!(
        "{MINIMAL}  analysis:\n    prometheus: {{service: istio-system/prometheus, caFile: /ca.pem, timeout: 10m}}\n    interval: 1x\n    metrics:\n      \
         - {{name: ok, template: request-success-rate}}\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "spec.analysis.prometheus.service: invalid Prometheus service \
             \"istio-system/prometheus\": expected namespace/name:port, e.g. \
             istio-system/prometheus:9090",
            "spec.analysis.prometheus.caFile: only with address: through the service proxy, the \
             kubeconfig's credentials and the API server's CA are used",
            "spec.analysis.prometheus.timeout: \"10m\" is longer than the most allowed, 5m",
            "spec.analysis.interval: invalid duration \"1x\": unknown unit \"x\" (units are ms, s, \
             m, h and d, e.g. 30s, 5m, 1h30m; a bare number is seconds)",
        ]
    );
}

#[test]
fn an_unknown_template_is_refused_naming_the_field() {
    let yaml = format!(
        "{MINIMAL}  analysis:\n    prometheus: {{address: \"http://p:9090\"}}\n    metrics:\n      \
         - {{name: ok, template: request-sucess-rate}}\n"
    );
    let err = parse_str(&yaml, "t.yaml").unwrap_err().to_string();
    assert!(
        err.contains("spec.analysis.metrics[0].template: unknown variant `request-sucess-rate`, expected one of `request-success-rate`, `request-duration-p99`, `request-duration-p90`, `request-duration-p50`, `request-rate`"),
        "{err}"
    );
}

#[test]
fn hooks_are_checked() {
    let yaml = format!(
        "{MINIMAL}  hooks:\n    \
         - {{name: Freeze, url: \"ftp://x\", on: [], retries: 9, timeout: 0s}}\n    \
         - {{name: Freeze, url: \"http://x/h\", on: [event]}}\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "spec.hooks[0].name: invalid hook name \"Freeze\": 'F' is not allowed (lower-case \
             letters, digits and '-' only)",
            "spec.hooks[0].url: invalid hook URL \"ftp://x\": must be http:// or https:// with a \
             host",
            "spec.hooks[0].on: list when it is called: pre-start, pre-step, pre-promote, \
             post-promote, rollback or event",
            "spec.hooks[0].timeout: must be more than 0",
            "spec.hooks[0].retries: 9 retries; at most 5",
            "spec.hooks[1].name: duplicate hook \"Freeze\" (already at spec.hooks[0])",
        ]
    );
}

#[test]
fn several_errors_are_all_reported_one_per_line() {
    let yaml = r#"apiVersion: canary.kubectl.dev/v1beta9
kind: Rollout
metadata: {name: r, namespace: ns}
spec:
  services:
    - name: a
      stable: {version: "1.0"}
      canary: {version: "1.0"}
    - name: a
      stable: {version: v1}
      canary: {version: v2}
      gateways: [x/y/z]
  policy:
    module: builtin:progressive
    config:
      steps: [50, 120]
      testers: {cookie: "user=tester"}
"#;
    let error = parse_str(yaml, "t.yaml").unwrap_err();
    assert_eq!(
        error.to_string(),
        // The policy's config (steps: [50, 120]) is the module's to judge, not the spec's
        // (`policy::config`; tests/policy_config.rs).
        "invalid release spec (5 problems):\n  \
         apiVersion: unsupported apiVersion \"canary.kubectl.dev/v1beta9\"; this plugin reads \
         canary.kubectl.dev/v1alpha1\n  \
         kind: kind \"Rollout\" is not Release\n  \
         spec.services[0].canary.version: \"1.0\" is also the stable version; the canary must be \
         another version\n  \
         spec.services[1].name: duplicate service \"a\" (already at spec.services[0])\n  \
         spec.services[1].gateways[0]: invalid gateway reference \"x/y/z\": must be `mesh`, \
         `name` or `namespace/name`"
    );
}

#[test]
fn load_file_reads_files_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("release.yaml");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(load_file(&path).unwrap().name(), "r");

    let missing = dir.path().join("missing.yaml");
    let error = load_file(&missing).unwrap_err();
    assert!(matches!(error, SpecError::Io { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read release spec {}: ", missing.display())),
        "{error}"
    );

    std::fs::write(&path, "kind: [").unwrap();
    let error = load_file(&path).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}:1:", path.display())),
        "{error}"
    );
}

#[test]
fn no_panic_on_truncated_or_mangled_input() {
    let mut inputs: Vec<String> = Vec::new();
    for (i, _) in FULL.char_indices() {
        inputs.push(FULL[..i].to_string());
    }
    for (i, c) in FULL.char_indices().step_by(7) {
        for replacement in [
            "", ":", "[", "\"", "\t", "- ", "{", "é", "\u{0}", "&a", "*a", "!!",
        ] {
            let mut mangled = FULL.to_string();
            mangled.replace_range(i..i + c.len_utf8(), replacement);
            inputs.push(mangled);
        }
    }
    let mut accepted = 0;
    for input in &inputs {
        match parse_str(input, "fuzz") {
            Ok(release) => {
                accepted += 1;
                // Whatever is accepted is usable downstream.
                let info = release.release_info();
                assert!(info.services.iter().all(|s| !s.stable.subset.is_empty()));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(accepted > 0 && accepted < inputs.len());
}
