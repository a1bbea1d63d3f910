//! A kubeconfig that points `kubectl` and kube-rs at the emulator.

/// Renders a kubeconfig (context `kube-emulator`, namespace `default`) trusting `ca_pem`.
pub fn render(url: &str, token: &str, ca_pem: &str) -> String {
    let ca = crate::tls::base64(ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-emulator
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: kube-emulator
  user:
    token: {token}
contexts:
- name: kube-emulator
  context:
    cluster: kube-emulator
    user: kube-emulator
    namespace: default
current-context: kube-emulator
preferences: {{}}
"
    )
}

/// The same kubeconfig with the context's namespace set to `namespace`.
pub fn with_namespace(config: &str, namespace: &str) -> String {
    config.replace(
        "    namespace: default\n",
        &format!("    namespace: {namespace}\n"),
    )
}
