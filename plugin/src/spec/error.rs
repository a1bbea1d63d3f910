//! Errors of reading and validating a release spec.

use std::fmt;
use std::path::PathBuf;

/// Why a release spec could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read release spec {}: {source}", path.display())]
    Io {
        /// The file (`-` for stdin).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML, or does not have the shape of a Release (wrong type, unknown or
    /// missing field).
    #[error("{}", yaml_display(.origin, .path, .line, .column, .message))]
    Yaml {
        /// Where the text came from (a file name, `<stdin>`).
        origin: String,
        /// Field path of the problem (`spec.services[0].canary`), when known.
        path: Option<String>,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong, without the location.
        message: String,
    },
    /// Refused before parsing: larger than the spec limit or nested too deeply.
    #[error(transparent)]
    Bounds(crate::bounds::InputError),
    /// The spec is well-formed but some values are not acceptable: every problem found.
    #[error("{}", invalid_display(.0))]
    Invalid(Vec<FieldError>),
}

/// One invalid value of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `spec.services[1].canary.version`.
    pub path: String,
    /// The value as written (empty when the problem is a missing or empty value).
    pub value: String,
    /// What is wrong; quotes the value where it helps.
    pub message: String,
}

impl FieldError {
    /// A problem at `path` with `value`.
    pub fn new(
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            path: path.into(),
            value: value.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn yaml_display(
    origin: &str,
    path: &Option<String>,
    line: &Option<usize>,
    column: &Option<usize>,
    message: &str,
) -> String {
    let mut out = origin.to_string();
    if let Some(line) = line {
        out.push_str(&format!(":{line}"));
        if let Some(column) = column {
            out.push_str(&format!(":{column}"));
        }
    }
    out.push_str(": ");
    if let Some(path) = path {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

/// Every problem, up to [`crate::bounds::MAX_LISTED`] of them; the rest are counted.
fn invalid_display(errors: &[FieldError]) -> String {
    let mut out = match errors.len() {
        1 => "invalid release spec (1 problem):".to_string(),
        n => format!(
            "invalid release spec ({} problems):",
            crate::bounds::count_text(n)
        ),
    };
    for error in errors.iter().take(crate::bounds::MAX_LISTED) {
        out.push_str("\n  ");
        out.push_str(&error.to_string());
    }
    if errors.len() > crate::bounds::MAX_LISTED {
        out.push_str("\n  ");
        out.push_str(&crate::bounds::more_line(
            errors.len() - crate::bounds::MAX_LISTED,
        ));
    }
    out
}
