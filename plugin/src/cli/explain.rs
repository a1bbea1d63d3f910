//! `kubectl canary explain`: which destination a request reaches, and which rule decided.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{GlobalArgs, OutputFormat};
use crate::exit::{CodedError, FAILURE};
use crate::istio::IstioObject;
use crate::manifest;
use crate::sim::{percent_text, GatewayRef, Request, RouteTable, Verdict};
use crate::ui::table::Table;

/// Arguments of `explain`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when the request is routed to a destination; 1 when it \
would fail (404: no route, 503: no subset) or the objects cannot be read.\n\n\
With -o json the result is {\"outcome\": \"route|404|503\", \"rule\": <index in spec.http or \
null>, \"destinations\": [{\"host\", \"subset\", \"percent\"}], ...}.\n\n\
Examples:\n  \
kubectl canary explain -f routes.yaml --host weather.example.com --gateway istio-system/weather-gateway --cookie user=tester\n  \
kubectl canary explain -f routes.yaml --host forecast --source-labels app=frontend,version=v2\n  \
kubectl canary render -f release.yaml | kubectl canary explain -f - --host reviews -o json"
)]
pub struct ExplainArgs {
    /// VirtualServices and DestinationRules (YAML or JSON files, directories, `-` for stdin;
    /// `kind: List` is unpacked). Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// The request's host (`Host` header); `host:port` sets --port too.
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// The port the client puts in the `Host` header, if any.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Path and query string.
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub path: String,
    /// HTTP method.
    #[arg(long, default_value = "GET", value_name = "METHOD")]
    pub method: String,
    /// A request header, `name=value` (names are lower-cased). Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// A cookie, `name=value`, folded into the `cookie` header as browsers do. Repeatable.
    #[arg(long = "cookie", value_name = "NAME=VALUE", value_parser = key_value)]
    pub cookies: Vec<(String, String)>,
    /// Where the request enters: `mesh` (a sidecar) or an ingress gateway `namespace/name`.
    #[arg(long, default_value = "mesh", value_name = "GATEWAY")]
    pub gateway: String,
    /// Labels of the calling workload (mesh traffic), `k=v,k=v`.
    #[arg(long, value_name = "K=V,...", value_delimiter = ',', value_parser = key_value)]
    pub source_labels: Vec<(String, String)>,
    /// Namespace of the calling workload (mesh traffic).
    #[arg(long, value_name = "NAMESPACE")]
    pub source_namespace: Option<String>,
    /// Print the result as JSON or YAML.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// Read the objects, route the request, print the verdict; 404/503 exit 1.
pub fn run(args: ExplainArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let sourced = manifest::read_paths(&args.files)?;
    let mut objects = Vec::new();
    for s in &sourced {
        if let Some(object) = IstioObject::from_value(&s.object).with_context(|| s.path.clone())? {
            objects.push(object);
        }
    }
    let table = RouteTable::new(objects)?;
    let request = request(&args, global);
    let verdict = table.simulate(&request)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(format) => super::write_value(&mut out, &verdict.to_json(), format)?,
        None => print_human(&mut out, &request, &verdict)?,
    }
    out.flush()?;
    if !verdict.outcome.is_route() {
        return Err(CodedError::new(
            FAILURE,
            anyhow::anyhow!(
                "request to {} is not routed: {}",
                request.host,
                verdict.outcome
            ),
        )
        .into());
    }
    Ok(())
}

fn request(args: &ExplainArgs, global: &GlobalArgs) -> Request {
    let (host, port) = match args.host.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host, port.parse().ok()),
        _ => (args.host.as_str(), None),
    };
    let mut request = Request::new(host)
        .path(args.path.clone())
        .gateway(GatewayRef::parse(&args.gateway));
    request.method = args.method.to_ascii_uppercase();
    request.port = args.port.or(port);
    for (name, value) in &args.headers {
        request = request.header(name, value.clone());
    }
    for (name, value) in &args.cookies {
        request = request.cookie(name, value);
    }
    request.source_labels = args
        .source_labels
        .iter()
        .cloned()
        .collect::<BTreeMap<_, _>>();
    request.source_namespace = args.source_namespace.clone();
    request.namespace = global.namespace.clone();
    request
}

fn print_human(out: &mut impl Write, request: &Request, verdict: &Verdict) -> anyhow::Result<()> {
    writeln!(
        out,
        "request: {} {}{} via {}",
        request.method,
        request.authority(),
        request.path,
        request.gateway
    )?;
    for line in verdict.explanation() {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "result: {}", verdict.outcome)?;
    if !verdict.destinations.is_empty() {
        writeln!(out)?;
        let mut table = Table::new(&["host", "subset", "percent", "note"]);
        for d in &verdict.destinations {
            table.row(vec![
                d.host.clone(),
                d.subset.clone().unwrap_or_else(|| "-".to_string()),
                percent_text(d.percent),
                d.missing
                    .clone()
                    .map(|m| format!("503: {m}"))
                    .unwrap_or_default(),
            ]);
        }
        write!(out, "{}", table.render())?;
    }
    Ok(())
}
