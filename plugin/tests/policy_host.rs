//! Loading, metadata, pins, sources, the precompiled cache and the WAT built-in.

mod common;

use common::{fixture, host, web_input};
use kubectl_canary::policy::{CacheStatus, Cause, Limits, ModuleRef, PolicyHost, BUILTINS};
use policy_sdk::testing::canary_weight;
use policy_sdk::Action;

#[test]
fn every_builtin_loads_with_metadata() {
    let host = host();
    for builtin in BUILTINS {
        let policy = host
            .load(&ModuleRef::Builtin(builtin.name.into()), None)
            .unwrap_or_else(|e| panic!("{}: {e}", builtin.name));
        let metadata = policy.metadata().expect("metadata section");
        assert_eq!(metadata.name, builtin.name);
        assert_eq!(metadata.abi, Some(1));
        assert!(metadata.config_schema.is_object());
        assert!(policy
            .id()
            .starts_with(&format!("{}@sha256:", builtin.name)));
        let exports: Vec<_> = policy.exports().iter().map(|e| e.name.as_str()).collect();
        for name in [
            "memory",
            "canary_abi_version",
            "canary_alloc",
            "canary_decide",
        ] {
            assert!(exports.contains(&name), "{}: {exports:?}", builtin.name);
        }
        assert!(policy.imports().iter().all(|i| i.name == "canary.log"));
    }
}

#[test]
fn the_wat_builtin_decides_all_at_once() {
    let host = host();
    let policy = host
        .load(&ModuleRef::parse("builtin:all-at-once"), None)
        .unwrap();
    let evaluation = policy.evaluate(&web_input(), &Limits::default()).unwrap();
    assert_eq!(evaluation.decision.action, Action::Complete);
    assert_eq!(canary_weight(&evaluation.decision, "web"), Some(100));
    assert_eq!(evaluation.logs.len(), 1);
}

#[test]
fn unknown_builtin_lists_the_known_ones() {
    let err = host()
        .load(&ModuleRef::parse("builtin:nope"), None)
        .unwrap_err();
    assert!(err.to_string().contains("progressive"), "{err}");
}

/// Refusals that need no network: nothing is fetched for them.
#[test]
fn remote_sources_are_refused_before_any_request_when_malformed() {
    let refused = |module: &str| {
        host()
            .load(&ModuleRef::parse(module), None)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused("https://example.invalid/p.wasm"),
        "policy https://example.invalid/p.wasm: an https:// module must be pinned: set \
         spec.policy.sha256 to the sha256 of the module (`sha256sum module.wasm`); nothing was \
         fetched"
    );
    assert_eq!(
        refused("http://example.invalid/p.wasm"),
        "policy http://example.invalid/p.wasm: plain http:// modules are refused; serve the \
         module over https:// with a sha256 pin"
    );
    let err = host()
        .load(&ModuleRef::parse("oci://example.invalid/Org/p:1"), None)
        .unwrap_err();
    assert!(matches!(err.cause, Cause::InvalidReference { .. }), "{err}");
}

#[test]
fn sha256_pin_is_verified_before_anything_runs() {
    let host = host();
    let module = ModuleRef::parse("builtin:progressive");
    let real = host.load(&module, None).unwrap().sha256().to_string();
    host.load(&module, Some(&format!("sha256:{real}")))
        .expect("matching pin");
    let wrong = "0".repeat(64);
    let err = host.load(&module, Some(&wrong)).unwrap_err();
    assert!(matches!(err.cause, Cause::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&real));
    let err = host.load(&module, Some("sha256:xyz")).unwrap_err();
    assert!(matches!(err.cause, Cause::InvalidPin { .. }), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let err = host()
        .load(&ModuleRef::parse("/nonexistent/policy.wasm"), None)
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/policy.wasm"),
        "{err}"
    );
}

#[test]
fn invalid_wat_is_a_clear_error() {
    let err = host()
        .load_bytes("broken.wat", b"(module (func")
        .unwrap_err();
    assert!(matches!(err.cause, Cause::Wat(_)), "{err}");
}

