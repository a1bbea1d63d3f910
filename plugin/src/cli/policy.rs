//! `kubectl canary policy ...`: list the built-ins, inspect a module, test it against fixtures,
//! scaffold a new policy crate.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::flags::{CacheArgs, RegistryAuthArgs};
use super::OutputFormat;
use crate::policy::{Limits, LoadedPolicy, ModuleRef, PolicyHost, BUILTINS};
use crate::ui::table::Table;
use crate::ui::text::{safe, Safe};

/// Arguments of `policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Policy cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The policy subcommand.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List the built-in policies with their metadata.
    List(ListArgs),
    /// Show a module's name, version, ABI, exports, imports, size, sha256 and config schema.
    Inspect(InspectArgs),
    /// Run a module on fixtures (<case>.input.json + <case>.expected.json); exit 1 on a mismatch.
    Test(TestArgs),
    /// Push a module to an OCI registry as a wasm artefact; prints the manifest digest.
    Push(PushArgs),
    /// Pull a module from an OCI registry into a file (and the local store).
    Pull(PullArgs),
    /// Scaffold a policy crate on policy-sdk (builds with `cargo build --release --target
    /// wasm32-unknown-unknown`, tests natively with `cargo test`).
    New(NewArgs),
}

/// Arguments of `policy list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print as JSON or YAML.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// Arguments of `policy inspect`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl canary policy inspect builtin:progressive\n  \
kubectl canary policy inspect ./target/wasm32-unknown-unknown/release/my_policy.wasm -o json"
)]
pub struct InspectArgs {
    /// `builtin:<name>`, a path to a .wasm/.wat file, or oci://registry/repository:tag|@sha256:...
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// Print as JSON or YAML.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// Arguments of `policy test`.
#[derive(Debug, Args)]
#[command(
    after_help = "A fixture directory holds pairs <case>.input.json (a policy input, ABI v1) \
and <case>.expected.json (the decision expected, or {\"error\": \"<text the error contains>\"}).\n\n\
Example:\n  kubectl canary policy test builtin:progressive --fixtures policies/progressive/fixtures"
)]
pub struct TestArgs {
    /// `builtin:<name>`, a path to a .wasm/.wat file, or oci://registry/repository:tag|@sha256:...
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// Directory of fixtures.
    #[arg(long, value_name = "DIR")]
    pub fixtures: PathBuf,
}

/// Arguments of `policy push`.
#[derive(Debug, Args)]
#[command(
    after_help = "The artefact: an OCI image manifest with config application/vnd.wasm.config.v0+json \
and one layer application/vnd.wasm.content.layer.v1+wasm (as Kubewarden's). A spec then names it \
oci://REGISTRY/REPOSITORY@sha256:<printed digest>, or by tag.\n\n\
Example:\n  kubectl canary policy push ./my_policy.wasm oci://registry.example.com/policies/mine:1.0.0"
)]
pub struct PushArgs {
    /// The module (.wasm); it is loaded and checked before anything is pushed.
    #[arg(value_name = "MODULE")]
    pub module: PathBuf,
    /// Where to: oci://registry/repository:tag.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
    /// Registry credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
}

/// Arguments of `policy pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// oci://registry/repository:tag or oci://registry/repository@sha256:<digest>.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
    /// Where to write the module (default: <last path segment of the repository>.wasm).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Registry credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
}

/// Arguments of `policy new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Policy (and crate) name: lower-case letters, digits and '-'.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Directory to create (default: ./<name>).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Depend on policy-sdk at this path instead of the crates.io release.
    #[arg(long, value_name = "PATH")]
    pub sdk_path: Option<PathBuf>,
}

/// Run a `policy` subcommand.
pub fn run(args: PolicyArgs) -> anyhow::Result<()> {
    let cache_dir = args.cache.cache_dir;
    match args.command {
        PolicyCommand::List(list) => run_list(list, cache_dir),
        PolicyCommand::Inspect(inspect) => run_inspect(inspect, cache_dir),
        PolicyCommand::Test(test) => run_test(test, cache_dir),
        PolicyCommand::Push(push) => run_push(push, cache_dir),
        PolicyCommand::Pull(pull) => run_pull(pull, cache_dir),
        PolicyCommand::New(new) => run_new(new),
    }
}

