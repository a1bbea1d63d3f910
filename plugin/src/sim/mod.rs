//! Istio's HTTP route selection, reproduced from VirtualService and DestinationRule objects.
//!
//! [`RouteTable`] reads the objects (typed through [`crate::istio`]) and compiles their regexes
//! once; [`RouteTable::simulate`] evaluates a [`Request`] the way Envoy, configured by istiod,
//! would:
//!
//! - the VirtualService is chosen by host (short names ≡ `<name>.<ns>.svc.cluster.local`, `*`
//!   wildcards, the most specific host wins) and by gateway (`mesh` for sidecars; a
//!   VirtualService without `gateways` applies to `mesh` only; a match block's `gateways`
//!   overrides the VirtualService's);
//! - `http` rules are tried in order and the first whose match applies wins; conditions inside a
//!   match block are ANDed, blocks are ORed, a rule without match matches everything;
//! - `regex` is RE2 and must match the whole value; `exact`/`prefix` compare bytes;
//! - `sourceLabels` (and `sourceNamespace`) apply to mesh traffic only: a block that has them never
//!   matches a request from a gateway;
//! - weights are relative (1 and 3 → 25 % / 75 %), an unset weight counts 0 next to set ones, a
//!   single unset destination takes everything, all-zero weights are invalid;
//! - header names compare case-insensitively (Envoy lower-cases them); `:method`, `:authority`,
//!   `:path` and `:scheme` match the pseudo-headers; `regex: "*"` means "present";
//!   `withoutHeaders` treats a missing header as empty (so `exact: x` holds, `regex: .*` fails),
//!   except `regex: "*"`, which holds exactly when the header is absent;
//! - a single destination takes everything, whatever its weight (0 included);
//! - a gateway request for a host no server of the Gateway accepts is a 404, when the Gateway
//!   object is given;
//! - mesh traffic to a host no VirtualService bound to `mesh` routes gets Kubernetes' default
//!   routing: the Service, every pod round-robin, no subset (the verdict says so:
//!   [`Verdict::default_routing`]);
//! - no rule → 404 `NR`; a subset missing from the host's DestinationRule (or no
//!   DestinationRule at all) → 503 `NC`.
//!
//! [`sample`] spreads a request mix deterministically over the destinations (for `demo`).

mod request;
mod sample;
#[cfg(test)]
mod tests;
mod verdict;

use std::collections::HashMap;

use regex::Regex;

pub use crate::istio::default_routing_finding;
use crate::istio::{
    host_matches, qualify_host, DestinationRule, Gateway, HttpMatchRequest, HttpRoute, IstioObject,
    StringMatch, VirtualService,
};

pub use request::{GatewayRef, Request};
pub use sample::{sample, spread, Tally, Target, WeightedRoundRobin};
pub use verdict::{percent_number, percent_text, Outcome, RuleTrace, Share, Verdict};

/// Objects that cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A regex Istio would refuse.
    #[error("VirtualService {object}: {field}: {reason}")]
    Regex {
        /// `namespace/name`.
        object: String,
        /// Field path (`spec.http[0].match[0].headers.cookie.regex`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A rule whose weights are all zero (or negative): Istio refuses it.
    #[error("VirtualService {object}: spec.http[{rule}].route: {reason}")]
    InvalidWeights {
        /// `namespace/name`.
        object: String,
        /// Rule index.
        rule: usize,
        /// Why.
        reason: String,
    },
    /// A VirtualService istiod would refuse, so it never reaches a proxy.
    #[error("VirtualService {object}: {field}: {reason} (istiod refuses this object)")]
    Refused {
        /// `namespace/name`.
        object: String,
        /// Field path.
        field: String,
        /// Why.
        reason: String,
    },
    /// The decisive rule delegates, which the simulator does not follow.
    #[error("VirtualService {object}: spec.http[{rule}] delegates to another VirtualService, which the simulator does not follow")]
    Delegate {
        /// `namespace/name`.
        object: String,
        /// Rule index.
        rule: usize,
    },
}

/// VirtualServices and DestinationRules, ready to route requests.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    virtual_services: Vec<VirtualService>,
    /// Per VirtualService: its hosts as written and qualified with its namespace.
    qualified_hosts: Vec<Vec<(String, String)>>,
    destination_rules: Vec<DestinationRule>,
    gateways: Vec<Gateway>,
    regexes: HashMap<String, Regex>,
}

