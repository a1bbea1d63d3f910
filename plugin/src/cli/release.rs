//! The life-cycle commands: `start`, `step`, `run`, `set-weight`, `promote`, `finalize`,
//! `abort`, `undo`. Each reads the release, decides (or takes the operator's word), writes the
//! state, then applies in make-before-break order (see `release::engine`).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use policy_sdk::{Action, Event, WeightOverride};
use serde_json::Value;

use super::flags::{CacheArgs, FieldManagerArgs, SpecFileArgs};
use super::propagation::PropagationArgs;
use super::{DryRun, GlobalArgs, MutationArgs};
use crate::cluster::apply::ApplyOptions;
use crate::cluster::order::Op;
use crate::cluster::Cluster;
use crate::exit::{CodedError, CONFLICT};
use crate::release::desired::desired_objects;
use crate::release::{Engine, EngineError, Mode, Outcome, StartOptions};
use crate::spec;
use crate::ui::text::Safe;

/// Arguments of `start`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl canary start -f examples/voting-app.yaml\n  \
kubectl canary start -f release.yaml --dry-run=client -o yaml   # the objects, for GitOps\n\n\
Rerunning start with the same spec finishes an interrupted start; it never starts twice."
)]
pub struct StartArgs {
    /// The release spec.
    #[command(flatten)]
    pub spec: SpecFileArgs,
    /// Take over VirtualServices/DestinationRules of the same names that another manager owns.
    #[arg(long)]
    pub adopt: bool,
    /// Dry run, output format, field manager.
    #[command(flatten)]
    pub mutation: MutationArgs,
    /// Policy cache and limits.
    #[command(flatten)]
    pub policy: CacheArgs,
    /// Confirming changes at the data plane.
    #[command(flatten)]
    pub propagation: PropagationArgs,
}

/// Arguments of the commands that act on one release by name.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The release name.
    pub release: String,
    /// Dry run, output format, field manager.
    #[command(flatten)]
    pub mutation: MutationArgs,
    /// Policy cache and limits.
    #[command(flatten)]
    pub policy: CacheArgs,
    /// Confirming changes at the data plane.
    #[command(flatten)]
    pub propagation: PropagationArgs,
}

/// Arguments of `set-weight`.
#[derive(Debug, Args)]
#[command(after_help = "Example (seed 001's change from 30/70 to 20/80):\n  \
kubectl canary set-weight nginx-v2 80 -n demo\n\n\
The weight is the canary's share of the traffic no other rule catches (testers and chained \
callers keep their rules). The release is Paused until the next `step`, which lets the policy \
take over again from this weight.")]
pub struct SetWeightArgs {
    /// The release name.
    pub release: String,
    /// Percent of traffic for the canary, 0 to 100.
    #[arg(value_parser = clap::value_parser!(u32).range(0..=100))]
    pub percent: u32,
    /// Only this service of the release (default: all).
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Dry run, output format, field manager.
    #[command(flatten)]
    pub mutation: MutationArgs,
    /// Policy cache and limits.
    #[command(flatten)]
    pub policy: CacheArgs,
    /// Confirming changes at the data plane.
    #[command(flatten)]
    pub propagation: PropagationArgs,
}

/// Arguments of `finalize`.
#[derive(Debug, Args)]
#[command(
    after_help = "Order: VirtualServices stop routing to the old subset, then the subset \
leaves the DestinationRules, then the old Deployments are deleted. `kubectl canary undo` \
restores them from the snapshot kept in the release state."
)]
pub struct FinalizeArgs {
    /// The release name.
    pub release: String,
    /// Keep the old version's Deployments (only routing and subsets change).
    #[arg(long)]
    pub keep_old: bool,
    /// Dry run, output format, field manager.
    #[command(flatten)]
    pub mutation: MutationArgs,
    /// Confirming changes at the data plane.
    #[command(flatten)]
    pub propagation: PropagationArgs,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
#[command(
    after_help = "run decides, applies and waits until the policy completes the release \
or rolls it back. Progress is one live line on a terminal, plain lines otherwise."
)]
pub struct RunArgs {
    /// The release name.
    pub release: String,
    /// Give up (exit 1) if the release has not finished after this long.
    #[arg(long, value_parser = super::flags::duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Do not sleep between decisions: the policy's clock is advanced by the time it asked to
    /// wait instead (for tests and demos).
    #[arg(long)]
    pub no_wait: bool,
    /// Wait between decisions when the policy does not say.
    #[arg(long, default_value = "30s", value_parser = super::flags::duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Field manager for server-side apply.
    #[command(flatten)]
    pub manager: FieldManagerArgs,
    /// Stop with an error after this many consecutive decisions that change nothing (holds,
    /// or the stage in force answered again); 0 for no limit (policies that wait for hours).
    #[arg(long, default_value_t = DEFAULT_MAX_UNCHANGED, value_name = "N")]
    pub max_unchanged: u32,
    /// Policy cache and limits.
    #[command(flatten)]
    pub policy: CacheArgs,
    /// Confirming changes at the data plane.
    #[command(flatten)]
    pub propagation: PropagationArgs,
    /// Hand the release to the in-cluster runner (`kubectl canary runner`) and return.
    #[arg(long, conflicts_with_all = ["attach", "timeout", "no_wait"])]
    pub detach: bool,
    /// Take a detached release back from the runner (then `run` drives it again).
    #[arg(long)]
    pub attach: bool,
}

