use std::collections::BTreeMap;

use policy_sdk::{
    Destination as To, Match, ReleaseInfo, Role, Rule, ServiceInfo, Stage, StringMatch, VersionRef,
};

use super::*;
use crate::istio::IstioObject;
use crate::sim::{GatewayRef, Outcome, Request, RouteTable};

fn version(app: &str, version: &str) -> VersionRef {
    VersionRef {
        subset: policy_sdk::rules::subset_name(version).unwrap(),
        labels: BTreeMap::from([
            ("app".to_string(), app.to_string()),
            ("version".to_string(), version.to_string()),
        ]),
    }
}

fn service(name: &str, stable: &str, canary: &str, gateways: &[&str]) -> ServiceInfo {
    ServiceInfo {
        name: name.to_string(),
        host: name.to_string(),
        stable: version(name, stable),
        canary: version(name, canary),
        entry: !gateways.is_empty(),
        gateways: gateways.iter().map(|g| g.to_string()).collect(),
    }
}

fn release(name: &str, namespace: &str, services: Vec<ServiceInfo>) -> ReleaseInfo {
    ReleaseInfo {
        name: name.to_string(),
        namespace: namespace.to_string(),
        services,
    }
}

fn to(role: Role, weight: Option<u32>) -> To {
    To {
        subset: role,
        weight,
    }
}

fn weighted(stable: u32, canary: u32) -> Rule {
    Rule {
        matches: vec![],
        to: vec![
            to(Role::Stable, Some(stable)),
            to(Role::Canary, Some(canary)),
        ],
    }
}

fn all(role: Role) -> Rule {
    Rule {
        matches: vec![],
        to: vec![to(role, None)],
    }
}

fn when(m: Match, role: Role) -> Rule {
    Rule {
        matches: vec![m],
        to: vec![to(role, None)],
    }
}

fn cookie(regex: &str) -> Match {
    Match {
        headers: BTreeMap::from([("cookie".to_string(), StringMatch::Regex(regex.to_string()))]),
        ..Default::default()
    }
}

fn source(labels: &[(&str, &str)]) -> Match {
    Match {
        source_labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn stage(name: &str, routes: Vec<(&str, Vec<Rule>)>) -> Stage {
    Stage {
        index: 1,
        name: name.to_string(),
        routes: routes
            .into_iter()
            .map(|(s, r)| (s.to_string(), r))
            .collect(),
    }
}

const TESTER_COOKIE: &str = "^(.*?;)?(user=tester)(;.*)?$";

/// Seed 002: reviews v1 → v3, the 50/50 step.
fn seed_002() -> (ReleaseInfo, Stage, RenderOptions) {
    let r = release(
        "reviews-v3",
        "default",
        vec![service("reviews", "v1", "v3", &[])],
    );
    let s = stage("50%", vec![("reviews", vec![weighted(50, 50)])]);
    (r, s, RenderOptions::default())
}

/// Seed 003: weather frontend + forecast, testers by cookie at the gateway, forecast chained.
fn seed_003() -> (ReleaseInfo, Stage, RenderOptions) {
    let r = release(
        "weather-v2",
        "weather",
        vec![
            service("frontend", "v1", "v2", &["istio-system/weather-gateway"]),
            service("forecast", "v1", "v2", &[]),
        ],
    );
    let s = stage(
        "testers",
        vec![
            (
                "frontend",
                vec![when(cookie(TESTER_COOKIE), Role::Canary), all(Role::Stable)],
            ),
            (
                "forecast",
                // What the built-in policy's chaining writes: the caller's app and version.
                vec![
                    when(
                        source(&[("app", "frontend"), ("version", "v2")]),
                        Role::Canary,
                    ),
                    all(Role::Stable),
                ],
            ),
        ],
    );
    let opts = RenderOptions {
        gateway_hosts: BTreeMap::from([("frontend".to_string(), vec!["*".to_string()])]),
        ..Default::default()
    };
    (r, s, opts)
}

/// Seed 004: frontend + backend, tester header, 10 % canary, backend v2 only for frontend v2.
fn seed_004() -> (ReleaseInfo, Stage, RenderOptions) {
    let r = release(
        "frontend-backend-v2",
        "default",
        vec![
            service("frontend", "v1", "v2", &[]),
            service("backend", "v1", "v2", &[]),
        ],
    );
    let header = Match {
        headers: BTreeMap::from([(
            "canary".to_string(),
            StringMatch::Exact("canary-tester".to_string()),
        )]),
        ..Default::default()
    };
    let s = stage(
        "10%",
        vec![
            (
                "frontend",
                vec![when(header, Role::Canary), weighted(90, 10)],
            ),
            (
                "backend",
                vec![
                    when(
                        source(&[("app", "frontend"), ("version", "v2")]),
                        Role::Canary,
                    ),
                    all(Role::Stable),
                ],
            ),
        ],
    );
    (r, s, RenderOptions::default())
}

/// Seed 000: the voting app, 2.0 behind a feature-flag cookie, chained, strict mTLS.
fn seed_000() -> (ReleaseInfo, Stage, RenderOptions) {
    let r = release(
        "voting-v2",
        "voting",
        vec![
            service("voting-app", "1.0", "2.0", &["voting/voting-app-gateway"]),
            service("voting-analytics", "1.1", "2.0", &[]),
            service("voting-storage", "1.0", "2.0", &[]),
        ],
    );
    let s = stage(
        "testers",
        vec![
            (
                "voting-app",
                vec![
                    when(cookie("^(.*?;)?(featureflag=on)(;.*)?$"), Role::Canary),
                    all(Role::Stable),
                ],
            ),
            (
                "voting-analytics",
                vec![
                    when(
                        source(&[("app", "voting-app"), ("version", "2.0")]),
                        Role::Canary,
                    ),
                    all(Role::Stable),
                ],
            ),
            (
                "voting-storage",
                vec![
                    when(
                        source(&[("app", "voting-analytics"), ("version", "2.0")]),
                        Role::Canary,
                    ),
                    all(Role::Stable),
                ],
            ),
        ],
    );
    let opts = RenderOptions {
        gateway_hosts: BTreeMap::from([("voting-app".to_string(), vec!["*".to_string()])]),
        ..Default::default()
    }
    .strict_mtls();
    (r, s, opts)
}

/// Compare with the golden file; `UPDATE_GOLDEN=1 cargo test` rewrites it.
fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/render/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        actual,
        expected,
        "{} differs; UPDATE_GOLDEN=1 rewrites it",
        path.display()
    );
}

