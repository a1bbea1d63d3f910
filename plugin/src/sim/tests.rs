use super::*;
use crate::istio::IstioObject;

/// Objects from YAML text (several documents).
fn table(yaml: &str) -> RouteTable {
    let objects = crate::manifest::parse_stream(yaml, "test.yaml")
        .unwrap()
        .into_iter()
        .filter_map(|s| IstioObject::from_value(&s.object).unwrap())
        .collect::<Vec<_>>();
    RouteTable::new(objects).unwrap()
}

fn dr(name: &str, ns: &str, subsets: &[&str]) -> String {
    let subsets: String = subsets
        .iter()
        .map(|s| format!("  - name: {s}\n    labels: {{version: {s}}}\n"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}\n  subsets:\n{subsets}---\n"
    )
}

fn shares(v: &Verdict) -> Vec<(Option<&str>, f64)> {
    v.destinations
        .iter()
        .map(|d| (d.subset.as_deref(), d.percent))
        .collect()
}

// Seed 003, verbatim objects (v1alpha3).
const SEED_003: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: forecast-route
  namespace: weather
spec:
  hosts:
  - forecast
  http:
  - match:
    - sourceLabels:
        version: v2
    route:
    - destination:
        host: forecast
        subset: v2
  - route:
    - destination:
        host: forecast
        subset: v1
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: frontend-route
  namespace: weather
spec:
  hosts:
  - "*"
  gateways:
  - istio-system/weather-gateway
  http:
  - match:
    - headers:
        cookie:
          regex: ^(.*?;)?(user=tester)(;.*)?$
    route:
    - destination:
        host: frontend
        subset: v2
  - route:
    - destination:
        host: frontend
        subset: v1
"#;

fn seed_003() -> RouteTable {
    table(&format!(
        "{}{}{SEED_003}",
        dr("forecast", "weather", &["v1", "v2"]),
        dr("frontend", "weather", &["v1", "v2"])
    ))
}

fn ingress() -> GatewayRef {
    GatewayRef::parse("istio-system/weather-gateway")
}

#[test]
fn seed_003_cookie_in_the_middle_of_the_header_reaches_v2() {
    let t = seed_003();
    let req = Request::new("weather.example.com")
        .gateway(ingress())
        .header("cookie", "session=abc;user=tester;theme=dark");
    let v = t.simulate(&req).unwrap();
    assert_eq!(v.outcome, Outcome::Route);
    assert_eq!(v.rule, Some(0));
    assert_eq!(shares(&v), [(Some("v2"), 100.0)]);
    assert_eq!(v.virtual_service.as_deref(), Some("weather/frontend-route"));
    assert!(v.trace[0]
        .line()
        .starts_with("rule #0 matched: header cookie ~ ^(.*?;)?(user=tester)(;.*)?$"));
}

/// Browsers separate cookies with `"; "`. Seed 003's regex has no room for the space, so a
/// tester cookie that is not the first one does NOT match in Istio either: it reaches v1.
#[test]
fn seed_003_regex_misses_a_browser_folded_cookie_that_is_not_first() {
    let t = seed_003();
    let req = Request::new("weather.example.com")
        .gateway(ingress())
        .cookie("session", "abc")
        .cookie("user", "tester")
        .cookie("theme", "dark");
    assert_eq!(
        req.headers["cookie"],
        "session=abc; user=tester; theme=dark"
    );
    let v = t.simulate(&req).unwrap();
    assert_eq!((v.rule, shares(&v)), (Some(1), vec![(Some("v1"), 100.0)]));
    // First in the header, it matches.
    let first = Request::new("w")
        .gateway(ingress())
        .cookie("user", "tester")
        .cookie("theme", "dark");
    assert_eq!(t.simulate(&first).unwrap().rule, Some(0));
}

#[test]
fn the_cookie_regex_matches_the_whole_header_only() {
    let t = seed_003();
    for (cookie, expected_rule) in [
        ("user=tester", 0),
        ("a=1;user=tester", 0),
        ("user=tester;a=1", 0),
        ("user=testers", 1),
        ("xuser=tester", 1),
        ("a=1", 1),
    ] {
        let req = Request::new("x")
            .gateway(ingress())
            .header("Cookie", cookie);
        let v = t.simulate(&req).unwrap();
        assert_eq!(v.rule, Some(expected_rule), "cookie {cookie:?}");
    }
    // Without any cookie header the regex cannot match.
    let v = t.simulate(&Request::new("x").gateway(ingress())).unwrap();
    assert_eq!(v.rule, Some(1));
    assert_eq!(
        v.trace[0].reasons,
        ["no header cookie (want ~ ^(.*?;)?(user=tester)(;.*)?$)"]
    );
}