/// `run --max-unchanged`'s default: with `--no-wait` a policy that keeps answering the same
/// stage is stopped after this many decisions instead of spinning; a pause or a metric gate
/// that resolves itself takes far fewer.
pub const DEFAULT_MAX_UNCHANGED: u32 = 100;

fn mode(dry_run: DryRun) -> Mode {
    match dry_run {
        DryRun::None => Mode::Apply,
        DryRun::Client => Mode::Preview,
        DryRun::Server => Mode::ServerDryRun,
    }
}

async fn engine(
    global: &GlobalArgs,
    mutation: &MutationArgs,
    propagation: &PropagationArgs,
) -> anyhow::Result<Engine> {
    let engine = engine_for(global, mutation).await?;
    let propagation = propagation.propagation(engine.cluster(), mutation.dry_run != DryRun::None);
    Ok(engine.with_propagation(propagation))
}

/// An engine for the commands that only write the record (no propagation to wait for).
pub(super) async fn engine_for(
    global: &GlobalArgs,
    mutation: &MutationArgs,
) -> anyhow::Result<Engine> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    Ok(Engine::new(
        cluster,
        mode(mutation.dry_run),
        ApplyOptions {
            field_manager: mutation.manager.field_manager.clone(),
            ..ApplyOptions::default()
        },
    ))
}

/// Print what a command did (see [`report`]).
pub(super) fn print_outcome(outcome: &Outcome, mutation: &MutationArgs) -> anyhow::Result<()> {
    report(outcome, mutation)
}

/// Map engine errors to exit codes: a lost race exits 3.
pub(super) fn coded(err: EngineError) -> anyhow::Error {
    if err.is_conflict() {
        CodedError::new(CONFLICT, err).into()
    } else {
        err.into()
    }
}

/// `start -f spec.yaml`.
pub async fn start(args: StartArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let release = spec::load_file(&args.spec.file)?;
    let mut global = global.clone();
    match &global.namespace {
        Some(ns) if ns != release.namespace() => anyhow::bail!(
            "-n {ns} differs from the spec's metadata.namespace {}; drop -n or fix the spec",
            release.namespace()
        ),
        _ => global.namespace = Some(release.namespace().to_string()),
    }
    let decider =
        super::policy_decider::for_spec(&release.spec.policy, args.policy.cache_dir.as_deref())?;
    let mut engine = engine(&global, &args.mutation, &args.propagation).await?;
    if args.mutation.dry_run == DryRun::Client {
        // Preview: nothing is written, so keep the ordinary clock.
        engine = engine.with_clock(jiff::Timestamp::now);
    }
    let outcome = engine
        .start(
            &release,
            decider.as_ref(),
            &StartOptions { adopt: args.adopt },
        )
        .await
        .map_err(coded)?;
    report(&outcome, &args.mutation)
}

async fn load_and_decide(
    args_release: &str,
    mutation: &MutationArgs,
    policy: &CacheArgs,
    global: &GlobalArgs,
    event: Event,
    weight: Option<WeightOverride>,
    propagation: &PropagationArgs,
) -> anyhow::Result<()> {
    let engine = engine(global, mutation, propagation).await?;
    let current = engine.load(args_release).await.map_err(coded)?;
    let decider = super::policy_decider::for_record(&current.record, policy.cache_dir.as_deref());
    let decider = match (event, decider) {
        (_, Ok(d)) => d,
        // Abort must work even when the policy cannot be loaded.
        (Event::Abort, Err(e)) => super::policy_decider::unavailable(&current.record, e),
        (_, Err(e)) => return Err(e),
    };
    let outcome = engine
        .decide(current, event, decider.as_ref(), weight)
        .await
        .map_err(coded)?;
    report(&outcome, mutation)
}

/// `step <release>`: one policy decision, applied.
pub async fn step(args: ReleaseArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    load_and_decide(
        &args.release,
        &args.mutation,
        &args.policy,
        global,
        Event::Step,
        None,
        &args.propagation,
    )
    .await
}

