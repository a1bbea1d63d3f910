//! `kubectl canary version`.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use super::{GlobalArgs, OutputFormat};

/// Arguments of `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print as YAML or JSON instead of one line.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// What `version` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: &'static str,
    policy_abi: u32,
    target: &'static str,
}

/// Print the version.
pub fn run(args: VersionArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let info = VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        policy_abi: policy_sdk::ABI_VERSION,
        target: std::env::consts::ARCH,
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        None => writeln!(
            out,
            "kubectl-canary {} (policy ABI v{}, {})",
            info.version, info.policy_abi, info.target
        )?,
        Some(OutputFormat::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?,
        Some(OutputFormat::Yaml) => write!(out, "{}", serde_yaml::to_string(&info)?)?,
    }
    Ok(())
}
