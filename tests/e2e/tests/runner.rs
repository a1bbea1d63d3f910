//! The in-cluster runner against the emulator: two replicas, one leader, releases handed over
//! with `run --detach` progress to Promoted with no CLI attached; SIGKILL of the leader hands
//! over to the standby, and every stage is recorded exactly once; a standby never writes.
//! Each runner authenticates with its own service account bound to `kubectl canary rbac
//! --runner`'s Role, so the Role is proven sufficient and the audit log tells them apart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_e2e::{plugin_dir, TestCluster};
use serde_json::Value;

const NS: &str = "shop";

fn spec(release: &str, service: &str) -> String {
    spec_in(NS, release, service, "")
}

/// A release of `service` in `namespace`; `extra` adds to the canary (`image: ...`) and spec.
fn spec_in(namespace: &str, release: &str, service: &str, extra: &str) -> String {
    let (canary_extra, spec_extra) = extra.split_once('|').unwrap_or((extra, ""));
    format!(
        "apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {{name: {release}, namespace: {namespace}}}
spec:
  services:
    - name: {service}
      stable: {{version: v1}}
      canary: {{version: v2{canary_extra}}}
  policy:
    module: builtin:progressive
    config: {{steps: [20, 50, 100], pause: 1s}}
{spec_extra}"
    )
}

/// Start `release` (as the admin) and hand it to the runner.
fn start_detached(c: &TestCluster, dir: &Path, release: &str, service: &str) {
    start_detached_spec(c, dir, NS, release, &spec(release, service));
}

/// Start the release of `spec` in `namespace` (as the admin) and hand it to the runner.
fn start_detached_spec(c: &TestCluster, dir: &Path, namespace: &str, release: &str, spec: &str) {
    let path = dir.join(format!("{namespace}-{release}.yaml"));
    std::fs::write(&path, spec).unwrap();
    let parsed = kubectl_canary::spec::load_file(&path).expect("spec");
    for object in kubectl_canary::demo::workloads::workloads_for(&parsed) {
        c.emulator
            .apply_yaml(&serde_yaml::to_string(&object).unwrap())
            .expect("workload");
    }
    c.canary(["start", "-f", path.to_str().unwrap()]).success();
    let run = c
        .canary(["run", release, "-n", namespace, "--detach"])
        .success();
    let since = record_in(c, namespace, release)["driver"]["since"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        run.stdout,
        format!("release {release} handed to the runner (since {since}): `kubectl canary runner` in namespace {namespace} drives it; `kubectl canary get {release}` shows its decisions\n")
    );
}

fn record(c: &TestCluster, release: &str) -> Value {
    record_in(c, NS, release)
}

fn record_in(c: &TestCluster, namespace: &str, release: &str) -> Value {
    let cm = c
        .emulator
        .get("v1", "ConfigMap", namespace, &format!("canary-{release}"))
        .expect("state ConfigMap");
    serde_json::from_str(cm["data"]["state.json"].as_str().unwrap()).unwrap()
}

