//! `kubectl canary plan -f spec.yaml`: every stage of a release, offline. The spec's policy runs
//! exactly as it would against a cluster, with the clock advanced by the waits it asks for and
//! metrics simulated healthy (or read from `--metrics`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use policy_sdk::{
    Action, Event, HistoryEntry, Input, MetricSample, Phase, Role, State, VersionValues,
    ABI_VERSION,
};
use serde_json::{json, Value};

use super::flags::{CacheArgs, SpecFileArgs};
use super::{GlobalArgs, OutputFormat};
use crate::release::desired::render_options;
use crate::release::machine;
use crate::release::view::share;
use crate::render;
use crate::spec::{self, MetricTemplate, Release};
use crate::ui::table::Table;
use crate::ui::text::{safe, Safe};
use crate::ui::tree::{describe_match_text, describe_rule};

/// Arguments of `plan`.
#[derive(Debug, Args)]
#[command(after_help = "Output: a routing table per stage; -o json gives\n  \
{\"stages\": [{\"index\", \"name\", \"action\", \"reason\", \"services\": {\"<svc>\": [{\"rule\", \"match\", \"destinations\": [{\"subset\", \"percent\"}]}]}}]}\n\
and -o yaml the Istio objects of every stage, each stage's documents after a comment naming it.")]
pub struct PlanArgs {
    /// The release spec.
    #[command(flatten)]
    pub spec: SpecFileArgs,
    /// Metric samples handed to the policy at every decision, as JSON
    /// (`{"success-rate": {"stable": 99.9, "canary": 97.0}}`); default: healthy values.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Stop after this many decisions (a policy that never completes).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_decisions: u32,
    /// Policy cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Print JSON (the stages) or YAML (the objects of every stage).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// One planned stage.
struct Planned {
    stage: policy_sdk::Stage,
    action: Action,
    reason: String,
    phase: Phase,
}

/// Run the plan and print it.
pub fn run(args: PlanArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let release = spec::load_file(&args.spec.file)?;
    let decider =
        super::policy_decider::for_spec(&release.spec.policy, args.cache.cache_dir.as_deref())?;
    let metrics = match &args.metrics {
        Some(path) => {
            let text =
                crate::bounds::read(path, &path.display().to_string(), crate::bounds::METRICS)?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: expected {{\"<metric>\": {{\"stable\": n, \"canary\": n}}}}",
                    path.display()
                )
            })?
        }
        None => healthy_metrics(&release),
    };
    let (stages, finished) = plan(&release, decider.as_ref(), &metrics, args.max_decisions)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(OutputFormat::Json) => {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&to_json(&release, &stages))?
            )?;
        }
        Some(OutputFormat::Yaml) => {
            let info = release.release_info();
            let opts = render_options(&release, &[Role::Stable, Role::Canary]);
            for (i, p) in stages.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                writeln!(
                    out,
                    "# stage {} ({}): {} — {}",
                    p.stage.index,
                    Safe(&p.stage.name),
                    p.action.as_str(),
                    Safe(&p.reason)
                )?;
                write!(out, "{}", render::render(&info, &p.stage, &opts)?.to_yaml())?;
            }
        }
        None => {
            for p in &stages {
                writeln!(
                    out,
                    "stage {} ({}) — {}: {}",
                    p.stage.index,
                    Safe(&p.stage.name),
                    p.action.as_str(),
                    Safe(&p.reason)
                )?;
                let mut table = Table::new(&["service", "rule", "when", "destinations"]);
                for svc in &release.spec.services {
                    for (i, rule) in p
                        .stage
                        .routes
                        .get(&svc.name)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let line = safe(&describe_rule(rule)).into_owned();
                        let (when, to) = line.split_once(" → ").unwrap_or((line.as_str(), ""));
                        table.row(vec![
                            svc.name.clone(),
                            format!("#{i}"),
                            when.to_string(),
                            to.to_string(),
                        ]);
                    }
                }
                write!(out, "{}", table.render())?;
                writeln!(out)?;
            }
            let last = stages.last().map(|p| p.phase);
            if finished {
                writeln!(
                    out,
                    "{} decisions; the release ends {:?}.",
                    stages.len(),
                    last.unwrap_or(Phase::Progressing)
                )?;
            }
        }
    }
    out.flush()?;
    if !finished {
        // The stages planned so far are printed above; the error says where the plan stopped.
        let at = match stages.last() {
            Some(p) => format!("stage {} ({})", p.stage.index, p.stage.name),
            None => "the start".to_string(),
        };
        anyhow::bail!(
            "the policy did not finish within {} decision{} (--max-decisions): the plan stops \
             at {at}, still Progressing",
            args.max_decisions,
            if args.max_decisions == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// Healthy samples for every metric the spec or the policy config names, comfortably inside
/// each threshold of the config (`thresholds`, or its older name `analysis`), shaped as the host
/// measures them: per service in a multi-service release.
fn healthy_metrics(release: &Release) -> BTreeMap<String, MetricSample> {
    let healthy = |min: Option<f64>, max: Option<f64>| match (min, max) {
        (Some(min), _) => min.max(0.0) + (100.0 - min).clamp(0.0, 1.0) * 0.9 + 0.0001,
        (None, Some(max)) => max / 2.0,
        (None, None) => 100.0,
    };
    let config = &release.spec.policy.config;
    let thresholds: Vec<&Value> = ["thresholds", "analysis"]
        .iter()
        .filter_map(|key| config[*key].as_array())
        .flatten()
        .collect();
    let mut values: BTreeMap<String, f64> = BTreeMap::new();
    if let Some(analysis) = &release.spec.analysis {
        for m in &analysis.metrics {
            let v = match m.template {
                Some(MetricTemplate::RequestSuccessRate) => 99.9,
                Some(
                    MetricTemplate::RequestDurationP99
                    | MetricTemplate::RequestDurationP90
                    | MetricTemplate::RequestDurationP50,
                ) => 100.0,
                Some(MetricTemplate::RequestRate) => 10.0,
                None => 1.0,
            };
            values.insert(m.name.clone(), v);
        }
    }
    for entry in thresholds {
        if let Some(name) = entry["metric"].as_str() {
            // With an analysis, only its metrics are measured (a threshold on another one is
            // the policy's to refuse, as it would be live); without, the thresholds' metrics
            // are simulated so that a config can be planned before its analysis is written.
            if release.spec.analysis.is_some() && !values.contains_key(name) {
                continue;
            }
            values.insert(
                name.to_string(),
                healthy(entry["min"].as_f64(), entry["max"].as_f64()),
            );
        }
    }
    let services = &release.spec.services;
    values
        .into_iter()
        .map(|(name, v)| {
            let sample = if services.len() == 1 {
                MetricSample::both(v)
            } else {
                MetricSample {
                    services: services
                        .iter()
                        .map(|s| {
                            let both = VersionValues {
                                stable: Some(v),
                                canary: Some(v),
                            };
                            (s.name.clone(), both)
                        })
                        .collect(),
                    ..MetricSample::default()
                }
            };
            (name, sample)
        })
        .collect()
}

/// The stages `plan` pre-approves (a ramp longer than this is not a release one approves).
const MAX_PLANNED_STAGES: u32 = 100;

fn plan(
    release: &Release,
    decider: &dyn crate::release::Decider,
    metrics: &BTreeMap<String, MetricSample>,
    max_decisions: u32,
) -> anyhow::Result<(Vec<Planned>, bool)> {
    let info = release.release_info();
    let mut now = jiff::Timestamp::now();
    let mut state = State {
        stage: 0,
        phase: Phase::Progressing,
        stage_started_at: None,
        history: Vec::new(),
        override_: None,
        paused: false,
        approvals: Vec::new(),
    };
    let mut stages: Vec<Planned> = Vec::new();
    let mut event = Event::Start;
    let mut holds = 0;
    let measured = release.measures_signals();
    // The plan assumes every approval a policy may wait for is given (`approve` is an
    // operator's, not the simulated clock's).
    state.approvals = (1..=MAX_PLANNED_STAGES)
        .map(|stage| policy_sdk::Approval {
            stage,
            by: "plan".to_string(),
            at: String::new(),
        })
        .collect();
    for _ in 0..max_decisions {
        let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let input = Input {
            abi: ABI_VERSION,
            event,
            now: stamp.clone(),
            release: info.clone(),
            config: release.spec.policy.config.clone(),
            state: state.clone(),
            metrics: metrics.clone(),
            gates: BTreeMap::new(),
        };
        let decision = decider
            .decide(&input)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("decision {} ({event:?})", stages.len() + holds))?;
        let wait = decision.requeue_after_seconds.unwrap_or(60).max(1);
        now = now
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(wait).unwrap_or(60),
            ))
            .unwrap_or(now);
        let was_start = event == Event::Start;
        if was_start && decision.action == Action::Rollback {
            anyhow::bail!("the policy refused to start: {}", Safe(&decision.reason));
        }
        event = Event::Step;
        // The live engine's transition (release::machine): same checks, same phases.
        let current = stages.last().map(|p| &p.stage);
        let outcome = machine::policy_outcome(&info, state.phase, current, &decision)
            .map_err(|refusal| anyhow::anyhow!("the policy {refusal}"))
            .with_context(|| format!("decision {} ({event:?})", stages.len() + holds))?;
        let Some((_, stage, phase)) = outcome else {
            if was_start {
                anyhow::bail!("the policy held at start: {}", Safe(&decision.reason));
            }
            holds += 1;
            if holds > 50 {
                anyhow::bail!("the policy keeps holding: {}", Safe(&decision.reason));
            }
            if measured {
                // As the live engine does: a check on signals is recorded, holds included, so
                // a policy that counts consecutive passes sees them.
                state.history.push(HistoryEntry {
                    stage: state.stage,
                    at: stamp,
                    action: Action::Hold,
                    reason: decision.reason.clone(),
                    metrics: metrics.clone(),
                    gates: BTreeMap::new(),
                });
            }
            continue;
        };
        state.stage = stage.index;
        state.phase = phase;
        state.stage_started_at = Some(stamp.clone());
        state.history.push(HistoryEntry {
            stage: stage.index,
            at: stamp,
            action: decision.action,
            reason: decision.reason.clone(),
            metrics: metrics.clone(),
            gates: BTreeMap::new(),
        });
        stages.push(Planned {
            stage,
            action: decision.action,
            reason: decision.reason,
            phase,
        });
        if phase != Phase::Progressing {
            return Ok((stages, true));
        }
    }
    Ok((stages, false))
}

