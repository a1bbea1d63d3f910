//! The schema validator against Istio's real CRD bundle (`../shared/fixtures/istio/` beside the
//! workspace, or the file named by `ISTIO_CRDS`): the seed objects validate clean, broken ones get
//! the API server's exact messages. Skipped, with a message, when the bundle is absent.

mod common;

use std::sync::OnceLock;

use kube_emulator::schema::{invalid_status, CrdSet, FieldErrorKind, Gvk, UnknownFields};
use serde_json::{json, Value};

/// The compiled bundle, or `None` (a skip with a message; a failure under `CI=true`) when the
/// fixture is absent.
fn crds() -> Option<&'static CrdSet> {
    static SET: OnceLock<Option<CrdSet>> = OnceLock::new();
    SET.get_or_init(|| {
        let path = common::istio_crds().filter(|p| p.exists());
        let path = common::require(
            path,
            "Istio's CRD bundle (../shared/fixtures/istio, or ISTIO_CRDS)",
        )?;
        let yaml = std::fs::read_to_string(&path).expect("read the Istio CRD bundle");
        Some(CrdSet::from_yaml(&yaml).expect("the Istio bundle compiles"))
    })
    .as_ref()
}

macro_rules! crds_or_skip {
    () => {
        match crds() {
            Some(c) => c,
            None => return,
        }
    };
}

fn messages(set: &CrdSet, obj: &Value, unknown: UnknownFields) -> Vec<String> {
    set.validate(obj, unknown)
        .expect("kind is served")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

// ---- seed objects, converted to networking.istio.io/v1 / security.istio.io/v1 ----

/// Seed 002: reviews 50/50 between v1 and v3.
fn vs_reviews() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
            {"destination": {"host": "reviews", "subset": "v3"}, "weight": 50}]}]}})
}

/// Seed 003: tester cookie on the ingress gateway.
fn vs_frontend() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "frontend-route", "namespace": "weather"},
        "spec": {"hosts": ["*"], "gateways": ["istio-system/weather-gateway"], "http": [
            {"match": [{"headers": {"cookie": {"regex": "^(.*?;)?(user=tester)(;.*)?$"}}}],
             "route": [{"destination": {"host": "frontend", "subset": "v2"}}]},
            {"route": [{"destination": {"host": "frontend", "subset": "v1"}}]}]}})
}

/// Seed 003: forecast v2 only for v2 callers.
fn vs_forecast() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "forecast-route", "namespace": "weather"},
        "spec": {"hosts": ["forecast"], "http": [
            {"match": [{"sourceLabels": {"version": "v2"}}],
             "route": [{"destination": {"host": "forecast", "subset": "v2"}}]},
            {"route": [{"destination": {"host": "forecast", "subset": "v1"}}]}]}})
}

/// Seed 004: header tester match, then 90/10 with ports, an empty match block, `gateways: []`.
fn vs_backend() -> Value {
    let dest = |subset: &str, weight: i64| json!({"destination": {"host": "backend.default.svc.cluster.local", "subset": subset, "port": {"number": 80}}, "weight": weight});
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "backend", "namespace": "default"},
        "spec": {"gateways": [], "hosts": ["backend.default.svc.cluster.local"], "http": [
            {"match": [{"headers": {"canary": {"exact": "canary-tester"}}}], "route": [dest("v2", 100)]},
            {"match": [{"sourceLabels": {"app": "frontend", "version": "v2"}}], "route": [dest("v2", 100)]},
            {"match": [{}], "route": [dest("v1", 90), dest("v2", 10)]}]}})
}

fn dr_reviews() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"host": "reviews", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
            {"name": "v3", "labels": {"version": "v3"}}]}})
}

/// Seeds 000/003: subsets of a dotted version with mutual TLS.
fn dr_forecast() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "voting-analytics", "namespace": "voting"},
        "spec": {"host": "voting-analytics.voting.svc.cluster.local",
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
            "subsets": [{"name": "v1-0", "labels": {"version": "1.0"}},
                        {"name": "v1-1", "labels": {"version": "1.1"}}]}})
}

