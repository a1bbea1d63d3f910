//! The one place the emulator's integration tests run kubectl from, find kubectl binaries and
//! the shared fixtures, and decide to skip: a test whose tool or fixture is absent skips with a
//! message locally and fails when `CI=true` (see [`require`]).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The result of one kubectl run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The runtime an emulator under test runs on (two worker threads).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `kubectl args...` with the given kubeconfig and optional stdin.
pub fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out: Output = child.wait_with_output().expect("kubectl output");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts success and returns stdout.
pub fn ok(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let r = kubectl(bin, kubeconfig, args, stdin);
    assert!(
        r.ok,
        "{} {:?} failed:\nstdout: {}\nstderr: {}",
        bin.display(),
        args,
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// Asserts failure and returns stderr.
pub fn fails(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let r = kubectl(bin, kubeconfig, args, stdin);
    assert!(
        !r.ok,
        "{} {:?} unexpectedly succeeded:\n{}",
        bin.display(),
        args,
        r.stdout
    );
    r.stderr
}

/// `/usr/bin/kubectl` (the version dispatcher) if present.
pub fn system_kubectl() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/kubectl");
    p.exists().then_some(p)
}

/// The versioned `kubectl.1.<minor>` of the Google Cloud SDK, if present. Unlike
/// `/usr/bin/kubectl` (which `.ci/run` installs), these come with the machine, not from a
/// package registry CI can use, so a missing one is skipped with a message even in CI.
pub fn versioned_kubectl(minor: u32) -> Option<PathBuf> {
    let p = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"));
    if !p.exists() {
        eprintln!("skipping {}: absent", p.display());
    }
    p.exists().then_some(p)
}

/// The minor versions of the versioned kubectl binaries the tests run.
pub const KUBECTL_MINORS: std::ops::RangeInclusive<u32> = 27..=33;

pub use kube_emulator::testing::require;

/// `/usr/bin/kubectl`, or a skip (see [`require`]).
#[track_caller]
pub fn require_kubectl() -> Option<PathBuf> {
    require(system_kubectl(), "/usr/bin/kubectl")
}

/// The shared fixtures (`../shared`), or a skip (see [`require`]).
#[track_caller]
pub fn require_shared() -> Option<PathBuf> {
    require(
        shared_dir(),
        "../shared/fixtures (the shared fixtures beside the workspace)",
    )
}

/// Istio's CRD bundle in the shared fixtures (or the file named by `ISTIO_CRDS`), if present.
pub fn istio_crds() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ISTIO_CRDS") {
        return Some(p.into());
    }
    shared_dir().map(|d| d.join("fixtures/istio/customresourcedefinitions.gen.yaml"))
}

/// Lines a child process writes to its stdout, read on a thread so a test can wait for one with
/// a deadline instead of sleeping.
pub struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    /// Read `child`'s stdout (it must be piped) line by line.
    pub fn of(child: &mut std::process::Child) -> Lines {
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// Wait up to `within` for a line `wanted` accepts; every line read is returned on failure.
    pub fn wait_for(
        &self,
        within: std::time::Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String, Vec<String>> {
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => return Err(seen),
            }
        }
    }
}

/// The shared fixtures directory (`shared/` in an ancestor of the crate), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("shared/fixtures/istio/customresourcedefinitions.gen.yaml");
        if candidate.exists() {
            return Some(d.join("shared"));
        }
        let sibling = d.join("../shared/fixtures/istio/customresourcedefinitions.gen.yaml");
        if sibling.exists() {
            return Some(d.join("../shared"));
        }
        dir = d.parent();
    }
    None
}