/// `regex: "*"` in a header match: Istio's spelling of "the header is present".
const PRESENT_REGEX: &str = "*";

impl RouteTable {
    /// Build a table from objects; Gateways are read for the hosts they serve, other kinds
    /// (PeerAuthentication) are ignored. Every regex is checked (RE2 syntax, at most 1024 characters) and compiled here.
    pub fn new(objects: impl IntoIterator<Item = IstioObject>) -> Result<Self, SimError> {
        let mut table = RouteTable::default();
        for object in objects {
            match object {
                IstioObject::VirtualService(vs) => table.virtual_services.push(vs),
                IstioObject::DestinationRule(dr) => table.destination_rules.push(dr),
                IstioObject::Gateway(gw) => table.gateways.push(gw),
                IstioObject::PeerAuthentication(_) => {}
            }
        }
        let mut regexes = HashMap::new();
        for vs in &table.virtual_services {
            let mesh = vs.spec.gateways.is_empty()
                || vs
                    .spec
                    .gateways
                    .iter()
                    .any(|g| g == crate::istio::MESH_GATEWAY);
            if let Some(i) = vs.spec.hosts.iter().position(|h| h == "*").filter(|_| mesh) {
                return Err(SimError::Refused {
                    object: object_name(vs),
                    field: format!("spec.hosts[{i}]"),
                    reason: "wildcard host * is not allowed for virtual services bound to the mesh gateway".to_string(),
                });
            }
            for (r, rule) in vs.spec.http.iter().enumerate() {
                for (m, block) in rule.matches.iter().enumerate() {
                    for (field, sm) in string_matches(block) {
                        let Some(re) = &sm.regex else { continue };
                        let header =
                            field.starts_with("headers.") || field.starts_with("withoutHeaders.");
                        if regexes.contains_key(re) || (header && re == PRESENT_REGEX) {
                            continue;
                        }
                        let compiled = compile(re).map_err(|reason| SimError::Regex {
                            object: object_name(vs),
                            field: format!("spec.http[{r}].match[{m}].{field}.regex"),
                            reason,
                        })?;
                        regexes.insert(re.clone(), compiled);
                    }
                }
            }
        }
        table.regexes = regexes;
        table.qualified_hosts = table
            .virtual_services
            .iter()
            .map(|vs| {
                let ns = vs.metadata.namespace_or_default();
                vs.spec
                    .hosts
                    .iter()
                    .map(|h| (h.clone(), qualify_host(h, ns)))
                    .collect()
            })
            .collect();
        Ok(table)
    }

    /// The VirtualServices of the table.
    pub fn virtual_services(&self) -> &[VirtualService] {
        &self.virtual_services
    }

    /// The DestinationRules of the table.
    pub fn destination_rules(&self) -> &[DestinationRule] {
        &self.destination_rules
    }

    /// Route one request.
    pub fn simulate(&self, request: &Request) -> Result<Verdict, SimError> {
        if let Some(note) = self.gateway_refuses(request) {
            let mut verdict = Verdict::no_virtual_service(request);
            verdict.notes = vec![note];
            return Ok(verdict);
        }
        let Some((vs, host_pattern, others)) = self.select(request) else {
            if request.gateway.is_mesh() {
                return Ok(self.default_routing(request));
            }
            return Ok(Verdict::no_virtual_service(request));
        };
        let ns = vs.metadata.namespace_or_default();
        let mut trace = Vec::new();
        for (index, rule) in vs.spec.http.iter().enumerate() {
            match self.rule_applies(rule, ns, request) {
                Ok(reasons) => {
                    trace.push(RuleTrace {
                        index,
                        name: rule.name.clone(),
                        matched: true,
                        reasons,
                    });
                    return self.decide(vs, index, rule, trace, host_pattern, others);
                }
                Err(reasons) => trace.push(RuleTrace {
                    index,
                    name: rule.name.clone(),
                    matched: false,
                    reasons,
                }),
            }
        }
        Ok(Verdict {
            outcome: Outcome::NoRoute,
            virtual_service: Some(object_name(vs)),
            host: Some(host_pattern),
            rule: None,
            rule_name: None,
            destinations: vec![],
            trace,
            notes: others,
            default_routing: None,
        })
    }

