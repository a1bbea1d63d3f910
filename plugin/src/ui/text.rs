//! Untrusted text on a terminal: what a policy wrote (a reason, a stage name, a log line, its
//! metadata) is shown as text, never obeyed as terminal control.
//!
//! A policy is someone else's code. Its strings reach `start`, `get`, `history`, `list`,
//! `plan` and `policy` output, and error messages; an ESC sequence there could clear the
//! screen, retitle the window or hide a line, a CR could overwrite what came before, and a
//! right-to-left override (U+202E) could make `rollback` read as something else. [`safe`]
//! escapes each such character visibly, the way Rust writes it (`\u{1b}`), whatever `NO_COLOR`
//! or the terminal says: the danger is in the bytes, not in colour.
//!
//! Human output only: `-o json|yaml` keeps the exact string (the serialisers escape it).

use std::borrow::Cow;
use std::fmt;

/// Whether `c` is escaped: control characters (C0, DEL, C1, so ESC, BEL, CR, LF, TAB too),
/// the bidirectional controls (embeddings, overrides, isolates, marks), and the line and
/// paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}'                // ARABIC LETTER MARK
            | '\u{200e}' | '\u{200f}' // LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
            | '\u{202a}'..='\u{202e}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{2028}' | '\u{2029}' // line / paragraph separator
        )
}

/// `text` with every unsafe character written as `\u{…}` (lower-case hex, as Rust's
/// `escape_unicode`); borrowed when there is none.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`safe`] for multi-line text of the plugin's own making (an error of several lines) that may
/// quote untrusted text: each line is sanitised, the line breaks between them are kept.
pub fn safe_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.split('\n')
            .map(|line| safe(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Displays a string through [`safe`]: `format!("{}", Safe(&reason))`.
#[derive(Debug, Clone, Copy)]
pub struct Safe<'a>(pub &'a str);

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&safe(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_visibly() {
        assert_eq!(
            safe("ok\u{1b}[2J\u{7}done\r\nx\u{202e}kcabllor\u{2066}\u{9b}"),
            "ok\\u{1b}[2J\\u{7}done\\u{d}\\u{a}x\\u{202e}kcabllor\\u{2066}\\u{9b}"
        );
        assert!(matches!(safe("stage 1 (50%) → café"), Cow::Borrowed(_)));
        assert_eq!(Safe("a\u{0}b").to_string(), "a\\u{0}b");
    }

    #[test]
    fn lines_keep_their_breaks() {
        assert_eq!(
            safe_lines("error one\n  line \u{1b}[31mtwo\r"),
            "error one\n  line \\u{1b}[31mtwo\\u{d}"
        );
        assert!(matches!(safe_lines("a\nb"), Cow::Borrowed(_)));
    }
}
