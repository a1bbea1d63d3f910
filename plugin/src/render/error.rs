//! Why a stage cannot be rendered.

use policy_sdk::rules::RuleError;
use policy_sdk::Role;

/// Intent that cannot become Istio objects safely. Field paths are relative to the stage
/// (`routes.<service>[<rule>]...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The stage routes a service that is not part of the release.
    #[error("stage routes service {service:?}, which is not part of the release (services: {})", known.join(", "))]
    UnknownService {
        /// The unknown name.
        service: String,
        /// The release's services.
        known: Vec<String>,
    },
    /// A service of the release has no routes in the stage.
    #[error("stage has no routes for service {service:?}; every service of the release needs at least a catch-all rule")]
    MissingService {
        /// The service.
        service: String,
    },
    /// A service's rule list is empty.
    #[error("routes.{service}: no rules; add a catch-all rule (no match) so requests are routed")]
    NoRules {
        /// The service.
        service: String,
    },
    /// The last rule has a match, so some requests would get 404.
    #[error("routes.{service}: the last rule has a match, so requests that fail it would get 404; end with a rule without match")]
    NoCatchAll {
        /// The service.
        service: String,
    },
    /// A rule without match is followed by rules that can never apply.
    #[error("routes.{service}[{rule}]: a rule without match must be last; the rules after it never apply")]
    UnreachableRules {
        /// The service.
        service: String,
        /// Index of the catch-all rule.
        rule: usize,
    },
    /// A rule has no destinations.
    #[error("{field}: no destinations")]
    NoDestinations {
        /// Field path.
        field: String,
    },
    /// A destination's role has no subset in the rendered DestinationRule: requests would get
    /// 503 (`NC`).
    #[error("{field}: {} subset {subset:?} of service {service:?} is not in its DestinationRule at this point, so requests routed there would get 503; route to a version whose subset exists", role_word(*.role))]
    NoSubset {
        /// Field path.
        field: String,
        /// The service.
        service: String,
        /// The role routed to.
        role: Role,
        /// Its subset name.
        subset: String,
    },
    /// Every weight of a rule is zero.
    #[error(
        "{field}: all weights are 0, which Istio refuses; give at least one destination a weight"
    )]
    AllZeroWeights {
        /// Field path.
        field: String,
    },
    /// A match block asks for the release's canary callers and names source labels too, which
    /// would leave it unclear whose labels apply.
    #[error("{field}: canaryCallers selects the callers by their own labels and cannot be combined with sourceLabels")]
    CallersWithSourceLabels {
        /// Field path of the match block.
        field: String,
    },
    /// A value Istio would refuse (regex, header name, weight, gateway reference).
    #[error("{field}: {source}")]
    Invalid {
        /// Field path.
        field: String,
        /// The rule that refused it.
        source: RuleError,
    },
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Stable => "stable",
        Role::Canary => "canary",
    }
}