    /// Why the request's Gateway (when its object is in the table) does not accept the
    /// request's host: no server lists a host matching it.
    fn gateway_refuses(&self, request: &Request) -> Option<String> {
        let GatewayRef::Named { .. } = &request.gateway else {
            return None;
        };
        let gw = self.gateways.iter().find(|gw| {
            request
                .gateway
                .is(&gw.metadata.name, gw.metadata.namespace_or_default())
        })?;
        let host = request.host.to_ascii_lowercase();
        let served = gw.spec.servers.iter().flat_map(|s| &s.hosts).any(|h| {
            // `namespace/host` restricts which VirtualServices may bind; the host part decides.
            let h = h.split_once('/').map_or(h.as_str(), |(_, h)| h);
            host_matches(&h.to_ascii_lowercase(), &host)
        });
        (!served).then(|| {
            format!(
                "Gateway {}/{} has no server for host {:?}",
                gw.metadata.namespace_or_default(),
                gw.metadata.name,
                request.host
            )
        })
    }

    /// Mesh traffic that no VirtualService routes: kube-proxy (or the sidecar's default
    /// cluster) spreads it over every pod of the Service, whatever the subsets.
    fn default_routing(&self, request: &Request) -> Verdict {
        let ns = request.namespace.as_deref().unwrap_or("default");
        let hosts = request_hosts(request, ns);
        let subsets: Vec<String> = self
            .destination_rules
            .iter()
            .filter(|dr| {
                let pattern = qualify_host(&dr.spec.host, dr.metadata.namespace_or_default());
                hosts.iter().any(|h| host_matches(&pattern, h))
            })
            .flat_map(|dr| dr.spec.subsets.iter().map(|s| s.name.clone()))
            .collect();
        let finding = default_routing_finding(&request.host, &subsets);
        Verdict {
            outcome: Outcome::Route,
            virtual_service: None,
            host: None,
            rule: None,
            rule_name: None,
            destinations: vec![Share {
                host: request.host.clone(),
                subset: None,
                port: request.port.map(u32::from),
                weight: 1,
                percent: 100.0,
                missing: None,
            }],
            trace: vec![],
            notes: vec![
                format!(
                    "no VirtualService for host {:?} is bound to gateway mesh: Kubernetes default routing applies",
                    request.host
                ),
                finding.clone(),
            ],
            default_routing: Some(finding),
        }
    }

    /// The VirtualService for the request's host and gateway, the host pattern that matched, and
    /// notes about others that were shadowed.
    fn select(&self, request: &Request) -> Option<(&VirtualService, String, Vec<String>)> {
        let mut best: Option<(&VirtualService, String, usize)> = None;
        let mut notes = Vec::new();
        let mut candidates: Option<(&str, Vec<String>)> = None;
        for (vs, hosts) in self.virtual_services.iter().zip(&self.qualified_hosts) {
            let ns = vs.metadata.namespace_or_default();
            let bound = if vs.spec.gateways.is_empty() {
                request.gateway.is_mesh()
            } else {
                vs.spec.gateways.iter().any(|g| request.gateway.is(g, ns))
            };
            if !bound {
                continue;
            }
            if candidates.as_ref().is_none_or(|(cns, _)| *cns != ns) {
                candidates = Some((ns, request_hosts(request, ns)));
            }
            let names = candidates.as_ref().map(|(_, c)| &c[..]).unwrap_or_default();
            let hit = hosts
                .iter()
                .filter(|(_, pattern)| names.iter().any(|c| host_matches(pattern, c)))
                .map(|(h, pattern)| (h, specificity(pattern)))
                .max_by_key(|(_, s)| *s);
            let Some((host, score)) = hit else { continue };
            let host = host.clone();
            match &best {
                Some((current, _, best_score)) if *best_score >= score => notes.push(format!(
                    "VirtualService {} also matches host {:?} but {} takes precedence",
                    object_name(vs),
                    host,
                    object_name(current)
                )),
                _ => {
                    if let Some((current, _, _)) = &best {
                        notes.push(format!(
                            "VirtualService {} also matches the host, less specifically",
                            object_name(current)
                        ));
                    }
                    best = Some((vs, host, score));
                }
            }
        }
        best.map(|(vs, host, _)| (vs, host, notes))
    }

