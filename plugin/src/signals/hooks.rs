//! Webhooks, as Flagger calls them: a JSON payload POSTed to each hook of the spec. A gating
//! hook (`pre-start`, `pre-step`, `pre-promote`) is asked before a decision: it opens its gate
//! by answering 2xx in time, and any other outcome (a non-2xx answer, a timeout, no connection)
//! closes it, which holds the release. The others (`post-promote`, `rollback`, `event`) are told
//! after a change, with bounded retries, and their failures change nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use policy_sdk::{Gate, GateKind};
use serde_json::Value;

use super::prometheus::sanitise;
use crate::spec::{HookEvent, HookSpec};

/// A hook's default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a told hook when the spec sets none.
pub const DEFAULT_TELL_RETRIES: u32 = 2;

fn timeout(hook: &HookSpec) -> Duration {
    hook.timeout
        .as_deref()
        .and_then(|t| policy_sdk::time::duration_millis(t).ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn client() -> Result<reqwest::Client, String> {
    crate::net::with_trust(reqwest::Client::builder(), None)
        .build()
        .map_err(|e| crate::net::chain(&e))
}

/// One call: `Ok(answer)` for a 2xx, `Err(answer)` otherwise, each as one sanitised line
/// (`200 OK`, `503 Service Unavailable: freeze until Monday`, `timed out after 5s`).
async fn call(
    client: &reqwest::Client,
    hook: &HookSpec,
    payload: &Value,
) -> Result<String, String> {
    let limit = timeout(hook);
    let send = client.post(&hook.url).json(payload).timeout(limit).send();
    let response = match tokio::time::timeout(limit, send).await {
        Err(_) => {
            return Err(format!(
                "timed out after {}",
                humantime::format_duration(limit)
            ))
        }
        Ok(Err(e)) if e.is_timeout() => {
            return Err(format!(
                "timed out after {}",
                humantime::format_duration(limit)
            ))
        }
        Ok(Err(e)) => {
            return Err(format!(
                "cannot call it: {}",
                sanitise(&crate::net::chain(&e.without_url()))
            ))
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let body = tokio::time::timeout(limit, response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(400)])
        .trim()
        .to_string();
    let mut answer = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string();
    if !text.is_empty() {
        answer.push_str(": ");
        answer.push_str(&text);
    }
    let answer = sanitise(&answer);
    if status.is_success() {
        Ok(answer)
    } else {
        Err(answer)
    }
}

/// Calls `hook` with `payload` plus its own name, `on` and `metadata`, retrying up to `retries`
/// times while it fails; the last outcome.
async fn deliver(
    client: &reqwest::Client,
    hook: &HookSpec,
    on: &str,
    payload: &Value,
    retries: u32,
) -> Result<String, String> {
    let mut payload = payload.clone();
    payload["hook"] = Value::String(hook.name.clone());
    payload["on"] = Value::String(on.to_string());
    payload["metadata"] = serde_json::to_value(&hook.metadata).unwrap_or_default();
    let mut outcome = call(client, hook, &payload).await;
    for _ in 0..retries {
        if outcome.is_ok() {
            break;
        }
        outcome = call(client, hook, &payload).await;
    }
    outcome
}

/// Asks every hook of `hooks` that gates one of `kinds`, all at once, each with its retries, and
/// returns their gates by hook name. Hooks that gate none of `kinds` are not called.
pub async fn gates(
    hooks: &[HookSpec],
    kinds: &[GateKind],
    payload: &Value,
) -> BTreeMap<String, Gate> {
    let asked: Vec<(&HookSpec, GateKind)> = hooks
        .iter()
        .filter_map(|hook| {
            hook.on
                .iter()
                .filter_map(|on| on.gate())
                .find(|kind| kinds.contains(kind))
                .map(|kind| (hook, kind))
        })
        .collect();
    if asked.is_empty() {
        return BTreeMap::new();
    }
    let client = match client() {
        Ok(client) => client,
        Err(e) => {
            return asked
                .into_iter()
                .map(|(hook, on)| {
                    let gate = Gate {
                        on,
                        open: false,
                        answer: format!("no HTTP client: {e}"),
                    };
                    (hook.name.clone(), gate)
                })
                .collect()
        }
    };
    let calls = asked.into_iter().map(|(hook, on)| {
        let client = &client;
        async move {
            let retries = hook.retries.unwrap_or(0);
            let gate = match deliver(client, hook, gate_name(on), payload, retries).await {
                Ok(answer) => Gate {
                    on,
                    open: true,
                    answer,
                },
                Err(answer) => Gate {
                    on,
                    open: false,
                    answer,
                },
            };
            (hook.name.clone(), gate)
        }
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// Tells every hook of `hooks` registered for `event`, all at once, each with its retries
/// (default [`DEFAULT_TELL_RETRIES`]). Returns one line per hook that could not be told, for a
/// warning: a told hook never changes the release.
pub async fn tell(hooks: &[HookSpec], event: HookEvent, payload: &Value) -> Vec<String> {
    let told: Vec<&HookSpec> = hooks.iter().filter(|h| h.on.contains(&event)).collect();
    if told.is_empty() {
        return Vec::new();
    }
    let client = match client() {
        Ok(client) => client,
        Err(e) => {
            return vec![format!(
                "hooks not told ({}): no HTTP client: {e}",
                event.as_str()
            )]
        }
    };
    let calls = told.into_iter().map(|hook| {
        let client = &client;
        async move {
            let retries = hook.retries.unwrap_or(DEFAULT_TELL_RETRIES);
            let outcome = deliver(client, hook, event.as_str(), payload, retries).await;
            outcome.err().map(|answer| {
                format!(
                    "hook {} ({}) was not told: {answer}",
                    hook.name,
                    event.as_str()
                )
            })
        }
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The spec's name of a gate kind (`pre-step`).
pub fn gate_name(kind: GateKind) -> &'static str {
    match kind {
        GateKind::PreStart => "pre-start",
        GateKind::PreStep => "pre-step",
        GateKind::PrePromote => "pre-promote",
    }
}

/// The first closed gate of `gates` among `kinds`, as `gate NAME (KIND) is closed: ANSWER`.
pub fn closed(gates: &BTreeMap<String, Gate>, kinds: &[GateKind]) -> Option<String> {
    gates
        .iter()
        .find(|(_, g)| !g.open && kinds.contains(&g.on))
        .map(|(name, g)| format!("gate {name} ({}) is closed: {}", gate_name(g.on), g.answer))
}
