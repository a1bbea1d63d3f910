//! Helpers for the end-to-end tests: run the real `kubectl`, with `kubectl-canary` found through
//! kubectl's plugin discovery on `PATH`, optionally against an emulated API server.
//!
//! One small runner ([`Kubectl`]) in the style of ripgrep's `TestCommand`: build the command,
//! run it, and assert on a [`Run`] that prints everything when an assertion fails.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod prometheus;
pub mod propagation;
pub mod registry;
pub mod webhook;

/// A directory holding only `kubectl-canary` (a link to the freshly built binary), for `PATH`.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The test binary is target/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile> directory")
            .to_path_buf();
        let bin = profile_dir.join(format!("kubectl-canary{}", std::env::consts::EXE_SUFFIX));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "kubectl-canary", "--bin", "kubectl-canary"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        // Cargo gives this test process per-crate variables (CARGO_MANIFEST_DIR, CARGO_PKG_*);
        // passed on, they would make the nested build look different (ring's build script
        // tracks CARGO_MANIFEST_DIR) and rebuild half the tree on every test run.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            let keep = matches!(
                key_text.as_ref(),
                "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_TERM_COLOR" | "CARGO_BUILD_JOBS"
            );
            if key_text.starts_with("CARGO_") && !keep {
                build.env_remove(&key);
            }
        }
        // Always ask cargo: it is a no-op when the binary is fresh, and a stale binary would
        // test old code.
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building kubectl-canary failed");
        assert!(bin.exists(), "{} missing after build", bin.display());
        // A directory holding only the plugin: the profile directory itself also has
        // `kubectl-canary.d` (cargo's dep-info), which `kubectl plugin list` flags.
        let dir = profile_dir.join("e2e-plugin-path");
        std::fs::create_dir_all(&dir).expect("create plugin PATH directory");
        let link = dir.join(bin.file_name().expect("binary name"));
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink(&bin, &link) {
            assert!(
                e.kind() == std::io::ErrorKind::AlreadyExists,
                "link {}: {e}",
                link.display()
            );
        }
        dir
    })
}

/// The kubectl binary to test with: `$KUBECTL`, else `kubectl` on PATH. `None` (the test
/// should skip, saying so) when there is none.
pub fn kubectl_bin() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(k));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
}

/// Print why a test is skipped, in a form CI logs make easy to find; under `CI=true`, where
/// every tool and fixture is installed, fail instead ([`kube_emulator::testing::require`]).
#[track_caller]
pub fn skip(test: &str, why: &str) {
    assert!(
        !kube_emulator::testing::in_ci(),
        "{test}: {why}, and CI=true: install it (see .ci/run) instead of skipping"
    );
    eprintln!("SKIPPED {test}: {why}");
}

/// A kubectl invocation builder with `kubectl-canary` discoverable on PATH.
#[derive(Debug, Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
}

impl Kubectl {
    /// kubectl from [`kubectl_bin`], or `None` when absent.
    pub fn new() -> Option<Self> {
        kubectl_bin().map(Self::with_binary)
    }

    /// A specific kubectl binary (e.g. one of the versioned ones).
    pub fn with_binary(bin: PathBuf) -> Self {
        Kubectl {
            bin,
            kubeconfig: None,
            env: Vec::new(),
        }
    }