    fn rule_applies(
        &self,
        rule: &HttpRoute,
        ns: &str,
        request: &Request,
    ) -> Result<Vec<String>, Vec<String>> {
        if rule.matches.is_empty() {
            return Ok(vec!["no match conditions (catch-all)".to_string()]);
        }
        let mut failures = Vec::new();
        for (m, block) in rule.matches.iter().enumerate() {
            match self.block_applies(block, ns, request) {
                Ok(reasons) => return Ok(reasons),
                Err(reason) if rule.matches.len() > 1 => {
                    failures.push(format!("match[{m}]: {reason}"))
                }
                Err(reason) => failures.push(reason),
            }
        }
        Err(failures)
    }

    /// All conditions of one block, in a fixed order; the first failing one is the reason.
    fn block_applies(
        &self,
        block: &HttpMatchRequest,
        ns: &str,
        request: &Request,
    ) -> Result<Vec<String>, String> {
        let mut ok = Vec::new();
        if !block.gateways.is_empty() {
            if !block.gateways.iter().any(|g| request.gateway.is(g, ns)) {
                return Err(format!(
                    "gateway {} is not one of [{}]",
                    request.gateway,
                    block.gateways.join(", ")
                ));
            }
            ok.push(format!("gateway {}", request.gateway));
        }
        if !block.source_labels.is_empty() || block.source_namespace.is_some() {
            if !request.gateway.is_mesh() {
                return Err(format!(
                    "sourceLabels/sourceNamespace apply to mesh traffic only, and this request comes through gateway {}",
                    request.gateway
                ));
            }
            for (key, want) in &block.source_labels {
                match request.source_labels.get(key) {
                    Some(have) if have == want => ok.push(format!("source label {key}={want}")),
                    Some(have) => {
                        return Err(format!("source label {key} is {have:?}, not {want:?}"))
                    }
                    None => return Err(format!("caller has no label {key} (want {want:?})")),
                }
            }
            if let Some(want) = &block.source_namespace {
                if request.source_namespace.as_deref() != Some(want) {
                    return Err(format!("caller namespace is not {want:?}"));
                }
                ok.push(format!("source namespace {want}"));
            }
        }
        if let Some(port) = block.port {
            if u32::from(request.effective_port()) != port {
                return Err(format!("port {} is not {port}", request.effective_port()));
            }
            ok.push(format!("port {port}"));
        }
        let authority = request.authority();
        self.check(
            "authority",
            block.authority.as_ref(),
            Some(&authority),
            false,
            &mut ok,
        )?;
        self.check(
            "uri",
            block.uri.as_ref(),
            Some(request.uri()),
            block.ignore_uri_case,
            &mut ok,
        )?;
        self.check(
            "scheme",
            block.scheme.as_ref(),
            Some(&request.scheme),
            false,
            &mut ok,
        )?;
        self.check(
            "method",
            block.method.as_ref(),
            Some(&request.method),
            false,
            &mut ok,
        )?;
        for (name, sm) in &block.headers {
            let what = format!("header {name}");
            let value = header_value(request, &authority, name);
            if sm.regex.as_deref() == Some(PRESENT_REGEX) {
                if value.is_none() {
                    return Err(format!("no {what} (want it present)"));
                }
                ok.push(format!("{what} present"));
                continue;
            }
            self.check(&what, Some(sm), value, false, &mut ok)?;
        }
        for (name, sm) in &block.without_headers {
            let value = header_value(request, &authority, name);
            if sm.regex.as_deref() == Some(PRESENT_REGEX) {
                if value.is_some() {
                    return Err(format!(
                        "header {name} is present, which withoutHeaders excludes"
                    ));
                }
                ok.push(format!("header {name} absent"));
                continue;
            }
            // Istio sets `treat_missing_header_as_empty` on inverted matches.
            if self.string_matches(sm, Some(value.unwrap_or("")), false) {
                return Err(match value {
                    Some(v) => format!("header {name} {v:?} {sm}, which withoutHeaders excludes"),
                    None => format!(
                        "header {name} is absent (taken as empty) and \"\" {sm}, which withoutHeaders excludes"
                    ),
                });
            }
            ok.push(format!("header {name} not {sm}"));
        }
        let params = request.query_params();
        for (name, sm) in &block.query_params {
            let value = params.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
            self.check(
                &format!("query parameter {name}"),
                Some(sm),
                value,
                false,
                &mut ok,
            )?;
        }
        if ok.is_empty() {
            ok.push("empty match block (matches everything)".to_string());
        }
        Ok(ok)
    }

