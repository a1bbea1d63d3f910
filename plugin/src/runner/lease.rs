//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics.
//!
//! Why not a crate: the maintained ones (`kube-leader-election` 0.44, `kube-coordinate` 2.0-rc)
//! depend on kube 4 and kube 2, not the kube 5 this crate uses (their `Client` is another type),
//! and neither separates the renew deadline from the lease duration. The protocol is small and
//! built from kube-rs primitives: a GET, then a create or a replace conditional on the Lease's
//! resourceVersion, so two candidates can never both win the same round.
//!
//! The rules (those of client-go's `leaderelection`):
//! - a candidate takes the Lease when it is free, or when its holder has not renewed it for
//!   `lease_duration`, measured on the candidate's own clock from when it *observed* the last
//!   change (clock skew between replicas does not matter);
//! - the leader renews every `retry_period`; if it has not renewed successfully within
//!   `renew_deadline` (< `lease_duration`), it stops acting *before* any other candidate may take
//!   the Lease;
//! - on shutdown the leader releases the Lease (empty holder), so a standby takes over at its
//!   next retry instead of waiting out the lease duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::{ClusterError, Target};

/// Timing and identity of one candidate.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease stays held without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal (< `lease_duration`).
    pub renew_deadline: Duration,
    /// How often candidates try to acquire, and the leader renews.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Check the timing rules: `retry_period < renew_deadline < lease_duration`.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline ({}) must be shorter than --lease-duration ({}): a leader must stop acting before another replica may take over",
                humantime::format_duration(self.renew_deadline),
                humantime::format_duration(self.lease_duration)
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--retry-period ({}) must be shorter than --renew-deadline ({})",
                humantime::format_duration(self.retry_period),
                humantime::format_duration(self.renew_deadline)
            ));
        }
        if self.lease_duration.as_secs() < 1 {
            return Err("--lease-duration must be at least 1s".to_string());
        }
        Ok(())
    }
}

/// Whether this candidate may act now. Shared with the code that acts: it must check
/// [`Leadership::acting`] right before each decision.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<Option<Instant>>,
}

impl Leadership {
    /// True while this candidate holds the Lease and its last renewal is recent enough
    /// (within the renew deadline): past that instant it stops, even before the renew loop
    /// notices.
    pub fn acting(&self) -> bool {
        self.rx.borrow().is_some_and(|until| Instant::now() < until)
    }

    /// Until when this candidate may act, if it leads.
    pub fn acting_until(&self) -> Option<Instant> {
        *self.rx.borrow()
    }

    /// Waits until leadership changes (gained, renewed, or lost).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            // The elector stopped: nothing will change any more.
            std::future::pending::<()>().await;
        }
    }
}

/// One round's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// We hold the Lease (acquired or renewed).
    Held,
    /// Someone else holds it (or won the race).
    Other,
}

/// A candidate for the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    tx: watch::Sender<Option<Instant>>,
    /// The last holder/renewTime we saw, and when (our clock) we saw it change.
    observed: Option<(String, Instant)>,
    /// The Lease as we last wrote it while holding it: the leader renews with one conditional
    /// replace of it (no GET), and falls back to reading on a conflict.
    held: Option<Lease>,
    /// Told whether each Lease request failed, for the metrics (their latency is timed with
    /// every other request by the client, `cluster::connect::client_for`).
    on_request: Box<dyn Fn(bool) + Send + Sync>,
}

