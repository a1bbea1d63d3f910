//! Where a policy module comes from: `builtin:<name>`, a file, an `https://` URL (pinned) or an
//! `oci://` reference, with an optional sha256 pin verified before anything is compiled or run.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Cause, PolicyError};
use super::fetch;
use super::limits::MAX_MODULE_BYTES;
use super::oci::{self, Credentials};
use super::store::ModuleStore;

/// A built-in policy shipped inside the plugin.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Its name (`builtin:<name>`).
    pub name: &'static str,
    /// The module: `policies/dist/<name>.wasm` (built reproducibly by `policies/build.sh`), or
    /// WebAssembly text (`policies/wat/<name>.wat`) compiled at load.
    pub wasm: &'static [u8],
    /// The file `wasm` came from, as listed in `policies/dist/SHA256SUMS`.
    pub file: &'static str,
}

/// `sha256sum` output for the built-in modules, written by `policies/build.sh` (checked in CI)
/// and by a unit test against the embedded bytes: loading a built-in need not hash it again.
const BUILTIN_SHA256SUMS: &str = include_str!("../../../policies/dist/SHA256SUMS");

impl Builtin {
    /// sha256 of [`Builtin::wasm`], lower-case hex.
    pub fn sha256(&self) -> String {
        BUILTIN_SHA256SUMS
            .lines()
            .find_map(|line| {
                let (digest, file) = line.split_once("  ")?;
                (file == self.file).then(|| digest.to_string())
            })
            .unwrap_or_else(|| sha256_hex(self.wasm))
    }
}

/// The built-in policies.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "progressive",
        wasm: include_bytes!("../../../policies/dist/progressive.wasm"),
        file: "progressive.wasm",
    },
    Builtin {
        name: "business-hours",
        wasm: include_bytes!("../../../policies/dist/business-hours.wasm"),
        file: "business-hours.wasm",
    },
    // Written in WebAssembly text to show the ABI is language-neutral; compiled at load.
    Builtin {
        name: "all-at-once",
        wasm: include_bytes!("../../../policies/wat/all-at-once.wat"),
        file: "all-at-once.wat",
    },
];

/// A reference to a policy module, as written in a spec's `policy.module`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// `builtin:<name>`.
    Builtin(String),
    /// A `.wasm` file, or a `.wat` file compiled at load.
    File(PathBuf),
    /// `https://...` (or `http://`, refused): needs the spec's `sha256:` pin.
    Https(String),
    /// `oci://registry/repository:tag` or `oci://registry/repository@sha256:<digest>`.
    Oci(String),
}

impl ModuleRef {
    /// Parses a `policy.module` value. Anything without a known scheme is a file path.
    pub fn parse(text: &str) -> ModuleRef {
        if let Some(name) = text.strip_prefix("builtin:") {
            ModuleRef::Builtin(name.to_string())
        } else if text.starts_with("https://") || text.starts_with("http://") {
            ModuleRef::Https(text.to_string())
        } else if text.starts_with("oci://") {
            ModuleRef::Oci(text.to_string())
        } else {
            ModuleRef::File(PathBuf::from(text))
        }
    }

    /// A name for the policy before its metadata is known: the built-in's name or the file stem.
    pub fn fallback_name(&self) -> String {
        match self {
            ModuleRef::Builtin(name) => name.clone(),
            ModuleRef::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            ModuleRef::Https(url) => redact_userinfo(url),
            ModuleRef::Oci(url) => url.clone(),
        }
    }
}

/// A URL's parts around its authority: `(scheme, user information, host[:port], the rest)`,
/// or `None` when it has no `scheme://`.
fn url_parts(url: &str) -> Option<(&str, Option<&str>, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    Some(match authority.rsplit_once('@') {
        Some((userinfo, host)) => (scheme, Some(userinfo), host, path),
        None => (scheme, None, authority, path),
    })
}

/// `url` with the password of its user information (`https://user:password@host/...`)
/// replaced by `***`: a reference is printed in every message about its policy.
pub(crate) fn redact_userinfo(url: &str) -> String {
    match url_parts(url) {
        Some((scheme, Some(userinfo), host, path)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_string(),
    }
}

/// The `host[:port]` of `url`, without its user information (for messages).
pub(crate) fn url_host(url: &str) -> &str {
    url_parts(url).map_or(url, |(_, _, host, _)| host)
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleRef::Builtin(name) => write!(f, "builtin:{name}"),
            ModuleRef::File(path) => write!(f, "{}", path.display()),
            ModuleRef::Https(url) => f.write_str(&redact_userinfo(url)),
            ModuleRef::Oci(url) => f.write_str(url),
        }
    }
}

/// The bytes of a module, as found.
#[derive(Debug, Clone)]
pub(crate) struct ModuleBytes {
    /// The bytes of the source (text for `.wat`).
    pub source: Vec<u8>,
    /// True when `source` is WebAssembly text.
    pub is_text: bool,
    /// sha256 of `source`, lower-case hex.
    pub sha256: String,
    /// `sha256:<hex>` of the OCI manifest, for a module from a registry.
    pub oci_digest: Option<String>,
}

/// What fetching a remote module needs besides its reference.
#[derive(Debug, Clone, Default)]
pub(crate) struct Remote {
    /// The local content-addressed store.
    pub store: ModuleStore,
    /// Registry credentials.
    pub credentials: Credentials,
}

