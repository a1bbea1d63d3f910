//! What every HTTP client of the plugin shares (policy downloads, registries, Prometheus,
//! webhooks): rustls with ring, the system's roots plus `SSL_CERT_FILE` and `SSL_CERT_DIR`, and
//! the reading of client errors.

use std::error::Error as StdError;
use std::path::PathBuf;

/// Installs ring as rustls' process-wide provider (once; kube-rs uses ring too), so the
/// provider-less reqwest of the OCI client builds neither aws-lc nor openssl.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is all this needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// PEM certificates of `SSL_CERT_FILE` and of the files in `SSL_CERT_DIR`, trusted in addition
/// to the system's roots (as curl and git honour them), so a private registry's CA is one
/// variable away. Unreadable paths are skipped: the TLS error that follows names the variable.
pub fn extra_roots_pem() -> Vec<Vec<u8>> {
    let mut pems = Vec::new();
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        pems.extend(std::fs::read(PathBuf::from(file)));
    }
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR") {
        for dir in std::env::split_paths(&dir) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    if bytes.starts_with(b"-----BEGIN") {
                        pems.push(bytes);
                    }
                }
            }
        }
    }
    pems
}

/// `builder` with ring installed (see [`install_crypto_provider`]) and trusting, beside the
/// system's roots, the certificates of `SSL_CERT_FILE`/`SSL_CERT_DIR` ([`extra_roots_pem`]) and
/// of `extra_pem` (a spec's own CA file): the trust every reqwest client of the plugin has.
pub fn with_trust(
    builder: reqwest::ClientBuilder,
    extra_pem: Option<&[u8]>,
) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let pems = extra_roots_pem();
    let roots: Vec<reqwest::Certificate> = pems
        .iter()
        .map(Vec::as_slice)
        .chain(extra_pem)
        .filter_map(|pem| reqwest::Certificate::from_pem_bundle(pem).ok())
        .flatten()
        .collect();
    if roots.is_empty() {
        builder
    } else {
        builder.tls_certs_merge(roots)
    }
}

/// The TLS error inside `error`'s chain, as text, if the failure is one.
pub fn tls_failure(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // `io::Error::source` skips the error it wraps; look inside it.
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Some(tls.to_string());
            }
        }
        // hyper-util keeps the connector's error as a `Box<dyn Error>`, which a chain walk cannot
        // downcast through: rustls' certificate errors are then known by their text.
        let text = current.to_string();
        if text.starts_with("invalid peer certificate") || text.contains("HandshakeFailure") {
            return Some(text);
        }
        next = current.source();
    }
    None
}

/// `error` with its causes, `: `-joined, each once (clients repeat their inner error's text).
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}
