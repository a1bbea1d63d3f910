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
mod lint;
mod mtls;
mod policy;
mod version;

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
#[derive(Debug, Args)]
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
    #[arg(long, default_value = "kubectl-canary", value_name = "NAME")]
    pub field_manager: String,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print shell completion code (bash, zsh, fish, powershell, elvish).
    Completion(completion::CompletionArgs),
    /// Print the plugin's version, policy ABI and build information.
    Version(version::VersionArgs),
    /// Pre-flight checks: injection, port names, pod labels, subsets, references, conflicting
    /// VirtualServices, mTLS conflicts (live cluster, files, or both).
    Lint(lint::LintArgs),
    /// Strict mutual TLS: `enable` it safely, or see per-service `status`.
    Mtls(mtls::MtlsArgs),
    /// Policies: `list` the built-ins, `inspect` a module, `test` it on fixtures, scaffold a `new` one.
    Policy(policy::PolicyArgs),
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
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {err:#}");
            exit::code_of(&err)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        Command::Completion(args) => completion::run(args),
        Command::Version(args) => version::run(args, &global),
        Command::Lint(args) => block_on(lint::run(args, &global)),
        Command::Mtls(args) => block_on(mtls::run(args, &global)),
        Command::Policy(args) => policy::run(args),
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

/// Write objects as a YAML stream (`---` between documents) or, in JSON, one object alone or
/// several as a `v1` `List`, like kubectl.
fn write_objects(
    out: &mut impl Write,
    objects: &[serde_json::Value],
    format: OutputFormat,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Yaml => {
            for (i, obj) in objects.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", serde_yaml::to_string(obj)?)?;
            }
        }
        OutputFormat::Json => {
            let doc = match objects {
                [one] => one.clone(),
                many => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": many}),
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
    }
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
