//! Validation of a parsed release: every problem is collected, each with its field path.

use std::collections::BTreeMap;

use policy_sdk::rules::{self, quote, RuleError};
use serde_json::Value;

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
    config(p, &policy.config);
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

/// The keys of `policy.config` the built-in policy defines.
fn config(p: &mut Problems, config: &Value) {
    let at = "spec.policy.config";
    let object = match config {
        Value::Null => return,
        Value::Object(object) => object,
        other => {
            p.push(
                at,
                other.to_string(),
                format!("must be a mapping, got {}", json_kind(other)),
            );
            return;
        }
    };
    if let Some(testers) = object.get("testers") {
        testers_config(p, &format!("{at}.testers"), testers);
    }
    if let Some(chain) = object.get("chain") {
        if !chain.is_boolean() {
            p.push(
                format!("{at}.chain"),
                chain.to_string(),
                format!("must be true or false, got {}", json_kind(chain)),
            );
        }
    }
    if let Some(steps) = object.get("steps") {
        steps_config(p, &format!("{at}.steps"), steps);
    }
    if let Some(pause) = object.get("pause") {
        let path = format!("{at}.pause");
        match pause.as_str() {
            Some(text) => {
                if let Err(e) = humantime::parse_duration(text) {
                    p.push(
                        path,
                        text,
                        format!(
                            "invalid duration {}: {e} (write e.g. 30s, 5m, 1h30m)",
                            quote(text)
                        ),
                    );
                }
            }
            None => p.push(
                path,
                pause.to_string(),
                format!(
                    "must be a duration string such as \"5m\", got {}",
                    json_kind(pause)
                ),
            ),
        }
    }
}

fn testers_config(p: &mut Problems, at: &str, testers: &Value) {
    let Some(object) = testers.as_object() else {
        p.push(
            at,
            testers.to_string(),
            format!(
                "must be a mapping with cookie or header, got {}",
                json_kind(testers)
            ),
        );
        return;
    };
    for key in object.keys() {
        if key != "cookie" && key != "header" {
            p.push(
                format!("{at}.{key}"),
                key,
                format!("unknown field {}, expected cookie or header", quote(key)),
            );
        }
    }
    match (object.get("cookie"), object.get("header")) {
        (Some(_), Some(_)) => p.push(at, "", "set either cookie or header, not both"),
        (None, None) => p.push(at, "", "set cookie or header"),
        (Some(cookie), None) => {
            let path = format!("{at}.cookie");
            match cookie.as_str() {
                Some(text) if text.is_empty() => p.push(path, text, "must not be empty"),
                Some(text)
                    if !text.contains('=')
                        || text.contains(|c: char| c == ';' || c.is_whitespace()) =>
                {
                    p.push(
                        path,
                        text,
                        format!(
                            "cookie {} must be name=value, without ';' or spaces (e.g. user=tester)",
                            quote(text)
                        ),
                    )
                }
                Some(text) => p.rule(path, rules::check_regex(&cookie_regex(text))),
                None => p.push(
                    path,
                    cookie.to_string(),
                    format!(
                        "must be a string such as \"user=tester\", got {}",
                        json_kind(cookie)
                    ),
                ),
            }
        }
        (None, Some(header)) => header_config(p, &format!("{at}.header"), header),
    }
}

fn header_config(p: &mut Problems, at: &str, header: &Value) {
    let Some(object) = header.as_object() else {
        p.push(
            at,
            header.to_string(),
            format!(
                "must be a mapping {{name, exact|prefix|regex}}, got {}",
                json_kind(header)
            ),
        );
        return;
    };
    const KEYS: [&str; 4] = ["name", "exact", "prefix", "regex"];
    for key in object.keys() {
        if !KEYS.contains(&key.as_str()) {
            p.push(
                format!("{at}.{key}"),
                key,
                format!(
                    "unknown field {}, expected name, exact, prefix or regex",
                    quote(key)
                ),
            );
        }
    }
    match object.get("name") {
        None => p.push(
            format!("{at}.name"),
            "",
            "missing: the header name, e.g. canary",
        ),
        Some(Value::String(name)) => p.rule(format!("{at}.name"), rules::check_header_name(name)),
        Some(other) => p.push(
            format!("{at}.name"),
            other.to_string(),
            format!("must be a string, got {}", json_kind(other)),
        ),
    }
    let matchers: Vec<&str> = ["exact", "prefix", "regex"]
        .into_iter()
        .filter(|k| object.contains_key(*k))
        .collect();
    if matchers.len() != 1 {
        p.push(
            at,
            matchers.join(","),
            "set exactly one of exact, prefix or regex",
        );
    }
    for key in matchers {
        let path = format!("{at}.{key}");
        match &object[key] {
            Value::String(text) if key == "regex" => p.rule(path, rules::check_regex(text)),
            Value::String(text) if text.is_empty() => p.push(path, text, "must not be empty"),
            Value::String(_) => {}
            other => p.push(
                path,
                other.to_string(),
                format!("must be a string, got {}", json_kind(other)),
            ),
        }
    }
}

fn steps_config(p: &mut Problems, at: &str, steps: &Value) {
    let Some(list) = steps.as_array() else {
        p.push(
            at,
            steps.to_string(),
            format!(
                "must be a list of canary weights such as [10, 50, 100], got {}",
                json_kind(steps)
            ),
        );
        return;
    };
    if list.is_empty() {
        p.push(at, "[]", "list at least one weight, the last one 100");
        return;
    }
    let mut previous: Option<i64> = None;
    let mut all_valid = true;
    for (k, step) in list.iter().enumerate() {
        let path = format!("{at}[{k}]");
        let Some(weight) = step.as_i64() else {
            all_valid = false;
            p.push(
                path,
                step.to_string(),
                format!("must be a whole number 0..=100, got {}", step),
            );
            continue;
        };
        if let Err(e) = rules::check_weight(weight) {
            all_valid = false;
            p.push(path, e.value.clone(), e.to_string());
            continue;
        }
        if let Some(prev) = previous {
            if weight <= prev {
                all_valid = false;
                p.push(
                    path,
                    weight.to_string(),
                    format!("weight {weight} must be greater than the previous step ({prev})"),
                );
            }
        }
        previous = Some(weight);
    }
    if all_valid && previous != Some(100) {
        let last = list.len() - 1;
        p.push(
            format!("{at}[{last}]"),
            list[last].to_string(),
            format!(
                "the last step must be 100 (all traffic on the canary), got {}",
                list[last]
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

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