/// The stages a release's history changed to (holds left out): every stage exactly once is
/// `[0, 1, 2]`.
fn stage_changes(c: &TestCluster, namespace: &str, release: &str) -> Vec<u64> {
    record_in(c, namespace, release)["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] != "hold")
        .map(|h| h["stage"].as_u64().unwrap())
        .collect()
}

/// A service account bound to the runner's Role, and a kubeconfig with its token.
fn runner_account(c: &TestCluster, dir: &Path, name: &str) -> PathBuf {
    c.emulator
        .apply_yaml(&format!(
            "apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kubectl-canary-runner}}
subjects:
- {{kind: ServiceAccount, name: {name}, namespace: {NS}}}
"
        ))
        .expect("service account");
    let token = c.emulator.service_account_token(NS, name).expect("token");
    let path = dir.join(format!("{name}.kubeconfig"));
    c.emulator
        .write_kubeconfig_with_token(&path, &token, NS)
        .expect("kubeconfig");
    path
}

/// A runner process and the lines it printed (standard output and standard error).
struct RunnerProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

/// Short timings, so that failover and the tests are quick.
const FAST: &[&str] = &[
    "--lease-duration",
    "3s",
    "--renew-deadline",
    "2s",
    "--retry-period",
    "250ms",
    "--interval",
    "1s",
    "--metrics-address",
    "127.0.0.1:0",
];

fn collect_lines(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl RunnerProcess {
    /// `kubectl-canary runner -n shop --identity IDENTITY` with [`FAST`] timings.
    fn spawn(identity: &str, kubeconfig: &Path) -> Self {
        Self::spawn_with(identity, kubeconfig, &["-n", NS])
    }

    /// `kubectl-canary runner --identity IDENTITY ARGS` with [`FAST`] timings.
    fn spawn_with(identity: &str, kubeconfig: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(plugin_dir().join("kubectl-canary"))
            .arg("runner")
            .args(args)
            .args(["--identity", identity])
            .args(FAST)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            // This emulator writes no propagation status (as for every other e2e command).
            .env("KUBECTL_CANARY_WAIT_PROPAGATION", "never")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("POD_NAME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the runner");
        let lines = collect_lines(child.stdout.take().unwrap());
        let errors = collect_lines(child.stderr.take().unwrap());
        RunnerProcess {
            child,
            lines,
            errors,
        }
    }

    /// Every line printed to standard error.
    fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    fn printed(&self, line: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l == line)
    }

    /// Both streams, for failure messages.
    fn output(&self) -> String {
        format!(
            "{}\n--- stderr\n{}",
            self.lines.lock().unwrap().join("\n"),
            self.errors.lock().unwrap().join("\n")
        )
    }

    /// Every printed line (either stream).
    fn all_lines(&self) -> Vec<String> {
        let mut all = self.lines.lock().unwrap().clone();
        all.extend(self.errors());
        all
    }
}

impl RunnerProcess {
    /// The address of /healthz, /readyz and /metrics, from the runner's first line.
    fn metrics_address(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .find_map(|l| {
                l.split_once("/metrics on http://")
                    .and_then(|(_, rest)| rest.split_once(';'))
                    .map(|(addr, _)| addr.to_string())
            })
            .expect("the runner prints where it serves")
    }
}

/// `GET path` over plain HTTP/1.1: the status code and the body.
fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `done` until it holds, failing with `what` after a generous deadline.
fn wait_for(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const WRITES: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_one_leader_failover_on_sigkill_every_stage_once() {
    let Some(c) = TestCluster::start_light("runner_failover").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let releases = [("web-v2", "web"), ("api-v2", "api")];
    for (release, service) in releases {
        start_detached(&c, dir.path(), release, service);
    }
    // The runner's Role, exactly as `kubectl canary rbac --runner` prints it.
    let role = c.canary(["rbac", "--runner", "-n", NS]).success().stdout;
    c.kubectl
        .run_with_stdin(["apply", "-f", "-"], &role)
        .success();
    let kc_a = runner_account(&c, dir.path(), "runner-a");
    let kc_b = runner_account(&c, dir.path(), "runner-b");

    let mut runners = [
        ("a", RunnerProcess::spawn("a", &kc_a)),
        ("b", RunnerProcess::spawn("b", &kc_b)),
    ];
    let leading = |id: &str| format!("runner {id}: leading: acquired the Lease");
    let outputs = |runners: &[(&str, RunnerProcess)]| {
        runners
            .iter()
            .map(|(id, r)| format!("runner {id}:\n{}", r.output()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_for(
        "a leader",
        || runners.iter().any(|(id, r)| r.printed(&leading(id))),
        || outputs(&runners),
    );
    let li = usize::from(!runners[0].1.printed(&leading("a")));
    let si = 1 - li;
    let standby_id = runners[si].0;
    assert!(
        !runners[si].1.printed(&leading(standby_id)),
        "{}",
        outputs(&runners)
    );
    // SIGKILL the leader as soon as it has made a decision.
    wait_for(
        "the leader's first decision",
        || runners[li].1.output().contains(": release shop/"),
        || outputs(&runners),
    );
    let killed_at = c.emulator.audit().records().len();
    let kill_time = Instant::now();
    runners[li].1.child.kill().unwrap();
    let _ = runners[li].1.child.wait();
    wait_for(
        "the standby to take over",
        || runners[si].1.printed(&leading(standby_id)),
        || outputs(&runners),
    );
    eprintln!(
        "failover: the standby led {:?} after the SIGKILL (lease duration 3s)",
        kill_time.elapsed()
    );
    let survivor = &runners[si].1;
    for (release, _) in releases {
        wait_for(
            &format!("{release} Promoted"),
            || record(&c, release)["phase"] == "Promoted",
            || format!("{:#}\nrunner:\n{}", record(&c, release), survivor.output()),
        );
        // Every stage exactly once: the history's stage changes are 0, 1, 2 in order.
        let history = record(&c, release)["history"].as_array().unwrap().clone();
        let stages: Vec<u64> = history
            .iter()
            .filter(|h| h["action"] != "hold")
            .map(|h| h["stage"].as_u64().unwrap())
            .collect();
        assert_eq!(stages, [0, 1, 2], "{history:#?}");
        assert_eq!(record(&c, release)["driver"]["kind"], "runner");
    }
    // Before the SIGKILL, the standby wrote nothing but Lease attempts.
    let records = c.emulator.audit().records();
    let standby_user = format!("system:serviceaccount:shop:runner-{standby_id}");
    let early: Vec<String> = records[..killed_at]
        .iter()
        .filter(|r| r.user == standby_user && WRITES.contains(&r.verb.as_str()))
        .filter(|r| r.resource != "leases")
        .map(|r| format!("{} {} -> {}", r.verb, r.path, r.status))
        .collect();
    assert_eq!(early, Vec::<String>::new());
    // The standby watched: no LIST of ConfigMaps after its first one (no polling).
    let lists = records
        .iter()
        .filter(|r| r.user == standby_user && r.resource == "configmaps" && r.verb == "list")
        .count();
    assert!(lists <= 2, "{lists} LISTs of ConfigMaps: the runner polls");
    // The survivor's probes and metrics.
    let address = survivor.metrics_address();
    assert_eq!(http_get(&address, "/healthz"), (200, "ok".to_string()));
    assert_eq!(http_get(&address, "/readyz"), (200, "ok".to_string()));
    let (code, metrics) = http_get(&address, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "kubectl_canary_runner_releases{phase=\"Promoted\"} 2",
        "kubectl_canary_runner_leader 1",
        "# TYPE kubectl_canary_runner_decision_duration_seconds histogram",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kubectl_canary_runner_decisions_total{action=\"complete\"} ")),
        "{metrics}"
    );
    // API latency of every request the runner made, by verb: the release watch, the engine's
    // reads and writes (record updates, server-side applies) and the Lease.
    for verb in ["get", "watch", "update", "patch"] {
        let count = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "kubectl_canary_runner_api_request_duration_seconds_count{{verb=\"{verb}\"}} "
                ))
            })
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            count.is_some_and(|n| n > 0),
            "no {verb} requests timed in\n{metrics}"
        );
    }
    // `get` names the driver.
    let get = c.canary(["get", "web-v2", "-n", NS]).success().stdout;
    let since = record(&c, "web-v2")["driver"]["since"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        get.ends_with(&format!("Driven by: runner (since {since}); its last decision is the last one above — `kubectl canary run web-v2 --attach` takes it back\n")),
        "{get}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_a_detached_release_until_attached() {
    let Some(c) = TestCluster::start_light("runner_detached_run").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    start_detached(&c, dir.path(), "web-v2", "web");
    let since = record(&c, "web-v2")["driver"]["since"]
        .as_str()
        .unwrap()
        .to_string();
    let run = c.canary(["run", "web-v2", "-n", NS, "--no-wait"]).code(1);
    assert_eq!(
        run.stderr,
        format!("error: release web-v2 is driven by the in-cluster runner (handed over at {since}); follow it with `kubectl canary get web-v2 --watch`, or take it back with `kubectl canary run web-v2 --attach`\n")
    );
    // No runner runs: nothing changed.
    assert_eq!(record(&c, "web-v2")["stage"]["index"], 0);
    let attach = c.canary(["run", "web-v2", "-n", NS, "--attach"]).success();
    assert_eq!(
        attach.stdout,
        "release web-v2 taken back from the runner: the CLI drives it (`kubectl canary run web-v2` goes on)\n"
    );
    assert!(record(&c, "web-v2").get("driver").is_none());
    let cm = c
        .emulator
        .get("v1", "ConfigMap", NS, "canary-web-v2")
        .unwrap();
    assert!(cm["metadata"]["labels"]
        .get("canary.kubectl.dev/driver")
        .is_none());
    c.canary(["run", "web-v2", "-n", NS, "--no-wait"]).success();
    assert_eq!(record(&c, "web-v2")["phase"], "Promoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_and_exits_0() {
    let Some(c) = TestCluster::start_light("runner_sigterm").await else {
        return;
    };
    c.emulator
        .apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
        .unwrap();
    let mut runner = RunnerProcess::spawn("solo", c.emulator.kubeconfig_path());
    wait_for(
        "the Lease",
        || runner.printed("runner solo: leading: acquired the Lease"),
        || runner.output(),
    );
    let status = Command::new("kill")
        .args(["-TERM", &runner.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = runner.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}\n{}", runner.output());
    wait_for(
        "the last line",
        || runner.printed("runner solo: stopped; Lease released"),
        || runner.output(),
    );
    let lease = c
        .emulator
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            NS,
            "kubectl-canary-runner",
        )
        .expect("the Lease");
    assert!(lease["spec"].get("holderIdentity").is_none(), "{lease:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_drives_releases_in_every_namespace() {
    let Some(c) = TestCluster::start_light("runner_all_namespaces").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let releases = [("shop", "web-v2", "web"), ("pay", "api-v2", "api")];
    for (ns, release, service) in releases {
        start_detached_spec(
            &c,
            dir.path(),
            ns,
            release,
            &spec_in(ns, release, service, ""),
        );
    }
    // A release not handed over is left alone, whatever its namespace.
    start_detached_spec(
        &c,
        dir.path(),
        "pay",
        "cart-v2",
        &spec_in("pay", "cart-v2", "cart", ""),
    );
    c.canary(["run", "cart-v2", "-n", "pay", "--attach"])
        .success();
    let runner = RunnerProcess::spawn_with(
        "all",
        c.emulator.kubeconfig_path(),
        &["-A", "--lease-namespace", NS],
    );
    wait_for(
        "the first line",
        || {
            runner
                .output()
                .lines()
                .any(|l| l.ends_with("; watching releases in all namespaces"))
        },
        || runner.output(),
    );
    for (ns, release, _) in releases {
        wait_for(
            &format!("{ns}/{release} Promoted"),
            || record_in(&c, ns, release)["phase"] == "Promoted",
            || {
                format!(
                    "{:#}\nrunner:\n{}",
                    record_in(&c, ns, release),
                    runner.output()
                )
            },
        );
        assert_eq!(stage_changes(&c, ns, release), [0, 1, 2]);
        // The runner logs a decision after its record write, so the line may trail the record.
        let prefix = format!("runner all: release {ns}/{release} complete → stage 2 (");
        wait_for(
            &format!("the runner's line for {ns}/{release}'s completion"),
            || {
                runner
                    .output()
                    .lines()
                    .any(|l| l.starts_with(&prefix) && l.contains("), Promoted: "))
            },
            || runner.output(),
        );
    }
    assert_eq!(record_in(&c, "pay", "cart-v2")["stage"]["index"], 0);
    assert!(record_in(&c, "pay", "cart-v2").get("driver").is_none());
    // One watch across namespaces: the runner's ConfigMap LISTs are cluster-wide, none per
    // namespace (the CLI commands above list no ConfigMaps).
    let lists: Vec<String> = c
        .emulator
        .audit()
        .records()
        .iter()
        .filter(|r| r.resource == "configmaps" && r.verb == "list")
        .map(|r| r.namespace.clone())
        .collect();
    assert!(!lists.is_empty());
    assert!(lists.iter().all(String::is_empty), "{lists:?}");
}

/// What the runner says it was doing when `verb` on `resource` was refused (the part of its
/// line before the apiserver's `is forbidden: ...`).
fn refused_request(resource: &str, verb: &str) -> String {
    let decision = |request: &str| format!("release shop/web-v2: error: {request}");
    match (resource, verb) {
        ("configmaps", "get") => {
            decision("get ConfigMap shop/canary-web-v2: configmaps \"canary-web-v2\"")
        }
        ("configmaps", "list") => "watch: list ConfigMap in namespace shop: configmaps".into(),
        ("configmaps", "watch") => "watch: watch ConfigMap in namespace shop: configmaps".into(),
        ("configmaps", "update") => {
            decision("update ConfigMap shop/canary-web-v2: configmaps \"canary-web-v2\"")
        }
        ("leases", _) => format!(
            "lease: {verb} Lease shop/kubectl-canary-runner: leases.coordination.k8s.io{}",
            if verb == "create" {
                ""
            } else {
                " \"kubectl-canary-runner\""
            }
        ),
        ("deployments", "list") => decision("list Deployments in namespace shop: deployments.apps"),
        ("deployments", "patch") => {
            decision("apply Deployment shop/web-v2: deployments.apps \"web-v2\"")
        }
        (_, "list") => {
            let (kind, group) = kind_of(resource);
            decision(&format!(
                "list {kind}s in namespace shop: {resource}.{group}"
            ))
        }
        (_, "patch") => {
            let (kind, group) = kind_of(resource);
            let name = if kind == "PeerAuthentication" {
                "default"
            } else {
                "web"
            };
            decision(&format!(
                "apply {kind} shop/{name}: {resource}.{group} \"{name}\""
            ))
        }
        _ => panic!("{verb} {resource}: a rule of the runner's Role this test does not know"),
    }
}

/// The Istio kinds of the runner's Role, by resource.
fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "destinationrules" => ("DestinationRule", "networking.istio.io"),
        "virtualservices" => ("VirtualService", "networking.istio.io"),
        "peerauthentications" => ("PeerAuthentication", "security.istio.io"),
        other => panic!("{other}: not an Istio kind of the runner's Role"),
    }
}

