//! `kubectl canary why <release> [--decision N] [--replay [--module M]]`: the inputs a decision
//! was taken on (metrics, gates, time, stage) and its answer; `--replay` reruns the recorded
//! input through the recorded module and says whether the answer is the same.

use std::io::Write;

use clap::Args;
use policy_sdk::{Decision, Input};
use serde_json::{json, Value};

use super::flags::CacheArgs;
use super::get::load_release;
use super::{GlobalArgs, OutputFormat};
use crate::cluster::Cluster;
use crate::release::record::{json_sha256, KeptDecision, ReleaseRecord, KEPT_DECISIONS};
use crate::release::view::metric_value;
use crate::signals::hooks::gate_name;
use crate::spec::PolicySpec;
use crate::ui::table::Table;
use crate::ui::text::Safe;

/// Arguments of `why`.
#[derive(Debug, Args)]
#[command(
    after_help = "The record keeps the whole input of the last 10 decisions (the \
history keeps every decision's reason and numbers). Examples:\n  kubectl canary why shop-v2\n  \
kubectl canary why shop-v2 --decision 4 --replay\n  \
kubectl canary why shop-v2 --replay --module ./new-policy.wasm   # what would this module answer?"
)]
pub struct WhyArgs {
    /// The release name.
    pub release: String,
    /// The decision's number, as `history` numbers them (default: the newest kept).
    #[arg(long, value_name = "N")]
    pub decision: Option<u64>,
    /// Rerun the recorded input through the recorded module (same sha256) and compare answers.
    #[arg(long)]
    pub replay: bool,
    /// With --replay: run this module instead (a file, builtin:NAME, https:// or oci://), to see
    /// what it would have answered.
    #[arg(long, value_name = "MODULE", requires = "replay")]
    pub module: Option<String>,
    /// Print the decision, its whole input and the replay as JSON or YAML.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Policy cache.
    #[command(flatten)]
    pub policy: CacheArgs,
}

/// A replay's result.
struct Replay {
    module: String,
    module_sha256: String,
    decision: Decision,
    output_sha256: String,
}

/// `why <release>`.
pub async fn run(args: WhyArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    let record = load_release(&cluster, &args.release).await?.record;
    let kept = pick(&record, args.decision)?;
    let input = record.kept_input(kept).map_err(|e| {
        anyhow::anyhow!("cannot rebuild the input of decision {}: {e}", kept.number)
    })?;
    let replay = if args.replay {
        Some(replay(
            &record,
            &input,
            args.module.as_deref(),
            &args.policy,
        )?)
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(format) => {
            let value = as_json(kept, &input, replay.as_ref());
            super::write_value(&mut out, &value, format)?;
        }
        None => write!(out, "{}", text(&record, kept, &input, replay.as_ref()))?,
    }
    Ok(out.flush()?)
}

fn pick(record: &ReleaseRecord, number: Option<u64>) -> anyhow::Result<&KeptDecision> {
    let range = match (record.decisions.first(), record.decisions.last()) {
        (Some(first), Some(last)) => format!("decisions {}–{}", first.number, last.number),
        _ => "none".to_string(),
    };
    let found = match number {
        None => record.decisions.last(),
        Some(n) => record.decisions.iter().find(|k| k.number == n),
    };
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "{} of release {} is not kept: the record keeps the whole input of the last \
             {KEPT_DECISIONS} decisions ({range}); `kubectl canary history {}` shows every \
             decision's reason",
            number.map_or("no decision".to_string(), |n| format!("decision {n}")),
            record.spec.name(),
            record.spec.name()
        )
    })
}

fn replay(
    record: &ReleaseRecord,
    input: &Input,
    module: Option<&str>,
    cache: &CacheArgs,
) -> anyhow::Result<Replay> {
    let decider = match module {
        None => super::policy_decider::for_record(record, cache.cache_dir.as_deref())?,
        Some(module) => {
            let spec = PolicySpec {
                module: module.to_string(),
                sha256: None,
                ..record.spec.spec.policy.clone()
            };
            super::policy_decider::for_spec(&spec, cache.cache_dir.as_deref())?
        }
    };
    let decision = decider
        .decide(input)
        .map_err(|e| anyhow::anyhow!("the replay failed: {e}"))?;
    Ok(Replay {
        module: decider.identity().short(),
        module_sha256: decider.identity().sha256.clone(),
        output_sha256: json_sha256(&decision),
        decision,
    })
}

fn stage_text(stage: Option<&(u32, String)>) -> String {
    match stage {
        Some((index, name)) => format!(" → stage {index} ({})", Safe(name)),
        None => String::new(),
    }
}

