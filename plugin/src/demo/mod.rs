//! `kubectl canary demo`: a whole release on an embedded emulated cluster.

pub mod metrics;
pub mod run;
pub mod traffic;
pub mod workloads;
