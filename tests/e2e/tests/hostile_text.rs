//! A policy's text is shown, never obeyed: a stage name and reason full of terminal controls
//! (clear screen, window title, BEL, CR, a right-to-left override) reach `start`, `get`,
//! `history` and `list` escaped, with NO_COLOR and without a terminal, while `-o json` keeps the
//! exact strings.

use canary_e2e::TestCluster;

/// What the hostile policy calls its stage, and why it advances (the strings as decoded).
const STAGE: &str = "\u{1b}[2J50%\u{7}";
const REASON: &str = "ok\u{1b}]0;pwned\u{7}\r\u{202e}evil";
/// The same, as the plugin must print them.
const STAGE_SHOWN: &str = "\\u{1b}[2J50%\\u{7}";
const REASON_SHOWN: &str = "ok\\u{1b}]0;pwned\\u{7}\\u{d}\\u{202e}evil";

/// A WAT module answering every decision with a 50/50 stage of `reviews` whose name and reason
/// carry the hostile text (as JSON escapes, which the host decodes).
fn hostile_policy() -> String {
    let decision = r#"{"action":"advance","stage":{"index":0,"name":"\u001b[2J50%\u0007","routes":{"reviews":[{"to":[{"subset":"stable","weight":50},{"subset":"canary","weight":50}]}]}},"reason":"ok\u001b]0;pwned\u0007\r\u202eevil"}"#;
    let escaped = decision.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "canary_abi_version") (result i32) (i32.const 1))
  (func (export "canary_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (data (i32.const 1024) "{escaped}")
  (func (export "canary_decide") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {len}))))"#,
        len = decision.len()
    )
}

/// No raw control or bidi character anywhere in what a person would see.
#[track_caller]
fn assert_clean(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| (c.is_control() && *c != '\n') || *c == '\u{202e}')
        .collect();
    assert!(raw.is_empty(), "{what} printed raw {raw:?}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_text_is_escaped_for_people_and_exact_for_machines() {
    let Some(c) = TestCluster::start_light("hostile_text").await else {
        return;
    };
    let c = TestCluster {
        kubectl: c.kubectl.clone().env("NO_COLOR", "1"),
        ..c
    };
    let (example, _) = c.example("bookinfo-reviews.yaml");
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("hostile.wat");
    std::fs::write(&module, hostile_policy()).unwrap();
    let spec = std::fs::read_to_string(&example)
        .unwrap()
        .replace(
            "module: builtin:progressive",
            &format!("module: {}", module.display()),
        )
        .replace("    config:\n      steps: [50, 100]\n", "");
    let spec_path = dir.path().join("release.yaml");
    std::fs::write(&spec_path, spec).unwrap();

    let start = c
        .canary(["start", "-f", spec_path.to_str().unwrap()])
        .success();
    assert_clean("start", &start.stdout);
    let summary = start.stdout.lines().next().unwrap_or("");
    assert_eq!(
        summary,
        format!(
            "release reviews-v3 advance → stage 0 ({STAGE_SHOWN}), Progressing: {REASON_SHOWN}"
        )
    );

    let get = c.canary(["get", "reviews-v3", "-n", "default"]).success();
    assert_clean("get", &get.stdout);
    assert!(
        get.stdout
            .lines()
            .next()
            .unwrap_or("")
            .contains(&format!("stage 0 ({STAGE_SHOWN})")),
        "{}",
        get.stdout
    );
    let last = get
        .stdout
        .lines()
        .find(|l| l.starts_with("last decision: "))
        .unwrap_or_default();
    assert!(last.starts_with("last decision: advance at "), "{last}");
    assert!(last.ends_with(&format!(": {REASON_SHOWN}")), "{last}");

    let history = c
        .canary(["history", "reviews-v3", "-n", "default"])
        .success();
    assert_clean("history", &history.stdout);
    let row = history.stdout.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("0 "), "{}", history.stdout);
    assert!(
        row.ends_with(&format!("   advance   0       {REASON_SHOWN}")),
        "{row:?}"
    );

    let list = c.canary(["list", "-n", "default"]).success();
    assert_clean("list", &list.stdout);
    let row = list.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with(&format!(
            "reviews-v3   Progressing   0 ({STAGE_SHOWN})   1 "
        )),
        "{row:?}"
    );

    // Machines get the exact strings: JSON escapes them, nothing is lost.
    let json = c
        .canary(["history", "reviews-v3", "-n", "default", "-o", "json"])
        .success()
        .json();
    assert_eq!(json[0]["reason"], REASON, "{json}");
    let json = c
        .canary(["list", "-n", "default", "-o", "json"])
        .success()
        .json();
    assert_eq!(json[0]["stage"]["name"], STAGE, "{json}");
}
