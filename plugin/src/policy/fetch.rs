//! Fetching modules over the network: `https://` URLs here, registries in `oci`. What both
//! share: the TLS set-up of [`crate::net`], a private runtime for the async clients, and the
//! reading of their errors.

use std::time::Duration;

pub(crate) use crate::net::{chain, extra_roots_pem, install_crypto_provider, tls_failure};

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
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .https_only(true);
    let client = crate::net::with_trust(builder, None)
        .build()
        .map_err(fail)?;
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