fn run_push(args: PushArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    if !args.reference.starts_with("oci://") {
        bail!(
            "{}: push needs an oci://registry/repository:tag reference",
            args.reference
        );
    }
    let credentials = args.auth.credentials()?;
    let host = super::policy_decider::host(cache_dir.as_deref())?;
    let bytes = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    if !bytes.starts_with(b"\0asm") {
        bail!(
            "{}: push takes a binary .wasm module (compile WebAssembly text first)",
            args.module.display()
        );
    }
    // A module that would not load here is not worth sharing.
    let policy = host.load_bytes(&args.module.display().to_string(), &bytes)?;
    let digest = crate::policy::oci::push(&bytes, &args.reference, &credentials)
        .map_err(|cause| crate::policy::PolicyError::new(policy.id(), cause))?;
    println!("{digest}");
    Ok(())
}

fn run_pull(args: PullArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    if !args.reference.starts_with("oci://") {
        bail!(
            "{}: pull needs an oci://registry/repository:tag or @sha256: reference",
            args.reference
        );
    }
    let credentials = args.auth.credentials()?;
    let host = super::policy_decider::host(cache_dir.as_deref())?.with_credentials(credentials);
    let pulled = host.pull(&args.reference)?;
    let output = args.output.unwrap_or_else(|| {
        let path = args.reference.split('@').next().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        let repository = last.split(':').next().unwrap_or("module");
        PathBuf::from(format!("{repository}.wasm"))
    });
    std::fs::write(&output, &pulled.bytes)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("{} {}", pulled.manifest_digest, output.display());
    Ok(())
}

fn load(host: &PolicyHost, module: &str) -> anyhow::Result<LoadedPolicy> {
    Ok(host.load(&ModuleRef::parse(module), None)?)
}

fn run_list(args: ListArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let host = super::policy_decider::host(cache_dir.as_deref())?;
    let mut rows = Vec::new();
    for builtin in BUILTINS {
        let policy = load(&host, &format!("builtin:{}", builtin.name))?;
        rows.push(describe(&policy));
    }
    let mut out = std::io::stdout().lock();
    if let Some(format) = args.output {
        return super::write_value(&mut out, &Value::Array(rows), format);
    }
    let mut table = Table::new(&["MODULE", "VERSION", "SHA256", "DESCRIPTION"]);
    for row in &rows {
        table.row(vec![
            format!("builtin:{}", text(&row["name"])),
            text(&row["version"]),
            text(&row["sha256"])[..12].to_string(),
            text(&row["description"]),
        ]);
    }
    write!(out, "{}", table.render())?;
    Ok(())
}

/// A string of the module's metadata, for a terminal ([`safe`]: the module wrote it).
fn text(value: &Value) -> String {
    safe(value.as_str().unwrap_or("")).into_owned()
}

/// A module's description, as `inspect` and `list` print it.
fn describe(policy: &LoadedPolicy) -> Value {
    let metadata = policy.metadata();
    json!({
        "module": policy.module_ref().to_string(),
        "name": policy.name(),
        "version": metadata.map(|m| m.version.clone()).unwrap_or_default(),
        "description": metadata.map(|m| m.description.clone()).unwrap_or_default(),
        "abi": metadata.and_then(|m| m.abi).unwrap_or(policy_sdk::ABI_VERSION),
        "size": policy.size(),
        "sha256": policy.sha256(),
        "exports": policy.exports(),
        "imports": policy.imports(),
        "configSchema": metadata.map(|m| m.config_schema.clone()).unwrap_or(Value::Null),
    })
}

fn run_inspect(args: InspectArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let host = super::policy_decider::host(cache_dir.as_deref())?;
    let policy = load(&host, &args.module)?;
    let info = describe(&policy);
    let mut out = std::io::stdout().lock();
    if let Some(format) = args.output {
        return super::write_value(&mut out, &info, format);
    }
    writeln!(out, "Module:       {}", text(&info["module"]))?;
    writeln!(out, "Name:         {}", Safe(policy.name()))?;
    writeln!(out, "Version:      {}", text(&info["version"]))?;
    writeln!(out, "Description:  {}", text(&info["description"]))?;
    writeln!(out, "ABI:          {}", info["abi"])?;
    writeln!(out, "Size:         {} bytes", policy.size())?;
    writeln!(out, "SHA256:       sha256:{}", policy.sha256())?;
    if policy.metadata().is_none() {
        writeln!(out, "Metadata:     none (no canary.metadata section)")?;
    }
    writeln!(out, "Exports:")?;
    for item in policy.exports() {
        writeln!(out, "  {:<20} {}", Safe(&item.name), item.ty)?;
    }
    writeln!(out, "Imports:")?;
    if policy.imports().is_empty() {
        writeln!(out, "  (none)")?;
    }
    for item in policy.imports() {
        writeln!(out, "  {:<20} {}", Safe(&item.name), item.ty)?;
    }
    writeln!(out, "Config schema:")?;
    let schema = serde_json::to_string_pretty(&info["configSchema"])?;
    for line in schema.lines() {
        writeln!(out, "  {}", Safe(line))?;
    }
    Ok(())
}

