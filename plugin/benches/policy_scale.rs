//! How the built-in `progressive` policy's cost grows with the number of services of a release:
//! fuel, input and output bytes of its `start` decision, with and without source-label
//! chaining, for 10 to 1,000 services. Fuel is a count, not a time, so one run is exact.
//!
//! `cargo bench -p kubectl-canary --bench policy_scale`
//!
//! The decisions run with the default limits (fuel 100,000,000, output 256 KiB, memory
//! 32 MiB); a row that hits one says which. "fuel/service" is the figure that must stay flat
//! for the policy to be linear in the number of services.

use kubectl_canary::policy::{Limits, ModuleRef, PolicyHost};
use policy_sdk::testing::{InputBuilder, ReleaseBuilder};
use policy_sdk::{Event, Input};

const SIZES: [usize; 7] = [10, 20, 40, 60, 80, 200, 1000];

/// A release of `n` services, the first an entry behind a gateway, at its `start` decision.
fn release(n: usize, chain: bool) -> Input {
    let mut builder = ReleaseBuilder::new("scale").namespace("scale");
    for i in 0..n {
        builder = builder.service(&format!("svc{i}"), "v1", "v2");
        if i == 0 {
            builder = builder.gateway("istio-system/gateway");
        }
    }
    InputBuilder::new(builder.build())
        .event(Event::Start)
        .config_json(&format!(r#"{{"chain": {chain}, "steps": [10, 50, 100]}}"#))
        .build()
}

fn main() {
    let host = PolicyHost::new(None).expect("policy host");
    let policy = host
        .load(&ModuleRef::parse("builtin:progressive"), None)
        .expect("builtin:progressive");
    let limits = Limits::default();
    println!("chain  services  input bytes  output bytes  fuel          fuel/service");
    for chain in [false, true] {
        for n in SIZES {
            let input = release(n, chain);
            let input_bytes = serde_json::to_vec(&input).expect("input JSON").len();
            match policy.evaluate(&input, &limits) {
                Ok(evaluation) => {
                    let output = serde_json::to_vec(&evaluation.decision)
                        .expect("decision JSON")
                        .len();
                    println!(
                        "{chain:<6} {n:>8}  {input_bytes:>11}  {output:>12}  {:>12}  {:>12}",
                        evaluation.fuel_used,
                        evaluation.fuel_used / n as u64
                    );
                }
                Err(e) => println!("{chain:<6} {n:>8}  {input_bytes:>11}  refused: {e}"),
            }
        }
    }
}
