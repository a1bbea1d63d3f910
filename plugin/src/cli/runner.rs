//! `kubectl canary runner`: drive the releases handed over with `run --detach`, in a cluster
//! (or from any machine), with leader election; `runner install` prints its manifests.
//! Also the hand-over itself (`run --detach`, `run --attach`) and the `get` line naming the
//! driver, so that the call sites in `release.rs` and `get.rs` stay one line each.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};

use super::flags::{CacheArgs, FieldManagerArgs};
use super::propagation::{PropagationArgs, TerminalProgress};
use super::release::RunArgs;
use super::{GlobalArgs, MutationArgs, OutputFormat};
use crate::cluster::connect::{client_for, RequestObserver};
use crate::cluster::Cluster;
use crate::release::driver::Driver;
use crate::release::record::ReleaseRecord;
use crate::release::Decider;
use crate::runner::install::{self, InstallOptions};
use crate::runner::lease::LeaseConfig;
use crate::runner::metrics::Metrics;
use crate::runner::{PropagationSetup, Runner, RunnerOptions};

/// Arguments of `runner`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  kubectl canary runner -n shop --metrics-address 127.0.0.1:8080\n  \
kubectl canary run web-v2 -n shop --detach      # hand a release to the runner\n  \
kubectl canary runner install -n shop --image registry.example/kubectl-canary:0.1.0 --dry-run=client -o yaml\n\n\
The runner drives only the releases handed to it with `run --detach` (their state ConfigMap \
is labelled canary.kubectl.dev/driver=runner), found by one WATCH. Several replicas may run: \
one holds the Lease and acts, the others stand by. SIGTERM finishes the decision in flight, \
releases the Lease and exits 0."
)]
pub struct RunnerArgs {
    /// `install`: print or apply the runner's manifests.
    #[command(subcommand)]
    pub command: Option<RunnerCommand>,
    /// How the runner runs.
    #[command(flatten)]
    pub run: RunnerRunArgs,
}

/// Subcommands of `runner`.
#[derive(Debug, Subcommand)]
pub enum RunnerCommand {
    /// Print (or apply) the runner's ServiceAccount, Role, RoleBinding and Deployment.
    Install(InstallArgs),
}

/// Flags of the long-running mode.
#[derive(Debug, Args)]
pub struct RunnerRunArgs {
    /// Drive the releases of every namespace (needs the Role's rules as a ClusterRole).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only the releases whose state ConfigMap matches this label selector too.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// This replica's identity in the Lease (default: $POD_NAME, else host name and pid).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// The Lease's name.
    #[arg(long, default_value = install::NAME, value_name = "NAME")]
    pub lease_name: String,
    /// The Lease's namespace (default: -n, else the context's or service account's namespace).
    #[arg(long, value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long the Lease stays held without renewal: the longest a failover takes.
    #[arg(long, default_value = "15s", value_parser = super::flags::duration, value_name = "DURATION")]
    pub lease_duration: Duration,
    /// The leader stops acting when it has not renewed for this long (< --lease-duration).
    #[arg(long, default_value = "10s", value_parser = super::flags::duration, value_name = "DURATION")]
    pub renew_deadline: Duration,
    /// How often to renew (leader) or try to acquire (standby).
    #[arg(long, default_value = "2s", value_parser = super::flags::duration, value_name = "DURATION")]
    pub retry_period: Duration,
    /// Wait between decisions when the policy does not say.
    #[arg(long, default_value = "30s", value_parser = super::flags::duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Where to serve /healthz, /readyz and /metrics (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDRESS")]
    pub metrics_address: SocketAddr,
    /// Field manager for server-side apply.
    #[command(flatten)]
    pub manager: FieldManagerArgs,
    /// Policy cache and limits.
    #[command(flatten)]
    pub policy: CacheArgs,
    /// Confirming changes at the data plane (as `run`).
    #[command(flatten)]
    pub propagation: PropagationArgs,
}

