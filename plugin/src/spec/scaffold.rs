//! `kubectl canary init`'s pure part: from live Services, Deployments and VirtualServices to a
//! ready release spec, written as YAML text with explanatory comments (so they survive), and
//! checked with [`super::parse_str`] before it is handed out.
//!
//! How a service is read:
//! - The Service's selector names the app label: its only key, else `app`, else
//!   `app.kubernetes.io/name`. Its value must be the Service's name (that is what a release
//!   assumes: pods `app=<service>`).
//! - The Deployments whose pod template labels carry the whole selector are the service's
//!   versions; the version label is `version`, else `app.kubernetes.io/version`, whichever all of
//!   them carry.
//! - Which version is stable and which canary:
//!   - one version deployed: it is stable; `--canary-version` names the canary (required);
//!   - two versions: the lower one in natural order (`v1` < `v2` < `v10`, `1.9` < `1.10`) is
//!     stable, the other canary — unless `--canary-version` or `--stable-version` names one of
//!     them, then the other takes the other role (a new `--canary-version` needs
//!     `--stable-version` too);
//!   - more than two: `--stable-version` and `--canary-version` are both required (bookinfo's
//!     reviews runs v1, v2 and v3 at once: only the operator knows which one serves users).
//! - VirtualServices of the namespace that route to the service and are bound to ingress
//!   gateways give `gateways` (as `namespace/name`) and `hosts`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::error::SpecError;
use super::model::{Release, API_VERSION, DEFAULT_APP_LABEL, DEFAULT_VERSION_LABEL, KIND};
use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL};

/// What `init` is pointed at on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `service/NAME`, `svc/NAME` or a bare `NAME`.
    Service(String),
    /// `deployment/NAME` or `deploy/NAME`: the service selecting its pods.
    Deployment(String),
}

impl Target {
    /// Parse `NAME`, `service/NAME` (`svc`, `services`) or `deployment/NAME` (`deploy`,
    /// `deployments`, with or without `.apps`), as kubectl spells them.
    pub fn parse(text: &str) -> Result<Self, ScaffoldError> {
        let bad = || ScaffoldError::BadTarget(text.to_string());
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => (Some(kind), name),
            None => (None, text),
        };
        if name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        match kind {
            None | Some("service" | "services" | "svc") => Ok(Target::Service(name.to_string())),
            Some(
                "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps",
            ) => Ok(Target::Deployment(name.to_string())),
            Some(_) => Err(bad()),
        }
    }
}

/// The live objects of the namespace `init` reads.
#[derive(Debug, Clone, Copy)]
pub struct Objects<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// Its Services.
    pub services: &'a [Value],
    /// Its Deployments.
    pub deployments: &'a [Value],
    /// Its VirtualServices (empty when Istio's kinds could not be read).
    pub virtual_services: &'a [Value],
}

/// Choices from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--canary-version`.
    pub canary_version: Option<String>,
    /// `--stable-version`.
    pub stable_version: Option<String>,
    /// `--image`: `start` creates the canary Deployment by cloning the stable one (one service
    /// only).
    pub image: Option<String>,
    /// `--name`: the release name; default `<first service>-<canary subset>`.
    pub name: Option<String>,
}

/// A scaffolded spec: the text with comments and the release it parses to.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// YAML with comments, accepted by [`super::parse_str`].
    pub text: String,
    /// The parsed release.
    pub release: Release,
}

