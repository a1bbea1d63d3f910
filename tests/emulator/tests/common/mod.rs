//! Helpers shared by the integration tests: running a kubectl binary against an emulator.
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

/// `/usr/bin/kubectl` if present.
pub fn system_kubectl() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/kubectl");
    p.exists().then_some(p)
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
