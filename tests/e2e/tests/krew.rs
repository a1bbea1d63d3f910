//! The release `plugins/dist.sh` packages is what krew accepts and installs: its manifest passes
//! krew's own checks, and installing it the way krew does makes `kubectl canary` work.
//!
//! The checks are krew's (sigs.k8s.io/krew): `pkg/index/validation.ValidatePlugin` (apiVersion,
//! kind, a safe name equal to the file's, a one-line shortDescription, platforms, a `v`-prefixed
//! semantic version; per platform uri, a 64-hex sha256, bin, files and a selector of only `os`
//! and `arch`), `cmd/validate-krew-manifest` (each selector matches a supported platform and no
//! two overlap; line lengths, which it only warns about and which are errors here), and what its
//! install does with the archive (the sha256 must match, `bin` must be in it and inside the
//! install directory). The install is `internal/installation.install`'s: unpack into
//! `$KREW_ROOT/store/<name>/<version>/`, link `$KREW_ROOT/bin/kubectl-<name>` to the bin with a
//! relative link, and store the receipt.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use canary_e2e::{kubectl_bin, plugin_dir, skip, workspace_root, Kubectl};
use kubectl_canary::policy::sha256_hex;
use serde_yaml::Value;

/// The plugin's name in the manifest, and so `kubectl <name>`.
const NAME: &str = "canary";

/// The `<os>/<arch>` pairs krew installs on (`validate-krew-manifest`'s list, with the arm64 and
/// other platforms later releases added).
const KREW_PLATFORMS: &[(&str, &str)] = &[
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("linux", "s390x"),
    ("windows", "386"),
    ("windows", "amd64"),
    ("windows", "arm64"),
];

/// Names krew refuses because Windows cannot create such files.
const WINDOWS_FORBIDDEN: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// What `plugins/dist.sh` wrote, once per test process (packaging the debug binary takes a
/// while): the output directory and its `canary.yaml`.
struct Dist {
    dir: PathBuf,
    manifest: Value,
}

fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let binary = plugin_dir().join("kubectl-canary");
        // Beside the binary, replaced on every run: a temporary directory in a static would
        // never be removed.
        let dir = plugin_dir()
            .parent()
            .expect("target/<profile>")
            .join("e2e-krew-dist");
        let _ = std::fs::remove_dir_all(&dir);
        let script = workspace_root().join("plugins/dist.sh");
        let out = Command::new("sh")
            .arg(&script)
            .arg(&dir)
            .arg("--binary")
            .arg(&binary)
            .output()
            .expect("run plugins/dist.sh");
        assert!(
            out.status.success(),
            "plugins/dist.sh failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.join("canary.yaml")).expect("dist/canary.yaml");
        let manifest = serde_yaml::from_str(&text).expect("canary.yaml is YAML");
        Dist { dir, manifest }
    })
}

/// This machine's platform in krew's words (what `dist.sh` packages).
fn host_platform() -> String {
    let os = std::env::consts::OS.replace("macos", "darwin");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}/{arch}")
}

fn archive_name() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "kubectl-canary_{version}_{}.tar.gz",
        host_platform().replace('/', "_")
    )
}