/// Why no spec could be scaffolded. Each message says what is missing and what to check.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The command-line target is not `NAME`, `service/NAME` or `deployment/NAME`.
    #[error("invalid target {0:?}: use NAME, service/NAME or deployment/NAME")]
    BadTarget(String),
    /// No targets.
    #[error("name at least one service: kubectl canary init service/NAME")]
    NoTarget,
    /// The same service twice.
    #[error("service {0} is named twice")]
    DuplicateService(String),
    /// The Service does not exist.
    #[error("service {name} not found in namespace {namespace} (check the name and -n: kubectl get services -n {namespace})")]
    ServiceNotFound {
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// The Deployment does not exist.
    #[error("deployment {name} not found in namespace {namespace} (check the name and -n: kubectl get deployments -n {namespace})")]
    DeploymentNotFound {
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// No Service selects the Deployment's pods, or several do.
    #[error("{}", service_for_deployment(.deployment, .labels, .services))]
    ServiceOfDeployment {
        /// The Deployment.
        deployment: String,
        /// Its pod template labels, `k=v,...`.
        labels: String,
        /// The Services selecting them (none or several).
        services: Vec<String>,
    },
    /// The Service's selector cannot be used.
    #[error("service {service}: {problem}")]
    Selector {
        /// The Service.
        service: String,
        /// What is wrong with its selector.
        problem: String,
    },
    /// No Deployment has the Service's labels.
    #[error("no deployment in namespace {namespace} has pods labelled {selector} (the selector of service {service}); check kubectl get deployments -n {namespace} --show-labels")]
    NoDeployments {
        /// The Service.
        service: String,
        /// Its selector, `k=v,...`.
        selector: String,
        /// The namespace.
        namespace: String,
    },
    /// The Deployments carry no common version label.
    #[error("deployments {deployments} of service {service} have no version label on their pod template (looked for {DEFAULT_VERSION_LABEL} and app.kubernetes.io/version); label their pods version=<version>")]
    NoVersionLabel {
        /// The Service.
        service: String,
        /// The Deployments, comma-separated.
        deployments: String,
    },
    /// Stable and canary cannot be told apart from what is deployed and the flags.
    #[error("service {service}: {problem}")]
    Versions {
        /// The Service.
        service: String,
        /// What is missing.
        problem: String,
    },
    /// `--image` was given with several services.
    #[error("--image applies to one service; with several, set spec.services[].canary.image in the spec")]
    ImageWithSeveralServices,
    /// The text built does not pass the spec's own checks (a flag value it took verbatim).
    #[error("the scaffolded spec is not valid: {0}")]
    Spec(#[from] SpecError),
}

fn service_for_deployment(deployment: &str, labels: &str, services: &[String]) -> String {
    if services.is_empty() {
        format!(
            "no service selects the pods of deployment {deployment} (labels {labels}); create one, \
             or name the service: kubectl canary init service/NAME"
        )
    } else {
        format!(
            "the pods of deployment {deployment} are selected by several services ({}); name one: \
             kubectl canary init service/NAME",
            services.join(", ")
        )
    }
}

/// What `init` found out about one service.
#[derive(Debug, Clone)]
struct Plan {
    name: String,
    app_label: String,
    version_label: String,
    stable: Version,
    canary: Version,
    /// Every deployed version, for the comment.
    deployed: Vec<Version>,
    /// Why stable and canary were chosen as they were.
    rule: &'static str,
    gateways: Vec<String>,
    hosts: Vec<String>,
    /// VirtualServices bound to the gateways (names).
    gateway_routes: Vec<String>,
    /// VirtualServices routing to the service that kubectl-canary does not manage.
    foreign_routes: Vec<String>,
}

/// One version and the Deployment(s) running it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    version: String,
    deployments: Vec<String>,
    image: Option<String>,
}

/// Build the spec for `targets` (in order; the first is the entry service unless gateways say
/// otherwise).
pub fn scaffold(
    objects: &Objects<'_>,
    targets: &[Target],
    options: &Options,
) -> Result<Scaffold, ScaffoldError> {
    if targets.is_empty() {
        return Err(ScaffoldError::NoTarget);
    }
    if options.image.is_some() && targets.len() > 1 {
        return Err(ScaffoldError::ImageWithSeveralServices);
    }
    let mut plans: Vec<Plan> = Vec::new();
    for target in targets {
        let service = find_service(objects, target)?;
        let plan = plan_service(objects, service, options)?;
        if plans.iter().any(|p| p.name == plan.name) {
            return Err(ScaffoldError::DuplicateService(plan.name));
        }
        plans.push(plan);
    }
    let text = render(objects.namespace, &plans, options);
    let release = super::parse_str(&text, "the scaffolded spec")?;
    Ok(Scaffold { text, release })
}

fn find_service<'a>(objects: &Objects<'a>, target: &Target) -> Result<&'a Value, ScaffoldError> {
    match target {
        Target::Service(name) => objects
            .services
            .iter()
            .find(|s| name_of(s) == name)
            .ok_or_else(|| ScaffoldError::ServiceNotFound {
                name: name.clone(),
                namespace: objects.namespace.to_string(),
            }),
        Target::Deployment(name) => {
            let deployment = objects
                .deployments
                .iter()
                .find(|d| name_of(d) == name)
                .ok_or_else(|| ScaffoldError::DeploymentNotFound {
                    name: name.clone(),
                    namespace: objects.namespace.to_string(),
                })?;
            let labels = pod_labels(deployment);
            let selecting: Vec<&Value> = objects
                .services
                .iter()
                .filter(|s| selects(&selector(s), &labels))
                .collect();
            match selecting.as_slice() {
                [one] => Ok(one),
                many => Err(ScaffoldError::ServiceOfDeployment {
                    deployment: name.clone(),
                    labels: join_labels(&labels),
                    services: many.iter().map(|s| name_of(s).to_string()).collect(),
                }),
            }
        }
    }
}

