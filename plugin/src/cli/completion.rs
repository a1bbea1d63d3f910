//! `kubectl canary completion <shell>`.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Arguments of `completion`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kubectl canary completion bash > /etc/bash_completion.d/kubectl-canary\n  \
    kubectl canary completion zsh > \"${fpath[1]}/_kubectl-canary\"\n  \
    kubectl canary completion fish > ~/.config/fish/completions/kubectl-canary.fish\n\n\
The scripts complete the `kubectl-canary` command; kubectl itself completes `kubectl canary` \
only through a `kubectl_complete-canary` helper on PATH.")]
pub struct CompletionArgs {
    /// The shell to generate completion code for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Write the completion script for the chosen shell to stdout.
pub fn run(args: CompletionArgs) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "kubectl-canary", &mut out);
    out.flush()?;
    Ok(())
}