/// A platform of a valid manifest, with its archive.
#[derive(Debug)]
struct Platform {
    /// `<os>/<arch>`.
    platform: String,
    /// The archive, found in the archive directory under the last segment of its uri (as
    /// `kubectl krew install --archive` stands in for the download).
    archive: PathBuf,
    /// The `bin` path inside the install directory.
    bin: String,
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// Whether every line of `s` fits in `max` characters (a line of one word may be longer), as
/// `validate-krew-manifest` measures.
fn lines_fit(s: &str, max: usize) -> bool {
    s.lines()
        .all(|l| l.chars().count() <= max || !l.trim().contains(' '))
}

/// Checks a manifest stored as `file_name` by krew's rules, with its archives in `archives`.
/// `Err` is the first problem, in one line.
fn validate(manifest: &Value, file_name: &str, archives: &Path) -> Result<Vec<Platform>, String> {
    let api_version = text(manifest, &["apiVersion"]).unwrap_or_default();
    if api_version != "krew.googlecontainertools.github.com/v1alpha2" {
        return Err(format!(
            "plugin manifest has apiVersion={api_version:?}, not supported by krew"
        ));
    }
    let kind = text(manifest, &["kind"]).unwrap_or_default();
    if kind != "Plugin" {
        return Err(format!(
            "plugin manifest has kind={kind:?}, but only \"Plugin\" is supported"
        ));
    }
    let from_file = file_name.strip_suffix(".yaml").unwrap_or(file_name);
    let safe = !from_file.is_empty()
        && from_file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !WINDOWS_FORBIDDEN
            .iter()
            .any(|f| f.eq_ignore_ascii_case(from_file));
    if !safe {
        return Err(format!(
            "the plugin name {from_file:?} is not allowed, must match \"^[\\w-]+$\""
        ));
    }
    let name = text(manifest, &["metadata", "name"]).unwrap_or_default();
    if name != from_file {
        return Err(format!(
            "plugin should be named {from_file:?}, not {name:?}"
        ));
    }
    let short = text(manifest, &["spec", "shortDescription"]).unwrap_or_default();
    if short.is_empty() {
        return Err("should have a short description".into());
    }
    if short.contains(['\r', '\n']) {
        return Err("should not have line breaks in short description".into());
    }
    if !lines_fit(short, 70) {
        return Err(format!(
            "shortDescription is {} characters, more than 70",
            short.chars().count()
        ));
    }
    for field in ["description", "caveats"] {
        if !lines_fit(text(manifest, &["spec", field]).unwrap_or_default(), 80) {
            return Err(format!("a line of `{field}` exceeds 80 characters"));
        }
    }
    let platforms = manifest["spec"]["platforms"]
        .as_sequence()
        .filter(|p| !p.is_empty())
        .ok_or("should have a platform specified")?;
    let version = text(manifest, &["spec", "version"]).unwrap_or_default();
    if version.is_empty() {
        return Err("should have a version specified".into());
    }
    let semver = version.strip_prefix('v').is_some_and(|v| {
        let parts: Vec<_> = v.split('.').collect();
        parts.len() == 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p.len() == 1 || !p.starts_with('0'))
            })
    });
    if !semver {
        return Err(format!(
            "failed to parse plugin version {version:?}: expected vX.Y.Z"
        ));
    }
    let mut valid = Vec::new();
    for (i, platform) in platforms.iter().enumerate() {
        let fail = |problem: String| format!("spec.platforms[{i}]: {problem}");
        valid.push(validate_platform(platform, archives).map_err(fail)?);
    }
    for (os, arch) in KREW_PLATFORMS {
        let matching: Vec<_> = platforms
            .iter()
            .enumerate()
            .filter(|(_, p)| selects(p, os, arch))
            .map(|(i, _)| i)
            .collect();
        if matching.len() > 1 {
            return Err(format!(
                "multiple spec.platforms (at indexes {matching:?}) have overlapping selectors \
                 that select os={os}/arch={arch}"
            ));
        }
    }
    Ok(valid)
}

/// Whether a platform's `matchLabels` select `os`/`arch`.
fn selects(platform: &Value, os: &str, arch: &str) -> bool {
    platform["selector"]["matchLabels"]
        .as_mapping()
        .is_some_and(|labels| {
            labels.iter().all(|(k, v)| match k.as_str() {
                Some("os") => v.as_str() == Some(os),
                Some("arch") => v.as_str() == Some(arch),
                _ => false,
            })
        })
}