#[test]
fn source_labels_only_count_for_mesh_traffic() {
    let t = seed_003();
    let mesh = Request::new("forecast").source_label("version", "v2");
    let v = t.simulate(&mesh).unwrap();
    assert_eq!((v.rule, shares(&v)), (Some(0), vec![(Some("v2"), 100.0)]));
    let v = t
        .simulate(&Request::new("forecast").source_label("version", "v1"))
        .unwrap();
    assert_eq!((v.rule, shares(&v)), (Some(1), vec![(Some("v1"), 100.0)]));

    // The same sourceLabels rule, bound to a gateway too: gateway traffic never sees labels.
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: f, namespace: weather}\nspec:\n  hosts: [forecast]\n  gateways: [istio-system/weather-gateway, mesh]\n  http:\n  - match: [{sourceLabels: {version: v2}}]\n    route: [{destination: {host: forecast, subset: v2}}]\n  - route: [{destination: {host: forecast, subset: v1}}]\n";
    let t = table(&format!("{}{vs}", dr("forecast", "weather", &["v1", "v2"])));
    let via_gateway = Request::new("forecast.weather.svc.cluster.local")
        .gateway(ingress())
        .source_label("version", "v2");
    let v = t.simulate(&via_gateway).unwrap();
    assert_eq!(v.rule, Some(1));
    assert!(
        v.trace[0].reasons[0].contains("mesh traffic only"),
        "{:?}",
        v.trace
    );
}

#[test]
fn a_virtual_service_without_gateways_is_mesh_only_and_match_gateways_restrict() {
    let t = seed_003();
    // frontend-route is bound to the ingress gateway only: mesh traffic to "*" is not routed by
    // it, so mesh callers get Kubernetes' default routing.
    let v = t.simulate(&Request::new("shop.example.com")).unwrap();
    assert_eq!(v.outcome, Outcome::Route);
    assert_eq!(v.virtual_service, None);
    assert_eq!(v.rule, None);
    assert_eq!(
        v.default_routing.as_deref(),
        Some("mesh callers of shop.example.com reach every pod of the Service round-robin (Kubernetes default routing)")
    );
    // forecast-route has no gateways: from the ingress gateway it does not apply.
    let v = t
        .simulate(
            &Request::new("forecast.weather.svc.cluster.local")
                .gateway(GatewayRef::parse("istio-system/other")),
        )
        .unwrap();
    assert_eq!(v.outcome, Outcome::NoRoute);

    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: app, namespace: shop}\nspec:\n  hosts: [app]\n  gateways: [istio-system/gw, mesh]\n  http:\n  - match: [{gateways: [istio-system/gw], headers: {canary: {exact: yes}}}]\n    route: [{destination: {host: app, subset: b}}]\n  - route: [{destination: {host: app, subset: a}}]\n";
    let t = table(&format!("{}{vs}", dr("app", "shop", &["a", "b"])));
    let from_gw = Request::new("app.shop.svc.cluster.local")
        .gateway(GatewayRef::parse("istio-system/gw"))
        .header("canary", "yes");
    assert_eq!(t.simulate(&from_gw).unwrap().rule, Some(0));
    let from_mesh = Request::new("app").header("canary", "yes");
    let v = t.simulate(&from_mesh).unwrap();
    assert_eq!(v.rule, Some(1));
    assert_eq!(
        v.trace[0].reasons,
        ["gateway mesh is not one of [istio-system/gw]"]
    );
}

fn weighted(weights: &[Option<i32>]) -> RouteTable {
    let subsets = ["a", "b", "c"];
    let route: String = weights
        .iter()
        .zip(subsets)
        .map(|(w, s)| match w {
            Some(w) => format!("    - {{destination: {{host: svc, subset: {s}}}, weight: {w}}}\n"),
            None => format!("    - {{destination: {{host: svc, subset: {s}}}}}\n"),
        })
        .collect();
    let vs = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc, namespace: ns}}\nspec:\n  hosts: [svc]\n  http:\n  - route:\n{route}"
    );
    table(&format!("{}{vs}", dr("svc", "ns", &subsets)))
}