fn gateway() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "weather-gateway", "namespace": "istio-system"},
        "spec": {"selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}})
}

/// Seed 000: strict mTLS in the voting namespace.
fn peer_authentication() -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "voting"},
        "spec": {"mtls": {"mode": "STRICT"}}})
}

#[test]
fn every_kind_of_the_bundle_compiles() {
    let set = crds_or_skip!();
    for gvk in [
        Gvk::new("networking.istio.io", "v1", "VirtualService"),
        Gvk::new("networking.istio.io", "v1", "DestinationRule"),
        Gvk::new("networking.istio.io", "v1", "Gateway"),
        Gvk::new("networking.istio.io", "v1beta1", "VirtualService"),
        Gvk::new("networking.istio.io", "v1alpha3", "DestinationRule"),
        Gvk::new("security.istio.io", "v1", "PeerAuthentication"),
        Gvk::new("networking.istio.io", "v1alpha3", "EnvoyFilter"),
        Gvk::new("telemetry.istio.io", "v1", "Telemetry"),
    ] {
        assert!(set.get(&gvk).is_some(), "{gvk:?} is served");
    }
    let kinds: std::collections::BTreeSet<&str> = set.kinds().map(|g| g.kind.as_str()).collect();
    assert_eq!(kinds.len(), 15, "{kinds:?}");
    assert_eq!(set.definitions().len(), 15);
    let rules: usize = set.kinds().map(|g| set.get(g).unwrap().rule_count()).sum();
    let unsupported: Vec<_> = set
        .kinds()
        .flat_map(|g| {
            set.get(g)
                .unwrap()
                .unsupported_rules()
                .iter()
                .map(move |u| (g.clone(), u.clone()))
        })
        .collect();
    eprintln!(
        "{} schemas, {rules} CEL rules in all versions, {} unsupported",
        set.len(),
        unsupported.len()
    );
    for (gvk, u) in &unsupported {
        eprintln!(
            "  unsupported in {}/{}: {} ({})",
            gvk.api_version(),
            gvk.kind,
            u.rule.replace('\n', " "),
            u.reason
        );
    }
    assert!(
        rules > 345,
        "every served version carries its own copy of the 345 rules"
    );
    // Only rules calling Kubernetes' URL library (url(), isURL()) are out of the interpreter's reach.
    for (_, u) in &unsupported {
        assert!(
            u.rule.contains("url(") || u.rule.contains("isURL("),
            "{u:?}"
        );
    }
    // The routing kinds this project renders have every rule enforced.
    for gvk in [
        Gvk::new("networking.istio.io", "v1", "VirtualService"),
        Gvk::new("networking.istio.io", "v1", "DestinationRule"),
        Gvk::new("security.istio.io", "v1", "PeerAuthentication"),
    ] {
        let s = set.get(&gvk).unwrap();
        assert!(s.rule_count() > 0);
        assert!(
            s.unsupported_rules().is_empty(),
            "{gvk:?}: {:?}",
            s.unsupported_rules()
        );
    }
}

#[test]
fn seed_objects_validate_clean_and_unchanged() {
    let set = crds_or_skip!();
    for obj in [
        vs_reviews(),
        vs_frontend(),
        vs_forecast(),
        vs_backend(),
        dr_reviews(),
        dr_forecast(),
        gateway(),
        peer_authentication(),
    ] {
        let out = set.validate(&obj, UnknownFields::Strict).unwrap();
        let msgs: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
        assert!(msgs.is_empty(), "{}: {msgs:?}", obj["metadata"]["name"]);
        assert!(out.warnings.is_empty());
        assert_eq!(out.object, obj, "nothing pruned or defaulted");
    }
}

