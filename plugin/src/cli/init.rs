//! `kubectl canary init`: scaffold a release spec from the live Services, Deployments and
//! VirtualServices of a namespace.

use std::io::Write;

use anyhow::Context;
use clap::Args;

use super::{GlobalArgs, OutputFormat};
use crate::cluster::{self, resources, Cluster, ClusterError};
use crate::spec::scaffold::{self, Objects, Options, Target};

/// Arguments of `init`.
#[derive(Debug, Args)]
#[command(after_help = "\
How stable and canary are chosen, per service: the Deployments whose pod template labels carry \
the Service's selector are its versions (label `version`, else `app.kubernetes.io/version`).\n\
  one version deployed   it is stable; --canary-version names the new one (add --image to have \
`start` create it by cloning the stable Deployment)\n\
  two versions deployed  the lower in natural order (v1 < v2 < v10, 1.9 < 1.10) is stable, the \
other canary, unless a flag names one of them\n\
  more than two          pass both --stable-version and --canary-version\n\n\
Examples:\n  kubectl canary init reviews -n shop > release.yaml\n  \
kubectl canary init deployment/nginx -n demo --canary-version v2 --image nginx:1.15\n  \
kubectl canary init voting-app voting-analytics voting-storage -n voting   # a chained release")]
pub struct InitArgs {
    /// The services to release: NAME, service/NAME or deployment/NAME (the service selecting
    /// its pods). Several make one release; the first is the entry unless gateways say otherwise.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// The canary version (required when only one version is deployed).
    #[arg(long, value_name = "VERSION")]
    pub canary_version: Option<String>,
    /// The stable version (required when more than two versions are deployed).
    #[arg(long, value_name = "VERSION")]
    pub stable_version: Option<String>,
    /// Have `start` create the canary Deployment by cloning the stable one with this image.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Release name (default: <first service>-<canary subset>, e.g. reviews-v2).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// yaml (default): the spec with explanatory comments; json: the spec as JSON.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// Read the namespace, scaffold the spec and print it.
pub async fn run(args: InitArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let cluster = Cluster::connect(&global.connect_options()).await?;
    let ns = cluster.namespace.clone();
    match cluster::inventory::get_namespace(&cluster, &ns).await {
        Ok(_) => {}
        // Namespace-scoped rights may not read the Namespace object; the lists below still tell.
        Err(e) if e.status_code() == Some(403) => {}
        Err(e) => return Err(e.into()),
    }
    let services = cluster::inventory::list(&cluster, resources::SERVICE, Some(&ns)).await?;
    let deployments = cluster::inventory::list(&cluster, resources::DEPLOYMENT, Some(&ns)).await?;
    let virtual_services = virtual_services(&cluster, &ns).await?;
    let objects = Objects {
        namespace: &ns,
        services: &services,
        deployments: &deployments,
        virtual_services: &virtual_services,
    };
    let options = Options {
        canary_version: args.canary_version,
        stable_version: args.stable_version,
        image: args.image,
        name: args.name,
    };
    let scaffold = scaffold::scaffold(&objects, &targets, &options)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        None | Some(OutputFormat::Yaml) => write!(out, "{}", scaffold.text)?,
        Some(OutputFormat::Json) => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&scaffold.release).context("encode the spec")?
        )?,
    }
    Ok(out.flush()?)
}

/// The namespace's VirtualServices; none (with a warning) when Istio's kinds are not served or
/// not readable, since they only fill in gateways.
async fn virtual_services(
    cluster: &Cluster,
    ns: &str,
) -> Result<Vec<serde_json::Value>, ClusterError> {
    match cluster::inventory::list(cluster, resources::VIRTUAL_SERVICE, Some(ns)).await {
        Ok(items) => Ok(items),
        Err(e) if matches!(e.status_code(), Some(403 | 404)) => {
            eprintln!("warning: {e}; gateways are not filled in");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}