#[test]
fn weights_are_relative() {
    let v = weighted(&[Some(1), Some(3)])
        .simulate(&Request::new("svc"))
        .unwrap();
    assert_eq!(shares(&v), [(Some("a"), 25.0), (Some("b"), 75.0)]);
    let v = weighted(&[Some(90), None])
        .simulate(&Request::new("svc"))
        .unwrap();
    assert_eq!(shares(&v), [(Some("a"), 100.0), (Some("b"), 0.0)]);
    let v = weighted(&[None]).simulate(&Request::new("svc")).unwrap();
    assert_eq!(shares(&v), [(Some("a"), 100.0)]);
    let v = weighted(&[Some(1), Some(1), Some(1)])
        .simulate(&Request::new("svc"))
        .unwrap();
    assert_eq!(percent_text(v.destinations[0].percent), "33.33%");
}

#[test]
fn all_zero_weights_are_refused() {
    // A single destination is not weighted at all (it takes everything, see below).
    for weights in [vec![Some(0), Some(0)], vec![None, None]] {
        let err = weighted(&weights)
            .simulate(&Request::new("svc"))
            .unwrap_err();
        assert!(
            matches!(err, SimError::InvalidWeights { rule: 0, .. }),
            "{weights:?}: {err}"
        );
        assert!(err.to_string().contains("all weights are 0"), "{err}");
    }
}

#[test]
fn a_missing_subset_or_destination_rule_is_503_naming_it() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 50}\n    - {destination: {host: reviews, subset: v3}, weight: 50}\n";
    let t = table(&format!("{}{vs}", dr("reviews", "bookinfo", &["v1", "v2"])));
    let v = t.simulate(&Request::new("reviews")).unwrap();
    assert_eq!(
        v.outcome.to_string(),
        "503 (no subset v3 in DestinationRule reviews)"
    );
    assert_eq!(
        v.destinations[1].missing.as_deref(),
        Some("no subset v3 in DestinationRule reviews")
    );
    assert_eq!(v.destinations[0].missing, None);

    let t = table(vs);
    let v = t.simulate(&Request::new("reviews")).unwrap();
    assert_eq!(
        v.outcome.to_string(),
        "503 (no DestinationRule for host reviews.bookinfo.svc.cluster.local)"
    );
    // A zero-weight destination to a missing subset gets no traffic, so no 503.
    let vs0 = vs.replace("subset: v3}, weight: 50", "subset: v3}, weight: 0");
    let t = table(&format!("{}{vs0}", dr("reviews", "bookinfo", &["v1"])));
    assert_eq!(
        t.simulate(&Request::new("reviews")).unwrap().outcome,
        Outcome::Route
    );
}

#[test]
fn no_matching_rule_is_404() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n  - match: [{uri: {regex: /api.*}}, {uri: {prefix: /v2/}}]\n    route: [{destination: {host: api}}]\n";
    let t = table(vs);
    let v = t.simulate(&Request::new("api").path("/other")).unwrap();
    assert_eq!(v.outcome, Outcome::NoRoute);
    assert_eq!(v.to_json()["outcome"], "404");
    assert_eq!(v.to_json()["rule"], serde_json::Value::Null);
    assert_eq!(
        v.trace[0].reasons,
        [
            "match[0]: uri \"/other\" does not match ~ /api.*",
            "match[1]: uri \"/other\" does not match ^= /v2/"
        ]
    );
    // OR across blocks: the second block alone is enough.
    assert_eq!(
        t.simulate(&Request::new("api").path("/v2/x")).unwrap().rule,
        Some(0)
    );
    // No VirtualService for the host at all: mesh callers get Kubernetes' default routing,
    // a gateway request is a 404.
    let v = t.simulate(&Request::new("other")).unwrap();
    assert_eq!(
        (&v.outcome, v.virtual_service.as_deref()),
        (&Outcome::Route, None)
    );
    assert_eq!(
        v.default_routing.as_deref(),
        Some("mesh callers of other reach every pod of the Service round-robin (Kubernetes default routing)")
    );
    let gw = GatewayRef::parse("istio-system/gw");
    assert_eq!(
        t.simulate(&Request::new("other").gateway(gw))
            .unwrap()
            .outcome,
        Outcome::NoRoute
    );
}

