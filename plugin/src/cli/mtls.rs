//! `kubectl canary mtls enable|status`: strict mutual TLS, switched on in a safe order, and the
//! per-service verdict that `istioctl authn tls-check` used to give.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kube::api::ListParams;
use owo_colors::{OwoColorize, Stream::Stdout};
use serde_json::{json, Value};

use super::{DryRun, GlobalArgs, MutationArgs, OutputFormat};
use crate::cluster::apply::{Applier, ApplyOptions};
use crate::cluster::{self, resources, Cluster};
use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::lint::mtls::{self, Verdict};
use crate::ui::table::Table;

/// Arguments of `mtls`.
#[derive(Debug, Args)]
pub struct MtlsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: MtlsCommand,
}

/// The `mtls` subcommands.
#[derive(Debug, Subcommand)]
pub enum MtlsCommand {
    /// Require mTLS in the namespace: ISTIO_MUTUAL in the DestinationRules kubectl-canary owns
    /// (clients first), then a STRICT PeerAuthentication `default` (servers second), so no
    /// connection breaks midway.
    #[command(
        after_help = "The DestinationRules are changed with server-side apply under the field manager \
<field-manager>-mtls, which owns only spec.trafficPolicy.tls.mode: no other field is touched."
    )]
    Enable(EnableArgs),
    /// Per service: the server mode (PeerAuthentication: workload > namespace > root), the client
    /// mode (DestinationRule), and whether they agree.
    Status(StatusArgs),
}

/// Arguments of `mtls enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Dry run, output format, field manager.
    #[command(flatten)]
    pub mutation: MutationArgs,
}

/// Arguments of `mtls status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Objects to add to (or, with --local, use instead of) the cluster's.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Files only or cluster too; Istio's root namespace.
    #[command(flatten)]
    pub source: super::flags::ObjectSourceArgs,
    /// Print as JSON or YAML.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// Run an `mtls` subcommand.
pub async fn run(args: MtlsArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        MtlsCommand::Enable(a) => enable(a, global).await,
        MtlsCommand::Status(a) => status(a, global).await,
    }
}

async fn status(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (inventory, _, scope) = super::lint::gather(
        &args.files,
        args.source.local,
        &args.source.istio_namespace,
        global,
    )
    .await?;
    let rows = mtls::status(&inventory, &args.source.istio_namespace);
    let mut out = std::io::stdout().lock();
    if let Some(format) = args.output {
        super::write_value(&mut out, &serde_json::to_value(&rows)?, format)?;
        return Ok(out.flush()?);
    }
    if rows.is_empty() {
        writeln!(out, "no services in {scope}")?;
        return Ok(out.flush()?);
    }
    let mut table = Table::new(&["service", "server", "client", "status"]);
    let mut reasons = Vec::new();
    for row in &rows {
        let verdict = match &row.verdict {
            Verdict::Ok => "OK".if_supports_color(Stdout, |t| t.green()).to_string(),
            Verdict::Conflict(reason) => {
                reasons.push(format!("{}/{}: {reason}", row.namespace, row.service));
                "CONFLICT"
                    .if_supports_color(Stdout, |t| t.red())
                    .to_string()
            }
        };
        table.row(vec![
            format!("{}.{}", row.service, row.namespace),
            format!("{} ({})", enum_name(&row.server), row.server_source),
            format!("{} ({})", enum_name(&row.client), row.client_source),
            verdict,
        ]);
    }
    write!(out, "{}", table.render())?;
    for reason in reasons {
        writeln!(out, "conflict: {reason}")?;
    }
    Ok(out.flush()?)
}

fn enum_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn enable(args: EnableArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    let ns = cluster.namespace.clone();
    let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let rules = cluster::inventory::list_selected(
        &cluster,
        resources::DESTINATION_RULE,
        Some(&ns),
        &params,
    )
    .await
    .with_context(|| format!("cannot list the DestinationRules of namespace {ns}"))?;
    // Clients first: every DestinationRule we own speaks ISTIO_MUTUAL before servers insist.
    let client_side: Vec<Value> = rules
        .iter()
        .map(|dr| {
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": dr["metadata"]["name"], "namespace": ns},
                "spec": {"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
            })
        })
        .collect();
    let server_side = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": ns,
                     "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {"mtls": {"mode": "STRICT"}},
    });
    let mutation = &args.mutation;
    if mutation.dry_run == DryRun::Client {
        let objects: Vec<Value> = client_side.iter().chain([&server_side]).cloned().collect();
        return print_objects(&objects, mutation.output.unwrap_or(OutputFormat::Yaml));
    }
    let server_dry_run = mutation.dry_run == DryRun::Server;
    let dr_applier = Applier::new(
        cluster.clone(),
        ApplyOptions {
            field_manager: format!("{}-mtls", mutation.manager.field_manager),
            server_dry_run,
            force: false,
        },
    );
    let pa_applier = Applier::new(
        cluster,
        ApplyOptions {
            field_manager: mutation.manager.field_manager.clone(),
            server_dry_run,
            force: false,
        },
    );
    let mut applied = Vec::new();
    for dr in &client_side {
        applied.push(dr_applier.apply(dr).await?);
    }
    applied.push(pa_applier.apply(&server_side).await?);
    if let Some(format) = mutation.output {
        return print_objects(&applied, format);
    }
    let suffix = if server_dry_run {
        " (server dry run)"
    } else {
        ""
    };
    let mut out = std::io::stdout().lock();
    for dr in &client_side {
        writeln!(
            out,
            "destinationrule.networking.istio.io/{} tls ISTIO_MUTUAL{suffix}",
            dr["metadata"]["name"].as_str().unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "peerauthentication.security.istio.io/default STRICT in namespace {ns}{suffix}"
    )?;
    Ok(out.flush()?)
}

fn print_objects(objects: &[Value], format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    super::write_objects(&mut out, objects, format)?;
    Ok(out.flush()?)
}
