//! Who drives a release: the operator's CLI (the default), or the in-cluster runner once
//! `kubectl canary run <release> --detach` handed it over.

use serde::{Deserialize, Serialize};

/// Label on a state ConfigMap whose release the runner drives (value [`RUNNER`]), so the runner
/// watches exactly those with a label selector.
pub const DRIVER_LABEL: &str = "canary.kubectl.dev/driver";
/// Value of [`DRIVER_LABEL`] for releases handed to the runner.
pub const RUNNER: &str = "runner";

/// The runner drives the release: recorded by `run --detach`, kept by every later write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    /// Always [`RUNNER`] (a field, not a unit, so that other drivers can be told apart later).
    pub kind: String,
    /// When the release was handed over (RFC 3339).
    pub since: String,
}

impl Driver {
    /// The runner, from `since`.
    pub fn runner(since: &str) -> Self {
        Driver {
            kind: RUNNER.to_string(),
            since: since.to_string(),
        }
    }

    /// True when this is the in-cluster runner.
    pub fn is_runner(&self) -> bool {
        self.kind == RUNNER
    }
}
