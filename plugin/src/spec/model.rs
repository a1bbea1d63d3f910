//! The Release spec as written by users: plain data, serde in both directions.
//!
//! Every struct refuses unknown fields, so a typo (`vesion:`) is an error that names the field
//! path instead of a silently ignored line. Defaults are documented on the fields they apply to.

use std::collections::BTreeMap;

use policy_sdk::rules;
use policy_sdk::{ReleaseInfo, ServiceInfo, VersionRef};
use serde::{Deserialize, Deserializer, Serialize};

/// The only `apiVersion` this version of the plugin reads.
pub const API_VERSION: &str = "canary.kubectl.dev/v1alpha1";

/// The only `kind` of the spec.
pub const KIND: &str = "Release";

/// Default pod label that carries the version (`version: "1.0"`).
pub const DEFAULT_VERSION_LABEL: &str = "version";

/// Default pod label that carries the service's app name (`app: voting-app`).
pub const DEFAULT_APP_LABEL: &str = "app";

/// A release: one canary rollout over one or several services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// Name and namespace of the release.
    pub metadata: Metadata,
    /// What is released and how.
    pub spec: ReleaseSpec,
}

/// Name and namespace of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Release name (DNS-1123 label); the state ConfigMap is `canary-<name>`.
    pub name: String,
    /// Namespace of the release and of all its services.
    pub namespace: String,
}

/// The body of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseSpec {
    /// The services released together, one or more. Their order is not assumed to be the call
    /// order; it only decides the default entry service (see [`ServiceSpec::entry`]).
    pub services: Vec<ServiceSpec>,
    /// The policy that decides every stage.
    pub policy: PolicySpec,
    /// Where metrics come from; absent means the policy gets no metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
    /// Webhooks: gates the release waits on, and receivers told of its changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookSpec>,
    /// Mutual TLS for the release namespace; absent leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsMode>,
}

/// One service taking part in a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// The Kubernetes Service name, also the VirtualService host.
    pub name: String,
    /// Pod label carrying the version; default `version`.
    #[serde(default = "default_version_label")]
    pub version_label: String,
    /// Pod label carrying the service's app name (its value is [`ServiceSpec::name`]);
    /// default `app`.
    #[serde(default = "default_app_label")]
    pub app_label: String,
    /// The version serving users now.
    pub stable: StableVersion,
    /// The new version.
    pub canary: CanaryVersion,
    /// Ingress gateways (`namespace/name`) whose traffic reaches this service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Hosts of the gateway-facing VirtualService (`"*"`, `app.example.com`); only with
    /// `gateways`. Absent means the service name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Whether the service receives traffic from outside the release (a gateway or callers that
    /// are not released): tester matches go to entry services, chaining to the others.
    ///
    /// Default: `true` for services with `gateways`; when no service has gateways, `true` for the
    /// first service only. See [`Release::is_entry`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<bool>,
}

/// The stable version of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StableVersion {
    /// Value of the version label on the stable pods (a string: write `"1.0"`, not `1.0`).
    #[serde(deserialize_with = "version_string")]
    pub version: String,
}

/// The canary version of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryVersion {
    /// Value of the version label on the canary pods (a string: write `"2.0"`, not `2.0`).
    #[serde(deserialize_with = "version_string")]
    pub version: String,
    /// When set, `start` creates the canary Deployment by cloning the stable one with this image
    /// (seed 001); when absent the canary Deployment must already exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The policy module and its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// `builtin:<name>`, a path to a `.wasm` or `.wat` file, an `https://` URL or an
    /// `oci://registry/repo:tag` reference.
    pub module: String,
    /// Pin: the module's sha256 (64 hex digits), verified before it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Handed to the policy verbatim. The built-in `progressive` policy reads `testers`,
    /// `chain`, `steps` and `pause`; those keys are validated here for every policy.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config: serde_json::Value,
    /// Lower resource limits for the policy; the host's defaults and hard caps apply otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PolicyLimits>,
}

