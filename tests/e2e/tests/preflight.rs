//! Pre-flight against the emulated API server through the real kubectl: `init` scaffolds a spec
//! from the live namespace, `lint` accepts it, `mtls enable` makes the DestinationRules speak
//! ISTIO_MUTUAL and adds the STRICT PeerAuthentication (read back with kubectl), and a namespace
//! that does not exist is a one-line error.

use canary_e2e::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_lint_and_mtls_on_a_live_namespace() {
    let Some(c) = TestCluster::start_light("preflight").await else {
        return;
    };
    // Workloads of seed 000: three services, versions 1.0/1.1 and 2.0 running.
    let (example, _) = c.example("voting-app.yaml");

    let run = c
        .canary([
            "init",
            "voting-app",
            "voting-analytics",
            "voting-storage",
            "-n",
            "voting",
        ])
        .success();
    let release = kubectl_canary::spec::parse_str(&run.stdout, "init output").unwrap();
    assert_eq!(release.namespace(), "voting");
    let versions: Vec<(&str, &str, &str)> = release
        .spec
        .services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.stable.version.as_str(),
                s.canary.version.as_str(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("voting-app", "1.0", "2.0"),
            ("voting-analytics", "1.1", "2.0"),
            ("voting-storage", "1.0", "2.0"),
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("release.yaml");
    std::fs::write(&spec, &run.stdout).unwrap();
    // lint accepts the written spec against the live namespace (the spec's namespace is used).
    let run = c.canary(["lint", "-f", spec.to_str().unwrap(), "-o", "json"]);
    let doc = run.json();
    assert_eq!(doc["summary"]["errors"], 0, "{doc:#}");
    assert_eq!(run.code, Some(0), "{doc:#}");

    // Start the seed's release so kubectl-canary owns DestinationRules, then switch mTLS on.
    c.canary(["start", "-f", example.to_str().unwrap()])
        .success();
    c.canary(["mtls", "enable", "-n", "voting"]).success();
    for service in ["voting-app", "voting-analytics", "voting-storage"] {
        let dr = c.get("destinationrule", "voting", service);
        assert_eq!(
            dr["spec"]["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL",
            "{dr:#}"
        );
        assert!(
            dr["spec"]["subsets"]
                .as_array()
                .is_some_and(|s| s.len() == 2),
            "the mtls field manager must not drop the subsets: {dr:#}"
        );
    }
    let pa = c.get("peerauthentication", "voting", "default");
    assert_eq!(pa["spec"]["mtls"]["mode"], "STRICT");
    let status = c
        .canary(["mtls", "status", "-n", "voting", "-o", "json"])
        .success()
        .json();
    let rows = status.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{status:#}");
    assert!(rows.iter().all(|r| r["verdict"] == "OK"), "{status:#}");

    // A namespace that does not exist.
    let run = c.canary(["lint", "-n", "nope"]).code(1);
    assert_eq!(
        run.stderr,
        "error: get Namespace nope: namespace \"nope\" not found (check -n, or the namespace of \
         your kubeconfig context)\n"
    );
    let run = c.canary(["init", "voting-app", "-n", "nope"]).code(1);
    assert!(
        run.stderr.starts_with("error: get Namespace nope: "),
        "{}",
        run.stderr
    );
}