fn validate_platform(platform: &Value, archives: &Path) -> Result<Platform, String> {
    let uri = text(platform, &["uri"]).unwrap_or_default();
    if uri.is_empty() {
        return Err("`uri` has to be set".into());
    }
    let sha256 = text(platform, &["sha256"]).unwrap_or_default();
    if sha256.is_empty() {
        return Err("`sha256` sum has to be set".into());
    }
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(format!(
            "`sha256` value {sha256} is not valid, must match pattern ^[a-f0-9]{{64}}$"
        ));
    }
    let bin = text(platform, &["bin"]).unwrap_or_default();
    if bin.is_empty() {
        return Err("`bin` has to be set".into());
    }
    if let Some(files) = platform.get("files") {
        let ops = files
            .as_sequence()
            .filter(|f| !f.is_empty())
            .ok_or("`files` is invalid: `files` has to be unspecified or non-empty".to_string())?;
        for op in ops {
            for field in ["from", "to"] {
                if text(op, &[field]).unwrap_or_default().is_empty() {
                    return Err(format!("`files` is invalid: `{field}` field has to be set"));
                }
            }
        }
        // The archives here hold the plugin at their root; krew's default operation copies
        // all of it, and that is what the install below does.
        return Err(
            "`files` is set, and this test installs only krew's default (`*` → `.`)".into(),
        );
    }
    let selector = platform
        .get("selector")
        .ok_or("invalid platform selector: nil selector is not supported")?;
    if selector.get("matchExpressions").is_some() {
        return Err("uses matchExpressions, which this validator does not evaluate".into());
    }
    let labels = selector["matchLabels"]
        .as_mapping()
        .ok_or("invalid platform selector: empty selector is not supported")?;
    if labels.is_empty() {
        return Err("invalid platform selector: `matchLabels` specified but empty".into());
    }
    for key in labels.keys() {
        let key = key.as_str().unwrap_or_default();
        if key != "os" && key != "arch" {
            return Err(format!(
                "invalid platform selector: key {key:?} not supported"
            ));
        }
    }
    let Some((os, arch)) = KREW_PLATFORMS
        .iter()
        .find(|(os, arch)| selects(platform, os, arch))
    else {
        return Err(format!(
            "selector {} doesn't match any supported platforms",
            serde_json::to_string(&selector).unwrap_or_default()
        ));
    };

    let file = uri.rsplit('/').next().unwrap_or_default();
    let archive = archives.join(file);
    let bytes = std::fs::read(&archive)
        .map_err(|e| format!("archive {file} (from the uri) cannot be read: {e}"))?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(format!(
            "sha256 mismatch: the manifest says {sha256} but {file} is {actual}"
        ));
    }
    if bin.starts_with('/') || bin.split('/').any(|c| c == "..") {
        return Err(format!(
            "bin {bin:?} does not stay inside the install directory"
        ));
    }
    let entries = archive_entries(&archive);
    let bin_entry = bin.trim_start_matches("./");
    if !entries.iter().any(|e| e == bin_entry) {
        return Err(format!(
            "bin {bin:?} is not in {file} (it holds: {})",
            entries.join(", ")
        ));
    }
    Ok(Platform {
        platform: format!("{os}/{arch}"),
        archive,
        bin: bin.to_string(),
    })
}

/// The file names in a `.tar.gz`, without a leading `./`.
fn archive_entries(archive: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(archive)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar -tzf {}", archive.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .filter(|l| !l.is_empty() && !l.ends_with('/'))
        .collect()
}

/// Installs `platform` of plugin `name` at `version` under `root` as krew does: unpack into a
/// staging directory, move it to `store/<name>/<version>/`, link `bin/kubectl-<name>` (dashes
/// as underscores) to the bin with a relative link, and store the manifest as the receipt.
fn krew_install(root: &Path, name: &str, version: &str, manifest: &Value, platform: &Platform) {
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&platform.archive)
        .arg("-C")
        .arg(&staging)
        .status()
        .expect("run tar");
    assert!(status.success(), "unpack {}", platform.archive.display());
    let install_dir = root.join("store").join(name).join(version);
    std::fs::create_dir_all(install_dir.parent().unwrap()).unwrap();
    std::fs::rename(&staging, &install_dir).unwrap();

    let bin_dir = root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join(format!("kubectl-{}", name.replace('-', "_")));
    let target = Path::new("..")
        .join("store")
        .join(name)
        .join(version)
        .join(&platform.bin);
    std::os::unix::fs::symlink(target, link).unwrap();

    std::fs::create_dir_all(root.join("receipts")).unwrap();
    std::fs::write(
        root.join("receipts").join(format!("{name}.yaml")),
        serde_yaml::to_string(manifest).unwrap(),
    )
    .unwrap();
}

#[test]
fn the_archive_holds_the_binary_license_and_readme_with_fixed_metadata() {
    let dist = dist();
    let archive = dist.dir.join(archive_name());
    assert_eq!(
        archive_entries(&archive),
        ["LICENSE", "README.md", "kubectl-canary"]
    );
    // Fixed owner, mtime and modes: the bytes depend only on the three files.
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&archive)
        .output()
        .expect("run tar");
    let listing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            format!("{} {} {} {} {}", f[0], f[1], f[3], f[4], f[5])
        })
        .collect();
    assert_eq!(
        listing,
        [
            "-rw-r--r-- 0/0 1970-01-01 00:00 LICENSE",
            "-rw-r--r-- 0/0 1970-01-01 00:00 README.md",
            "-rwxr-xr-x 0/0 1970-01-01 00:00 kubectl-canary",
        ]
    );
    let sha256 = sha256_hex(&std::fs::read(&archive).unwrap());
    assert_eq!(
        std::fs::read_to_string(dist.dir.join(format!("{}.sha256", archive_name()))).unwrap(),
        format!("{sha256}  {}\n", archive_name())
    );
}

