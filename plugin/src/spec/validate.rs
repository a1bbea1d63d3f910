//! Validation of a parsed release: every problem is collected, each with its field path.
//!
//! These are the spec's own rules (names, versions, gateways, hosts, limits, analysis). The
//! policy's `config` is not judged here: its shape is the module's, checked by the module's
//! schema and `canary_validate_config` when the policy is loaded (see `crate::policy`).

use std::collections::BTreeMap;

use policy_sdk::rules::{self, quote, RuleError};

use super::error::FieldError;
use super::model::{AnalysisSpec, PolicySpec, Release, ServiceSpec, API_VERSION, KIND};

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
    let url = &analysis.prometheus;
    let has_host = ["http://", "https://"]
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
    if !has_host || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.push(
            format!("{at}.prometheus"),
            url,
            format!(
                "invalid Prometheus URL {}: must be http:// or https:// with a host",
                quote(url)
            ),
        );
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
        if metric.query.trim().is_empty() {
            p.push(format!("{m}.query"), &metric.query, "must not be empty");
        }
        for (name, value) in [
            ("thresholdMin", metric.threshold_min),
            ("thresholdMax", metric.threshold_max),
        ] {
            if let Some(v) = value {
                if !v.is_finite() {
                    p.push(
                        format!("{m}.{name}"),
                        v.to_string(),
                        "must be a finite number",
                    );
                }
            }
        }
        match (metric.threshold_min, metric.threshold_max) {
            (None, None) => p.push(
                m.clone(),
                &metric.name,
                "set thresholdMin, thresholdMax or both",
            ),
            (Some(min), Some(max)) if min > max => p.push(
                format!("{m}.thresholdMax"),
                max.to_string(),
                format!("thresholdMax {max} is below thresholdMin {min}"),
            ),
            _ => {}
        }
    }
}