fn to_json(release: &Release, stages: &[Planned]) -> Value {
    let info = release.release_info();
    let stages: Vec<Value> = stages
        .iter()
        .map(|p| {
            let services: serde_json::Map<String, Value> = info
                .services
                .iter()
                .map(|svc| {
                    let rules: Vec<Value> = p
                        .stage
                        .routes
                        .get(&svc.name)
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .map(|(i, rule)| {
                            let destinations: Vec<Value> = [Role::Stable, Role::Canary]
                                .into_iter()
                                .filter(|role| rule.to.iter().any(|d| d.subset == *role))
                                .map(|role| {
                                    let subset = match role {
                                        Role::Stable => &svc.stable.subset,
                                        Role::Canary => &svc.canary.subset,
                                    };
                                    json!({"subset": subset, "percent": share(rule, role)})
                                })
                                .collect();
                            json!({
                                "rule": i,
                                "match": if rule.matches.is_empty() { Value::Null } else { json!(rule.matches.iter().map(describe_match_text).collect::<Vec<_>>()) },
                                "destinations": destinations,
                            })
                        })
                        .collect();
                    (svc.name.clone(), Value::Array(rules))
                })
                .collect();
            json!({
                "index": p.stage.index,
                "name": p.stage.name,
                "action": p.action.as_str(),
                "reason": p.reason,
                "services": services,
            })
        })
        .collect();
    json!({ "stages": stages })
}
