//! The release state machine, pure: from a record and a decision (the policy's or the
//! operator's), the next record — or why there is none. No I/O: the protocol that reads the
//! cluster, writes the record and applies the objects is [`super::engine`]; `plan` runs the same
//! transitions offline, so offline and live agree on every phase change.
//!
//! ```text
//!              start (advance|hold)          start (complete)
//!   (none) ──────────────────────► Progressing ─────────────────────┐
//!                                   │  ▲   │ step: advance            │
//!                  set-weight       │  │   │ (a new stage)            ▼
//!         Paused ◄──────────────────┘  │   ├──────────────────► Promoted ──finalize──► Finalized
//!            └──── step ───────────────┘   │ step: complete          ▲ ◄───undo──────────┘
//!                                          │ promote ────────────────┘
//!                                          │ step: rollback ─────────────────────► RolledBack
//!   any phase but Finalized ── abort ─────────────────────────────────────────────► Aborted
//! ```
//!
//! What the host checks before a decision is written, whatever the policy says
//! ([`check_meaning`]): `rollback` sends every service's default traffic to stable; `complete`
//! sends all traffic of every service to the canary. A decision whose routes are the stage in
//! force and whose phase is the phase in force changes nothing: it is a hold, not a write. A
//! command that finds its work already done (`finalize` of a finalized release, `undo` of an
//! undone one, `abort` of an aborted one) reports "already …" and changes nothing.

use std::collections::BTreeMap;

use policy_sdk::{
    Action, Approval, Decision, Destination, Event, Phase, ReleaseInfo, Role, Stage, WeightOverride,
};
use serde_json::Value;

use super::record::{PauseMark, ReleaseRecord, Snapshot};
use super::view::share;
use crate::render;

/// Why a command cannot go ahead (nothing is written).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The command does not apply in the release's phase.
    #[error("release is {phase:?}: {hint}")]
    WrongPhase {
        /// The phase in force.
        phase: Phase,
        /// What to do instead.
        hint: String,
    },
    /// The decision does not mean what its action says, or does not fit the command.
    #[error("{0}")]
    Decision(String),
    /// `set-weight --service` names a service the release does not have.
    #[error("release {release} has no service {service:?} (its services: {known})")]
    UnknownService {
        /// Release name.
        release: String,
        /// The name given.
        service: String,
        /// The services of the release, comma-separated.
        known: String,
    },
}

/// The next record, and what to report about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    /// The record to write (its generation one above the record it came from).
    pub record: ReleaseRecord,
    /// The action recorded.
    pub action: Action,
    /// The reason recorded (exactly the history entry's).
    pub reason: String,
    /// When the policy wants to be asked again, seconds.
    pub requeue_after_seconds: Option<u64>,
}

/// What a command does to a release.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Write this record, then apply what it describes.
    Change(Box<Next>),
    /// Nothing to write: a hold, or the work is already done.
    Unchanged {
        /// `Some(Hold)` for a policy hold; `None` when the command had nothing to do.
        action: Option<Action>,
        /// Why nothing changed.
        reason: String,
        /// When the policy wants to be asked again, seconds.
        requeue_after_seconds: Option<u64>,
    },
}

/// Where a policy decision takes a release in `phase` at `current` (`None` at start):
/// `Ok(None)` is a hold (nothing to write), `Ok(Some((action, stage, phase)))` a change.
/// Refuses a decision without the stage its action needs, and one that does not mean what its
/// action says ([`check_meaning`]).
pub fn policy_outcome(
    info: &ReleaseInfo,
    phase: Phase,
    current: Option<&Stage>,
    decision: &Decision,
) -> Result<Option<(Action, Stage, Phase)>, Refusal> {
    let stage = match (decision.action, &decision.stage) {
        (Action::Hold, _) => return Ok(None),
        (Action::Rollback, None) => render::baseline_stage(info),
        (_, Some(stage)) => stage.clone(),
        (action, None) => {
            return Err(Refusal::Decision(format!(
                "answered {} without a stage",
                action.as_str()
            )))
        }
    };
    check_meaning(info, decision.action, &stage)?;
    let next_phase = match decision.action {
        Action::Complete => Phase::Promoted,
        Action::Rollback => Phase::RolledBack,
        _ => Phase::Progressing,
    };
    if current.is_some_and(|c| c.routes == stage.routes) && next_phase == phase {
        return Ok(None);
    }
    Ok(Some((decision.action, stage, next_phase)))
}

