//! The precompiled-module cache: compile a module once per (module bytes, engine), reuse the
//! artefact in later runs.
//!
//! An entry is `<dir>/modules/<sha256 of the module>-<engine hash>.cwasm`, holding a magic
//! header, the sha256 of the artefact, and the artefact from [`Module::serialize`]. Entries are
//! written to a temporary file in the same directory and renamed into place, so readers never
//! see a partial entry and two processes racing write the same bytes. An entry that fails its
//! checksum or does not deserialize is recompiled and rewritten; the cache never makes a load
//! fail (an unwritable cache dir only costs a compile).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::engine::compatibility_hash;
use super::error::Cause;

const MAGIC: &[u8; 8] = b"KCCWASM1";

/// Environment variable naming the cache directory (the `--cache-dir` flag wins).
pub const CACHE_DIR_ENV: &str = "KUBECTL_CANARY_CACHE";

/// The cache directory: `$KUBECTL_CANARY_CACHE`, else `<user cache dir>/kubectl-canary`
/// (`$XDG_CACHE_HOME/kubectl-canary` on Linux). `None` when there is no home directory.
pub fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|d| d.join("kubectl-canary")),
    }
}

/// How a module was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from a cache entry.
    Hit,
    /// Compiled (and, when possible, written to the cache).
    Compiled,
    /// A corrupt entry was found, recompiled and rewritten.
    Repaired,
}

/// The cache; `dir: None` disables it.
#[derive(Debug, Clone)]
pub(crate) struct ModuleCache {
    dir: Option<PathBuf>,
}

impl ModuleCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> ModuleCache {
        ModuleCache {
            dir: dir.map(|d| d.join("modules")),
        }
    }

    fn entry(&self, engine: &Engine, sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{sha256}-{}.cwasm", compatibility_hash(engine))))
    }

    /// The compiled module for `binary` (whose sha256 is `sha256`).
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        binary: &[u8],
        sha256: &str,
    ) -> Result<(Module, CacheStatus), Cause> {
        let entry = self.entry(engine, sha256);
        let mut status = CacheStatus::Compiled;
        if let Some(path) = &entry {
            if let Ok(bytes) = std::fs::read(path) {
                match artefact(&bytes).and_then(|a| deserialize(engine, a)) {
                    Some(module) => return Ok((module, CacheStatus::Hit)),
                    None => status = CacheStatus::Repaired,
                }
            }
        }
        let module = Module::from_binary(engine, binary)
            .map_err(|e| Cause::InvalidModule(format!("{e:#}")))?;
        if let Some(path) = &entry {
            // Best effort: a read-only or full cache dir must not fail the load.
            let _ = write_entry(path, &module);
        }
        Ok((module, status))
    }
}

/// The artefact inside an entry, if its header and checksum are right.
fn artefact(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < 32 {
        return None;
    }
    let (sum, artefact) = rest.split_at(32);
    (Sha256::digest(artefact).as_slice() == sum).then_some(artefact)
}

/// Deserializes a precompiled artefact from our cache.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artefact: &[u8]) -> Option<Module> {
    // SAFETY: `Module::deserialize` runs native code from `artefact` without validating it, so
    // the bytes must come from `Module::serialize` of a compatible engine. They do: this cache
    // writes entries only from `Module::serialize` (see `write_entry`), each entry's name carries
    // the engine's compatibility hash (wasmtime also checks its own header and version), and
    // `artefact()` verified a sha256 over the whole artefact, so a truncated or corrupt entry
    // never gets here. The cache lives in the user's own cache directory: whoever can write there
    // can already run code as this user.
    unsafe { Module::deserialize(engine, artefact) }.ok()
}

fn write_entry(path: &Path, module: &Module) -> std::io::Result<()> {
    let artefact = module
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(MAGIC)?;
    file.write_all(&Sha256::digest(&artefact))?;
    file.write_all(&artefact)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