#[test]
fn golden_seed_002_weighted() {
    let (r, s, o) = seed_002();
    golden(
        "seed-002-reviews-50.yaml",
        &render(&r, &s, &o).unwrap().to_yaml(),
    );
}

#[test]
fn golden_seed_003_testers_and_chaining() {
    let (r, s, o) = seed_003();
    golden(
        "seed-003-weather-testers.yaml",
        &render(&r, &s, &o).unwrap().to_yaml(),
    );
}

#[test]
fn golden_seed_004_header_and_source_labels() {
    let (r, s, o) = seed_004();
    golden(
        "seed-004-frontend-backend-10.yaml",
        &render(&r, &s, &o).unwrap().to_yaml(),
    );
}

#[test]
fn golden_seed_000_strict_mtls() {
    let (r, s, o) = seed_000();
    golden(
        "seed-000-voting-testers-mtls.yaml",
        &render(&r, &s, &o).unwrap().to_yaml(),
    );
}

#[test]
fn golden_seed_000_finalized_keeps_only_the_canary_subset() {
    let (r, _, o) = seed_000();
    let opts = RenderOptions {
        subsets: [Role::Canary].into(),
        ..o
    };
    golden(
        "seed-000-voting-final.yaml",
        &render(&r, &final_stage(&r), &opts).unwrap().to_yaml(),
    );
}

#[test]
fn objects_come_in_make_before_break_order() {
    let (r, s, o) = seed_000();
    let rendered = render(&r, &s, &o).unwrap();
    let kinds: Vec<&str> = rendered.iter().map(IstioObject::kind).collect();
    assert_eq!(
        kinds,
        [
            "DestinationRule",
            "DestinationRule",
            "DestinationRule",
            "VirtualService",
            "VirtualService",
            "VirtualService",
            "VirtualService",
            "PeerAuthentication"
        ]
    );
    for object in &rendered {
        let meta = object.metadata();
        assert_eq!(meta.labels[MANAGED_BY_LABEL], "kubectl-canary");
        assert_eq!(meta.labels[RELEASE_LABEL], "voting-v2");
        assert_eq!(meta.namespace.as_deref(), Some("voting"));
    }
}

