//! Policies from an OCI registry and from `https://`, against a real registry: Debian's
//! `docker-registry` with TLS (a CA made by the test, trusted through `SSL_CERT_FILE`) and
//! htpasswd basic auth (see `canary_e2e::registry`).

use std::path::{Path, PathBuf};

use canary_e2e::registry::{Registry, PASSWORD, USER};
use canary_e2e::{workspace_root, Kubectl, Run, TestCluster};

/// The built-in modules' files, pushed as if they were an organisation's policies.
fn module(file: &str) -> PathBuf {
    workspace_root().join("policies/dist").join(file)
}

fn sha256_of(path: &Path) -> String {
    kubectl_canary::policy::sha256_hex(&std::fs::read(path).expect("module"))
}

/// kubectl for a cluster (or none), trusting the registry's CA, with the registry's
/// credentials in a docker config and a cache (with its store) of its own.
struct Machine {
    kubectl: Kubectl,
    _docker: tempfile::TempDir,
    _cache: tempfile::TempDir,
}

impl Machine {
    fn new(base: Kubectl, registry: &Registry) -> Machine {
        let docker = registry.docker_config(USER, PASSWORD);
        let cache = tempfile::tempdir().expect("cache dir");
        let kubectl = base
            .env("SSL_CERT_FILE", registry.ca_file())
            .env("DOCKER_CONFIG", docker.path())
            .env("KUBECTL_CANARY_CACHE", cache.path());
        Machine {
            kubectl,
            _docker: docker,
            _cache: cache,
        }
    }

    fn canary(&self, args: &[&str]) -> Run {
        let mut all = vec!["canary"];
        all.extend(args);
        self.kubectl.run(all)
    }

    /// `policy push` with the credentials on the command line; returns the printed digest.
    fn push(&self, file: &str, reference: &str) -> String {
        let mut all = vec!["canary", "policy", "push"];
        let path = module(file);
        all.extend([path.to_str().unwrap(), reference]);
        all.extend(["--registry-username", USER, "--password-stdin"]);
        let run = self
            .kubectl
            .run_with_stdin(all, &format!("{PASSWORD}\n"))
            .success();
        let digest = run.stdout.trim().to_string();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{run:#?}"
        );
        digest
    }
}

/// The bookinfo example with its policy from `module` (and an optional pin), written in `dir`.
fn spec(c: &TestCluster, dir: &Path, module: &str, pin: Option<&str>) -> PathBuf {
    let (path, _) = c.example("bookinfo-reviews.yaml");
    let text = std::fs::read_to_string(path).expect("example");
    let mut policy = format!("    module: {module}\n");
    if let Some(pin) = pin {
        policy.push_str(&format!("    sha256: {pin}\n"));
    }
    let text = text.replace("    module: builtin:progressive\n", &policy);
    // Three stages: room for steps from several machines.
    let text = text.replace("steps: [50, 100]", "steps: [20, 50, 100]");
    let spec = dir.join("reviews.yaml");
    std::fs::write(&spec, text).expect("write spec");
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_plan_start_and_step_from_a_digest_even_with_the_registry_down() {
    let Some(mut registry) = Registry::start() else {
        return;
    };
    let Some(c) = TestCluster::start_light("oci_digest").await else {
        return;
    };
    let here = Machine::new(c.kubectl.clone(), &registry);
    let repo = format!("oci://{}/policies/progressive", registry.host());
    let digest = here.push("progressive.wasm", &format!("{repo}:1.0.0"));
    let wasm = sha256_of(&module("progressive.wasm"));
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{repo}@{digest}");
    let spec = spec(&c, dir.path(), &reference, Some(&wasm));
    let spec = spec.to_str().unwrap();
    here.canary(&["plan", "-f", spec]).success();
    here.canary(&["start", "-f", spec]).success();
    let state = here
        .canary(&["get", "reviews-v3", "-n", "default", "-o", "json"])
        .success()
        .json();
    assert_eq!(state["policy"]["ociDigest"], digest.as_str());
    assert_eq!(state["policy"]["sha256"], wasm.as_str());

    let weights = || -> Vec<u64> {
        let mut w: Vec<u64> = c
            .default_weights("default", "reviews")
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        w.sort();
        w
    };
    assert_eq!(weights(), [20, 80]);

    // Another machine fetches the recorded digest from the registry.
    let second = Machine::new(c.kubectl.clone(), &registry);
    second
        .canary(&["step", "reviews-v3", "-n", "default"])
        .success();
    assert_eq!(weights(), [50, 50]);

    // The registry is down: this machine's store has the module.
    registry.stop();
    here.canary(&["step", "reviews-v3", "-n", "default"])
        .success();
    assert_eq!(weights().last(), Some(&100));

    // A third machine (an empty store) cannot fetch it: one line naming the registry.
    let other = Machine::new(c.kubectl.clone(), &registry);
    let run = other
        .canary(&["step", "reviews-v3", "-n", "default"])
        .code(1);
    let prefix = format!(
        "error: release reviews-v3 runs policy {reference} (sha256 {wasm}), which cannot be \
         loaded as it was; a release keeps the exact module it started with: policy \
         {reference}: registry {}: ",
        registry.host()
    );
    assert!(run.stderr.starts_with(&prefix), "{run:#?}");
    assert!(
        run.stderr.ends_with(
            "Connection refused (os error 111) (and the module is not in the local store)\n"
        ),
        "{run:#?}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_that_moved_is_refused_with_both_digests() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(c) = TestCluster::start_light("oci_tag_moved").await else {
        return;
    };
    let here = Machine::new(c.kubectl.clone(), &registry);
    let reference = format!("oci://{}/policies/rollout:stable", registry.host());
    let first = here.push("progressive.wasm", &reference);
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&c, dir.path(), &reference, None);
    here.canary(&["start", "-f", spec.to_str().unwrap()])
        .success();
    let state = here
        .canary(&["get", "reviews-v3", "-n", "default", "-o", "json"])
        .success()
        .json();
    assert_eq!(state["policy"]["ociDigest"], first.as_str());

    // Someone pushes another module under the same tag; a step on another machine refuses it.
    let moved = here.push("business-hours.wasm", &reference);
    assert_ne!(moved, first);
    let other = Machine::new(c.kubectl.clone(), &registry);
    let run = other
        .canary(&["step", "reviews-v3", "-n", "default"])
        .code(1);
    let wasm = sha256_of(&module("progressive.wasm"));
    assert_eq!(
        run.stderr,
        format!(
            "error: release reviews-v3 runs policy {reference} (sha256 {wasm}), which cannot be \
             loaded as it was; a release keeps the exact module it started with: policy \
             {reference}: {reference} now resolves to {moved}, but this release started with \
             {first}; refused (pin the spec to @{first}, or start a new release to move to the \
             new module)\n"
        )
    );
}

