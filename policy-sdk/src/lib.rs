//! # policy-sdk
//!
//! Everything a kubectl-canary policy author needs: the typed policy input and decision
//! (ABI v1, see the project's `policy-abi` design brief), the [`export_policy!`] macro writing a
//! module's exports and metadata, [`config`] validation (a module checks its own `config`), a
//! [`log`] helper, [`stages`] helpers for common stage logic, [`analysis`] helpers judging the
//! canary's metrics against thresholds (and counting checks from the history),
//! [`time`] helpers (policies have no clock: `now` is in the input), a fast allocator for
//! one-decision instances ([`alloc::DecisionAllocator`]), and a native test harness, [`testing`].
//!
//! The same types are used by the host (the `kubectl-canary` plugin) to validate decisions and
//! render Istio objects, so the wire format has exactly one definition.
//!
//! This crate compiles with rustc 1.63 (Debian's wasm32 toolchain) and current stable.
#![deny(missing_docs)]

pub mod abi;
pub mod alloc;
pub mod analysis;
pub mod config;
pub mod log;
#[cfg(feature = "rules")]
pub mod rules;
pub mod stages;
pub mod testing;
pub mod time;
pub mod types;

pub use types::*;
