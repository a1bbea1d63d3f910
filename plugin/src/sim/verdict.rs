//! The result of routing one request, with the reasons.

use serde_json::{json, Value};

use super::Request;

/// What happens to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Routed to the destinations.
    Route,
    /// No VirtualService or no rule matched: 404 (`NR`).
    NoRoute,
    /// A destination with traffic names a subset its DestinationRule lacks (or there is no
    /// DestinationRule): 503 (`NC`).
    NoSubset {
        /// The destination host.
        host: String,
        /// The missing subset.
        subset: String,
        /// `no subset v3 in DestinationRule reviews` / `no DestinationRule for host ...`.
        reason: String,
    },
    /// The rule answers with a redirect.
    Redirect,
    /// The rule answers with a fixed response.
    DirectResponse,
}

impl Outcome {
    /// The machine-readable name: `route`, `404`, `503`, `redirect`, `direct-response`.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Route => "route",
            Outcome::NoRoute => "404",
            Outcome::NoSubset { .. } => "503",
            Outcome::Redirect => "redirect",
            Outcome::DirectResponse => "direct-response",
        }
    }

    /// True when the request reaches a destination.
    pub fn is_route(&self) -> bool {
        matches!(self, Outcome::Route)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Route => f.write_str("route"),
            Outcome::NoRoute => f.write_str("404 (no route)"),
            Outcome::NoSubset { reason, .. } => write!(f, "503 ({reason})"),
            Outcome::Redirect => f.write_str("redirect"),
            Outcome::DirectResponse => f.write_str("direct response"),
        }
    }
}

/// One destination of the decisive rule and its share of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// The destination host, as written in the rule.
    pub host: String,
    /// The subset, if any.
    pub subset: Option<String>,
    /// The port, if any.
    pub port: Option<u32>,
    /// The effective relative weight (unset → 0, or 1 for a single destination).
    pub weight: u64,
    /// Share of the rule's traffic, 0..=100.
    pub percent: f64,
    /// Why this destination has no endpoints (503 for its share), if it has none.
    pub missing: Option<String>,
}

/// How one rule fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// Index in `spec.http`.
    pub index: usize,
    /// The rule's name.
    pub name: Option<String>,
    /// Whether it matched (only the last traced rule can have).
    pub matched: bool,
    /// The conditions that held (matched) or the first that failed, per block (not matched).
    pub reasons: Vec<String>,
}

impl RuleTrace {
    /// `rule #0 (tester-cookie) matched: header cookie ~ ...`.
    pub fn line(&self) -> String {
        let name = self
            .name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let verb = if self.matched {
            "matched"
        } else {
            "did not match"
        };
        format!(
            "rule #{}{name} {verb}: {}",
            self.index,
            self.reasons.join("; ")
        )
    }
}

/// The result of routing one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What happens.
    pub outcome: Outcome,
    /// The VirtualService used (`namespace/name`), if any applied.
    pub virtual_service: Option<String>,
    /// The VirtualService host that matched the request.
    pub host: Option<String>,
    /// Index of the decisive rule in `spec.http`.
    pub rule: Option<usize>,
    /// Its name.
    pub rule_name: Option<String>,
    /// Destinations of the decisive rule with their shares.
    pub destinations: Vec<Share>,
    /// Every rule tried, in order.
    pub trace: Vec<RuleTrace>,
    /// Other remarks (shadowed VirtualServices, why none applied).
    pub notes: Vec<String>,
    /// Set when mesh traffic falls back to Kubernetes' default routing (no VirtualService bound
    /// to `mesh` for the host): the finding, in plain words.
    pub default_routing: Option<String>,
}

impl Verdict {
    pub(super) fn no_virtual_service(request: &Request) -> Verdict {
        Verdict {
            outcome: Outcome::NoRoute,
            virtual_service: None,
            host: None,
            rule: None,
            rule_name: None,
            destinations: vec![],
            trace: vec![],
            notes: vec![format!(
                "no VirtualService for host {:?} is bound to gateway {}",
                request.host, request.gateway
            )],
            default_routing: None,
        }
    }

    /// The human explanation, one line each: which VirtualService, every rule tried, notes.
    pub fn explanation(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let (Some(vs), Some(host)) = (&self.virtual_service, &self.host) {
            lines.push(format!("VirtualService {vs} (host {host:?})"));
        }
        lines.extend(self.trace.iter().map(RuleTrace::line));
        lines.extend(self.notes.iter().cloned());
        lines
    }

    /// `{"outcome": "route|404|503|…", "rule": <index or null>, "destinations": [{"host",
    /// "subset", "percent"}], "ruleName", "virtualService", "reason"}`.
    pub fn to_json(&self) -> Value {
        let destinations: Vec<Value> = self
            .destinations
            .iter()
            .map(|d| {
                json!({
                    "host": d.host,
                    "subset": d.subset,
                    "percent": percent_number(d.percent),
                })
            })
            .collect();
        let reason = match &self.outcome {
            Outcome::NoSubset { reason, .. } => Some(reason.clone()),
            Outcome::NoRoute if self.virtual_service.is_none() => self.notes.first().cloned(),
            Outcome::NoRoute => Some("no rule matched".to_string()),
            _ => None,
        };
        json!({
            "outcome": self.outcome.code(),
            "rule": self.rule,
            "destinations": destinations,
            "ruleName": self.rule_name,
            "virtualService": self.virtual_service,
            "reason": reason,
            "defaultRouting": self.default_routing,
        })
    }
}

/// A percentage as a JSON number: an integer when whole, else rounded to two decimals.
pub fn percent_number(percent: f64) -> Value {
    let rounded = (percent * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 {
        json!(rounded as u64)
    } else {
        json!(rounded)
    }
}

/// A percentage as text: `25%`, `33.33%`.
pub fn percent_text(percent: f64) -> String {
    format!("{}%", percent_number(percent))
}
