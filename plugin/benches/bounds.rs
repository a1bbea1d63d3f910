//! Bounded inputs, before and after, side by side in one run (a bench binary: `cargo bench -p
//! kubectl-canary --bench bounds`). "Before" is what reading a spec did without bounds: hand the
//! whole text to the YAML parser, then validate; "after" is [`spec::parse_str`], which checks
//! size and nesting first. Each case prints the median of a few runs and the ratio.
//!
//! The inputs are the shapes of issue 17 item 5, scaled so that the unbounded path finishes in
//! seconds: nesting grows quadratically (200 KB took ~50 s), so 40 KB is used; 13,000 services
//! is the 10 MB / 131,072-service spec at a tenth. A spec at the 1 MiB limit (1,000 services,
//! the rest comments) shows what any accepted spec costs: parse, validate and render.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use kubectl_canary::release::desired::render_options;
use kubectl_canary::{render, spec};
use policy_sdk::Role;

fn services(n: usize) -> String {
    let mut text = String::from(
        "apiVersion: canary.kubectl.dev/v1alpha1\nkind: Release\nmetadata: {name: big, namespace: shop}\nspec:\n  services:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "  - {{name: s{i}, entry: true, stable: {{version: v1}}, canary: {{version: v2}}}}\n"
        ));
    }
    text.push_str("  policy: {module: builtin:progressive}\n");
    text
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// The unbounded path: parse everything, then validate.
fn unbounded(text: &str) {
    let parsed: Result<spec::Release, _> = serde_yaml::from_str(text);
    if let Ok(release) = parsed {
        let _ = black_box(release.validate());
    }
}

fn compare(name: &str, text: &str, runs: usize) {
    let before = median(runs, || unbounded(black_box(text)));
    let after = median(runs, || {
        let _ = black_box(spec::parse_str(black_box(text), "bench.yaml"));
    });
    println!(
        "{name:<48} before {:>10.3} ms   after {:>8.3} ms   before/after {:>10.0}x",
        before.as_secs_f64() * 1e3,
        after.as_secs_f64() * 1e3,
        before.as_secs_f64() / after.as_secs_f64().max(1e-9)
    );
}

fn main() {
    // `cargo test --benches` runs this too: keep that quick.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let scale = if quick { 10 } else { 1 };
    let nested = format!("apiVersion: v1\nspec: {}\n", "[".repeat(40_000 / scale));
    compare("nested `[` x 40,000 (40 KB)", &nested, 3);
    let many = services(13_000 / scale);
    compare(
        &format!(
            "{} services ({:.1} MiB)",
            13_000 / scale,
            many.len() as f64 / 1048576.0
        ),
        &many,
        3,
    );
    // Any accepted spec: at the limits, parse + validate + render the baseline, end to end.
    let mut at_limit = services(spec::MAX_SERVICES);
    let line = format!("# {}\n", "x".repeat(1021));
    while at_limit.len() + line.len() <= 1 << 20 {
        at_limit.push_str(&line);
    }
    let accepted = median(3, || {
        let release = spec::parse_str(&at_limit, "bench.yaml").expect("a spec at the limits");
        let info = release.release_info();
        let opts = render_options(&release, &[Role::Stable, Role::Canary]);
        let _ = black_box(render::render(&info, &render::baseline_stage(&info), &opts));
    });
    println!(
        "{:<48} {:>10.3} ms (parse + validate + render)",
        format!(
            "{} services, {:.2} MiB (the limits)",
            spec::MAX_SERVICES,
            at_limit.len() as f64 / 1048576.0
        ),
        accepted.as_secs_f64() * 1e3
    );
}
