//! The demo scenario: seed 000's voting app released stage by stage on an embedded emulated
//! cluster, with the routing and a simulated sample of requests shown after every stage.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use policy_sdk::{Event, Phase};

use super::metrics::{Overload, SimulatedMetrics};
use super::traffic::{self, Client};
use super::workloads::{istio_crds, workloads_for};
use crate::cluster::apply::ApplyOptions;
use crate::cluster::propagation::{
    ProgressEvent, Propagation, PropagationOptions, PropagationProgress,
};
use crate::cluster::{inventory, resources, Cluster, ConnectOptions};
use crate::istio::IstioObject;
use crate::release::view::release_view;
use crate::release::{Decider, Engine, EngineError, Mode, Outcome, StartOptions};
use crate::sim::RouteTable;
use crate::spec::{self, Release};
use crate::ui::tree;

/// The release the demo runs: seed 000's voting app with a longer ramp than the example, so
/// each kind of stage shows (testers only, then 20%, 50%, 100%).
pub const DEMO_SPEC: &str = r#"apiVersion: canary.kubectl.dev/v1alpha1
kind: Release
metadata: {name: voting-v2, namespace: voting}
spec:
  services:
    - name: voting-app
      stable: {version: "1.0"}
      canary: {version: "2.0"}
      gateways: [voting/voting-app-gateway]
      hosts: ["*"]
    - name: voting-analytics
      stable: {version: "1.1"}
      canary: {version: "2.0"}
    - name: voting-storage
      stable: {version: "1.0"}
      canary: {version: "2.0"}
  policy:
    module: builtin:progressive
    config:
      testers: {cookie: "featureflag=on"}
      chain: true
      steps: [0, 20, 50, 100]
      pause: 5m
  mtls: strict
"#;

/// What the rollback scenario adds to [`DEMO_SPEC`]: the canary's success rate, measured
/// before every step (from the demo's simulated Prometheus), must stay at 99% or more.
const ROLLBACK_ANALYSIS: &str = r#"  analysis:
    prometheus: {address: "http://prometheus.istio-system:9090"}
    interval: 1m
    metrics:
      - {name: success-rate, template: request-success-rate}
"#;

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// Testers, then 20%, 50%, 100%: promoted and finalized.
    #[default]
    Promote,
    /// The same ramp gated on the canary's success rate: voting-storage 2.0 fails under load
    /// once it takes half of the traffic, the gate breaks at 50%, and the release rolls back.
    Rollback,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The emulated cluster failed.
    #[error("emulated cluster: {0}")]
    Emulator(String),
    /// The release failed.
    #[error(transparent)]
    Release(#[from] EngineError),
    /// Reading the cluster failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The demo's own spec is wrong (a bug).
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    /// Simulating traffic failed.
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
}

/// What the demo needs from its caller.
pub struct DemoOptions<'a> {
    /// The policy deciding the stages (the built-in `progressive`).
    pub decider: &'a dyn Decider,
    /// Simulated requests per stage.
    pub requests: u64,
    /// Called with each block of output as it is produced.
    pub print: &'a mut dyn FnMut(&str),
    /// The story.
    pub scenario: Scenario,
}

/// The spec the demo runs for `scenario`.
pub fn demo_spec(scenario: Scenario) -> Result<Release, spec::SpecError> {
    match scenario {
        Scenario::Promote => spec::parse_str(DEMO_SPEC, "demo"),
        Scenario::Rollback => {
            let yaml = DEMO_SPEC.replace(
                "      pause: 5m\n",
                "      pause: 5m\n      thresholds: [{metric: success-rate, min: 99}]\n",
            ) + ROLLBACK_ANALYSIS;
            spec::parse_str(&yaml, "demo")
        }
    }
}

/// The canary that fails under load in the rollback scenario.
fn overload() -> Overload {
    Overload {
        service: "voting-storage".into(),
        version: "2.0".into(),
        from_share: 0.5,
        error_ratio: 0.07,
    }
}