#[test]
fn cache_hits_and_repairs_corrupt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let module = ModuleRef::File(fixture("hostile/invalid-json.wat"));
    let host = PolicyHost::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(
        host.load(&module, None).unwrap().cache_status(),
        CacheStatus::Compiled
    );
    assert_eq!(
        host.load(&module, None).unwrap().cache_status(),
        CacheStatus::Hit
    );
    // A second host (another process) reuses the entry.
    let other = PolicyHost::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(
        other.load(&module, None).unwrap().cache_status(),
        CacheStatus::Hit
    );

    let entries: Vec<_> = std::fs::read_dir(dir.path().join("modules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    let repaired = host.load(&module, None).unwrap();
    assert_eq!(repaired.cache_status(), CacheStatus::Repaired);
    // The repaired module still runs (its output is invalid JSON by design).
    let err = repaired
        .decide(&web_input(), &Limits::default())
        .unwrap_err();
    assert!(matches!(err.cause, Cause::InvalidOutput(_)), "{err}");
    assert_eq!(
        host.load(&module, None).unwrap().cache_status(),
        CacheStatus::Hit
    );
    std::fs::write(&entries[0], b"garbage").unwrap();
    assert_eq!(
        host.load(&module, None).unwrap().cache_status(),
        CacheStatus::Repaired
    );
}

#[test]
fn another_policys_entry_swapped_in_is_recompiled_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let host = PolicyHost::new(Some(dir.path().to_path_buf())).unwrap();
    let progressive = ModuleRef::Builtin("progressive".into());
    let business_hours = ModuleRef::Builtin("business-hours".into());
    let sha256 = host.load(&progressive, None).unwrap().sha256().to_string();
    let other = host
        .load(&business_hours, None)
        .unwrap()
        .sha256()
        .to_string();
    let entry = |sha256: &str| {
        std::fs::read_dir(dir.path().join("modules"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(sha256))
            .expect("an entry of the module")
    };
    let (ours, theirs) = (entry(&sha256), entry(&other));
    let compiled = std::fs::read(&ours).unwrap();
    // A valid entry of the same engine, of another module, under progressive's name.
    std::fs::copy(&theirs, &ours).unwrap();

    let loaded = host.load(&progressive, None).unwrap();
    assert_eq!(loaded.cache_status(), CacheStatus::Repaired);
    // What runs is progressive: the entry was rewritten from its own bytes.
    assert_eq!(std::fs::read(&ours).unwrap(), compiled);
    assert_eq!(
        host.load(&progressive, None).unwrap().cache_status(),
        CacheStatus::Hit
    );
}

#[test]
fn racing_loads_share_one_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let host = PolicyHost::new(Some(dir)).unwrap();
                let module = ModuleRef::File(fixture("hostile/invalid-json.wat"));
                host.load(&module, None)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(dir.path().join("modules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "no temp files left behind: {names:?}");
    assert!(names[0].ends_with(".cwasm"));
}

#[test]
fn unwritable_cache_dir_only_costs_a_compile() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let host = PolicyHost::new(Some(file)).unwrap();
    let module = ModuleRef::File(fixture("hostile/invalid-json.wat"));
    assert_eq!(
        host.load(&module, None).unwrap().cache_status(),
        CacheStatus::Compiled
    );
}

/// `progressive`'s `start` decision for a chained release of `services` services: its fuel.
fn chained_start_fuel(services: usize) -> u64 {
    use policy_sdk::testing::{InputBuilder, ReleaseBuilder};
    let mut release = ReleaseBuilder::new("scale").namespace("scale");
    for i in 0..services {
        release = release.service(&format!("svc{i}"), "v1", "v2");
    }
    let input = InputBuilder::new(release.build())
        .event(policy_sdk::Event::Start)
        .config_json(r#"{"chain": true, "steps": [10, 50, 100]}"#)
        .build();
    let policy = host()
        .load(&ModuleRef::parse("builtin:progressive"), None)
        .expect("builtin:progressive");
    let evaluation = policy
        .evaluate(&input, &Limits::default())
        .unwrap_or_else(|e| panic!("{services} services: {e}"));
    assert_eq!(evaluation.decision.action, Action::Advance);
    evaluation.fuel_used
}

/// Issue 16 item 5: a chained decision is linear in the services (one compact caller match
/// per service, expanded by the host), so the spec's limit of 1,000 services decides within the
/// default limits. Fuel is an exact count, not a time: per service it stays within a tenth of
/// the small release's (it was 4× at 60 services and refused from 80 when each service listed
/// every caller).
#[test]
fn a_chained_decision_is_linear_in_the_services_up_to_the_spec_limit() {
    let small = chained_start_fuel(10) / 10;
    let large = chained_start_fuel(kubectl_canary::spec::MAX_SERVICES)
        / kubectl_canary::spec::MAX_SERVICES as u64;
    assert!(
        large * 10 <= small * 11,
        "fuel per service: {small} at 10 services, {large} at 1,000"
    );
}