fn plan_service(
    objects: &Objects<'_>,
    service: &Value,
    options: &Options,
) -> Result<Plan, ScaffoldError> {
    let name = name_of(service).to_string();
    let selector = selector(service);
    let selector_error = |problem: String| ScaffoldError::Selector {
        service: name.clone(),
        problem,
    };
    if selector.is_empty() {
        return Err(selector_error(
            "it has no selector, so it has no pods of its own to release; give it a selector \
             such as app=<name>"
                .to_string(),
        ));
    }
    let app_label = if selector.len() == 1 {
        selector.keys().next().cloned().unwrap_or_default()
    } else if selector.contains_key(DEFAULT_APP_LABEL) {
        DEFAULT_APP_LABEL.to_string()
    } else if selector.contains_key("app.kubernetes.io/name") {
        "app.kubernetes.io/name".to_string()
    } else {
        return Err(selector_error(format!(
            "cannot tell which label of its selector {} names the app (expected app or \
             app.kubernetes.io/name)",
            join_labels(&selector)
        )));
    };
    if selector.get(&app_label) != Some(&name) {
        return Err(selector_error(format!(
            "its selector has {app_label}={}, but a release expects the pods labelled \
             {app_label}={name} (the service's name); relabel the pods and the selector",
            selector.get(&app_label).map(String::as_str).unwrap_or("")
        )));
    }
    let deployments: Vec<&Value> = objects
        .deployments
        .iter()
        .filter(|d| selects(&selector, &pod_labels(d)))
        .collect();
    if deployments.is_empty() {
        return Err(ScaffoldError::NoDeployments {
            service: name.clone(),
            selector: join_labels(&selector),
            namespace: objects.namespace.to_string(),
        });
    }
    let version_label = [DEFAULT_VERSION_LABEL, "app.kubernetes.io/version"]
        .into_iter()
        .find(|key| deployments.iter().all(|d| pod_labels(d).contains_key(*key)))
        .ok_or_else(|| ScaffoldError::NoVersionLabel {
            service: name.clone(),
            deployments: deployments
                .iter()
                .map(|d| name_of(d))
                .collect::<Vec<_>>()
                .join(", "),
        })?
        .to_string();
    if let Some(value) = selector.get(&version_label) {
        return Err(selector_error(format!(
            "its selector includes {version_label}={value}, so it can only reach that version; \
             remove {version_label} from the selector so it reaches every version"
        )));
    }
    let mut deployed: Vec<Version> = Vec::new();
    for d in &deployments {
        let version = pod_labels(d)
            .get(&version_label)
            .cloned()
            .unwrap_or_default();
        let image = d
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .map(str::to_string);
        match deployed.iter_mut().find(|v| v.version == version) {
            Some(v) => v.deployments.push(name_of(d).to_string()),
            None => deployed.push(Version {
                version,
                deployments: vec![name_of(d).to_string()],
                image,
            }),
        }
    }
    deployed.sort_by(|a, b| natural_cmp(&a.version, &b.version));
    let (stable, canary, rule) = choose_versions(&name, &deployed, options)?;
    if options.image.is_some() && !canary.deployments.is_empty() {
        return Err(ScaffoldError::Versions {
            service: name.clone(),
            problem: format!(
                "version {} is already deployed ({}); drop --image (it asks `start` to create \
                 the canary Deployment)",
                canary.version,
                canary.deployments.join(", ")
            ),
        });
    }
    let routes = routes_to(objects, &name);
    let mut gateways = Vec::new();
    let mut hosts = Vec::new();
    let mut gateway_routes = Vec::new();
    for vs in &routes {
        let vs_namespace = vs
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(objects.namespace);
        let bound: Vec<String> = strings_at(vs, "/spec/gateways")
            .into_iter()
            .filter(|g| g != "mesh")
            .map(|g| {
                if g.contains('/') {
                    g
                } else {
                    format!("{vs_namespace}/{g}")
                }
            })
            .collect();
        if bound.is_empty() {
            continue;
        }
        gateway_routes.push(name_of(vs).to_string());
        for g in bound {
            if !gateways.contains(&g) {
                gateways.push(g);
            }
        }
        for h in strings_at(vs, "/spec/hosts") {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    let foreign_routes = routes
        .iter()
        .filter(|vs| {
            vs.pointer(&format!(
                "/metadata/labels/{}",
                MANAGED_BY_LABEL.replace('/', "~1")
            ))
            .and_then(Value::as_str)
                != Some(MANAGED_BY)
        })
        .map(|vs| name_of(vs).to_string())
        .collect();
    Ok(Plan {
        name,
        app_label,
        version_label,
        stable,
        canary,
        deployed,
        rule,
        gateways,
        hosts,
        gateway_routes,
        foreign_routes,
    })
}

/// Pick stable and canary (see the module documentation for the rule).
fn choose_versions(
    service: &str,
    deployed: &[Version],
    options: &Options,
) -> Result<(Version, Version, &'static str), ScaffoldError> {
    let problem = |problem: String| ScaffoldError::Versions {
        service: service.to_string(),
        problem,
    };
    let listed = deployed
        .iter()
        .map(|v| v.version.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let find = |flag: &str, version: &str| {
        deployed
            .iter()
            .find(|v| v.version == version)
            .cloned()
            .ok_or_else(|| {
                problem(format!(
                    "{flag} {version}: no deployment of this service has that version (deployed: \
                     {listed})"
                ))
            })
    };
    let undeployed = |version: &str| Version {
        version: version.to_string(),
        deployments: Vec::new(),
        image: None,
    };
    let stable_flag = options.stable_version.as_deref();
    let canary_flag = options.canary_version.as_deref();
    if let (Some(s), Some(c)) = (stable_flag, canary_flag) {
        if s == c {
            return Err(problem(format!(
                "--stable-version and --canary-version are both {s}; the canary must be another \
                 version"
            )));
        }
    }
    match deployed {
        [only] => {
            if let Some(s) = stable_flag {
                find("--stable-version", s)?;
            }
            let Some(canary) = canary_flag else {
                return Err(problem(format!(
                    "only version {} is deployed; pass --canary-version VERSION (and --image IMAGE \
                     to have `start` create its Deployment)",
                    only.version
                )));
            };
            if canary == only.version {
                return Err(problem(format!(
                    "{canary} is the only deployed version, so it is the stable one; pass the new \
                     version as --canary-version"
                )));
            }
            Ok((
                only.clone(),
                undeployed(canary),
                "the only deployed version is stable; the canary comes from --canary-version",
            ))
        }
        [low, high] => match (stable_flag, canary_flag) {
            (None, None) => Ok((
                low.clone(),
                high.clone(),
                "of the two deployed versions, the lower is stable and the higher canary",
            )),
            (Some(s), None) => {
                let stable = find("--stable-version", s)?;
                let canary = if stable == *low { high } else { low };
                Ok((
                    stable,
                    canary.clone(),
                    "stable from --stable-version; the other deployed version is canary",
                ))
            }
            (None, Some(c)) => {
                if !deployed.iter().any(|v| v.version == c) {
                    return Err(problem(format!(
                        "--canary-version {c} is not deployed and two versions are ({listed}); \
                         pass --stable-version too, to say which of them serves users"
                    )));
                }
                let canary = find("--canary-version", c)?;
                let stable = if canary == *low { high } else { low };
                Ok((
                    stable.clone(),
                    canary,
                    "canary from --canary-version; the other deployed version is stable",
                ))
            }
            (Some(s), Some(c)) => {
                let stable = find("--stable-version", s)?;
                let canary = deployed
                    .iter()
                    .find(|v| v.version == c)
                    .cloned()
                    .unwrap_or_else(|| undeployed(c));
                Ok((stable, canary, "stable and canary from the flags"))
            }
        },
        _ => {
            let (Some(s), Some(c)) = (stable_flag, canary_flag) else {
                return Err(problem(format!(
                    "{} versions are deployed ({listed}); pass --stable-version and \
                     --canary-version to say which serves users and which is new",
                    deployed.len()
                )));
            };
            let stable = find("--stable-version", s)?;
            let canary = deployed
                .iter()
                .find(|v| v.version == c)
                .cloned()
                .unwrap_or_else(|| undeployed(c));
            Ok((stable, canary, "stable and canary from the flags"))
        }
    }
}

/// VirtualServices of the namespace that route to `service` (by a route destination, or by
/// naming it among their hosts).
fn routes_to<'a>(objects: &Objects<'a>, service: &str) -> Vec<&'a Value> {
    let ns = objects.namespace;
    let names_service = |host: &str| {
        host == service
            || host == format!("{service}.{ns}")
            || host == format!("{service}.{ns}.svc")
            || host == format!("{service}.{ns}.svc.cluster.local")
    };
    objects
        .virtual_services
        .iter()
        .filter(|vs| {
            let by_host = strings_at(vs, "/spec/hosts")
                .iter()
                .any(|h| names_service(h));
            let by_route = ["http", "tcp", "tls"].iter().any(|kind| {
                vs.pointer(&format!("/spec/{kind}"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|rule| rule.get("route").and_then(Value::as_array))
                    .flatten()
                    .filter_map(|dest| dest.pointer("/destination/host").and_then(Value::as_str))
                    .any(names_service)
            });
            by_host || by_route
        })
        .collect()
}

/// Compare versions in natural order: digit runs as numbers, the rest as text
/// (`v2` < `v10`, `1.9` < `1.10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let a_digit = a.starts_with(|c: char| c.is_ascii_digit());
        let b_digit = b.starts_with(|c: char| c.is_ascii_digit());
        let chunk = |s: &str, digits: bool| {
            s.find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(s.len())
        };
        let (a_len, b_len) = (chunk(a, a_digit), chunk(b, b_digit));
        let (a_chunk, b_chunk) = (&a[..a_len], &b[..b_len]);
        let order = if a_digit && b_digit {
            let (a_num, b_num) = (
                a_chunk.trim_start_matches('0'),
                b_chunk.trim_start_matches('0'),
            );
            a_num
                .len()
                .cmp(&b_num.len())
                .then_with(|| a_num.cmp(b_num))
                .then_with(|| a_chunk.len().cmp(&b_chunk.len()))
        } else {
            a_chunk.cmp(b_chunk)
        };
        if order != Ordering::Equal {
            return order;
        }
        a = &a[a_len..];
        b = &b[b_len..];
    }
}