    fn check(
        &self,
        what: &str,
        sm: Option<&StringMatch>,
        value: Option<&str>,
        ignore_case: bool,
        ok: &mut Vec<String>,
    ) -> Result<(), String> {
        let Some(sm) = sm else { return Ok(()) };
        if self.string_matches(sm, value, ignore_case) {
            ok.push(format!("{what} {sm}"));
            Ok(())
        } else {
            match value {
                None => Err(format!("no {what} (want {sm})")),
                Some(v) => Err(format!("{what} {v:?} does not match {sm}")),
            }
        }
    }

    fn string_matches(&self, sm: &StringMatch, value: Option<&str>, ignore_case: bool) -> bool {
        let Some(value) = value else { return false };
        if let Some(exact) = &sm.exact {
            if ignore_case {
                value.eq_ignore_ascii_case(exact)
            } else {
                value.as_bytes() == exact.as_bytes()
            }
        } else if let Some(prefix) = &sm.prefix {
            if ignore_case {
                value.len() >= prefix.len()
                    && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            } else {
                value.as_bytes().starts_with(prefix.as_bytes())
            }
        } else if let Some(re) = &sm.regex {
            // Every regex was compiled in `new`; a missing one cannot match.
            self.regexes.get(re).is_some_and(|r| r.is_match(value))
        } else {
            true
        }
    }

    fn decide(
        &self,
        vs: &VirtualService,
        index: usize,
        rule: &HttpRoute,
        trace: Vec<RuleTrace>,
        host: String,
        notes: Vec<String>,
    ) -> Result<Verdict, SimError> {
        let mut verdict = Verdict {
            outcome: Outcome::Route,
            virtual_service: Some(object_name(vs)),
            host: Some(host),
            rule: Some(index),
            rule_name: rule.name.clone(),
            destinations: vec![],
            trace,
            notes,
            default_routing: None,
        };
        if rule.delegate.is_some() {
            return Err(SimError::Delegate {
                object: object_name(vs),
                rule: index,
            });
        }
        if rule.route.is_empty() {
            verdict.outcome = if rule.redirect.is_some() {
                Outcome::Redirect
            } else if rule.direct_response.is_some() {
                Outcome::DirectResponse
            } else {
                Outcome::NoRoute
            };
            return Ok(verdict);
        }
        let weights = relative_weights(rule).map_err(|reason| SimError::InvalidWeights {
            object: object_name(vs),
            rule: index,
            reason,
        })?;
        let total: u64 = weights.iter().sum();
        let ns = vs.metadata.namespace_or_default();
        for (dest, weight) in rule.route.iter().zip(weights) {
            let d = &dest.destination;
            let missing = d
                .subset
                .as_ref()
                .and_then(|subset| self.missing_subset(&qualify_host(&d.host, ns), subset));
            let percent = weight as f64 * 100.0 / total as f64;
            if weight > 0 && verdict.outcome == Outcome::Route {
                if let Some(reason) = &missing {
                    verdict.outcome = Outcome::NoSubset {
                        host: d.host.clone(),
                        subset: d.subset.clone().unwrap_or_default(),
                        reason: reason.clone(),
                    };
                }
            }
            verdict.destinations.push(Share {
                host: d.host.clone(),
                subset: d.subset.clone(),
                port: d.port.map(|p| p.number),
                weight,
                percent,
                missing,
            });
        }
        Ok(verdict)
    }

