//! Validation of a parsed release: every problem is collected, each with its field path.
//!
//! These are the spec's own rules (names, versions, gateways, hosts, limits, analysis). The
//! policy's `config` is not judged here: its shape is the module's, checked by the module's
//! schema and `canary_validate_config` when the policy is loaded (see `crate::policy`).

use std::collections::BTreeMap;

use policy_sdk::rules::{self, quote, RuleError};

use super::error::FieldError;
use super::model::{AnalysisSpec, HookSpec, PolicySpec, Release, ServiceSpec, API_VERSION, KIND};

pub use policy_sdk::stages::cookie_regex;

/// Collects problems.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn push(
        &mut self,
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError::new(path, value, message));
    }

    /// Records a failed rule at `path`; the rule's message quotes the value.
    fn rule(&mut self, path: impl Into<String>, result: Result<(), RuleError>) {
        if let Err(e) = result {
            self.push(path, e.value.clone(), e.to_string());
        }
    }
}

/// Checks a release; returns every problem found, in spec order.
pub fn validate(release: &Release) -> Vec<FieldError> {
    let mut p = Problems::default();
    if release.api_version != API_VERSION {
        p.push(
            "apiVersion",
            &release.api_version,
            format!(
                "unsupported apiVersion {}; this plugin reads {API_VERSION}",
                quote(&release.api_version)
            ),
        );
    }
    if release.kind != KIND {
        p.push(
            "kind",
            &release.kind,
            format!("kind {} is not {KIND}", quote(&release.kind)),
        );
    }
    p.rule(
        "metadata.name",
        rules::check_dns1123_label(&release.metadata.name),
    );
    p.rule(
        "metadata.namespace",
        rules::check_dns1123_label(&release.metadata.namespace),
    );
    services(&mut p, release);
    policy(&mut p, &release.spec.policy);
    if let Some(analysis) = &release.spec.analysis {
        analysis_spec(&mut p, analysis);
    }
    hooks(&mut p, &release.spec.hooks);
    p.0
}

fn services(p: &mut Problems, release: &Release) {
    let services = &release.spec.services;
    if services.is_empty() {
        p.push("spec.services", "", "list at least one service");
        return;
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, service) in services.iter().enumerate() {
        let at = format!("spec.services[{i}]");
        match seen.get(service.name.as_str()) {
            Some(first) => p.push(
                format!("{at}.name"),
                &service.name,
                format!(
                    "duplicate service {} (already at spec.services[{first}])",
                    quote(&service.name)
                ),
            ),
            None => {
                seen.insert(&service.name, i);
                p.rule(
                    format!("{at}.name"),
                    rules::check_dns1123_label(&service.name),
                );
            }
        }
        service_spec(p, &at, service);
    }
    if !(0..services.len()).any(|i| release.is_entry(i)) {
        p.push(
            "spec.services",
            "",
            "no entry service: set `entry: true` on the service that receives traffic from \
             outside the release",
        );
    }
}

