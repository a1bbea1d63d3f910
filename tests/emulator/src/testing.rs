//! The rule every test crate of the workspace follows when a tool or fixture it needs is
//! absent: skip with a message locally, fail under `CI=true`, where everything is installed
//! and a skipped test would be a test that cannot fail.

/// True when running in CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `found`, or (when it is `None`) a skip: a message locally, a failure under `CI=true`.
#[track_caller]
pub fn require<T>(found: Option<T>, what: &str) -> Option<T> {
    if found.is_none() {
        assert!(
            !in_ci(),
            "{what} is absent, and CI=true: install it (see .ci/run) instead of skipping"
        );
        eprintln!("skipping: {what} is absent");
    }
    found
}
