//! `kubectl-canary`: thin entry point. Parsing, running and exit codes live in the library.

fn main() -> std::process::ExitCode {
    kubectl_canary::cli::main()
}