    /// Why `subset` of `host` has no endpoints cluster, or `None` when its DestinationRule
    /// defines it.
    fn missing_subset(&self, host: &str, subset: &str) -> Option<String> {
        let rule = self
            .destination_rules
            .iter()
            .filter_map(|dr| {
                let pattern = qualify_host(&dr.spec.host, dr.metadata.namespace_or_default());
                host_matches(&pattern, host).then(|| (dr, specificity(&pattern)))
            })
            .max_by_key(|(_, s)| *s)
            .map(|(dr, _)| dr);
        match rule {
            None => Some(format!("no DestinationRule for host {host}")),
            Some(dr) if dr.spec.subsets.iter().any(|s| s.name == subset) => None,
            Some(dr) => Some(format!(
                "no subset {subset} in DestinationRule {}",
                dr.metadata.name
            )),
        }
    }
}

/// Istio's relative weights: unset counts 0 next to set ones, a single unset destination takes
/// everything; negative or all-zero weights are invalid.
fn relative_weights(rule: &HttpRoute) -> Result<Vec<u64>, String> {
    // One destination is one cluster: Envoy gets no weighted clusters, so its weight (even 0)
    // does not matter.
    if rule.route.len() == 1 {
        return Ok(vec![1]);
    }
    let mut weights = Vec::with_capacity(rule.route.len());
    for (i, dest) in rule.route.iter().enumerate() {
        let w = dest.weight.unwrap_or(0);
        let w = u64::try_from(w).map_err(|_| format!("route[{i}].weight {w} is negative"))?;
        weights.push(w);
    }
    if weights.iter().all(|w| *w == 0) {
        return Err("all weights are 0 (or unset), which Istio refuses".to_string());
    }
    Ok(weights)
}

/// A request header by name, case-insensitively; the pseudo-headers `:method`, `:authority`
/// (`:host`), `:path` and `:scheme` are the request line's parts.
fn header_value<'r>(request: &'r Request, authority: &'r str, name: &str) -> Option<&'r str> {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        ":method" => Some(&request.method),
        ":authority" | "host" | ":host" => Some(authority),
        ":path" => Some(&request.path),
        ":scheme" => Some(&request.scheme),
        _ => request.headers.get(&name).map(String::as_str),
    }
}

/// The hosts a request may be known by: as sent, and — for sidecar traffic, where Kubernetes DNS
/// search paths apply — completed to `<name>.<ns>.svc.cluster.local`.
fn request_hosts(request: &Request, vs_ns: &str) -> Vec<String> {
    let host = request.host.to_ascii_lowercase();
    let mut out = vec![host.clone()];
    if request.gateway.is_mesh() {
        let ns = request.namespace.as_deref().unwrap_or(vs_ns);
        let dots = host.matches('.').count();
        if dots == 0 {
            out.push(format!("{host}.{ns}.svc.cluster.local"));
        } else if host.ends_with(".svc") {
            out.push(format!("{host}.cluster.local"));
        } else if dots == 1 {
            out.push(format!("{host}.svc.cluster.local"));
        }
    }
    out
}

/// Exact hosts beat wildcards; longer wildcards beat shorter ones.
fn specificity(pattern: &str) -> usize {
    if pattern.starts_with('*') {
        pattern.len()
    } else {
        10_000 + pattern.len()
    }
}

fn object_name(vs: &VirtualService) -> String {
    format!(
        "{}/{}",
        vs.metadata.namespace_or_default(),
        vs.metadata.name
    )
}

fn string_matches(block: &HttpMatchRequest) -> Vec<(String, &StringMatch)> {
    let mut out = Vec::new();
    for (field, sm) in [
        ("uri", &block.uri),
        ("scheme", &block.scheme),
        ("method", &block.method),
        ("authority", &block.authority),
    ] {
        if let Some(sm) = sm {
            out.push((field.to_string(), sm));
        }
    }
    for (kind, map) in [
        ("headers", &block.headers),
        ("queryParams", &block.query_params),
        ("withoutHeaders", &block.without_headers),
    ] {
        for (name, sm) in map {
            out.push((format!("{kind}.{name}"), sm));
        }
    }
    out
}

/// Compile an Istio regex: RE2 syntax, at most 1024 characters, anchored to the whole value.
fn compile(re: &str) -> Result<Regex, String> {
    policy_sdk::rules::check_regex(re).map_err(|e| e.to_string())?;
    Regex::new(&format!("^(?:{re})$")).map_err(|e| e.to_string())
}