/// Durations, CORS, fault injection, retries, mirrors and traffic policies exercise most of the
/// CEL rules of VirtualService and DestinationRule with valid values: none may fire.
#[test]
fn rich_valid_objects_pass_every_cel_rule() {
    let set = crds_or_skip!();
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {"hosts": ["reviews"], "exportTo": ["."], "http": [{
            "name": "main",
            "match": [{"uri": {"prefix": "/api"}, "port": 9080, "ignoreUriCase": true,
                       "queryParams": {"debug": {"exact": "1"}}, "withoutHeaders": {"x-skip": {"exact": "1"}}}],
            "route": [{"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}}, "weight": 1,
                       "headers": {"request": {"set": {"x-canary": "no"}}}},
                      {"destination": {"host": "reviews", "subset": "v2"}, "weight": 3}],
            "timeout": "1.5s",
            "retries": {"attempts": 2, "perTryTimeout": "100ms", "retryOn": "gateway-error,connect-failure"},
            "fault": {"delay": {"fixedDelay": "1h2m3s", "percentage": {"value": 0.5}},
                      "abort": {"httpStatus": 503, "percentage": {"value": 1.0}}},
            "mirror": {"host": "reviews", "subset": "v3"}, "mirrorPercentage": {"value": 5.0},
            "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET"],
                           "maxAge": "24h", "allowCredentials": true}
        }],
        "tcp": [{"match": [{"port": 27017}], "route": [{"destination": {"host": "mongo", "port": {"number": 27017}}}]}]}});
    let dr = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {"host": "reviews", "workloadSelector": {"matchLabels": {"app": "reviews"}},
            "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": 100, "connectTimeout": "30ms",
                                           "tcpKeepalive": {"time": "7200s", "interval": "75s"}},
                                   "http": {"http2MaxRequests": 1000, "maxRequestsPerConnection": 10, "idleTimeout": "1m"}},
                "outlierDetection": {"consecutive5xxErrors": 7, "interval": "5m", "baseEjectionTime": "15m"},
                "loadBalancer": {"simple": "LEAST_REQUEST"},
                "portLevelSettings": [{"port": {"number": 80}, "loadBalancer": {"simple": "ROUND_ROBIN"}}],
                "tls": {"mode": "ISTIO_MUTUAL"}},
            "subsets": [{"name": "v1", "labels": {"version": "v1"},
                         "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "ttl": "0s"}}}}}]}});
    for obj in [vs, dr] {
        let msgs = messages(set, &obj, UnknownFields::Strict);
        assert!(msgs.is_empty(), "{}: {msgs:?}", obj["kind"]);
    }
}

#[test]
fn wrong_type_gets_the_apiserver_message() {
    let set = crds_or_skip!();
    let mut vs = vs_reviews();
    vs["spec"]["http"][0]["route"][0]["weight"] = json!("string");
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        [
            r#"spec.http[0].route[0].weight: Invalid value: "string": spec.http[0].route[0].weight in body must be of type integer: "string""#
        ]
    );
    // 50.0 is an integer for the API server, 50.5 is not.
    vs["spec"]["http"][0]["route"][0]["weight"] = json!(50.0);
    let out = set.validate(&vs, UnknownFields::Strict).unwrap();
    assert!(out.errors.is_empty());
    assert_eq!(out.object, vs_reviews(), "stored back as the integer 50");
    vs["spec"]["http"][0]["route"][0]["weight"] = json!(50.5);
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        [
            r#"spec.http[0].route[0].weight: Invalid value: "number": spec.http[0].route[0].weight in body must be of type integer: "number""#
        ]
    );
    let mut vs = vs_reviews();
    vs["spec"]["hosts"] = json!("reviews");
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        [
            r#"spec.hosts: Invalid value: "string": spec.hosts in body must be of type array: "string""#
        ]
    );
}

#[test]
fn bounds_print_like_go() {
    let set = crds_or_skip!();
    let mut dr = dr_reviews();
    dr["spec"]["trafficPolicy"] =
        json!({"tunnel": {"targetHost": "x", "targetPort": 4294967296u64}});
    assert_eq!(
        messages(set, &dr, UnknownFields::Strict),
        ["spec.trafficPolicy.tunnel.targetPort: Invalid value: 4294967296: spec.trafficPolicy.tunnel.targetPort in body should be less than or equal to 4.294967295e+09"]
    );
    dr["spec"]["trafficPolicy"] = json!({"tunnel": {"targetHost": "x", "targetPort": -1}});
    assert_eq!(
        messages(set, &dr, UnknownFields::Strict),
        ["spec.trafficPolicy.tunnel.targetPort: Invalid value: -1: spec.trafficPolicy.tunnel.targetPort in body should be greater than or equal to 0"]
    );
}

