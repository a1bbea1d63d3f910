//! `kubectl canary lint`: pre-flight checks on the live cluster, on files, or both.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use owo_colors::{OwoColorize, Stream::Stdout};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{GlobalArgs, OutputFormat};
use crate::cluster::{self, Cluster};
use crate::lint::{self, Finding, Inventory, LintContext, Severity};
use crate::manifest;
use crate::spec::{self, Release};

/// Arguments of `lint`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when nothing at or above --fail-on was found, 1 otherwise.\n\n\
Examples:\n  kubectl canary lint -n shop                      # the live namespace\n  \
kubectl canary lint --local -f manifests/         # files only, no cluster\n  \
kubectl canary lint -n shop -f new-routes.yaml    # the cluster as it would be with these files\n  \
kubectl canary lint -f release.yaml               # is the cluster ready for this release?"
)]
pub struct LintArgs {
    /// Objects to check (files, directories, or - for stdin), added to what the cluster has. A
    /// release spec (kind: Release) among them is checked against them: its services and
    /// versions must exist; its namespace becomes the default namespace.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Files only or cluster too; Istio's root namespace.
    #[command(flatten)]
    pub source: super::flags::ObjectSourceArgs,
    /// Lowest severity that makes the command exit 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error, value_name = "SEVERITY")]
    pub fail_on: FailOn,
    /// Print findings as JSON or YAML.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// `--fail-on` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Fail on errors only.
    Error,
    /// Fail on warnings and errors.
    Warning,
}

/// Gather the inventory (cluster and/or files), run the checks, print, and fail per --fail-on.
pub async fn run(args: LintArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (inventory, ctx, scope) = gather(
        &args.files,
        args.source.local,
        &args.source.istio_namespace,
        global,
    )
    .await?;
    let findings = lint::run(&inventory, &ctx);
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(format) => {
            let doc = json!({"findings": findings, "summary": summary(&findings)});
            super::write_value(&mut out, &doc, format)?;
        }
        None => print_human(&mut out, &findings, &scope)?,
    }
    out.flush()?;
    let threshold = match args.fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
    };
    let failing = findings.iter().filter(|f| f.severity >= threshold).count();
    if failing > 0 {
        anyhow::bail!(
            "lint found {failing} problem{} at or above {}",
            if failing == 1 { "" } else { "s" },
            threshold
        );
    }
    Ok(())
}

/// Read files and (unless `local`) the live namespace into one inventory with its context, and
/// say what was analysed.
///
/// A file whose document is a release spec (`kind: Release`, [`crate::spec::API_VERSION`]) is
/// read with [`spec::parse_str`] and becomes [`LintContext::release`], so the release checks run;
/// its namespace is the default namespace (`-n` naming another one is an error). Objects without
/// `metadata.namespace` are placed in the namespace the command acts in, as `kubectl apply -f`
/// does.
pub(crate) async fn gather(
    files: &[PathBuf],
    local: bool,
    istio_namespace: &str,
    global: &GlobalArgs,
) -> anyhow::Result<(Inventory, LintContext, String)> {
    let mut ctx = LintContext {
        root_namespace: istio_namespace.to_string(),
        ..LintContext::default()
    };
    let inputs = read_inputs(files)?;
    let release = match inputs.releases.as_slice() {
        [] => None,
        [one] => Some(one),
        many => anyhow::bail!(
            "{} release specs given ({}); lint checks one release at a time",
            many.len(),
            many.iter()
                .map(|(_, origin)| origin.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut namespace = global.namespace.clone();
    if let Some((release, origin)) = release {
        match &namespace {
            Some(ns) if ns != release.namespace() => anyhow::bail!(
                "-n {ns} differs from the namespace of release {} ({origin}: metadata.namespace \
                 is {}); drop -n or correct the spec",
                release.name(),
                release.namespace()
            ),
            _ => namespace = Some(release.namespace().to_string()),
        }
        ctx.release = Some(release.release_info());
        ctx.canaries_to_create = release
            .spec
            .services
            .iter()
            .filter(|s| s.canary.image.is_some())
            .map(|s| s.name.clone())
            .collect();
    }
    let mut inventory = Inventory::default();
    let mut scope = Vec::new();
    if !local {
        let mut options = global.connect_options();
        options.namespace = namespace.clone();
        let cluster = Cluster::connect(&options).await?;
        // The error names the request and the namespace already.
        inventory =
            Inventory::from_objects(cluster::inventory::read(&cluster, istio_namespace).await?);
        ctx.pods_known = true;
        ctx.gateways_known = true;
        scope.push(format!("namespace {}", cluster.namespace));
        namespace = Some(cluster.namespace.clone());
    }
    if !files.is_empty() {
        for mut object in inputs.objects {
            ctx.input_findings.extend(lint::local::unknown_kind(
                &object,
                spec::API_VERSION,
                spec::KIND,
            ));
            if let Some(ns) = &namespace {
                default_namespace(&mut object, ns);
            }
            inventory.add(object);
        }
        ctx.gateways_known |= !inventory.gateways.is_empty();
        ctx.pods_known |= !inventory.pods.is_empty();
        scope.push(
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    Ok((inventory, ctx, scope.join(" + ")))
}

/// What `-f` gave: Kubernetes objects, and the release specs with where they came from.
#[derive(Debug, Default)]
struct Inputs {
    objects: Vec<Value>,
    releases: Vec<(Release, String)>,
}

/// Read every `-f` path (files, directories, `-` for stdin), telling release specs from objects.
fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let text = manifest::read_bounded(path, "-")?;
            inputs.add_text(&text, "-")?;
        } else if path.is_dir() {
            for file in manifest::dir_files(path)? {
                inputs.add_file(&file)?;
            }
        } else {
            inputs.add_file(path)?;
        }
    }
    Ok(inputs)
}

impl Inputs {
    fn add_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let origin = path.display().to_string();
        let text = manifest::read_bounded(path, &origin)?;
        self.add_text(&text, &origin)
    }

    fn add_text(&mut self, text: &str, origin: &str) -> anyhow::Result<()> {
        let (documents, releases) = count_documents(text);
        if releases == 0 {
            let objects = manifest::parse_stream(text, origin)?;
            self.objects.extend(objects.into_iter().map(|s| s.object));
        } else if documents == 1 {
            let release = spec::parse_str(text, origin)?;
            super::policy_decider::check_config(&release.spec.policy, None)
                .with_context(|| origin.to_string())?;
            self.releases.push((release, origin.to_string()));
        } else {
            anyhow::bail!(
                "{origin}: a release spec (kind: Release) must be the only document in its file; \
                 move the other {} document{} to another file",
                documents - 1,
                if documents == 2 { "" } else { "s" }
            );
        }
        Ok(())
    }
}

/// The number of non-empty documents in a YAML stream and how many of them are release specs.
/// Text that is not YAML counts as no release (the manifest reader reports the syntax error).
fn count_documents(text: &str) -> (usize, usize) {
    let mut documents = 0;
    let mut releases = 0;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let Ok(value) = Value::deserialize(doc) else {
            return (documents, 0);
        };
        if value.is_null() {
            continue;
        }
        documents += 1;
        if is_release(&value) {
            releases += 1;
        }
    }
    (documents, releases)
}

