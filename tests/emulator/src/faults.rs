//! Fault injection: fail the Nth (matching) request with a status or a dropped connection,
//! and add latency.

use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this HTTP status and a Kubernetes `Status` body (409, 429, 500, ...).
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Wait this long, then serve the request normally.
    Delay(Duration),
    /// Wait until the gate opens, then serve the request normally.
    Gate(Gate),
}

/// A latch the test controls: requests held at it wait until [`Gate::open`]. Tests use it to
/// release several client processes at once (each one's first request held until all have
/// arrived), which no amount of latency guarantees on a loaded machine.
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    open: tokio::sync::watch::Sender<bool>,
    waiting: std::sync::atomic::AtomicUsize,
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Gate {
            inner: Arc::new(GateInner {
                open: tokio::sync::watch::channel(false).0,
                waiting: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// How many requests are held at the gate now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Let every held request (and every later one) through.
    pub fn open(&self) {
        self.inner.open.send_replace(true);
    }

    /// Wait until the gate is open.
    pub(crate) async fn pass(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let mut open = self.inner.open.subscribe();
        self.inner.waiting.fetch_add(1, SeqCst);
        let _ = open.wait_for(|o| *o).await;
        self.inner.waiting.fetch_sub(1, SeqCst);
    }
}

/// A fault: which requests it matches, on which match it fires, and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    verb: Option<String>,
    resource: Option<String>,
    nth: u64,
    times: u64,
    action: FaultAction,
    seen: u64,
}

impl Fault {
    /// A fault that fires on the `n`th matching request (1-based), once; by default it
    /// matches every request and answers 500.
    pub fn nth(n: u64) -> Self {
        Fault {
            verb: None,
            resource: None,
            nth: n.max(1),
            times: 1,
            action: FaultAction::Status(500),
            seen: 0,
        }
    }

    /// Only requests with this verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.into());
        self
    }

    /// Only requests for this resource (plural, e.g. `virtualservices`).
    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.into());
        self
    }

    /// Fires on `count` consecutive matches starting at the nth.
    pub fn times(mut self, count: u64) -> Self {
        self.times = count;
        self
    }

    /// Answers with this status code.
    pub fn status(mut self, code: u16) -> Self {
        self.action = FaultAction::Status(code);
        self
    }

    /// Drops the connection.
    pub fn drop_connection(mut self) -> Self {
        self.action = FaultAction::Drop;
        self
    }

    /// Delays the request.
    pub fn delay(mut self, d: Duration) -> Self {
        self.action = FaultAction::Delay(d);
        self
    }

    /// Holds the request until `gate` opens.
    pub fn gate(mut self, gate: Gate) -> Self {
        self.action = FaultAction::Gate(gate);
        self
    }
}

/// The fault table shared with the server.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<(Vec<Fault>, Duration)>>,
}

impl Faults {
    /// Adds a fault.
    pub fn add(&self, fault: Fault) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push(fault);
    }

    /// Shorthand: fail the `n`th request matching `verb` and `resource` with `code`.
    pub fn fail_nth(&self, n: u64, verb: &str, resource: &str, code: u16) {
        self.add(Fault::nth(n).verb(verb).resource(resource).status(code));
    }

    /// Latency added to every request.
    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1 = d;
    }

    /// Removes every fault and the latency.
    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = (vec![], Duration::ZERO);
    }

    /// The actions for a request (latency first), counting the match.
    pub(crate) fn on_request(&self, verb: &str, resource: &str) -> Vec<FaultAction> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![];
        if !g.1.is_zero() {
            out.push(FaultAction::Delay(g.1));
        }
        for f in g.0.iter_mut() {
            if f.verb.as_deref().is_some_and(|v| v != verb)
                || f.resource.as_deref().is_some_and(|r| r != resource)
            {
                continue;
            }
            f.seen += 1;
            if f.seen >= f.nth && f.seen < f.nth + f.times {
                out.push(f.action.clone());
            }
        }
        out
    }
}

/// The `Status` body of an injected error.
pub(crate) fn status_body(code: u16, resource: &str, name: &str) -> crate::error::ApiError {
    use crate::error::ApiError;
    match code {
        409 => ApiError {
            code,
            reason: "Conflict",
            message: format!("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            details: Some(json!({"name": name, "kind": resource})),
        },
        429 => ApiError {
            code,
            reason: "TooManyRequests",
            message: "the server has received too many requests and has asked us to try again later".into(),
            details: Some(json!({"retryAfterSeconds": 1})),
        },
        503 => ApiError::new(code, "ServiceUnavailable", "the server is currently unable to handle the request"),
        504 => ApiError::new(code, "Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
        400 => ApiError::bad_request("injected fault"),
        404 => ApiError::not_found("", resource, name),
        _ => ApiError::new(code, "InternalError", "Internal error occurred: injected fault"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_matching_request_fires_once() {
        let f = Faults::default();
        f.fail_nth(2, "patch", "virtualservices", 409);
        assert!(f.on_request("patch", "virtualservices").is_empty());
        assert!(f.on_request("get", "virtualservices").is_empty());
        assert_eq!(
            f.on_request("patch", "virtualservices"),
            vec![FaultAction::Status(409)]
        );
        assert!(f.on_request("patch", "virtualservices").is_empty());
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    #[tokio::test]
    async fn a_gate_holds_requests_until_opened_then_lets_all_through() {
        let gate = Gate::new();
        let held: Vec<_> = (0..3)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move { g.pass().await })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gate.waiting() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "requests never reached the gate"
            );
            tokio::task::yield_now().await;
        }
        assert!(held.iter().all(|h| !h.is_finished()));
        gate.open();
        for h in held {
            h.await.unwrap();
        }
        assert_eq!(gate.waiting(), 0);
        // Open stays open.
        gate.pass().await;
    }
}
