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
    /// Another writer changed the release state between our read and our write.
    #[error("release {release} changed under you (resourceVersion {expected} is stale); nothing of this command was applied — rerun it to act on the current state")]
    ReleaseChanged {
        /// The release name.
        release: String,
        /// The resourceVersion our write was conditional on.
        expected: String,
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

impl ClusterError {
    /// The HTTP status code, for API errors.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Wrap a kube-rs error for operation `op` on `target`.
    pub fn from_kube(op: &'static str, target: Target, err: kube::Error) -> Self {
        match err {
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