#[test]
fn missing_required_field() {
    let set = crds_or_skip!();
    let mut vs = vs_reviews();
    vs["spec"]["http"][0]["route"][1] = json!({"weight": 50});
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        ["spec.http[0].route[1].destination: Required value"]
    );
    let mut vs = vs_reviews();
    vs["spec"]["http"][0]["route"][0]["destination"] = json!({"subset": "v1"});
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        ["spec.http[0].route[0].destination.host: Required value"]
    );
    // A null for a non-nullable field is dropped first, then missing.
    vs["spec"]["http"][0]["route"][0]["destination"] = json!({"host": null, "subset": "v1"});
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        ["spec.http[0].route[0].destination.host: Required value"]
    );
}

#[test]
fn enum_value() {
    let set = crds_or_skip!();
    let mut pa = peer_authentication();
    pa["spec"]["mtls"]["mode"] = json!("STRICTER");
    assert_eq!(
        messages(set, &pa, UnknownFields::Strict),
        [
            r#"spec.mtls.mode: Unsupported value: "STRICTER": supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT""#
        ]
    );
    let mut dr = dr_forecast();
    dr["spec"]["trafficPolicy"]["tls"]["mode"] = json!("MUTUAL_ISTIO");
    assert_eq!(
        messages(set, &dr, UnknownFields::Strict),
        [
            r#"spec.trafficPolicy.tls.mode: Unsupported value: "MUTUAL_ISTIO": supported values: "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL""#
        ]
    );
}

#[test]
fn unknown_fields_strict_warn_ignore() {
    let set = crds_or_skip!();
    let mut vs = vs_reviews();
    vs["spec"]["http"][0]["foo"] = json!(1);
    vs["spec"]["bar"] = json!({"x": 1});

    let strict = set.validate(&vs, UnknownFields::Strict).unwrap();
    let msgs: Vec<String> = strict.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            r#"unknown field "spec.bar""#,
            r#"unknown field "spec.http[0].foo""#
        ]
    );
    assert!(strict
        .errors
        .iter()
        .all(|e| e.kind == FieldErrorKind::UnknownField));
    assert_eq!(strict.unknown_fields().len(), 2);

    let warn = set.validate(&vs, UnknownFields::Warn).unwrap();
    assert!(warn.errors.is_empty());
    assert_eq!(
        warn.warnings,
        [
            r#"unknown field "spec.bar""#,
            r#"unknown field "spec.http[0].foo""#
        ]
    );
    assert_eq!(warn.object, vs_reviews(), "pruned");

    let ignore = set.validate(&vs, UnknownFields::Ignore).unwrap();
    assert!(ignore.errors.is_empty() && ignore.warnings.is_empty());
    assert_eq!(ignore.object, vs_reviews(), "pruned");

    // Top-level type meta, metadata and a free-form (preserve-unknown-fields) status are kept.
    let mut with_status = vs_reviews();
    with_status["status"] = json!({"anything": {"goes": true}});
    let out = set.validate(&with_status, UnknownFields::Strict).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.object, with_status);
}

#[test]
fn cel_rule_violations() {
    let set = crds_or_skip!();
    // VirtualService: `duration(self) >= duration('1ms')` on timeouts.
    let mut vs = vs_reviews();
    vs["spec"]["http"][0]["timeout"] = json!("10s");
    assert!(messages(set, &vs, UnknownFields::Strict).is_empty());
    vs["spec"]["http"][0]["timeout"] = json!("0s");
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        [
            r#"spec.http[0].timeout: Invalid value: "string": must be a valid duration greater than 1ms"#
        ]
    );
    // DestinationRule: no wildcard in workload selector label keys and values.
    let mut dr = dr_reviews();
    dr["spec"]["workloadSelector"] = json!({"matchLabels": {"app": "rev*"}});
    assert_eq!(
        messages(set, &dr, UnknownFields::Strict),
        [
            r#"spec.workloadSelector.matchLabels[app]: Invalid value: "string": wildcard not allowed in label value match"#
        ]
    );
    dr["spec"]["workloadSelector"] = json!({"matchLabels": {"app*": "reviews"}});
    assert_eq!(
        messages(set, &dr, UnknownFields::Strict),
        [
            r#"spec.workloadSelector.matchLabels: Invalid value: "object": wildcard not allowed in label key match"#
        ]
    );
}

