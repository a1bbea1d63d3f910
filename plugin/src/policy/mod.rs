//! The policy host: loads sandboxed WebAssembly policies (ABI v1) and asks them for decisions.
//!
//! ```text
//! ModuleRef ─► source (bytes, sha256 pin; https/oci through fetch, oci and the store) ─► module (metadata, import/export checks)
//!           ─► budget (compile cost, before compiling) ─► cache (precompiled, keyed by sha256 + engine) ─► InstancePre (once per module)
//! Input ─► invoke (fresh bounded Store per decision) ─► JSON ─► validate ─► Decision
//! spec.policy.config ─► config (the module's schema, then its canary_validate_config) ─► ok
//! ```
//!
//! Every failure of the guest (trap, fuel, deadline, memory, bad pointers, bad JSON, wrong ABI,
//! refused decision) is a [`PolicyError`] whose message reads
//! `policy <name>@<sha256:12>: <cause>`; the caller holds and applies nothing.
//!
//! ```no_run
//! use kubectl_canary::policy::{Limits, ModuleRef, PolicyHost};
//! # fn input() -> policy_sdk::Input { unimplemented!() }
//! let host = PolicyHost::new(None)?;
//! let policy = host.load(&ModuleRef::parse("builtin:progressive"), None)?;
//! let decision = policy.decide(&input(), &Limits::default())?;
//! # Ok::<(), kubectl_canary::policy::PolicyError>(())
//! ```

pub mod budget;
mod cache;
mod config;
mod engine;
mod error;
mod fetch;
mod invoke;
mod limits;
mod module;
pub mod oci;
mod source;
mod store;
pub mod validate;

use std::path::PathBuf;

use policy_sdk::{Decision, Input, ABI_VERSION};
use serde_json::Value;
use wasmtime::{Engine, InstancePre, Linker};

pub use cache::{default_cache_dir, CacheRefusal, CacheStatus, CACHE_DIR_ENV};
pub use config::{ConfigProblem, CONFIG_PATH};
pub use error::{Cause, PolicyError};
pub use invoke::{LogLevel, LogLine};
pub use limits::*;
pub use module::{Item, Metadata, METADATA_SECTION, VALIDATE_CONFIG_EXPORT};
pub use oci::Credentials;
pub use source::{sha256_hex, Builtin, ModuleRef, BUILTINS};
pub use validate::{validate_decision, DecisionError};

use invoke::GuestState;

/// The engine, linker and module cache; build once, load many policies.
pub struct PolicyHost {
    engine: Engine,
    allocation: engine::Allocation,
    linker: Linker<GuestState>,
    cache: cache::ModuleCache,
    remote: source::Remote,
}

impl std::fmt::Debug for PolicyHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHost")
            .field("allocation", &self.allocation)
            .field("cache", &self.cache)
            .finish()
    }
}

