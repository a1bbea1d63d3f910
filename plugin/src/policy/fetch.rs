//! Fetching modules over the network: `https://` URLs here, registries in `oci`. What both
//! share: the TLS set-up (rustls with ring; the system's roots plus `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`), a private runtime for the async clients, and the reading of their errors.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

use super::error::Cause;
use super::limits::MAX_MODULE_BYTES;
use super::source::{redact_userinfo, sha256_hex, url_host};
use super::store::ModuleStore;

/// How long to wait for a connection: a registry that is down answers at once or not at all.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read may stall.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `future` to completion on a runtime of its own, on a thread of its own: loading a policy
/// is synchronous, and is called both from plain code and from inside the CLI's tokio runtime
/// (where blocking on a second runtime in the same thread would panic).
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread tokio runtime builds")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Installs ring as rustls' process-wide provider (once; kube-rs uses ring too), so the
/// provider-less reqwest of the OCI client builds neither aws-lc nor openssl.
pub(crate) fn install_crypto_provider() {
    // An error means a provider is installed already, which is all this needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// PEM certificates of `SSL_CERT_FILE` and of the files in `SSL_CERT_DIR`, trusted in addition
/// to the system's roots (as curl and git honour them), so a private registry's CA is one
/// variable away. Unreadable paths are skipped: the TLS error that follows names the variable.
pub(crate) fn extra_roots_pem() -> Vec<Vec<u8>> {
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

/// The TLS error inside `error`'s chain, as text, if the failure is one.
pub(crate) fn tls_failure(error: &(dyn StdError + 'static)) -> Option<String> {
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
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
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

/// An `https://` module, pinned: from the store when its sha256 is there, else downloaded
/// (bounded), checked against the pin, and stored.
pub(crate) fn https(url: &str, pin: &str, store: &ModuleStore) -> Result<Vec<u8>, Cause> {
    if let Some(bytes) = store.get(pin) {
        return Ok(bytes);
    }
    // Messages name the URL without its password: the client's own errors, which would
    // repeat it as given, lose theirs.
    let fail = |source: reqwest::Error| {
        let source = source.without_url();
        match tls_failure(&source) {
            Some(detail) => Cause::Tls {
                host: url_host(url).to_string(),
                detail,
                source: Box::new(source),
            },
            None => Cause::Download {
                url: redact_userinfo(url),
                detail: chain(&source),
                source,
            },
        }
    };
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .https_only(true);
    let roots: Vec<reqwest::Certificate> = extra_roots_pem()
        .iter()
        .filter_map(|pem| reqwest::Certificate::from_pem_bundle(pem).ok())
        .flatten()
        .collect();
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    let client = builder.build().map_err(fail)?;
    let bytes = block_on(async {
        let mut response = client.get(url).send().await?.error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_MODULE_BYTES {
                return Ok(Err(body.len() as u64));
            }
        }
        Ok::<_, reqwest::Error>(Ok(body))
    })
    .map_err(fail)?
    .map_err(|size| Cause::ModuleTooLarge {
        size,
        max: MAX_MODULE_BYTES,
    })?;
    if sha256_hex(&bytes) == pin {
        store.put(&bytes);
    }
    // The caller compares with the pin and reports a mismatch with both digests.
    Ok(bytes)
}