/// Resource limits a spec may set for its policy. They can only lower the host's limits; the
/// policy host enforces the hard caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyLimits {
    /// Linear memory limit, MiB.
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Instruction budget (wasmtime fuel) per decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock limit per decision, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Where the metrics handed to the policy come from, and which metrics.
///
/// The host runs every metric's query for the stable and the canary version of every service
/// before each decision (the policy judges; the host only measures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisSpec {
    /// The Prometheus to ask: `{address: URL}` or `{service: ns/name:port}` (a bare URL is
    /// short for `{address: URL}`).
    #[serde(deserialize_with = "prometheus_spec")]
    pub prometheus: PrometheusSpec,
    /// The window of the templates' `rate()` (`{{interval}}` in a query): `1m` by default.
    #[serde(default = "default_interval")]
    pub interval: String,
    /// The metrics, one or more.
    pub metrics: Vec<MetricSpec>,
}

/// How to reach Prometheus.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusSpec {
    /// Prometheus' base URL, reached directly (`http://prometheus.istio-system:9090`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// An in-cluster Prometheus Service, `namespace/name:port`, reached through the API server's
    /// service proxy with the kubeconfig's credentials (no port-forward needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// A file whose content is sent as a bearer token (only with `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// A PEM file of CA certificates trusted for an `https://` address, in addition to the
    /// system's roots and `SSL_CERT_FILE`/`SSL_CERT_DIR` (only with `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// How long one query may take: `10s` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// One metric of the analysis: a built-in template or a PromQL query of one's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    /// Name the policy sees the metric under (`success-rate`).
    pub name: String,
    /// A built-in query on Istio's standard metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<MetricTemplate>,
    /// A PromQL query, with `{{service}}`, `{{namespace}}`, `{{version}}`, `{{role}}` and
    /// `{{interval}}` replaced for each service and version. It must return one number (a scalar
    /// or a one-series vector): aggregate with `sum`, `max`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// Built-in metric queries on Istio's standard metrics (`istio_requests_total`,
/// `istio_request_duration_milliseconds_bucket`), as reported by the destination's proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricTemplate {
    /// Percentage of requests not answered 5xx (0..100).
    RequestSuccessRate,
    /// 99th percentile of request duration, milliseconds.
    RequestDurationP99,
    /// 90th percentile of request duration, milliseconds.
    RequestDurationP90,
    /// 50th percentile of request duration, milliseconds.
    RequestDurationP50,
    /// Requests per second.
    RequestRate,
}

impl MetricTemplate {
    /// The name written in specs (`request-success-rate`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricTemplate::RequestSuccessRate => "request-success-rate",
            MetricTemplate::RequestDurationP99 => "request-duration-p99",
            MetricTemplate::RequestDurationP90 => "request-duration-p90",
            MetricTemplate::RequestDurationP50 => "request-duration-p50",
            MetricTemplate::RequestRate => "request-rate",
        }
    }
}

/// Webhooks asked or told about the release's life (Flagger's model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookSpec {
    /// Name (DNS-1123 label), the key of `input.gates` and of the history.
    pub name: String,
    /// `http://` or `https://` URL the JSON payload is POSTed to.
    pub url: String,
    /// When it is called: gating (`pre-start`, `pre-step`, `pre-promote`: a failure, a timeout
    /// or a non-2xx answer closes the gate and the release holds) or told (`post-promote`,
    /// `rollback`, `event`: fire-and-forget with bounded retries).
    pub on: Vec<HookEvent>,
    /// How long one call may take: `10s` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Further attempts after a failed call (at most 5): 0 by default for gating hooks, 2 for
    /// the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Passed in the payload verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// When a hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    /// Gating, before the first stage.
    PreStart,
    /// Gating, before every step or tick.
    PreStep,
    /// Gating, before the release completes (a step that completes it, or `promote`).
    PrePromote,
    /// Told after the release completed.
    PostPromote,
    /// Told after the release rolled back or was aborted.
    Rollback,
    /// Told after every recorded decision.
    Event,
}

impl HookEvent {
    /// The name written in specs (`pre-step`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreStart => "pre-start",
            HookEvent::PreStep => "pre-step",
            HookEvent::PrePromote => "pre-promote",
            HookEvent::PostPromote => "post-promote",
            HookEvent::Rollback => "rollback",
            HookEvent::Event => "event",
        }
    }

    /// The gate the policy sees for a gating hook; `None` for the told ones.
    pub fn gate(self) -> Option<policy_sdk::GateKind> {
        match self {
            HookEvent::PreStart => Some(policy_sdk::GateKind::PreStart),
            HookEvent::PreStep => Some(policy_sdk::GateKind::PreStep),
            HookEvent::PrePromote => Some(policy_sdk::GateKind::PrePromote),
            _ => None,
        }
    }
}

