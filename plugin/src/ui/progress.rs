//! Progress while waiting: one rewritten line on a terminal, plain lines otherwise.

use std::io::Write;

/// Where progress text goes (standard error, so `-o yaml` output stays clean).
#[derive(Debug, Clone, Copy)]
pub struct ProgressLine {
    tty: bool,
}

impl ProgressLine {
    /// Progress on standard error; `tty` selects the live line.
    pub fn new(tty: bool) -> Self {
        ProgressLine { tty }
    }

    /// True when drawing a live line.
    pub fn is_live(&self) -> bool {
        self.tty
    }

    /// Replace the live line with `text` (on a terminal; nothing otherwise).
    pub fn update(&self, text: &str) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{text}");
            let _ = err.flush();
        }
    }

    /// A finished line: replaces the live line on a terminal, a plain line otherwise.
    pub fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{text}\n");
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }
}