/// The spec of the least-privilege runs: a cloned canary Deployment and strict mTLS, so that
/// every rule of the runner's Role has a request that needs it.
const LEAST_SPEC_EXTRA: &str = ", image: \"web:2\"|  mtls: strict\n";

/// A cluster with a detached release whose DestinationRule, PeerAuthentication and canary
/// Deployment were deleted behind its back (the runner must restore them: that is where it
/// patches those kinds), and a `runner` service account bound to a Role of `rules`.
async fn least_privilege_cluster(
    dir: &Path,
    rules: &[kubectl_canary::cluster::rbac::Rule],
) -> Option<(TestCluster, PathBuf)> {
    let c = TestCluster::start_light("runner_least_privilege").await?;
    let spec = spec_in(NS, "web-v2", "web", LEAST_SPEC_EXTRA);
    start_detached_spec(&c, dir, NS, "web-v2", &spec);
    c.kubectl
        .run([
            "delete",
            "destinationrules,peerauthentications,deployments",
            "-n",
            NS,
            "-l",
            "canary.kubectl.dev/release=web-v2",
        ])
        .success();
    let role = kubectl_canary::cluster::rbac::role_yaml("kubectl-canary-runner", NS, rules);
    c.kubectl
        .run_with_stdin(["apply", "-f", "-"], &role)
        .success();
    let kubeconfig = runner_account(&c, dir, "runner");
    Some((c, kubeconfig))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_role_is_enough_and_each_verb_is_needed() {
    use kubectl_canary::cluster::rbac::{Rule, RUNNER};
    // Exactly the printed Role: the runner restores what was deleted and promotes the release.
    let dir = tempfile::tempdir().unwrap();
    let Some((c, kubeconfig)) = least_privilege_cluster(dir.path(), RUNNER).await else {
        return;
    };
    let printed = c.canary(["rbac", "--runner", "-n", NS]).success().stdout;
    assert_eq!(
        printed,
        kubectl_canary::cluster::rbac::role_yaml("kubectl-canary-runner", NS, RUNNER)
    );
    let runner = RunnerProcess::spawn("solo", &kubeconfig);
    wait_for(
        "web-v2 Promoted",
        || record(&c, "web-v2")["phase"] == "Promoted",
        || format!("{:#}\nrunner:\n{}", record(&c, "web-v2"), runner.output()),
    );
    assert_eq!(stage_changes(&c, NS, "web-v2"), [0, 1, 2]);
    for kind in ["destinationrule", "peerauthentication", "deployment"] {
        let names = c
            .kubectl
            .run([
                "get",
                kind,
                "-n",
                NS,
                "-l",
                "canary.kubectl.dev/release=web-v2",
                "-o",
                "name",
            ])
            .success()
            .stdout;
        assert!(!names.is_empty(), "the runner did not restore the {kind}");
    }
    let refused: Vec<String> = runner
        .all_lines()
        .into_iter()
        .filter(|l| l.contains("forbidden"))
        .collect();
    assert_eq!(refused, Vec::<String>::new());
    drop(runner);
    drop(c);

    // Each verb removed in turn: the runner says which verb on which resource it lacks.
    let user = "system:serviceaccount:shop:runner";
    for (i, rule) in RUNNER.iter().enumerate() {
        for verb in rule.verbs {
            let rules: Vec<Rule> = RUNNER
                .iter()
                .enumerate()
                .filter_map(|(j, r)| {
                    if j != i {
                        return Some(*r);
                    }
                    let verbs: Vec<&'static str> =
                        r.verbs.iter().copied().filter(|v| v != verb).collect();
                    (!verbs.is_empty()).then(|| Rule {
                        verbs: Box::leak(verbs.into_boxed_slice()),
                        ..*r
                    })
                })
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let (c, kubeconfig) = least_privilege_cluster(dir.path(), &rules)
                .await
                .expect("cluster");
            let runner = RunnerProcess::spawn("solo", &kubeconfig);
            let refused = |runner: &RunnerProcess| {
                runner
                    .all_lines()
                    .into_iter()
                    .find(|l| l.contains("is forbidden"))
            };
            wait_for(
                &format!("the runner to miss {verb} {}", rule.resource),
                || refused(&runner).is_some() || record(&c, "web-v2")["phase"] == "Promoted",
                || runner.output(),
            );
            let Some(line) = refused(&runner) else {
                panic!(
                    "no request of the runner needs {verb} on {}: the Role is not the least\n{}",
                    rule.resource,
                    runner.output()
                );
            };
            let want = format!(
                "runner solo: {} is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API group \"{}\" in the namespace \"shop\" (missing RBAC permission: `kubectl canary rbac` prints the Role the commands need; check yours with `kubectl auth can-i`)",
                refused_request(rule.resource, verb),
                rule.resource,
                rule.group
            );
            assert_eq!(
                line,
                want,
                "without {verb} {}\n{}",
                rule.resource,
                runner.output()
            );
            eprintln!("without {verb} {}: {line}", rule.resource);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_decision_racing_an_operator_step_applies_nothing_and_retries() {
    use kube_emulator::{Fault, Gate};
    let Some(c) = TestCluster::start_light("runner_races_step").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    start_detached(&c, dir.path(), "web-v2", "web");
    // Hold the runner's first record write (its step to stage 1) in the API server.
    let gate = Gate::new();
    c.emulator.faults().add(
        Fault::nth(1)
            .verb("update")
            .resource("configmaps")
            .gate(gate.clone()),
    );
    let runner = RunnerProcess::spawn("solo", c.emulator.kubeconfig_path());
    wait_for(
        "the runner's write at the gate",
        || gate.waiting() == 1,
        || runner.output(),
    );
    let read = c
        .emulator
        .get("v1", "ConfigMap", NS, "canary-web-v2")
        .unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Meanwhile an operator steps the same release: it wins.
    c.canary(["step", "web-v2", "-n", NS]).success();
    assert_eq!(record(&c, "web-v2")["stage"]["index"], 1);
    gate.open();
    // The runner's write was conditional on what it read: refused, nothing applied, retried on
    // the operator's state — stage 1 is not stepped again, the runner goes on to stage 2.
    wait_for(
        "web-v2 Promoted",
        || record(&c, "web-v2")["phase"] == "Promoted",
        || format!("{:#}\nrunner:\n{}", record(&c, "web-v2"), runner.output()),
    );
    assert!(
        runner.printed(&format!("runner solo: release shop/web-v2: error: release web-v2 changed under you (resourceVersion {read} is stale); nothing of this command was applied — rerun it to act on the current state")),
        "{}",
        runner.output()
    );
    assert_eq!(stage_changes(&c, NS, "web-v2"), [0, 1, 2]);
    c.assert_record_matches_routing(NS, "web-v2");
    c.assert_no_dangling_subsets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_waits_for_propagation_as_run_does() {
    use canary_e2e::propagation::{check_data_plane_order, start_propagating};
    let propagation = kube_emulator::Propagation::after(Duration::from_millis(300));
    let Some(c) = start_propagating("runner_propagation", Some(propagation)).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    start_detached(&c, dir.path(), "web-v2", "web");
    let runner = RunnerProcess::spawn_with(
        "solo",
        c.emulator.kubeconfig_path(),
        &["-n", NS, "--wait-propagation", "always"],
    );
    wait_for(
        "web-v2 Promoted",
        || record(&c, "web-v2")["phase"] == "Promoted",
        || format!("{:#}\nrunner:\n{}", record(&c, "web-v2"), runner.output()),
    );
    // The record is written before its objects are applied: wait for the runner's own line.
    wait_for(
        "the runner's last decision",
        || {
            runner
                .output()
                .lines()
                .any(|l| l.starts_with("runner solo: release shop/web-v2 complete → stage 2 ("))
        },
        || runner.output(),
    );
    // Each stage's VirtualService change was confirmed at the data plane before the next.
    let confirmed = runner
        .errors()
        .iter()
        .filter(|l| l.starts_with("  virtualservice/web: 4/4 proxies ("))
        .count();
    assert_eq!(confirmed, 2, "{}", runner.output());
    let violations = check_data_plane_order(&c.emulator.audit().records());
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert_eq!(stage_changes(&c, NS, "web-v2"), [0, 1, 2]);
}

/// `runner install` applies the ServiceAccount, Role, RoleBinding and Deployment it prints; a
/// server dry run applies nothing; a second install changes nothing (server-side apply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_install_applies_what_it_prints() {
    let Some(c) = TestCluster::start_light("runner_install").await else {
        return;
    };
    c.kubectl.run(["create", "namespace", "ops"]).success();
    let image = "registry.example/kubectl-canary:0.1.0";
    let install = |extra: &[&str]| {
        let mut args = vec!["runner", "install", "-n", "ops", "--image", image];
        args.extend_from_slice(extra);
        c.canary(args).success().stdout
    };
    let lines = |suffix: &str| -> String {
        ["serviceaccount", "role", "rolebinding", "deployment"]
            .iter()
            .map(|k| format!("{k}/kubectl-canary-runner serverside-applied{suffix}\n"))
            .collect()
    };
    assert_eq!(install(&["--dry-run=server"]), lines(" (server dry run)"));
    assert!(!c.exists("deployment", "ops", "kubectl-canary-runner"));
    assert_eq!(install(&["--replicas", "3"]), lines(""));
    let printed: Value = serde_json::from_str(&install(&[
        "--replicas",
        "3",
        "--dry-run=client",
        "-o",
        "json",
    ]))
    .unwrap();
    let printed = printed["items"].as_array().unwrap();
    assert_eq!(printed.len(), 4);
    // What is live is what was printed.
    for object in printed {
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let live = c.get(&kind, "ops", "kubectl-canary-runner");
        for field in ["rules", "subjects", "roleRef"] {
            assert_eq!(live[field], object[field], "{kind} {field}");
        }
    }
    let deployment = c.get("deployment", "ops", "kubectl-canary-runner");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        image
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "kubectl-canary-runner"
    );
    let generation = deployment["metadata"]["generation"].clone();
    install(&["--replicas", "3"]);
    assert_eq!(
        c.get("deployment", "ops", "kubectl-canary-runner")["metadata"]["generation"],
        generation,
        "a second install changed the Deployment"
    );
}
