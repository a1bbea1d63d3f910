//! Everything that can go wrong with a policy, as values.
//!
//! A guest failure is never a panic of the plugin: it comes back as a [`PolicyError`] and the
//! caller holds (applies nothing). The message the user sees is
//! `policy <name>@<sha256:12>: <cause>`.

use std::path::PathBuf;

use thiserror::Error;

/// A policy could not be loaded, or its decision was refused.
#[derive(Debug, Error)]
#[error("policy {policy}: {cause}")]
pub struct PolicyError {
    /// `<name>@<sha256:12>` once the module's bytes are known, else the module reference.
    pub policy: String,
    /// What went wrong.
    pub cause: Cause,
}

impl PolicyError {
    /// An error of `policy` (see [`PolicyError::policy`]).
    pub fn new(policy: impl Into<String>, cause: Cause) -> PolicyError {
        PolicyError {
            policy: policy.into(),
            cause,
        }
    }
}

/// Why a policy failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Cause {
    /// The module file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An `https://` module without the spec's `sha256:` pin.
    #[error(
        "an https:// module must be pinned: set spec.policy.sha256 to the sha256 of the module \
         (`sha256sum module.wasm`); nothing was fetched"
    )]
    HttpsNeedsPin,
    /// Only `https://` URLs are fetched.
    #[error("plain http:// modules are refused; serve the module over https:// with a sha256 pin")]
    PlainHttp,
    /// An `oci://` reference that does not parse.
    #[error("invalid OCI reference {reference:?}: {source} (expected oci://registry/repository:tag or oci://registry/repository@sha256:<digest>)")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it does not parse.
        source: oci_client::ParseError,
    },
    /// The registry refused the credentials (HTTP 401).
    #[error(
        "registry {registry} refused the credentials (401 Unauthorized): check \
         --registry-username/--password-stdin or the auths.{registry} entry of the docker config"
    )]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The client's error.
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// A TLS failure (an unknown CA, a wrong name, ...) talking to a registry or server.
    #[error(
        "TLS with {host} failed: {detail}; if it uses a private CA, set SSL_CERT_FILE to its \
         certificate (PEM)"
    )]
    Tls {
        /// The registry or HTTPS host.
        host: String,
        /// The innermost TLS error, as text.
        detail: String,
        /// The client's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A registry request failed (unreachable, not found, refused, ...).
    #[error("registry {registry}: {detail}{note}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What failed, with the innermost cause.
        detail: String,
        /// `" (and the module is not in the local store)"` when a stored copy was looked for
        /// (or could not be, its digest unknown) and none could serve; else empty.
        note: &'static str,
        /// The client's error.
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// An `https://` download failed.
    #[error("cannot download {url}: {detail}")]
    Download {
        /// The URL.
        url: String,
        /// What failed, with the innermost cause.
        detail: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The artefact is not a wasm module as `policy push` (and Kubewarden) store them.
    #[error("{reference} is not a wasm policy artefact: {detail}")]
    NotWasmArtifact {
        /// The reference.
        reference: String,
        /// What is wrong.
        detail: String,
    },
    /// A registry served content that is not what its digest names.
    #[error("{what} from {registry} has digest {actual}, not the {expected} asked for; refused")]
    RegistryDigest {
        /// What was fetched (`the manifest`, `the module layer`).
        what: &'static str,
        /// The registry host.
        registry: String,
        /// The digest asked for.
        expected: String,
        /// The content's digest.
        actual: String,
    },
    /// The spec's tag resolves to another manifest than the release recorded at `start`.
    #[error(
        "{reference} now resolves to {current}, but this release started with {recorded}; \
         refused (pin the spec to @{recorded}, or start a new release to move to the new module)"
    )]
    TagMoved {
        /// The spec's reference.
        reference: String,
        /// The digest recorded at `start`.
        recorded: String,
        /// The digest the tag resolves to now.
        current: String,
    },
    /// The docker config exists but cannot be used.
    #[error("cannot use the docker config {path}: {detail}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the parser's words.
        detail: String,
        /// The parser's error, when one found the problem.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// `builtin:<name>` with an unknown name.
    #[error(
        "no built-in policy {name:?} (built-ins: {known}); `kubectl canary policy list` shows them"
    )]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// The `sha256:` pin is not 64 hex digits.
    #[error("invalid sha256 pin {pin:?}: expected sha256:<64 hex digits>")]
    InvalidPin {
        /// The pin as given.
        pin: String,
    },
    /// The module's sha256 differs from the pin.
    #[error(
        "sha256 mismatch: the spec pins {expected} but the module is {actual}; nothing was run"
    )]
    DigestMismatch {
        /// The pinned digest.
        expected: String,
        /// The module's digest.
        actual: String,
    },
    /// The module is larger than the host accepts.
    #[error("module is {size} bytes, more than the {max}-byte limit")]
    ModuleTooLarge {
        /// Size of the module.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The module would cost more to compile than the host allows; refused before compiling.
    #[error(
        "module exceeds the compile budget: {what} is {value}, more than the limit of {max} \
         (checked before compiling; a policy this large is refused)"
    )]
    CompileBudget {
        /// What was measured (`the number of functions`, `the code section (bytes)`, ...).
        what: String,
        /// The module's value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The release's `spec.policy.config` is refused by the module's schema or validator.
    #[error("{}", crate::policy::config::describe(.0))]
    InvalidConfig(Vec<crate::policy::config::ConfigProblem>),
    /// A `.wat` module that does not parse.
    #[error("invalid WebAssembly text: {0}")]
    Wat(String),
    /// Not a valid WebAssembly module.
    #[error("invalid WebAssembly module: {0}")]
    InvalidModule(String),
    /// An import the sandbox does not provide.
    #[error("imports `{module}.{name}`, but policies may import only `canary.log` (no WASI, clock, random or network)")]
    ForbiddenImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// `canary.log` with the wrong type.
    #[error("imports `canary.log` as {found}; expected a function (i32, i32, i32) -> ()")]
    BadImportType {
        /// The type found.
        found: String,
    },
    /// A required export is missing.
    #[error("does not export `{name}` (required by policy ABI v1)")]
    MissingExport {
        /// Export name.
        name: &'static str,
    },
    /// A required export has the wrong type.
    #[error("exports `{name}` as {found}; ABI v1 expects {expected}")]
    BadExportType {
        /// Export name.
        name: &'static str,
        /// Expected type.
        expected: &'static str,
        /// Type found.
        found: String,
    },
    /// The `canary.metadata` section is not the expected JSON.
    #[error("invalid canary.metadata section: {0}")]
    Metadata(String),
    /// The module speaks another ABI version.
    #[error("speaks policy ABI {found}; this kubectl-canary speaks ABI {expected}")]
    AbiVersion {
        /// What `canary_abi_version` returned.
        found: i64,
        /// What the host speaks.
        expected: u32,
    },
    /// The guest trapped.
    #[error("trapped: {0}")]
    Trap(String),
    /// The fuel budget ran out.
    #[error(
        "ran out of fuel after {fuel} units (an endless loop?); the limit is policy.limits.fuel"
    )]
    OutOfFuel {
        /// The budget.
        fuel: u64,
    },
    /// The wall-clock backstop fired.
    #[error("did not finish within {ms} ms")]
    Timeout {
        /// The deadline.
        ms: u64,
    },
    /// The guest wanted more memory than allowed.
    #[error("exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The limit.
        limit: u64,
    },
    /// The input JSON is too large.
    #[error("input is {size} bytes, more than the {max}-byte limit")]
    InputTooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The output is too large.
    #[error("output is {size} bytes, more than the {max}-byte limit")]
    OutputTooLarge {
        /// Output size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A guest pointer/length outside its memory.
    #[error("{what} {ptr:#x}..+{len} is outside its {memory}-byte memory")]
    OutOfBounds {
        /// Which buffer.
        what: &'static str,
        /// Pointer.
        ptr: u64,
        /// Length.
        len: u64,
        /// Memory size.
        memory: u64,
    },
    /// The output is not UTF-8.
    #[error("output is not UTF-8: {0}")]
    InvalidUtf8(String),
    /// The output is not a decision.
    #[error("output is not a valid decision: {0}")]
    InvalidOutput(String),
    /// The decision is well-formed but refused.
    #[error("decision refused: {0}")]
    Refused(#[from] crate::policy::validate::DecisionError),
    /// The wasm engine failed for a reason that is not the guest's.
    #[error("wasm engine: {0}")]
    Engine(String),
}