    /// Use this kubeconfig (passed as `KUBECONFIG`, as a user would set it).
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Set an environment variable for every run.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run `kubectl <args>` and capture everything.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.run_with_stdin(args, "")
    }

    /// Run `kubectl <args>` with `stdin` as standard input.
    pub fn run_with_stdin<I, S>(&self, args: I, stdin: &str) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        use std::io::Write;
        let mut running = self.spawn(args);
        if let Some(mut input) = running.child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        running.wait()
    }

    /// Start `kubectl <args>` without waiting (standard input closed when it is read); finish
    /// with [`Running::wait`]. Plugins run in kubectl's own process (kubectl execs them), so
    /// killing the child kills the plugin.
    pub fn spawn<I, S>(&self, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut path = vec![plugin_dir().to_path_buf()];
        if let Some(p) = std::env::var_os("PATH") {
            path.extend(std::env::split_paths(&p));
        }
        let mut cmd = Command::new(&self.bin);
        cmd.args(&args)
            .env("PATH", std::env::join_paths(path).expect("PATH"))
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(k) = &self.kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.bin));
        Running {
            child,
            command: format!(
                "{} {}",
                self.bin.display(),
                args.iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
}

/// A started run (see [`Kubectl::spawn`]).
#[derive(Debug)]
pub struct Running {
    /// The process.
    pub child: std::process::Child,
    command: String,
}

impl Running {
    /// Wait for the process and capture everything.
    pub fn wait(mut self) -> Run {
        drop(self.child.stdin.take());
        let output = self.child.wait_with_output().expect("wait for kubectl");
        Run {
            command: self.command,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// SIGKILL the process, then collect what it printed.
    pub fn kill(mut self) -> Run {
        let _ = self.child.kill();
        self.wait()
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Assert exit code 0 and return self.
    #[track_caller]
    pub fn success(self) -> Self {
        self.code(0)
    }

    /// Assert this exit code and return self.
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code,
            Some(expected),
            "`{}` exited {:?}, expected {expected}\n--- stdout\n{}--- stderr\n{}",
            self.command,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Parse stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` stdout is not JSON ({e}):\n{}",
                self.command, self.stdout
            )
        })
    }
}

/// The workspace root (for `examples/` and `../shared`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Istio's real CRD bundle, when `../shared` is beside the workspace (CI always has it: there
/// its absence fails the test, see [`kube_emulator::testing::require`]).
#[track_caller]
pub fn istio_crd_bundle() -> Option<String> {
    let path = workspace_root().join("../shared/fixtures/istio/customresourcedefinitions.gen.yaml");
    kube_emulator::testing::require(
        std::fs::read_to_string(&path).ok(),
        &format!("{} (Istio's CRD bundle)", path.display()),
    )
}

/// An emulated cluster with Istio's kinds, and kubectl pointed at it.
pub struct TestCluster {
    /// The emulated API server (its audit log and faults are the tests' instruments).
    pub emulator: kube_emulator::Emulator,
    /// kubectl with the emulator's kubeconfig and kubectl-canary on PATH.
    pub kubectl: Kubectl,
}

impl TestCluster {
    /// Start an emulator with Istio's CRDs (the real bundle when `../shared` is present, else
    /// the demo's open-schema definitions); `None` when kubectl is missing (the caller skips).
    pub async fn start(test: &str) -> Option<TestCluster> {
        Self::start_with(test, istio_crd_bundle()).await
    }

    /// Like [`TestCluster::start`] but always with the open-schema Istio CRDs: much faster to
    /// install, for tests that start many clusters (the crash matrix).
    pub async fn start_light(test: &str) -> Option<TestCluster> {
        Self::start_with(test, None).await
    }

    async fn start_with(test: &str, bundle: Option<String>) -> Option<TestCluster> {
        let Some(kubectl) = Kubectl::new() else {
            skip(test, "no kubectl on PATH");
            return None;
        };
        let emulator = kube_emulator::Emulator::start(kube_emulator::Options::default())
            .await
            .expect("start the emulated API server");
        match bundle {
            Some(bundle) => {
                emulator
                    .apply_yaml(&bundle)
                    .expect("install Istio's CRD bundle");
            }
            None => {
                emulator
                    .apply_yaml(&kubectl_canary::demo::workloads::istio_crds())
                    .expect("install Istio CRDs");
            }
        }
        // This emulator writes no propagation status: keep API-level ordering tests exact
        // (the propagation tests start their clusters with `propagation::start_propagating`).
        let kubectl = kubectl
            .kubeconfig(emulator.kubeconfig_path())
            .env("KUBECTL_CANARY_WAIT_PROPAGATION", "never");
        Some(TestCluster { emulator, kubectl })
    }

    /// Creates the Service `namespace/name` (and its Namespace) with port `port`, and makes the
    /// emulator's Service proxy subresource (`/api/v1/namespaces/NAMESPACE/services/NAME:PORT/
    /// proxy/…`) forward to `target`: e.g. a [`prometheus::Prometheus`] reached as
    /// `analysis.prometheus.service: NAMESPACE/NAME:PORT`.
    pub fn expose_service(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        target: std::net::SocketAddr,
    ) {
        self.emulator
            .apply_yaml(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n\
                 apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
                 spec:\n  ports: [{{name: http, port: {port}, targetPort: {port}}}]\n"
            ))
            .expect("create the Service");
        self.emulator
            .register_service_proxy(namespace, name, port, target);
    }

    /// Load `examples/<file>`, create the workloads it expects, and return the spec's path and
    /// release.
    pub fn example(&self, file: &str) -> (PathBuf, kubectl_canary::spec::Release) {
        let path = workspace_root().join("examples").join(file);
        let spec = kubectl_canary::spec::load_file(&path).expect("example spec");
        for object in kubectl_canary::demo::workloads::workloads_for(&spec) {
            let yaml = serde_yaml::to_string(&object).expect("yaml");
            self.emulator.apply_yaml(&yaml).expect("create workload");
        }
        (path, spec)
    }

    /// The shop scenario (`examples/frontend-backend.yaml`: frontend + backend, seed 004's
    /// shape) without its 5-minute pause, written into `dir`, so that every `step` advances.
    pub fn shop_without_pause(&self, dir: &std::path::Path) -> PathBuf {
        let (path, _) = self.example("frontend-backend.yaml");
        let text = std::fs::read_to_string(path).expect("example");
        assert!(text.contains("      pause: 5m\n"), "the example changed");
        let spec = dir.join("shop.yaml");
        std::fs::write(&spec, text.replace("      pause: 5m\n", "")).expect("write spec");
        spec
    }

    /// A chained release `mesh-v2` of `services` services `svc0..` (v1 → v2, the first the
    /// entry, the seed tutorials' ramp) in namespace `mesh`, written to `dir/mesh.yaml`, with
    /// the Services and Deployments it expects created.
    pub fn chained_mesh(&self, dir: &Path, services: usize) -> PathBuf {
        let mut text = String::from(
            "apiVersion: canary.kubectl.dev/v1alpha1\nkind: Release\nmetadata: {name: mesh-v2, namespace: mesh}\nspec:\n  services:\n",
        );
        for i in 0..services {
            let entry = if i == 0 { "entry: true, " } else { "" };
            text.push_str(&format!(
                "  - {{name: svc{i}, {entry}stable: {{version: v1}}, canary: {{version: v2}}}}\n"
            ));
        }
        text.push_str(
            "  policy:\n    module: builtin:progressive\n    config: {chain: true, steps: [10, 50, 100]}\n",
        );
        let path = dir.join("mesh.yaml");
        std::fs::write(&path, text).expect("write the spec");
        let spec = kubectl_canary::spec::load_file(&path).expect("the spec is valid");
        let workloads: Vec<String> = kubectl_canary::demo::workloads::workloads_for(&spec)
            .iter()
            .map(|o| serde_json::to_string(o).expect("JSON"))
            .collect();
        self.emulator
            .apply_yaml(&workloads.join("\n---\n"))
            .expect("create the workloads");
        path
    }

    /// `kubectl canary <args>` (blocking; call from a multi-threaded runtime).
    pub fn canary<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut all: Vec<OsString> = vec!["canary".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.kubectl.run(all)
    }

    /// Start `kubectl canary <args>` without waiting for it.
    pub fn canary_spawn<I, S>(&self, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut all: Vec<OsString> = vec!["canary".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.kubectl.spawn(all)
    }

    /// `kubectl get <resource> <name> -n <ns> -o json`.
    #[track_caller]
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> serde_json::Value {
        self.kubectl
            .run(["get", resource, name, "-n", namespace, "-o", "json"])
            .success()
            .json()
    }

    /// Whether `kubectl get` finds the object.
    pub fn exists(&self, resource: &str, namespace: &str, name: &str) -> bool {
        self.kubectl
            .run(["get", resource, name, "-n", namespace, "-o", "name"])
            .code
            == Some(0)
    }

    /// Assert that no state the server went through had a VirtualService routing to a subset
    /// its DestinationRule lacks (the 503 window make-before-break must avoid). The check is
    /// [`routes_to_missing_subsets`], written apart from the product's own.
    #[track_caller]
    pub fn assert_no_dangling_subsets(&self) {
        let result = self.emulator.audit().check(|state| {
            let dangling = routes_to_missing_subsets(
                &state.of("networking.istio.io", "virtualservices"),
                &state.of("networking.istio.io", "destinationrules"),
            );
            if dangling.is_empty() {
                Ok(())
            } else {
                Err(format!("routes to missing subsets: {dangling:?}"))
            }
        });
        if let Err(violation) = result {
            panic!("{violation}");
        }
    }

    /// Assert that the routing in force is what the release record says: every VirtualService,
    /// DestinationRule and PeerAuthentication the record describes is live with the same spec.
    #[track_caller]
    pub fn assert_record_matches_routing(&self, namespace: &str, release: &str) {
        let record = self
            .canary(["get", release, "-n", namespace, "-o", "json"])
            .success()
            .json();
        let record: kubectl_canary::release::record::ReleaseRecord =
            serde_json::from_value(record).expect("a release record");
        let want =
            kubectl_canary::release::desired::desired_objects(&record).expect("the record renders");
        let live = self
            .kubectl
            .run([
                "get",
                "virtualservices,destinationrules,peerauthentications",
                "-n",
                namespace,
                "-o",
                "json",
            ])
            .success()
            .json();
        let live: std::collections::BTreeMap<(String, String), serde_json::Value> = live["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| {
                (
                    (
                        o["kind"].as_str().unwrap_or("").to_string(),
                        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ),
                    o["spec"].clone(),
                )
            })
            .collect();
        for object in want.routing() {
            let key = (
                object["kind"].as_str().unwrap_or("").to_string(),
                object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
            assert_eq!(
                live.get(&key),
                Some(&object["spec"]),
                "{key:?}: the routing in force differs from the record (phase {:?}, stage {} ({}), generation {})",
                record.phase,
                record.stage.index,
                record.stage.name,
                record.generation
            );
        }
    }

    /// Weights of the catch-all (last) rule of VirtualService `name`, by subset.
    #[track_caller]
    pub fn default_weights(&self, namespace: &str, name: &str) -> Vec<(String, u64)> {
        let vs = self.get("virtualservice", namespace, name);
        let rules = vs["spec"]["http"].as_array().expect("http rules");
        let last = rules.last().expect("a rule");
        last["route"]
            .as_array()
            .expect("route")
            .iter()
            .map(|d| {
                (
                    d["destination"]["subset"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    d["weight"].as_u64().unwrap_or(100),
                )
            })
            .collect()
    }
}

/// `(namespace/virtualservice, host, subset)` for every route destination whose subset the
/// host's DestinationRule lacks. Objects are keyed by namespace and name; a destination host is
/// the short name of a Service in the VirtualService's namespace (or `name.namespace[.svc…]`),
/// and a DestinationRule's `host` is resolved the same way in its own namespace.
pub fn routes_to_missing_subsets(
    virtual_services: &[&serde_json::Value],
    destination_rules: &[&serde_json::Value],
) -> Vec<(String, String, String)> {
    use std::collections::{BTreeMap, BTreeSet};
    fn text<'a>(v: &'a serde_json::Value, path: &str) -> &'a str {
        v.pointer(path)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    }
    /// `(namespace, service)` a host names, seen from `namespace`.
    fn service_of(host: &str, namespace: &str) -> (String, String) {
        let mut parts = host.split('.');
        let name = parts.next().unwrap_or("").to_string();
        let ns = parts.next().filter(|p| !p.is_empty()).unwrap_or(namespace);
        (ns.to_string(), name)
    }
    let mut subsets: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for dr in destination_rules {
        let ns = text(dr, "/metadata/namespace");
        let entry = subsets
            .entry(service_of(text(dr, "/spec/host"), ns))
            .or_default();
        for subset in dr
            .pointer("/spec/subsets")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            entry.insert(text(subset, "/name").to_string());
        }
    }
    let mut missing = Vec::new();
    for vs in virtual_services {
        let ns = text(vs, "/metadata/namespace");
        let name = format!("{ns}/{}", text(vs, "/metadata/name"));
        for section in ["http", "tcp", "tls"] {
            for rule in vs
                .pointer(&format!("/spec/{section}"))
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
            {
                for dest in rule
                    .get("route")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let subset = text(dest, "/destination/subset");
                    if subset.is_empty() {
                        continue;
                    }
                    let host = text(dest, "/destination/host");
                    let known = subsets
                        .get(&service_of(host, ns))
                        .is_some_and(|s| s.contains(subset));
                    if !known {
                        missing.push((name.clone(), host.to_string(), subset.to_string()));
                    }
                }
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::routes_to_missing_subsets;

    #[test]
    fn a_route_is_checked_against_the_rule_of_its_own_namespace() {
        let vs = |ns: &str, subset: &str| {
            json!({"metadata": {"namespace": ns, "name": "web"},
                   "spec": {"http": [{"route": [{"destination": {"host": "web", "subset": subset}}]}]}})
        };
        let dr = |ns: &str, subset: &str| {
            json!({"metadata": {"namespace": ns, "name": "web"},
                   "spec": {"host": "web", "subsets": [{"name": subset}]}})
        };
        let (a, b) = (vs("a", "v2"), dr("b", "v2"));
        // Same names, other namespace: the subset is missing where the route is.
        assert_eq!(
            routes_to_missing_subsets(&[&a], &[&b]),
            [("a/web".to_string(), "web".to_string(), "v2".to_string())]
        );
        let c = dr("a", "v2");
        assert!(routes_to_missing_subsets(&[&a], &[&b, &c]).is_empty());
        let fqdn = json!({"metadata": {"namespace": "b", "name": "web"},
                          "spec": {"host": "web.a.svc.cluster.local", "subsets": [{"name": "v2"}]}});
        assert!(routes_to_missing_subsets(&[&a], &[&fqdn]).is_empty());
    }
}