/// Run the demo on `emulator`: install Istio's kinds and the voting app, then start, step
/// until promoted, and finalize, printing the routing and simulated traffic after each stage.
/// Time is simulated: each pause the policy asks for passes instantly.
pub async fn run(
    emulator: &kube_emulator::Emulator,
    options: DemoOptions<'_>,
) -> Result<Vec<Outcome>, DemoError> {
    let spec = demo_spec(options.scenario)?;
    let metrics = Arc::new(SimulatedMetrics::new(
        (options.scenario == Scenario::Rollback).then(overload),
    ));
    let fail = |e: kube_emulator::Error| DemoError::Emulator(e.to_string());
    emulator.apply_yaml(&istio_crds()).map_err(fail)?;
    for object in workloads_for(&spec) {
        let yaml = serde_yaml::to_string(&object).unwrap_or_default();
        emulator.apply_yaml(&yaml).map_err(fail)?;
    }
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(emulator.kubeconfig_path().to_path_buf()),
        namespace: Some(spec.namespace().to_string()),
        ..ConnectOptions::default()
    })
    .await?;
    let clock = Arc::new(Mutex::new(jiff::Timestamp::now()));
    let engine_clock = Arc::clone(&clock);
    let confirmed = Arc::new(DataPlaneLog::default());
    let propagation = Propagation::new(
        cluster.clone(),
        PropagationOptions {
            status_window: std::time::Duration::from_millis(500),
            ..PropagationOptions::default()
        },
        confirmed.clone(),
    );
    let engine = Engine::new(cluster.clone(), Mode::Apply, ApplyOptions::default())
        .with_clock(move || *engine_clock.lock().unwrap_or_else(|e| e.into_inner()))
        .with_propagation(propagation)
        .with_metric_source(metrics.clone());
    let print = options.print;
    print(&format!(
        "Emulated cluster at {} with the voting app (3 services, versions 1.x and 2.0).\n\
         Release voting-v2: testers first (cookie featureflag=on), then 20%, 50%, 100%; \
         2.0 callers only reach 2.0; strict mTLS.\n",
        emulator.url()
    ));
    if options.scenario == Scenario::Rollback {
        let o = overload();
        print(&format!(
            "Every step is gated on the canary's success rate (Istio's istio_requests_total, \
             here from a Prometheus simulated from the demo's own traffic): it must stay at \
             99% or more. {} {} fails {}% of its requests once it takes {}% of the traffic.\n",
            o.service,
            o.version,
            o.error_ratio * 100.0,
            o.from_share * 100.0
        ));
    }

    let mut outcomes = Vec::new();
    let outcome = engine
        .start(&spec, options.decider, &StartOptions::default())
        .await?;
    print(&confirmed.take());
    print(&stage_report(&cluster, &spec, &outcome, options.requests, &metrics).await?);
    let mut wait = outcome.requeue_after_seconds.unwrap_or(0);
    outcomes.push(outcome);
    loop {
        let current = engine.load(spec.name()).await?;
        if current.record.phase != Phase::Progressing {
            break;
        }
        advance(&clock, wait);
        let waited = wait;
        let outcome = engine
            .decide(current, Event::Step, options.decider, None)
            .await?;
        wait = outcome.requeue_after_seconds.unwrap_or(0);
        let changed = outcome.action != Some(policy_sdk::Action::Hold);
        if changed {
            if waited > 0 {
                print(&format!(
                    "\n(simulated clock: {} later)",
                    humantime::format_duration(std::time::Duration::from_secs(waited))
                ));
            }
            print(&confirmed.take());
            print(&stage_report(&cluster, &spec, &outcome, options.requests, &metrics).await?);
        }
        outcomes.push(outcome);
        if !changed && wait == 0 {
            wait = 60;
        }
    }
    let current = engine.load(spec.name()).await?;
    if current.record.phase == Phase::RolledBack {
        print(
            "\nRolled back: all traffic is on the stable versions again, and the canaries keep \
             running for a look (`kubectl canary why voting-v2 -n voting` shows the numbers the \
             decision was taken on).\n",
        );
        return Ok(outcomes);
    }
    let outcome = engine.finalize(current, false).await?;
    print(&confirmed.take());
    print(&stage_report(&cluster, &spec, &outcome, options.requests, &metrics).await?);
    outcomes.push(outcome);
    Ok(outcomes)
}