/// `promote <release>`: all traffic to the canary now.
pub async fn promote(args: ReleaseArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    load_and_decide(
        &args.release,
        &args.mutation,
        &args.policy,
        global,
        Event::Promote,
        None,
        &args.propagation,
    )
    .await
}

/// `abort <release>`: all traffic back to stable; the canary keeps running.
pub async fn abort(args: ReleaseArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    load_and_decide(
        &args.release,
        &args.mutation,
        &args.policy,
        global,
        Event::Abort,
        None,
        &args.propagation,
    )
    .await
}

/// `set-weight <release> <percent> [--service s]`.
pub async fn set_weight(args: SetWeightArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let weight = WeightOverride {
        weight: args.percent,
        service: args.service.clone(),
    };
    load_and_decide(
        &args.release,
        &args.mutation,
        &args.policy,
        global,
        Event::SetWeight,
        Some(weight),
        &args.propagation,
    )
    .await
}

/// `finalize <release> [--keep-old]`.
pub async fn finalize(args: FinalizeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let engine = engine(global, &args.mutation, &args.propagation).await?;
    let current = engine.load(&args.release).await.map_err(coded)?;
    let outcome = engine
        .finalize(current, args.keep_old)
        .await
        .map_err(coded)?;
    report(&outcome, &args.mutation)
}

/// `undo <release>`: revert a finalize.
pub async fn undo(args: FinalizeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let engine = engine(global, &args.mutation, &args.propagation).await?;
    let current = engine.load(&args.release).await.map_err(coded)?;
    let outcome = engine.undo(current).await.map_err(coded)?;
    report(&outcome, &args.mutation)
}

/// `run <release>`: decide, apply, wait, until the release completes or rolls back.
pub async fn run(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.detach || args.attach {
        return super::runner::hand_over(&args, global).await;
    }
    let mutation = MutationArgs {
        dry_run: DryRun::None,
        output: None,
        manager: args.manager.clone(),
    };
    // With --no-wait the policy's clock runs ahead by the waits it asked for.
    let skew = Arc::new(Mutex::new(jiff::SignedDuration::ZERO));
    let clock_skew = Arc::clone(&skew);
    let engine = engine(global, &mutation, &args.propagation)
        .await?
        .with_clock(move || {
            let skew = *clock_skew.lock().unwrap_or_else(|e| e.into_inner());
            jiff::Timestamp::now()
                .checked_add(skew)
                .unwrap_or_else(|_| jiff::Timestamp::now())
        });
    let started = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut progress = Progress::new(tty);
    let mut event = Event::Step;
    let mut unchanged = 0u32;
    loop {
        let current = engine.load(&args.release).await.map_err(coded)?;
        super::runner::refuse_if_detached(&current.record)?;
        if current.record.is_terminal() || current.record.phase == policy_sdk::Phase::Promoted {
            progress.line(&format!(
                "release {} is {:?} at stage {} ({})",
                args.release,
                current.record.phase,
                current.record.stage.index,
                Safe(&current.record.stage.name)
            ))?;
            return finish(&current.record);
        }
        let decider =
            super::policy_decider::for_record(&current.record, args.policy.cache_dir.as_deref())?;
        if current.record.paused.is_some() {
            // `run` waits on a paused release (a tick holds it) rather than failing as `step`.
            event = Event::Tick;
        }
        let outcome = engine
            .decide(current, event, decider.as_ref(), None)
            .await
            .map_err(coded)?;
        event = Event::Tick;
        progress.line(&summary(&outcome))?;
        if matches!(outcome.action, Some(Action::Complete | Action::Rollback)) {
            return finish(&outcome.record);
        }
        if outcome.converged {
            continue;
        }
        if outcome.ops.is_empty() && matches!(outcome.action, None | Some(Action::Hold)) {
            unchanged += 1;
            if args.max_unchanged > 0 && unchanged >= args.max_unchanged {
                anyhow::bail!(
                    "release {} made no progress in {unchanged} consecutive decisions (the last: {}); stopping at stage {} ({}) — `kubectl canary history {}` shows the answers; raise --max-unchanged if the policy is waiting on purpose",
                    args.release,
                    outcome.reason,
                    outcome.record.stage.index,
                    outcome.record.stage.name,
                    args.release
                );
            }
        } else {
            unchanged = 0;
        }
        let wait = outcome
            .requeue_after_seconds
            .map(Duration::from_secs)
            .unwrap_or(args.interval);
        if let Some(timeout) = args.timeout {
            if started.elapsed() + if args.no_wait { Duration::ZERO } else { wait } > timeout {
                anyhow::bail!(
                    "release {} not finished after {} (stage {} ({}), phase {:?}); rerun `kubectl canary run` to go on",
                    args.release,
                    humantime::format_duration(timeout),
                    outcome.record.stage.index,
                    Safe(&outcome.record.stage.name),
                    outcome.record.phase
                );
            }
        }
        if args.no_wait {
            let mut skew = skew.lock().unwrap_or_else(|e| e.into_inner());
            *skew = skew.saturating_add(
                jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::ZERO),
            );
            continue;
        }
        progress.wait(wait, &outcome).await?;
    }
}