/// Arguments of `runner install`.
#[derive(Debug, Args)]
#[command(
    after_help = "The image must have `kubectl-canary` as its entry point (see the \
README's \"In-cluster runner\" section to build one from the release archive)."
)]
pub struct InstallArgs {
    /// The container image (e.g. registry.example/kubectl-canary:0.1.0).
    #[arg(long, value_name = "REF")]
    pub image: String,
    /// Replicas: one leads, the others stand by.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub replicas: u32,
    /// The port of /healthz, /readyz and /metrics in the pod.
    #[arg(long, default_value_t = 8080)]
    pub metrics_port: u16,
    /// `--dry-run=client -o yaml` prints the manifests (for GitOps); without it they are
    /// applied with server-side apply.
    #[command(flatten)]
    pub mutation: MutationArgs,
}

/// `runner` and `runner install`.
pub async fn run(args: RunnerArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        Some(RunnerCommand::Install(install)) => install_cmd(install, global).await,
        None => serve(args.run, global).await,
    }
}

async fn install_cmd(args: InstallArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let namespace = super::rbac::namespace(global).await;
    let objects = install::manifests(&InstallOptions {
        namespace,
        image: args.image.clone(),
        replicas: args.replicas,
        metrics_port: args.metrics_port,
    });
    match args.mutation.dry_run {
        super::DryRun::Client => {
            let mut out = std::io::stdout().lock();
            super::write_objects(
                &mut out,
                &objects,
                args.mutation.output.unwrap_or(OutputFormat::Yaml),
            )?;
            Ok(out.flush()?)
        }
        dry_run => {
            let cluster = Cluster::connect(&global.connect_options()).await?;
            let mut out = std::io::stdout().lock();
            for object in &objects {
                apply(
                    &cluster,
                    object,
                    &args.mutation.manager.field_manager,
                    dry_run == super::DryRun::Server,
                )
                .await?;
                let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
                writeln!(
                    out,
                    "{kind}/{} serverside-applied{}",
                    install::NAME,
                    if dry_run == super::DryRun::Server {
                        " (server dry run)"
                    } else {
                        ""
                    }
                )?;
            }
            Ok(out.flush()?)
        }
    }
}

/// Server-side apply one of the install manifests.
async fn apply(
    cluster: &Cluster,
    object: &serde_json::Value,
    field_manager: &str,
    dry_run: bool,
) -> anyhow::Result<()> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = format!("{}s", kind.to_lowercase());
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, &plural);
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or(&cluster.namespace);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), namespace, &resource);
    let mut params = PatchParams::apply(field_manager);
    if dry_run {
        params = params.dry_run();
    }
    api.patch(name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| {
            crate::cluster::ClusterError::from_kube(
                "apply",
                crate::cluster::Target::new(kind, namespace, name),
                e,
            )
        })?;
    Ok(())
}

/// The client and its default namespace: the service account's in a pod (no kubeconfig
/// there), else kubectl's rules.
async fn connect(
    global: &GlobalArgs,
    observer: Option<RequestObserver>,
) -> anyhow::Result<(kube::Client, String)> {
    let in_pod = global.kubeconfig.is_none()
        && std::env::var_os("KUBECONFIG").is_none()
        && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if in_pod {
        let config = kube::Config::incluster()
            .map_err(|e| anyhow::anyhow!("cannot use the pod's service account: {e}"))?;
        let namespace = config.default_namespace.clone();
        return Ok((client_for(config, observer)?, namespace));
    }
    let cluster = Cluster::connect_observed(&global.connect_options(), observer).await?;
    Ok((cluster.client, cluster.namespace))
}

/// The policy of a release, compiled once per module content for the runner's lifetime.
fn decider_factory(policy: &CacheArgs) -> crate::runner::DeciderFactory {
    let cache_dir = policy.cache_dir.clone();
    let cache: Mutex<HashMap<String, Arc<dyn Decider>>> = Mutex::new(HashMap::new());
    Box::new(move |record: &ReleaseRecord| {
        let key = format!("{}@{}", record.policy.module, record.policy.sha256);
        if let Some(d) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(d.clone());
        }
        let decider: Arc<dyn Decider> = Arc::from(super::policy_decider::for_record(
            record,
            cache_dir.as_deref(),
        )?);
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, decider.clone());
        Ok(decider)
    })
}