#[test]
fn regex_must_match_the_whole_value() {
    let vs = |re: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: api, namespace: ns}}\nspec:\n  hosts: [api]\n  http:\n  - match: [{{uri: {{regex: '{re}'}}}}]\n    route: [{{destination: {{host: api}}}}]\n  - route: [{{destination: {{host: other}}}}]\n")
    };
    let req = Request::new("api").path("/api/users?id=7");
    assert_eq!(table(&vs("^/api")).simulate(&req).unwrap().rule, Some(1));
    assert_eq!(table(&vs("/api.*")).simulate(&req).unwrap().rule, Some(0));
    // An alternation is anchored as a whole, not just its first branch.
    assert_eq!(
        table(&vs("/x|/api/users")).simulate(&req).unwrap().rule,
        Some(0)
    );
    // Over-long and non-RE2 regexes are refused with the field path.
    let long = format!("/{}", "a".repeat(1024));
    let objects: Vec<IstioObject> = crate::manifest::parse_stream(&vs(&long), "t")
        .unwrap()
        .iter()
        .filter_map(|s| IstioObject::from_value(&s.object).unwrap())
        .collect();
    let err = RouteTable::new(objects).unwrap_err().to_string();
    assert!(
        err.starts_with("VirtualService ns/api: spec.http[0].match[0].uri.regex: invalid regex"),
        "{err}"
    );
    assert!(err.contains("at most 1024"), "{err}");
}

#[test]
fn exact_and_prefix_compare_bytes_and_ignore_uri_case_folds() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n  - match: [{uri: {exact: /Login}, headers: {x-env: {prefix: prod}}}]\n    route: [{destination: {host: a}}]\n  - match: [{uri: {prefix: /ADMIN}, ignoreUriCase: true}]\n    route: [{destination: {host: b}}]\n  - route: [{destination: {host: c}}]\n";
    let t = table(vs);
    let host = |r: Request| t.simulate(&r).unwrap().destinations[0].host.clone();
    assert_eq!(
        host(
            Request::new("api")
                .path("/Login")
                .header("X-Env", "production")
        ),
        "a"
    );
    assert_eq!(
        host(
            Request::new("api")
                .path("/login")
                .header("x-env", "production")
        ),
        "c"
    );
    assert_eq!(
        host(
            Request::new("api")
                .path("/Login")
                .header("x-env", "Production")
        ),
        "c"
    );
    assert_eq!(host(Request::new("api").path("/admin/users")), "b");
}

#[test]
fn authority_and_port_include_the_port_the_client_sends() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n  - match: [{authority: {exact: 'api:8080'}}]\n    route: [{destination: {host: a}}]\n  - match: [{port: 9090}]\n    route: [{destination: {host: b}}]\n  - route: [{destination: {host: c}}]\n";
    let t = table(vs);
    let host = |r: Request| t.simulate(&r).unwrap().destinations[0].host.clone();
    assert_eq!(host(Request::new("api").port(8080)), "a");
    assert_eq!(host(Request::new("api")), "c");
    assert_eq!(host(Request::new("api").port(9090)), "b");
}

#[test]
fn hosts_short_names_fqdn_and_wildcards() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: bookinfo}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: w, namespace: bookinfo}\nspec:\n  hosts: ['*.example.com']\n  gateways: [istio-system/gw]\n  http:\n  - route: [{destination: {host: web}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop, namespace: bookinfo}\nspec:\n  hosts: [shop.example.com]\n  gateways: [istio-system/gw]\n  http:\n  - route: [{destination: {host: shop}}]\n";
    let t = table(vs);
    for host in [
        "reviews",
        "reviews.bookinfo",
        "reviews.bookinfo.svc",
        "reviews.bookinfo.svc.cluster.local",
    ] {
        let v = t.simulate(&Request::new(host)).unwrap();
        assert_eq!(v.virtual_service.as_deref(), Some("bookinfo/r"), "{host}");
    }
    // A caller in another namespace saying just "reviews" means its own namespace's reviews,
    // which no VirtualService routes: Kubernetes' default routing.
    let v = t
        .simulate(&Request::new("reviews").namespace("other"))
        .unwrap();
    assert_eq!(
        (&v.outcome, v.virtual_service.as_deref()),
        (&Outcome::Route, None)
    );
    assert!(v.default_routing.is_some(), "{v:?}");
    let gw = GatewayRef::parse("istio-system/gw");
    let v = t
        .simulate(&Request::new("blog.example.com").gateway(gw.clone()))
        .unwrap();
    assert_eq!(v.virtual_service.as_deref(), Some("bookinfo/w"));
    // The exact host beats the wildcard.
    let v = t
        .simulate(&Request::new("shop.example.com").gateway(gw))
        .unwrap();
    assert_eq!(v.virtual_service.as_deref(), Some("bookinfo/shop"));
    assert!(
        v.notes.iter().any(|n| n.contains("bookinfo/w")),
        "{:?}",
        v.notes
    );
}

