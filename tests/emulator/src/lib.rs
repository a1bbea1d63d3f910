//! An emulated Kubernetes API server (see the project's `emulated-cluster` design brief).
//!
//! [`Emulator::start`] serves the Kubernetes REST protocol on `127.0.0.1` (random port) with
//! bearer-token auth: discovery, OpenAPI, built-in kinds, CustomResourceDefinitions, every verb
//! including watch and server-side apply, a minimal Deployment controller, fault injection and
//! an audit log with the cluster state after each request.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_emulator::Error> {
//! let emu = kube_emulator::Emulator::start(kube_emulator::Options::default()).await?;
//! emu.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n")?;
//! let path = emu.kubeconfig_path(); // hand it to kubectl --kubeconfig or kube-rs
//! # let _ = path;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod cluster;
pub mod controller;
pub mod decode;
pub mod discovery;
mod emulator;
pub mod error;
pub mod faults;
pub mod fields;
pub mod kubeconfig;
pub mod openapi_pb;
pub mod patch;
pub mod persist;
pub mod propagation;
pub mod protobuf;
pub mod rbac;
pub mod resources;
pub mod selector;
mod server;
pub mod table;
pub mod testing;
pub mod time;
pub mod tls;
pub mod validation;
pub mod wire;

pub use audit::{AuditLog, AuditRecord, Snapshot, Violation};
pub use cluster::{Cluster, ObjectRef};
pub use emulator::{Emulator, Error, Options};
pub use error::ApiError;
pub use faults::{Fault, FaultAction, Faults, Gate};
pub use propagation::Propagation;
pub use resources::ResourceInfo;

pub mod schema;
pub mod webhook;
