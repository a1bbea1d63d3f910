//! Istio's own verdicts (`../shared/fixtures/istio-oracle`, read in place, never copied) as
//! project tests, so agreement cannot regress:
//!
//! - routing: every request of `istio-routing/manifest.json` through `kubectl-canary explain -o
//!   json`, compared on outcome, decisive rule and destinations as the fixture's runner compares
//!   them;
//! - validation: every object of `istio-validation/manifest.json` applied with the real `kubectl
//!   apply --server-side` to ONE emulated cluster with Istio's CRD bundle installed (one kubectl
//!   run for all cases: each object is still its own server-side apply; the warning-only cases
//!   run one by one to see their `Warning:`), admitted exactly when Istio admits it;
//! - lint: every validation object through `lint --local`'s checks, in-process: an error finding
//!   (other than the reference checks) exactly when Istio refuses the object.
//!
//! Without the fixture or kubectl the tests skip with a message, except under `CI=true`, where
//! they fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kube_emulator::testing::require;
use kube_emulator::{Emulator, Options};
use kubectl_canary::lint::{self, Inventory, LintContext, Severity};
use serde_json::Value;

/// Lint codes about references and cluster state rather than the object's own validity (the
/// fixture runner's `REFERENCE_CODES`).
const REFERENCE_CODES: [&str; 5] = ["IST0101", "IST0102", "IST0109", "IST0113", "IST0118"];
const PERCENT_TOLERANCE: f64 = 0.6;

/// `../shared/fixtures/istio-oracle` beside the checkout; when absent, a skip locally and a
/// failure under `CI=true` ([`kube_emulator::testing::require`]).
#[track_caller]
fn oracle_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/istio-oracle");
    require(
        dir.join("README.md").exists().then_some(dir),
        "../shared/fixtures/istio-oracle",
    )
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn host_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    a == b
        || (!a.contains('.') && b.starts_with(&format!("{a}.")))
        || (!b.contains('.') && a.starts_with(&format!("{b}.")))
}

/// `(host, subset, percent)` of the destinations with traffic.
fn shares(list: &Value) -> Vec<(String, Option<String>, f64)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let percent = d["percent"].as_f64().unwrap_or(0.0);
            (percent > 0.0).then(|| {
                (
                    d["host"].as_str().unwrap_or("").to_string(),
                    d["subset"].as_str().map(str::to_string),
                    percent,
                )
            })
        })
        .collect()
}

fn same_destinations(expected: &Value, actual: &Value) -> bool {
    let (want, mut have) = (shares(expected), shares(actual));
    want.len() == have.len()
        && want.iter().all(|(h, s, p)| {
            match have.iter().position(|(ah, as_, ap)| {
                host_eq(h, ah) && s == as_ && (p - ap).abs() <= PERCENT_TOLERANCE
            }) {
                Some(i) => {
                    have.remove(i);
                    true
                }
                None => false,
            }
        })
}