/// What the engine confirmed at the (emulated) data plane during one command, for the report.
#[derive(Debug, Default)]
struct DataPlaneLog(Mutex<Vec<String>>);

impl DataPlaneLog {
    /// The lines collected since the last call, as one block (empty when none).
    fn take(&self) -> String {
        let lines = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        if lines.is_empty() {
            return String::new();
        }
        format!(
            "\nConfirmed at the data plane before each next change:\n{}",
            lines.concat()
        )
    }
}

impl PropagationProgress for DataPlaneLog {
    fn report(&self, event: ProgressEvent<'_>) {
        let line = match event {
            ProgressEvent::Propagated {
                object,
                total,
                waited,
            } => {
                let waited =
                    std::time::Duration::from_millis(waited.as_millis() as u64 / 100 * 100);
                format!(
                    "  {object}: {total}/{total} proxies (waited {})\n",
                    humantime::format_duration(waited)
                )
            }
            ProgressEvent::Unconfirmed { message } => format!("  warning: {message}\n"),
            ProgressEvent::Propagating { .. } | ProgressEvent::Settling { .. } => return,
        };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

fn advance(clock: &Mutex<jiff::Timestamp>, seconds: u64) {
    let mut now = clock.lock().unwrap_or_else(|e| e.into_inner());
    let step = jiff::SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(0));
    *now = now.checked_add(step).unwrap_or(*now);
}

/// The decision, the release tree, and where `requests` simulated requests land.
async fn stage_report(
    cluster: &Cluster,
    spec: &Release,
    outcome: &Outcome,
    requests: u64,
    metrics: &SimulatedMetrics,
) -> Result<String, DemoError> {
    let ns = Some(cluster.namespace.as_str());
    let pods = inventory::list(cluster, resources::POD, ns).await?;
    let mut live = Vec::new();
    for kind in [resources::VIRTUAL_SERVICE, resources::DESTINATION_RULE] {
        for value in inventory::list(cluster, kind, ns).await? {
            if let Ok(Some(object)) = IstioObject::from_value(&value) {
                live.push(object);
            }
        }
    }
    let table = RouteTable::new(live)?;
    let info = spec.release_info();
    let chain: Vec<String> = spec.spec.services.iter().map(|s| s.name.clone()).collect();
    let clients = [
        Client {
            name: "users".into(),
            headers: BTreeMap::new(),
            share: 9,
        },
        Client {
            name: "testers".into(),
            headers: BTreeMap::from([("cookie".into(), "session=42; featureflag=on".into())]),
            share: 1,
        },
    ];
    let landing = traffic::walk(&table, &info, &chain, &clients, requests)?;
    metrics.observe(&landing);
    let mut out = String::new();
    let action = outcome
        .action
        .map_or("converge", policy_sdk::Action::as_str);
    let _ = writeln!(
        out,
        "\n━━ stage {} ({}) — {action}: {}",
        outcome.record.stage.index, outcome.record.stage.name, outcome.reason
    );
    let objects = crate::release::engine::live_objects(cluster, &outcome.record).await?;
    out.push_str(&tree::render(&release_view(
        &outcome.record,
        &objects,
        &pods,
    )));
    let _ = writeln!(out, "{requests} simulated requests (9 users : 1 tester):");
    for line in traffic::describe(&landing) {
        let _ = writeln!(out, "  {line}");
    }
    Ok(out)
}
