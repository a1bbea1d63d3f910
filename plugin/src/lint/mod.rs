//! Pre-flight checks (`kubectl canary lint`) and the mTLS verdicts of `kubectl canary mtls
//! status`, as pure functions over an [`Inventory`] of objects, so they run the same on a live
//! cluster, on files, or both.
//!
//! Codes reuse `istioctl analyze`'s where the meaning matches (IST0101 reference not found,
//! IST0102 namespace not injected, IST0106 schema, IST0109 conflicting VirtualService, IST0113
//! mTLS conflict, IST0118 port name); our own are `KC####`. IST0106 includes everything istiod's
//! webhook would refuse ([`local::istio_validation`]).

mod checks;
mod finding;
pub mod inventory;
pub mod local;
pub mod mtls;

pub use checks::{run, LintContext};
pub use finding::{Code, Finding, Severity};
pub use inventory::Inventory;
