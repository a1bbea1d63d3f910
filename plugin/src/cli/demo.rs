//! `kubectl canary demo`: seed 000's voting app released stage by stage on an embedded
//! emulated cluster, with the routing and simulated traffic after every stage.

use std::path::PathBuf;

use clap::Args;

use super::flags::CacheArgs;
use super::GlobalArgs;

/// Arguments of `demo`.
#[derive(Debug, Args)]
#[command(
    after_help = "Nothing outside this process is touched: the cluster is an emulated \
Kubernetes API server on 127.0.0.1 that lives as long as the command (or until Ctrl-C with --keep)."
)]
pub struct DemoArgs {
    /// Keep the emulated cluster running after the demo and print its kubeconfig, to explore
    /// it with kubectl (Ctrl-C stops it).
    #[arg(long)]
    pub keep: bool,
    /// With --keep: write the kubeconfig here instead of a temporary file.
    #[arg(long, value_name = "FILE", requires = "keep")]
    pub write_kubeconfig: Option<PathBuf>,
    /// Simulated requests per stage.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub requests: u64,
    /// Policy cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// How long the emulated istiod takes to push each change to the (4 simulated) proxies;
    /// every step waits for it. 0s turns Istio's status off (the demo then says it cannot
    /// confirm propagation).
    #[arg(long, default_value = "200ms", value_parser = super::flags::duration, value_name = "DURATION")]
    pub propagation_delay: std::time::Duration,
    /// The story: `promote` (the ramp to 100% and finalize), or `rollback` (the ramp gated on
    /// the canary's success rate, which breaks at 50%).
    #[arg(long, value_enum, default_value_t, value_name = "SCENARIO")]
    pub scenario: ScenarioArg,
}

/// `--scenario` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScenarioArg {
    /// Promoted and finalized.
    #[default]
    Promote,
    /// A metric gate breaks at 50%: rolled back.
    Rollback,
}

/// Run the demo: in a build without the `demo` feature, the one line that says so. The
/// command stays (same flags, same help) so that scripts and completions do not change shape.
#[cfg(not(feature = "demo"))]
pub async fn run(_args: DemoArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this kubectl-canary was built without the demo (cargo feature `demo`); \
         use a default build to run it"
    )
}

/// Run the demo.
#[cfg(feature = "demo")]
pub async fn run(args: DemoArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    use std::io::Write;

    use crate::demo::run::{self, DemoOptions};

    let emulator = kube_emulator::Emulator::start(kube_emulator::Options {
        kubeconfig: args.write_kubeconfig.clone(),
        record_states: false,
        propagation: (!args.propagation_delay.is_zero())
            .then(|| kube_emulator::Propagation::after(args.propagation_delay)),
        ..kube_emulator::Options::default()
    })
    .await?;
    let scenario = match args.scenario {
        ScenarioArg::Promote => run::Scenario::Promote,
        ScenarioArg::Rollback => run::Scenario::Rollback,
    };
    let spec = run::demo_spec(scenario)?;
    let decider =
        super::policy_decider::for_spec(&spec.spec.policy, args.cache.cache_dir.as_deref())?;
    let mut stdout = std::io::stdout();
    let mut io_error = None;
    let mut print = |text: &str| {
        if io_error.is_none() {
            if let Err(e) = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                io_error = Some(e);
            }
        }
    };
    let result = run::run(
        &emulator,
        DemoOptions {
            decider: decider.as_ref(),
            requests: args.requests,
            print: &mut print,
            scenario,
        },
    )
    .await;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    result?;
    if args.keep {
        println!(
            "\nThe emulated cluster keeps running. In another terminal:\n  \
             export KUBECONFIG={}\n  \
             kubectl get virtualservices,destinationrules -n voting\n  \
             kubectl canary get voting-v2 -n voting\n  \
             kubectl canary history voting-v2 -n voting\n  \
             kubectl canary undo voting-v2 -n voting\n\
             Ctrl-C stops it.",
            emulator.kubeconfig_path().display()
        );
        tokio::signal::ctrl_c().await?;
    }
    emulator.shutdown().await;
    Ok(())
}

#[cfg(all(test, not(feature = "demo")))]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn a_build_without_the_demo_says_so_in_one_line() {
        let cli = Cli::try_parse_from(["kubectl-canary", "demo", "--requests", "10"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("`demo` parses as another command")
        };
        let err = futures::executor::block_on(super::run(args, &cli.global)).unwrap_err();
        assert_eq!(
            format!("error: {err:#}"),
            "error: this kubectl-canary was built without the demo (cargo feature `demo`); use a \
             default build to run it"
        );
    }
}
