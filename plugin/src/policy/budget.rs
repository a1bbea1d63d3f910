//! The compile budget: what a module may cost to compile, checked before cranelift sees it.
//!
//! The module size cap bounds the bytes read, not the compile: cranelift's time and memory grow
//! with the code, and faster than linearly with the size of one function (register allocation),
//! so a 26 MB module of a few huge functions took 21 s and 2.45 GB to compile. Before compiling,
//! one pass over the section headers and each function's locals declaration (no validation of
//! the instructions, no allocation proportional to the code) measures what drives that cost;
//! a module over any limit is refused with the limit named and the value found.
//!
//! The limits are far above what a policy needs: the built-in Rust policies (serde, serde_json,
//! the SDK) are about 270 KB with no function body over 40 KB.

use wasmparser::{Parser, Payload};

use super::error::Cause;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Largest binary module compiled (after a `.wat` module is assembled).
pub const MAX_BINARY_BYTES: u64 = 16 * MIB;
/// Most functions defined by a module.
pub const MAX_FUNCTIONS: u64 = 20_000;
/// Largest code section (all function bodies).
pub const MAX_CODE_BYTES: u64 = 4 * MIB;
/// Largest body of one function.
pub const MAX_FUNCTION_BYTES: u64 = 512 * KIB;
/// Most locals declared by one function.
pub const MAX_FUNCTION_LOCALS: u64 = 10_000;

/// Checks `binary` against the compile budget. Malformed sections are left to the compiler,
/// which reports them precisely; only what was measured before them is judged here.
pub(crate) fn check(binary: &[u8]) -> Result<(), Cause> {
    let over = |what: &str, value: u64, max: u64| {
        if value > max {
            Err(Cause::CompileBudget {
                what: what.to_string(),
                value,
                max,
            })
        } else {
            Ok(())
        }
    };
    over(
        "the binary module (bytes)",
        binary.len() as u64,
        MAX_BINARY_BYTES,
    )?;
    let mut functions: u64 = 0;
    for payload in Parser::new(0).parse_all(binary) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        match payload {
            Payload::FunctionSection(section) => {
                over(
                    "the number of functions",
                    u64::from(section.count()),
                    MAX_FUNCTIONS,
                )?;
            }
            Payload::CodeSectionStart { count, size, .. } => {
                over("the number of functions", u64::from(count), MAX_FUNCTIONS)?;
                over("the code section (bytes)", u64::from(size), MAX_CODE_BYTES)?;
            }
            Payload::CodeSectionEntry(body) => {
                functions += 1;
                let size = body.range().len() as u64;
                if size > MAX_FUNCTION_BYTES {
                    return Err(Cause::CompileBudget {
                        what: function_what(functions - 1, "body (bytes)"),
                        value: size,
                        max: MAX_FUNCTION_BYTES,
                    });
                }
                let Ok(mut locals) = body.get_locals_reader() else {
                    return Ok(());
                };
                let mut declared: u64 = 0;
                for _ in 0..locals.get_count() {
                    let Ok((count, _)) = locals.read() else {
                        return Ok(());
                    };
                    declared = declared.saturating_add(u64::from(count));
                }
                if declared > MAX_FUNCTION_LOCALS {
                    return Err(Cause::CompileBudget {
                        what: function_what(functions - 1, "locals"),
                        value: declared,
                        max: MAX_FUNCTION_LOCALS,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `defined function 3's body (bytes)`: names which function (index among the defined ones).
fn function_what(index: u64, what: &str) -> String {
    format!("defined function {index}'s {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module of `functions` functions, each of `body` bytes of `nop` and `locals` locals.
    fn module(functions: u32, body: u32, locals: u32) -> Vec<u8> {
        let mut text = String::from("(module");
        for _ in 0..functions {
            text.push_str(&format!(
                "(func (local {}) {})",
                "i32 ".repeat(locals as usize),
                "nop ".repeat(body as usize)
            ));
        }
        text.push(')');
        wat::parse_str(&text).unwrap()
    }

    #[test]
    fn small_modules_pass_and_the_built_ins_are_far_below() {
        check(&module(3, 10, 2)).unwrap();
        for builtin in crate::policy::BUILTINS {
            let binary = wat::parse_bytes(builtin.wasm).unwrap();
            check(&binary).unwrap();
        }
    }

    #[test]
    fn each_limit_is_named_with_the_value() {
        let err = |binary: Vec<u8>| check(&binary).unwrap_err().to_string();
        // The body is its (empty) locals vector, 1 byte, 600,000 `nop`s and `end`.
        assert_eq!(
            err(module(1, 600_000, 0)),
            "module exceeds the compile budget: defined function 0's body (bytes) is 600002, \
             more than the limit of 524288 (checked before compiling; a policy this large is \
             refused)"
        );
        assert_eq!(
            err(module(2, 1, 10_001)),
            "module exceeds the compile budget: defined function 0's locals is 10001, more than \
             the limit of 10000 (checked before compiling; a policy this large is refused)"
        );
        assert_eq!(
            err(module(20_001, 1, 0)),
            "module exceeds the compile budget: the number of functions is 20001, more than the \
             limit of 20000 (checked before compiling; a policy this large is refused)"
        );
    }
}
