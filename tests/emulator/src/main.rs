//! `kube-emulator`: run the emulated Kubernetes API server standalone.
fn main() {}