#[test]
fn rendered_objects_read_back_identically() {
    for (r, s, o) in [seed_000(), seed_002(), seed_003(), seed_004()] {
        let rendered = render(&r, &s, &o).unwrap();
        let back: Vec<IstioObject> = crate::manifest::parse_stream(&rendered.to_yaml(), "r.yaml")
            .unwrap()
            .iter()
            .map(|s| IstioObject::from_value(&s.object).unwrap().unwrap())
            .collect();
        assert_eq!(back, rendered.objects());
    }
}

fn table(rendered: &Rendered) -> RouteTable {
    RouteTable::new(rendered.iter().cloned()).unwrap()
}

fn split(t: &RouteTable, req: &Request) -> Vec<(String, f64)> {
    let v = t.simulate(req).unwrap();
    assert_eq!(v.outcome, Outcome::Route, "{req:?}: {:?}", v.explanation());
    v.destinations
        .iter()
        .map(|d| (d.subset.clone().unwrap_or_default(), d.percent))
        .collect()
}

#[test]
fn round_trip_rendered_objects_route_as_intended() {
    let (r, s, o) = seed_002();
    let t = table(&render(&r, &s, &o).unwrap());
    assert_eq!(
        split(&t, &Request::new("reviews")),
        [("v1".into(), 50.0), ("v3".into(), 50.0)]
    );

    let (r, s, o) = seed_003();
    let t = table(&render(&r, &s, &o).unwrap());
    let gw = GatewayRef::parse("istio-system/weather-gateway");
    let tester = Request::new("weather.example.com")
        .gateway(gw.clone())
        .header("cookie", "user=tester");
    assert_eq!(split(&t, &tester), [("v2".into(), 100.0)]);
    let anon = Request::new("weather.example.com").gateway(gw);
    assert_eq!(split(&t, &anon), [("v1".into(), 100.0)]);
    // The same tester rule also serves mesh callers of frontend.
    let mesh = Request::new("frontend").header("cookie", "user=tester");
    assert_eq!(split(&t, &mesh), [("v2".into(), 100.0)]);
    let chained = Request::new("forecast")
        .source_label("app", "frontend")
        .source_label("version", "v2");
    assert_eq!(split(&t, &chained), [("v2".into(), 100.0)]);
    let plain = Request::new("forecast").source_label("version", "v1");
    assert_eq!(split(&t, &plain), [("v1".into(), 100.0)]);

    let (r, s, o) = seed_004();
    let t = table(&render(&r, &s, &o).unwrap());
    assert_eq!(
        split(&t, &Request::new("frontend")),
        [("v1".into(), 90.0), ("v2".into(), 10.0)]
    );
    let tester = Request::new("frontend").header("canary", "canary-tester");
    assert_eq!(split(&t, &tester), [("v2".into(), 100.0)]);
    // Only frontend v2 reaches backend v2; another app labelled v2 does not.
    let from_v2 = Request::new("backend")
        .source_label("app", "frontend")
        .source_label("version", "v2");
    assert_eq!(split(&t, &from_v2), [("v2".into(), 100.0)]);
    let other = Request::new("backend")
        .source_label("app", "other")
        .source_label("version", "v2");
    assert_eq!(split(&t, &other), [("v1".into(), 100.0)]);

    let (r, _, o) = seed_000();
    let t = table(&render(&r, &baseline_stage(&r), &o).unwrap());
    for svc in ["voting-app", "voting-analytics", "voting-storage"] {
        let subset = r
            .services
            .iter()
            .find(|s| s.name == svc)
            .unwrap()
            .stable
            .subset
            .clone();
        assert_eq!(split(&t, &Request::new(svc)), [(subset, 100.0)]);
    }
}

#[test]
fn baseline_and_final_send_everything_to_one_role() {
    let (r, _, _) = seed_004();
    for (stage, role) in [
        (baseline_stage(&r), Role::Stable),
        (final_stage(&r), Role::Canary),
    ] {
        assert_eq!(stage.routes.len(), 2);
        for rules in stage.routes.values() {
            assert_eq!(rules, &vec![all(role)]);
        }
    }
}

