//! Errors of cluster access, worded for the operator: what failed, on which object, what to check.

use std::fmt;

/// A failed cluster operation.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be loaded or used.
    #[error("cannot use kubeconfig{}: {message}", path.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
    Kubeconfig {
        /// The file, when one was named with `--kubeconfig`.
        path: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// A flag value could not be understood.
    #[error("invalid {flag} {value:?}: {message}")]
    InvalidFlag {
        /// The flag, e.g. `--request-timeout`.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it is invalid.
        message: String,
    },
    /// The API server answered with an error status.
    #[error("{op} {target}: {message}{}", hint_suffix(*code))]
    Api {
        /// What we tried (`apply`, `get`, `update`, ...).
        op: &'static str,
        /// The object, as `kind namespace/name`.
        target: Target,
        /// HTTP status code.
        code: u16,
        /// The server's reason (`Conflict`, `Forbidden`, `Invalid`, ...).
        reason: String,
        /// The server's message.
        message: String,
    },
    /// The API server could not be reached or the connection broke.
    #[error("{op} {target}: cannot reach the API server: {message} (check the server address of your kubeconfig context with `kubectl config view --minify`, and that the cluster is up)")]
    Unreachable {
        /// What we tried.
        op: &'static str,
        /// The object.
        target: Target,
        /// The transport error.
        message: String,
    },
    /// Something answered at the server address, but not as a Kubernetes API server does (an
    /// HTML page from a proxy or web server, plain text).
    #[error("{op} {target}: the server answered {answer}, not a Kubernetes API response (check the server address of your kubeconfig context with `kubectl config view --minify`: it may point at a proxy or a web page)")]
    NotKubernetes {
        /// What we tried.
        op: &'static str,
        /// The object.
        target: Target,
        /// What came back, in a few words (`HTTP 502 with an HTML page`).
        answer: String,
    },
    /// The kubeconfig's credential plugin (`users[].user.exec`) failed.
    #[error("{op} {target}: cannot get credentials: {message} (check users[].user.exec of your kubeconfig context)")]
    Credentials {
        /// What we tried.
        op: &'static str,
        /// The object.
        target: Target,
        /// The plugin, how it ended, and the first line it wrote to stderr.
        message: String,
    },
    /// Another writer changed the release state between our read and our write.
    #[error("release {release} changed under you (resourceVersion {expected} is stale); nothing of this command was applied — rerun it to act on the current state")]
    ReleaseChanged {
        /// The release name.
        release: String,
        /// The resourceVersion our write was conditional on.
        expected: String,
    },
    /// An object did not reach every proxy within `--propagation-timeout`; nothing that
    /// depends on it was applied.
    #[error("{target} (generation {generation}) did not reach every proxy within {}: {}; nothing that depends on it was applied — rerun the command to resume waiting, or raise --propagation-timeout", humantime::format_duration(*waited), propagation_text(last))]
    NotPropagated {
        /// The object.
        target: Target,
        /// The generation written.
        generation: i64,
        /// istiod's last report.
        last: super::propagation::Reconciliation,
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// An object a conditional write was about was deleted since it was read (a stale write,
    /// like a resourceVersion conflict).
    #[error("{op} {target}: it was deleted since it was read")]
    Gone {
        /// What we tried.
        op: &'static str,
        /// The object.
        target: Target,
    },
    /// Data in the cluster is not what the plugin wrote.
    #[error("{target}: {message}")]
    Corrupt {
        /// The object.
        target: Target,
        /// What is wrong with it.
        message: String,
    },
}

fn propagation_text(last: &super::propagation::Reconciliation) -> String {
    use super::propagation::Reconciliation as R;
    match last {
        R::Propagating {
            acked: Some(k),
            total: Some(n),
        } => format!("last reported {k}/{n} complete"),
        R::Propagating { .. } => "istiod still reports it propagating".to_string(),
        R::Behind { observed, .. } => {
            format!("istiod last reported on generation {observed}")
        }
        R::NoStatus => "istiod reported no status (is Istio's config status enabled? PILOT_ENABLE_STATUS=true and PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING=true)".to_string(),
        R::Propagated { .. } => "propagated".to_string(),
    }
}

impl ClusterError {
    /// The HTTP status code, for API errors.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for the API server's optimistic-concurrency refusal ("Operation cannot be
    /// fulfilled …": a write conditional on a resourceVersion or uid that is no longer the
    /// object's). Server-side apply's field-manager conflicts are 409 too, but not this.
    pub fn is_stale_write(&self) -> bool {
        match self {
            ClusterError::Api {
                code: 409, message, ..
            } => message.starts_with("Operation cannot be fulfilled"),
            ClusterError::Gone { .. } => true,
            _ => false,
        }
    }

    /// Wrap a kube-rs error for operation `op` on `target`.
    pub fn from_kube(op: &'static str, target: Target, err: kube::Error) -> Self {
        if let Some(message) = credential_failure(&err) {
            return ClusterError::Credentials {
                op,
                target,
                message,
            };
        }
        match err {
            // kube-rs wraps a body that is no `Status` as the message, under this reason.
            kube::Error::Api(status) if status.reason == "Failed to parse error data" => {
                ClusterError::NotKubernetes {
                    op,
                    target,
                    answer: format!(
                        "HTTP {} with {}",
                        status.code,
                        describe_body(&status.message)
                    ),
                }
            }
            kube::Error::SerdeError(e) => ClusterError::NotKubernetes {
                op,
                target,
                answer: format!("with a body that is not Kubernetes JSON ({e})"),
            },
            kube::Error::Api(status) => ClusterError::Api {
                op,
                target,
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => ClusterError::Unreachable {
                op,
                target,
                message: error_chain(&other),
            },
        }
    }
}

/// The failed credential plugin in `err`'s causes, in one line: kube-rs's own text for it is a
/// debug dump of the process output (`Output { status: ExitStatus(..), stdout: [..] }`).
pub(crate) fn credential_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        match e.downcast_ref::<kube::client::AuthError>() {
            Some(kube::client::AuthError::AuthExecRun { cmd, out }) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let said = stderr
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(|l| format!(": {}", one_line(l, 200)))
                    .unwrap_or_default();
                let ended = match out.status.code() {
                    Some(code) => format!("exited with status {code}"),
                    None => "was killed by a signal".to_string(),
                };
                let program = program_of(cmd);
                return Some(format!(
                    "the credential plugin {} {ended}{said}",
                    one_line(&program, 200)
                ));
            }
            Some(kube::client::AuthError::AuthExecStart(io)) => {
                return Some(format!("the credential plugin cannot be started: {io}"));
            }
            Some(other) => return Some(one_line(&other.to_string(), 300)),
            None => cause = e.source(),
        }
    }
    None
}