#[test]
fn the_manifest_is_valid_by_krews_rules_and_installs_as_krew_does() {
    let dist = dist();
    let platforms = validate(&dist.manifest, "canary.yaml", &dist.dir)
        .unwrap_or_else(|problem| panic!("canary.yaml is refused: {problem}"));
    // Only this machine's archive was built, so only its platform is in the manifest.
    let names: Vec<_> = platforms.iter().map(|p| p.platform.as_str()).collect();
    assert_eq!(names, [host_platform()]);
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(text(&dist.manifest, &["spec", "version"]), Some(&*version));
    assert_eq!(
        text(&dist.manifest["spec"]["platforms"][0], &["uri"]),
        Some(&*format!(
            "https://github.com/kubectl-canary/kubectl-canary/releases/download/{version}/{}",
            archive_name()
        ))
    );

    let Some(kubectl) = kubectl_bin() else {
        return skip(
            "the_manifest_is_valid_by_krews_rules_and_installs_as_krew_does",
            "no kubectl on PATH",
        );
    };
    let krew_root = tempfile::tempdir().unwrap();
    krew_install(
        krew_root.path(),
        NAME,
        &version,
        &dist.manifest,
        &platforms[0],
    );
    assert!(krew_root
        .path()
        .join("store/canary")
        .join(&version)
        .join("kubectl-canary")
        .is_file());

    // PATH: krew's bin directory and a directory holding only kubectl, so nothing else (the
    // build's plugin directory above all) can be what kubectl finds.
    let only_kubectl = tempfile::tempdir().unwrap();
    let kubectl = std::fs::canonicalize(kubectl).unwrap();
    std::os::unix::fs::symlink(&kubectl, only_kubectl.path().join("kubectl")).unwrap();
    let path =
        std::env::join_paths([krew_root.path().join("bin"), only_kubectl.path().into()]).unwrap();
    let kubectl = Kubectl::with_binary(only_kubectl.path().join("kubectl")).env("PATH", path);

    let list = kubectl.run(["plugin", "list"]).success();
    assert_eq!(
        list.stdout,
        format!(
            "The following compatible plugins are available:\n\n{}\n",
            krew_root.path().join("bin/kubectl-canary").display()
        )
    );
    assert_eq!(list.stderr, "");

    let run = kubectl.run([NAME, "version"]).success();
    assert_eq!(
        run.stdout,
        format!(
            "kubectl-canary {} (policy ABI v1, {})\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn a_manifest_krew_would_refuse_is_refused_with_the_problem() {
    let dist = dist();
    let archive = archive_name();
    let actual = sha256_hex(&std::fs::read(dist.dir.join(&archive)).unwrap());
    let zeros = "0".repeat(64);
    let edit = |path: &[&str], value: &str| {
        let mut manifest = dist.manifest.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut node = &mut manifest;
        for key in parents {
            node = match key.parse::<usize>() {
                Ok(i) => &mut node[i],
                Err(_) => &mut node[*key],
            };
        }
        node[*last] = Value::from(value);
        validate(&manifest, "canary.yaml", &dist.dir).unwrap_err()
    };
    let platform = ["spec", "platforms", "0"];
    let at = |field: &'static str| [platform[0], platform[1], platform[2], field];

    assert_eq!(
        edit(&at("sha256"), &zeros),
        format!(
            "spec.platforms[0]: sha256 mismatch: the manifest says {zeros} but {archive} is \
             {actual}"
        )
    );
    assert_eq!(
        edit(&at("bin"), "bin/kubectl-canary"),
        format!(
            "spec.platforms[0]: bin \"bin/kubectl-canary\" is not in {archive} (it holds: \
             LICENSE, README.md, kubectl-canary)"
        )
    );
    assert_eq!(
        edit(&at("sha256"), "SHA256"),
        "spec.platforms[0]: `sha256` value SHA256 is not valid, must match pattern \
         ^[a-f0-9]{64}$"
    );
    assert_eq!(
        edit(&["spec", "version"], "0.1.0"),
        "failed to parse plugin version \"0.1.0\": expected vX.Y.Z"
    );
    assert_eq!(
        edit(&["spec", "shortDescription"], "two\nlines"),
        "should not have line breaks in short description"
    );
    assert_eq!(
        edit(&["metadata", "name"], "kubectl-canary"),
        "plugin should be named \"canary\", not \"kubectl-canary\""
    );
    assert_eq!(
        validate(&dist.manifest, "CON.yaml", &dist.dir).unwrap_err(),
        "the plugin name \"CON\" is not allowed, must match \"^[\\w-]+$\""
    );
}