#[test]
fn a_wrong_password_is_a_clear_401() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(kubectl) = Kubectl::new() else {
        canary_e2e::skip("oci_wrong_password", "no kubectl on PATH");
        return;
    };
    let here = Machine::new(kubectl, &registry);
    let reference = format!("oci://{}/policies/progressive:1", registry.host());
    here.push("progressive.wasm", &reference);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("p.wasm");
    let run = here.kubectl.run_with_stdin(
        [
            "canary",
            "policy",
            "pull",
            &reference,
            "-o",
            file.to_str().unwrap(),
            "--registry-username",
            USER,
            "--password-stdin",
        ],
        "not-the-password\n",
    );
    let host = registry.host();
    assert_eq!(
        run.clone().code(1).stderr,
        format!(
            "error: policy {reference}: registry {host} refused the credentials (401 \
             Unauthorized): check --registry-username/--password-stdin or the auths.{host} \
             entry of the docker config\n"
        )
    );
    // The right one pulls the module's bytes.
    here.canary(&["policy", "pull", &reference, "-o", file.to_str().unwrap()])
        .success();
    assert_eq!(sha256_of(&file), sha256_of(&module("progressive.wasm")));
}

#[test]
fn an_untrusted_registry_names_ssl_cert_file() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(kubectl) = Kubectl::new() else {
        canary_e2e::skip("oci_untrusted", "no kubectl on PATH");
        return;
    };
    let reference = format!("oci://{}/policies/progressive:1", registry.host());
    let run = kubectl
        .run(["canary", "policy", "pull", &reference, "-o", "/dev/null"])
        .code(1);
    let host = registry.host();
    assert_eq!(
        run.stderr,
        format!(
            "error: policy {reference}: TLS with {host} failed: invalid peer certificate: \
             UnknownIssuer; if it uses a private CA, set SSL_CERT_FILE to its certificate (PEM)\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_module_needs_its_pin() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(c) = TestCluster::start_light("https_module").await else {
        return;
    };
    let here = Machine::new(c.kubectl.clone(), &registry);
    let host = registry.host();
    here.push(
        "progressive.wasm",
        &format!("oci://{host}/policies/progressive:1"),
    );
    // The registry serves the layer as a plain blob: an https:// URL of the module's bytes.
    let wasm = sha256_of(&module("progressive.wasm"));
    let url =
        format!("https://{USER}:{PASSWORD}@{host}/v2/policies/progressive/blobs/sha256:{wasm}");
    // As every message prints it: without the password.
    let shown = format!("https://{USER}:***@{host}/v2/policies/progressive/blobs/sha256:{wasm}");
    let dir = tempfile::tempdir().unwrap();

    let unpinned = spec(&c, dir.path(), &url, None);
    let run = here
        .canary(&["plan", "-f", unpinned.to_str().unwrap()])
        .code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: policy {shown}: an https:// module must be pinned: set spec.policy.sha256 to \
             the sha256 of the module (`sha256sum module.wasm`); nothing was fetched\n"
        )
    );

    let wrong = "0".repeat(64);
    let mispinned = spec(&c, dir.path(), &url, Some(&wrong));
    let run = here
        .canary(&["plan", "-f", mispinned.to_str().unwrap()])
        .code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: policy {shown}: sha256 mismatch: the spec pins sha256:{wrong} but the module \
             is sha256:{wasm}; nothing was run\n"
        )
    );

    let pinned = spec(&c, dir.path(), &url, Some(&wasm));
    here.canary(&["start", "-f", pinned.to_str().unwrap()])
        .success();
}