fn render(namespace: &str, plans: &[Plan], options: &Options) -> String {
    let first = &plans[0];
    let name = options.name.clone().unwrap_or_else(|| {
        let subset = policy_sdk::rules::subset_name(&first.canary.version)
            .unwrap_or_else(|_| "canary".to_string());
        let mut name = format!("{}-{subset}", first.name);
        name.truncate(63);
        name.trim_end_matches('-').to_string()
    });
    let mut out = String::new();
    let w = &mut out;
    let services = plans
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        w,
        "# Release spec written by `kubectl canary init` from the live objects of namespace \
         {namespace} ({services})."
    );
    let _ = writeln!(
        w,
        "# Check it: kubectl canary lint -f FILE · preview every stage: kubectl canary plan -f FILE"
    );
    let _ = writeln!(w, "# Then run it: kubectl canary start -f FILE");
    let _ = writeln!(w, "apiVersion: {API_VERSION}");
    let _ = writeln!(w, "kind: {KIND}");
    let _ = writeln!(w, "metadata:");
    let _ = writeln!(w, "  name: {}", scalar(&name));
    let _ = writeln!(w, "  namespace: {}", scalar(namespace));
    let _ = writeln!(w, "spec:");
    let _ = writeln!(w, "  services:");
    let any_gateways = plans.iter().any(|p| !p.gateways.is_empty());
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(w);
        }
        render_service(w, namespace, plan, i, any_gateways, options);
    }
    let _ = writeln!(w, "  policy:");
    let _ = writeln!(
        w,
        "    # The built-in policy: canary weight steps, optional tester routing, chaining."
    );
    let _ = writeln!(w, "    module: builtin:progressive");
    let _ = writeln!(w, "    config:");
    let _ = writeln!(
        w,
        "      # Canary weight (percent) at each stage; the last one is 100."
    );
    let _ = writeln!(w, "      steps: [10, 50, 100]");
    let _ = writeln!(
        w,
        "      # `kubectl canary run` waits this long between stages."
    );
    let _ = writeln!(w, "      pause: 5m");
    let _ = writeln!(
        w,
        "      # Send testers to the canary from the first stage, by cookie or by header:"
    );
    let _ = writeln!(w, "      # testers: {{cookie: \"user=tester\"}}");
    let _ = writeln!(
        w,
        "      # testers: {{header: {{name: canary, exact: canary-tester}}}}"
    );
    if plans.len() > 1 {
        let _ = writeln!(
            w,
            "      # Canary callers reach only canary callees (a request that enters canary stays canary)."
        );
        let _ = writeln!(w, "      chain: true");
    }
    let _ = writeln!(
        w,
        "  # Require mutual TLS in the namespace (see kubectl canary mtls status first):"
    );
    let _ = writeln!(w, "  # mtls: strict");
    out
}

