//! When to colour output: `--color`, `NO_COLOR`, and whether stdout is a terminal.

use std::io::IsTerminal;

/// The `--color` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Resolve the choice for stdout. `NO_COLOR` (any non-empty value, see no-color.org) wins
    /// over `auto` but not over an explicit `always`.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                !no_color && std::io::stdout().is_terminal()
            }
        }
    }
}

/// Apply the resolved choice process-wide for `owo-colors`' `if_supports_color` helpers.
pub fn install(choice: ColorChoice) {
    if choice.enabled() {
        owo_colors::set_override(true);
    } else {
        owo_colors::set_override(false);
    }
}
