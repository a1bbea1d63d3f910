//! Release specs: the model, parsing with field paths, and validation that reports every problem.
//!
//! ```yaml
//! apiVersion: canary.kubectl.dev/v1alpha1
//! kind: Release
//! metadata: {name: voting-v2, namespace: voting}
//! spec:
//!   services:
//!     - name: voting-app
//!       stable: {version: "1.0"}
//!       canary: {version: "2.0"}
//!   policy:
//!     module: builtin:progressive
//!     config: {steps: [10, 50, 100], pause: 5m}
//! ```
//!
//! [`parse_str`] and [`load_file`] return only releases that passed [`Release::validate`]:
//! names are DNS-1123, versions map to subset names, gateway references, tester regexes and
//! header names are what istiod accepts ([`policy_sdk::rules`]), steps are weights that increase to
//! 100. Problems come back all at once, each with its field path
//! (`spec.services[1].canary.version`) and the value as written.

pub mod analysis;
mod error;
mod model;
pub mod scaffold;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::bounds;

pub use error::{FieldError, SpecError};
pub use model::{
    AnalysisSpec, CanaryVersion, HookEvent, HookSpec, Metadata, MetricSpec, MetricTemplate,
    MtlsMode, PolicyLimits, PolicySpec, PrometheusSpec, Release, ReleaseSpec, ServiceSpec,
    StableVersion, API_VERSION, DEFAULT_APP_LABEL, DEFAULT_VERSION_LABEL, KIND,
};
pub use validate::cookie_regex;

/// The most services one release may name. Its record (spec, stage, history) lives in one
/// ConfigMap, which Kubernetes caps at 1 MiB; a chained 1,000-service release is measured to fit
/// with room for its history (`cargo bench -p canary-e2e --bench scale`), and its rendered
/// VirtualServices name every caller, so the objects grow with the square of this number.
pub const MAX_SERVICES: usize = 1_000;

/// Reads, parses and validates the release spec in `path`; `-` reads stdin. A file over
/// [`bounds::SPEC`] or nested deeper than [`bounds::MAX_NESTING`] is refused before it is parsed.
pub fn load_file(path: &Path) -> Result<Release, SpecError> {
    let origin = if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let text = bounds::read(path, &origin, bounds::SPEC).map_err(|e| match e {
        bounds::InputError::Io { path, source } => SpecError::Io { path, source },
        other => SpecError::Bounds(other),
    })?;
    parse_str(&text, &origin)
}

/// Parses and validates a release spec. `origin` names where the text came from in messages (a
/// file name, `<stdin>`).
pub fn parse_str(yaml: &str, origin: &str) -> Result<Release, SpecError> {
    bounds::check(yaml, origin, bounds::SPEC).map_err(SpecError::Bounds)?;
    let blank = yaml.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    });
    if blank {
        return Err(SpecError::Yaml {
            origin: origin.to_string(),
            path: None,
            line: None,
            column: None,
            message: "the document is empty; a Release needs apiVersion, kind, metadata and spec"
                .to_string(),
        });
    }
    let deserializer = serde_yaml::Deserializer::from_str(yaml);
    let release: Release =
        serde_path_to_error::deserialize(deserializer).map_err(|e| yaml_error(origin, e))?;
    release.validate()?;
    Ok(release)
}

impl Release {
    /// Checks every rule of the spec; [`SpecError::Invalid`] lists all problems found.
    pub fn validate(&self) -> Result<(), SpecError> {
        // Checked first and alone: every later step (validation, rendering, applying) grows with
        // the number of services, and the one problem worth reporting is this one.
        let count = self.spec.services.len();
        if count > MAX_SERVICES {
            return Err(SpecError::Invalid(vec![FieldError::new(
                "spec.services",
                "",
                format!(
                    "{} services is over the limit of {} services in one release",
                    bounds::count_text(count),
                    bounds::count_text(MAX_SERVICES)
                ),
            )]));
        }
        let problems = validate::validate(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SpecError::Invalid(problems))
        }
    }
}

fn yaml_error(origin: &str, error: serde_path_to_error::Error<serde_yaml::Error>) -> SpecError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let location = inner.location();
    let mut message = inner.to_string();
    // serde_yaml appends " at line L column C"; the location is reported separately.
    if let Some(location) = &location {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    // serde_yaml also prefixes its own idea of the path (`spec.services[0]: unknown field ...`);
    // the path is reported separately too.
    if let Some((head, rest)) = message.split_once(": ") {
        if !head.is_empty() && path.starts_with(head) && !head.contains(' ') {
            message = rest.to_string();
        }
    }
    SpecError::Yaml {
        origin: origin.to_string(),
        path: (path != ".").then_some(path),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message,
    }
}