/// Check that `stage` means what `action` says: `rollback` sends the default (catch-all)
/// traffic of every service to stable, `complete` sends all traffic of every service to the
/// canary. The error names the action and the weights found.
pub fn check_meaning(info: &ReleaseInfo, action: Action, stage: &Stage) -> Result<(), Refusal> {
    let (role, scope) = match action {
        Action::Rollback => (Role::Stable, "default traffic to stable"),
        Action::Complete => (Role::Canary, "all traffic to the canary"),
        Action::Advance | Action::Hold => return Ok(()),
    };
    let mut wrong = Vec::new();
    for svc in &info.services {
        let rules = stage
            .routes
            .get(&svc.name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let checked: Vec<(usize, &policy_sdk::Rule)> = match action {
            Action::Rollback => rules
                .iter()
                .enumerate()
                .rev()
                .find(|(_, r)| r.matches.is_empty())
                .into_iter()
                .collect(),
            _ => rules.iter().enumerate().collect(),
        };
        if checked.is_empty() {
            wrong.push(format!("service {}: no rules", svc.name));
        }
        for (i, rule) in checked {
            if share(rule, role) < 100.0 {
                wrong.push(format!(
                    "service {} rule #{i}: {}",
                    svc.name,
                    weights_text(rule)
                ));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Decision(format!(
            "answered {} with a stage that does not send {scope} ({})",
            action.as_str(),
            wrong.join("; ")
        )))
    }
}

/// `stable 50%, canary 50%`: where a rule sends traffic.
fn weights_text(rule: &policy_sdk::Rule) -> String {
    [Role::Stable, Role::Canary]
        .into_iter()
        .filter(|role| rule.to.iter().any(|d| d.subset == *role))
        .map(|role| {
            let name = match role {
                Role::Stable => "stable",
                Role::Canary => "canary",
            };
            format!("{name} {:.0}%", share(rule, role))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The record `start` writes for a first decision: `advance` or `complete` with a stage
/// (`complete` makes the release Promoted at once, as `plan` says), or `hold` (the baseline
/// stage). `generation` is the generation of the record it replaces (0 for none).
pub fn start(
    mut record: ReleaseRecord,
    decision: &Decision,
    generation: u64,
    now: &str,
) -> Result<Next, Refusal> {
    let info = record.spec.release_info();
    if matches!(decision.action, Action::Rollback) {
        // A policy that rolls back before anything began refuses the start (its config does
        // not fit the spec, say): nothing is written.
        return Err(Refusal::Decision(format!(
            "refused to start: {}",
            decision.reason
        )));
    }
    let (action, stage, phase) = policy_outcome(&info, Phase::Progressing, None, decision)?
        .unwrap_or((
            Action::Hold,
            render::baseline_stage(&info),
            Phase::Progressing,
        ));
    record.phase = phase;
    record.generation = generation + 1;
    record.stage_started_at = now.to_string();
    record.record(action, Some(stage), &decision.reason, now);
    Ok(Next {
        record,
        action,
        reason: decision.reason.clone(),
        requeue_after_seconds: decision.requeue_after_seconds,
    })
}

/// Whether `event` applies to a release in `phase`.
pub fn check_phase(phase: Phase, event: Event) -> Result<(), Refusal> {
    let hint = match (phase, event) {
        (Phase::Finalized, _) => Some("it is done; `kubectl canary undo` reverts the finalize"),
        (Phase::Aborted | Phase::RolledBack | Phase::Failed, Event::Abort) => None,
        (Phase::Aborted | Phase::RolledBack | Phase::Failed, _) => {
            Some("all traffic is on stable; start the release again to retry")
        }
        (Phase::Promoted, Event::Step | Event::Tick | Event::SetWeight) => {
            Some("all traffic is on the canary; finalize it, or abort to go back to stable")
        }
        _ => None,
    };
    match hint {
        Some(hint) => Err(Refusal::WrongPhase {
            phase,
            hint: hint.to_string(),
        }),
        None => Ok(()),
    }
}

/// Check a `set-weight` override against the release: its service, if named, must exist.
pub fn check_weight(record: &ReleaseRecord, weight: &WeightOverride) -> Result<(), Refusal> {
    let Some(service) = &weight.service else {
        return Ok(());
    };
    let names: Vec<&str> = record
        .spec
        .spec
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    if names.contains(&service.as_str()) {
        Ok(())
    } else {
        Err(Refusal::UnknownService {
            release: record.spec.name().to_string(),
            service: service.clone(),
            known: names.join(", "),
        })
    }
}

/// The next record after `decision` for `event` (step, tick, promote, abort, set-weight).
/// Promote and abort are the operator's: the policy may shape the stage, but a hold does not
/// block them. The caller has checked the phase ([`check_phase`]) and the override
/// ([`check_weight`]).
pub fn decide(
    record: &ReleaseRecord,
    event: Event,
    decision: &Decision,
    weight: Option<&WeightOverride>,
    now: &str,
) -> Result<Verdict, Refusal> {
    let info = record.spec.release_info();
    let operator_stage = |action: Action, fallback: Stage| {
        if decision.action == action {
            decision.stage.clone().unwrap_or(fallback)
        } else {
            fallback
        }
    };
    let (action, stage, phase, reason) = match event {
        Event::Abort => {
            let stage = operator_stage(Action::Rollback, render::baseline_stage(&info));
            check_meaning(&info, Action::Rollback, &stage)?;
            (
                Action::Rollback,
                stage,
                Phase::Aborted,
                reason_or(decision, "aborted by operator: all traffic to stable"),
            )
        }
        Event::Promote => {
            let stage = operator_stage(Action::Complete, render::final_stage(&info));
            check_meaning(&info, Action::Complete, &stage)?;
            (
                Action::Complete,
                stage,
                Phase::Promoted,
                reason_or(decision, "promoted by operator: all traffic to the canary"),
            )
        }
        Event::SetWeight => {
            let w = weight.map_or(0, |w| w.weight);
            let mut stage = match (&decision.action, &decision.stage) {
                (Action::Hold | Action::Advance, None) => with_weight(&record.stage, weight),
                (_, Some(stage)) => stage.clone(),
                (_, None) => record.stage.clone(),
            };
            // `--service S`: only S changes, whatever the policy rendered for the others.
            if let Some(only) = weight.and_then(|w| w.service.as_deref()) {
                for (service, rules) in &mut stage.routes {
                    if service != only {
                        if let Some(kept) = record.stage.routes.get(service) {
                            rules.clone_from(kept);
                        }
                    }
                }
            }
            let target = match weight.and_then(|w| w.service.as_deref()) {
                Some(service) => format!("canary {w}% for service {service}"),
                None => format!("canary {w}%"),
            };
            (
                Action::Advance,
                stage,
                Phase::Paused,
                format!("weight set by operator: {target}"),
            )
        }
        Event::Start | Event::Step | Event::Tick => {
            match policy_outcome(&info, record.phase, Some(&record.stage), decision)? {
                None => {
                    let reason = if decision.action == Action::Hold {
                        decision.reason.clone()
                    } else {
                        format!(
                            "the policy answered {} with the stage in force ({}); holding: {}",
                            decision.action.as_str(),
                            record.stage.name,
                            decision.reason
                        )
                    };
                    return Ok(Verdict::Unchanged {
                        action: Some(Action::Hold),
                        reason,
                        requeue_after_seconds: decision.requeue_after_seconds,
                    });
                }
                Some((action, stage, phase)) => (action, stage, phase, decision.reason.clone()),
            }
        }
    };
    if stage.routes == record.stage.routes && phase == record.phase {
        let reason = match event {
            Event::Abort => "already aborted: all traffic is on stable".to_string(),
            Event::Promote => "already promoted: all traffic is on the canary".to_string(),
            _ => format!(
                "the stage in force ({}) already routes this way; nothing to change",
                record.stage.name
            ),
        };
        return Ok(Verdict::Unchanged {
            action: None,
            reason,
            requeue_after_seconds: None,
        });
    }
    let mut next = record.clone();
    next.weight_override = match event {
        Event::SetWeight => weight.cloned(),
        _ if action == Action::Advance => None,
        _ => next.weight_override,
    };
    next.phase = phase;
    if matches!(event, Event::Promote | Event::Abort) {
        // The operator took the release out of its pause; `set-weight` keeps it.
        next.paused = None;
    } else if next.paused.is_some() {
        next.phase = Phase::Paused;
    }
    next.generation = record.generation + 1;
    next.record(action, Some(stage), &reason, now);
    Ok(Verdict::Change(Box::new(Next {
        record: next,
        action,
        reason,
        requeue_after_seconds: decision.requeue_after_seconds,
    })))
}

/// Finalize: the canary becomes the only version; `stable` are the stable Deployments found
/// (deleted unless `keep_old`, kept in the snapshot for `undo`). Only after a promotion; a
/// finalized release is "already finalized".
pub fn finalize(
    record: &ReleaseRecord,
    stable: BTreeMap<String, Value>,
    keep_old: bool,
    now: &str,
) -> Result<Verdict, Refusal> {
    match record.phase {
        Phase::Finalized => {
            return Ok(Verdict::Unchanged {
                action: None,
                reason: "already finalized: the canary is the only version".into(),
                requeue_after_seconds: None,
            })
        }
        Phase::Promoted => {}
        phase => {
            return Err(Refusal::WrongPhase {
                phase,
                hint:
                    "finalize needs all traffic on the canary first: run `kubectl canary promote`"
                        .into(),
            })
        }
    }
    let info = record.spec.release_info();
    let mut next = record.clone();
    let reason = if keep_old {
        "finalized: canary is the only version (old Deployments kept)".to_string()
    } else {
        format!(
            "finalized: canary is the only version; deleting {}",
            if stable.is_empty() {
                "nothing".to_string()
            } else {
                stable.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        )
    };
    next.delete_deployments = if keep_old {
        Vec::new()
    } else {
        stable.keys().cloned().collect()
    };
    next.snapshot = Some(Snapshot {
        deployments: stable,
        stage: Some(record.stage.clone()),
        at: now.to_string(),
    });
    next.roles = vec![Role::Canary];
    next.phase = Phase::Finalized;
    next.generation = record.generation + 1;
    let mut stage = render::final_stage(&info);
    stage.index = record.stage.index + 1;
    next.record(Action::Complete, Some(stage), &reason, now);
    Ok(Verdict::Change(Box::new(Next {
        record: next,
        action: Action::Complete,
        reason,
        requeue_after_seconds: None,
    })))
}

/// Undo a finalize: the deleted Deployments, the stable subset and the routing in force
/// before finalize come back; the release is Promoted again. An undone release (Promoted, with
/// a snapshot) is "already undone".
pub fn undo(record: &ReleaseRecord, now: &str) -> Result<Verdict, Refusal> {
    let snapshot = match (&record.phase, &record.snapshot) {
        (Phase::Finalized, Some(snapshot)) => snapshot.clone(),
        (Phase::Promoted, Some(snapshot)) => {
            return Ok(Verdict::Unchanged {
                action: None,
                reason: format!(
                    "already undone: the finalize of {} was reverted; the release is Promoted",
                    snapshot.at
                ),
                requeue_after_seconds: None,
            })
        }
        (phase, _) => {
            return Err(Refusal::WrongPhase {
                phase: *phase,
                hint: "undo reverts a finalize, and this release is not finalized".into(),
            })
        }
    };
    let info = record.spec.release_info();
    let mut next = record.clone();
    next.roles = vec![Role::Stable, Role::Canary];
    next.phase = Phase::Promoted;
    next.delete_deployments = Vec::new();
    next.generation = record.generation + 1;
    let reason = format!(
        "undo of finalize ({}): stable version restored",
        snapshot.at
    );
    let stage = snapshot
        .stage
        .clone()
        .unwrap_or_else(|| render::final_stage(&info));
    next.record(Action::Complete, Some(stage), &reason, now);
    Ok(Verdict::Change(Box::new(Next {
        record: next,
        action: Action::Complete,
        reason,
        requeue_after_seconds: None,
    })))
}

/// A hold that is recorded (a release whose decisions rest on metrics or gates keeps every
/// check in its history, so that a policy can count consecutive passes and failures, and `why`
/// can show it): the same routing and generation, one more history entry.
pub fn recorded_hold(record: &ReleaseRecord, decision: &Decision, reason: &str, now: &str) -> Next {
    let mut next = record.clone();
    next.record(Action::Hold, None, reason, now);
    Next {
        record: next,
        action: Action::Hold,
        reason: reason.to_string(),
        requeue_after_seconds: decision.requeue_after_seconds,
    }
}

/// `pause`: the release holds (phase Paused) until `resume`, whoever drives it. Only while it
/// can still progress.
pub fn pause(record: &ReleaseRecord, by: &str, now: &str) -> Result<Verdict, Refusal> {
    if let Some(mark) = &record.paused {
        return Ok(Verdict::Unchanged {
            action: None,
            reason: format!("already paused by {} at {}", mark.by, mark.at),
            requeue_after_seconds: None,
        });
    }
    if !matches!(record.phase, Phase::Progressing | Phase::Paused) {
        return Err(Refusal::WrongPhase {
            phase: record.phase,
            hint: "only a progressing release can be paused".to_string(),
        });
    }
    let mut next = record.clone();
    next.paused = Some(PauseMark {
        by: by.to_string(),
        at: now.to_string(),
        phase: record.phase,
    });
    next.phase = Phase::Paused;
    let reason = format!("paused by {by}");
    Ok(Verdict::Change(Box::new(Next {
        record: next,
        action: Action::Hold,
        reason,
        requeue_after_seconds: None,
    })))
}

/// `resume`: back to the phase before the pause.
pub fn resume(record: &ReleaseRecord, by: &str) -> Result<Verdict, Refusal> {
    let Some(mark) = &record.paused else {
        return Ok(Verdict::Unchanged {
            action: None,
            reason: "not paused; nothing to resume".to_string(),
            requeue_after_seconds: None,
        });
    };
    let mut next = record.clone();
    next.phase = mark.phase;
    next.paused = None;
    Ok(Verdict::Change(Box::new(Next {
        record: next,
        action: Action::Hold,
        reason: format!("resumed by {by} (paused by {} at {})", mark.by, mark.at),
        requeue_after_seconds: None,
    })))
}

/// `approve --stage N` (default: the next stage): recorded for policies that wait for a
/// person. A stage already passed, or approved, changes nothing.
pub fn approve(
    record: &ReleaseRecord,
    stage: Option<u32>,
    by: &str,
    now: &str,
) -> Result<Verdict, Refusal> {
    if record.is_terminal() || record.phase == Phase::Promoted {
        return Err(Refusal::WrongPhase {
            phase: record.phase,
            hint: "there is no stage left to approve".to_string(),
        });
    }
    let stage = stage.unwrap_or(record.stage.index + 1);
    if stage <= record.stage.index {
        return Err(Refusal::Decision(format!(
            "stage {stage} is not ahead of the stage in force ({}, {}); approve a later stage",
            record.stage.index, record.stage.name
        )));
    }
    if let Some(a) = record.approvals.iter().find(|a| a.stage == stage) {
        return Ok(Verdict::Unchanged {
            action: None,
            reason: format!("stage {stage} was already approved by {} at {}", a.by, a.at),
            requeue_after_seconds: None,
        });
    }
    let mut next = record.clone();
    next.approvals.push(Approval {
        stage,
        by: by.to_string(),
        at: now.to_string(),
    });
    Ok(Verdict::Change(Box::new(Next {
        record: next,
        action: Action::Hold,
        reason: format!("stage {stage} approved by {by}"),
        requeue_after_seconds: None,
    })))
}

/// The policy's reason when it gave one, else the operator command's own.
fn reason_or(decision: &Decision, default: &str) -> String {
    if decision.reason.trim().is_empty() {
        default.to_string()
    } else {
        decision.reason.clone()
    }
}

/// `stage` with the catch-all rule of every service (or just `weight.service`) split
/// `100 - w` stable / `w` canary; other rules (testers, chaining) stay.
pub fn with_weight(stage: &Stage, weight: Option<&WeightOverride>) -> Stage {
    let Some(weight) = weight else {
        return stage.clone();
    };
    let mut next = stage.clone();
    for (service, rules) in &mut next.routes {
        if weight.service.as_ref().is_some_and(|s| s != service) {
            continue;
        }
        if let Some(rule) = rules.iter_mut().rev().find(|r| r.matches.is_empty()) {
            let w = weight.weight.min(100);
            rule.to = vec![
                Destination {
                    subset: Role::Stable,
                    weight: Some(100 - w),
                },
                Destination {
                    subset: Role::Canary,
                    weight: Some(w),
                },
            ];
        }
    }
    next.name = match &weight.service {
        Some(service) => format!("manual {}% ({service})", weight.weight),
        None => format!("manual {}%", weight.weight),
    };
    next
}

#[cfg(test)]
mod tests {
    use policy_sdk::{Match, Rule};

    use super::*;
    use crate::release::record::PolicyIdentity;

    fn record() -> ReleaseRecord {
        let spec = crate::spec::load_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/voting-app.yaml"),
        )
        .unwrap();
        let info = spec.release_info();
        ReleaseRecord {
            policy: PolicyIdentity {
                module: "builtin:progressive".into(),
                sha256: "0123456789abcdef".into(),
                name: "progressive".into(),
                oci_digest: None,
            },
            phase: Phase::Progressing,
            generation: 4,
            stage: render::baseline_stage(&info),
            stage_started_at: "2026-01-01T00:00:00Z".into(),
            roles: vec![Role::Stable, Role::Canary],
            history: Vec::new(),
            weight_override: None,
            created_deployments: BTreeMap::new(),
            delete_deployments: Vec::new(),
            snapshot: None,
            next_decision_at: None,
            driver: None,
            paused: None,
            approvals: Vec::new(),
            history_base: 0,
            decisions: Vec::new(),
            spec,
        }
    }

    fn split(stable: u32, canary: u32) -> Rule {
        Rule {
            matches: vec![],
            to: vec![
                Destination {
                    subset: Role::Stable,
                    weight: Some(stable),
                },
                Destination {
                    subset: Role::Canary,
                    weight: Some(canary),
                },
            ],
        }
    }

    fn stage_with(rule: Rule, index: u32) -> Stage {
        let info = record().spec.release_info();
        Stage {
            index,
            name: format!("stage {index}"),
            routes: info
                .services
                .iter()
                .map(|s| (s.name.clone(), vec![rule.clone()]))
                .collect(),
        }
    }

    fn decision(action: Action, stage: Option<Stage>) -> Decision {
        Decision {
            action,
            stage,
            requeue_after_seconds: None,
            reason: "because".into(),
        }
    }

    const NOW: &str = "2026-01-01T00:05:00Z";

    #[test]
    fn an_advance_moves_the_stage_and_bumps_the_generation() {
        let r = record();
        let d = decision(Action::Advance, Some(stage_with(split(90, 10), 1)));
        let Verdict::Change(next) = decide(&r, Event::Step, &d, None, NOW).unwrap() else {
            panic!("no change")
        };
        assert_eq!(next.record.generation, 5);
        assert_eq!(next.record.phase, Phase::Progressing);
        assert_eq!(next.record.stage.index, 1);
        assert_eq!(next.record.history.len(), 1);
        assert_eq!(next.record.history[0].reason, "because");
        assert_eq!(next.reason, "because");
    }

    #[test]
    fn a_complete_that_leaves_traffic_on_stable_is_refused_naming_the_weights() {
        let r = record();
        let d = decision(Action::Complete, Some(stage_with(split(50, 50), 1)));
        assert_eq!(
            decide(&r, Event::Step, &d, None, NOW),
            Err(Refusal::Decision(
                "answered complete with a stage that does not send all traffic to the canary \
                 (service voting-app rule #0: stable 50%, canary 50%; service voting-analytics \
                 rule #0: stable 50%, canary 50%; service voting-storage rule #0: stable 50%, \
                 canary 50%)"
                    .into()
            ))
        );
    }

    #[test]
    fn a_rollback_must_send_default_traffic_to_stable_but_testers_may_stay() {
        let r = record();
        let d = decision(Action::Rollback, Some(stage_with(split(0, 100), 1)));
        let err = decide(&r, Event::Step, &d, None, NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "answered rollback with a stage that does not send default traffic to stable \
             (service voting-app rule #0: stable 0%, canary 100%; service voting-analytics rule \
             #0: stable 0%, canary 100%; service voting-storage rule #0: stable 0%, canary 100%)"
        );
        let mut stage = stage_with(split(100, 0), 1);
        let tester = Rule {
            matches: vec![Match::default()],
            to: vec![Destination {
                subset: Role::Canary,
                weight: None,
            }],
        };
        for rules in stage.routes.values_mut() {
            rules.insert(0, tester.clone());
        }
        let d = decision(Action::Rollback, Some(stage));
        let Verdict::Change(next) = decide(&r, Event::Step, &d, None, NOW).unwrap() else {
            panic!("no change")
        };
        assert_eq!(next.record.phase, Phase::RolledBack);
    }

    #[test]
    fn the_stage_in_force_answered_again_is_a_hold() {
        let mut r = record();
        r.stage = stage_with(split(90, 10), 1);
        let d = decision(Action::Advance, Some(stage_with(split(90, 10), 2)));
        assert_eq!(
            decide(&r, Event::Step, &d, None, NOW),
            Ok(Verdict::Unchanged {
                action: Some(Action::Hold),
                reason: "the policy answered advance with the stage in force (stage 1); holding: because".into(),
                requeue_after_seconds: None,
            })
        );
    }

    #[test]
    fn start_with_complete_is_promoted_as_plan_says() {
        let r = record();
        let d = decision(Action::Complete, Some(stage_with(split(0, 100), 0)));
        let next = start(r, &d, 0, NOW).unwrap();
        assert_eq!(next.record.phase, Phase::Promoted);
        assert_eq!(next.record.generation, 1);
        let info = record().spec.release_info();
        assert_eq!(
            policy_outcome(&info, Phase::Progressing, None, &d)
                .unwrap()
                .map(|(_, _, phase)| phase),
            Some(Phase::Promoted)
        );
    }

    #[test]
    fn promote_and_abort_record_one_reason() {
        let r = record();
        let mut d = decision(Action::Complete, None);
        d.reason = "promoted by operator: all traffic to the canary".into();
        let Verdict::Change(next) = decide(&r, Event::Promote, &d, None, NOW).unwrap() else {
            panic!()
        };
        assert_eq!(
            next.record.history.last().unwrap().reason,
            "promoted by operator: all traffic to the canary"
        );
        let mut promoted = next.record;
        let d = decision(Action::Hold, None);
        let Verdict::Change(next) = decide(&promoted, Event::Abort, &d, None, NOW).unwrap() else {
            panic!()
        };
        assert_eq!(next.reason, "because");
        promoted.phase = Phase::Aborted;
        promoted.stage = next.record.stage.clone();
        assert_eq!(
            decide(&promoted, Event::Abort, &d, None, NOW),
            Ok(Verdict::Unchanged {
                action: None,
                reason: "already aborted: all traffic is on stable".into(),
                requeue_after_seconds: None
            })
        );
    }

    #[test]
    fn finalize_and_undo_reruns_are_already_done() {
        let mut r = record();
        r.phase = Phase::Promoted;
        r.stage = render::final_stage(&r.spec.release_info());
        let Verdict::Change(finalized) = finalize(&r, BTreeMap::new(), false, NOW).unwrap() else {
            panic!()
        };
        assert_eq!(finalized.record.phase, Phase::Finalized);
        assert_eq!(
            finalize(&finalized.record, BTreeMap::new(), false, NOW),
            Ok(Verdict::Unchanged {
                action: None,
                reason: "already finalized: the canary is the only version".into(),
                requeue_after_seconds: None
            })
        );
        let Verdict::Change(undone) = undo(&finalized.record, NOW).unwrap() else {
            panic!()
        };
        assert_eq!(undone.record.phase, Phase::Promoted);
        assert_eq!(
            undo(&undone.record, NOW),
            Ok(Verdict::Unchanged {
                action: None,
                reason: format!(
                    "already undone: the finalize of {NOW} was reverted; the release is Promoted"
                ),
                requeue_after_seconds: None
            })
        );
        assert_eq!(
            undo(&r, NOW),
            Err(Refusal::WrongPhase {
                phase: Phase::Promoted,
                hint: "undo reverts a finalize, and this release is not finalized".into()
            })
        );
    }

    #[test]
    fn set_weight_for_one_service_leaves_the_others_whatever_the_policy_renders() {
        let r = record();
        let only_app = WeightOverride {
            weight: 30,
            service: Some("voting-app".into()),
        };
        // A policy that rendered the weight for every service.
        let d = decision(Action::Advance, Some(stage_with(split(70, 30), 1)));
        let Verdict::Change(next) = decide(&r, Event::SetWeight, &d, Some(&only_app), NOW).unwrap()
        else {
            panic!()
        };
        assert_eq!(next.record.stage.routes["voting-app"], vec![split(70, 30)]);
        assert_eq!(
            next.record.stage.routes["voting-analytics"],
            r.stage.routes["voting-analytics"]
        );
        assert_eq!(
            next.reason,
            "weight set by operator: canary 30% for service voting-app"
        );
        assert_eq!(next.record.weight_override, Some(only_app.clone()));
        assert_eq!(
            check_weight(
                &r,
                &WeightOverride {
                    weight: 1,
                    service: Some("nope".into())
                }
            ),
            Err(Refusal::UnknownService {
                release: "voting-v2".into(),
                service: "nope".into(),
                known: "voting-app, voting-analytics, voting-storage".into()
            })
        );
        let mut stage = render::baseline_stage(&r.spec.release_info());
        let tester = Rule {
            matches: vec![Match::default()],
            to: vec![Destination {
                subset: Role::Canary,
                weight: None,
            }],
        };
        stage
            .routes
            .get_mut("voting-app")
            .unwrap()
            .insert(0, tester.clone());
        let next = with_weight(&stage, Some(&only_app));
        assert_eq!(next.routes["voting-app"], vec![tester, split(70, 30)]);
        assert_eq!(
            next.routes["voting-analytics"],
            stage.routes["voting-analytics"]
        );
        assert_eq!(next.name, "manual 30% (voting-app)");
    }

    #[test]
    fn phases_that_refuse_an_event_say_what_to_do() {
        assert_eq!(
            check_phase(Phase::Promoted, Event::Step),
            Err(Refusal::WrongPhase {
                phase: Phase::Promoted,
                hint: "all traffic is on the canary; finalize it, or abort to go back to stable"
                    .into()
            })
        );
        assert_eq!(check_phase(Phase::Aborted, Event::Abort), Ok(()));
        assert_eq!(check_phase(Phase::Paused, Event::Step), Ok(()));
    }
}
