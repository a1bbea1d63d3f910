//! Cluster access: connecting like kubectl does, the release state record, and server-side apply
//! of the objects the plugin owns.
//!
//! Nothing here knows about policies or rendering: callers hand in plain JSON objects (already
//! ordered make-before-break by the caller) and typed state records.

pub mod apply;
pub mod clone;
pub mod connect;
mod error;
pub mod inventory;
pub mod order;
pub mod propagation;
pub mod rbac;
pub mod resources;
pub mod state;

pub use connect::{Cluster, ConnectOptions};
pub use error::{ClusterError, Target};
