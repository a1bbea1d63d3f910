//! Imports run one way (see the layout brief): commands at the top, shared vocabulary at the
//! bottom, and no module reaching back up. This test reads every `crate::<module>` path in the
//! non-test code of `src/<module>/` and fails on an edge the table below does not allow, so a
//! back edge (say `cluster` importing `lint`) cannot creep back in unnoticed.
//!
//! Test code (`tests.rs` files and `#[cfg(test)]` modules) may reach anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Vocabulary every module may import: names, limits and client set-up with no dependencies of
/// their own.
const VOCABULARY: &[&str] = &["bounds", "exit", "labels", "net"];

/// Which top-level modules each module's code may name (besides [`VOCABULARY`]). Modules not
/// listed (`istio`, `manifest`, and the vocabulary itself) may import only the vocabulary.
const ALLOWED: &[(&str, &[&str])] = &[
    // The commands wire everything together.
    (
        "cli",
        &[
            "cluster", "demo", "exit", "istio", "labels", "lint", "manifest", "policy", "release",
            "render", "runner", "signals", "sim", "spec", "ui",
        ],
    ),
    // The in-cluster runner drives releases with the engine `step` uses; the cli builds its
    // deciders (policies) and flags, so the runner names neither `cli` nor `policy`.
    ("runner", &["cluster", "release"]),
    // The demo is a command built of the others.
    (
        "demo",
        &[
            "cluster", "istio", "manifest", "release", "render", "signals", "sim", "spec", "ui",
        ],
    ),
    (
        "release",
        &[
            "cluster", "exit", "istio", "labels", "lint", "policy", "render", "signals", "spec",
        ],
    ),
    // The host's measurements: Prometheus (directly, or through the API server's service
    // proxy) and webhooks, for the queries and hooks the spec names.
    ("signals", &["cluster", "spec"]),
    // `lint` and `cluster` never import each other: cluster hands back plain objects.
    ("cluster", &["exit", "istio", "labels", "spec"]),
    ("lint", &["istio", "labels", "manifest", "spec"]),
    ("policy", &["spec"]),
    ("render", &["istio", "labels", "manifest", "spec"]),
    ("sim", &["istio", "manifest"]),
    ("spec", &["istio", "labels"]),
    // `ui` draws the view models `release::view` builds (as Argo Rollouts' get: the model apart
    // from the tree that draws it); it defines no domain types of its own.
    ("ui", &["manifest", "release"]),
];

#[test]
fn modules_import_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(module, targets)| (*module, targets.iter().copied().collect()))
        .collect();
    let mut violations = Vec::new();
    let mut files = Vec::new();
    collect(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} source files under {}",
        files.len(),
        src.display()
    );
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if relative.file_name().unwrap() == "tests.rs" || module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Test modules come last in a file, after `#[cfg(test)]`.
        let code = match text.find("#[cfg(test)]\nmod ") {
            Some(at) => &text[..at],
            None => &text,
        };
        let empty = BTreeSet::new();
        let may = allowed.get(module.as_str()).unwrap_or(&empty);
        for (number, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let target: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if target.is_empty()
                    || target == module
                    || may.contains(target.as_str())
                    || VOCABULARY.contains(&target.as_str())
                {
                    continue;
                }
                violations.push(format!(
                    "{}:{}: {module} imports {target}: {}",
                    relative.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layout (move the shared item below both modules):\n{}",
        violations.join("\n")
    );
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}