/// `kind: Release` in our API group (or without apiVersion, so a spec missing it still gets the
/// spec's own error).
fn is_release(value: &Value) -> bool {
    let group_ok = match value.get("apiVersion").and_then(Value::as_str) {
        None => true,
        Some(api_version) => api_version.split('/').next() == spec::API_VERSION.split('/').next(),
    };
    value.get("kind").and_then(Value::as_str) == Some(spec::KIND) && group_ok
}

/// Set `metadata.namespace` to `ns` when a namespaced object has none.
fn default_namespace(object: &mut Value, ns: &str) {
    if object.get("kind").and_then(Value::as_str) == Some("Namespace") {
        return;
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata
            .entry("namespace")
            .or_insert_with(|| Value::String(ns.to_string()));
    }
}

fn summary(findings: &[Finding]) -> serde_json::Value {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    json!({"errors": count(Severity::Error), "warnings": count(Severity::Warning), "infos": count(Severity::Info)})
}

fn print_human(out: &mut impl Write, findings: &[Finding], scope: &str) -> std::io::Result<()> {
    if findings.is_empty() {
        return writeln!(
            out,
            "{} no problems found in {scope}",
            "✔".if_supports_color(Stdout, |t| t.green())
        );
    }
    for f in findings.iter().take(crate::bounds::MAX_LISTED) {
        let severity = match f.severity {
            Severity::Error => "Error".if_supports_color(Stdout, |t| t.red()).to_string(),
            Severity::Warning => "Warning"
                .if_supports_color(Stdout, |t| t.yellow())
                .to_string(),
            Severity::Info => "Info".to_string(),
        };
        let place = match &f.field {
            Some(field) => format!("{} {field}", f.object),
            None => f.object.clone(),
        };
        writeln!(out, "{severity} [{}] ({place}) {}", f.code, f.message)?;
        if !f.fix.is_empty() {
            writeln!(out, "    fix: {}", f.fix)?;
        }
    }
    if findings.len() > crate::bounds::MAX_LISTED {
        writeln!(
            out,
            "{} (-o json lists every finding)",
            crate::bounds::more_line(findings.len() - crate::bounds::MAX_LISTED)
        )?;
    }
    let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
    writeln!(
        out,
        "{}, {} in {scope}",
        plural(count(Severity::Error), "error"),
        plural(count(Severity::Warning), "warning")
    )
}

fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
