//! The propagation flags of every mutating command, and their progress on the terminal.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use crate::cluster::propagation::{
    ProgressEvent, Propagation, PropagationOptions, PropagationProgress, WaitPropagation,
};
use crate::cluster::Cluster;
use crate::ui::progress::ProgressLine;

/// `--wait-propagation` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WaitWhen {
    /// Wait when the cluster reports Istio's config status; otherwise warn once and pause
    /// `--settle` after each change.
    #[default]
    Auto,
    /// Always wait; a change without status fails after `--propagation-timeout`.
    Always,
    /// Never wait: changes are ordered at the API level only.
    Never,
}

/// Confirming each change at the data plane before the next one depends on it.
#[derive(Debug, Clone, Args)]
pub struct PropagationArgs {
    /// Wait after each batch of changes until istiod reports that every proxy has it
    /// (Istio's config status: PILOT_ENABLE_STATUS and PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING).
    #[arg(
        long,
        value_enum,
        default_value_t,
        value_name = "WHEN",
        env = "KUBECTL_CANARY_WAIT_PROPAGATION"
    )]
    pub wait_propagation: WaitWhen,
    /// Give up waiting for one batch after this long: exit 1 before anything that depends on it
    /// (rerun the command to resume the wait).
    #[arg(long, default_value = "2m", value_parser = super::flags::duration, value_name = "DURATION")]
    pub propagation_timeout: Duration,
    /// Pause this long after each batch when the cluster reports no propagation status.
    #[arg(long, default_value = "0s", value_parser = super::flags::duration, value_name = "DURATION")]
    pub settle: Duration,
}

impl PropagationArgs {
    /// The options these flags mean.
    pub fn options(&self) -> PropagationOptions {
        PropagationOptions {
            mode: match self.wait_propagation {
                WaitWhen::Auto => WaitPropagation::Auto,
                WaitWhen::Always => WaitPropagation::Always,
                WaitWhen::Never => WaitPropagation::Never,
            },
            timeout: self.propagation_timeout,
            settle: self.settle,
            ..PropagationOptions::default()
        }
    }

    /// Propagation for a command on `cluster`; none for a dry run (nothing reaches the proxies).
    pub fn propagation(&self, cluster: &Cluster, dry_run: bool) -> Propagation {
        if dry_run {
            return Propagation::disabled();
        }
        Propagation::new(
            cluster.clone(),
            self.options(),
            Arc::new(TerminalProgress::new(std::io::stderr().is_terminal())),
        )
    }
}

/// Propagation progress on standard error: `virtualservice/frontend: 61/122 proxies` as a live
/// line on a terminal; a line when a wait starts and one when it ends otherwise.
#[derive(Debug)]
pub struct TerminalProgress {
    line: ProgressLine,
    /// Objects whose wait has been announced (plain output says so once).
    announced: Mutex<Vec<String>>,
}

impl TerminalProgress {
    /// Progress drawn as a live line when `tty`.
    pub fn new(tty: bool) -> Self {
        TerminalProgress {
            line: ProgressLine::new(tty),
            announced: Mutex::new(Vec::new()),
        }
    }
}

/// `k/N proxies`, or what is known of it.
fn proxies(acked: Option<u64>, total: Option<u64>) -> String {
    match (acked, total) {
        (Some(k), Some(n)) => format!("{k}/{n} proxies"),
        _ => "propagating".to_string(),
    }
}

impl PropagationProgress for TerminalProgress {
    fn report(&self, event: ProgressEvent<'_>) {
        match event {
            ProgressEvent::Propagating {
                object,
                acked,
                total,
            } => {
                if self.line.is_live() {
                    self.line
                        .update(&format!("  {object}: {}", proxies(acked, total)));
                    return;
                }
                let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
                if !announced.iter().any(|o| o == object) {
                    announced.push(object.to_string());
                    self.line.line(&format!(
                        "  waiting for {object} to reach every proxy: {}",
                        proxies(acked, total)
                    ));
                }
            }
            ProgressEvent::Propagated {
                object,
                total,
                waited,
            } => {
                let n = if total > 0 {
                    format!("{total}/{total} proxies")
                } else {
                    "every proxy".to_string()
                };
                let waited = Duration::from_millis(waited.as_millis() as u64 / 100 * 100);
                self.line.line(&format!(
                    "  {object}: {n} ({})",
                    humantime::format_duration(waited)
                ));
            }
            ProgressEvent::Unconfirmed { message } => {
                self.line.line(&format!("warning: {message}"));
            }
            ProgressEvent::Settling { duration } => {
                let text = format!(
                    "  settling {} (propagation not reported)",
                    humantime::format_duration(duration)
                );
                self.line.line(&text);
            }
        }
    }
}

/// The `Propagation (istiod):` block of `get`: each live routing object of the release, propagated
/// (`122/122`) or still propagating; empty when the cluster reports no status at all.
pub fn status_block(live: &crate::cluster::order::ObjectSet) -> String {
    use crate::cluster::propagation::Reconciliation;
    let kinds = [
        ("destinationrule", &live.destination_rules),
        ("virtualservice", &live.virtual_services),
        ("peerauthentication", &live.peer_authentications),
    ];
    let rows: Vec<(String, Reconciliation)> = kinds
        .iter()
        .flat_map(|(kind, objects)| {
            objects
                .iter()
                .map(move |(name, o)| (format!("{kind}/{name}"), Reconciliation::of(o)))
        })
        .collect();
    if rows.iter().all(|(_, r)| *r == Reconciliation::NoStatus) {
        return String::new();
    }
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::from("Propagation (istiod):\n");
    for (name, state) in rows {
        out.push_str(&format!("  {name:<width$}  {}\n", state.short()));
    }
    out
}
