//! Routing intent → Istio objects.
//!
//! [`render`] turns one [`Stage`] of a release (ordered rules per service, destinations named by
//! [`Role`]) into, per service, a DestinationRule `<service>` with the subsets of the roles the
//! options ask for, and a VirtualService `<service>` whose `http` rules follow the intent in
//! order; plus a namespace-wide PeerAuthentication when mutual TLS is asked for. Intent that
//! cannot be rendered safely (an unknown service, a destination whose subset would not exist —
//! the 503 window — all-zero weights, …) is a [`RenderError`]; nothing partial comes back.
//!
//! A service with gateways gets one VirtualService bound to its gateways and `mesh`, with hosts
//! `[<host>] + gateway_hosts`; except when the gateway hosts include `*`, which istiod refuses
//! for `mesh` ("wildcard host * is not allowed for virtual services bound to the mesh gateway"):
//! then `<service>` serves `mesh` and `<service>-gateway` (same rules) serves the gateways.
//!
//! [`Rendered`] lists the objects in make-before-break apply order: DestinationRules (subsets
//! exist) before the VirtualServices that use them, PeerAuthentication (servers) last, after the
//! clients' `ISTIO_MUTUAL`.

mod error;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use policy_sdk::{rules, stages};
use policy_sdk::{Destination as Intent, Match, ReleaseInfo, Role, Rule, ServiceInfo, Stage};

use crate::istio::{
    ClientTlsSettings, Destination, DestinationRule, DestinationRuleSpec, HttpMatchRequest,
    HttpRoute, HttpRouteDestination, IstioObject, MtlsMode, ObjectMeta, PeerAuthentication,
    PeerAuthenticationSpec, PeerMtls, StringMatch, Subset, TlsMode, TrafficPolicy, VirtualService,
    VirtualServiceSpec, NETWORKING_V1, SECURITY_V1,
};

pub use error::RenderError;

use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL, RELEASE_LABEL};
/// Name of the namespace-wide PeerAuthentication (Istio's convention for the namespace policy).
pub const PEER_AUTHENTICATION_NAME: &str = "default";
/// Suffix of the gateway-only VirtualService rendered when a service's gateway hosts include
/// `*`, which istiod refuses in a VirtualService bound to `mesh`.
pub const GATEWAY_VS_SUFFIX: &str = "-gateway";
pub use crate::istio::MESH_GATEWAY;

/// What to render besides the routes themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Roles that get a subset in each DestinationRule. Both while a release runs; only the
    /// canary after finalize. A route to a role outside this set is refused.
    pub subsets: BTreeSet<Role>,
    /// Client TLS mode set as the DestinationRules' `trafficPolicy.tls.mode`.
    pub client_tls: Option<TlsMode>,
    /// Server mode of a namespace-wide PeerAuthentication; none renders no PeerAuthentication.
    pub peer_authentication: Option<MtlsMode>,
    /// Extra VirtualService hosts per service name (`"*"`, `app.example.com`), used only for
    /// services that have gateways.
    pub gateway_hosts: BTreeMap<String, Vec<String>>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            subsets: BTreeSet::from([Role::Stable, Role::Canary]),
            client_tls: None,
            peer_authentication: None,
            gateway_hosts: BTreeMap::new(),
        }
    }
}

impl RenderOptions {
    /// Strict mutual TLS: DestinationRules with `ISTIO_MUTUAL`, a namespace PeerAuthentication
    /// `STRICT`.
    pub fn strict_mtls(mut self) -> Self {
        self.client_tls = Some(TlsMode::IstioMutual);
        self.peer_authentication = Some(MtlsMode::Strict);
        self
    }
}

/// The objects of one stage, in make-before-break apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    objects: Vec<IstioObject>,
}

impl Rendered {
    /// Objects in apply order: DestinationRules, VirtualServices, then the PeerAuthentication.
    pub fn objects(&self) -> &[IstioObject] {
        &self.objects
    }

