//! A policy's `config` is judged by the policy: its `config_schema`, then its
//! `canary_validate_config`, at `lint`, `plan` and `render` (and `start`, through the same
//! load), with one line per problem naming the module, the field and the rule. The host has no
//! built-in's rules of its own.

mod support;

use std::path::Path;

use support::{canary, write};

/// A two-service release on `module` with `config` (YAML lines under `config:`, or none).
fn spec(dir: &Path, module: &str, config: &str) -> String {
    let config = if config.is_empty() {
        String::new()
    } else {
        format!("    config:\n{config}")
    };
    let text = format!(
        "apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {{name: shop-v2, namespace: shop}}
spec:
  services:
    - name: frontend
      entry: true
      stable: {{version: v1}}
      canary: {{version: v2}}
    - name: backend
      stable: {{version: v1}}
      canary: {{version: v2}}
  policy:
    module: {module}
{config}"
    );
    write(dir, "release.yaml", &text)
        .to_str()
        .unwrap()
        .to_string()
}

/// The stderr of a refused `render`, `plan` and `lint --local` (all three must agree), exit 1.
fn refused(file: &str) -> String {
    let render = canary(["render", "-f", file]).code(1);
    let plan = canary(["plan", "-f", file]).code(1);
    assert_eq!(render.stderr, plan.stderr);
    let lint = canary(["lint", "--local", "-f", file]).code(1);
    assert_eq!(
        lint.stderr,
        render
            .stderr
            .replacen("error: ", &format!("error: {file}: "), 1)
    );
    assert_eq!(render.stdout, "");
    render.stderr
}

/// `policy <name>@sha256:<12>` of a module, as error messages name it.
fn id(module: &str) -> String {
    let inspect = canary(["policy", "inspect", module, "-o", "json"])
        .code(0)
        .json();
    format!(
        "{}@sha256:{}",
        inspect["name"].as_str().unwrap(),
        &inspect["sha256"].as_str().unwrap()[..12]
    )
}

#[test]
fn all_at_once_reads_no_config_and_says_so_in_its_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let file = spec(
        dir.path(),
        "builtin:all-at-once",
        "      steps: [{weight: 30}]\n",
    );
    assert_eq!(
        refused(&file),
        format!(
            "error: policy {}: spec.policy.config is invalid (1 problem):\n  spec.policy.config: \
             Additional properties are not allowed ('steps' was unexpected) (config_schema: \
             \"additionalProperties\": false)\n",
            id("builtin:all-at-once")
        )
    );
}

#[test]
fn all_at_once_routes_every_service_of_a_release() {
    let dir = tempfile::tempdir().unwrap();
    let file = spec(dir.path(), "builtin:all-at-once", "");
    let plan = canary(["plan", "-f", &file, "-o", "json"]).code(0).json();
    let stage = &plan["stages"][0];
    assert_eq!(stage["action"], "complete", "{plan}");
    for service in ["frontend", "backend"] {
        assert_eq!(
            stage["services"][service][0]["destinations"],
            serde_json::json!([{"subset": "v2", "percent": 100.0}]),
            "{service}: {plan}"
        );
    }
}

#[test]
fn progressive_problems_come_from_its_schema_then_its_validator() {
    let dir = tempfile::tempdir().unwrap();
    let progressive = id("builtin:progressive");
    // The schema first: every problem it sees, one line each, quoting its rule.
    let file = spec(
        dir.path(),
        "builtin:progressive",
        "      steps: [10, 150]\n      chain: yes\n      step: [1]\n",
    );
    assert_eq!(
        refused(&file),
        format!(
            "error: policy {progressive}: spec.policy.config is invalid (3 problems):\n  \
             spec.policy.config: Additional properties are not allowed ('step' was unexpected) \
             (config_schema: \"additionalProperties\": false)\n  \
             spec.policy.config.chain: \"yes\" is not of type \"boolean\" (config_schema: \"type\": \"boolean\")\n  \
             spec.policy.config.steps[1]: 150 is greater than the maximum of 100 (config_schema: \"maximum\": 100)\n"
        )
    );
    // What a schema cannot say, the module's canary_validate_config does.
    let file = spec(
        dir.path(),
        "builtin:progressive",
        "      steps: [50, 20]\n      testers: {cookie: a=b, header: {name: canary, exact: x}}\n",
    );
    assert_eq!(
        refused(&file),
        format!(
            "error: policy {progressive}: spec.policy.config is invalid (2 problems):\n  \
             spec.policy.config.steps[1]: weight 20 must be greater than the previous step (50)\n  \
             spec.policy.config.testers: set either cookie or header, not both\n"
        )
    );
    // A tester regex is RE2, as istiod reads it.
    let file = spec(
        dir.path(),
        "builtin:progressive",
        "      testers: {header: {name: x-user, regex: \"a(?=b)\"}}\n",
    );
    assert_eq!(
        refused(&file),
        format!(
            "error: policy {progressive}: spec.policy.config is invalid (1 problem):\n  \
             spec.policy.config.testers.header.regex: invalid regex \"a(?=b)\": look-around is \
             not supported by RE2 (config_schema: \"format\": \"re2\")\n"
        )
    );
}