#[test]
fn a_wildcard_host_bound_to_mesh_is_refused_like_istiod_does() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: f, namespace: w}\nspec:\n  hosts: [f, '*']\n  gateways: [istio-system/gw, mesh]\n  http:\n  - route: [{destination: {host: f}}]\n";
    let objects: Vec<IstioObject> = crate::manifest::parse_stream(vs, "t")
        .unwrap()
        .iter()
        .filter_map(|s| IstioObject::from_value(&s.object).unwrap())
        .collect();
    let err = RouteTable::new(objects).unwrap_err().to_string();
    assert_eq!(err, "VirtualService w/f: spec.hosts[1]: wildcard host * is not allowed for virtual services bound to the mesh gateway (istiod refuses this object)");
}

#[test]
fn and_inside_a_block_first_rule_wins() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n  - name: both\n    match: [{uri: {prefix: /a}, headers: {x: {exact: '1'}}}]\n    route: [{destination: {host: both}}]\n  - name: first\n    match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: first}}]\n  - name: second\n    match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: second}}]\n  - route: [{destination: {host: rest}}]\n";
    let t = table(vs);
    let v = t.simulate(&Request::new("api").path("/a")).unwrap();
    assert_eq!(v.rule_name.as_deref(), Some("first"));
    assert_eq!(
        v.trace[0].line(),
        "rule #0 (both) did not match: no header x (want = 1)"
    );
    let v = t
        .simulate(&Request::new("api").path("/a").header("x", "1"))
        .unwrap();
    assert_eq!(v.rule_name.as_deref(), Some("both"));
    assert_eq!(
        v.trace[0].line(),
        "rule #0 (both) matched: uri ^= /a; header x = 1"
    );
}

#[test]
fn sampling_is_deterministic_and_follows_weights() {
    assert_eq!(spread(&[1, 3], 8), [2, 6]);
    assert_eq!(spread(&[90, 10], 100), [90, 10]);
    assert_eq!(spread(&[0, 5], 7), [0, 7]);
    assert_eq!(
        WeightedRoundRobin::new(&[1, 3]).take(4).collect::<Vec<_>>(),
        [1, 0, 1, 1]
    );
    assert_eq!(WeightedRoundRobin::new(&[0, 0]).next(), None);

    let t = seed_003();
    let tester = Request::new("x")
        .gateway(ingress())
        .cookie("user", "tester");
    let anon = Request::new("x").gateway(ingress());
    let tally = sample(&t, &[(tester, 1), (anon, 3)], 100).unwrap();
    let v2 = Target::Destination {
        host: "frontend".into(),
        subset: Some("v2".into()),
    };
    let v1 = Target::Destination {
        host: "frontend".into(),
        subset: Some("v1".into()),
    };
    assert_eq!(tally[&v2], 25);
    assert_eq!(tally[&v1], 75);
    assert_eq!(
        sample(
            &t,
            &[(
                Request::new("x").gateway(GatewayRef::parse("istio-system/other")),
                1
            )],
            5
        )
        .unwrap()[&Target::Status(404)],
        5
    );
}

#[test]
fn json_has_the_documented_shape() {
    let v = weighted(&[Some(1), Some(3)])
        .simulate(&Request::new("svc"))
        .unwrap();
    let json = v.to_json();
    assert_eq!(json["outcome"], "route");
    assert_eq!(json["rule"], 0);
    assert_eq!(
        json["destinations"],
        serde_json::json!([{"host": "svc", "subset": "a", "percent": 25}, {"host": "svc", "subset": "b", "percent": 75}])
    );
}

