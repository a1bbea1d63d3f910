//! The wasm engine: configured once (fuel, epochs, stack), with an epoch ticker thread as the
//! wall-clock backstop.

use std::time::Duration;

use wasmtime::{Config, Engine, OptLevel};

use super::error::Cause;
use super::limits::{EPOCH_TICK_MS, WASM_STACK_BYTES};

/// A new engine for policies, and its epoch ticker (which stops when the engine is dropped).
pub(crate) fn new_engine() -> Result<Engine, Cause> {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(WASM_STACK_BYTES)
        .cranelift_opt_level(OptLevel::Speed);
    let engine = Engine::new(&config).map_err(|e| Cause::Engine(e.to_string()))?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .map_err(|e| Cause::Engine(format!("cannot start the epoch ticker: {e}")))?;
    Ok(engine)
}

/// A short hex digest of everything that makes precompiled code compatible with `engine`.
pub(crate) fn compatibility_hash(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: stable for a given build, which is all a cache key needs.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
