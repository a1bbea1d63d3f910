//! The release status tree of `kubectl canary get`: release → services → subsets with weights and
//! pods, the rules in force, the last decision, and any drift between the record and the live
//! objects. Drawn from the plain view model `release::view` builds ([`ReleaseView`]), so the
//! `--color=never` output is a stable golden text.

use std::fmt::Write as _;

use super::text::{safe, Safe};
use owo_colors::{OwoColorize, Stream::Stdout};
use policy_sdk::{Match, Role, Rule, StringMatch};

use crate::release::view::{ReleaseView, SubsetView};

/// Render the tree. Colour follows the process-wide choice made by `ui::color::install`.
pub fn render(view: &ReleaseView) -> String {
    let mut out = String::new();
    let stage = view
        .stage
        .as_ref()
        .map(|(i, name)| format!("stage {i} ({})", Safe(name)))
        .unwrap_or_else(|| "no stage applied".to_string());
    let _ = writeln!(
        out,
        "{} {}  {}  {}  policy {}",
        view.name.if_supports_color(Stdout, |t| t.bold()),
        format!("({})", view.namespace).if_supports_color(Stdout, |t| t.dimmed()),
        phase(&view.phase),
        stage,
        view.policy
    );
    for (i, svc) in view.services.iter().enumerate() {
        let last_svc = i + 1 == view.services.len();
        let (branch, indent) = if last_svc {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let _ = writeln!(out, "{branch}service {}", svc.name);
        let rows = svc.subsets.len() + usize::from(!svc.rules.is_empty());
        for (j, sub) in svc.subsets.iter().enumerate() {
            let b = if j + 1 == rows {
                "└── "
            } else {
                "├── "
            };
            let mut weight = sub
                .weight
                .map(|w| format!("{w:>5.1}%"))
                .unwrap_or_else(|| "     -".to_string());
            if let Some(live) = live_differs(sub) {
                weight = format!("{weight} {}", live.if_supports_color(Stdout, |t| t.red()));
            }
            let pods = format!("pods {}/{}", sub.pods_ready, sub.pods_total);
            let pods = if sub.pods_ready == sub.pods_total && sub.pods_total > 0 {
                pods.if_supports_color(Stdout, |t| t.green()).to_string()
            } else {
                pods.if_supports_color(Stdout, |t| t.red()).to_string()
            };
            let _ = writeln!(
                out,
                "{indent}{b}{} {:<10} {:<10} {weight}  {pods}",
                role(sub.role),
                sub.subset,
                format!("version={}", sub.version),
            );
        }
        if !svc.rules.is_empty() {
            let _ = writeln!(out, "{indent}└── rules");
            for (k, rule) in svc.rules.iter().enumerate() {
                let b = if k + 1 == svc.rules.len() {
                    "└── "
                } else {
                    "├── "
                };
                let _ = writeln!(out, "{indent}    {b}#{k} {}", safe(&describe_rule(rule)));
            }
        }
    }
    if let Some(d) = &view.last_decision {
        let _ = writeln!(
            out,
            "last decision: {} at {}: {}",
            d.action,
            d.at,
            Safe(&d.reason)
        );
        if !d.metrics.is_empty() {
            let metrics: Vec<String> = d
                .metrics
                .iter()
                .map(|(name, value)| format!("{name} {}", Safe(value)))
                .collect();
            let _ = writeln!(out, "  canary metrics: {}", metrics.join(", "));
        }
    }
    for line in &view.gates {
        let _ = writeln!(out, "{}", Safe(line));
    }
    for line in &view.drift {
        let _ = writeln!(
            out,
            "{} {line}",
            "DRIFT:".if_supports_color(Stdout, |t| t.red())
        );
    }
    out
}

/// `(live 100.0%)` when the live VirtualService gives a subset another share than the record.
fn live_differs(sub: &SubsetView) -> Option<String> {
    let live = sub.live_weight?;
    match sub.weight {
        Some(recorded) if (recorded - live).abs() < 0.05 => None,
        _ => Some(format!("(live {live:.1}%)")),
    }
}

fn phase(p: &str) -> String {
    match p {
        "Progressing" | "Promoted" | "Finalized" => {
            p.if_supports_color(Stdout, |t| t.green()).to_string()
        }
        "Paused" => p.if_supports_color(Stdout, |t| t.yellow()).to_string(),
        _ => p.if_supports_color(Stdout, |t| t.red()).to_string(),
    }
}

fn role(r: Role) -> String {
    match r {
        Role::Stable => format!("{:<6}", "stable")
            .if_supports_color(Stdout, |t| t.blue())
            .to_string(),
        Role::Canary => format!("{:<6}", "canary")
            .if_supports_color(Stdout, |t| t.yellow())
            .to_string(),
    }
}

/// One line for a routing rule: its conditions and where traffic goes.
pub fn describe_rule(rule: &Rule) -> String {
    let when = if rule.matches.is_empty() {
        "everything else".to_string()
    } else {
        rule.matches
            .iter()
            .map(describe_match_text)
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let total: u32 = rule.to.iter().map(|d| d.weight.unwrap_or(0)).sum();
    let to = rule
        .to
        .iter()
        .map(|d| {
            let name = match d.subset {
                Role::Stable => "stable",
                Role::Canary => "canary",
            };
            let pct = match (d.weight, total) {
                (None, _) if rule.to.len() == 1 => 100.0,
                (_, 0) => 0.0,
                (w, t) => f64::from(w.unwrap_or(0)) * 100.0 / f64::from(t),
            };
            format!("{name} {pct:.0}%")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("{when} → {to}")
}

/// One line for a match block: its conditions joined with AND.
pub fn describe_match_text(m: &Match) -> String {
    let mut parts = Vec::new();
    for (name, value) in &m.headers {
        parts.push(format!("header {name} {}", string_match(value)));
    }
    if let Some(uri) = &m.uri {
        parts.push(format!("uri {}", string_match(uri)));
    }
    if !m.source_labels.is_empty() {
        let labels = m
            .source_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        parts.push(format!("caller {labels}"));
    }
    if m.canary_callers {
        parts.push("caller is another service's canary".to_string());
    }
    if !m.gateways.is_empty() {
        parts.push(format!("via {}", m.gateways.join("|")));
    }
    if parts.is_empty() {
        "any request".to_string()
    } else {
        parts.join(" AND ")
    }
}

fn string_match(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(v) => format!("= {v}"),
        StringMatch::Prefix(v) => format!("^= {v}"),
        StringMatch::Regex(v) => format!("~ {v}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use policy_sdk::Destination;

    use super::*;
    use crate::release::view::{DecisionView, ServiceView};

    fn voting_view() -> ReleaseView {
        let tester = Match {
            headers: BTreeMap::from([(
                "cookie".to_string(),
                StringMatch::Regex("^(.*?;)?(user=tester)(;.*)?$".into()),
            )]),
            ..Match::default()
        };
        let chained = Match {
            source_labels: BTreeMap::from([("version".to_string(), "2.0".to_string())]),
            ..Match::default()
        };
        let split = |s, c| Rule {
            matches: vec![],
            to: vec![
                Destination {
                    subset: Role::Stable,
                    weight: Some(s),
                },
                Destination {
                    subset: Role::Canary,
                    weight: Some(c),
                },
            ],
        };
        let canary_only = |m: Match| Rule {
            matches: vec![m],
            to: vec![Destination {
                subset: Role::Canary,
                weight: None,
            }],
        };
        let subsets = |ready| {
            vec![
                SubsetView {
                    role: Role::Stable,
                    subset: "v1-0".into(),
                    version: "1.0".into(),
                    weight: Some(90.0),
                    live_weight: Some(90.0),
                    pods_ready: 3,
                    pods_total: 3,
                },
                SubsetView {
                    role: Role::Canary,
                    subset: "v2-0".into(),
                    version: "2.0".into(),
                    weight: Some(10.0),
                    live_weight: Some(10.0),
                    pods_ready: ready,
                    pods_total: 1,
                },
            ]
        };
        ReleaseView {
            name: "voting-v2".into(),
            namespace: "voting".into(),
            phase: "Progressing".into(),
            stage: Some((1, "10%".into())),
            policy: "progressive@sha256:0123456789ab".into(),
            services: vec![
                ServiceView {
                    name: "voting-app".into(),
                    subsets: subsets(1),
                    rules: vec![canary_only(tester), split(90, 10)],
                },
                ServiceView {
                    name: "voting-analytics".into(),
                    subsets: subsets(0),
                    rules: vec![canary_only(chained), split(90, 10)],
                },
            ],
            gates: Vec::new(),
            last_decision: Some(DecisionView {
                action: "advance".into(),
                at: "2026-11-22T10:05:00Z".into(),
                reason: "pause 5m elapsed; 0% -> 10%".into(),
                metrics: Vec::new(),
            }),
            drift: Vec::new(),
        }
    }

    #[test]
    fn tree_without_colour_is_stable() {
        owo_colors::set_override(false);
        let expected = "\
voting-v2 (voting)  Progressing  stage 1 (10%)  policy progressive@sha256:0123456789ab
├── service voting-app
│   ├── stable v1-0       version=1.0  90.0%  pods 3/3
│   ├── canary v2-0       version=2.0  10.0%  pods 1/1
│   └── rules
│       ├── #0 header cookie ~ ^(.*?;)?(user=tester)(;.*)?$ → canary 100%
│       └── #1 everything else → stable 90%, canary 10%
└── service voting-analytics
    ├── stable v1-0       version=1.0  90.0%  pods 3/3
    ├── canary v2-0       version=2.0  10.0%  pods 0/1
    └── rules
        ├── #0 caller version=2.0 → canary 100%
        └── #1 everything else → stable 90%, canary 10%
last decision: advance at 2026-11-22T10:05:00Z: pause 5m elapsed; 0% -> 10%
";
        assert_eq!(render(&voting_view()), expected);
    }

    #[test]
    fn drift_is_shown_beside_the_weights_and_below_the_tree() {
        owo_colors::set_override(false);
        let mut view = voting_view();
        view.services.truncate(1);
        view.services[0].subsets[0].live_weight = Some(100.0);
        view.services[0].subsets[1].live_weight = Some(0.0);
        view.drift = vec!["the VirtualService voting-app routes stable 100%, the record says stable 90%, canary 10%; `kubectl canary step voting-v2 -n voting` will converge it".into()];
        let expected = "\
voting-v2 (voting)  Progressing  stage 1 (10%)  policy progressive@sha256:0123456789ab
└── service voting-app
    ├── stable v1-0       version=1.0  90.0% (live 100.0%)  pods 3/3
    ├── canary v2-0       version=2.0  10.0% (live 0.0%)  pods 1/1
    └── rules
        ├── #0 header cookie ~ ^(.*?;)?(user=tester)(;.*)?$ → canary 100%
        └── #1 everything else → stable 90%, canary 10%
last decision: advance at 2026-11-22T10:05:00Z: pause 5m elapsed; 0% -> 10%
DRIFT: the VirtualService voting-app routes stable 100%, the record says stable 90%, canary 10%; `kubectl canary step voting-v2 -n voting` will converge it
";
        assert_eq!(render(&view), expected);
    }

    #[test]
    fn relative_weights_are_shown_as_percentages() {
        let rule = Rule {
            matches: vec![],
            to: vec![
                Destination {
                    subset: Role::Stable,
                    weight: Some(1),
                },
                Destination {
                    subset: Role::Canary,
                    weight: Some(3),
                },
            ],
        };
        assert_eq!(
            describe_rule(&rule),
            "everything else → stable 25%, canary 75%"
        );
    }
}