#[test]
fn mesh_traffic_to_a_gateway_only_host_gets_default_routing() {
    let gw_vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews-gw, namespace: shop}\nspec:\n  hosts: [reviews]\n  gateways: [istio-system/gw]\n  http:\n  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}\n    - {destination: {host: reviews, subset: v2}, weight: 10}\n";
    let t = table(&format!("{}{gw_vs}", dr("reviews", "shop", &["v1", "v2"])));
    let v = t
        .simulate(&Request::new("reviews").namespace("shop"))
        .unwrap();
    assert_eq!(v.outcome, Outcome::Route);
    assert_eq!(v.rule, None);
    assert_eq!(shares(&v), [(None, 100.0)]);
    assert_eq!(
        v.default_routing.as_deref(),
        Some("mesh callers of reviews reach v1 and v2 round-robin, ignoring the weights (Kubernetes default routing)")
    );
    assert_eq!(v.to_json()["outcome"], "route");
    assert_eq!(v.to_json()["rule"], serde_json::Value::Null);
}

#[test]
fn a_single_destination_takes_everything_even_with_weight_zero() {
    let t = weighted(&[Some(0)]);
    let v = t.simulate(&Request::new("svc")).unwrap();
    assert_eq!(shares(&v), [(Some("a"), 100.0)]);
}

#[test]
fn header_names_are_case_insensitive_and_pseudo_headers_match() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b, namespace: default}\nspec:\n  hosts: [b]\n  http:\n  - match: [{headers: {End-User: {exact: jason}}}]\n    route: [{destination: {host: b, subset: v2}}]\n  - match: [{headers: {':method': {exact: POST}}}]\n    route: [{destination: {host: b, subset: v3}}]\n  - match: [{headers: {':authority': {prefix: 'b:8'}}}]\n    route: [{destination: {host: b, subset: v4}}]\n";
    let t = table(&format!("{}{vs}", dr("b", "default", &["v2", "v3", "v4"])));
    let v = t
        .simulate(&Request::new("b").header("end-user", "jason"))
        .unwrap();
    assert_eq!(v.rule, Some(0));
    let mut post = Request::new("b");
    post.method = "POST".into();
    assert_eq!(t.simulate(&post).unwrap().rule, Some(1));
    let v = t.simulate(&Request::new("b").port(8080)).unwrap();
    assert_eq!(v.rule, Some(2));
    let v = t.simulate(&Request::new("b")).unwrap();
    assert_eq!(v.outcome, Outcome::NoRoute);
    assert_eq!(
        v.trace[1].reasons,
        [r#"header :method "GET" does not match = POST"#]
    );
}

#[test]
fn without_headers_present_and_any() {
    let rules = |re: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: b, namespace: default}}\nspec:\n  hosts: [b]\n  http:\n  - match: [{{withoutHeaders: {{end-user: {{regex: '{re}'}}}}}}]\n    route: [{{destination: {{host: b, subset: v2}}}}]\n  - route: [{{destination: {{host: b, subset: v1}}}}]\n")
    };
    let present = table(&format!(
        "{}{}",
        dr("b", "default", &["v1", "v2"]),
        rules("*")
    ));
    let any = table(&format!(
        "{}{}",
        dr("b", "default", &["v1", "v2"]),
        rules(".*")
    ));
    let absent = Request::new("b");
    let empty = Request::new("b").header("end-user", "");
    let jason = Request::new("b").header("end-user", "jason");
    let rule = |t: &RouteTable, r: &Request| t.simulate(r).unwrap().rule;
    assert_eq!(
        [
            rule(&present, &absent),
            rule(&present, &empty),
            rule(&present, &jason)
        ],
        [Some(0), Some(1), Some(1)]
    );
    assert_eq!(
        [rule(&any, &absent), rule(&any, &empty), rule(&any, &jason)],
        [Some(1), Some(1), Some(1)]
    );
}

#[test]
fn a_gateway_request_for_a_host_the_gateway_does_not_serve_is_404() {
    let objects = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gateway, namespace: default}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [foo.bar]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bookinfo, namespace: default}\nspec:\n  hosts: ['*']\n  gateways: [gateway]\n  http:\n  - route: [{destination: {host: productpage}}]\n";
    let t = table(objects);
    let gw = GatewayRef::parse("default/gateway");
    let v = t
        .simulate(&Request::new("foo.bar").gateway(gw.clone()))
        .unwrap();
    assert_eq!(v.outcome, Outcome::Route);
    let v = t.simulate(&Request::new("bad.bar").gateway(gw)).unwrap();
    assert_eq!(v.outcome, Outcome::NoRoute);
    assert_eq!(
        v.notes,
        [r#"Gateway default/gateway has no server for host "bad.bar""#]
    );
}
