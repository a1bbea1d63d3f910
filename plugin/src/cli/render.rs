//! `kubectl canary render`: the Istio objects of a release at a given stage, offline.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use policy_sdk::{Role, Stage};

use super::flags::SpecFileArgs;
use super::{GlobalArgs, OutputFormat};
use crate::istio::{MtlsMode as PeerMode, TlsMode};
use crate::render::{self, RenderOptions};
use crate::spec::{self, MtlsMode, Release};
use crate::ui::output;

/// Arguments of `render`.
#[derive(Debug, Args)]
#[command(
    after_help = "The stage file is what a policy returns (its `stage` member is used) or a \
bare stage: {\"index\": 1, \"name\": \"10%\", \"routes\": {\"<service>\": [{\"to\": [...]}]}}, \
JSON or YAML.\n\n\
Examples:\n  \
kubectl canary render -f release.yaml                       # the baseline: all traffic to stable\n  \
kubectl canary render -f release.yaml --stage decision.json -o json\n  \
kubectl canary render -f release.yaml --final --subsets canary  # after finalize"
)]
pub struct RenderArgs {
    /// The release spec.
    #[command(flatten)]
    pub spec: SpecFileArgs,
    /// A stage to render (a policy decision or its `stage`), JSON or YAML. Default: the
    /// baseline stage (every service 100% stable).
    #[arg(long, value_name = "PATH", conflicts_with = "final_stage")]
    pub stage: Option<PathBuf>,
    /// Render the final stage (every service 100% canary) instead of the baseline.
    #[arg(long = "final")]
    pub final_stage: bool,
    /// Which versions get a DestinationRule subset.
    #[arg(long, value_enum, default_value_t = Subsets::Both, value_name = "WHICH")]
    pub subsets: Subsets,
    /// Output format.
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value = "yaml",
        value_name = "FORMAT"
    )]
    pub output: OutputFormat,
}

/// `--subsets` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Subsets {
    /// Stable and canary (while a release runs).
    Both,
    /// Only the canary (after finalize).
    Canary,
    /// Only the stable version (after the canary is removed).
    Stable,
}

/// Load the spec (and stage), render, print.
pub fn run(args: RenderArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let release = spec::load_file(&args.spec.file)?;
    let info = release.release_info();
    let stage = match &args.stage {
        Some(path) => load_stage(path)?,
        None if args.final_stage => render::final_stage(&info),
        None => render::baseline_stage(&info),
    };
    let opts = options(&release, args.subsets);
    let rendered = render::render(&info, &stage, &opts).with_context(|| {
        format!(
            "cannot render stage {} ({:?}) of release {}",
            stage.index,
            stage.name,
            release.name()
        )
    })?;
    let mut out = std::io::stdout().lock();
    output::write_objects(&mut out, rendered.objects(), args.output.into())?;
    out.flush()?;
    Ok(())
}

/// Render options from the spec: gateway hosts and mutual TLS.
pub fn options(release: &Release, subsets: Subsets) -> RenderOptions {
    let mut opts = RenderOptions {
        subsets: match subsets {
            Subsets::Both => [Role::Stable, Role::Canary].into(),
            Subsets::Canary => [Role::Canary].into(),
            Subsets::Stable => [Role::Stable].into(),
        },
        ..Default::default()
    };
    for service in &release.spec.services {
        if !service.hosts.is_empty() {
            opts.gateway_hosts
                .insert(service.name.clone(), service.hosts.clone());
        }
    }
    match release.spec.mtls {
        Some(MtlsMode::Strict) => opts = opts.strict_mtls(),
        Some(MtlsMode::Permissive) => {
            opts.client_tls = Some(TlsMode::IstioMutual);
            opts.peer_authentication = Some(PeerMode::Permissive);
        }
        Some(MtlsMode::Disable) => {
            opts.client_tls = Some(TlsMode::Disable);
            opts.peer_authentication = Some(PeerMode::Disable);
        }
        None => {}
    }
    opts
}

/// A stage from a file: a policy decision (its `stage` member) or a bare stage, JSON or YAML.
pub fn load_stage(path: &Path) -> anyhow::Result<Stage> {
    let text = crate::bounds::read(path, &path.display().to_string(), crate::bounds::STAGE)?;
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("stage file {}: not JSON or YAML", path.display()))?;
    let (value, prefix) = match value.get("stage") {
        Some(stage) if value.get("routes").is_none() => (stage.clone(), "stage."),
        _ => (value, ""),
    };
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            String::new()
        } else {
            format!("{prefix}{field}: ")
        };
        anyhow::anyhow!("stage file {}: {field}{}", path.display(), e.inner())
    })
}