#[test]
fn routing_agrees_with_istio() {
    let Some(oracle) = oracle_dir() else {
        return;
    };
    let dir = oracle.join("istio-routing");
    let cases = read_json(&dir.join("manifest.json"));
    let cases = cases.as_array().expect("manifest is a list");
    let mut disagreements = Vec::new();
    for case in cases {
        let objects = dir.join(case["objects"].as_str().expect("objects"));
        let args: Vec<&str> = case["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("arg"))
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-canary"))
            .arg("explain")
            .arg("-f")
            .arg(&objects)
            .args(&args)
            .args(["-o", "json"])
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl-canary explain");
        let what = format!(
            "{} {}",
            case["objects"].as_str().unwrap_or(""),
            args.join(" ")
        );
        let got: Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(_) => {
                disagreements.push(format!(
                    "{what}: no JSON ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                continue;
            }
        };
        let default_check = serde_json::json!(["outcome", "rule", "destinations"]);
        let check = case.get("check").unwrap_or(&default_check);
        let checks = |k: &str| check.as_array().is_some_and(|c| c.iter().any(|x| x == k));
        let mut problems = Vec::new();
        if checks("outcome") && got["outcome"] != case["outcome"] {
            problems.push(format!(
                "outcome {} (Istio: {})",
                got["outcome"], case["outcome"]
            ));
        }
        if checks("rule") && !case["rule"].is_null() && got["rule"] != case["rule"] {
            problems.push(format!("rule {} (Istio: {})", got["rule"], case["rule"]));
        }
        if checks("destinations")
            && !case["destinations"].is_null()
            && case["outcome"] == "route"
            && !same_destinations(&case["destinations"], &got["destinations"])
        {
            problems.push(format!(
                "destinations {} (Istio: {})",
                got["destinations"], case["destinations"]
            ));
        }
        if !problems.is_empty() {
            disagreements.push(format!("{what}: {}", problems.join("; ")));
        }
    }
    assert!(
        disagreements.is_empty(),
        "explain disagrees with Istio on {} of {} requests:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
}

/// One validation case: the file, its object, and Istio's verdict.
struct ValidationCase {
    file: PathBuf,
    object: Value,
    valid: bool,
    warning_only: bool,
    /// What Istio's refusal message contains, when the case says.
    error_substring: Option<String>,
}

fn validation_cases(oracle: &Path) -> Vec<ValidationCase> {
    let dir = oracle.join("istio-validation");
    let manifest = read_json(&dir.join("manifest.json"));
    manifest
        .as_array()
        .expect("manifest is a list")
        .iter()
        .map(|c| {
            let file = dir.join(c["file"].as_str().expect("file"));
            let mut docs = documents(&file);
            assert_eq!(docs.len(), 1, "{}: one object per case", file.display());
            ValidationCase {
                file,
                object: docs.remove(0),
                valid: c["valid"].as_bool().expect("valid"),
                warning_only: c["warning_only"].as_bool().unwrap_or(false),
                error_substring: c["error_substring"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// `virtualservice.networking.istio.io/NAME`, as kubectl names an applied object.
fn applied_name(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("").to_ascii_lowercase();
    let group = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("");
    format!(
        "{kind}.{group}/{}",
        object["metadata"]["name"].as_str().unwrap_or("")
    )
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl")
}

#[test]
fn emulated_istiod_agrees_with_istio_validation() {
    let Some(oracle) = oracle_dir() else {
        return;
    };
    let system_kubectl = Path::new("/usr/bin/kubectl");
    if require(system_kubectl.exists().then_some(()), "/usr/bin/kubectl").is_none() {
        return;
    }
    let crds = oracle.join("../istio/customresourcedefinitions.gen.yaml");
    let cases = validation_cases(&oracle);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("start the emulator");
    let kc = emu.kubeconfig_path().to_path_buf();
    let out = kubectl(
        &kc,
        &[
            "apply",
            "--server-side",
            "-f",
            crds.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "CRD install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kubectl(&kc, &["create", "namespace", "oracle"]);
    assert!(
        out.status.success(),
        "namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // All cases in one kubectl run: kubectl applies each object on its own and goes on after a
    // refusal; the objects it names as applied are the admitted ones.
    let mut args = vec!["apply", "--server-side", "--field-manager", "istio-oracle"];
    for case in &cases {
        args.push("-f");
        args.push(case.file.to_str().expect("utf-8 path"));
    }
    let out = kubectl(&kc, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let applied: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_suffix(" serverside-applied"))
        .collect();
    let refusals = stderr
        .lines()
        .filter(|l| l.starts_with("Error from server"))
        .count();
    let mut disagreements = Vec::new();
    for case in &cases {
        let accepted = applied.contains(&applied_name(&case.object).as_str());
        if accepted != case.valid {
            disagreements.push(format!(
                "{}: Istio {}, the emulator {}",
                case.file.file_name().unwrap_or_default().to_string_lossy(),
                if case.valid { "admits" } else { "refuses" },
                if accepted { "admitted" } else { "refused" },
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "the emulated istiod disagrees on {} of {} objects:\n{}\n--- kubectl stderr\n{stderr}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
    assert_eq!(
        applied.len() + refusals,
        cases.len(),
        "every object is either applied or refused once\n--- stderr\n{stderr}"
    );
    // A refusal is the apiserver's answer for a denying webhook (or the schema's 422).
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("Error from server"))
    {
        assert!(
            line.contains("admission webhook \"validation.istio.io\" denied the request: configuration is invalid: ")
                || line.contains(" is invalid: "),
            "not a validation answer: {line}"
        );
    }
    // kubectl reports the refusals in the order of its -f files, so the n-th refused case owns
    // the n-th answer; each quotes Istio's own words where the case names them.
    let answers: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Error from server"))
        .collect();
    let refused: Vec<&ValidationCase> = cases
        .iter()
        .filter(|c| !applied.contains(&applied_name(&c.object).as_str()))
        .collect();
    let misquoted: Vec<String> = refused
        .iter()
        .zip(&answers)
        .filter_map(|(case, answer)| {
            let want = case.error_substring.as_deref()?;
            (!answer.to_lowercase().contains(&want.to_lowercase())).then(|| {
                format!(
                    "{}: want {want:?} in: {answer}",
                    case.file.file_name().unwrap_or_default().to_string_lossy()
                )
            })
        })
        .collect();
    assert!(
        misquoted.is_empty(),
        "refusals without Istio's message:\n{}",
        misquoted.join("\n")
    );
    // The warning-only cases are admitted with a `Warning:` kubectl prints.
    for case in cases.iter().filter(|c| c.warning_only) {
        let out = kubectl(
            &kc,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "istio-oracle-warnings",
                "--force-conflicts",
                "-f",
                case.file.to_str().expect("utf-8 path"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.starts_with("Warning: "),
            "{}: expected admitted with a Warning, got {:?}: {stderr}",
            case.file.display(),
            out.status.code()
        );
    }
    rt.block_on(emu.shutdown());
}

#[test]
fn lint_local_agrees_with_istio_validation() {
    let Some(oracle) = oracle_dir() else {
        return;
    };
    let mut disagreements = Vec::new();
    let cases = validation_cases(&oracle);
    for case in &cases {
        let inventory = Inventory::from_objects([case.object.clone()]);
        let ctx = LintContext {
            root_namespace: "istio-system".to_string(),
            input_findings: lint::local::unknown_kind(
                &case.object,
                kubectl_canary::spec::API_VERSION,
                kubectl_canary::spec::KIND,
            )
            .into_iter()
            .collect(),
            ..LintContext::default()
        };
        let own_errors: BTreeMap<String, String> = lint::run(&inventory, &ctx)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .filter(|f| !REFERENCE_CODES.contains(&f.code.as_str()))
            .map(|f| (f.field.unwrap_or_default(), f.message))
            .collect();
        if own_errors.is_empty() != case.valid {
            disagreements.push(format!(
                "{}: Istio {}, lint {}",
                case.file.file_name().unwrap_or_default().to_string_lossy(),
                if case.valid { "admits" } else { "refuses" },
                if own_errors.is_empty() {
                    "finds no error".to_string()
                } else {
                    format!("finds {own_errors:?}")
                },
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "lint --local disagrees with Istio on {} of {} objects:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
}