fn service_spec(p: &mut Problems, at: &str, service: &ServiceSpec) {
    label_key(p, &format!("{at}.versionLabel"), &service.version_label);
    label_key(p, &format!("{at}.appLabel"), &service.app_label);
    if service.version_label == service.app_label {
        p.push(
            format!("{at}.versionLabel"),
            &service.version_label,
            format!(
                "{} is also the appLabel; the version needs its own label",
                quote(&service.version_label)
            ),
        );
    }
    let stable = &service.stable.version;
    let canary = &service.canary.version;
    let stable_subset = version(p, &format!("{at}.stable.version"), stable);
    let canary_subset = version(p, &format!("{at}.canary.version"), canary);
    if stable == canary {
        p.push(
            format!("{at}.canary.version"),
            canary,
            format!(
                "{} is also the stable version; the canary must be another version",
                quote(canary)
            ),
        );
    } else if let (Some(s), Some(c)) = (stable_subset, canary_subset) {
        if s == c {
            p.push(
                format!("{at}.canary.version"),
                canary,
                format!(
                    "{} and stable version {} both map to subset name {}; choose versions that \
                     differ in more than case, '.' and '_'",
                    quote(canary),
                    quote(stable),
                    quote(&c)
                ),
            );
        }
    }
    if let Some(image) = &service.canary.image {
        if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.push(
                format!("{at}.canary.image"),
                image,
                format!(
                    "invalid image {}: must be a non-empty image reference without spaces",
                    quote(image)
                ),
            );
        }
    }
    let mut gateways_seen = Vec::new();
    for (j, gateway) in service.gateways.iter().enumerate() {
        let path = format!("{at}.gateways[{j}]");
        if gateways_seen.contains(&gateway) {
            p.push(
                path,
                gateway,
                format!("duplicate gateway {}", quote(gateway)),
            );
            continue;
        }
        gateways_seen.push(gateway);
        if gateway == "mesh" {
            p.push(
                path,
                gateway,
                "\"mesh\" is not an ingress gateway; mesh traffic is always routed, list ingress \
                 gateways only",
            );
        } else if let Err(e) = rules::check_gateway_ref(gateway) {
            p.push(path, gateway, e.to_string());
        } else if !gateway.contains('/') {
            p.push(
                path,
                gateway,
                format!(
                    "gateway {} needs its namespace: write namespace/name (e.g. istio-system/{})",
                    quote(gateway),
                    gateway
                ),
            );
        }
    }
    if !service.hosts.is_empty() && service.gateways.is_empty() {
        p.push(
            format!("{at}.hosts"),
            service.hosts.join(","),
            "hosts are only used with gateways; add gateways or remove hosts",
        );
    }
    for (j, host) in service.hosts.iter().enumerate() {
        let name = host.strip_prefix("*.").unwrap_or(host);
        if host != "*" && rules::check_dns1123_subdomain(name).is_err() {
            p.push(
                format!("{at}.hosts[{j}]"),
                host,
                format!(
                    "invalid host {}: must be \"*\", a DNS name or *.<DNS name>, lower case",
                    quote(host)
                ),
            );
        }
    }
}

/// Checks a version; returns its subset name when it has one.
fn version(p: &mut Problems, path: &str, version: &str) -> Option<String> {
    match rules::subset_name(version) {
        Ok(name) => Some(name),
        Err(e) => {
            p.push(path, version, e.to_string());
            None
        }
    }
}

/// A Kubernetes label key: `[prefix/]name`, name 1..=63 of `[A-Za-z0-9._-]` starting and ending
/// alphanumeric, prefix a DNS-1123 subdomain.
fn label_key(p: &mut Problems, path: &str, key: &str) {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|prefix| rules::check_dns1123_subdomain(prefix).is_ok());
    if !name_ok || !prefix_ok {
        p.push(
            path,
            key,
            format!(
                "invalid label key {}: must be [prefix/]name, name up to 63 letters, digits, '-', \
                 '_' or '.' starting and ending with a letter or digit",
                quote(key)
            ),
        );
    }
}

fn policy(p: &mut Problems, policy: &PolicySpec) {
    module(p, &policy.module);
    if let Some(sha) = &policy.sha256 {
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            p.push(
                "spec.policy.sha256",
                sha,
                format!(
                    "invalid sha256 pin {}: must be 64 hex digits (the output of `sha256sum` or \
                     `kubectl canary policy inspect`)",
                    quote(sha)
                ),
            );
        }
    }
    if let Some(limits) = &policy.limits {
        let fields = [
            ("memoryMiB", limits.memory_mib),
            ("fuel", limits.fuel),
            ("timeoutMs", limits.timeout_ms),
        ];
        for (name, value) in fields {
            if value == Some(0) {
                p.push(
                    format!("spec.policy.limits.{name}"),
                    "0",
                    "must be at least 1 (omit it to use the default)",
                );
            }
        }
    }
    // `policy.config` belongs to the module: its schema and its `canary_validate_config`
    // judge it when the module is loaded (`crate::policy`), not rules of one built-in here.
}