/// Exit status of `run`: success when promoted or finalized, failure when rolled back.
fn finish(record: &crate::release::record::ReleaseRecord) -> anyhow::Result<()> {
    use policy_sdk::Phase;
    match record.phase {
        Phase::RolledBack | Phase::Aborted | Phase::Failed => anyhow::bail!(
            "release {} ended {:?}: {}",
            record.spec.name(),
            record.phase,
            record
                .history
                .last()
                .map(|h| Safe(&h.reason))
                .unwrap_or(Safe(""))
        ),
        _ => Ok(()),
    }
}

/// One line saying what a command did.
fn summary(outcome: &Outcome) -> String {
    let r = &outcome.record;
    let what = match outcome.action {
        None if outcome.converged => "converged".to_string(),
        None => "unchanged".to_string(),
        Some(action) => action.as_str().to_string(),
    };
    let reason = if outcome.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", Safe(&outcome.reason))
    };
    format!(
        "release {} {what} → stage {} ({}), {:?}{reason}",
        r.spec.name(),
        r.stage.index,
        Safe(&r.stage.name),
        r.phase
    )
}

/// Print what a mutating command did: a summary with kubectl-style object lines, or (with -o)
/// the release's objects in apply order.
fn report(outcome: &Outcome, mutation: &MutationArgs) -> anyhow::Result<()> {
    for warning in &outcome.warnings {
        eprintln!("warning: {}", Safe(warning));
    }
    let mut out = std::io::stdout().lock();
    if let Some(format) = mutation.output {
        let set = desired_objects(&outcome.record)?;
        let objects: Vec<Value> = set
            .deployments
            .values()
            .chain(set.destination_rules.values())
            .chain(set.virtual_services.values())
            .chain(set.peer_authentications.values())
            .cloned()
            .collect();
        super::write_objects(&mut out, &objects, format)?;
        return Ok(out.flush()?);
    }
    writeln!(out, "{}", summary(outcome))?;
    let suffix = match mutation.dry_run {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    for op in &outcome.ops {
        writeln!(out, "  {}{suffix}", op_line(op))?;
    }
    if outcome.ops.is_empty() && outcome.action != Some(Action::Hold) {
        writeln!(out, "  no changes")?;
    }
    Ok(out.flush()?)
}

fn op_line(op: &Op) -> String {
    match op {
        Op::Apply(obj) => {
            let kind = obj["kind"].as_str().unwrap_or_default().to_lowercase();
            let group = obj["apiVersion"]
                .as_str()
                .and_then(|v| v.split_once('/').map(|(g, _)| g))
                .map(|g| format!(".{g}"))
                .unwrap_or_default();
            format!(
                "{kind}{group}/{} applied",
                obj["metadata"]["name"].as_str().unwrap_or_default()
            )
        }
        Op::Delete { kind, name } | Op::Claim { kind, name, .. } => {
            let group = if kind.group.is_empty() {
                String::new()
            } else {
                format!(".{}", kind.group)
            };
            let done = if matches!(op, Op::Delete { .. }) {
                "deleted"
            } else {
                "claimed"
            };
            format!("{}{group}/{name} {done}", kind.kind.to_lowercase())
        }
    }
}

/// `run`'s progress: one rewritten line on a terminal, plain lines otherwise.
struct Progress {
    tty: bool,
}

impl Progress {
    fn new(tty: bool) -> Self {
        Progress { tty }
    }

    fn line(&mut self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.tty {
            write!(out, "\r\x1b[2K{text}\n")?;
        } else {
            writeln!(out, "{text}")?;
        }
        out.flush()
    }

    async fn wait(&mut self, wait: Duration, outcome: &Outcome) -> anyhow::Result<()> {
        let until = Instant::now() + wait;
        if !self.tty {
            println!(
                "  waiting {} before the next decision",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            );
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            if self.tty {
                let mut out = std::io::stdout().lock();
                write!(
                    out,
                    "\r\x1b[2K  stage {} ({}) — next decision in {}",
                    outcome.record.stage.index,
                    Safe(&outcome.record.stage.name),
                    humantime::format_duration(Duration::from_secs(left.as_secs()))
                )?;
                out.flush()?;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.min(Duration::from_secs(1))) => {}
                _ = tokio::signal::ctrl_c() => {
                    anyhow::bail!("interrupted; the release is safe at stage {} — `kubectl canary run` resumes it", outcome.record.stage.index)
                }
            }
        }
    }
}
