//! The precompiled-module cache: compile a module once per (module bytes, engine), reuse the
//! artefact in later runs.
//!
//! An entry is `<dir>/modules/<sha256 of the module>-<engine hash>.cwasm`, holding the artefact
//! from [`Module::serialize`] followed by a trailer: the sha256 of the module it was compiled
//! from, a CRC-32 and a magic string. The artefact comes first so that wasmtime can map the file
//! itself ([`Module::deserialize_file`]) instead of copying it into fresh memory, which is most
//! of the cost of a cached load. Entries are written to a temporary file in the same directory
//! and renamed into place, so readers never see a partial entry and two processes racing write
//! the same bytes.
//!
//! An entry is bound to its content: the file name is only where to look, the recorded sha256
//! is what is checked, so an entry copied or renamed from another module (or left from other
//! bytes) is never deserialized. Such an entry, or one that fails its checksum or does not
//! deserialize, is recompiled and rewritten.
//!
//! The directory must be private (see [`check_private`]): it is created `0700`, and a cache
//! directory another user could write is not used. Otherwise the cache never makes a load fail
//! (an unwritable cache dir only costs a compile).

use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

use super::engine::compatibility_hash;
use super::error::Cause;

/// The end of an entry. Entries of earlier formats (`KCCWASM1`, and `KCCWASM2`, which recorded
/// no sha256) read as corrupt and are rewritten once.
const MAGIC: &[u8; 8] = b"KCCWASM3";
/// Length of the recorded sha256 (raw bytes).
const SHA256_LEN: usize = 32;
/// sha256 of the module + CRC-32 (little-endian) + [`MAGIC`].
const TRAILER_LEN: usize = SHA256_LEN + 4 + MAGIC.len();

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
    /// An entry was found but was corrupt, of an older format or compiled from other module
    /// bytes; it was not used, and the module was recompiled and the entry rewritten.
    Repaired,
}

/// Why a cache directory is not used: another user could put native code in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheRefusal {
    /// Group or others may write the directory.
    #[error(
        "policy cache {}: bad permissions: mode {mode:04o} lets group or others write it \
         (chmod 700 {} to use it)",
        .path.display(),
        .path.display()
    )]
    Writable {
        /// The directory (the cache dir or its `modules/`).
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The directory belongs to another user.
    #[error(
        "policy cache {}: bad owner: owned by uid {owner}, not by this user (uid {user})",
        .path.display()
    )]
    Owner {
        /// The directory (the cache dir or its `modules/`).
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        user: u32,
    },
}

/// The cache; `dir: None` disables it.
#[derive(Debug, Clone)]
pub(crate) struct ModuleCache {
    dir: Option<PathBuf>,
    refusal: Option<CacheRefusal>,
}

impl ModuleCache {
    /// The cache in `dir`, created `0700` if missing. A directory that is not private is not
    /// used (see [`ModuleCache::refusal`]); one that cannot be created or read disables the
    /// cache silently, as an unwritable one always has.
    pub(crate) fn new(dir: Option<PathBuf>) -> ModuleCache {
        let Some(dir) = dir else {
            return ModuleCache {
                dir: None,
                refusal: None,
            };
        };
        let modules = dir.join("modules");
        match open_private(&dir, &modules) {
            Ok(Ok(())) => ModuleCache {
                dir: Some(modules),
                refusal: None,
            },
            Ok(Err(refusal)) => ModuleCache {
                dir: None,
                refusal: Some(refusal),
            },
            Err(_) => ModuleCache {
                dir: None,
                refusal: None,
            },
        }
    }

    /// Why the configured directory is not used, if it is not private.
    pub(crate) fn refusal(&self) -> Option<&CacheRefusal> {
        self.refusal.as_ref()
    }

    fn entry(&self, engine: &Engine, sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{sha256}-{}.cwasm", compatibility_hash(engine))))
    }

    /// The compiled module for `binary` (whose sha256 is `sha256`, lower-case hex).
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
                let module = verified(&bytes, sha256)
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
            let _ = write_entry(path, &module, sha256);
        }
        Ok((module, status))
    }
}

/// Creates `dir` and `modules` (`0700`) if missing, then checks both with [`check_private`].
/// The outer error is an I/O failure, the inner one a refusal.
fn open_private(dir: &Path, modules: &Path) -> std::io::Result<Result<(), CacheRefusal>> {
    create_private(modules)?;
    for path in [dir, modules] {
        if let Err(refusal) = check_private(path)? {
            return Ok(Err(refusal));
        }
    }
    Ok(Ok(()))
}

