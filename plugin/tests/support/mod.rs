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

/// `kubectl-canary` with arguments, environment and stdin, ready to run: the one way the
/// plugin's tests start the binary. It starts with no colour, no kubeconfig from the
/// environment, a HOME without `.kube` and a fresh policy cache, so no real cluster or user
/// state is ever touched.
pub struct TestCommand {
    command: Command,
    args: Vec<std::ffi::OsString>,
    stdin: Option<Vec<u8>>,
    _home: tempfile::TempDir,
}

impl TestCommand {
    /// `kubectl-canary <args>`.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let home = tempfile::tempdir().expect("temporary HOME");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-canary"));
        command
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .env("HOME", home.path())
            .env("KUBECTL_CANARY_CACHE", home.path().join("cache"));
        TestCommand {
            command,
            args: Vec::new(),
            stdin: None,
            _home: home,
        }
        .args(args)
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable.
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Run in `dir` (default: the test's working directory).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Run in the repository root, where `examples/` is.
    pub fn in_repo(self) -> Self {
        self.current_dir(repo(""))
    }

    /// Feed `text` on stdin (default: none).
    pub fn stdin(mut self, text: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// Run to completion and capture everything.
    pub fn run(mut self) -> Run {
        use std::io::Write;
        self.command
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("run kubectl-canary");
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin");
            // The binary may stop reading early (a size limit): a broken pipe is its answer.
            let _ = pipe.write_all(&input);
        }
        let output = child.wait_with_output().expect("kubectl-canary output");
        Run {
            command: format!(
                "kubectl-canary {}",
                self.args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Run `kubectl-canary <args>` (see [`TestCommand`]).
pub fn canary<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    TestCommand::new(args).run()
}

/// A path in the repository (`examples/voting-app.yaml`).
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// An example spec of `examples/`.
pub fn example(name: &str) -> PathBuf {
    repo("examples").join(name)
}

impl Run {
    /// The exit code (a signal is a test failure).
    #[track_caller]
    pub fn exit_code(&self) -> i32 {
        self.code
            .unwrap_or_else(|| panic!("`{}` was killed by a signal", self.command))
    }

    /// Assert stderr is exactly `line` (and a newline).
    #[track_caller]
    pub fn stderr_is(self, line: &str) -> Self {
        assert_eq!(
            self.stderr,
            format!("{line}\n"),
            "`{}` stderr\n--- stdout\n{}",
            self.command,
            self.stdout
        );
        self
    }

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
