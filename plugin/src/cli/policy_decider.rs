//! The WebAssembly policy host as the release engine's [`Decider`].

use std::path::Path;

use anyhow::Context;
use policy_sdk::{Decision, Input};

use crate::policy::{default_cache_dir, Limits, LoadedPolicy, ModuleRef, PolicyHost};
use crate::release::record::{PolicyIdentity, ReleaseRecord};
use crate::release::Decider;
use crate::spec::PolicySpec;

/// A loaded policy with the limits its spec sets.
struct WasmDecider {
    policy: LoadedPolicy,
    limits: Limits,
    identity: PolicyIdentity,
}

impl Decider for WasmDecider {
    fn identity(&self) -> &PolicyIdentity {
        &self.identity
    }

    fn decide(&self, input: &Input) -> Result<Decision, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.policy.decide(input, &self.limits)?)
    }
}

/// Stands in for a policy that cannot be loaded, so that `abort` still works: every decision
/// fails with the load error, and the engine's abort goes ahead without the policy.
struct Unavailable {
    identity: PolicyIdentity,
    error: String,
}

impl Decider for Unavailable {
    fn identity(&self) -> &PolicyIdentity {
        &self.identity
    }

    fn decide(&self, _: &Input) -> Result<Decision, Box<dyn std::error::Error + Send + Sync>> {
        Err(self.error.clone().into())
    }
}

/// The policy host of every command, caching in `cache_dir` (else [`default_cache_dir`]).
///
/// A cache directory another user could write is refused with one warning on stderr (once per
/// process, however many hosts it builds), and policies are compiled without it; it is not an
/// error. That is what ssh does with a private key whose permissions are too open (it says so
/// and goes on without the key), and what a platform engineer wants of an optimisation: a
/// `step` or `abort` of a release in flight must not fail because of a cache's mode bits,
/// while nothing from that directory is ever run.
pub(super) fn host(cache_dir: Option<&Path>) -> anyhow::Result<PolicyHost> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let dir = cache_dir.map(Path::to_path_buf).or_else(default_cache_dir);
    let host = PolicyHost::new(dir)?;
    if let Some(refusal) = host.cache_refusal() {
        WARNED.call_once(|| eprintln!("warning: {refusal}; compiling policies without the cache"));
    }
    Ok(host)
}

fn wrap(spec: &PolicySpec, policy: LoadedPolicy) -> Box<dyn Decider> {
    let identity = PolicyIdentity {
        module: spec.module.clone(),
        sha256: policy.sha256().to_string(),
        name: policy.name().to_string(),
        oci_digest: policy.oci_digest().map(str::to_string),
    };
    Box::new(WasmDecider {
        limits: Limits::from_spec(spec.limits.as_ref()),
        policy,
        identity,
    })
}

/// The policy a spec names (its `sha256` pin checked before anything runs, and the spec's config
/// checked by the module's own rules).
pub fn for_spec(spec: &PolicySpec, cache_dir: Option<&Path>) -> anyhow::Result<Box<dyn Decider>> {
    let policy = host(cache_dir)?.load_spec(spec)?;
    Ok(wrap(spec, policy))
}

/// Checks a spec's `policy.config` with the module's own rules (its schema, then its
/// `canary_validate_config`), loading the module as `start` would: for the commands that read a
/// spec without deciding (`render`, `lint`).
pub fn check_config(spec: &PolicySpec, cache_dir: Option<&Path>) -> anyhow::Result<()> {
    host(cache_dir)?.load_spec(spec)?;
    Ok(())
}

/// The policy a running release was started with: the same module bytes, or an error.
pub fn for_record(
    record: &ReleaseRecord,
    cache_dir: Option<&Path>,
) -> anyhow::Result<Box<dyn Decider>> {
    let spec = &record.spec.spec.policy;
    let module = ModuleRef::parse(&spec.module);
    let policy = host(cache_dir)?
        .load_recorded(
            &module,
            &record.policy.sha256,
            record.policy.oci_digest.as_deref(),
        )
        .with_context(|| {
            format!(
                "release {} runs policy {} (sha256 {}), which cannot be loaded as it was; \
                 a release keeps the exact module it started with",
                record.spec.name(),
                module,
                record.policy.sha256
            )
        })?;
    Ok(wrap(spec, policy))
}

/// A decider for a release whose policy failed to load (see [`Unavailable`]).
pub fn unavailable(record: &ReleaseRecord, error: anyhow::Error) -> Box<dyn Decider> {
    Box::new(Unavailable {
        identity: record.policy.clone(),
        error: format!("{error:#}"),
    })
}
