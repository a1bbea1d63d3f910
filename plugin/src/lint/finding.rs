//! One lint result: a stable code, a severity, the object and field, and a fix.

use std::fmt;

use serde::Serialize;

/// How bad a finding is. `lint` exits 1 on errors (or on warnings with `--fail-on warning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Likely to hurt a release.
    Warning,
    /// Traffic will fail (404/503) or the release cannot run.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The stable codes, each with the severity it always has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Code {
    /// A VirtualService routes to a host, subset or gateway that does not exist.
    #[serde(rename = "IST0101")]
    ReferenceNotFound,
    /// The namespace is not labelled for sidecar injection.
    #[serde(rename = "IST0102")]
    NamespaceNotInjected,
    /// An object breaks Istio's rules (duplicate or non-DNS-1123 subset names, ...).
    #[serde(rename = "IST0106")]
    SchemaValidation,
    /// Another VirtualService, not managed by kubectl-canary, serves the same host.
    #[serde(rename = "IST0109")]
    ConflictingVirtualService,
    /// A DestinationRule's TLS mode contradicts the PeerAuthentication of its server.
    #[serde(rename = "IST0113")]
    MtlsConflict,
    /// A Service port is not named by protocol and has no appProtocol.
    #[serde(rename = "IST0118")]
    PortNameConvention,
    /// Pods of a service lack the app or version label.
    #[serde(rename = "KC0001")]
    PodLabelsMissing,
    /// A DestinationRule subset selects no pod.
    #[serde(rename = "KC0002")]
    SubsetWithoutPods,
    /// A release service has no Service object or no pods of a version.
    #[serde(rename = "KC0003")]
    ReleaseTargetMissing,
    /// Mesh callers of a service get Kubernetes' default routing: no VirtualService bound to
    /// `mesh` routes its host, so subsets and weights do not apply to them.
    #[serde(rename = "KC0004")]
    MeshDefaultRouting,
    /// A document's `kind`/`apiVersion` names nothing this tool or Istio serves.
    #[serde(rename = "KC0005")]
    UnknownKind,
}

impl Code {
    /// The code as printed (`IST0101`, `KC0002`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ReferenceNotFound => "IST0101",
            Code::NamespaceNotInjected => "IST0102",
            Code::SchemaValidation => "IST0106",
            Code::ConflictingVirtualService => "IST0109",
            Code::MtlsConflict => "IST0113",
            Code::PortNameConvention => "IST0118",
            Code::PodLabelsMissing => "KC0001",
            Code::SubsetWithoutPods => "KC0002",
            Code::ReleaseTargetMissing => "KC0003",
            Code::MeshDefaultRouting => "KC0004",
            Code::UnknownKind => "KC0005",
        }
    }

    /// The severity findings with this code have.
    pub fn severity(self) -> Severity {
        match self {
            Code::ReferenceNotFound
            | Code::SchemaValidation
            | Code::MtlsConflict
            | Code::ReleaseTargetMissing
            | Code::UnknownKind => Severity::Error,
            Code::ConflictingVirtualService
            | Code::PortNameConvention
            | Code::PodLabelsMissing
            | Code::SubsetWithoutPods
            | Code::MeshDefaultRouting
            | Code::NamespaceNotInjected => Severity::Warning,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code.
    pub code: Code,
    /// Severity (derived from the code).
    pub severity: Severity,
    /// The object, as `Kind namespace/name`.
    pub object: String,
    /// The field path inside the object, when one field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// A one-line fix.
    pub fix: String,
}

impl Finding {
    /// A finding for `code` on `object`.
    pub fn new(code: Code, object: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: code.severity(),
            object: object.into(),
            field: None,
            message: message.into(),
            fix: String::new(),
        }
    }

    /// Name the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Say how to fix it.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}
