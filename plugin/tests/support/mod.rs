//! A small runner for the `kubectl-canary` binary, in the style of ripgrep's `TestCommand`: run
//! it with a clean environment, capture everything, and print everything when an assertion fails.

#![allow(dead_code)] // each test file uses a different part

pub mod fake_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// One run of the binary.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `kubectl-canary <args>` with no colour, no kubeconfig from the environment, and a HOME
/// without `.kube`, so no real cluster is ever contacted.
pub fn canary<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let home = tempfile::tempdir().expect("temporary HOME");
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-canary"))
        .args(&args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl-canary");
    Run {
        command: format!(
            "kubectl-canary {}",
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    /// Assert the exit code.
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
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` stdout is not JSON ({e}):\n{}",
                self.command, self.stdout
            )
        })
    }

    /// Assert stderr is exactly one `error: ` line and return it.
    #[track_caller]
    pub fn one_line_error(&self) -> &str {
        let line = self.stderr.strip_suffix('\n').unwrap_or(&self.stderr);
        assert!(
            line.starts_with("error: ") && !line.contains('\n'),
            "`{}`: expected one `error: ` line on stderr, got:\n{}",
            self.command,
            self.stderr
        );
        line
    }
}

/// Write `objects` as a YAML stream into `dir/name` and return the path.
pub fn write_objects(dir: &Path, name: &str, objects: &[Value]) -> PathBuf {
    let text = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n");
    write(dir, name, &text)
}

/// Write `text` into `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

/// A kubeconfig whose server is `127.0.0.1:1`, where nothing listens.
pub fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    write(
        dir,
        "unreachable.kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: nowhere\n  cluster: {server: \"https://127.0.0.1:1\"}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: nowhere\n  context: {cluster: nowhere, user: u, namespace: shop}\n\
         current-context: nowhere\n",
    )
}