fn render_service(
    w: &mut String,
    namespace: &str,
    plan: &Plan,
    index: usize,
    any_gateways: bool,
    options: &Options,
) {
    let deployed = plan
        .deployed
        .iter()
        .map(|v| format!("{} ({})", v.version, v.deployments.join(", ")))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        w,
        "    # Service {} selects pods {}={}; deployed versions: {deployed}.",
        plan.name, plan.app_label, plan.name
    );
    let _ = writeln!(w, "    # Stable and canary: {}.", plan.rule);
    let _ = writeln!(w, "    - name: {}", scalar(&plan.name));
    if plan.app_label != DEFAULT_APP_LABEL {
        let _ = writeln!(w, "      appLabel: {}", scalar(&plan.app_label));
    }
    if plan.version_label != DEFAULT_VERSION_LABEL {
        let _ = writeln!(w, "      versionLabel: {}", scalar(&plan.version_label));
    }
    let _ = writeln!(w, "      stable:");
    let _ = writeln!(w, "        version: {}", scalar(&plan.stable.version));
    let _ = writeln!(w, "      canary:");
    let _ = writeln!(w, "        version: {}", scalar(&plan.canary.version));
    if plan.canary.deployments.is_empty() {
        let clone_of = plan.stable.deployments.first().cloned().unwrap_or_default();
        match &options.image {
            Some(image) => {
                let _ = writeln!(
                    w,
                    "        # Not deployed yet: `start` creates it by cloning deployment \
                     {clone_of} with this image."
                );
                let _ = writeln!(w, "        image: {}", scalar(image));
            }
            None => {
                let _ = writeln!(
                    w,
                    "        # Not deployed yet: deploy pods {}={},{}={} before `start`, or set",
                    plan.app_label, plan.name, plan.version_label, plan.canary.version
                );
                let _ = writeln!(
                    w,
                    "        # image to have `start` clone deployment {clone_of}{}:",
                    plan.stable
                        .image
                        .as_deref()
                        .map(|i| format!(" (image {i} today)"))
                        .unwrap_or_default()
                );
                let _ = writeln!(w, "        # image: REPOSITORY:TAG");
            }
        }
    }
    if !plan.gateways.is_empty() {
        let _ = writeln!(
            w,
            "      # Ingress, as VirtualService {} routes it today.",
            plan.gateway_routes.join(", ")
        );
        let _ = writeln!(w, "      gateways:");
        for g in &plan.gateways {
            let _ = writeln!(w, "        - {}", scalar(g));
        }
        if !plan.hosts.is_empty() {
            let _ = writeln!(w, "      hosts:");
            for h in &plan.hosts {
                let _ = writeln!(w, "        - {}", scalar(h));
            }
        }
    } else if !any_gateways && index == 0 {
        let _ = writeln!(
            w,
            "      # No VirtualService binds {} to an ingress gateway; to release traffic from \
             one, add",
            plan.name
        );
        let _ = writeln!(
            w,
            "      # gateways: [NAMESPACE/GATEWAY] and hosts: [\"HOST\"]. As it is, this first \
             service is the entry."
        );
    }
    if !plan.foreign_routes.is_empty() {
        let _ = writeln!(
            w,
            "      # VirtualService {} in namespace {namespace} already routes this service and \
             is not managed by",
            plan.foreign_routes.join(", ")
        );
        let _ = writeln!(
            w,
            "      # kubectl-canary: `start` refuses to take it over unless you pass --adopt."
        );
    }
}

