//! `kubectl canary pause | resume | approve`: the manual gates. Each writes only the release
//! record (conditional on the version read, like every write); the routing stays as it is.

use clap::Args;

use super::release::{coded, engine_for, print_outcome};
use super::{GlobalArgs, MutationArgs};
use crate::cluster::connect::kubeconfig_user;

/// Arguments of `pause` and `resume`.
#[derive(Debug, Args)]
#[command(
    after_help = "A paused release keeps its routing; `step` refuses it, and `run` and \
the runner wait, until `kubectl canary resume`. promote, abort and set-weight still work. The \
kubeconfig user is recorded."
)]
pub struct PauseArgs {
    /// The release name.
    pub release: String,
    /// Dry run, output format, field manager.
    #[command(flatten)]
    pub mutation: MutationArgs,
}

/// Arguments of `approve`.
#[derive(Debug, Args)]
#[command(
    after_help = "For policies that wait for a person before a stage (progressive's \
`approveBefore: [100]`). The approval is recorded with the kubeconfig user and the time; the \
next step or tick may then advance to that stage."
)]
pub struct ApproveArgs {
    /// The release name.
    pub release: String,
    /// The stage index to approve (default: the next stage).
    #[arg(long, value_name = "N")]
    pub stage: Option<u32>,
    /// Dry run, output format, field manager.
    #[command(flatten)]
    pub mutation: MutationArgs,
}

/// `pause <release>`.
pub async fn pause(args: PauseArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let engine = engine_for(global, &args.mutation).await?;
    let current = engine.load(&args.release).await.map_err(coded)?;
    let by = kubeconfig_user(&global.connect_options());
    let outcome = engine.pause(current, &by).await.map_err(coded)?;
    print_outcome(&outcome, &args.mutation)
}

/// `resume <release>`.
pub async fn resume(args: PauseArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let engine = engine_for(global, &args.mutation).await?;
    let current = engine.load(&args.release).await.map_err(coded)?;
    let by = kubeconfig_user(&global.connect_options());
    let outcome = engine.resume(current, &by).await.map_err(coded)?;
    print_outcome(&outcome, &args.mutation)
}

/// `approve <release> [--stage N]`.
pub async fn approve(args: ApproveArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let engine = engine_for(global, &args.mutation).await?;
    let current = engine.load(&args.release).await.map_err(coded)?;
    let by = kubeconfig_user(&global.connect_options());
    let outcome = engine
        .approve(current, args.stage, &by)
        .await
        .map_err(coded)?;
    print_outcome(&outcome, &args.mutation)
}