#[test]
fn one_of_string_match() {
    let set = crds_or_skip!();
    let mut vs = vs_frontend();
    vs["spec"]["http"][0]["match"][0]["headers"]["cookie"] = json!({"regex": "x", "exact": "y"});
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        [
            r#"<nil>: Invalid value: "": "spec.http[0].match[0].headers.cookie" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
}

#[test]
fn int_or_string_fields() {
    let set = crds_or_skip!();
    // The `observedGeneration` of every Istio status is `x-kubernetes-int-or-string` (with an
    // `anyOf` of integer and string, which fails too for other types).
    for generation in [json!(3), json!("3")] {
        let mut vs = vs_reviews();
        vs["status"] = json!({"observedGeneration": generation});
        assert!(messages(set, &vs, UnknownFields::Strict).is_empty());
    }
    let mut vs = vs_reviews();
    vs["status"] = json!({"observedGeneration": true});
    assert_eq!(
        messages(set, &vs, UnknownFields::Strict),
        [
            r#"status.observedGeneration: Invalid value: "boolean": status.observedGeneration in body must be of type integer,string: "boolean""#,
            r#"<nil>: Invalid value: "": "status.observedGeneration" must validate at least one schema (anyOf)"#
        ]
    );
}

#[test]
fn metadata_name_and_status_object() {
    let set = crds_or_skip!();
    let mut vs = vs_reviews();
    vs["metadata"]["name"] = json!("Reviews_1");
    vs["spec"]["http"][0]["route"][0]["weight"] = json!("x");
    let out = set.validate(&vs, UnknownFields::Strict).unwrap();
    assert_eq!(out.errors.len(), 2);
    assert_eq!(
        out.errors[0].to_string(),
        r#"metadata.name: Invalid value: "Reviews_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
    );
    let status = invalid_status(
        "VirtualService",
        "networking.istio.io",
        "Reviews_1",
        &out.field_errors(),
    );
    assert_eq!(status["code"], 422);
    assert_eq!(status["details"]["kind"], "VirtualService");
    assert_eq!(
        status["details"]["causes"][1]["field"],
        "spec.http[0].route[0].weight"
    );
    assert_eq!(
        status["details"]["causes"][1]["reason"],
        "FieldValueTypeInvalid"
    );
    assert!(status["message"].as_str().unwrap().starts_with(
        r#"VirtualService.networking.istio.io "Reviews_1" is invalid: [metadata.name: "#
    ));
}

#[test]
fn unknown_kind_is_an_error() {
    let set = crds_or_skip!();
    let obj = json!({"apiVersion": "networking.istio.io/v9", "kind": "VirtualService", "metadata": {"name": "x"}});
    let err = set.validate(&obj, UnknownFields::Strict).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"no matches for kind "VirtualService" in version "networking.istio.io/v9""#
    );
}

#[test]
fn webhook_admits_the_seeds_and_refuses_what_the_schema_lets_through() {
    use kube_emulator::webhook::admit;
    for obj in [
        vs_reviews(),
        vs_frontend(),
        vs_forecast(),
        vs_backend(),
        dr_reviews(),
        dr_forecast(),
        gateway(),
        peer_authentication(),
    ] {
        let a = admit(&obj);
        assert!(a.allowed(), "{}: {:?}", obj["metadata"]["name"], a.errors);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    }
    let set = crds_or_skip!();
    let mut vs = vs_reviews();
    vs["spec"]["http"][0]["route"][0]["weight"] = json!(-50);
    assert!(
        messages(set, &vs, UnknownFields::Strict).is_empty(),
        "the CRD schema accepts it"
    );
    let msgs: Vec<String> = admit(&vs).errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        ["spec.http[0].route[0].weight: Invalid value: -50: must be between 0 and 100"]
    );
}