/// A YAML scalar for `text`: plain when it reads back as the same string, else double-quoted.
fn scalar(text: &str) -> String {
    let plain_chars = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        && !text.starts_with(['-', '.', '/']);
    let reads_back = plain_chars
        && serde_yaml::from_str::<Value>(text).ok() == Some(Value::String(text.to_string()));
    if reads_back {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_default()
    }
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn string_map(obj: &Value, pointer: &str) -> BTreeMap<String, String> {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn strings_at(obj: &Value, pointer: &str) -> Vec<String> {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn selector(service: &Value) -> BTreeMap<String, String> {
    string_map(service, "/spec/selector")
}

fn pod_labels(deployment: &Value) -> BTreeMap<String, String> {
    string_map(deployment, "/spec/template/metadata/labels")
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn join_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::lint::{self, Inventory, LintContext};

    const NS: &str = "shop";

    fn service(name: &str, selector: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": NS},
               "spec": {"selector": selector, "ports": [{"name": "http", "port": 9080}]}})
    }

    fn deployment(name: &str, labels: Value, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": NS},
               "spec": {"replicas": 1, "selector": {"matchLabels": labels.clone()},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    fn app(name: &str, version: &str) -> Value {
        deployment(
            &format!("{name}-{version}"),
            json!({"app": name, "version": version}),
            &format!("repo/{name}:{version}"),
        )
    }

    struct World {
        services: Vec<Value>,
        deployments: Vec<Value>,
        virtual_services: Vec<Value>,
    }

    impl World {
        fn new(services: Vec<Value>, deployments: Vec<Value>) -> Self {
            World {
                services,
                deployments,
                virtual_services: Vec::new(),
            }
        }

        fn objects(&self) -> Objects<'_> {
            Objects {
                namespace: NS,
                services: &self.services,
                deployments: &self.deployments,
                virtual_services: &self.virtual_services,
            }
        }

        fn init(&self, targets: &[&str], options: &Options) -> Result<Scaffold, ScaffoldError> {
            let targets: Vec<Target> = targets.iter().map(|t| Target::parse(t).unwrap()).collect();
            scaffold(&self.objects(), &targets, options)
        }

        fn error(&self, targets: &[&str], options: &Options) -> String {
            self.init(targets, options).unwrap_err().to_string()
        }

        /// Lint the scaffolded release against these objects (pods from the Deployments'
        /// templates, an injected namespace).
        fn lint(&self, scaffold: &Scaffold) -> Vec<lint::Finding> {
            let mut inventory = Inventory::default();
            inventory.add(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": NS, "labels": {"istio-injection": "enabled"}}}));
            for s in &self.services {
                inventory.add(s.clone());
            }
            for d in &self.deployments {
                inventory.add(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{}-0", name_of(d)), "namespace": NS,
                                 "labels": d["spec"]["template"]["metadata"]["labels"]}}));
            }
            let release = &scaffold.release;
            let ctx = LintContext {
                release: Some(release.release_info()),
                canaries_to_create: release
                    .spec
                    .services
                    .iter()
                    .filter(|s| s.canary.image.is_some())
                    .map(|s| s.name.clone())
                    .collect(),
                root_namespace: "istio-system".into(),
                pods_known: true,
                gateways_known: false,
                input_findings: Vec::new(),
            };
            lint::run(&inventory, &ctx)
        }
    }

    fn reviews() -> World {
        World::new(
            vec![service("reviews", json!({"app": "reviews"}))],
            vec![app("reviews", "v1"), app("reviews", "v2")],
        )
    }

    fn versions(release: &Release) -> Vec<(String, String, Option<String>)> {
        release
            .spec
            .services
            .iter()
            .map(|s| {
                (
                    s.stable.version.clone(),
                    s.canary.version.clone(),
                    s.canary.image.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn two_versions_lower_is_stable_and_the_spec_parses_and_lints_clean() {
        let world = reviews();
        let scaffold = world.init(&["reviews"], &Options::default()).unwrap();
        let release = &scaffold.release;
        assert_eq!(release.name(), "reviews-v2");
        assert_eq!(release.namespace(), NS);
        assert_eq!(versions(release), [("v1".into(), "v2".into(), None)]);
        assert_eq!(release.spec.policy.module, "builtin:progressive");
        // The text is what was parsed, comments included.
        assert_eq!(
            super::super::parse_str(&scaffold.text, "x").unwrap(),
            *release
        );
        assert!(
            scaffold
                .text
                .contains("# Stable and canary: of the two deployed versions, the lower is stable"),
            "{}",
            scaffold.text
        );
        assert!(scaffold.text.contains("reviews-v1"), "{}", scaffold.text);
        assert_eq!(world.lint(&scaffold), []);
    }

    #[test]
    fn versions_compare_in_natural_order() {
        assert_eq!(natural_cmp("v2", "v10"), Ordering::Less);
        assert_eq!(natural_cmp("1.9", "1.10"), Ordering::Less);
        assert_eq!(natural_cmp("1.0", "2.0"), Ordering::Less);
        assert_eq!(natural_cmp("v1", "v1"), Ordering::Equal);
        assert_eq!(natural_cmp("v1", "v1-rc1"), Ordering::Less);
        assert_eq!(natural_cmp("01", "1"), Ordering::Greater);
        let world = World::new(
            vec![service("web", json!({"app": "web"}))],
            vec![app("web", "v10"), app("web", "v2")],
        );
        let scaffold = world.init(&["web"], &Options::default()).unwrap();
        assert_eq!(
            versions(&scaffold.release),
            [("v2".into(), "v10".into(), None)]
        );
    }

    #[test]
    fn numeric_versions_are_quoted_so_they_stay_strings() {
        let world = World::new(
            vec![service("voting-app", json!({"app": "voting-app"}))],
            vec![app("voting-app", "1.0"), app("voting-app", "2.0")],
        );
        let scaffold = world.init(&["voting-app"], &Options::default()).unwrap();
        assert!(
            scaffold.text.contains("version: \"1.0\""),
            "{}",
            scaffold.text
        );
        assert_eq!(
            versions(&scaffold.release),
            [("1.0".into(), "2.0".into(), None)]
        );
        assert_eq!(scaffold.release.name(), "voting-app-v2-0");
    }

    #[test]
    fn a_flag_picks_one_of_two_versions_and_the_other_takes_the_other_role() {
        let world = reviews();
        let canary_v1 = Options {
            canary_version: Some("v1".into()),
            ..Options::default()
        };
        let scaffold = world.init(&["reviews"], &canary_v1).unwrap();
        assert_eq!(
            versions(&scaffold.release),
            [("v2".into(), "v1".into(), None)]
        );
        let stable_v2 = Options {
            stable_version: Some("v2".into()),
            ..Options::default()
        };
        let scaffold = world.init(&["reviews"], &stable_v2).unwrap();
        assert_eq!(
            versions(&scaffold.release),
            [("v2".into(), "v1".into(), None)]
        );
        let new_canary = Options {
            canary_version: Some("v3".into()),
            ..Options::default()
        };
        assert_eq!(
            world.error(&["reviews"], &new_canary),
            "service reviews: --canary-version v3 is not deployed and two versions are (v1, v2); \
             pass --stable-version too, to say which of them serves users"
        );
        let both = Options {
            stable_version: Some("v2".into()),
            ..new_canary
        };
        let scaffold = world.init(&["reviews"], &both).unwrap();
        assert_eq!(
            versions(&scaffold.release),
            [("v2".into(), "v3".into(), None)]
        );
        let unknown = Options {
            stable_version: Some("v9".into()),
            ..Options::default()
        };
        assert_eq!(
            world.error(&["reviews"], &unknown),
            "service reviews: --stable-version v9: no deployment of this service has that \
             version (deployed: v1, v2)"
        );
    }

    #[test]
    fn one_version_needs_the_canary_version_and_image_makes_start_clone_it() {
        let world = World::new(
            vec![service("nginx", json!({"app": "nginx"}))],
            vec![deployment(
                "nginx",
                json!({"app": "nginx", "version": "v1"}),
                "nginx:1.14",
            )],
        );
        assert_eq!(
            world.error(&["nginx"], &Options::default()),
            "service nginx: only version v1 is deployed; pass --canary-version VERSION (and \
             --image IMAGE to have `start` create its Deployment)"
        );
        let same = Options {
            canary_version: Some("v1".into()),
            ..Options::default()
        };
        assert!(world
            .error(&["nginx"], &same)
            .contains("v1 is the only deployed version"));

        // Without --image: the canary must be deployed by hand; the comment says how.
        let v2 = Options {
            canary_version: Some("v2".into()),
            ..Options::default()
        };
        let scaffold = world.init(&["nginx"], &v2).unwrap();
        assert_eq!(
            versions(&scaffold.release),
            [("v1".into(), "v2".into(), None)]
        );
        assert!(
            scaffold.text.contains(
                "# image to have `start` clone deployment nginx (image nginx:1.14 today):"
            ),
            "{}",
            scaffold.text
        );
        // Lint agrees: no v2 pods yet.
        let findings = world.lint(&scaffold);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code.as_str(), "KC0003");
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.services[0].canary.version")
        );

        // With --image: start will clone it, and lint expects no canary pods.
        let with_image = Options {
            canary_version: Some("v2".into()),
            image: Some("nginx:1.15".into()),
            ..Options::default()
        };
        let scaffold = world.init(&["deployment/nginx"], &with_image).unwrap();
        assert_eq!(
            versions(&scaffold.release),
            [("v1".into(), "v2".into(), Some("nginx:1.15".into()))]
        );
        assert_eq!(world.lint(&scaffold), []);
    }

    #[test]
    fn image_for_a_deployed_canary_is_refused() {
        let options = Options {
            image: Some("repo/reviews:v2".into()),
            ..Options::default()
        };
        assert_eq!(
            reviews().error(&["reviews"], &options),
            "service reviews: version v2 is already deployed (reviews-v2); drop --image (it asks \
             `start` to create the canary Deployment)"
        );
    }

    #[test]
    fn three_versions_need_both_flags() {
        let world = World::new(
            vec![service("reviews", json!({"app": "reviews"}))],
            vec![
                app("reviews", "v3"),
                app("reviews", "v1"),
                app("reviews", "v2"),
            ],
        );
        assert_eq!(
            world.error(&["reviews"], &Options::default()),
            "service reviews: 3 versions are deployed (v1, v2, v3); pass --stable-version and \
             --canary-version to say which serves users and which is new"
        );
        let options = Options {
            stable_version: Some("v1".into()),
            canary_version: Some("v3".into()),
            ..Options::default()
        };
        let scaffold = world.init(&["reviews"], &options).unwrap();
        assert_eq!(
            versions(&scaffold.release),
            [("v1".into(), "v3".into(), None)]
        );
        assert_eq!(scaffold.release.name(), "reviews-v3");
    }

    #[test]
    fn a_deployment_target_leads_to_the_one_service_selecting_it() {
        let mut world = reviews();
        let scaffold = world
            .init(&["deployment/reviews-v2"], &Options::default())
            .unwrap();
        assert_eq!(scaffold.release.spec.services[0].name, "reviews");

        world
            .services
            .push(service("reviews-all", json!({"app": "reviews"})));
        assert_eq!(
            world.error(&["deploy/reviews-v1"], &Options::default()),
            "the pods of deployment reviews-v1 are selected by several services (reviews, \
             reviews-all); name one: kubectl canary init service/NAME"
        );
        world.services.clear();
        assert_eq!(
            world.error(&["deploy/reviews-v1"], &Options::default()),
            "no service selects the pods of deployment reviews-v1 (labels app=reviews,version=v1); \
             create one, or name the service: kubectl canary init service/NAME"
        );
        assert_eq!(
            world.error(&["deployment/nope"], &Options::default()),
            "deployment nope not found in namespace shop (check the name and -n: kubectl get \
             deployments -n shop)"
        );
    }

    #[test]
    fn missing_objects_and_unusable_labels_are_one_line_errors() {
        let world = reviews();
        assert_eq!(
            world.error(&["ratings"], &Options::default()),
            "service ratings not found in namespace shop (check the name and -n: kubectl get \
             services -n shop)"
        );
        let no_pods = World::new(vec![service("reviews", json!({"app": "reviews"}))], vec![]);
        assert_eq!(
            no_pods.error(&["reviews"], &Options::default()),
            "no deployment in namespace shop has pods labelled app=reviews (the selector of \
             service reviews); check kubectl get deployments -n shop --show-labels"
        );
        let no_version = World::new(
            vec![service("reviews", json!({"app": "reviews"}))],
            vec![deployment("reviews", json!({"app": "reviews"}), "r:1")],
        );
        assert_eq!(
            no_version.error(&["reviews"], &Options::default()),
            "deployments reviews of service reviews have no version label on their pod template \
             (looked for version and app.kubernetes.io/version); label their pods \
             version=<version>"
        );
        let pinned = World::new(
            vec![service(
                "reviews",
                json!({"app": "reviews", "version": "v1"}),
            )],
            vec![app("reviews", "v1")],
        );
        assert!(pinned
            .error(&["reviews"], &Options::default())
            .starts_with("service reviews: its selector includes version=v1"));
        let other_app = World::new(
            vec![service("reviews", json!({"app": "reviews-app"}))],
            vec![app("reviews-app", "v1")],
        );
        assert!(other_app
            .error(&["reviews"], &Options::default())
            .starts_with("service reviews: its selector has app=reviews-app"));
        for error in [
            world.error(&["ratings"], &Options::default()),
            no_pods.error(&["reviews"], &Options::default()),
        ] {
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn other_label_keys_are_written_into_the_spec() {
        let world = World::new(
            vec![service(
                "web",
                json!({"app.kubernetes.io/name": "web", "tier": "front"}),
            )],
            vec![
                deployment(
                    "web-a",
                    json!({"app.kubernetes.io/name": "web", "tier": "front",
                           "app.kubernetes.io/version": "1.1"}),
                    "web:1.1",
                ),
                deployment(
                    "web-b",
                    json!({"app.kubernetes.io/name": "web", "tier": "front",
                           "app.kubernetes.io/version": "1.2"}),
                    "web:1.2",
                ),
            ],
        );
        let scaffold = world.init(&["web"], &Options::default()).unwrap();
        let svc = &scaffold.release.spec.services[0];
        assert_eq!(svc.app_label, "app.kubernetes.io/name");
        assert_eq!(svc.version_label, "app.kubernetes.io/version");
        assert_eq!(
            (svc.stable.version.as_str(), svc.canary.version.as_str()),
            ("1.1", "1.2")
        );
        // The release checks pass; lint still recommends Istio's own app/version labels.
        let findings = world.lint(&scaffold);
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["KC0001", "KC0001"], "{findings:?}");
    }

    #[test]
    fn gateway_bound_virtual_services_give_gateways_and_hosts() {
        let mut world = World::new(
            vec![service("voting-app", json!({"app": "voting-app"}))],
            vec![app("voting-app", "1.0"), app("voting-app", "2.0")],
        );
        world.virtual_services.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "voting-app", "namespace": NS},
            "spec": {"hosts": ["*"], "gateways": ["voting-app-gateway", "mesh"],
                     "http": [{"route": [{"destination": {"host": "voting-app"}}]}]}}));
        world.virtual_services.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "unrelated", "namespace": NS},
            "spec": {"hosts": ["other"], "gateways": ["istio-system/other-gateway"],
                     "http": [{"route": [{"destination": {"host": "other"}}]}]}}));
        let scaffold = world
            .init(&["service/voting-app"], &Options::default())
            .unwrap();
        let svc = &scaffold.release.spec.services[0];
        assert_eq!(svc.gateways, ["shop/voting-app-gateway"]);
        assert_eq!(svc.hosts, ["*"]);
        assert!(
            scaffold
                .text
                .contains("`start` refuses to take it over unless you pass --adopt"),
            "{}",
            scaffold.text
        );

        // A VirtualService kubectl-canary manages is not flagged.
        world.virtual_services[0]["metadata"]["labels"] = json!({MANAGED_BY_LABEL: MANAGED_BY});
        let scaffold = world.init(&["voting-app"], &Options::default()).unwrap();
        assert!(!scaffold.text.contains("--adopt"), "{}", scaffold.text);
        assert_eq!(
            scaffold.release.spec.services[0].gateways,
            ["shop/voting-app-gateway"]
        );
    }

    #[test]
    fn several_services_make_a_chained_release_with_the_first_as_entry() {
        let world = World::new(
            vec![
                service("frontend", json!({"app": "frontend"})),
                service("backend", json!({"app": "backend"})),
            ],
            vec![
                app("frontend", "v1"),
                app("frontend", "v2"),
                app("backend", "v1"),
                app("backend", "v2"),
            ],
        );
        let scaffold = world
            .init(&["frontend", "backend"], &Options::default())
            .unwrap();
        let release = &scaffold.release;
        assert_eq!(release.name(), "frontend-v2");
        assert_eq!(release.spec.services.len(), 2);
        assert!(release.is_entry(0) && !release.is_entry(1));
        assert_eq!(release.spec.policy.config["chain"], json!(true));
        assert_eq!(world.lint(&scaffold), []);

        assert_eq!(
            world.error(&["frontend", "svc/frontend"], &Options::default()),
            "service frontend is named twice"
        );
        let image = Options {
            image: Some("x:1".into()),
            ..Options::default()
        };
        assert!(world
            .error(&["frontend", "backend"], &image)
            .starts_with("--image applies to one service"));
    }

    #[test]
    fn flag_values_are_checked_by_the_spec_rules() {
        let options = Options {
            name: Some("Bad_Name".into()),
            ..Options::default()
        };
        let error = reviews().error(&["reviews"], &options);
        assert!(
            error
                .starts_with("the scaffolded spec is not valid: invalid release spec (1 problem):"),
            "{error}"
        );
        assert!(error.contains("metadata.name"), "{error}");
        // A value that needs quoting survives the round trip as written.
        let options = Options {
            canary_version: Some("v3".into()),
            stable_version: Some("v1".into()),
            image: Some("registry:5000/reviews:v3 # not a comment".into()),
            ..Options::default()
        };
        let world = World::new(
            vec![service("reviews", json!({"app": "reviews"}))],
            vec![app("reviews", "v1")],
        );
        let error = world.error(&["reviews"], &options);
        assert!(error.contains("spec.services[0].canary.image"), "{error}");
        let options = Options {
            image: Some("registry:5000/reviews:v3".into()),
            ..options
        };
        let scaffold = world.init(&["reviews"], &options).unwrap();
        assert_eq!(
            scaffold.release.spec.services[0].canary.image.as_deref(),
            Some("registry:5000/reviews:v3")
        );
    }

    #[test]
    fn targets_parse_like_kubectl_resource_names() {
        assert_eq!(
            Target::parse("reviews").unwrap(),
            Target::Service("reviews".into())
        );
        assert_eq!(
            Target::parse("svc/reviews").unwrap(),
            Target::Service("reviews".into())
        );
        assert_eq!(
            Target::parse("deployment.apps/reviews-v1").unwrap(),
            Target::Deployment("reviews-v1".into())
        );
        for bad in ["pod/x", "service/", "a/b/c", ""] {
            assert_eq!(
                Target::parse(bad).unwrap_err().to_string(),
                format!("invalid target {bad:?}: use NAME, service/NAME or deployment/NAME")
            );
        }
    }
}