fn module(p: &mut Problems, module: &str) {
    let path = "spec.policy.module";
    if let Some(name) = module.strip_prefix("builtin:") {
        if let Err(e) = rules::check_dns1123_label(name) {
            p.push(
                path,
                module,
                format!("invalid built-in policy name {}: {}", quote(name), e.reason),
            );
        }
        return;
    }
    let remote = ["https://", "oci://"].iter().any(|scheme| {
        module
            .strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    });
    let file = module.ends_with(".wasm") || module.ends_with(".wat");
    if !(remote || file) || module.chars().any(char::is_control) {
        p.push(
            path,
            module,
            format!(
                "invalid policy module {}: must be builtin:<name>, a path to a .wasm or .wat \
                 file, an https:// URL or an oci:// reference",
                quote(module)
            ),
        );
    }
}

fn analysis_spec(p: &mut Problems, analysis: &AnalysisSpec) {
    let at = "spec.analysis";
    let prom = &analysis.prometheus;
    match (&prom.address, &prom.service) {
        (Some(_), Some(_)) => p.push(
            format!("{at}.prometheus"),
            "",
            "set address or service, not both",
        ),
        (None, None) => p.push(
            format!("{at}.prometheus"),
            "",
            "set address (a URL) or service (namespace/name:port)",
        ),
        (Some(url), None) => {
            if let Err(message) = check_url(url) {
                p.push(
                    format!("{at}.prometheus.address"),
                    url,
                    format!("invalid Prometheus URL {}: {message}", quote(url)),
                );
            }
        }
        (None, Some(service)) => {
            if let Err(message) = check_service_ref(service) {
                p.push(format!("{at}.prometheus.service"), service, message);
            }
            for (field, value) in [
                ("bearerTokenFile", &prom.bearer_token_file),
                ("caFile", &prom.ca_file),
            ] {
                if value.is_some() {
                    p.push(
                        format!("{at}.prometheus.{field}"),
                        value.as_deref().unwrap_or_default(),
                        "only with address: through the service proxy, the kubeconfig's \
                         credentials and the API server's CA are used",
                    );
                }
            }
        }
    }
    if let Some(timeout) = &prom.timeout {
        check_timeout(p, &format!("{at}.prometheus.timeout"), timeout);
    }
    match policy_sdk::time::duration_seconds(&analysis.interval) {
        Err(e) => p.push(format!("{at}.interval"), &analysis.interval, e.to_string()),
        Ok(0) => p.push(
            format!("{at}.interval"),
            &analysis.interval,
            "must be at least 1s",
        ),
        Ok(s) if s > 86_400 => p.push(
            format!("{at}.interval"),
            &analysis.interval,
            format!("{} is longer than 24h", quote(&analysis.interval)),
        ),
        Ok(_) => {}
    }
    if analysis.metrics.is_empty() {
        p.push(format!("{at}.metrics"), "", "list at least one metric");
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, metric) in analysis.metrics.iter().enumerate() {
        let m = format!("{at}.metrics[{i}]");
        if let Some(first) = seen.get(metric.name.as_str()) {
            p.push(
                format!("{m}.name"),
                &metric.name,
                format!(
                    "duplicate metric {} (already at {at}.metrics[{first}])",
                    quote(&metric.name)
                ),
            );
        } else {
            seen.insert(&metric.name, i);
            if let Err(e) = rules::check_dns1123_label(&metric.name) {
                p.push(
                    format!("{m}.name"),
                    &metric.name,
                    format!("invalid metric name {}: {}", quote(&metric.name), e.reason),
                );
            }
        }
        match (&metric.template, &metric.query) {
            (Some(_), Some(_)) => {
                p.push(m.clone(), &metric.name, "set template or query, not both")
            }
            (None, None) => p.push(
                m.clone(),
                &metric.name,
                "set template (request-success-rate, request-duration-p99, ...) or query (PromQL)",
            ),
            (None, Some(query)) if query.trim().is_empty() => {
                p.push(format!("{m}.query"), query, "must not be empty")
            }
            (None, Some(query)) => {
                let vars = super::analysis::QueryVars {
                    service: "s",
                    namespace: "n",
                    version: "v",
                    role: "canary",
                    interval: "60s",
                };
                if let Err(e) = super::analysis::expand(query, &vars) {
                    p.push(format!("{m}.query"), query, e.to_string());
                }
            }
            (Some(_), None) => {}
        }
    }
}

