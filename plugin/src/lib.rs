//! # kubectl-canary
//!
//! A kubectl plugin that runs Istio canary releases whose stages are decided by sandboxed
//! WebAssembly policies. Data flows one way:
//!
//! ```text
//! spec (YAML) ─► policy host (wasm) ─► intent ─► render (Istio objects) ─► apply (SSA, ordered)
//!                                                        └─► sim (explain, demo traffic)
//! ```
//!
//! Each module has one job: [`spec`] parses and validates release specs, [`render`] turns routing
//! intent into Istio objects, [`sim`] reproduces Istio's route selection, [`ui`] prints, and
//! [`cli`] wires commands to them.

pub mod bounds;
pub mod cli;
pub mod cluster;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exit;
pub mod istio;
pub mod labels;
pub mod lint;
pub mod manifest;
pub mod net;
pub mod policy;
pub mod release;
pub mod render;
pub mod runner;
pub mod signals;
pub mod sim;
pub mod spec;
pub mod ui;
