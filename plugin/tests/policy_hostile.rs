//! Hostile modules: each ends with a typed error (never a panic or a hang), memory stays bounded,
//! and the same host then makes a good decision.

mod common;

use common::{assert_healthy, fixture, host, web_input};
use kubectl_canary::policy::{Cause, Limits, ModuleRef, PolicyError, PolicyHost};

fn load(
    host: &PolicyHost,
    name: &str,
) -> Result<kubectl_canary::policy::LoadedPolicy, PolicyError> {
    host.load(
        &ModuleRef::File(fixture(&format!("hostile/{name}.wat"))),
        None,
    )
}

/// Loads a fixture that loads fine, decides, and returns the decision's error.
fn decide_err(host: &PolicyHost, name: &str, limits: Limits) -> PolicyError {
    let policy = load(host, name).unwrap_or_else(|e| panic!("{name} should load: {e}"));
    policy
        .decide(&web_input(), &limits)
        .expect_err("a hostile decision must fail")
}

fn assert_message(err: &PolicyError, name: &str, needle: &str) {
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("policy {name}@sha256:")),
        "{message}"
    );
    assert!(
        message.contains(needle),
        "{message:?} should contain {needle:?}"
    );
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let host = host();
    let err = decide_err(&host, "infinite-loop", Limits::default());
    assert!(matches!(err.cause, Cause::OutOfFuel { .. }), "{err}");
    assert_message(&err, "infinite-loop", "ran out of fuel");
    assert_healthy(&host);
}

#[test]
fn infinite_loop_hits_the_epoch_deadline_when_fuel_is_plentiful() {
    let host = host();
    let limits = Limits {
        fuel: u64::MAX,
        timeout_ms: 50,
        ..Limits::default()
    };
    let err = decide_err(&host, "infinite-loop", limits);
    assert!(matches!(err.cause, Cause::Timeout { ms: 50 }), "{err}");
    assert_healthy(&host);
}

#[test]
fn memory_bomb_is_stopped_at_the_limit() {
    let host = host();
    let limits = Limits {
        memory_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    };
    let err = decide_err(&host, "memory-bomb", limits);
    assert!(
        matches!(err.cause, Cause::MemoryLimit { limit } if limit == 4 * 1024 * 1024),
        "{err}"
    );
    assert_message(&err, "memory-bomb", "memory limit of 4194304 bytes");
    assert_healthy(&host);
}

#[test]
fn memory_limit_is_capped_even_if_asked_for_more() {
    let limits = Limits {
        memory_bytes: u64::MAX,
        ..Limits::default()
    }
    .clamped();
    assert_eq!(
        limits.memory_bytes,
        kubectl_canary::policy::MAX_MEMORY_BYTES
    );
    let err = decide_err(
        &host(),
        "memory-bomb",
        Limits {
            memory_bytes: u64::MAX,
            ..Limits::default()
        },
    );
    assert!(
        matches!(err.cause, Cause::MemoryLimit { limit } if limit == kubectl_canary::policy::MAX_MEMORY_BYTES),
        "{err}"
    );
}

#[test]
fn huge_output_length_is_refused() {
    let host = host();
    let err = decide_err(&host, "huge-output", Limits::default());
    assert!(matches!(err.cause, Cause::OutputTooLarge { .. }), "{err}");
    assert_healthy(&host);
}

#[test]
fn out_of_bounds_output_pointer_is_refused() {
    let host = host();
    let err = decide_err(&host, "out-of-bounds-output", Limits::default());
    assert!(
        matches!(err.cause, Cause::OutOfBounds { what: "output", .. }),
        "{err}"
    );
    assert_healthy(&host);
}

#[test]
fn invalid_utf8_is_refused() {
    let err = decide_err(&host(), "invalid-utf8", Limits::default());
    assert!(matches!(err.cause, Cause::InvalidUtf8(_)), "{err}");
}

#[test]
fn invalid_json_is_refused() {
    let err = decide_err(&host(), "invalid-json", Limits::default());
    assert!(matches!(err.cause, Cause::InvalidOutput(_)), "{err}");
}

