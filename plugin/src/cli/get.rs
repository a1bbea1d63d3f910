//! `kubectl canary get <release> [--watch]`, `list` and `history`: reading release state.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;

use super::{GlobalArgs, OutputFormat};
use crate::cluster::state::{StateStore, Versioned};
use crate::cluster::{self, resources, Cluster};
use crate::release::record::ReleaseRecord;
use crate::release::view::release_view;
use crate::release::EngineError;
use crate::ui::table::Table;
use crate::ui::tree;

/// Arguments of `get`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  kubectl canary get voting-v2 -n voting\n  \
kubectl canary get voting-v2 -n voting --watch     # redraw on every change until the release ends")]
pub struct GetArgs {
    /// The release name.
    pub release: String,
    /// Keep watching and redraw on every change; stops when the release reaches a final phase
    /// (Finalized, Aborted, RolledBack, Failed) or on Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How often to look again with --watch.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Print the release record as JSON or YAML instead of the tree.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the records as JSON or YAML instead of a table.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The release name.
    pub release: String,
    /// Print the entries as JSON or YAML instead of a table.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// Load a release or fail with a message that says where we looked.
pub(crate) async fn load_release(
    cluster: &Cluster,
    name: &str,
) -> anyhow::Result<Versioned<ReleaseRecord>> {
    let found = StateStore::<ReleaseRecord>::new(cluster, false)
        .load(name)
        .await?;
    Ok(found.ok_or_else(|| EngineError::NotFound {
        release: name.to_string(),
        namespace: cluster.namespace.clone(),
    })?)
}

async fn render_once(cluster: &Cluster, args: &GetArgs) -> anyhow::Result<(String, bool)> {
    let release = load_release(cluster, &args.release).await?;
    if let Some(format) = args.output {
        let mut buf = Vec::new();
        super::write_value(&mut buf, &serde_json::to_value(&release.record)?, format)?;
        return Ok((String::from_utf8(buf)?, release.record.is_terminal()));
    }
    let pods = cluster::inventory::list(cluster, resources::POD, Some(&cluster.namespace)).await?;
    let mut text = tree::render(&release_view(&release.record, &pods));
    text.extend(super::runner::driver_line(&release.record));
    Ok((text, release.record.is_terminal()))
}

/// Print the tree (or record), once or on every change.
pub async fn get(args: GetArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    let (mut text, mut done) = render_once(&cluster, &args).await?;
    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::stdout();
    write!(
        out,
        "{}{text}",
        if args.watch && tty {
            "\x1b[2J\x1b[H"
        } else {
            ""
        }
    )?;
    out.flush()?;
    while args.watch && !done {
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let (next, finished) = render_once(&cluster, &args).await?;
        done = finished;
        if next != text {
            text = next;
            if tty {
                write!(out, "\x1b[2J\x1b[H{text}")?;
            } else {
                write!(out, "\n{text}")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// Print a table of the releases in the namespace.
pub async fn list(args: ListArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    let releases = StateStore::<ReleaseRecord>::new(&cluster, false)
        .list()
        .await?;
    let mut out = std::io::stdout().lock();
    if let Some(format) = args.output {
        let records: Vec<&ReleaseRecord> = releases.iter().map(|(_, v)| &v.record).collect();
        super::write_value(&mut out, &serde_json::to_value(records)?, format)?;
        return Ok(out.flush()?);
    }
    if releases.is_empty() {
        writeln!(out, "No releases found in {} namespace.", cluster.namespace)?;
        return Ok(out.flush()?);
    }
    let mut table = Table::new(&[
        "name",
        "phase",
        "stage",
        "services",
        "policy",
        "last decision",
    ]);
    for (name, v) in &releases {
        let r = &v.record;
        table.row(vec![
            name.clone(),
            format!("{:?}", r.phase),
            format!("{} ({})", r.stage.index, r.stage.name),
            r.spec.spec.services.len().to_string(),
            r.policy.short(),
            r.history.last().map(|h| h.at.clone()).unwrap_or_default(),
        ]);
    }
    write!(out, "{}", table.render())?;
    Ok(out.flush()?)
}

/// Print the decisions of a release.
pub async fn history(args: HistoryArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    let release = load_release(&cluster, &args.release).await?;
    let mut out = std::io::stdout().lock();
    if let Some(format) = args.output {
        super::write_value(
            &mut out,
            &serde_json::to_value(&release.record.history)?,
            format,
        )?;
        return Ok(out.flush()?);
    }
    let mut table = Table::new(&["#", "at", "action", "stage", "reason"]);
    for (i, h) in release.record.history.iter().enumerate() {
        table.row(vec![
            i.to_string(),
            h.at.clone(),
            crate::ui::action_name(h.action).to_string(),
            h.stage.to_string(),
            h.reason.clone(),
        ]);
    }
    write!(out, "{}", table.render())?;
    Ok(out.flush()?)
}
