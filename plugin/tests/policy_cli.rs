//! `kubectl canary policy ...` through the real binary.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::TestCommand;

/// `kubectl-canary <args>` with its policy cache in `cache`.
fn canary(args: &[&str], cache: &Path) -> support::Run {
    TestCommand::new(args)
        .env("KUBECTL_CANARY_CACHE", cache)
        .run()
}

fn stdout(run: &support::Run) -> String {
    run.stdout.clone()
}

fn stderr(run: &support::Run) -> String {
    run.stderr.clone()
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

#[test]
fn list_shows_the_builtins() {
    let cache = tempfile::tempdir().unwrap();
    let out = canary(&["policy", "list"], cache.path());
    assert!(out.code == Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for name in [
        "builtin:progressive",
        "builtin:business-hours",
        "builtin:all-at-once",
    ] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.starts_with("MODULE"), "{text}");
}

#[test]
fn inspect_json_has_the_contract() {
    let cache = tempfile::tempdir().unwrap();
    let out = canary(
        &["policy", "inspect", "builtin:progressive", "-o", "json"],
        cache.path(),
    );
    assert!(out.code == Some(0), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(info["name"], "progressive");
    assert_eq!(info["abi"], 1);
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    assert!(info["size"].as_u64().unwrap() > 1000);
    assert!(info["configSchema"]["properties"]["steps"].is_object());
    let exports: Vec<_> = info["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(exports.contains(&"canary_decide"), "{exports:?}");
}

#[cfg(unix)]
#[test]
fn a_cache_other_users_can_write_is_refused_with_one_warning() {
    use std::os::unix::fs::PermissionsExt;

    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = canary(&["policy", "inspect", "builtin:progressive"], cache.path());
    assert_eq!(out.code, Some(0), "{}", stderr(&out));
    let dir = cache.path().display();
    assert_eq!(
        stderr(&out),
        format!(
            "warning: policy cache {dir}: bad permissions: mode 0777 lets group or others write \
             it (chmod 700 {dir} to use it); compiling policies without the cache\n"
        )
    );
    assert!(stdout(&out).contains("progressive"), "{}", stdout(&out));
    // Nothing was written to (or read from) the refused directory.
    let entries = std::fs::read_dir(cache.path().join("modules"))
        .unwrap()
        .count();
    assert_eq!(entries, 0);
}

#[test]
fn inspect_of_a_wasi_module_names_the_import() {
    let cache = tempfile::tempdir().unwrap();
    let module = repo("plugin/tests/fixtures/hostile/wasi-import.wat");
    let out = canary(
        &["policy", "inspect", module.to_str().unwrap()],
        cache.path(),
    );
    assert_eq!(out.code, Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: policy wasi-import@sha256:"),
        "{err}"
    );
    assert!(err.contains("`wasi_snapshot_preview1.fd_write`"), "{err}");
}

#[test]
fn test_passes_on_the_progressive_fixtures() {
    let cache = tempfile::tempdir().unwrap();
    let fixtures = repo("policies/progressive/fixtures");
    let out = canary(
        &[
            "policy",
            "test",
            "builtin:progressive",
            "--fixtures",
            fixtures.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(out.code == Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("13 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn test_prints_a_diff_and_exits_1_on_mismatch() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo("policies/progressive/fixtures");
    for case in ["01-start-testers", "04-abort"] {
        for suffix in ["input.json", "expected.json"] {
            let name = format!("{case}.{suffix}");
            std::fs::copy(fixtures.join(&name), dir.path().join(&name)).unwrap();
        }
    }
    let expected = dir.path().join("04-abort.expected.json");
    let text = std::fs::read_to_string(&expected).unwrap();
    std::fs::write(&expected, text.replace("\"rollback\",", "\"hold\",")).unwrap();
    let out = canary(
        &[
            "policy",
            "test",
            "builtin:progressive",
            "--fixtures",
            dir.path().to_str().unwrap(),
        ],
        cache.path(),
    );
    assert_eq!(out.code, Some(1));
    let text = stdout(&out);
    assert!(text.contains("ok    01-start-testers"), "{text}");
    assert!(text.contains("FAIL  04-abort"), "{text}");
    assert!(text.contains("-   \"action\": \"hold\","), "{text}");
    assert!(text.contains("+   \"action\": \"rollback\","), "{text}");
    assert!(
        stderr(&out).contains("1 of 2 fixture(s) failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn new_scaffolds_a_policy_crate() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("my-policy");
    let sdk = repo("policy-sdk");
    let out = canary(
        &[
            "policy",
            "new",
            "my-policy",
            "--dir",
            target.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(out.code == Some(0), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(target.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("policy-sdk = { path = "), "{manifest}");
    let lib = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
    assert!(lib.contains("name: \"my-policy\""), "{lib}");
    // Refuses to overwrite, and refuses bad names.
    let again = canary(
        &[
            "policy",
            "new",
            "my-policy",
            "--dir",
            target.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert_eq!(again.code, Some(1));
    let bad = canary(&["policy", "new", "My_Policy"], cache.path());
    assert_eq!(bad.code, Some(1));
    assert!(stderr(&bad).contains("DNS-1123"), "{}", stderr(&bad));
}

/// Builds the scaffold and runs its native tests with the ambient cargo (slow; needs the crates
/// the SDK uses in the local registry): `cargo test -p kubectl-canary --test policy_cli -- --ignored`.
#[test]
#[ignore = "runs cargo on the scaffolded crate (tens of seconds)"]
fn new_scaffold_builds_and_its_tests_pass() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("my-policy");
    let sdk = repo("policy-sdk");
    let out = canary(
        &[
            "policy",
            "new",
            "my-policy",
            "--dir",
            target.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(out.code == Some(0), "{}", stderr(&out));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = Command::new(cargo)
        .args(["test", "--offline", "--quiet"])
        .current_dir(&target)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}
