//! `kube-emulator`: run the emulated Kubernetes API server standalone.
//!
//! `kube-emulator serve --kubeconfig FILE [--port N] [--data-dir DIR] [--minor N] [--token T]
//! [--propagation-delay DURATION [--propagation-proxies N] [--propagation-stuck NAME]...]
//! [--service-proxy NS/NAME:PORT=HOST:PORT]...`

use anyhow::{bail, Context, Result};
use kube_emulator::{Emulator, Options, Propagation};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

const USAGE: &str = "usage: kube-emulator serve --kubeconfig FILE [--port N] [--data-dir DIR] [--minor N] [--token TOKEN] [--propagation-delay DURATION] [--propagation-proxies N] [--propagation-stuck NAME]... [--service-proxy NS/NAME:PORT=HOST:PORT]...";

/// `kube-emulator serve --help` (and `kube-emulator --help`).
const HELP: &str = "\
kube-emulator serve: run the emulated Kubernetes API server on 127.0.0.1 until Ctrl-C or SIGTERM.

usage: kube-emulator serve --kubeconfig FILE [--port N] [--data-dir DIR] [--minor N] [--token TOKEN]
                          [--service-proxy NS/NAME:PORT=HOST:PORT]...

Flags:
  --kubeconfig FILE  write a kubeconfig for kubectl and kube-rs here (required)
  --port N           port to listen on (default: a free one)
  --data-dir DIR     keep the cluster's objects in DIR, and load them from it at start
  --minor N          the Kubernetes minor version /version reports (default 33; it chooses kubectl 1.N)
  --token TOKEN      the bearer token clients must send (default: a random one)
  --service-proxy NS/NAME:PORT=HOST:PORT
                     serve the Service proxy subresource
                     /api/v1/namespaces/NS/services/NAME:PORT/proxy/... by forwarding to
                     http://HOST:PORT (repeatable; the Service NS/NAME must exist and list PORT)
  -h, --help         print this help";

/// One `--service-proxy NS/NAME:PORT=HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceProxy {
    namespace: String,
    service: String,
    port: u16,
    target: SocketAddr,
}

fn parse_service_proxy(text: &str) -> Result<ServiceProxy> {
    let form = || format!("--service-proxy {text:?}: expected NS/NAME:PORT=HOST:PORT");
    let (service, target) = text.split_once('=').with_context(form)?;
    let (namespace, service) = service.split_once('/').with_context(form)?;
    let (service, port) = service.split_once(':').with_context(form)?;
    if namespace.is_empty() || service.is_empty() {
        bail!(form());
    }
    let port: u16 = port.parse().with_context(form)?;
    let target = target
        .to_socket_addrs()
        .with_context(form)?
        .next()
        .with_context(form)?;
    Ok(ServiceProxy {
        namespace: namespace.to_string(),
        service: service.to_string(),
        port,
        target,
    })
}

fn parse(args: &[String]) -> Result<(Options, Vec<ServiceProxy>)> {
    let mut opts = Options {
        record_states: false,
        ..Options::default()
    };
    let mut propagation: Option<Propagation> = None;
    let mut proxies = None;
    let mut stuck = Vec::new();
    let mut service_proxies = Vec::new();
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
            "--propagation-delay" => {
                let delay = parse_duration(&value()?).context("--propagation-delay")?;
                propagation
                    .get_or_insert_with(|| Propagation::after(delay))
                    .delay = delay;
            }
            "--propagation-proxies" => {
                let n: u32 = value()?
                    .parse()
                    .context("--propagation-proxies must be a number")?;
                if n == 0 {
                    bail!("--propagation-proxies must be at least 1");
                }
                proxies = Some(n);
            }
            "--propagation-stuck" => stuck.push(value()?),
            "--service-proxy" => service_proxies.push(parse_service_proxy(&value()?)?),
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    if opts.kubeconfig.is_none() {
        bail!("--kubeconfig is required\n{USAGE}");
    }
    if propagation.is_none() && (proxies.is_some() || !stuck.is_empty()) {
        bail!("--propagation-proxies and --propagation-stuck need --propagation-delay\n{USAGE}");
    }
    if let Some(p) = &mut propagation {
        p.proxies = proxies.unwrap_or(p.proxies);
        p.stuck = stuck;
    }
    opts.propagation = propagation;
    Ok((opts, service_proxies))
}

/// `250ms`, `2s`, `1m`: a number with the unit `ms`, `s` or `m`.
fn parse_duration(text: &str) -> Result<std::time::Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        bail!("{text:?} is not a duration (a number with the unit ms, s or m, e.g. 500ms or 2s)")
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration (e.g. 500ms or 2s)"))?;
    Ok(std::time::Duration::from_millis(n * scale))
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
    let (opts, service_proxies) = parse(args)?;
    let emu = Emulator::start(opts).await?;
    for p in &service_proxies {
        emu.register_service_proxy(&p.namespace, &p.service, p.port, p.target);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_proxy_flags_register_targets() {
        let (_, proxies) = parse(&args(&[
            "serve",
            "--kubeconfig",
            "k",
            "--service-proxy",
            "istio-system/prometheus:9090=127.0.0.1:41234",
            "--service-proxy=shop/web:80=127.0.0.1:8080",
        ]))
        .unwrap();
        assert_eq!(
            proxies,
            vec![
                ServiceProxy {
                    namespace: "istio-system".into(),
                    service: "prometheus".into(),
                    port: 9090,
                    target: "127.0.0.1:41234".parse().unwrap(),
                },
                ServiceProxy {
                    namespace: "shop".into(),
                    service: "web".into(),
                    port: 80,
                    target: "127.0.0.1:8080".parse().unwrap(),
                },
            ]
        );
        let err = parse(&args(&[
            "serve",
            "--kubeconfig",
            "k",
            "--service-proxy",
            "prometheus:9090=127.0.0.1:1",
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--service-proxy \"prometheus:9090=127.0.0.1:1\": expected NS/NAME:PORT=HOST:PORT"
        );
        assert!(HELP.contains("--service-proxy NS/NAME:PORT=HOST:PORT"));
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn propagation_flags_configure_the_status_writer() {
        let opts = parse(&args(&[
            "serve",
            "--kubeconfig",
            "k",
            "--propagation-delay=250ms",
            "--propagation-stuck",
            "frontend",
            "--propagation-proxies",
            "122",
        ]))
        .unwrap()
        .0;
        assert_eq!(
            opts.propagation,
            Some(Propagation {
                delay: std::time::Duration::from_millis(250),
                proxies: 122,
                stuck: vec!["frontend".to_string()],
            })
        );
        let opts = parse(&args(&["serve", "--kubeconfig", "k"])).unwrap().0;
        assert_eq!(opts.propagation, None);
        let err = parse(&args(&[
            "serve",
            "--kubeconfig",
            "k",
            "--propagation-stuck",
            "x",
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--propagation-proxies and --propagation-stuck need --propagation-delay\n{USAGE}"
            )
        );
        let err = parse(&args(&[
            "serve",
            "--kubeconfig",
            "k",
            "--propagation-delay",
            "soon",
        ]))
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "--propagation-delay: \"soon\" is not a duration (a number with the unit ms, s or m, e.g. 500ms or 2s)"
        );
    }
}
