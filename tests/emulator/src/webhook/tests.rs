use serde_json::json;

use super::*;

fn vs(http: Value) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "r", "namespace": "shop"}, "spec": {"hosts": ["r"], "http": http}})
}

fn messages(a: &Admission) -> Vec<String> {
    a.errors.iter().map(ToString::to_string).collect()
}

#[test]
fn weights_are_relative_but_not_negative_nor_all_zero() {
    let a = admit(&vs(json!([{"route": [
        {"destination": {"host": "r", "subset": "v1"}, "weight": -10},
        {"destination": {"host": "r", "subset": "v2"}, "weight": 110}]}])));
    assert_eq!(
        messages(&a),
        ["spec.http[0].route[0].weight: weight -10 < 0"]
    );
    let a = admit(&vs(json!([{"route": [
        {"destination": {"host": "r", "subset": "v1"}, "weight": 0},
        {"destination": {"host": "r", "subset": "v2"}, "weight": 0}]}])));
    assert_eq!(
        messages(&a),
        ["spec.http[0].route: total destination weight = 0"]
    );
    // 550 and 500 are fine; a single destination with weight 0 takes everything.
    assert!(admit(&vs(json!([{"route": [
        {"destination": {"host": "a"}, "weight": 550},
        {"destination": {"host": "b"}, "weight": 500}]}])))
    .allowed());
    assert!(admit(&vs(
        json!([{"route": [{"destination": {"host": "r"}, "weight": 0}]}])
    ))
    .allowed());
}

#[test]
fn hosts_are_required_unless_delegate_and_unique() {
    let mut obj = vs(json!([{"route": [{"destination": {"host": "r"}}]}]));
    obj["spec"]["hosts"] = json!(["*.foo.bar", "*.bar"]);
    assert_eq!(
        messages(&admit(&obj)),
        ["spec.hosts[1]: duplicate hosts in virtual service: *.foo.bar & *.bar"]
    );
    obj["spec"]["hosts"] = json!([]);
    obj["spec"]["gateways"] = json!(["test"]);
    assert_eq!(
        messages(&admit(&obj)),
        ["spec.gateways: delegate virtual service must have no gateways specified"]
    );
}

#[test]
fn header_names_regexes_and_gateways() {
    let a = admit(&vs(json!([
        {"match": [{"headers": {"X-Requested-With": {"exact": "v"}, "::": {"exact": "v"}},
                    "withoutHeaders": {"end-user": {"regex": "*"}},
                    "uri": {"regex": "(?=x)"}, "gateways": ["bad/ns/x"]}],
         "route": [{"destination": {"host": "r"}}]}])));
    assert_eq!(
        messages(&a),
        [
            "spec.http[0].match[0].headers: header name :: is not a valid header name",
            "spec.http[0].match[0].uri.regex: \"uri\": look-around is not supported by RE2",
            "spec.http[0].match[0].gateways[0]: invalid value for gateway name: \"ns/x\"",
        ]
    );
}

#[test]
fn unreachable_rules_and_ineffective_matches_warn_as_istio_does() {
    // analyzeUnreachableHTTPRules: a block equal to an earlier one (names aside), a rule all of
    // whose blocks are such, rules after one without matches.
    let a = admit(&vs(json!([
        {"match": [{"uri": {"prefix": "/a"}}, {"name": "all"}], "route": [{"destination": {"host": "r"}}]},
        {"match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"host": "r"}}]},
        {"match": [{}], "route": [{"destination": {"host": "r"}}]},
        {"route": [{"destination": {"host": "r"}}]},
        {"name": "late", "match": [{"uri": {"exact": "/x"}}], "route": [{"destination": {"host": "r"}}]},
        {"route": [{"destination": {"host": "r"}}]}])));
    assert!(a.allowed());
    assert_eq!(
        a.warnings,
        [
            "spec.http[2]: virtualService rule #2 match #0 is not used (duplicate/overlapping match in rule #0)",
            "spec.http[2]: virtualService rule #2 not used (all matches used by prior rules)",
            "spec.http[4]: virtualService rule \"late\" not used (route without matches defined before)",
            "spec.http[5]: virtualService rule #5 not used (only the last rule can have no matches)",
        ]
    );
    // A shorter prefix with the same conditions (no method is GET) takes the longer one: Istio's
    // "non-method-get" case.
    let a = admit(&vs(json!([
        {"match": [{"uri": {"prefix": "/api/v1/product"}},
                   {"uri": {"prefix": "/api/v1/products"}, "method": {"exact": "GET"}}],
         "route": [{"destination": {"host": "r"}}]}])));
    assert_eq!(
        a.warnings,
        ["spec.http[0]: virtualService rule #0 match #1 of prefix /api/v1/products is not used (duplicate/overlapping match in rule #0 of prefix /api/v1/product on #0)"]
    );
    // A different method is not covered.
    let a = admit(&vs(json!([
        {"match": [{"uri": {"prefix": "/api/v1/product"}},
                   {"uri": {"prefix": "/api/v1/products"}, "method": {"exact": "POST"}}],
         "route": [{"destination": {"host": "r"}}]}])));
    assert_eq!(a.warnings, Vec::<String>::new());
}

#[test]
fn destination_rule_subsets_and_traffic_policy() {
    let dr = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "r", "namespace": "shop"}, "spec": {"host": "r",
        "trafficPolicy": {"connectionPool": {}},
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "V_2", "labels": {"key_": "x"}},
            {"name": "v3"}]}});
    assert_eq!(
        messages(&admit(&dr)),
        [
            "spec.trafficPolicy.connectionPool: connection pool must have at least one field",
            "spec.subsets[1].name: duplicate subset names: v1",
            "spec.subsets[2].name: subset name is invalid: V_2",
            "spec.subsets[2].labels: invalid tag key: \"key_\"",
        ]
    );
}

#[test]
fn peer_authentication_modes_and_ports() {
    let pa = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICTER"},
        "portLevelMtls": {"8080": {"mode": "STRICT"}}}});
    let a = admit(&pa);
    assert_eq!(
        messages(&a),
        [
            r#"spec.mtls.mode: Unsupported value: "STRICTER": supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT""#,
            "spec.portLevelMtls: mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls requires selector)",
        ]
    );
    let s = denial_status(&a);
    assert_eq!(s["code"], 400);
    assert_eq!(s.get("reason"), None);
    assert_eq!(
        s["message"],
        "admission webhook \"validation.istio.io\" denied the request: configuration is invalid: spec.mtls.mode: Unsupported value: \"STRICTER\": supported values: \"UNSET\", \"DISABLE\", \"PERMISSIVE\", \"STRICT\"; spec.portLevelMtls: mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls requires selector)"
    );
}

#[test]
fn the_always_reject_annotation_refuses() {
    let mut obj = vs(json!([{"route": [{"destination": {"host": "r"}}]}]));
    obj["metadata"]["annotations"] = json!({ALWAYS_REJECT_ANNOTATION: "true"});
    assert_eq!(
        messages(&admit(&obj)),
        ["metadata.annotations: \"internal.istio.io/webhook-always-reject\" annotation found, rejecting"]
    );
}
