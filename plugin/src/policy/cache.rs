//! The precompiled-module cache: compile a module once per (module bytes, engine), reuse the
//! artefact in later runs.
//!
//! An entry is `<dir>/modules/<sha256 of the module>-<engine hash>.cwasm`, holding the artefact
//! from [`Module::serialize`] followed by a trailer: its CRC-32 and a magic string. The artefact
//! comes first so that wasmtime can map the file itself ([`Module::deserialize_file`]) instead of
//! copying it into fresh memory, which is most of the cost of a cached load. Entries are
//! written to a temporary file in the same directory and renamed into place, so readers never
//! see a partial entry and two processes racing write the same bytes. An entry that fails its
//! checksum or does not deserialize is recompiled and rewritten; the cache never makes a load
//! fail (an unwritable cache dir only costs a compile).

use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

use super::engine::compatibility_hash;
use super::error::Cause;

/// The end of an entry. Entries of the previous format (`KCCWASM1` first, then a sha256) read
/// as corrupt and are rewritten once.
const MAGIC: &[u8; 8] = b"KCCWASM2";
/// CRC-32 (little-endian) + [`MAGIC`].
const TRAILER_LEN: usize = 4 + MAGIC.len();

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
                let module = verified(&bytes)
                    .then(|| deserialize(engine, path))
                    .flatten();
                match module {
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

/// Whether an entry's trailer is right and its CRC-32 matches the artefact.
///
/// The checksum is there to catch corruption (a disk error, a file edited by mistake), and a
/// CRC-32 does that at memory speed. A cryptographic digest would add nothing: whoever can write
/// the entry can also write a matching digest (see [`deserialize`] for why that is acceptable).
fn verified(entry: &[u8]) -> bool {
    let Some(split) = entry.len().checked_sub(TRAILER_LEN) else {
        return false;
    };
    let (artefact, trailer) = entry.split_at(split);
    let (sum, magic) = trailer.split_at(4);
    magic == MAGIC && crc32fast::hash(artefact).to_le_bytes() == sum
}

/// Maps a precompiled entry of our cache.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Option<Module> {
    // SAFETY: `Module::deserialize_file` runs native code from the file without validating it,
    // so the file must hold `Module::serialize` output of a compatible engine, and must not
    // change while mapped. It does and it does not:
    // - this cache writes entries only from `Module::serialize` (see `write_entry`), each
    //   entry's name carries the engine's compatibility hash, and wasmtime checks its own
    //   header and version;
    // - `verified()` just checked a CRC-32 over the whole artefact, so a truncated or corrupted
    //   entry never gets here (wasmtime reads the ELF image by its own offsets and ignores our
    //   12-byte trailer);
    // - entries are never written in place: a writer renames a complete temporary file over
    //   the name, which leaves an existing mapping on the old file untouched; a racing writer
    //   between the check and the mapping renames in the same bytes (compilation is
    //   deterministic for a given module and engine).
    // The cache lives in the user's own cache directory: whoever can write there can already
    // run code as this user.
    unsafe { Module::deserialize_file(engine, path) }.ok()
}

fn write_entry(path: &Path, module: &Module) -> std::io::Result<()> {
    let artefact = module
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&artefact)?;
    file.write_all(&crc32fast::hash(&artefact).to_le_bytes())?;
    file.write_all(MAGIC)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
