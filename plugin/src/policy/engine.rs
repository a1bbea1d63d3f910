//! The wasm engine: configured once (fuel, epochs, stack, instance allocation), with an epoch
//! ticker thread as the wall-clock backstop.
//!
//! Instances come from wasmtime's pooling allocator: a decision reuses a warm slot (its linear
//! memory already mapped, the module's data image in place) instead of mapping and unmapping a
//! fresh memory each time, which is most of the cost of a fresh instance. Where the pool's
//! address space cannot be reserved (a tight `ulimit -v`, say), the engine falls back to
//! on-demand allocation: slower, same behaviour.

use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, Inlining, InstanceAllocationStrategy, OptLevel,
    PoolingAllocationConfig,
};

use super::error::Cause;
use super::limits::{EPOCH_TICK_MS, MAX_MEMORY_BYTES, WASM_STACK_BYTES};

/// Instances alive at once per engine. Decisions run one at a time per process; the headroom
/// covers a caller that keeps a few stores alive and tests that share a host across threads.
const POOL_SLOTS: u32 = 16;

/// Dirty bytes of a slot's linear memory that are reset in place (copied back from the
/// module's image or zeroed) and kept mapped when an instance ends, instead of being handed back
/// to the kernel and faulted in again by the next decision. Used only where the kernel can say
/// which pages a decision dirtied (Linux 6.7+, `PAGEMAP_SCAN`); elsewhere wasmtime would reset
/// this many bytes from the start of memory whether dirty or not, which costs more than it saves.
const KEEP_RESIDENT_BYTES: usize = 1024 * 1024;

/// How instances are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allocation {
    /// Pooling allocator, [`POOL_SLOTS`] warm slots.
    Pooling,
    /// A fresh mapping per instance.
    OnDemand,
}

/// A new engine for policies, and its epoch ticker (which stops when the engine is dropped).
pub(crate) fn new_engine() -> Result<(Engine, Allocation), Cause> {
    let engine_with = |allocation: Allocation| {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(WASM_STACK_BYTES)
            .cranelift_opt_level(OptLevel::Speed)
            // Compile cost stays per function: no inlining, which would let one function's
            // compile grow with its callees (see `budget`, which bounds each function).
            .compiler_inlining(Inlining::No);
        if allocation == Allocation::Pooling {
            let mut pool = PoolingAllocationConfig::new();
            pool.total_core_instances(POOL_SLOTS)
                .total_memories(POOL_SLOTS)
                .total_tables(POOL_SLOTS)
                .max_memory_size(MAX_MEMORY_BYTES as usize);
            if PoolingAllocationConfig::is_pagemap_scan_available() {
                pool.pagemap_scan(Enabled::Yes)
                    .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
                    .table_keep_resident(KEEP_RESIDENT_BYTES);
            }
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Engine::new(&config)
    };
    let (engine, allocation) = match engine_with(Allocation::Pooling) {
        Ok(engine) => (engine, Allocation::Pooling),
        Err(_) => (
            engine_with(Allocation::OnDemand).map_err(|e| Cause::Engine(e.to_string()))?,
            Allocation::OnDemand,
        ),
    };
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
    Ok((engine, allocation))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_use_the_pool_here() {
        // This machine allows the pool's reservation; the fallback is for ones that do not.
        let (_, allocation) = new_engine().expect("engine");
        assert_eq!(allocation, Allocation::Pooling);
    }
}