impl PolicyHost {
    /// A host caching precompiled modules under `cache_dir` (`None`: no cache), which is created
    /// `0700` if missing and not used if another user could write it ([`PolicyHost::cache_refusal`]).
    /// See [`default_cache_dir`] for the usual choice.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<PolicyHost, PolicyError> {
        let fail = |cause| PolicyError::new("host", cause);
        let (engine, allocation) = engine::new_engine().map_err(fail)?;
        let linker = invoke::linker(&engine).map_err(fail)?;
        let cache = cache::ModuleCache::new(cache_dir.clone());
        // The store shares the cache's directory and its privacy rule: not used when refused.
        let store = match cache.refusal() {
            None => store::ModuleStore::new(cache_dir.as_deref()),
            Some(_) => store::ModuleStore::default(),
        };
        Ok(PolicyHost {
            engine,
            allocation,
            linker,
            cache,
            remote: source::Remote {
                store,
                credentials: Credentials::default(),
            },
        })
    }

    /// Why the cache directory given to [`PolicyHost::new`] is not used, when it is not private
    /// (another user could write it). The host then compiles every module; the caller decides
    /// how to tell the user.
    pub fn cache_refusal(&self) -> Option<&CacheRefusal> {
        self.cache.refusal()
    }

    /// Loads a module, verifying the optional `sha256:` pin before anything is compiled or run.
    pub fn load(&self, module: &ModuleRef, pin: Option<&str>) -> Result<LoadedPolicy, PolicyError> {
        let bytes = source::fetch(module, pin, None, &self.remote)?;
        self.load_fetched(module.clone(), bytes)
    }

    /// Loads the module a release recorded at `start`: the bytes of `sha256`, and for a module
    /// from a registry, the manifest `oci_digest` (a tag that moved since is refused with both
    /// digests; a registry that is down is not needed when the local store has it).
    pub fn load_recorded(
        &self,
        module: &ModuleRef,
        sha256: &str,
        oci_digest: Option<&str>,
    ) -> Result<LoadedPolicy, PolicyError> {
        let bytes = source::fetch(module, Some(sha256), oci_digest, &self.remote)?;
        self.load_fetched(module.clone(), bytes)
    }

    /// The module of an `oci://` reference, from the registry or the local store (for
    /// `policy pull`).
    pub fn pull(&self, reference: &str) -> Result<oci::Pulled, PolicyError> {
        oci::pull(
            reference,
            None,
            &self.remote.store,
            &self.remote.credentials,
        )
        .map_err(|cause| PolicyError::new(reference, cause))
    }

    /// Registry credentials for `oci://` modules, instead of the docker config's.
    pub fn with_credentials(mut self, credentials: Credentials) -> PolicyHost {
        self.remote.credentials = credentials;
        self
    }

    /// Loads the module of a spec's `policy` section (module and pin) and checks the spec's
    /// `config` with the module's own rules ([`LoadedPolicy::validate_config`]), under the
    /// spec's limits: a policy that would refuse its config is refused before it runs.
    pub fn load_spec(&self, spec: &crate::spec::PolicySpec) -> Result<LoadedPolicy, PolicyError> {
        let policy = self.load(&ModuleRef::parse(&spec.module), spec.sha256.as_deref())?;
        policy.validate_config(&spec.config, &Limits::from_spec(spec.limits.as_ref()))?;
        Ok(policy)
    }

    /// Loads a module from bytes (binary or text) named `label` in messages.
    pub fn load_bytes(&self, label: &str, bytes: &[u8]) -> Result<LoadedPolicy, PolicyError> {
        let module = ModuleRef::File(PathBuf::from(label));
        if bytes.len() as u64 > MAX_MODULE_BYTES {
            return Err(PolicyError::new(
                label,
                Cause::ModuleTooLarge {
                    size: bytes.len() as u64,
                    max: MAX_MODULE_BYTES,
                },
            ));
        }
        let fetched = source::ModuleBytes {
            is_text: !bytes.starts_with(b"\0asm"),
            sha256: sha256_hex(bytes),
            source: bytes.to_vec(),
            oci_digest: None,
        };
        self.load_fetched(module, fetched)
    }

    fn load_fetched(
        &self,
        module: ModuleRef,
        bytes: source::ModuleBytes,
    ) -> Result<LoadedPolicy, PolicyError> {
        let short = |name: &str| format!("{name}@sha256:{}", &bytes.sha256[..12]);
        let fallback = short(&module.fallback_name());
        let fail = |id: &str| {
            let id = id.to_string();
            move |cause| PolicyError::new(id, cause)
        };
        let binary = if bytes.is_text {
            wat::parse_bytes(&bytes.source)
                .map_err(|e| Cause::Wat(e.to_string()))
                .map_err(fail(&fallback))?
                .into_owned()
        } else {
            bytes.source.clone()
        };
        let metadata = module::read_metadata(&binary).map_err(fail(&fallback))?;
        let name = metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_else(|| module.fallback_name());
        let id = short(&name);
        if let Some(abi) = metadata.as_ref().and_then(|m| m.abi) {
            if abi != ABI_VERSION {
                return Err(fail(&id)(Cause::AbiVersion {
                    found: abi.into(),
                    expected: ABI_VERSION,
                }));
            }
        }
        budget::check(&binary).map_err(fail(&id))?;
        // The cache is keyed by the binary; for a binary module that is the file already hashed.
        let binary_sha256 = if bytes.is_text {
            sha256_hex(&binary)
        } else {
            bytes.sha256.clone()
        };
        let (compiled, cache_status) = self
            .cache
            .load_or_compile(&self.engine, &binary, &binary_sha256)
            .map_err(fail(&id))?;
        module::check_imports(&compiled).map_err(fail(&id))?;
        module::check_exports(&compiled).map_err(fail(&id))?;
        let pre = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| fail(&id)(Cause::Engine(format!("{e:#}"))))?;
        let abi = invoke::abi_version(&pre, &Limits::default()).map_err(fail(&id))?;
        if abi != ABI_VERSION as i32 {
            return Err(fail(&id)(Cause::AbiVersion {
                found: abi.into(),
                expected: ABI_VERSION,
            }));
        }
        Ok(LoadedPolicy {
            id,
            name,
            module,
            sha256: bytes.sha256,
            oci_digest: bytes.oci_digest,
            size: bytes.source.len(),
            metadata,
            imports: module::imports(&compiled),
            exports: module::exports(&compiled),
            cache_status,
            pre,
        })
    }
}

/// A loaded, checked policy, ready to decide (cheap per decision: a fresh store each time).
pub struct LoadedPolicy {
    id: String,
    name: String,
    module: ModuleRef,
    sha256: String,
    oci_digest: Option<String>,
    size: usize,
    metadata: Option<Metadata>,
    imports: Vec<Item>,
    exports: Vec<Item>,
    cache_status: CacheStatus,
    pre: InstancePre<GuestState>,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("id", &self.id)
            .finish()
    }
}

/// A decision with what the policy logged while making it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The validated decision.
    pub decision: Decision,
    /// The policy's log lines.
    pub logs: Vec<LogLine>,
    /// Fuel consumed.
    pub fuel_used: u64,
}