    /// Iterate the objects in apply order.
    pub fn iter(&self) -> std::slice::Iter<'_, IstioObject> {
        self.objects.iter()
    }

    /// The objects, in apply order, as JSON (for server-side apply and printing).
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        self.objects.iter().map(IstioObject::to_value).collect()
    }

    /// [`Rendered::to_values`], dropping each typed object once it is converted, so a large
    /// release is not held twice.
    pub fn into_values(self) -> impl Iterator<Item = serde_json::Value> {
        self.objects.into_iter().map(|object| object.to_value())
    }

    /// The DestinationRules, in service order.
    pub fn destination_rules(&self) -> impl Iterator<Item = &DestinationRule> {
        self.objects.iter().filter_map(|o| match o {
            IstioObject::DestinationRule(dr) => Some(dr),
            _ => None,
        })
    }

    /// The VirtualServices, in service order.
    pub fn virtual_services(&self) -> impl Iterator<Item = &VirtualService> {
        self.objects.iter().filter_map(|o| match o {
            IstioObject::VirtualService(vs) => Some(vs),
            _ => None,
        })
    }

    /// The objects as a YAML stream (`---` between documents).
    pub fn to_yaml(&self) -> String {
        crate::manifest::to_yaml_stream(&self.objects)
    }
}

impl<'a> IntoIterator for &'a Rendered {
    type Item = &'a IstioObject;
    type IntoIter = std::slice::Iter<'a, IstioObject>;
    fn into_iter(self) -> Self::IntoIter {
        self.objects.iter()
    }
}

impl IntoIterator for Rendered {
    type Item = IstioObject;
    type IntoIter = std::vec::IntoIter<IstioObject>;
    fn into_iter(self) -> Self::IntoIter {
        self.objects.into_iter()
    }
}

/// Render the objects of `stage` for `release`.
///
/// Every service of the release must have routes in the stage, and every route must name a
/// service of the release. See [`RenderError`] for what is refused.
pub fn render(
    release: &ReleaseInfo,
    stage: &Stage,
    opts: &RenderOptions,
) -> Result<Rendered, RenderError> {
    if let Some(unknown) = stage
        .routes
        .keys()
        .find(|name| !release.services.iter().any(|s| &s.name == *name))
    {
        return Err(RenderError::UnknownService {
            service: unknown.clone(),
            known: release.services.iter().map(|s| s.name.clone()).collect(),
        });
    }
    // Regexes already checked in this call: stages repeat the same tester regex per service.
    let checked = RefCell::new(HashSet::new());
    let mut rules = Vec::with_capacity(release.services.len());
    let mut virtual_services = Vec::with_capacity(release.services.len());
    for service in &release.services {
        let routes =
            stage
                .routes
                .get(&service.name)
                .ok_or_else(|| RenderError::MissingService {
                    service: service.name.clone(),
                })?;
        rules.push(IstioObject::DestinationRule(destination_rule(
            release, service, opts,
        )));
        virtual_services.extend(
            virtual_service(release, service, routes, opts, &checked)?
                .into_iter()
                .map(IstioObject::VirtualService),
        );
    }
    let mut objects = rules;
    objects.extend(virtual_services);
    if let Some(mode) = opts.peer_authentication {
        objects.push(IstioObject::PeerAuthentication(peer_authentication(
            release, mode,
        )));
    }
    Ok(Rendered { objects })
}

/// The stage before a policy's first one, and the one `abort` returns to: every service sends
/// all traffic to its stable subset. Index 0, named `baseline`.
pub fn baseline_stage(release: &ReleaseInfo) -> Stage {
    all_to(release, Role::Stable, "baseline")
}

/// Every service sends all traffic to its canary subset (what `promote` and `finalize` apply).
/// Index 0, named `final`.
pub fn final_stage(release: &ReleaseInfo) -> Stage {
    all_to(release, Role::Canary, "final")
}

fn all_to(release: &ReleaseInfo, role: Role, name: &str) -> Stage {
    let routes = release
        .services
        .iter()
        .map(|s| {
            let rule = Rule {
                matches: vec![],
                to: vec![Intent {
                    subset: role,
                    weight: None,
                }],
            };
            (s.name.clone(), vec![rule])
        })
        .collect();
    Stage {
        index: 0,
        name: name.to_string(),
        routes,
    }
}

fn metadata(release: &ReleaseInfo, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        namespace: Some(release.namespace.clone()),
        labels: BTreeMap::from([
            (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
            (RELEASE_LABEL.to_string(), release.name.clone()),
        ]),
        annotations: BTreeMap::new(),
    }
}

fn version(service: &ServiceInfo, role: Role) -> &policy_sdk::VersionRef {
    match role {
        Role::Stable => &service.stable,
        Role::Canary => &service.canary,
    }
}

