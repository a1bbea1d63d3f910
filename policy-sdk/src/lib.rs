//! # policy-sdk
//!
//! Everything a kubectl-canary policy author needs: the typed policy input and decision
//! (ABI v1, see the project's `policy-abi` design brief), and — in later modules — the
//! `export_policy!` macro, stage helpers and a native test harness.
//!
//! The same types are used by the host (the `kubectl-canary` plugin) to validate decisions and
//! render Istio objects, so the wire format has exactly one definition.
//!
//! This crate compiles with rustc 1.63 (Debian's wasm32 toolchain) and current stable.
#![deny(missing_docs)]

#[cfg(feature = "rules")]
pub mod rules;
pub mod types;

pub use types::*;