async fn serve(args: RunnerRunArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.all_namespaces && global.namespace.is_some() {
        anyhow::bail!("-n and --all-namespaces exclude each other: pick one");
    }
    // Every API request the runner makes (engine, watch, Lease) is timed for /metrics.
    let metrics = Arc::new(Metrics::default());
    let observer: RequestObserver = {
        let metrics = metrics.clone();
        Arc::new(move |verb, took, status| {
            metrics.api(verb, took.as_secs_f64());
            if status.is_none_or(|code| code >= 500) {
                metrics.error("api");
            }
        })
    };
    let (client, default_namespace) = connect(global, Some(observer)).await?;
    let namespace = global.namespace.clone().unwrap_or(default_namespace);
    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "runner".to_string()),
            std::process::id()
        )
    });
    let options = RunnerOptions {
        namespace: (!args.all_namespaces).then(|| namespace.clone()),
        selector: args.selector.clone(),
        lease: LeaseConfig {
            namespace: args.lease_namespace.clone().unwrap_or(namespace.clone()),
            name: args.lease_name.clone(),
            identity: identity.clone(),
            lease_duration: args.lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
        },
        field_manager: args.manager.field_manager.clone(),
        interval: args.interval,
    };
    let runner = Runner::new(
        client,
        options,
        metrics.clone(),
        decider_factory(&args.policy),
        // Policy reasons reach these lines: no control characters on the terminal or the log.
        |line| {
            let clean: String = line
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            println!("{clean}");
        },
    )?
    .with_propagation(PropagationSetup {
        options: args.propagation.options(),
        // One plain line per wait on standard error, as `run` prints off a terminal.
        progress: Arc::new(TerminalProgress::new(false)),
    });
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (addr, server) = crate::runner::serve::bind(args.metrics_address, metrics, stop_rx.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.metrics_address))?;
    println!(
        "runner {identity}: serving /healthz, /readyz and /metrics on http://{addr}; watching releases in {}",
        if args.all_namespaces {
            "all namespaces".to_string()
        } else {
            format!("namespace {namespace}")
        }
    );
    let signals = tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop.send(true);
    });
    runner.run(stop_rx).await?;
    signals.abort();
    let _ = server.await;
    Ok(())
}

/// `run --detach` and `run --attach`.
pub async fn hand_over(args: &RunArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&global.connect_options()).await?;
    if args.attach {
        crate::runner::attach(&cluster, &args.release).await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "release {} taken back from the runner: the CLI drives it (`kubectl canary run {}` goes on)",
            args.release, args.release
        )?;
        return Ok(out.flush()?);
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let written = crate::runner::detach(&cluster, &args.release, &now).await?;
    let since = written
        .record
        .driver
        .as_ref()
        .map(|d| d.since.clone())
        .unwrap_or(now);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "release {} handed to the runner (since {since}): `kubectl canary runner` in namespace {} drives it; `kubectl canary get {}` shows its decisions",
        args.release, cluster.namespace, args.release
    )?;
    Ok(out.flush()?)
}

/// Refuse to drive a release the runner drives: two drivers would only race.
pub fn refuse_if_detached(record: &ReleaseRecord) -> anyhow::Result<()> {
    match &record.driver {
        Some(driver) if driver.is_runner() => anyhow::bail!(
            "release {name} is driven by the in-cluster runner (handed over at {since}); follow it with `kubectl canary get {name} --watch`, or take it back with `kubectl canary run {name} --attach`",
            name = record.spec.name(),
            since = driver.since
        ),
        _ => Ok(()),
    }
}

/// The `get` line naming who drives the release, if the runner does.
pub fn driver_line(record: &ReleaseRecord) -> Option<String> {
    record.driver.as_ref().filter(|d| d.is_runner()).map(|d: &Driver| {
        format!(
            "Driven by: runner (since {}); its last decision is the last one above — `kubectl canary run {} --attach` takes it back\n",
            d.since,
            record.spec.name()
        )
    })
}