fn run_test(args: TestArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let host = super::policy_decider::host(cache_dir.as_deref())?;
    let policy = load(&host, &args.module)?;
    let cases = fixture_cases(&args.fixtures)?;
    if cases.is_empty() {
        bail!(
            "no fixtures in {}: expected <case>.input.json files next to <case>.expected.json",
            args.fixtures.display()
        );
    }
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for case in &cases {
        match run_case(&policy, &args.fixtures, case) {
            Ok(()) => writeln!(out, "ok    {case}")?,
            Err(report) => {
                failed += 1;
                writeln!(out, "FAIL  {case}")?;
                for line in report.lines() {
                    writeln!(out, "      {}", Safe(line))?;
                }
            }
        }
    }
    writeln!(out, "{} passed, {failed} failed", cases.len() - failed)?;
    if failed > 0 {
        bail!(
            "{failed} of {} fixture(s) failed for {}",
            cases.len(),
            policy.id()
        );
    }
    Ok(())
}

fn fixture_cases(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the fixtures directory {}", dir.display()))?;
    let mut cases = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(case) = name.strip_suffix(".input.json") {
            cases.push(case.to_string());
        }
    }
    cases.sort();
    Ok(cases)
}

/// One case: `Err` holds the report (a diff, or why the case could not run).
fn run_case(policy: &LoadedPolicy, dir: &Path, case: &str) -> Result<(), String> {
    let read_json = |suffix: &str| -> Result<Value, String> {
        let path = dir.join(format!("{case}.{suffix}"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: invalid JSON: {e}", path.display()))
    };
    let input_value = read_json("input.json")?;
    let expected = read_json("expected.json")?;
    let input: policy_sdk::Input = serde_json::from_value(input_value)
        .map_err(|e| format!("{case}.input.json is not a policy input: {e}"))?;
    let actual = match policy.decide(&input, &Limits::default()) {
        Ok(decision) => serde_json::to_value(&decision).map_err(|e| e.to_string())?,
        Err(err) => json!({ "error": err.to_string() }),
    };
    if let (Some(want), Some(got)) = (
        expected.get("error").and_then(Value::as_str),
        actual.get("error").and_then(Value::as_str),
    ) {
        return if got.contains(want) {
            Ok(())
        } else {
            Err(format!(
                "expected an error containing {want:?}, got {got:?}"
            ))
        };
    }
    if actual == expected {
        return Ok(());
    }
    let expected = serde_json::to_string_pretty(&expected).unwrap_or_default();
    let actual = serde_json::to_string_pretty(&actual).unwrap_or_default();
    Err(diff(&expected, &actual))
}

/// A line diff (`-` expected, `+` actual) from a longest common subsequence.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::from("--- expected\n+++ actual\n");
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

fn run_new(args: NewArgs) -> anyhow::Result<()> {
    let name = &args.name;
    if let Err(err) = policy_sdk::rules::check_dns1123_label(name) {
        bail!("policy name: {err}");
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or --dir",
            dir.display()
        );
    }
    let sdk = match &args.sdk_path {
        Some(path) => {
            let path = std::fs::canonicalize(path)
                .with_context(|| format!("--sdk-path {}", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!("--sdk-path {}: no Cargo.toml there", path.display());
            }
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    for (file, content) in scaffold::files(name, &sdk) {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "created policy {name} in {}", dir.display())?;
    writeln!(out, "  cd {} && cargo test", dir.display())?;
    writeln!(
        out,
        "  cargo build --release --target wasm32-unknown-unknown"
    )?;
    writeln!(
        out,
        "  kubectl canary policy inspect target/wasm32-unknown-unknown/release/{}.wasm",
        name.replace('-', "_")
    )?;
    Ok(())
}

mod scaffold {
    //! The files of a new policy crate.

    pub(super) fn files(name: &str, sdk: &str) -> Vec<(&'static str, String)> {
        let manifest = format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# cdylib: the wasm module; rlib: native tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
policy-sdk = {sdk}
serde_json = "1"

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A standalone crate, even when created inside another workspace.
[workspace]
"#
        );
        let lib = format!(
            r##"//! `{name}`: a kubectl-canary policy.
//!
//! Build: `cargo build --release --target wasm32-unknown-unknown`; test: `cargo test`.

use policy_sdk::config::{{self, ConfigProblem}};
use policy_sdk::stages::{{self, StagePlan, Testers}};
use policy_sdk::{{log, Decision, Event, Input, Role, Stage}};
use serde_json::Value;

// Every decision runs in a fresh instance, so a bump allocator is the fastest correct choice.
// Remove these lines to keep Rust's default (dlmalloc) if a decision allocates and frees a lot.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: policy_sdk::alloc::DecisionAllocator = policy_sdk::alloc::DecisionAllocator::new();

policy_sdk::export_policy!(
    decide: decide,
    validate_config: validate_config,
    name: "{name}",
    version: "0.1.0",
    description: "A weight ramp: 10%, 50%, 100%",
    config_schema: r#"{{"type":"object","properties":{{"testers":{{"type":"object"}}}}}}"#,
);

const STEPS: [u32; 3] = [10, 50, 100];

/// Checks a release's `config` before anything runs: the host calls it (as the module's
/// `canary_validate_config`) once the `config_schema` above accepts the config, at `lint`,
/// `plan`, `render` and `start`. One problem per mistake, its path relative to the config.
pub fn validate_config(config: &Value) -> Vec<ConfigProblem> {{
    let mut problems = Vec::new();
    if let Some(testers) = config.get("testers").filter(|t| !t.is_null()) {{
        config::check_testers("testers", testers, &mut problems);
    }}
    problems
}}

/// The decision for `input`.
pub fn decide(input: &Input) -> Decision {{
    let testers = match Testers::from_config(input.config_field("testers")) {{
        Ok(testers) => testers,
        Err(err) => return Decision::hold(err),
    }};
    let weights = stages::ramp_weights(&STEPS, testers.is_some());
    let last = weights.len() - 1;
    let index = match input.event {{
        Event::Start => 0,
        Event::Step | Event::Tick => (input.state.stage as usize + 1).min(last),
        Event::Promote => last,
        Event::Abort | Event::SetWeight => {{
            let stage = Stage {{ index: input.state.stage, name: "rollback".into(), routes: stages::all_to(&input.release, Role::Stable) }};
            return Decision::rollback(stage, "all traffic back to stable");
        }}
    }};
    let plan = StagePlan {{ canary_weight: weights[index], testers: testers.clone(), chain: true }};
    let stage = Stage {{
        index: index as u32,
        name: stages::stage_name(weights[index], testers.is_some()),
        routes: stages::routes(&input.release, &plan),
    }};
    log::info(&format!("stage {{}}: {{}}", index, stage.name));
    if index == last {{
        Decision::complete(stage, "all traffic to the canary")
    }} else {{
        Decision::advance(stage, format!("stage {{}}", index))
    }}
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use policy_sdk::testing::{{canary_weight, run, InputBuilder, ReleaseBuilder}};

    #[test]
    fn validates_its_config() {{
        let bad = serde_json::json!({{"testers": {{"cookie": "no-equals-sign"}}}});
        let answer = policy_sdk::testing::validate_config(validate_config, &bad);
        assert!(!answer.valid);
        assert_eq!(answer.problems[0].path, "testers.cookie");
        let good = serde_json::json!({{"testers": {{"cookie": "user=tester"}}}});
        assert!(policy_sdk::testing::validate_config(validate_config, &good).valid);
    }}

    #[test]
    fn ramps_ten_fifty_hundred() {{
        let release = ReleaseBuilder::new("demo").service("web", "v1", "v2").build();
        let start = run(decide, &InputBuilder::new(release.clone()).build());
        assert_eq!(canary_weight(&start, "web"), Some(10));
        let step = run(decide, &InputBuilder::new(release.clone()).event(Event::Step).stage(0, "2026-11-22T10:00:00Z").build());
        assert_eq!(canary_weight(&step, "web"), Some(50));
        let done = run(decide, &InputBuilder::new(release).event(Event::Step).stage(1, "2026-11-22T10:00:00Z").build());
        assert_eq!(done.action, policy_sdk::Action::Complete);
    }}
}}
"##
        );
        let readme = format!(
            "# {name}\n\nA kubectl-canary policy (ABI v1) built on `policy-sdk`.\n\n\
```sh\ncargo test                                               # native tests\n\
cargo build --release --target wasm32-unknown-unknown     # the module\n\
kubectl canary policy inspect target/wasm32-unknown-unknown/release/{}.wasm\n```\n\n\
Use it in a release spec with `policy: {{module: ./{}.wasm}}`.\n",
            name.replace('-', "_"),
            name.replace('-', "_")
        );
        vec![
            ("Cargo.toml", manifest),
            ("src/lib.rs", lib),
            ("README.md", readme),
            (".gitignore", "/target\n".to_string()),
        ]
    }
}
