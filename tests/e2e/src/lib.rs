//! Helpers for the end-to-end tests: run real `kubectl` (with `kubectl-canary` on its plugin
//! path) against an emulated API server.