fn destination_rule(
    release: &ReleaseInfo,
    service: &ServiceInfo,
    opts: &RenderOptions,
) -> DestinationRule {
    let subsets = opts
        .subsets
        .iter()
        .map(|&role| {
            let v = version(service, role);
            Subset {
                name: v.subset.clone(),
                labels: v.labels.clone(),
                traffic_policy: None,
            }
        })
        .collect();
    DestinationRule {
        api_version: NETWORKING_V1.to_string(),
        kind: "DestinationRule".to_string(),
        metadata: metadata(release, &service.name),
        spec: DestinationRuleSpec {
            host: service.host.clone(),
            traffic_policy: opts.client_tls.map(|mode| TrafficPolicy {
                tls: Some(ClientTlsSettings { mode: Some(mode) }),
            }),
            subsets,
            export_to: vec![],
        },
    }
}

fn virtual_service(
    release: &ReleaseInfo,
    service: &ServiceInfo,
    routes: &[Rule],
    opts: &RenderOptions,
    checked: &RefCell<HashSet<String>>,
) -> Result<Vec<VirtualService>, RenderError> {
    let svc = &service.name;
    if routes.is_empty() {
        return Err(RenderError::NoRules {
            service: svc.clone(),
        });
    }
    let mut names = BTreeSet::new();
    let mut http = Vec::with_capacity(routes.len());
    // The expansion of `canaryCallers` for this service, built the first time a rule asks.
    let mut callers: Option<Vec<Match>> = None;
    for (index, rule) in routes.iter().enumerate() {
        let at = |field: &str| format!("routes.{svc}[{index}]{field}");
        if rule.matches.is_empty() && index + 1 < routes.len() {
            return Err(RenderError::UnreachableRules {
                service: svc.clone(),
                rule: index,
            });
        }
        if !rule.matches.is_empty() && index + 1 == routes.len() {
            return Err(RenderError::NoCatchAll {
                service: svc.clone(),
            });
        }
        let mut matches = Vec::with_capacity(rule.matches.len());
        for (m, block) in rule.matches.iter().enumerate() {
            let at = |f: &str| at(&format!(".match[{m}]{f}"));
            let rendered = match_block(block, checked, &at)?;
            if !block.canary_callers {
                matches.push(rendered);
                continue;
            }
            if !block.source_labels.is_empty() {
                return Err(RenderError::CallersWithSourceLabels { field: at("") });
            }
            // One block per calling release service, each with this block's other conditions.
            let callers = callers.get_or_insert_with(|| stages::chain_matches(release, service));
            matches.extend(callers.iter().map(|caller| HttpMatchRequest {
                source_labels: caller.source_labels.clone(),
                ..rendered.clone()
            }));
        }
        if matches.is_empty() && !rule.matches.is_empty() {
            // Only caller matches, and the release has no caller to name (one service, or
            // callers whose canary labels cannot be told from stable): the rule matches no
            // request. Rendering it without matches would send every request to it instead.
            continue;
        }
        let route = destinations(service, rule, opts, &at)?;
        let name = unique_name(&mut names, rule_name(rule));
        http.push(HttpRoute {
            name: Some(name),
            matches,
            route,
            ..Default::default()
        });
    }
    let vs = |name: &str, hosts: Vec<String>, gateways: Vec<String>| VirtualService {
        api_version: NETWORKING_V1.to_string(),
        kind: "VirtualService".to_string(),
        metadata: metadata(release, name),
        spec: VirtualServiceSpec {
            hosts,
            gateways,
            http: http.clone(),
            export_to: vec![],
        },
    };
    if service.gateways.is_empty() {
        return Ok(vec![vs(svc, vec![service.host.clone()], vec![])]);
    }
    let extra: Vec<String> = opts
        .gateway_hosts
        .get(svc)
        .into_iter()
        .flatten()
        .filter(|h| **h != service.host)
        .cloned()
        .collect();
    let mut gateways = service.gateways.clone();
    if extra.iter().any(|h| h == "*") {
        // istiod refuses `*` in a VirtualService bound to `mesh`: the sidecars get their own.
        let ingress = vs(&format!("{svc}{GATEWAY_VS_SUFFIX}"), extra, gateways);
        return Ok(vec![vs(svc, vec![service.host.clone()], vec![]), ingress]);
    }
    let mut hosts = vec![service.host.clone()];
    hosts.extend(extra);
    gateways.push(MESH_GATEWAY.to_string());
    Ok(vec![vs(svc, hosts, gateways)])
}