/// Reads a module's bytes (bounded) and verifies the pin, before anything is compiled or run.
///
/// `recorded` is the OCI manifest digest a release recorded at `start` (see [`oci::pull`]).
pub(crate) fn fetch(
    module: &ModuleRef,
    pin: Option<&str>,
    recorded: Option<&str>,
    remote: &Remote,
) -> Result<ModuleBytes, PolicyError> {
    let fail = |cause| PolicyError::new(module.to_string(), cause);
    let expected = pin.map(parse_pin).transpose().map_err(fail)?;
    let (source, is_text) = match module {
        ModuleRef::Builtin(name) => match BUILTINS.iter().find(|b| b.name == name) {
            Some(builtin) => {
                let is_text = !builtin.wasm.starts_with(b"\0asm");
                return checked(builtin.wasm.to_vec(), is_text, builtin.sha256(), expected)
                    .map_err(fail);
            }
            None => {
                let known = BUILTINS
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(fail(Cause::UnknownBuiltin {
                    name: name.clone(),
                    known,
                }));
            }
        },
        ModuleRef::File(path) => {
            let bytes = read_bounded(path).map_err(fail)?;
            let is_text = path.extension().is_some_and(|e| e == "wat") || looks_like_text(&bytes);
            (bytes, is_text)
        }
        ModuleRef::Https(url) => {
            if !url.starts_with("https://") {
                return Err(fail(Cause::PlainHttp));
            }
            let Some(pin) = expected.as_deref() else {
                return Err(fail(Cause::HttpsNeedsPin));
            };
            let bytes = fetch::https(url, pin, &remote.store).map_err(fail)?;
            let is_text = looks_like_text(&bytes);
            (bytes, is_text)
        }
        ModuleRef::Oci(reference) => {
            let pulled =
                oci::pull(reference, recorded, &remote.store, &remote.credentials).map_err(fail)?;
            let sha256 = sha256_hex(&pulled.bytes);
            let mut bytes = checked(pulled.bytes, false, sha256, expected).map_err(fail)?;
            bytes.oci_digest = Some(pulled.manifest_digest);
            return Ok(bytes);
        }
    };
    let sha256 = sha256_hex(&source);
    checked(source, is_text, sha256, expected).map_err(fail)
}

/// The module's bytes, if they match the pin.
fn checked(
    source: Vec<u8>,
    is_text: bool,
    sha256: String,
    expected: Option<String>,
) -> Result<ModuleBytes, Cause> {
    if let Some(expected) = expected {
        if expected != sha256 {
            return Err(Cause::DigestMismatch {
                expected: format!("sha256:{expected}"),
                actual: format!("sha256:{sha256}"),
            });
        }
    }
    Ok(ModuleBytes {
        source,
        is_text,
        sha256,
        oci_digest: None,
    })
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:<hex>` or bare hex → lower-case hex.
fn parse_pin(pin: &str) -> Result<String, Cause> {
    let hex = pin.strip_prefix("sha256:").unwrap_or(pin);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(Cause::InvalidPin { pin: pin.into() })
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, Cause> {
    let io = |source| Cause::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_MODULE_BYTES {
        return Err(Cause::ModuleTooLarge {
            size,
            max: MAX_MODULE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(Cause::ModuleTooLarge {
            size: bytes.len() as u64,
            max: MAX_MODULE_BYTES,
        });
    }
    Ok(bytes)
}

fn looks_like_text(bytes: &[u8]) -> bool {
    !bytes.starts_with(b"\0asm")
        && bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'(' || *b == b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_module_refs() {
        assert_eq!(
            ModuleRef::parse("builtin:progressive"),
            ModuleRef::Builtin("progressive".into())
        );
        assert_eq!(
            ModuleRef::parse("./org.wasm"),
            ModuleRef::File("./org.wasm".into())
        );
        assert!(matches!(
            ModuleRef::parse("oci://ghcr.io/x/p:1"),
            ModuleRef::Oci(_)
        ));
    }

    #[test]
    fn builtin_digests_are_those_of_the_embedded_bytes() {
        for builtin in BUILTINS {
            assert!(
                BUILTIN_SHA256SUMS.contains(builtin.file),
                "{} is not in policies/dist/SHA256SUMS",
                builtin.file
            );
            assert_eq!(
                builtin.sha256(),
                sha256_hex(builtin.wasm),
                "policies/dist/SHA256SUMS is stale for {}: run policies/build.sh",
                builtin.file
            );
        }
    }

    #[test]
    fn passwords_in_urls_are_not_printed() {
        let module = ModuleRef::parse("https://user:secret@host:5000/v2/p?x=1");
        assert_eq!(module.to_string(), "https://user:***@host:5000/v2/p?x=1");
        let plain = ModuleRef::parse("https://host/p.wasm");
        assert_eq!(plain.to_string(), "https://host/p.wasm");
        assert_eq!(
            url_host("https://user:secret@host:5000/v2/p?x=1"),
            "host:5000"
        );
        assert_eq!(url_host("https://host/p.wasm"), "host");
    }

    #[test]
    fn pins() {
        let sha = sha256_hex(b"x");
        assert_eq!(parse_pin(&format!("sha256:{sha}")).unwrap(), sha);
        assert!(parse_pin("sha256:abc").is_err());
    }
}