/// `http://` or `https://` with a host, and nothing a URL cannot hold.
fn check_url(url: &str) -> Result<(), String> {
    let has_host = ["http://", "https://"].iter().any(|s| {
        url.strip_prefix(s)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    });
    if !has_host || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be http:// or https:// with a host".to_string());
    }
    Ok(())
}

/// `namespace/name:port`: both DNS-1123 labels, the port a number 1..=65535 or a port name.
fn check_service_ref(service: &str) -> Result<(), String> {
    let shape = || {
        format!(
            "invalid Prometheus service {}: expected namespace/name:port, e.g. istio-system/prometheus:9090",
            quote(service)
        )
    };
    let (namespace, rest) = service.split_once('/').ok_or_else(shape)?;
    let (name, port) = rest.split_once(':').ok_or_else(shape)?;
    for part in [namespace, name] {
        rules::check_dns1123_label(part).map_err(|e| format!("{}: {}", shape(), e.reason))?;
    }
    let numeric = port.parse::<u16>().is_ok_and(|p| p > 0);
    let named = !port.is_empty()
        && port.len() <= 15
        && port
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !numeric && !named {
        return Err(format!("{}: bad port {}", shape(), quote(port)));
    }
    Ok(())
}

fn check_timeout(p: &mut Problems, at: &str, text: &str) {
    use super::analysis::MAX_TIMEOUT;
    match policy_sdk::time::duration_millis(text) {
        Err(e) => p.push(at, text, e.to_string()),
        Ok(0) => p.push(at, text, "must be more than 0"),
        Ok(ms) if u128::from(ms) > MAX_TIMEOUT.as_millis() => p.push(
            at,
            text,
            format!("{} is longer than the most allowed, 5m", quote(text)),
        ),
        Ok(_) => {}
    }
}

/// The most hooks a release may have, and the most retries of one.
const MAX_HOOKS: usize = 32;
const MAX_RETRIES: u32 = 5;

fn hooks(p: &mut Problems, hooks: &[HookSpec]) {
    if hooks.len() > MAX_HOOKS {
        p.push(
            "spec.hooks",
            hooks.len().to_string(),
            format!("{} hooks; at most {MAX_HOOKS}", hooks.len()),
        );
        return;
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, hook) in hooks.iter().enumerate() {
        let h = format!("spec.hooks[{i}]");
        if let Some(first) = seen.get(hook.name.as_str()) {
            p.push(
                format!("{h}.name"),
                &hook.name,
                format!(
                    "duplicate hook {} (already at spec.hooks[{first}])",
                    quote(&hook.name)
                ),
            );
        } else {
            seen.insert(&hook.name, i);
            if let Err(e) = rules::check_dns1123_label(&hook.name) {
                p.push(
                    format!("{h}.name"),
                    &hook.name,
                    format!("invalid hook name {}: {}", quote(&hook.name), e.reason),
                );
            }
        }
        if let Err(message) = check_url(&hook.url) {
            p.push(
                format!("{h}.url"),
                &hook.url,
                format!("invalid hook URL {}: {message}", quote(&hook.url)),
            );
        }
        if hook.on.is_empty() {
            p.push(
                format!("{h}.on"),
                "",
                "list when it is called: pre-start, pre-step, pre-promote, post-promote, rollback or event",
            );
        }
        if let Some(timeout) = &hook.timeout {
            check_timeout(p, &format!("{h}.timeout"), timeout);
        }
        if let Some(retries) = hook.retries {
            if retries > MAX_RETRIES {
                p.push(
                    format!("{h}.retries"),
                    retries.to_string(),
                    format!("{retries} retries; at most {MAX_RETRIES}"),
                );
            }
        }
    }
}
