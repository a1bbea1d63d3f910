//! `kube-emulator`: run the emulated Kubernetes API server standalone.
//!
//! `kube-emulator serve --kubeconfig FILE [--port N] [--data-dir DIR] [--minor N] [--token T]`

use anyhow::{bail, Context, Result};
use kube_emulator::{Emulator, Options};
use std::path::PathBuf;

const USAGE: &str = "usage: kube-emulator serve --kubeconfig FILE [--port N] [--data-dir DIR] [--minor N] [--token TOKEN]";

/// `kube-emulator serve --help` (and `kube-emulator --help`).
const HELP: &str = "\
kube-emulator serve: run the emulated Kubernetes API server on 127.0.0.1 until Ctrl-C or SIGTERM.

usage: kube-emulator serve --kubeconfig FILE [--port N] [--data-dir DIR] [--minor N] [--token TOKEN]

Flags:
  --kubeconfig FILE  write a kubeconfig for kubectl and kube-rs here (required)
  --port N           port to listen on (default: a free one)
  --data-dir DIR     keep the cluster's objects in DIR, and load them from it at start
  --minor N          the Kubernetes minor version /version reports (default 33; it chooses kubectl 1.N)
  --token TOKEN      the bearer token clients must send (default: a random one)
  -h, --help         print this help";

fn parse(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        record_states: false,
        ..Options::default()
    };
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("serve") => {}
        Some("-h" | "--help") => {
            println!("{HELP}");
            std::process::exit(0);
        }
        _ => bail!("expected the `serve` subcommand\n{USAGE}"),
    }
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            "--kubeconfig" => opts.kubeconfig = Some(PathBuf::from(value()?)),
            "--port" => opts.port = value()?.parse().context("--port must be a number")?,
            "--data-dir" => opts.data_dir = Some(PathBuf::from(value()?)),
            "--minor" => opts.minor = value()?.parse().context("--minor must be a number")?,
            "--token" => opts.token = Some(value()?),
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    if opts.kubeconfig.is_none() {
        bail!("--kubeconfig is required\n{USAGE}");
    }
    Ok(opts)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.to_string().contains(USAGE) {
                2
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}

async fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let emu = Emulator::start(opts).await?;
    eprintln!(
        "kube-emulator: serving {} (kubeconfig {})",
        emu.url(),
        emu.kubeconfig_path().display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("kube-emulator: shutting down");
    emu.shutdown().await;
    Ok(())
}
