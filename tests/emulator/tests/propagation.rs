//! The emulated istiod status writer: each write of an Istio object reports `Reconciled False
//! "k/N proxies up to date."` counting up, then `True` at the new `observedGeneration`, through
//! the status subresource (own field manager, generation unchanged, audit-logged).

mod common;

use std::time::{Duration, Instant};

use common::{runtime, shared_dir};
use kube_emulator::{Emulator, Options, Propagation};
use serde_json::Value;

fn vs(weight: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v1}}
      weight: {}
    - destination: {{host: reviews, subset: v2}}
      weight: {weight}
",
        100 - weight
    )
}

fn live(emu: &Emulator) -> Value {
    emu.get(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "reviews",
    )
    .expect("the VirtualService")
}

fn reconciled(o: &Value) -> &Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Reconciled"))
        .unwrap_or(&Value::Null)
}

/// Wait (deadline loop) until the VirtualService's Reconciled condition has `message` at
/// `generation`.
fn wait_for(emu: &Emulator, generation: i64, message: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = live(emu);
        if o["status"]["observedGeneration"] == generation && reconciled(&o)["message"] == message {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "never reached {message:?}: {o:#}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn each_write_reports_progress_then_reconciled_at_its_generation() {
    let Some(shared) = shared_dir() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "../shared/fixtures/istio is required in CI"
        );
        eprintln!("SKIPPED each_write_reports_progress: ../shared/fixtures/istio is absent");
        return;
    };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options {
            propagation: Some(Propagation::after(Duration::from_millis(100))),
            ..Options::default()
        }))
        .expect("start");
    let bundle =
        std::fs::read_to_string(shared.join("fixtures/istio/customresourcedefinitions.gen.yaml"))
            .expect("bundle");
    emu.apply_yaml(&bundle).expect("Istio CRDs");
    emu.audit().clear();
    emu.apply_yaml(&vs(10)).expect("VirtualService");
    let done = wait_for(&emu, 1, "4/4 proxies up to date.");
    assert_eq!(done["metadata"]["generation"], 1);
    let condition = reconciled(&done);
    assert_eq!(condition["status"], "True");
    assert!(condition["lastProbeTime"].is_string(), "{condition}");
    assert!(condition["lastTransitionTime"].is_string(), "{condition}");
    let managers: Vec<(String, String)> = done["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or("").to_string(),
                m["subresource"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("pilot-discovery".into(), "status".into())),
        "{managers:?}"
    );

    // The audit log has each status write, k counting up, resourceVersion bumped each time.
    let writes: Vec<(String, String, u64)> = emu
        .audit()
        .records()
        .iter()
        .filter(|r| r.subresource == "status" && r.user_agent == "pilot-discovery/emulated")
        .map(|r| {
            let o = r
                .state
                .get(
                    "networking.istio.io",
                    "virtualservices",
                    "default",
                    "reviews",
                )
                .expect("in the state");
            (
                reconciled(o)["status"].as_str().unwrap_or("").to_string(),
                reconciled(o)["message"].as_str().unwrap_or("").to_string(),
                r.state.resource_version,
            )
        })
        .collect();
    let texts: Vec<(&str, &str)> = writes
        .iter()
        .map(|(s, m, _)| (s.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("False", "0/4 proxies up to date."),
            ("False", "1/4 proxies up to date."),
            ("False", "2/4 proxies up to date."),
            ("False", "3/4 proxies up to date."),
            ("True", "4/4 proxies up to date."),
        ]
    );
    assert!(writes.windows(2).all(|w| w[0].2 < w[1].2), "{writes:?}");

    // A new generation is reported afresh; a stuck object stays at N-1 until released.
    emu.set_propagation(Some(
        Propagation::after(Duration::from_millis(100)).with_stuck("reviews"),
    ));
    emu.apply_yaml(&vs(50)).expect("VirtualService");
    let stuck = wait_for(&emu, 2, "3/4 proxies up to date.");
    assert_eq!(stuck["metadata"]["generation"], 2);
    assert_eq!(reconciled(&stuck)["status"], "False");
    emu.set_propagation(Some(Propagation::after(Duration::from_millis(100))));
    wait_for(&emu, 2, "4/4 proxies up to date.");
    rt.block_on(emu.shutdown());
}