/// `mkdir -p -m 700`: every directory it creates is private (the user's umask can only
/// narrow that); existing ones are left as they are and checked by [`check_private`].
pub(crate) fn create_private(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Whether a cache directory is private, as ssh checks `~/.ssh`: owned by this user (or root,
/// who can write anything anyway) and not writable by group or others. An existing `0755`
/// directory passes: others may read compiled policies, which are not secret, but not plant
/// them.
#[cfg(unix)]
fn check_private(path: &Path) -> std::io::Result<Result<(), CacheRefusal>> {
    use std::os::unix::fs::MetadataExt;

    let meta = std::fs::metadata(path)?;
    let user = rustix::process::geteuid().as_raw();
    Ok(judge(path, meta.uid(), meta.mode(), user))
}

/// [`check_private`]'s rule, given a directory's owner and mode and this process's uid.
#[cfg(unix)]
fn judge(path: &Path, owner: u32, mode: u32, user: u32) -> Result<(), CacheRefusal> {
    if owner != user && owner != 0 {
        return Err(CacheRefusal::Owner {
            path: path.to_path_buf(),
            owner,
            user,
        });
    }
    let mode = mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(CacheRefusal::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Elsewhere the user's cache directory is trusted as it is (there is no mode to check).
#[cfg(not(unix))]
fn check_private(_: &Path) -> std::io::Result<Result<(), CacheRefusal>> {
    Ok(Ok(()))
}

/// Whether an entry's trailer is right, its CRC-32 matches the artefact, and it was compiled
/// from the module whose sha256 is `sha256` (lower-case hex).
///
/// The checksum is there to catch corruption (a disk error, a file edited by mistake), and a
/// CRC-32 does that at memory speed. The recorded sha256 binds the entry to its module: an entry
/// of another module under this name (copied, renamed, or from a build that named entries
/// differently) is refused here, before it is deserialized. Neither is a signature: whoever can
/// write the entry can also write a matching trailer (see [`deserialize`] for why that is
/// acceptable).
fn verified(entry: &[u8], sha256: &str) -> bool {
    let Some(split) = entry.len().checked_sub(TRAILER_LEN) else {
        return false;
    };
    let (artefact, trailer) = entry.split_at(split);
    let (recorded, rest) = trailer.split_at(SHA256_LEN);
    let (sum, magic) = rest.split_at(4);
    magic == MAGIC
        && crc32fast::hash(artefact).to_le_bytes() == sum
        && hex::decode(sha256).is_ok_and(|expected| expected == recorded)
}

/// Maps a precompiled entry of our cache.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Option<Module> {
    // SAFETY: `Module::deserialize_file` runs native code from the file without validating it,
    // so the file must hold `Module::serialize` output of a compatible engine, compiled from
    // the module we mean to run, and must not change while mapped. What guarantees that:
    // - this cache writes entries only from `Module::serialize` (see `write_entry`), each
    //   entry's name carries the engine's compatibility hash, and wasmtime checks its own
    //   header and version;
    // - `verified()` just checked the entry's trailer: its CRC-32 over the whole artefact, so a
    //   truncated or corrupted entry never gets here (wasmtime reads the ELF image by its own
    //   offsets and ignores our trailer), and the sha256 it records against the sha256 of the
    //   module being loaded (the bytes the spec's `sha256:` pin was checked against), so a
    //   valid entry of another module copied or renamed under this name, or a stale one, is
    //   recompiled instead of run;
    // - entries are never written in place: a writer renames a complete temporary file over
    //   the name, which leaves an existing mapping on the old file untouched; a racing writer
    //   between the check and the mapping renames in the same bytes (compilation is
    //   deterministic for a given module and engine);
    // - the directory is private (`check_private`, when the host was built): owned by this
    //   user (or root) and writable by no one else, so other users cannot plant or swap
    //   entries.
    // What it does not protect against: anyone who can write as this user (or root). They can
    // write an entry with a matching trailer, or swap the file between `verified()` and the
    // mapping, and the trailer is a checksum, not a signature. That is accepted: whoever can
    // write this user's cache directory can already run code as this user (edit the shell
    // profile, replace the binary). Nor does it check the parent directories: a cache below a
    // directory another user can write could be swapped whole after the check.
    unsafe { Module::deserialize_file(engine, path) }.ok()
}

fn write_entry(path: &Path, module: &Module, sha256: &str) -> std::io::Result<()> {
    let recorded = hex::decode(sha256)
        .ok()
        .filter(|d| d.len() == SHA256_LEN)
        .ok_or_else(|| std::io::Error::other("not a sha256"))?;
    let artefact = module
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&artefact)?;
    file.write_all(&recorded)?;
    file.write_all(&crc32fast::hash(&artefact).to_le_bytes())?;
    file.write_all(MAGIC)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::policy::engine::new_engine;
    use crate::policy::sha256_hex;

    fn engine() -> Engine {
        new_engine().expect("engine").0
    }

    /// A module exporting one function named `name`: which module a load returns is visible in
    /// its exports, without running anything.
    fn module(name: &str) -> Vec<u8> {
        wat::parse_str(format!(r#"(module (func (export "{name}")))"#)).unwrap()
    }

    fn exports(module: &Module) -> Vec<String> {
        module.exports().map(|e| e.name().to_string()).collect()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn an_entry_records_the_sha256_of_its_module() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, binary) = (engine(), module("a"));
        let sha256 = sha256_hex(&binary);
        let cache = ModuleCache::new(Some(dir.path().to_path_buf()));
        cache.load_or_compile(&engine, &binary, &sha256).unwrap();
        let entry = std::fs::read(cache.entry(&engine, &sha256).unwrap()).unwrap();
        let trailer = &entry[entry.len() - TRAILER_LEN..];
        assert_eq!(hex::encode(&trailer[..SHA256_LEN]), sha256);
        assert_eq!(&trailer[SHA256_LEN + 4..], MAGIC);
        assert!(verified(&entry, &sha256));
        assert!(!verified(&entry, &sha256_hex(b"other bytes")));
        assert!(!verified(&entry, "not hex"));
    }

    #[test]
    fn another_modules_entry_under_this_name_is_recompiled_never_run() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ModuleCache::new(Some(dir.path().to_path_buf()));
        let (a, b) = (module("a"), module("b"));
        let (sha_a, sha_b) = (sha256_hex(&a), sha256_hex(&b));
        cache.load_or_compile(&engine, &a, &sha_a).unwrap();
        cache.load_or_compile(&engine, &b, &sha_b).unwrap();
        let (entry_a, entry_b) = (
            cache.entry(&engine, &sha_a).unwrap(),
            cache.entry(&engine, &sha_b).unwrap(),
        );
        // A valid entry (right format, right checksum, right engine) of module b, under a's name.
        std::fs::copy(&entry_b, &entry_a).unwrap();

        let (loaded, status) = cache.load_or_compile(&engine, &a, &sha_a).unwrap();
        assert_eq!(status, CacheStatus::Repaired);
        assert_eq!(exports(&loaded), ["a"]);
        // The entry was rewritten from a, and is a hit from now on.
        let rewritten = std::fs::read(&entry_a).unwrap();
        assert!(verified(&rewritten, &sha_a));
        let (loaded, status) = cache.load_or_compile(&engine, &a, &sha_a).unwrap();
        assert_eq!(status, CacheStatus::Hit);
        assert_eq!(exports(&loaded), ["a"]);
    }

    #[test]
    fn an_entry_of_the_previous_format_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, binary) = (engine(), module("a"));
        let sha256 = sha256_hex(&binary);
        let cache = ModuleCache::new(Some(dir.path().to_path_buf()));
        let artefact = Module::from_binary(&engine, &binary)
            .unwrap()
            .serialize()
            .unwrap();
        let mut old = artefact.clone();
        old.extend_from_slice(&crc32fast::hash(&artefact).to_le_bytes());
        old.extend_from_slice(b"KCCWASM2");
        std::fs::write(cache.entry(&engine, &sha256).unwrap(), old).unwrap();
        let (_, status) = cache.load_or_compile(&engine, &binary, &sha256).unwrap();
        assert_eq!(status, CacheStatus::Repaired);
    }

    #[test]
    fn the_cache_directory_is_created_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("cache");
        let cache = ModuleCache::new(Some(dir.clone()));
        assert_eq!(cache.refusal(), None);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("modules")), 0o700);
    }

    #[test]
    fn an_existing_directory_readable_by_others_is_used() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let cache = ModuleCache::new(Some(dir.path().to_path_buf()));
        assert_eq!(cache.refusal(), None);
        assert!(cache.dir.is_some());
    }

    #[test]
    fn a_directory_others_can_write_is_refused_and_not_used() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o777);
        let cache = ModuleCache::new(Some(dir.path().to_path_buf()));
        assert_eq!(
            cache.refusal().unwrap().to_string(),
            format!(
                "policy cache {0}: bad permissions: mode 0777 lets group or others write it \
                 (chmod 700 {0} to use it)",
                dir.path().display()
            )
        );
        let (engine, binary) = (engine(), module("a"));
        let (_, status) = cache
            .load_or_compile(&engine, &binary, &sha256_hex(&binary))
            .unwrap();
        assert_eq!(status, CacheStatus::Compiled);
        let written: Vec<_> = std::fs::read_dir(dir.path().join("modules"))
            .unwrap()
            .collect();
        assert!(written.is_empty(), "{written:?}");
    }

    #[test]
    fn a_group_writable_modules_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        std::fs::create_dir(&modules).unwrap();
        chmod(&modules, 0o770);
        let cache = ModuleCache::new(Some(dir.path().to_path_buf()));
        assert_eq!(
            cache.refusal(),
            Some(&CacheRefusal::Writable {
                path: modules,
                mode: 0o770
            })
        );
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let path = Path::new("/srv/cache");
        assert_eq!(
            judge(path, 1001, 0o40700, 1000).unwrap_err().to_string(),
            "policy cache /srv/cache: bad owner: owned by uid 1001, not by this user (uid 1000)"
        );
        // Root can write anything anyway; ssh accepts root-owned directories too.
        assert_eq!(judge(path, 0, 0o40755, 1000), Ok(()));
        assert_eq!(judge(path, 1000, 0o40700, 1000), Ok(()));
        assert_eq!(
            judge(path, 1000, 0o40720, 1000),
            Err(CacheRefusal::Writable {
                path: path.to_path_buf(),
                mode: 0o720
            })
        );
    }
}
