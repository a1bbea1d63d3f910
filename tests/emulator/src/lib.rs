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

#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod cluster;
#[cfg(feature = "server")]
pub mod controller;
pub mod decode;
#[cfg(feature = "server")]
pub mod discovery;
#[cfg(feature = "server")]
mod emulator;
pub mod error;
#[cfg(feature = "server")]
pub mod faults;
#[cfg(feature = "server")]
pub mod fields;
#[cfg(feature = "server")]
pub mod kubeconfig;
#[cfg(feature = "server")]
pub mod openapi_pb;
#[cfg(feature = "server")]
pub mod patch;
#[cfg(feature = "server")]
pub mod persist;
#[cfg(feature = "server")]
pub mod propagation;
#[cfg(feature = "server")]
pub mod protobuf;
#[cfg(feature = "server")]
pub mod rbac;
#[cfg(feature = "server")]
pub mod resources;
#[cfg(feature = "server")]
pub mod selector;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod service_proxy;
#[cfg(feature = "server")]
pub mod table;
pub mod testing;
#[cfg(feature = "server")]
pub mod time;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod validation;
#[cfg(feature = "server")]
pub mod wire;

#[cfg(feature = "server")]
pub use audit::{AuditLog, AuditRecord, Snapshot, Violation};
#[cfg(feature = "server")]
pub use cluster::{Cluster, ObjectRef};
#[cfg(feature = "server")]
pub use emulator::{Emulator, Error, Options};
pub use error::ApiError;
#[cfg(feature = "server")]
pub use faults::{Fault, FaultAction, Faults, Gate};
#[cfg(feature = "server")]
pub use propagation::Propagation;
#[cfg(feature = "server")]
pub use resources::ResourceInfo;

#[cfg(feature = "server")]
pub mod schema;
pub mod webhook;
