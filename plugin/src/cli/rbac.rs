//! `kubectl canary rbac [--runner]`: the least Role the commands (or the runner) need.

use std::io::Write;

use clap::Args;

use super::{GlobalArgs, OutputFormat};
use crate::cluster::rbac;

/// Arguments of `rbac`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl canary rbac -n shop | kubectl apply -f -\n  \
kubectl canary rbac --runner -n shop          # what `kubectl canary runner` needs\n\n\
Bind the Role to the operator's user or group with a RoleBinding, e.g.\n  \
kubectl create rolebinding kubectl-canary --role kubectl-canary --user alice -n shop\n\
Namespace-scoped: no cluster-wide right is needed."
)]
pub struct RbacArgs {
    /// The Role the in-cluster runner needs instead of the operator's.
    #[arg(long)]
    pub runner: bool,
    /// The Role's name (default: kubectl-canary, or kubectl-canary-runner with --runner).
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,
    /// Print the Role as plain JSON or YAML (default: YAML with a comment per rule).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// The namespace of `-n`, else the kubeconfig context's, else `default` (nothing is sent).
pub(crate) async fn namespace(global: &GlobalArgs) -> String {
    if let Some(ns) = &global.namespace {
        return ns.clone();
    }
    match crate::cluster::Cluster::connect(&global.connect_options()).await {
        Ok(cluster) => cluster.namespace,
        Err(_) => "default".to_string(),
    }
}

/// Print the Role.
pub async fn run(args: RbacArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let namespace = namespace(global).await;
    let (rules, default_name) = if args.runner {
        (rbac::RUNNER, crate::runner::install::NAME)
    } else {
        (rbac::OPERATOR, "kubectl-canary")
    };
    let name = args.role_name.as_deref().unwrap_or(default_name);
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(format) => super::write_value(&mut out, &rbac::role(name, &namespace, rules), format)?,
        None => write!(out, "{}", rbac::role_yaml(name, &namespace, rules))?,
    }
    Ok(out.flush()?)
}