#[test]
fn intent_that_cannot_render_is_refused() {
    let (r, s, o) = seed_002();
    // A route for a service outside the release.
    let mut bad = s.clone();
    bad.routes.insert("ratings".into(), vec![all(Role::Stable)]);
    let err = render(&r, &bad, &o).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage routes service \"ratings\", which is not part of the release (services: reviews)"
    );
    // A service of the release without routes.
    let empty = stage("x", vec![]);
    assert!(matches!(
        render(&r, &empty, &o),
        Err(RenderError::MissingService { .. })
    ));
    // After finalize only the canary subset exists: routing to stable would 503.
    let canary_only = RenderOptions {
        subsets: [Role::Canary].into(),
        ..o.clone()
    };
    let err = render(&r, &s, &canary_only).unwrap_err();
    assert_eq!(
        err,
        RenderError::NoSubset {
            field: "routes.reviews[0].to[0].subset".into(),
            service: "reviews".into(),
            role: Role::Stable,
            subset: "v1".into(),
        }
    );
    assert!(
        err.to_string()
            .starts_with("routes.reviews[0].to[0].subset: stable subset \"v1\" of service \"reviews\" is not in its DestinationRule"),
        "{err}"
    );
    assert!(err.to_string().contains("503"), "{err}");
    // All-zero weights.
    let zero = stage("0", vec![("reviews", vec![weighted(0, 0)])]);
    let err = render(&r, &zero, &o).unwrap_err();
    assert_eq!(
        err,
        RenderError::AllZeroWeights {
            field: "routes.reviews[0].to".into()
        }
    );
    // A last rule with a match leaves requests without a route.
    let no_catch_all = stage(
        "t",
        vec![("reviews", vec![when(cookie(TESTER_COOKIE), Role::Canary)])],
    );
    assert!(matches!(
        render(&r, &no_catch_all, &o),
        Err(RenderError::NoCatchAll { .. })
    ));
    // A catch-all before other rules makes them unreachable.
    let unreachable = stage(
        "t",
        vec![("reviews", vec![all(Role::Stable), all(Role::Canary)])],
    );
    assert!(matches!(
        render(&r, &unreachable, &o),
        Err(RenderError::UnreachableRules { rule: 0, .. })
    ));
    // Values Istio refuses.
    let bad_regex = stage(
        "t",
        vec![(
            "reviews",
            vec![when(cookie("(?=x)"), Role::Canary), all(Role::Stable)],
        )],
    );
    let err = render(&r, &bad_regex, &o).unwrap_err().to_string();
    assert!(
        err.starts_with("routes.reviews[0].match[0].headers.cookie: invalid regex \"(?=x)\""),
        "{err}"
    );
    let heavy = stage("t", vec![("reviews", vec![weighted(50, 150)])]);
    let err = render(&r, &heavy, &o).unwrap_err().to_string();
    assert!(
        err.starts_with("routes.reviews[0].to[1].weight: invalid weight"),
        "{err}"
    );
    let no_dest = stage(
        "t",
        vec![(
            "reviews",
            vec![Rule {
                matches: vec![],
                to: vec![],
            }],
        )],
    );
    assert!(matches!(
        render(&r, &no_dest, &o),
        Err(RenderError::NoDestinations { .. })
    ));
}

