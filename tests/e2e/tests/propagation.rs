//! Data-plane confirmation (issue 13) through the real kubectl against an emulated istiod
//! status writer: steps wait for propagation, a stuck object stops finalize before anything
//! depends on it, a cluster without status is said to be so once, and the audit-log timeline
//! never routes to an unreconciled subset nor removes one a live route may use.

use std::time::Duration;

use canary_e2e::propagation::{check_data_plane_order, start_propagating};
use canary_e2e::TestCluster;
use kube_emulator::Propagation;

const RELEASE: &str = "frontend-backend-v2";

/// Progress lines with the waited time (which varies) replaced by `(T)`.
fn normalized(stderr: &str) -> String {
    stderr
        .lines()
        .map(|l| match (l.rfind(" ("), l.ends_with(')')) {
            (Some(i), true) if l.contains(" proxies (") => format!("{} (T)", &l[..i]),
            _ => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect()
}

/// The lines a non-terminal run prints while `objects` propagate over 4 proxies.
fn waited(objects: &[&str]) -> String {
    objects
        .iter()
        .map(|o| {
            format!("  waiting for {o} to reach every proxy: 0/4 proxies\n  {o}: 4/4 proxies (T)\n")
        })
        .collect()
}

/// Watch requests the plugin made, as `resource/name` (field-selected by name).
fn watches(c: &TestCluster) -> Vec<String> {
    c.emulator
        .audit()
        .records()
        .iter()
        .filter(|r| r.verb == "watch" && r.user_agent.starts_with("kubectl-canary"))
        .map(|r| {
            let name = r
                .path
                .split("metadata.name%3D")
                .nth(1)
                .or_else(|| r.path.split("metadata.name=").nth(1))
                .map(|n| n.split('&').next().unwrap_or(n))
                .unwrap_or("?");
            format!("{}/{name}", r.resource)
        })
        .collect()
}

fn subsets(c: &TestCluster, name: &str) -> Vec<String> {
    c.get("destinationrule", "default", name)["spec"]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn assert_data_plane_order(c: &TestCluster) {
    let violations = check_data_plane_order(&c.emulator.audit().records());
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails on main (issue 13 open): written without a run; the wait or its counted watches differ from what the test expects"]
async fn a_step_waits_for_propagation_and_then_proceeds() {
    let propagation = Propagation::after(Duration::from_millis(300));
    let Some(c) = start_propagating("step_waits", Some(propagation)).await else {
        return;
    };
    let (spec, _) = c.example("frontend-backend.yaml");
    let start = c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    assert_eq!(
        normalized(&start.stderr),
        waited(&[
            "destinationrule/backend",
            "destinationrule/frontend",
            "virtualservice/backend",
            "virtualservice/frontend"
        ])
    );
    c.emulator.audit().clear();
    let step = c.canary(["step", RELEASE, "-n", "default"]).success();
    assert_eq!(
        normalized(&step.stderr),
        waited(&["virtualservice/backend", "virtualservice/frontend"])
    );
    // One watch per changed object, nothing else: the price of confirming a step.
    assert_eq!(
        watches(&c),
        ["virtualservices/backend", "virtualservices/frontend"]
    );
    for vs in ["frontend", "backend"] {
        let live = c.get("virtualservice", "default", vs);
        assert_eq!(
            live["status"]["observedGeneration"],
            live["metadata"]["generation"]
        );
        assert_eq!(live["status"]["conditions"][0]["type"], "Reconciled");
        assert_eq!(live["status"]["conditions"][0]["status"], "True");
        assert_eq!(
            live["status"]["conditions"][0]["message"],
            "4/4 proxies up to date."
        );
    }
    let get = c.canary(["get", RELEASE, "-n", "default"]).success();
    let block = get
        .stdout
        .split("Propagation (istiod):\n")
        .nth(1)
        .unwrap_or("");
    assert_eq!(
        block,
        "  destinationrule/backend   4/4\n  destinationrule/frontend  4/4\n  virtualservice/backend    4/4\n  virtualservice/frontend   4/4\n",
        "{}",
        get.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "hangs on main (issue 13 open): finalize with a stuck VirtualService did not return within a minute"]
async fn finalize_with_a_stuck_virtual_service_keeps_the_old_subset_and_deployment() {
    let propagation = Propagation::after(Duration::from_millis(200));
    let Some(c) = start_propagating("stuck_finalize", Some(propagation.clone())).await else {
        return;
    };
    let (spec, _) = c.example("frontend-backend.yaml");
    c.canary(["start", "-f", spec.to_str().unwrap()]).success();
    c.canary(["promote", RELEASE, "-n", "default"]).success();
    let before = subsets(&c, "frontend");
    assert_eq!(before, ["v1", "v2"]);

    c.emulator
        .set_propagation(Some(propagation.clone().with_stuck("frontend")));
    let finalize = c
        .canary([
            "finalize",
            RELEASE,
            "-n",
            "default",
            "--propagation-timeout",
            "2s",
        ])
        .code(1);
    let generation = c.get("virtualservice", "default", "frontend")["metadata"]["generation"]
        .as_i64()
        .unwrap();
    assert_eq!(
        finalize.stderr.lines().last().unwrap(),
        format!(
            "error: VirtualService default/frontend (generation {generation}) did not reach every proxy within 2s: last reported 3/4 complete; nothing that depends on it was applied — rerun the command to resume waiting, or raise --propagation-timeout"
        )
    );
    // Nothing that depends on the unconfirmed route moved: both subsets, both Deployments.
    assert_eq!(subsets(&c, "frontend"), ["v1", "v2"]);
    assert_eq!(subsets(&c, "backend"), ["v1", "v2"]);
    assert!(c.exists("deployment", "default", "frontend-v1"));
    assert!(c.exists("deployment", "default", "backend-v1"));
    let get = c.canary(["get", RELEASE, "-n", "default"]).success();
    assert!(
        get.stdout
            .contains("  virtualservice/frontend   3/4 propagating\n"),
        "{}",
        get.stdout
    );

    // A rerun resumes the wait (it does not stack the next change on the unconfirmed one);
    // the proxies catch up while it waits, and it finishes the finalize.
    c.emulator.audit().clear();
    let rerun = std::thread::scope(|scope| {
        let rerun = scope.spawn(|| c.canary(["finalize", RELEASE, "-n", "default"]));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !watches(&c).contains(&"virtualservices/frontend".to_string()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the rerun never watched the stuck VirtualService"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c.emulator.set_propagation(Some(propagation));
        rerun.join().expect("rerun thread")
    })
    .success();
    assert_eq!(
        normalized(&rerun.stderr),
        format!(
            "  waiting for virtualservice/frontend to reach every proxy: 3/4 proxies\n  virtualservice/frontend: 4/4 proxies (T)\n{}",
            waited(&["destinationrule/backend", "destinationrule/frontend"])
        )
    );
    assert_eq!(subsets(&c, "frontend"), ["v2"]);
    assert!(!c.exists("deployment", "default", "frontend-v1"));
    assert!(!c.exists("deployment", "default", "backend-v1"));
    assert_data_plane_order(&c);
    c.assert_no_dangling_subsets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails on main (issue 13 open): written without a run; the warning or settle lines differ from what the test expects"]
async fn without_status_auto_mode_warns_once_and_settles() {
    let Some(c) = start_propagating("no_status", None).await else {
        return;
    };
    let (spec, _) = c.example("frontend-backend.yaml");
    let start = c
        .canary(["start", "-f", spec.to_str().unwrap(), "--settle", "50ms"])
        .success();
    assert_eq!(
        start.stderr,
        "warning: cannot confirm that changes reached the proxies: istiod wrote no Reconciled status on DestinationRule default/backend within 2s. \
Enable Istio's config status (istiod environment PILOT_ENABLE_STATUS=true and PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING=true, \
e.g. istioctl install --set values.pilot.env.PILOT_ENABLE_STATUS=true --set values.pilot.env.PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING=true); \
until then each change is followed by --settle 50ms instead\n  \
settling 50ms (propagation not reported)\n  settling 50ms (propagation not reported)\n"
    );
    // Only the first object was watched for a status; later batches only settle.
    assert_eq!(watches(&c), ["destinationrules/backend"]);
    assert!(c.exists("virtualservice", "default", "frontend"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_mode_without_status_stops_before_the_routes() {
    let Some(c) = start_propagating("always_no_status", None).await else {
        return;
    };
    let (spec, _) = c.example("frontend-backend.yaml");
    let start = c
        .canary([
            "start",
            "-f",
            spec.to_str().unwrap(),
            "--wait-propagation=always",
            "--propagation-timeout",
            "1s",
        ])
        .code(1);
    assert_eq!(
        start.stderr,
        "error: DestinationRule default/backend (generation 1) did not reach every proxy within 1s: istiod reported no status (is Istio's config status enabled? PILOT_ENABLE_STATUS=true and PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING=true); nothing that depends on it was applied — rerun the command to resume waiting, or raise --propagation-timeout\n"
    );
    assert!(!c.exists("virtualservice", "default", "frontend"));
    assert!(!c.exists("virtualservice", "default", "backend"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_routes_written_before_their_subset_propagated() {
    // A release that does not wait, on proxies that take 30s: the checker must object.
    let propagation = Propagation::after(Duration::from_secs(30));
    let Some(c) = start_propagating("checker_fails", Some(propagation)).await else {
        return;
    };
    let (spec, _) = c.example("frontend-backend.yaml");
    c.canary([
        "start",
        "-f",
        spec.to_str().unwrap(),
        "--wait-propagation=never",
    ])
    .success();
    let records = c.emulator.audit().records();
    let first_route = records
        .iter()
        .find(|r| r.resource == "virtualservices" && r.is_successful_write())
        .expect("a VirtualService write");
    let violations = check_data_plane_order(&records);
    assert_eq!(
        violations.first().map(String::as_str),
        Some(
            format!(
                "after request {} (patch virtualservices {}): VirtualService default/{} generation 1 routes to subset v1 of {} before a DestinationRule generation defining it is reconciled",
                first_route.seq, first_route.name, first_route.name, first_route.name
            )
            .as_str()
        ),
        "{violations:#?}"
    );
    // The API-level check alone is satisfied: this is what propagation adds.
    c.assert_no_dangling_subsets();
}
