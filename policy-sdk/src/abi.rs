//! The guest side of ABI v1: what [`export_policy!`](crate::export_policy) expands to.
//!
//! A policy is a WebAssembly core module exporting `canary_abi_version`, `canary_alloc`,
//! `canary_dealloc` and `canary_decide` (and `memory`, which rustc exports by itself). The host
//! writes the input JSON into a buffer it got from `canary_alloc`, calls `canary_decide(ptr, len)`
//! and reads the output JSON at the returned `(out_ptr << 32) | out_len`. Every decision runs in a
//! fresh instance, so buffers that are never freed cost nothing beyond that decision.
//!
//! This module holds the only `unsafe` code of the SDK: turning the raw pointers the host passes
//! into slices. The functions are `#[doc(hidden)]` plumbing for the macro; authors never call them.

use crate::types::{Action, Decision, Input, ABI_VERSION};

/// The signature of a policy's decide function.
pub type DecideFn = fn(&Input) -> Decision;

/// Metadata written into the `canary.metadata` custom section by [`export_policy!`](crate::export_policy).
#[doc(hidden)]
pub const fn metadata_bytes<const N: usize>(json: &str) -> [u8; N] {
    let bytes = json.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// `canary_abi_version`: the ABI this SDK speaks.
#[doc(hidden)]
pub fn abi_version() -> i32 {
    ABI_VERSION as i32
}

/// `canary_alloc`: a buffer of `len` writable bytes, leaked to the host.
#[doc(hidden)]
pub fn alloc(len: i32) -> i32 {
    let len = if len < 0 { 0 } else { len as usize };
    let mut buffer: Vec<u8> = Vec::with_capacity(len);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr as usize as i32
}

/// `canary_dealloc`: frees a buffer returned by [`alloc`] or by [`decide`].
///
/// # Safety
/// `ptr` and `len` must describe a buffer this module handed out and has not freed yet.
#[doc(hidden)]
pub unsafe fn dealloc(ptr: i32, len: i32) {
    if ptr == 0 || len <= 0 {
        return;
    }
    // SAFETY: per this function's contract the buffer came from `Vec::with_capacity(len)` (alloc)
    // or from a boxed slice of exactly `len` bytes (decide), both of which have capacity `len`.
    drop(Vec::from_raw_parts(
        ptr as usize as *mut u8,
        0,
        len as usize,
    ));
}

/// `canary_decide`: reads the input JSON at `ptr..ptr+len`, runs `decide`, returns the packed
/// `(out_ptr << 32) | out_len` of the output JSON.
///
/// # Safety
/// `ptr..ptr+len` must be readable memory of this module (the host got it from `canary_alloc`).
#[doc(hidden)]
pub unsafe fn decide(ptr: i32, len: i32, decide: DecideFn) -> i64 {
    let input: &[u8] = if len <= 0 {
        &[]
    } else {
        // SAFETY: per this function's contract the host wrote `len` bytes at `ptr`, inside a
        // buffer it obtained from `canary_alloc(len)`; nothing else aliases it during the call.
        std::slice::from_raw_parts(ptr as usize as *const u8, len as usize)
    };
    let output = decide_json(input, decide).into_boxed_slice();
    let out_len = output.len() as u64;
    let out_ptr = Box::into_raw(output) as *mut u8 as usize as u64;
    ((out_ptr << 32) | out_len) as i64
}

/// The whole decision on bytes: parse the input, decide, serialise the decision. Input the
/// policy cannot read becomes a `hold` with the parse error as its reason, so the host always
/// gets a well-formed answer from a well-formed policy. Used by the wasm export and by
/// [`testing`](crate::testing), so a native test exercises the same wire format.
pub fn decide_json(input: &[u8], decide: DecideFn) -> Vec<u8> {
    let decision = match serde_json::from_slice::<Input>(input) {
        Ok(input) => decide(&input),
        Err(err) => Decision {
            action: Action::Hold,
            stage: None,
            requeue_after_seconds: None,
            reason: format!("the policy cannot read its input: {}", err),
        },
    };
    match serde_json::to_vec(&decision) {
        Ok(bytes) => bytes,
        Err(_) => {
            br#"{"action":"hold","reason":"the policy cannot serialise its decision"}"#.to_vec()
        }
    }
}

/// `canary_validate_config`: reads the config JSON at `ptr..ptr+len`, runs `validate`, returns the
/// packed `(out_ptr << 32) | out_len` of the [`ConfigValidation`](crate::config::ConfigValidation)
/// JSON.
///
/// # Safety
/// `ptr..ptr+len` must be readable memory of this module (the host got it from `canary_alloc`).
#[doc(hidden)]
pub unsafe fn validate_config(ptr: i32, len: i32, validate: crate::config::ValidateFn) -> i64 {
    let input: &[u8] = if len <= 0 {
        &[]
    } else {
        // SAFETY: as in `decide`: the host wrote `len` bytes at `ptr`, inside a buffer it obtained
        // from `canary_alloc(len)`; nothing else aliases it during the call.
        std::slice::from_raw_parts(ptr as usize as *const u8, len as usize)
    };
    let output = crate::config::validate_json(input, validate).into_boxed_slice();
    let out_len = output.len() as u64;
    let out_ptr = Box::into_raw(output) as *mut u8 as usize as u64;
    ((out_ptr << 32) | out_len) as i64
}

/// Write a policy's exports and its `canary.metadata` section.
///
/// ```ignore
/// fn decide(input: &policy_sdk::Input) -> policy_sdk::Decision { /* ... */ }
/// fn validate_config(config: &serde_json::Value) -> Vec<policy_sdk::config::ConfigProblem> {
///     /* ... */
/// }
///
/// policy_sdk::export_policy!(
///     decide: decide,
///     validate_config: validate_config, // optional
///     name: "my-policy",
///     version: "0.1.0",
///     description: "What it decides, in one line",
///     config_schema: r#"{"type": "object"}"#,
/// );
/// ```
///
/// `name`, `version` and `description` are string literals without `"` or `\` (they are pasted
/// into the metadata JSON as they are); `config_schema` is a string literal holding a JSON
/// Schema of the policy's `config`. Everything is `concat!`-ed into one constant byte string at
/// compile time, so the metadata costs nothing at run time.
///
/// `validate_config` (optional) is a [`ValidateFn`](crate::config::ValidateFn): with it the
/// module also exports `canary_validate_config`, which the host calls to check a release's
/// config before anything runs (see [`config`](crate::config)). The host always checks the
/// schema first, so the function may assume the shape the schema describes; it is where the
/// rules a schema cannot say belong (weights that increase, one of two fields, a duration).
///
/// The exports (`canary_abi_version`, `canary_alloc`, `canary_dealloc`, `canary_decide`,
/// `canary_validate_config`) and the custom section exist only when compiling for `wasm32`, so
/// the same crate can be a native library (tests, benches) without clashing `#[no_mangle]`
/// symbols. Their `unsafe` is confined to [`abi`](crate::abi): the host passes a pointer into
/// this module's own memory, obtained from `canary_alloc`, and the length it wrote there.
#[macro_export]
macro_rules! export_policy {
    (
        decide: $decide:path,
        validate_config: $validate:path,
        name: $name:literal,
        version: $version:literal,
        description: $description:literal,
        config_schema: $schema:literal $(,)?
    ) => {
        $crate::export_policy!(@emit [$decide] [$validate] $name, $version, $description, $schema);
    };
    (
        decide: $decide:path,
        name: $name:literal,
        version: $version:literal,
        description: $description:literal,
        config_schema: $schema:literal $(,)?
    ) => {
        $crate::export_policy!(@emit [$decide] [] $name, $version, $description, $schema);
    };
    (@emit [$decide:path] [$($validate:path)?] $name:literal, $version:literal,
     $description:literal, $schema:literal) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const METADATA: &str = concat!(
                "{\"name\":\"",
                $name,
                "\",\"version\":\"",
                $version,
                "\",\"description\":\"",
                $description,
                "\",\"abi\":1,\"config_schema\":",
                $schema,
                "}"
            );
            #[link_section = "canary.metadata"]
            #[used]
            static CANARY_METADATA: [u8; METADATA.len()] =
                $crate::abi::metadata_bytes::<{ METADATA.len() }>(METADATA);

            #[no_mangle]
            pub extern "C" fn canary_abi_version() -> i32 {
                $crate::abi::abi_version()
            }

            #[no_mangle]
            pub extern "C" fn canary_alloc(len: i32) -> i32 {
                $crate::abi::alloc(len)
            }

            /// # Safety
            /// Called by the host with a buffer this module handed out.
            #[no_mangle]
            pub unsafe extern "C" fn canary_dealloc(ptr: i32, len: i32) {
                $crate::abi::dealloc(ptr, len)
            }

            /// # Safety
            /// Called by the host with the buffer it filled after `canary_alloc(len)`.
            #[no_mangle]
            pub unsafe extern "C" fn canary_decide(ptr: i32, len: i32) -> i64 {
                $crate::abi::decide(ptr, len, $decide)
            }

            $(
                /// # Safety
                /// Called by the host with the buffer it filled after `canary_alloc(len)`.
                #[no_mangle]
                pub unsafe extern "C" fn canary_validate_config(ptr: i32, len: i32) -> i64 {
                    $crate::abi::validate_config(ptr, len, $validate)
                }
            )?
        };
    };
}