fn match_block(
    block: &Match,
    checked: &RefCell<HashSet<String>>,
    at: &dyn Fn(&str) -> String,
) -> Result<HttpMatchRequest, RenderError> {
    let check = |m: &policy_sdk::StringMatch, field: String| match m {
        policy_sdk::StringMatch::Regex(re) if !checked.borrow().contains(re) => {
            rules::check_regex(re).map_err(|source| RenderError::Invalid { field, source })?;
            checked.borrow_mut().insert(re.clone());
            Ok(())
        }
        _ => Ok(()),
    };
    for (name, m) in &block.headers {
        rules::check_header_name(name).map_err(|source| RenderError::Invalid {
            field: at(&format!(".headers.{name}")),
            source,
        })?;
        check(m, at(&format!(".headers.{name}")))?;
    }
    if let Some(uri) = &block.uri {
        check(uri, at(".uri"))?;
    }
    for (i, gateway) in block.gateways.iter().enumerate() {
        rules::check_gateway_ref(gateway).map_err(|source| RenderError::Invalid {
            field: at(&format!(".gateways[{i}]")),
            source,
        })?;
    }
    Ok(HttpMatchRequest {
        uri: block.uri.as_ref().map(StringMatch::from),
        headers: block
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), StringMatch::from(v)))
            .collect(),
        source_labels: block.source_labels.clone(),
        gateways: block.gateways.clone(),
        ..Default::default()
    })
}

fn destinations(
    service: &ServiceInfo,
    rule: &Rule,
    opts: &RenderOptions,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<HttpRouteDestination>, RenderError> {
    if rule.to.is_empty() {
        return Err(RenderError::NoDestinations { field: at(".to") });
    }
    let mut out = Vec::with_capacity(rule.to.len());
    for (i, dest) in rule.to.iter().enumerate() {
        if !opts.subsets.contains(&dest.subset) {
            return Err(RenderError::NoSubset {
                field: at(&format!(".to[{i}].subset")),
                service: service.name.clone(),
                role: dest.subset,
                subset: version(service, dest.subset).subset.clone(),
            });
        }
        if let Some(w) = dest.weight {
            rules::check_weight(i64::from(w)).map_err(|source| RenderError::Invalid {
                field: at(&format!(".to[{i}].weight")),
                source,
            })?;
        }
        out.push(HttpRouteDestination {
            destination: Destination {
                host: service.host.clone(),
                subset: Some(version(service, dest.subset).subset.clone()),
                port: None,
            },
            // Within 0..=100, checked above.
            weight: dest.weight.map(|w| w as i32),
        });
    }
    let single_unset = rule.to.len() == 1 && rule.to[0].weight.is_none();
    if !single_unset && rule.to.iter().all(|d| d.weight.unwrap_or(0) == 0) {
        return Err(RenderError::AllZeroWeights { field: at(".to") });
    }
    Ok(out)
}

/// A readable route name from what the rule matches.
fn rule_name(rule: &Rule) -> String {
    let Some(block) = rule.matches.first() else {
        return match rule.to.as_slice() {
            [only] => format!("all-{}", role_name(only.subset)),
            _ => "weighted".to_string(),
        };
    };
    if block.headers.contains_key("cookie") {
        "tester-cookie".to_string()
    } else if !block.headers.is_empty() {
        "tester-header".to_string()
    } else if block.canary_callers || !block.source_labels.is_empty() {
        "canary-callers".to_string()
    } else if block.uri.is_some() {
        "uri".to_string()
    } else if !block.gateways.is_empty() {
        "gateway".to_string()
    } else {
        "match".to_string()
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Stable => "stable",
        Role::Canary => "canary",
    }
}

fn unique_name(taken: &mut BTreeSet<String>, base: String) -> String {
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

fn peer_authentication(release: &ReleaseInfo, mode: MtlsMode) -> PeerAuthentication {
    PeerAuthentication {
        api_version: SECURITY_V1.to_string(),
        kind: "PeerAuthentication".to_string(),
        metadata: metadata(release, PEER_AUTHENTICATION_NAME),
        spec: PeerAuthenticationSpec {
            selector: None,
            mtls: Some(PeerMtls { mode: Some(mode) }),
        },
    }
}
