//! `kubectl canary get <release> [--watch]`, `list` and `history`: reading release state.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;

use super::{GlobalArgs, OutputFormat};
use crate::cluster::state::{StateStore, Versioned};
use crate::cluster::{self, resources, Cluster};
use crate::release::engine::live_objects;
use crate::release::record::ReleaseRecord;
use crate::release::view;
use crate::release::EngineError;
use crate::ui::table::Table;
use crate::ui::text::{safe, Safe};
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
    #[arg(long, default_value = "2s", value_parser = super::flags::duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Print the release record as JSON or YAML instead of the tree.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Exit 1 when the live VirtualServices, DestinationRules or Deployments differ from the
    /// release record (for CI gates); with --watch, judged on the last view.
    #[arg(long)]
    pub fail_on_drift: bool,
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

/// The canary's numbers and the closed gates a decision was taken on, in one cell:
/// `success-rate 99.5, latency-p99 120` (per service in a multi-service release:
/// `success-rate web 99.5 api 97`), `no data`, `error`, `gate freeze closed`.
fn signals_text(entry: &policy_sdk::HistoryEntry) -> String {
    let mut parts: Vec<String> = entry
        .metrics
        .iter()
        .map(|(name, sample)| match &sample.error {
            Some(_) => format!("{name} error"),
            None => format!("{name} {}", view::canary_text(sample)),
        })
        .collect();
    parts.extend(
        entry
            .gates
            .iter()
            .filter(|(_, g)| !g.open)
            .map(|(name, _)| format!("gate {name} closed")),
    );
    safe(&parts.join(", ")).into_owned()
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

/// One look at a release: the text to print, whether it reached a final phase, and its drift.
struct Look {
    text: String,
    done: bool,
    drift: Vec<String>,
}

async fn render_once(cluster: &Cluster, args: &GetArgs) -> anyhow::Result<Look> {
    let release = load_release(cluster, &args.release).await?;
    let live = live_objects(cluster, &release.record).await?;
    let drift = view::drift(&release.record, &live);
    let done = release.record.is_terminal();
    if let Some(format) = args.output {
        let mut buf = Vec::new();
        super::write_value(&mut buf, &serde_json::to_value(&release.record)?, format)?;
        return Ok(Look {
            text: String::from_utf8(buf)?,
            done,
            drift,
        });
    }
    let pods = cluster::inventory::list(cluster, resources::POD, Some(&cluster.namespace)).await?;
    let mut text = tree::render(&view::release_view(&release.record, &live, &pods));
    text.push_str(&super::propagation::status_block(&live));
    text.extend(super::runner::driver_line(&release.record));
    Ok(Look { text, done, drift })
}

/// Print the tree (or record), once or on every change.
pub async fn get(args: GetArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    let mut look = render_once(&cluster, &args).await?;
    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::stdout();
    write!(
        out,
        "{}{}",
        if args.watch && tty {
            "\x1b[2J\x1b[H"
        } else {
            ""
        },
        look.text
    )?;
    out.flush()?;
    while args.watch && !look.done {
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let next = render_once(&cluster, &args).await?;
        if next.text != look.text {
            if tty {
                write!(out, "\x1b[2J\x1b[H{}", next.text)?;
            } else {
                write!(out, "\n{}", next.text)?;
            }
            out.flush()?;
        }
        look = next;
    }
    if args.fail_on_drift && !look.drift.is_empty() {
        anyhow::bail!(
            "release {} drifts from its record: {}",
            args.release,
            look.drift.join("; ")
        );
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
        "live",
        "last decision",
    ]);
    for (name, v) in &releases {
        let r = &v.record;
        let drift = view::drift(r, &live_objects(&cluster, r).await?);
        table.row(vec![
            name.clone(),
            format!("{:?}", r.phase),
            format!("{} ({})", r.stage.index, Safe(&r.stage.name)),
            r.spec.spec.services.len().to_string(),
            r.policy.short(),
            match drift.len() {
                0 => "in sync".to_string(),
                n => format!("DRIFT ({n}): `kubectl canary get {name}`"),
            },
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
    let record = &release.record;
    let signals = record
        .history
        .iter()
        .any(|h| !h.metrics.is_empty() || !h.gates.is_empty());
    let mut header = vec!["#", "at", "action", "stage", "reason"];
    if signals {
        header.insert(4, "canary metrics / gates");
    }
    let mut table = Table::new(&header);
    for (i, h) in record.history.iter().enumerate() {
        let mut row = vec![
            (record.history_base + i as u64).to_string(),
            h.at.clone(),
            h.action.as_str().to_string(),
            h.stage.to_string(),
            safe(&h.reason).into_owned(),
        ];
        if signals {
            row.insert(4, signals_text(h));
        }
        table.row(row);
    }
    write!(out, "{}", table.render())?;
    Ok(out.flush()?)
}