#[test]
fn route_names_are_readable_and_unique() {
    let (r, s, o) = seed_004();
    let rendered = render(&r, &s, &o).unwrap();
    let names: Vec<Vec<String>> = rendered
        .virtual_services()
        .map(|vs| {
            vs.spec
                .http
                .iter()
                .map(|h| h.name.clone().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        names,
        [
            vec!["tester-header", "weighted"],
            vec!["canary-callers", "all-stable"]
        ]
    );
    let two = stage(
        "t",
        vec![(
            "reviews",
            vec![
                when(cookie("a"), Role::Canary),
                when(cookie("b"), Role::Canary),
                all(Role::Stable),
            ],
        )],
    );
    let (r2, _, o2) = seed_002();
    let rendered = render(&r2, &two, &o2).unwrap();
    let vs = rendered.virtual_services().next().unwrap();
    let names: Vec<_> = vs
        .spec
        .http
        .iter()
        .map(|h| h.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["tester-cookie", "tester-cookie-2", "all-stable"]);
}

#[test]
fn gateway_hosts_join_the_mesh_virtual_service_unless_they_are_a_bare_wildcard() {
    // `*` bound to mesh is refused by istiod: the gateway gets its own VirtualService.
    let (r, s, o) = seed_003();
    let rendered = render(&r, &s, &o).unwrap();
    let frontend: Vec<(&str, &[String], &[String])> = rendered
        .virtual_services()
        .filter(|vs| vs.metadata.name.starts_with("frontend"))
        .map(|vs| {
            (
                vs.metadata.name.as_str(),
                &vs.spec.hosts[..],
                &vs.spec.gateways[..],
            )
        })
        .collect();
    assert_eq!(
        frontend,
        [
            ("frontend", &["frontend".to_string()][..], &[][..]),
            (
                "frontend-gateway",
                &["*".to_string()][..],
                &["istio-system/weather-gateway".to_string()][..]
            ),
        ]
    );
    // The simulator (which refuses what istiod refuses) accepts the result.
    table(&rendered);

    // A named host can share the VirtualService with mesh.
    let opts = RenderOptions {
        gateway_hosts: BTreeMap::from([(
            "frontend".to_string(),
            vec!["weather.example.com".to_string()],
        )]),
        ..Default::default()
    };
    let rendered = render(&r, &s, &opts).unwrap();
    let vs = rendered.virtual_services().next().unwrap();
    assert_eq!(vs.metadata.name, "frontend");
    assert_eq!(vs.spec.hosts, ["frontend", "weather.example.com"]);
    assert_eq!(vs.spec.gateways, ["istio-system/weather-gateway", "mesh"]);
    assert_eq!(rendered.virtual_services().count(), 2);
}

/// Istio's CRD bundle: `$ISTIO_CRDS`, or `../shared/fixtures/istio/` beside the workspace (or
/// beside the worktree's parent, for worktrees one level deeper).
#[cfg(feature = "demo")]
fn istio_crds() -> Option<String> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = "shared/fixtures/istio/customresourcedefinitions.gen.yaml";
    let candidates: Vec<std::path::PathBuf> = std::env::var_os("ISTIO_CRDS")
        .map(Into::into)
        .into_iter()
        .chain([
            manifest.join("../..").join(rel),
            manifest.join("../../..").join(rel),
        ])
        .collect();
    for path in &candidates {
        if let Ok(yaml) = std::fs::read_to_string(path) {
            return Some(yaml);
        }
    }
    eprintln!(
        "SKIPPED: Istio CRD bundle not found (tried {candidates:?}); set ISTIO_CRDS to run this test"
    );
    None
}

// The CRD validator is the emulator's (its API server, there only with the `demo` feature).
#[cfg(feature = "demo")]
#[test]
fn every_rendered_object_validates_against_istio_crds() {
    use kube_emulator::schema::{CrdSet, UnknownFields};
    let Some(yaml) = istio_crds() else { return };
    let crds = CrdSet::from_yaml(&yaml).expect("the Istio bundle compiles");
    let mut checked = 0;
    for (r, s, o) in [seed_000(), seed_002(), seed_003(), seed_004()] {
        let finalized = RenderOptions {
            subsets: [Role::Canary].into(),
            ..o.clone()
        };
        let stages = [
            (render(&r, &s, &o).unwrap(), s.name.clone()),
            (
                render(&r, &baseline_stage(&r), &o).unwrap(),
                "baseline".into(),
            ),
            (
                render(&r, &final_stage(&r), &finalized).unwrap(),
                "final".into(),
            ),
        ];
        for (rendered, stage) in stages {
            for object in rendered.to_values() {
                let outcome = crds.validate(&object, UnknownFields::Strict).unwrap();
                assert!(
                    outcome.is_valid(),
                    "{} {} at stage {stage}: {:?}",
                    object["kind"],
                    object["metadata"]["name"],
                    outcome
                        .errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} objects checked");
    // The check has teeth: a mode Istio does not know is refused.
    let (r, s, o) = seed_000();
    let mut dr = render(&r, &s, &o).unwrap().to_values().remove(0);
    dr["spec"]["trafficPolicy"]["tls"]["mode"] = "BOGUS".into();
    assert!(!crds
        .validate(&dr, UnknownFields::Strict)
        .unwrap()
        .is_valid());
}

/// The chained stage the built-in policy writes (policy-sdk's `routes`), rendered and routed: the
/// canary of a calling release service reaches the callee's canary, an unrelated workload that
/// merely carries the same version label stays on stable.
#[test]
fn chaining_matches_each_caller_so_unrelated_v2_workloads_stay_on_stable() {
    let r = release(
        "shop-v2",
        "shop",
        vec![
            service("web", "v1", "v2", &["istio-system/gw"]),
            service("cart", "v1", "v2", &[]),
            service("db", "v1", "v2", &[]),
        ],
    );
    let plan = policy_sdk::stages::StagePlan {
        canary_weight: 10,
        testers: None,
        chain: true,
    };
    let s = Stage {
        index: 1,
        name: "10%".into(),
        routes: policy_sdk::stages::routes(&r, &plan),
    };
    let rendered = render(&r, &s, &RenderOptions::default()).unwrap();
    let table = RouteTable::new(rendered.objects().to_vec()).unwrap();
    let route = |caller: &[(&str, &str)]| {
        let mut req = Request::new("db").namespace("shop");
        for (k, v) in caller {
            req = req.source_label(k, v);
        }
        let v = table.simulate(&req).unwrap();
        assert_eq!(v.outcome, Outcome::Route);
        v.destinations
            .iter()
            .filter(|d| d.percent > 0.0)
            .map(|d| d.subset.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(route(&[("app", "web"), ("version", "v2")]), ["v2"]);
    assert_eq!(route(&[("app", "cart"), ("version", "v2")]), ["v2"]);
    assert_eq!(route(&[("app", "web"), ("version", "v1")]), ["v1"]);
    assert_eq!(route(&[("app", "reports"), ("version", "v2")]), ["v1"]);
    assert_eq!(route(&[("version", "v2")]), ["v1"]);
    // db's own canary is not one of its callers.
    assert_eq!(route(&[("app", "db"), ("version", "v2")]), ["v1"]);
}

/// `canaryCallers` renders as one `sourceLabels` block per other release service, each keeping
/// the block's other conditions, in spec order; the callee itself is not among its callers.
#[test]
fn canary_callers_expand_to_one_block_per_caller_keeping_other_conditions() {
    let r = release(
        "shop-v2",
        "shop",
        vec![
            service("web", "v1", "v2", &["istio-system/gw"]),
            service("cart", "v1", "v2", &[]),
            service("db", "v1", "v2", &[]),
        ],
    );
    let callers_with_header = Match {
        canary_callers: true,
        ..cookie(TESTER_COOKIE)
    };
    let s = stage(
        "10%",
        vec![
            ("web", vec![weighted(90, 10)]),
            ("cart", vec![weighted(90, 10)]),
            (
                "db",
                vec![when(callers_with_header, Role::Canary), all(Role::Stable)],
            ),
        ],
    );
    let rendered = render(&r, &s, &RenderOptions::default()).unwrap();
    let db = rendered
        .objects()
        .iter()
        .find_map(|o| match o {
            IstioObject::VirtualService(vs) if vs.metadata.name == "db" => Some(vs.clone()),
            _ => None,
        })
        .unwrap();
    let first = &db.spec.http[0];
    assert_eq!(first.name.as_deref(), Some("tester-cookie"));
    // Each block as `sourceLabels | header names`.
    let blocks: Vec<String> = first
        .matches
        .iter()
        .map(|m| {
            let labels: Vec<String> = m
                .source_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let headers: Vec<&str> = m.headers.keys().map(String::as_str).collect();
            format!("{} | {}", labels.join(","), headers.join(","))
        })
        .collect();
    assert_eq!(
        blocks,
        [
            "app=web,version=v2 | cookie",
            "app=cart,version=v2 | cookie"
        ]
    );
}

/// In a one-service release there is no caller to name: the caller rule is left out rather
/// than rendered without matches, which would send every request to the canary.
#[test]
fn canary_callers_with_no_caller_leave_the_rule_out() {
    let r = release("solo", "solo", vec![service("api", "v1", "v2", &[])]);
    let s = stage(
        "10%",
        vec![(
            "api",
            vec![
                when(Match::from_canary_callers(), Role::Canary),
                all(Role::Stable),
            ],
        )],
    );
    let rendered = render(&r, &s, &RenderOptions::default()).unwrap();
    let http: Vec<(Option<String>, usize)> = rendered
        .objects()
        .iter()
        .filter_map(|o| match o {
            IstioObject::VirtualService(vs) => Some(&vs.spec.http),
            _ => None,
        })
        .flatten()
        .map(|route| (route.name.clone(), route.matches.len()))
        .collect();
    assert_eq!(http, [(Some("all-stable".to_string()), 0)]);
}

#[test]
fn canary_callers_cannot_be_combined_with_source_labels() {
    let r = release(
        "shop-v2",
        "shop",
        vec![
            service("web", "v1", "v2", &[]),
            service("db", "v1", "v2", &[]),
        ],
    );
    let both = Match {
        canary_callers: true,
        ..source(&[("app", "web")])
    };
    let s = stage(
        "10%",
        vec![
            ("web", vec![all(Role::Stable)]),
            ("db", vec![when(both, Role::Canary), all(Role::Stable)]),
        ],
    );
    assert_eq!(
        render(&r, &s, &RenderOptions::default())
            .unwrap_err()
            .to_string(),
        "routes.db[0].match[0]: canaryCallers selects the callers by their own labels and cannot be combined with sourceLabels"
    );
}
