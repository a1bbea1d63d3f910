//! `kubectl canary lint`: pre-flight checks on the live cluster, on files, or both.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use owo_colors::{OwoColorize, Stream::Stdout};
use serde_json::json;

use super::{GlobalArgs, OutputFormat};
use crate::cluster::{self, Cluster};
use crate::lint::{self, Finding, Inventory, LintContext, Severity};
use crate::manifest;

/// Arguments of `lint`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when nothing at or above --fail-on was found, 1 otherwise.\n\n\
Examples:\n  kubectl canary lint -n shop                      # the live namespace\n  \
kubectl canary lint --local -f manifests/         # files only, no cluster\n  \
kubectl canary lint -n shop -f new-routes.yaml    # the cluster as it would be with these files"
)]
pub struct LintArgs {
    /// Objects to check (files, directories, or - for stdin), added to what the cluster has.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Check only the files; do not contact the cluster.
    #[arg(long, requires = "files")]
    pub local: bool,
    /// Lowest severity that makes the command exit 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error, value_name = "SEVERITY")]
    pub fail_on: FailOn,
    /// Istio's root namespace (where a selector-less PeerAuthentication sets the mesh default).
    #[arg(long, default_value = "istio-system", value_name = "NAMESPACE")]
    pub istio_namespace: String,
    /// Print findings as JSON or YAML.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// `--fail-on` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Fail on errors only.
    Error,
    /// Fail on warnings and errors.
    Warning,
}

/// Gather the inventory (cluster and/or files), run the checks, print, and fail per --fail-on.
pub async fn run(args: LintArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (inventory, ctx, scope) =
        gather(&args.files, args.local, &args.istio_namespace, global).await?;
    let findings = lint::run(&inventory, &ctx);
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(format) => {
            let doc = json!({"findings": findings, "summary": summary(&findings)});
            super::write_value(&mut out, &doc, format)?;
        }
        None => print_human(&mut out, &findings, &scope)?,
    }
    out.flush()?;
    let threshold = match args.fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
    };
    let failing = findings.iter().filter(|f| f.severity >= threshold).count();
    if failing > 0 {
        anyhow::bail!(
            "lint found {failing} problem{} at or above {}",
            if failing == 1 { "" } else { "s" },
            threshold
        );
    }
    Ok(())
}

/// Read files and (unless `local`) the live namespace into one inventory with its context, and
/// say what was analysed.
pub(crate) async fn gather(
    files: &[PathBuf],
    local: bool,
    istio_namespace: &str,
    global: &GlobalArgs,
) -> anyhow::Result<(Inventory, LintContext, String)> {
    let mut ctx = LintContext {
        root_namespace: istio_namespace.to_string(),
        ..LintContext::default()
    };
    let mut inventory = Inventory::default();
    let mut scope = Vec::new();
    if !local {
        let cluster = Cluster::connect(&global.connect_options()).await?;
        inventory = cluster::inventory::read(&cluster, istio_namespace)
            .await
            .with_context(|| format!("cannot read namespace {}", cluster.namespace))?;
        ctx.pods_known = true;
        ctx.gateways_known = true;
        scope.push(format!("namespace {}", cluster.namespace));
    }
    if !files.is_empty() {
        for sourced in manifest::read_paths(files)? {
            inventory.add(sourced.object);
        }
        ctx.gateways_known |= !inventory.gateways.is_empty();
        ctx.pods_known |= !inventory.pods.is_empty();
        scope.push(
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    Ok((inventory, ctx, scope.join(" + ")))
}

fn summary(findings: &[Finding]) -> serde_json::Value {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    json!({"errors": count(Severity::Error), "warnings": count(Severity::Warning), "infos": count(Severity::Info)})
}

fn print_human(out: &mut impl Write, findings: &[Finding], scope: &str) -> std::io::Result<()> {
    if findings.is_empty() {
        return writeln!(
            out,
            "{} no problems found in {scope}",
            "✔".if_supports_color(Stdout, |t| t.green())
        );
    }
    for f in findings {
        let severity = match f.severity {
            Severity::Error => "Error".if_supports_color(Stdout, |t| t.red()).to_string(),
            Severity::Warning => "Warning"
                .if_supports_color(Stdout, |t| t.yellow())
                .to_string(),
            Severity::Info => "Info".to_string(),
        };
        let place = match &f.field {
            Some(field) => format!("{} {field}", f.object),
            None => f.object.clone(),
        };
        writeln!(out, "{severity} [{}] ({place}) {}", f.code, f.message)?;
        if !f.fix.is_empty() {
            writeln!(out, "    fix: {}", f.fix)?;
        }
    }
    let s = summary(findings);
    writeln!(
        out,
        "{} errors, {} warnings in {scope}",
        s["errors"], s["warnings"]
    )
}
