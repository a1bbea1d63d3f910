//! The command line: flags shared by every command, the subcommand list, and the exit-code edge.
//!
//! One file per subcommand; each owns its clap `Args` struct and a `run` function. No business
//! logic lives here: commands call into `spec`, `policy`, `render`, `sim`, `cluster` and `ui`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::exit;
use crate::ui::color::ColorChoice;

mod completion;
mod demo;
mod explain;
pub mod flags;
mod gates;
mod get;
mod init;
mod lint;
mod mtls;
mod plan;
mod policy;
mod policy_decider;
mod propagation;
mod rbac;
mod release;
mod render;
mod runner;
mod version;
mod why;

/// Top-level command line of `kubectl canary`.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-canary",
    bin_name = "kubectl canary",
    version,
    about = "Istio canary releases, stage by stage, decided by sandboxed WebAssembly policies",
    long_about = "Istio canary releases, stage by stage, decided by sandboxed WebAssembly policies.\n\n\
A release spec (YAML) names one or more services, each with a stable and a canary version \
(pods labelled app=<service>,version=<version>). A policy module (built-in or your own .wasm) \
decides every routing stage; kubectl-canary validates the decision, renders Istio \
VirtualServices, DestinationRules and PeerAuthentications, and applies them with server-side \
apply in make-before-break order.\n\n\
Exit codes: 0 success, 1 failure (bad input, refused policy decision, API error), \
2 usage error, 3 the release changed under you (rerun).",
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command, named as kubectl names them.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Namespace of the release and its services (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// How long to wait for one API request before giving up (e.g. 30s, 1m); 0 waits forever.
    #[arg(long, global = true, value_name = "DURATION", default_value = "0")]
    pub request_timeout: String,
    /// When to colour output. NO_COLOR in the environment turns `auto` off.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// Output formats for commands that print Kubernetes objects or machine-readable results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// YAML documents separated by `---`.
    Yaml,
    /// JSON (several objects come as a `v1` `List`).
    Json,
}

/// `--dry-run` values, as in kubectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRun {
    /// Change the cluster.
    #[default]
    None,
    /// Only print what would be sent; contact the cluster for reads only.
    Client,
    /// Send every change with `dryRun=All`: the server validates, nothing is persisted.
    Server,
}

/// Flags of every command that changes the cluster.
#[derive(Debug, Clone, Args)]
pub struct MutationArgs {
    /// Preview instead of applying: `client` prints the objects, `server` has the API server
    /// validate them without persisting. A bare `--dry-run` means `client`.
    #[arg(long, value_enum, default_value_t, num_args = 0..=1, require_equals = true,
          default_missing_value = "client", value_name = "MODE")]
    pub dry_run: DryRun,
    /// Print the applied (or previewed) objects in this format instead of a summary.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Field manager for server-side apply.
    #[command(flatten)]
    pub manager: flags::FieldManagerArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a release from a spec: pre-checks, the canary Deployment if `image` is set,
    /// DestinationRule subsets, then the policy's first stage.
    Start(release::StartArgs),
    /// Ask the policy for one decision and apply it.
    Step(release::ReleaseArgs),
    /// Decide, apply and wait, stage after stage, until the release completes or rolls back.
    Run(release::RunArgs),
    /// Set the canary's share of traffic by hand (recorded; the release pauses until `step`).
    SetWeight(release::SetWeightArgs),
    /// Send all traffic to the canary now.
    Promote(release::ReleaseArgs),
    /// Make the canary the only version: old subset out, old Deployments deleted (`--keep-old`).
    Finalize(release::FinalizeArgs),
    /// Send all traffic back to stable; the canary keeps running.
    Abort(release::ReleaseArgs),
    /// Revert a finalize from the snapshot kept in the release state.
    Undo(release::FinalizeArgs),
    /// Hold a release where it is until `resume` (recorded with the kubeconfig user).
    Pause(gates::PauseArgs),
    /// Let a paused release go on.
    Resume(gates::PauseArgs),
    /// Approve a stage a policy waits on (`approveBefore`), recorded with who and when.
    Approve(gates::ApproveArgs),
    /// Why a decision was taken: its inputs (metrics, gates, time, stage) and reason;
    /// `--replay` reruns it through the recorded module.
    Why(why::WhyArgs),
    /// Show a release as a tree: services, subsets with weights and ready pods, the rules in
    /// force, and the last decision (`--watch` to follow it).
    Get(get::GetArgs),
    /// List the releases in the namespace.
    List(get::ListArgs),
    /// Show the decisions of a release, oldest first.
    History(get::HistoryArgs),
    /// Every stage of a release, offline: the spec's policy runs with a simulated clock and
    /// healthy (or given) metrics; the routing table of each stage, or its objects.
    Plan(plan::PlanArgs),
    /// Print the Istio objects of a release at a stage (default: the baseline), offline.
    Render(render::RenderArgs),
    /// Route simulator: which subset a request (or caller) reaches, and which rule decided.
    Explain(explain::ExplainArgs),
    /// Pre-flight checks: injection, port names, pod labels, subsets, references, conflicting
    /// VirtualServices, mTLS conflicts (live cluster, files, or both).
    Lint(lint::LintArgs),
    /// Strict mutual TLS: `enable` it safely, or see per-service `status`.
    Mtls(mtls::MtlsArgs),
    /// Write a release spec from the live Services and Deployments of a namespace.
    Init(init::InitArgs),
    /// Policies: `list` the built-ins, `inspect` a module, `test` it on fixtures, scaffold a `new` one.
    Policy(policy::PolicyArgs),
    /// Watch a whole release on an embedded emulated cluster: seed 000's voting app, stage by
    /// stage, with routing and simulated traffic.
    Demo(demo::DemoArgs),
    /// Drive the releases handed over with `run --detach`, with leader election (`install`
    /// prints its ServiceAccount, Role, RoleBinding and Deployment).
    Runner(runner::RunnerArgs),
    /// Print the least Role the commands (or, with --runner, the runner) need.
    Rbac(rbac::RbacArgs),
    /// Print shell completion code (bash, zsh, fish, powershell, elvish).
    Completion(completion::CompletionArgs),
    /// Print the plugin's version, policy ABI and build information.
    Version(version::VersionArgs),
}