impl Elector {
    /// A candidate using `client`; nothing is sent until [`Elector::run`].
    pub fn new(
        client: kube::Client,
        config: LeaseConfig,
        on_request: impl Fn(bool) + Send + Sync + 'static,
    ) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(None);
        (
            Elector {
                api: Api::namespaced(client, &config.namespace),
                config,
                tx,
                observed: None,
                held: None,
                on_request: Box::new(on_request),
            },
            Leadership { rx },
        )
    }

    fn target(&self) -> Target {
        Target::new("Lease", &self.config.namespace, &self.config.name)
    }

    /// Tries to acquire, then renews, every retry period, until `stop` turns true; then
    /// releases the Lease if held. Errors are reported through `on_error` and retried.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        on_error: impl Fn(&ClusterError) + Send,
    ) {
        let mut last_renew: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let started = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(Round::Held) => {
                    last_renew = Some(started);
                    let _ = self.tx.send(Some(started + self.config.renew_deadline));
                }
                Ok(Round::Other) => {
                    last_renew = None;
                    let _ = self.tx.send(None);
                }
                Err(e) => {
                    on_error(&e);
                    // Keep acting only until the renew deadline of the last success.
                    if last_renew.is_some_and(|t| t.elapsed() >= self.config.renew_deadline) {
                        last_renew = None;
                        let _ = self.tx.send(None);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = stop.changed() => {}
            }
        }
        if last_renew.is_some() {
            let _ = self.tx.send(None);
            if let Err(e) = self.release().await {
                on_error(&e);
            }
        }
    }

    fn now_micro() -> MicroTime {
        MicroTime(jiff::Timestamp::now())
    }

    fn ours(&self, spec: &LeaseSpec) -> bool {
        spec.holder_identity.as_deref() == Some(self.config.identity.as_str())
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Round, ClusterError> {
        let round = self.round().await;
        if !matches!(round, Ok(Round::Held)) {
            self.held = None;
        }
        round
    }

    /// Replace the Lease with `lease`, conditional on its resourceVersion (409 if it moved).
    async fn replace(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        let replaced = self
            .api
            .replace(&self.config.name, &PostParams::default(), lease)
            .await;
        (self.on_request)(replaced.is_err());
        replaced
    }

    /// Renew the Lease we hold with one replace, conditional on the version we wrote last.
    async fn renew_held(&mut self, mut lease: Lease) -> Result<Round, ClusterError> {
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(Self::now_micro());
        }
        match self.replace(&lease).await {
            Ok(lease) => {
                self.held = Some(lease);
                Ok(Round::Held)
            }
            // Someone wrote it meanwhile: read it and judge afresh.
            Err(kube::Error::Api(s)) if s.code == 409 => self.read_and_claim().await,
            Err(e) => Err(ClusterError::from_kube("update", self.target(), e)),
        }
    }

    async fn round(&mut self) -> Result<Round, ClusterError> {
        match self.held.take() {
            Some(lease) => self.renew_held(lease).await,
            None => self.read_and_claim().await,
        }
    }

    async fn read_and_claim(&mut self) -> Result<Round, ClusterError> {
        let current = self.api.get_opt(&self.config.name).await;
        (self.on_request)(current.is_err());
        let current = current.map_err(|e| ClusterError::from_kube("get", self.target(), e))?;
        let duration_secs = self.config.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(Self::now_micro()),
                    renew_time: Some(Self::now_micro()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            let created = self.api.create(&PostParams::default(), &lease).await;
            (self.on_request)(created.is_err());
            return match created {
                Ok(lease) => {
                    self.held = Some(lease);
                    Ok(Round::Held)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Other),
                Err(e) => Err(ClusterError::from_kube("create", self.target(), e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        // What we see of the holder's renewals, and since when (our clock).
        let seen = format!(
            "{}@{}",
            spec.holder_identity.clone().unwrap_or_default(),
            spec.renew_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()
        );
        let now = Instant::now();
        let since = match &self.observed {
            Some((s, at)) if *s == seen => *at,
            _ => {
                self.observed = Some((seen.clone(), now));
                now
            }
        };
        let held_by_other = !self.ours(&spec)
            && spec
                .holder_identity
                .as_deref()
                .is_some_and(|h| !h.is_empty());
        let their_duration =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as u64);
        if held_by_other && now < since + their_duration {
            return Ok(Round::Other);
        }
        let mut next = spec.clone();
        if !self.ours(&spec) {
            next.holder_identity = Some(self.config.identity.clone());
            next.acquire_time = Some(Self::now_micro());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.lease_duration_seconds = Some(duration_secs);
        next.renew_time = Some(Self::now_micro());
        lease.spec = Some(next);
        // Conditional on the resourceVersion just read: of two candidates, one wins.
        match self.replace(&lease).await {
            Ok(lease) => {
                self.held = Some(lease);
                Ok(Round::Held)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Other),
            Err(e) => Err(ClusterError::from_kube("update", self.target(), e)),
        }
    }

    /// Give the Lease up: empty holder, so a standby acquires it at its next retry.
    async fn release(&self) -> Result<(), ClusterError> {
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| ClusterError::from_kube("get", self.target(), e))?;
        let Some(mut lease) = current else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(Self::now_micro());
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(ClusterError::from_kube("update", self.target(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lease: u64, renew: u64, retry: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn timing_rules_are_checked() {
        assert_eq!(config(15, 10, 2).validate(), Ok(()));
        assert_eq!(
            config(10, 10, 2).validate().unwrap_err(),
            "--renew-deadline (10s) must be shorter than --lease-duration (10s): a leader must stop acting before another replica may take over"
        );
        assert_eq!(
            config(15, 10, 10).validate().unwrap_err(),
            "--retry-period (10s) must be shorter than --renew-deadline (10s)"
        );
    }
}
