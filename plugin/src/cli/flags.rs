//! Flags shared by several commands, each defined once (as ripgrep's `flags/defs.rs`): a command
//! takes a group with `#[command(flatten)]` instead of declaring the flag again, so every flag has
//! one name, one default and one help text wherever it appears.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// The value parser of every duration flag: the one grammar of [`policy_sdk::time`] (`250ms`,
/// `30s`, `5m`, `1h30m`, `2d`, bare seconds), so a flag and a policy's `pause` read alike.
pub fn duration(text: &str) -> Result<Duration, String> {
    policy_sdk::time::duration_millis(text)
        .map(Duration::from_millis)
        .map_err(|e| format!("{} ({})", e.reason, policy_sdk::time::DURATION_HINT))
}

/// `--cache-dir`: where compiled policy modules are kept between runs.
#[derive(Debug, Clone, Default, Args)]
pub struct CacheArgs {
    /// Where compiled policy modules are cached (default: $KUBECTL_CANARY_CACHE, else
    /// kubectl-canary in the user cache directory, e.g. $XDG_CACHE_HOME/kubectl-canary).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// `--registry-username` and `--password-stdin`: credentials for an OCI registry, instead of the
/// docker config's (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryAuthArgs {
    /// User name for the OCI registry, with --password-stdin (default: the registry's entry in
    /// the docker config, $DOCKER_CONFIG/config.json or ~/.docker/config.json).
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub registry_username: Option<String>,
    /// Read the OCI registry's password from standard input (one line), with
    /// --registry-username.
    #[arg(long, requires = "registry_username")]
    pub password_stdin: bool,
}

impl RegistryAuthArgs {
    /// The credentials these flags give (the password read from stdin now), or the default:
    /// the docker config's.
    pub fn credentials(&self) -> anyhow::Result<crate::policy::Credentials> {
        let Some(user) = &self.registry_username else {
            return Ok(crate::policy::Credentials::default());
        };
        let mut password = String::new();
        std::io::stdin()
            .read_line(&mut password)
            .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
        let password = password.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            anyhow::bail!("--password-stdin: standard input is empty; pipe the password in");
        }
        Ok(crate::policy::Credentials {
            basic: Some((user.clone(), password)),
        })
    }
}

/// `--field-manager`: the manager name of server-side apply.
#[derive(Debug, Clone, Args)]
pub struct FieldManagerArgs {
    /// Field manager for server-side apply (the name that owns the fields kubectl-canary sets).
    #[arg(long, default_value = "kubectl-canary", value_name = "NAME")]
    pub field_manager: String,
}

/// `-f/--filename` of the commands that read one release spec.
#[derive(Debug, Clone, Args)]
pub struct SpecFileArgs {
    /// The release spec (YAML; - for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
}

/// `--local` and `--istio-namespace` of the commands that read objects from the cluster, from
/// files, or both (`lint`, `mtls status`); each declares its own `-f` (what the files are for
/// differs).
#[derive(Debug, Clone, Args)]
pub struct ObjectSourceArgs {
    /// Use only the files given with -f; do not contact the cluster.
    #[arg(long, requires = "files")]
    pub local: bool,
    /// Istio's root namespace (where a selector-less PeerAuthentication sets the mesh default).
    #[arg(long, default_value = "istio-system", value_name = "NAMESPACE")]
    pub istio_namespace: String,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// Every long flag of every subcommand has one help text, whichever command declares it:
    /// a second declaration with other words is what this module exists to prevent.
    #[test]
    fn each_flag_has_one_help_text() {
        let mut seen = std::collections::BTreeMap::<String, (String, String)>::new();
        let mut clashes = Vec::new();
        fn walk(
            command: &clap::Command,
            path: &str,
            seen: &mut std::collections::BTreeMap<String, (String, String)>,
            clashes: &mut Vec<String>,
        ) {
            for arg in command.get_arguments() {
                let (Some(long), Some(help)) = (arg.get_long(), arg.get_help()) else {
                    continue;
                };
                // `-o/--output` and `-f/--filename` are per-command by nature (what is printed or
                // read differs); the shared ones must agree.
                // `--interval` is two flags: the wait of `run` and the refresh of `get --watch`.
                // `--image` too: the canary's image (`init`), the runner's own (`runner install`).
                // `--stage` too: a stage file to render (`render`), a stage index (`approve`).
                if [
                    "output", "filename", "help", "version", "interval", "image", "stage",
                ]
                .contains(&long)
                {
                    continue;
                }
                let help = help.to_string();
                match seen.get(long) {
                    Some((first, other)) if *other != help => clashes.push(format!(
                        "--{long}: {first:?} says {other:?}, {path:?} says {help:?}"
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(long.to_string(), (path.to_string(), help));
                    }
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), seen, clashes);
            }
        }
        let command = super::super::Cli::command();
        walk(&command, "kubectl canary", &mut seen, &mut clashes);
        assert_eq!(clashes, Vec::<String>::new());
        // and the parser still accepts the shared flags where they belong
        super::super::Cli::try_parse_from([
            "kubectl-canary",
            "plan",
            "-f",
            "x.yaml",
            "--cache-dir",
            "/tmp/c",
        ])
        .unwrap();
    }
}