/// Parse the command line, run the command, print `error: ...` on failure, and return the
/// process exit code. A closed stdout (`| head`) counts as success, as in ripgrep.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    crate::ui::color::install(cli.global.color);
    // A bad flag value is a usage error (exit 2) before anything runs, whichever command it is.
    if let Err(err) =
        crate::cluster::connect::parse_request_timeout(Some(cli.global.request_timeout.as_str()))
    {
        eprintln!("error: {err}");
        return ExitCode::from(exit::USAGE);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = std::io::stdout().flush();
            // Errors quote what policies and API servers said: shown, never obeyed.
            let message = format!("{err:#}");
            eprintln!("error: {}", crate::ui::text::safe_lines(&message));
            exit::code_of(&err)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        Command::Start(args) => block_on(release::start(args, &global)),
        Command::Step(args) => block_on(release::step(args, &global)),
        Command::Run(args) => block_on(release::run(args, &global)),
        Command::SetWeight(args) => block_on(release::set_weight(args, &global)),
        Command::Promote(args) => block_on(release::promote(args, &global)),
        Command::Finalize(args) => block_on(release::finalize(args, &global)),
        Command::Abort(args) => block_on(release::abort(args, &global)),
        Command::Undo(args) => block_on(release::undo(args, &global)),
        Command::Pause(args) => block_on(gates::pause(args, &global)),
        Command::Resume(args) => block_on(gates::resume(args, &global)),
        Command::Approve(args) => block_on(gates::approve(args, &global)),
        Command::Why(args) => block_on(why::run(args, &global)),
        Command::Plan(args) => plan::run(args, &global),
        Command::Demo(args) => block_on(demo::run(args, &global)),
        Command::Completion(args) => completion::run(args),
        Command::Version(args) => version::run(args, &global),
        Command::Lint(args) => block_on(lint::run(args, &global)),
        Command::Mtls(args) => block_on(mtls::run(args, &global)),
        Command::Explain(args) => explain::run(args, &global),
        Command::Render(args) => render::run(args, &global),
        Command::Get(args) => block_on(get::get(args, &global)),
        Command::List(args) => block_on(get::list(args, &global)),
        Command::History(args) => block_on(get::history(args, &global)),
        Command::Init(args) => block_on(init::run(args, &global)),
        Command::Policy(args) => policy::run(args),
        Command::Runner(args) => block_on(runner::run(args, &global)),
        Command::Rbac(args) => block_on(rbac::run(args, &global)),
    }
}

/// Run an async command on a single-threaded tokio runtime.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

impl GlobalArgs {
    /// How to reach the cluster, from the kubectl-style flags.
    pub fn connect_options(&self) -> crate::cluster::ConnectOptions {
        crate::cluster::ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            request_timeout: Some(self.request_timeout.clone()),
        }
    }
}

/// Write one JSON value as pretty JSON or YAML.
fn write_value(
    out: &mut impl Write,
    value: &serde_json::Value,
    format: OutputFormat,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(value)?)?,
        OutputFormat::Yaml => write!(out, "{}", serde_yaml::to_string(value)?)?,
    }
    Ok(())
}

/// Write objects as kubectl does (see [`crate::ui::output`]).
fn write_objects(
    out: &mut impl Write,
    objects: &[serde_json::Value],
    format: OutputFormat,
) -> anyhow::Result<()> {
    crate::ui::output::write_objects(out, objects, format.into())?;
    Ok(())
}

impl From<OutputFormat> for crate::ui::output::Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Yaml => crate::ui::output::Format::Yaml,
            OutputFormat::Json => crate::ui::output::Format::Json,
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