impl LoadedPolicy {
    /// `<name>@sha256:<12 hex>`, as in error messages.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The policy's name (metadata, else the built-in name or file stem).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Where it was loaded from.
    pub fn module_ref(&self) -> &ModuleRef {
        &self.module
    }
    /// sha256 of the module as given (lower-case hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// `sha256:<hex>` of the OCI manifest the module came from, for a module from a registry.
    pub fn oci_digest(&self) -> Option<&str> {
        self.oci_digest.as_deref()
    }
    /// Size of the module as given, bytes.
    pub fn size(&self) -> usize {
        self.size
    }
    /// The `canary.metadata` section, if present.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }
    /// Imports.
    pub fn imports(&self) -> &[Item] {
        &self.imports
    }
    /// Exports.
    pub fn exports(&self) -> &[Item] {
        &self.exports
    }
    /// Whether the compiled module came from the cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.cache_status
    }

    /// Whether the module exports `canary_validate_config`.
    pub fn validates_config(&self) -> bool {
        self.exports
            .iter()
            .any(|e| e.name == VALIDATE_CONFIG_EXPORT)
    }

    /// Checks a release's `config` with the module's own rules: first the JSON Schema of its
    /// metadata (`config_schema`), then, if the schema accepts it, its `canary_validate_config`
    /// export (when it has one), sandboxed with `limits` as a decision is. Every problem is a
    /// line of [`Cause::InvalidConfig`], with its path below `spec.policy.config`.
    pub fn validate_config(&self, config: &Value, limits: &Limits) -> Result<(), PolicyError> {
        let fail = |cause| PolicyError::new(self.id.clone(), cause);
        let schema = self
            .metadata
            .as_ref()
            .map(|m| &m.config_schema)
            .unwrap_or(&Value::Null);
        let problems = config::schema_problems(schema, config).map_err(fail)?;
        if !problems.is_empty() {
            return Err(fail(Cause::InvalidConfig(problems)));
        }
        if !self.validates_config() {
            return Ok(());
        }
        let json = serde_json::to_vec(config)
            .map_err(|e| fail(Cause::Engine(format!("cannot serialise the config: {e}"))))?;
        if json.len() > MAX_INPUT_BYTES {
            return Err(fail(Cause::InputTooLarge {
                size: json.len(),
                max: MAX_INPUT_BYTES,
            }));
        }
        let output = invoke::call_json(&self.pre, VALIDATE_CONFIG_EXPORT, &json, &limits.clamped())
            .map_err(fail)?;
        let problems = config::export_problems(&output.bytes).map_err(fail)?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(fail(Cause::InvalidConfig(problems)))
        }
    }

    /// The validated decision for `input`.
    pub fn decide(&self, input: &Input, limits: &Limits) -> Result<Decision, PolicyError> {
        self.evaluate(input, limits).map(|e| e.decision)
    }

    /// The validated decision for `input`, with the policy's log lines.
    pub fn evaluate(&self, input: &Input, limits: &Limits) -> Result<Evaluation, PolicyError> {
        let fail = |cause| PolicyError::new(self.id.clone(), cause);
        let json = serde_json::to_vec(input)
            .map_err(|e| fail(Cause::Engine(format!("cannot serialise the input: {e}"))))?;
        let output = self.call(&json, limits)?;
        let decision = parse_decision(&output.bytes).map_err(fail)?;
        validate_decision(&decision, &input.release).map_err(|e| fail(e.into()))?;
        Ok(Evaluation {
            decision,
            logs: output.logs,
            fuel_used: output.fuel_used,
        })
    }

    /// Runs the guest on raw input bytes and returns its raw output bytes (unvalidated). For
    /// tests and tooling; decisions go through [`LoadedPolicy::evaluate`].
    pub fn decide_raw(&self, input: &[u8], limits: &Limits) -> Result<Vec<u8>, PolicyError> {
        self.call(input, limits).map(|o| o.bytes)
    }

    fn call(&self, input: &[u8], limits: &Limits) -> Result<invoke::CallOutput, PolicyError> {
        let fail = |cause| PolicyError::new(self.id.clone(), cause);
        if input.len() > MAX_INPUT_BYTES {
            return Err(fail(Cause::InputTooLarge {
                size: input.len(),
                max: MAX_INPUT_BYTES,
            }));
        }
        invoke::decide(&self.pre, input, &limits.clamped()).map_err(fail)
    }
}

/// Output bytes → decision (UTF-8, JSON, the decision schema with a field path on mismatch).
///
/// A well-formed decision takes the direct parse; only a bad one pays for the second, slower
/// parse that finds the field path for the message.
fn parse_decision(bytes: &[u8]) -> Result<Decision, Cause> {
    if let Ok(decision) = serde_json::from_slice::<Decision>(bytes) {
        return Ok(decision);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Cause::InvalidUtf8(e.to_string()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let decision: Decision = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            Cause::InvalidOutput(e.into_inner().to_string())
        } else {
            Cause::InvalidOutput(format!("{path}: {}", e.into_inner()))
        }
    })?;
    de.end().map_err(|e| Cause::InvalidOutput(e.to_string()))?;
    Ok(decision)
}