fn text(
    record: &ReleaseRecord,
    kept: &KeptDecision,
    input: &Input,
    replay: Option<&Replay>,
) -> String {
    let mut s = String::new();
    let newest = record.decisions.last().map_or(kept.number, |k| k.number);
    s.push_str(&format!(
        "decision {} of release {} (the newest is {newest}; inputs kept for the last {KEPT_DECISIONS})\n",
        kept.number,
        record.spec.name()
    ));
    let mut t = Table::new(&["INPUT", ""]);
    t.row(vec![
        "event".into(),
        format!("{:?}", kept.event).to_lowercase(),
    ]);
    t.row(vec!["time".into(), kept.now.clone()]);
    t.row(vec![
        "stage".into(),
        format!(
            "{} in force since {}, phase {:?}{}",
            kept.state.stage,
            kept.state.stage_started_at.as_deref().unwrap_or("-"),
            kept.state.phase,
            if kept.state.paused { ", paused" } else { "" }
        ),
    ]);
    t.row(vec![
        "history".into(),
        format!(
            "{} earlier decisions shown to the policy",
            input.state.history.len()
        ),
    ]);
    s.push_str(&t.render());
    if input.metrics.is_empty() {
        s.push_str("metrics: none (the release has no analysis)\n");
    } else {
        s.push_str("metrics:\n");
        let mut m = Table::new(&["  METRIC", "SERVICE", "STABLE", "CANARY", "ERROR"]);
        for (name, sample) in &input.metrics {
            let error = sample
                .error
                .as_deref()
                .map(|e| Safe(e).to_string())
                .unwrap_or_default();
            if sample.services.is_empty() {
                m.row(vec![
                    format!("  {name}"),
                    "-".into(),
                    metric_value(sample.stable),
                    metric_value(sample.canary),
                    error,
                ]);
            } else {
                for (i, (service, v)) in sample.services.iter().enumerate() {
                    m.row(vec![
                        format!("  {name}"),
                        service.clone(),
                        metric_value(v.stable),
                        metric_value(v.canary),
                        if i == 0 { error.clone() } else { String::new() },
                    ]);
                }
            }
        }
        s.push_str(&m.render());
    }
    if !input.gates.is_empty() {
        s.push_str("gates:\n");
        for (name, gate) in &input.gates {
            s.push_str(&format!(
                "  {name} ({}): {} — {}\n",
                gate_name(gate.on),
                if gate.open { "open" } else { "closed" },
                Safe(&gate.answer)
            ));
        }
    }
    s.push_str(&format!(
        "answer: {}{}: {}\n",
        kept.action.as_str(),
        stage_text(kept.stage.as_ref()),
        Safe(&kept.reason)
    ));
    s.push_str(&format!("module: sha256 {}\n", kept.module_sha256));
    let rebuilt = json_sha256(input);
    if rebuilt != kept.input_sha256 {
        s.push_str(&format!(
            "input: rebuilt with sha256 {}, not the recorded {}: the record changed since\n",
            &rebuilt[..12],
            &kept.input_sha256[..kept.input_sha256.len().min(12)]
        ));
    }
    if let Some(replay) = replay {
        if replay.output_sha256 == kept.output_sha256 {
            s.push_str(&format!(
                "replay: the same answer from {} (output sha256 {})\n",
                replay.module,
                &replay.output_sha256[..12]
            ));
        } else {
            let changed = if replay.module_sha256 == kept.module_sha256 {
                "the same module answered differently (is it deterministic?)".to_string()
            } else {
                format!(
                    "the module changed (recorded sha256 {}, replayed {})",
                    &kept.module_sha256[..kept.module_sha256.len().min(12)],
                    replay.module
                )
            };
            s.push_str(&format!("replay: a different answer: {changed}\n"));
            s.push_str(&format!(
                "  recorded: {}{}: {}\n",
                kept.action.as_str(),
                stage_text(kept.stage.as_ref()),
                Safe(&kept.reason)
            ));
            let stage = replay
                .decision
                .stage
                .as_ref()
                .map(|st| (st.index, st.name.clone()));
            s.push_str(&format!(
                "  replayed: {}{}: {}\n",
                replay.decision.action.as_str(),
                stage_text(stage.as_ref()),
                Safe(&replay.decision.reason)
            ));
        }
    }
    s
}

fn as_json(kept: &KeptDecision, input: &Input, replay: Option<&Replay>) -> Value {
    let mut value = json!({
        "decision": kept.number,
        "input": input,
        "inputSha256": kept.input_sha256,
        "moduleSha256": kept.module_sha256,
        "output": {
            "action": kept.action,
            "reason": kept.reason,
            "stage": kept.stage.as_ref().map(|(i, n)| json!({"index": i, "name": n})),
            "sha256": kept.output_sha256,
        },
    });
    if let Some(replay) = replay {
        value["replay"] = json!({
            "module": replay.module,
            "moduleSha256": replay.module_sha256,
            "same": replay.output_sha256 == kept.output_sha256,
            "decision": replay.decision,
            "sha256": replay.output_sha256,
        });
    }
    value
}