/// One duration grammar: `pause: 5min` is refused by validation in the words the policy would
/// hold with; `pause: "300"`, `pause: 300` and `pause: 5m` are all accepted.
#[test]
fn pause_is_read_by_the_sdk_grammar_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let file = spec(dir.path(), "builtin:progressive", "      pause: 5min\n");
    assert_eq!(
        refused(&file),
        format!(
            "error: policy {}: spec.policy.config is invalid (1 problem):\n  \
             spec.policy.config.pause: invalid duration \"5min\": unknown unit \"min\" (units are \
             ms, s, m, h and d, e.g. 30s, 5m, 1h30m; a bare number is seconds) (config_schema: \
             \"format\": \"duration\")\n",
            id("builtin:progressive")
        )
    );
    for pause in ["\"300\"", "300", "5m"] {
        let file = spec(
            dir.path(),
            "builtin:progressive",
            &format!("      pause: {pause}\n"),
        );
        let plan = canary(["plan", "-f", &file, "-o", "json"]).code(0).json();
        assert_eq!(plan["stages"][0]["action"], "advance", "{pause}: {plan}");
        canary(["render", "-f", &file]).code(0);
    }
}

/// A user's policy with a config shape of its own (steps as objects), and a validator export
/// whose problems are printed with their paths.
#[test]
fn a_custom_policy_brings_its_own_rules() {
    let dir = tempfile::tempdir().unwrap();
    let schema = r#"{"type":"object","properties":{"steps":{"type":"array","items":{"type":"object","properties":{"weight":{"type":"integer","maximum":100}},"required":["weight"]}}}}"#;
    let answer = r#"{"valid":false,"problems":[{"path":"steps[0].weight","message":"30 is not a multiple of 25"},{"path":"","message":"and I never accept anything"}]}"#;
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (@custom "canary.metadata" "{{\"name\":\"custom\",\"abi\":1,\"config_schema\":{schema}}}")
  (func (export "canary_abi_version") (result i32) (i32.const 1))
  (func (export "canary_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (data (i32.const 1024) "{answer}")
  (func (export "canary_decide") (param i32 i32) (result i64) (unreachable))
  (func (export "canary_validate_config") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {len}))))"#,
        schema = schema.replace('"', "\\\""),
        answer = answer.replace('"', "\\\""),
        len = answer.len()
    );
    let module = write(dir.path(), "custom.wat", &wat);
    let module = module.to_str().unwrap();
    // The schema refuses what does not fit its shape...
    let file = spec(dir.path(), module, "      steps: [{weight: 300}]\n");
    assert_eq!(
        refused(&file),
        format!(
            "error: policy {}: spec.policy.config is invalid (1 problem):\n  \
             spec.policy.config.steps[0].weight: 300 is greater than the maximum of 100 \
             (config_schema: \"maximum\": 100)\n",
            id(module)
        )
    );
    // ...and what fits goes to the module's own validator, whose words are printed.
    let file = spec(dir.path(), module, "      steps: [{weight: 30}]\n");
    assert_eq!(
        refused(&file),
        format!(
            "error: policy {}: spec.policy.config is invalid (2 problems):\n  \
             spec.policy.config.steps[0].weight: 30 is not a multiple of 25\n  \
             spec.policy.config: and I never accept anything\n",
            id(module)
        )
    );
}

/// A module over the compile budget is refused before cranelift runs, with the limit named and
/// the value found: here one function of 2 MiB of `nop`s (a 26 MB module took 21 s and 2.45 GB
/// to compile before the budget).
#[test]
fn a_module_over_the_compile_budget_is_refused_before_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let body = "nop ".repeat(2 * 1024 * 1024);
    let text = format!(
        r#"(module (memory (export "memory") 1)
  (func (export "canary_abi_version") (result i32) (i32.const 1))
  (func (export "canary_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "canary_decide") (param i32 i32) (result i64) {body} (i64.const 0)))"#
    );
    let binary = wat::parse_str(&text).unwrap();
    let module = dir.path().join("big.wasm");
    std::fs::write(&module, &binary).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&binary))
    };
    let run = canary(["policy", "inspect", module.to_str().unwrap()]).code(1);
    assert_eq!(
        run.one_line_error(),
        format!(
            "error: policy big@sha256:{}: module exceeds the compile budget: defined function \
             2's body (bytes) is 2097156, more than the limit of 524288 (checked before \
             compiling; a policy this large is refused)",
            &sha[..12]
        )
    );
}
