//! An emulated Kubernetes API server (see the project's `emulated-cluster` design brief).

pub mod schema;
pub mod webhook;
