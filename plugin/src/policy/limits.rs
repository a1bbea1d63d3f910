//! Resource limits of one decision: defaults, hard caps, and the store's memory limiter.

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::spec::PolicyLimits;

const MIB: u64 = 1024 * 1024;

/// Default linear memory of a policy.
pub const DEFAULT_MEMORY_BYTES: u64 = 32 * MIB;
/// Hard cap on linear memory; no spec can raise past it.
pub const MAX_MEMORY_BYTES: u64 = 256 * MIB;
/// Default fuel (roughly instructions) per decision.
pub const DEFAULT_FUEL: u64 = 100_000_000;
/// Hard cap on fuel per decision.
pub const MAX_FUEL: u64 = 1_000_000_000;
/// Default wall-clock backstop per decision.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Hard cap on the wall-clock backstop.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Largest input JSON.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Largest output JSON.
pub const MAX_OUTPUT_BYTES: u64 = 256 * 1024;
/// Largest module accepted (bytes of the file).
pub const MAX_MODULE_BYTES: u64 = 32 * MIB;
/// wasm stack of a guest (set on the engine).
pub const WASM_STACK_BYTES: usize = 512 * 1024;
/// Longest log line kept (bytes, after stripping control characters).
pub const MAX_LOG_LINE_BYTES: usize = 4 * 1024;
/// Log lines kept per decision.
pub const MAX_LOG_LINES: usize = 100;
/// The epoch ticker's period; the deadline is counted in these ticks.
pub const EPOCH_TICK_MS: u64 = 10;

/// Limits of one decision. Build with [`Limits::default`] and lower with
/// [`Limits::from_spec`]; values past the hard caps are clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, bytes.
    pub memory_bytes: u64,
    /// Fuel per decision.
    pub fuel: u64,
    /// Wall-clock backstop, milliseconds.
    pub timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            fuel: DEFAULT_FUEL,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

impl Limits {
    /// The spec's `policy.limits` over the defaults. A spec may lower a limit or raise it up to
    /// the hard cap, never past it.
    pub fn from_spec(spec: Option<&PolicyLimits>) -> Limits {
        let mut limits = Limits::default();
        if let Some(spec) = spec {
            if let Some(mib) = spec.memory_mib {
                limits.memory_bytes = mib.saturating_mul(MIB);
            }
            if let Some(fuel) = spec.fuel {
                limits.fuel = fuel;
            }
            if let Some(ms) = spec.timeout_ms {
                limits.timeout_ms = ms;
            }
        }
        limits.clamped()
    }

    /// These limits with every value at most its hard cap (and at least 1).
    pub fn clamped(self) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes.clamp(1, MAX_MEMORY_BYTES),
            fuel: self.fuel.clamp(1, MAX_FUEL),
            timeout_ms: self.timeout_ms.clamp(1, MAX_TIMEOUT_MS),
        }
    }

    /// Epoch ticks for the wall-clock backstop.
    pub(crate) fn epoch_ticks(&self) -> u64 {
        self.timeout_ms.div_ceil(EPOCH_TICK_MS) + 1
    }
}

/// The store's limiter: wasmtime's [`StoreLimits`], remembering whether the memory limit was the
/// reason a grow failed so the error can say so.
pub(crate) struct GuestLimiter {
    inner: StoreLimits,
    memory_bytes: u64,
    pub(crate) memory_exceeded: bool,
}

impl GuestLimiter {
    pub(crate) fn new(limits: &Limits) -> GuestLimiter {
        GuestLimiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes as usize)
                .table_elements(100_000)
                .instances(1)
                .memories(1)
                .tables(4)
                .build(),
            memory_bytes: limits.memory_bytes,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_bytes {
            self.memory_exceeded = true;
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