fn default_interval() -> String {
    "1m".to_string()
}

/// Reads `prometheus:` as a map, or a bare URL string as `{address: URL}` (the shape of earlier
/// specs), keeping the map's field errors precise.
fn prometheus_spec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PrometheusSpec, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = PrometheusSpec;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("{address: URL} or {service: namespace/name:port}")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PrometheusSpec, E> {
            Ok(PrometheusSpec {
                address: Some(v.to_string()),
                ..PrometheusSpec::default()
            })
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            map: A,
        ) -> Result<PrometheusSpec, A::Error> {
            PrometheusSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_any(Visitor)
}

/// Mutual TLS mode for the release namespace (a `PeerAuthentication` and the DestinationRules'
/// `tls.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsMode {
    /// Only mutual TLS is accepted (`STRICT`, `ISTIO_MUTUAL`).
    Strict,
    /// Mutual TLS and plain text are accepted (`PERMISSIVE`).
    Permissive,
    /// Plain text only (`DISABLE`).
    Disable,
}

fn default_version_label() -> String {
    DEFAULT_VERSION_LABEL.to_string()
}

fn default_app_label() -> String {
    DEFAULT_APP_LABEL.to_string()
}

/// Reads a version as a string and refuses YAML numbers with a hint: `1.0` unquoted is the number
/// 1, and its text cannot be recovered.
fn version_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a version string such as \"1.0\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Err(E::custom(format!(
                "version {v} is a YAML number; quote it: \"{v}\""
            )))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Err(E::custom(format!(
                "version {v} is a YAML number; quote it: \"{v}\""
            )))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Err(E::custom(format!(
                "version {v:?} is a YAML number; quote it as written, e.g. \"{v:?}\""
            )))
        }
    }
    deserializer.deserialize_any(Visitor)
}

impl Release {
    /// The release name (`metadata.name`).
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The release namespace (`metadata.namespace`).
    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    /// Whether `spec.services[index]` is an entry service: its `entry` when set; otherwise
    /// `true` when it has gateways, or — when no service has gateways — when it is the first
    /// service. `false` for an index out of range.
    pub fn is_entry(&self, index: usize) -> bool {
        let services = &self.spec.services;
        let Some(service) = services.get(index) else {
            return false;
        };
        if let Some(entry) = service.entry {
            return entry;
        }
        if services.iter().any(|s| !s.gateways.is_empty()) {
            !service.gateways.is_empty()
        } else {
            index == 0
        }
    }

    /// True when the release's decisions rest on live signals (an analysis or hooks): every
    /// check is then recorded, holds included, with the numbers and gates it was taken on.
    pub fn measures_signals(&self) -> bool {
        self.spec.analysis.is_some() || !self.spec.hooks.is_empty()
    }

    /// The release as the policy sees it: every service with its subset names (from
    /// [`rules::subset_name`]), pod labels `{appLabel: name, versionLabel: version}`,
    /// host (the service name), entry flag and gateways.
    ///
    /// Meant for validated releases (everything [`super::parse_str`] returns); a version that
    /// cannot map to a subset name gives an empty subset name here.
    pub fn release_info(&self) -> ReleaseInfo {
        let services = self
            .spec
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| ServiceInfo {
                name: service.name.clone(),
                host: service.name.clone(),
                stable: version_ref(service, &service.stable.version),
                canary: version_ref(service, &service.canary.version),
                entry: self.is_entry(index),
                gateways: service.gateways.clone(),
            })
            .collect();
        ReleaseInfo {
            name: self.metadata.name.clone(),
            namespace: self.metadata.namespace.clone(),
            services,
        }
    }
}

fn version_ref(service: &ServiceSpec, version: &str) -> VersionRef {
    let labels = BTreeMap::from([
        (service.app_label.clone(), service.name.clone()),
        (service.version_label.clone(), version.to_string()),
    ]);
    VersionRef {
        subset: rules::subset_name(version).unwrap_or_default(),
        labels,
    }
}