/// The program of a command as kube-rs reports it: `Command`'s debug text, environment first
/// (`KUBERNETES_EXEC_INFO="{\"apiVersion\"…}" "/bin/cred" "arg"`).
fn program_of(debug: &str) -> String {
    let mut rest = debug.trim_start();
    loop {
        // `NAME="value"`: an environment variable of the command, not the program.
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let assignment = name_len > 0 && rest[name_len..].starts_with("=\"");
        let quoted = if assignment {
            &rest[name_len + 1..]
        } else {
            rest
        };
        let Some(body) = quoted.strip_prefix('"') else {
            return debug.to_string();
        };
        let mut token = String::new();
        let mut chars = body.char_indices();
        let mut end = body.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        token.push(escaped);
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                other => token.push(other),
            }
        }
        if !assignment {
            return token;
        }
        rest = body[end..].trim_start();
    }
}

/// What a body that is no Kubernetes `Status` looks like, in a few words.
fn describe_body(body: &str) -> String {
    let trimmed = body.trim_start();
    let lower = trimmed.get(..15).unwrap_or(trimmed).to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        "an HTML page".to_string()
    } else if trimmed.is_empty() {
        "an empty body".to_string()
    } else {
        format!("the text {:?}", one_line(trimmed, 80))
    }
}

/// `text` on one line (whitespace runs, newlines included, become one space), cut at `max`
/// characters with `…`.
fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > max {
        let cut: String = joined.chars().take(max).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

/// An error and its causes as one line (`a: b: c`), skipping causes whose text the previous
/// message already contains: kube-rs's own text (`ServiceError: client error (Connect)`) hides
/// the useful part (`Connection refused`).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn hint_suffix(code: u16) -> &'static str {
    match code {
        401 => " (your credentials were refused: check the user in your kubeconfig)",
        403 => " (missing RBAC permission: `kubectl canary rbac` prints the Role the commands need; check yours with `kubectl auth can-i`)",
        _ => "",
    }
}

/// An object named in an error message: `Kind namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(String);

impl Target {
    /// A target for `kind` `namespace/name`; either of namespace and name may be empty.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Target(match (namespace.is_empty(), name.is_empty()) {
            (true, true) => kind.to_string(),
            (true, false) => format!("{kind} {name}"),
            (false, true) => format!("{kind} in namespace {namespace}"),
            (false, false) => format!("{kind} {namespace}/{name}"),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