#[test]
fn schema_mismatch_names_the_field() {
    let err = decide_err(&host(), "schema-mismatch", Limits::default());
    assert!(matches!(err.cause, Cause::InvalidOutput(_)), "{err}");
    assert_message(&err, "schema-mismatch", "action: unknown variant `explode`");
}

#[test]
fn unreachable_trap_is_a_value() {
    let host = host();
    let err = decide_err(&host, "unreachable", Limits::default());
    assert!(matches!(err.cause, Cause::Trap(_)), "{err}");
    assert_message(&err, "unreachable", "trapped");
    assert_healthy(&host);
}

#[test]
fn stack_overflow_is_a_trap() {
    let host = host();
    let err = decide_err(&host, "stack-overflow", Limits::default());
    assert!(
        matches!(err.cause, Cause::Trap(ref t) if t.contains("stack")),
        "{err}"
    );
    assert_healthy(&host);
}

#[test]
fn missing_export_is_refused_at_load() {
    let err = load(&host(), "missing-export").expect_err("no canary_decide");
    assert!(
        matches!(
            err.cause,
            Cause::MissingExport {
                name: "canary_decide"
            }
        ),
        "{err}"
    );
}

#[test]
fn wasi_import_is_named_at_load() {
    let err = load(&host(), "wasi-import").expect_err("WASI is not offered");
    assert_message(&err, "wasi-import", "`wasi_snapshot_preview1.fd_write`");
}

#[test]
fn abi_version_2_is_refused_at_load() {
    let err = load(&host(), "abi-v2").expect_err("ABI 2");
    assert!(
        matches!(
            err.cause,
            Cause::AbiVersion {
                found: 2,
                expected: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_log_pointer_traps() {
    let err = decide_err(&host(), "bad-log-pointer", Limits::default());
    assert_message(&err, "bad-log-pointer", "canary.log");
}

#[test]
fn refused_decision_quotes_path_and_value() {
    let err = decide_err(&host(), "refused-weight", Limits::default());
    assert_message(
        &err,
        "refused-weight",
        "decision refused: stage.routes.web[0].to[0].weight = \"150\"",
    );
}

#[test]
fn log_lines_are_bounded_and_cleaned() {
    let host = host();
    let policy = load(&host, "log-flood").expect("loads");
    let evaluation = policy
        .evaluate(&web_input(), &Limits::default())
        .expect("a hold decision");
    assert_eq!(evaluation.logs.len(), 100);
    let line = &evaluation.logs[0].message;
    assert_eq!(line.len(), 4096);
    assert!(line.starts_with("axxx"), "{line:.20}");
    assert!(!line.chars().any(char::is_control));
}

#[test]
fn a_50_mb_module_is_refused_before_compiling() {
    // A valid header and one 50 MB custom section: generated here, not committed.
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    let payload = 50 * 1024 * 1024;
    module.push(0);
    let mut size = payload + 2;
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            module.push(byte);
            break;
        }
        module.push(byte | 0x80);
    }
    module.extend_from_slice(&[1, b'x']);
    module.resize(module.len() + payload, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wasm");
    std::fs::write(&path, &module).unwrap();
    let host = host();
    let err = host
        .load(&ModuleRef::File(path), None)
        .expect_err("too large");
    assert!(matches!(err.cause, Cause::ModuleTooLarge { .. }), "{err}");
    let err = host.load_bytes("big.wasm", &module).expect_err("too large");
    assert!(matches!(err.cause, Cause::ModuleTooLarge { .. }), "{err}");
    assert_healthy(&host);
}

#[test]
fn oversized_input_is_refused_before_the_guest_runs() {
    let host = host();
    let policy = host
        .load(&ModuleRef::parse("builtin:progressive"), None)
        .unwrap();
    let err = policy
        .decide_raw(&vec![b' '; 2 * 1024 * 1024], &Limits::default())
        .expect_err("2 MiB input");
    assert!(matches!(err.cause, Cause::InputTooLarge { .. }), "{err}");
}
