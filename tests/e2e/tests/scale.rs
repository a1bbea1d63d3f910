//! A large chained release (issue 16 item 5): the built-in policy answers a compact caller match
//! per service, so its decisions grow linearly with the release, and a release well past the
//! old ceiling (175 services) plans, starts, steps and shows with the default limits. The
//! rendered VirtualServices still name every caller (one `sourceLabels` block per other
//! service), as Istio needs, so the objects grow with the square of the services: the
//! 1,000-service release at the spec limit is measured by `cargo bench -p canary-e2e --bench
//! scale` rather than run on every CI build.

use canary_e2e::TestCluster;

/// The release's size: past the 175 services the quadratic policy could decide, and past
/// the 256 the spec used to allow.
const SERVICES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_release_of_300_services_plans_starts_steps_and_shows() {
    let Some(c) = TestCluster::start("a_chained_release_of_300_services").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = c.chained_mesh(dir.path(), SERVICES);
    let spec = spec.to_str().unwrap();

    let plan = c
        .canary(["plan", "-f", spec, "-o", "json"])
        .success()
        .json();
    let stages: Vec<&str> = plan["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(stages, ["10%", "50%", "100%"], "{plan:#}");

    c.canary(["start", "-f", spec]).success();
    let last = c.get("virtualservice", "mesh", &format!("svc{}", SERVICES - 1));
    let callers: Vec<String> = last["spec"]["http"][0]["match"]
        .as_array()
        .expect("the caller rule's matches")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["sourceLabels"]["app"].as_str().unwrap_or(""),
                m["sourceLabels"]["version"].as_str().unwrap_or("")
            )
        })
        .collect();
    let want: Vec<String> = (0..SERVICES - 1).map(|i| format!("svc{i}/v2")).collect();
    assert_eq!(callers, want);
    assert_eq!(
        c.default_weights("mesh", "svc0"),
        [("v1".to_string(), 90), ("v2".to_string(), 10)]
    );

    c.canary(["step", "mesh-v2", "-n", "mesh"]).success();
    assert_eq!(
        c.default_weights("mesh", "svc0"),
        [("v1".to_string(), 50), ("v2".to_string(), 50)]
    );
    c.assert_record_matches_routing("mesh", "mesh-v2");

    let get = c
        .canary(["get", "mesh-v2", "-n", "mesh", "--fail-on-drift"])
        .success();
    let progressive = kubectl_canary::policy::BUILTINS
        .iter()
        .find(|b| b.name == "progressive")
        .expect("the built-in progressive policy");
    let lines: Vec<&str> = get.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "mesh-v2 (mesh)  Progressing  stage 1 (50%)  policy progressive@sha256:{}",
            &progressive.sha256()[..12]
        )
    );
    // The last service's rules, as `get` draws them: the compact caller match, not 999 lines.
    let last = lines
        .iter()
        .position(|l| *l == format!("└── service svc{}", SERVICES - 1))
        .unwrap_or_else(|| panic!("the last service in get's tree:\n{}", get.stdout));
    assert_eq!(
        lines[last + 3..last + 6],
        [
            "    └── rules",
            "        ├── #0 caller is another service's canary → canary 100%",
            "        └── #1 everything else → stable 100%",
        ]
    );
    c.assert_no_dangling_subsets();
}
