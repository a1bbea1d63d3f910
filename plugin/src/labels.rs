//! The labels kubectl-canary puts on what it manages, defined once.

/// Label on every object the plugin manages: who manages it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kubectl-canary";
/// Label naming the release an object belongs to.
pub const RELEASE_LABEL: &str = "canary.kubectl.dev/release";
/// Label carrying a release's phase on its state ConfigMap.
pub const PHASE_LABEL: &str = "canary.kubectl.dev/phase";
