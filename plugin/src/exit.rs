//! Exit codes, documented once. Every command maps its failure to one of these.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// A command failed: bad input, a refused policy decision, an API error.
pub const FAILURE: u8 = 1;
/// The command line itself was wrong (clap's usage errors use this code too).
pub const USAGE: u8 = 2;
/// The release changed under us (optimistic-concurrency conflict); rerun the command.
pub const CONFLICT: u8 = 3;

/// An error carrying the exit code it should end the process with.
///
/// Wrap an error in this at the point where its meaning is known; `cli::main` prints the chain
/// as `error: ...` and exits with [`CodedError::code`]. Errors without it exit [`FAILURE`].
///
/// It is transparent: it reads as `source` and its causes are those of `source`, so
/// `error: {:#}` prints the cause once (a `#[source]` here printed it twice:
/// "…: 404 (no route): …: 404 (no route)").
#[derive(Debug)]
pub struct CodedError {
    /// The exit code.
    pub code: u8,
    /// What went wrong.
    pub source: anyhow::Error,
}

impl std::fmt::Display for CodedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for CodedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl CodedError {
    /// Attach `code` to `source`.
    pub fn new(code: u8, source: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            source: source.into(),
        }
    }
}

/// The exit code for a failed command's error.
pub fn code_of(err: &anyhow::Error) -> ExitCode {
    let code = err
        .chain()
        .find_map(|e| e.downcast_ref::<CodedError>())
        .map_or(FAILURE, |c| c.code);
    ExitCode::from(code)
}
