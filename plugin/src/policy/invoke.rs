//! One call into a guest: a fresh bounded store, the ABI v1 dance (alloc, write, decide, read),
//! the `canary.log` import, and every failure turned into a [`Cause`].

use serde::Serialize;
use wasmtime::{Caller, Engine, Extern, InstancePre, Linker, Memory, Store, Trap};

use super::error::Cause;
use super::limits::{GuestLimiter, Limits, MAX_LOG_LINES, MAX_LOG_LINE_BYTES, MAX_OUTPUT_BYTES};

/// Severity of a policy's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// 0.
    Debug,
    /// 1.
    Info,
    /// 2.
    Warn,
    /// 3 (and anything larger).
    Error,
}

/// One line a policy logged during a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text: at most 4 KiB, control characters stripped.
    pub message: String,
}

/// Per-decision host state.
pub(crate) struct GuestState {
    limiter: GuestLimiter,
    logs: Vec<LogLine>,
}

/// The linker offering the only import a policy may use, `canary.log`.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<GuestState>, Cause> {
    let mut linker = Linker::new(engine);
    linker
        .func_wrap("canary", "log", host_log)
        .map_err(|e| Cause::Engine(e.to_string()))?;
    Ok(linker)
}

fn host_log(
    mut caller: Caller<'_, GuestState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    if caller.data().logs.len() >= MAX_LOG_LINES {
        return Ok(());
    }
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Ok(());
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let data = memory.data(&caller);
    let Some(bytes) = ptr.checked_add(len).and_then(|end| data.get(ptr..end)) else {
        wasmtime::bail!("canary.log: bytes {ptr:#x}..+{len} are outside the guest's memory");
    };
    let bytes = &bytes[..bytes.len().min(MAX_LOG_LINE_BYTES * 4)];
    let mut message: String = String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if message.len() > MAX_LOG_LINE_BYTES {
        let mut end = MAX_LOG_LINE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    let level = match level {
        i32::MIN..=0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    caller.data_mut().logs.push(LogLine { level, message });
    Ok(())
}

/// What a finished call produced.
pub(crate) struct CallOutput {
    /// The output bytes.
    pub bytes: Vec<u8>,
    /// The log lines.
    pub logs: Vec<LogLine>,
    /// Fuel consumed.
    pub fuel_used: u64,
}

fn new_store(engine: &Engine, limits: &Limits) -> Result<Store<GuestState>, Cause> {
    let mut store = Store::new(
        engine,
        GuestState {
            limiter: GuestLimiter::new(limits),
            logs: Vec::new(),
        },
    );
    store.limiter(|state| &mut state.limiter);
    store
        .set_fuel(limits.fuel)
        .map_err(|e| Cause::Engine(e.to_string()))?;
    store.set_epoch_deadline(limits.epoch_ticks());
    store.epoch_deadline_trap();
    Ok(store)
}

/// Calls `canary_abi_version` in a fresh instance.
pub(crate) fn abi_version(pre: &InstancePre<GuestState>, limits: &Limits) -> Result<i32, Cause> {
    let mut store = new_store(pre.module().engine(), limits)?;
    let result = (|| {
        let instance = pre.instantiate(&mut store)?;
        let f = instance.get_typed_func::<(), i32>(&mut store, "canary_abi_version")?;
        f.call(&mut store, ())
    })();
    result.map_err(|e| classify(e, &store, limits))
}

/// Runs `canary_decide` on `input` in a fresh instance bounded by `limits`.
pub(crate) fn decide(
    pre: &InstancePre<GuestState>,
    input: &[u8],
    limits: &Limits,
) -> Result<CallOutput, Cause> {
    call_json(pre, "canary_decide", input, limits)
}

/// Runs `export` (`(ptr, len) -> (out_ptr << 32) | out_len`, as `canary_decide`) on `input` in
/// a fresh instance bounded by `limits`: the same sandbox, limits and output checks for every
/// JSON-in, JSON-out export of the ABI.
pub(crate) fn call_json(
    pre: &InstancePre<GuestState>,
    export: &str,
    input: &[u8],
    limits: &Limits,
) -> Result<CallOutput, Cause> {
    let mut store = new_store(pre.module().engine(), limits)?;
    let packed = match call_export(pre, &mut store, export, input) {
        Ok(result) => result,
        Err(CallError::Wasm(e)) => return Err(classify(e, &store, limits)),
        Err(CallError::Cause(c)) => return Err(c),
    };
    let (memory, out_ptr, out_len) = packed;
    if out_len > MAX_OUTPUT_BYTES {
        return Err(Cause::OutputTooLarge {
            size: out_len,
            max: MAX_OUTPUT_BYTES,
        });
    }
    let data = memory.data(&store);
    let bytes = checked_range(data.len(), out_ptr, out_len)
        .map(|r| data[r].to_vec())
        .ok_or(Cause::OutOfBounds {
            what: "output",
            ptr: out_ptr,
            len: out_len,
            memory: data.len() as u64,
        })?;
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let logs = std::mem::take(&mut store.data_mut().logs);
    Ok(CallOutput {
        bytes,
        logs,
        fuel_used,
    })
}

enum CallError {
    Wasm(wasmtime::Error),
    Cause(Cause),
}

impl From<wasmtime::Error> for CallError {
    fn from(e: wasmtime::Error) -> Self {
        CallError::Wasm(e)
    }
}

fn call_export(
    pre: &InstancePre<GuestState>,
    store: &mut Store<GuestState>,
    export: &str,
    input: &[u8],
) -> Result<(Memory, u64, u64), CallError> {
    let instance = pre.instantiate(&mut *store)?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or(CallError::Cause(Cause::MissingExport { name: "memory" }))?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "canary_alloc")?;
    let decide = instance.get_typed_func::<(i32, i32), i64>(&mut *store, export)?;
    let len = input.len() as i32;
    let ptr = alloc.call(&mut *store, len)? as u32 as u64;
    let size = memory.data_size(&*store);
    let range = checked_range(size, ptr, input.len() as u64).ok_or(CallError::Cause(
        Cause::OutOfBounds {
            what: "input buffer from canary_alloc",
            ptr,
            len: input.len() as u64,
            memory: size as u64,
        },
    ))?;
    memory.data_mut(&mut *store)[range].copy_from_slice(input);
    let packed = decide.call(&mut *store, (ptr as i32, len))? as u64;
    Ok((memory, packed >> 32, packed & 0xffff_ffff))
}

fn checked_range(size: usize, ptr: u64, len: u64) -> Option<std::ops::Range<usize>> {
    let end = ptr.checked_add(len)?;
    (end <= size as u64).then_some(ptr as usize..end as usize)
}

/// Turns a wasmtime error into the guest's fault it describes.
fn classify(err: wasmtime::Error, store: &Store<GuestState>, limits: &Limits) -> Cause {
    if store.data().limiter.memory_exceeded {
        return Cause::MemoryLimit {
            limit: limits.memory_bytes,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Cause::OutOfFuel { fuel: limits.fuel },
        Some(Trap::Interrupt) => Cause::Timeout {
            ms: limits.timeout_ms,
        },
        Some(trap) => Cause::Trap(trap.to_string()),
        None => Cause::Trap(format!("{err:#}")),
    }
}
