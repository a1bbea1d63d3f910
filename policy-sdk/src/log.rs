//! Logging from a policy through the host's `canary.log` import.
//!
//! The host captures log lines (at most 4 KiB each and 100 per decision, control characters
//! stripped) and shows them with the decision. Natively (tests) the lines are kept per thread and
//! can be read back with [`take_native_logs`].

/// Severity of a log line; the numbers are the ABI's `level` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Details for policy authors.
    Debug = 0,
    /// Normal progress.
    Info = 1,
    /// Something the operator should look at.
    Warn = 2,
    /// Something went wrong.
    Error = 3,
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "canary")]
extern "C" {
    #[link_name = "log"]
    fn canary_log(level: i32, ptr: i32, len: i32);
}

/// Log one line at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: the host reads `len` bytes at `ptr` from this module's memory during the call;
        // `message` is a live `&str` for the whole call.
        unsafe {
            canary_log(
                level as i32,
                message.as_ptr() as usize as i32,
                message.len() as i32,
            )
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    native::push(level, message);
}

/// Log at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Log at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Log at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// The lines logged on this thread since the last call (native builds only).
#[cfg(not(target_arch = "wasm32"))]
pub fn take_native_logs() -> Vec<(Level, String)> {
    native::take()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn push(level: Level, message: &str) {
        LINES.with(|lines| lines.borrow_mut().push((level, message.to_string())));
    }

    pub(super) fn take() -> Vec<(Level, String)> {
        LINES.with(|lines| std::mem::take(&mut *lines.borrow_mut()))
    }
}
