//! Shared helpers of the policy tests.
#![allow(dead_code)]

use std::path::PathBuf;

use kubectl_canary::policy::{Limits, ModuleRef, PolicyHost};
use policy_sdk::testing::{InputBuilder, ReleaseBuilder};
use policy_sdk::{Event, Input};

/// A fixture file under `plugin/tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A host without a cache.
pub fn host() -> PolicyHost {
    PolicyHost::new(None).expect("the policy host starts")
}

/// A one-service start input (`web`, v1 → v2).
pub fn web_input() -> Input {
    let release = ReleaseBuilder::new("web-v2")
        .service("web", "v1", "v2")
        .build();
    InputBuilder::new(release).event(Event::Start).build()
}

/// The host still makes a good decision (after a hostile one).
pub fn assert_healthy(host: &PolicyHost) {
    let policy = host
        .load(&ModuleRef::parse("builtin:progressive"), None)
        .expect("progressive loads");
    let decision = policy
        .decide(&web_input(), &Limits::default())
        .expect("progressive decides");
    assert_eq!(
        policy_sdk::testing::canary_weight(&decision, "web"),
        Some(10)
    );
}
