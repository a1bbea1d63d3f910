//! The local content-addressed store of fetched modules (issue 15, item 4).
//!
//! Every blob fetched from a registry or an `https://` URL (the wasm bytes, and an OCI manifest)
//! is kept as `<cache dir>/store/sha256/<hex>`, named by the sha256 of its content and verified
//! against that name on every read: a file changed on disk is a miss, never a module. A reference
//! whose digest is known (the spec's `@sha256:`, the digest a release recorded at `start`, the
//! `sha256:` pin) is then served without the network, so a registry that is down does not stop a
//! release whose module was fetched once on this machine.
//!
//! The store lives beside the compiled-module cache and shares its privacy rule: it is used only
//! when that directory is private (see `cache`), and its own directories are created `0700`.

use std::path::{Path, PathBuf};

use super::cache::create_private;
use super::source::sha256_hex;

/// The store under a cache directory; `None` disables it (no cache dir, or one refused).
#[derive(Debug, Clone, Default)]
pub(crate) struct ModuleStore {
    dir: Option<PathBuf>,
}

impl ModuleStore {
    /// The store in `<cache_dir>/store/sha256`, created `0700` when missing. A directory that
    /// cannot be created disables the store: fetching still works, offline reuse does not.
    pub(crate) fn new(cache_dir: Option<&Path>) -> ModuleStore {
        let dir = cache_dir.map(|d| d.join("store").join("sha256"));
        let dir = dir.filter(|d| create_private(d).is_ok());
        ModuleStore { dir }
    }

    /// The blob whose sha256 is `hex`, if stored and intact.
    pub(crate) fn get(&self, hex: &str) -> Option<Vec<u8>> {
        let path = self.path(hex)?;
        let bytes = std::fs::read(path).ok()?;
        (sha256_hex(&bytes) == hex).then_some(bytes)
    }

    /// Keeps `bytes` under their sha256. Best effort: a full or read-only disk must not fail a
    /// fetch that succeeded.
    pub(crate) fn put(&self, bytes: &[u8]) {
        let Some(path) = self.path(&sha256_hex(bytes)) else {
            return;
        };
        if path.exists() {
            return;
        }
        let Some(dir) = path.parent() else { return };
        // Write then rename, so a reader never sees half a blob under a complete name.
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write;
            if tmp.write_all(bytes).is_ok() {
                let _ = tmp.persist(&path);
            }
        }
    }

    fn path(&self, hex: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        // Only a digest names a file: nothing else reaches the file system.
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| dir.join(hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::new(Some(dir.path()));
        store.put(b"module");
        let hex = sha256_hex(b"module");
        assert_eq!(store.get(&hex).as_deref(), Some(&b"module"[..]));
        std::fs::write(dir.path().join("store/sha256").join(&hex), b"other").unwrap();
        assert_eq!(store.get(&hex), None);
        assert_eq!(store.get("../../etc/passwd"), None);
    }
}
