//! The primitive Istio validation rules, shared by every place that checks routing input: the
//! release spec validator, the host's policy-decision validator and the emulated API server's
//! istiod webhook.
//!
//! Every check is a pure function returning `Result<(), RuleError>`; the error quotes the
//! offending value and says why it is refused. Callers add the *where* (a field path such as
//! `spec.policy.config.testers.cookie`).
//!
//! The rules follow what istiod's validating webhook and Envoy accept:
//!
//! | check | accepts |
//! |---|---|
//! | [`check_regex`] | non-empty RE2 syntax, at most [`MAX_REGEX_LEN`] bytes |
//! | [`check_weight`] | `0..=100` |
//! | [`check_header_name`] | a non-empty, lower-case HTTP token (RFC 9110) |
//! | [`check_dns1123_label`] | `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters |
//! | [`check_dns1123_subdomain`] | dot-separated labels, at most 253 characters |
//! | [`check_gateway_ref`] | `mesh`, `name` or `namespace/name` |
//!
//! and [`subset_name`] derives the DestinationRule subset name of a version (`1.0` → `v1-0`).
//!
//! Note that Istio matches a regex against the **whole** value; that is the route simulator's
//! business, these checks only decide whether a regex is acceptable at all.
//!
//! Available with the `rules` cargo feature (it pulls in the `regex` crate).

use std::fmt;

/// Longest regex Istio accepts, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;

/// Largest repetition count RE2 accepts in `{n}`, `{n,}` and `{n,m}`.
pub const MAX_REGEX_REPEAT: u32 = 1000;

/// Longest DNS-1123 label.
pub const MAX_DNS1123_LABEL_LEN: usize = 63;

/// Longest DNS-1123 subdomain.
pub const MAX_DNS1123_SUBDOMAIN_LEN: usize = 253;

/// Longest Kubernetes label value (a version).
pub const MAX_LABEL_VALUE_LEN: usize = 63;

/// Longest value quoted verbatim in an error message; longer values are shortened.
const MAX_QUOTED_LEN: usize = 64;

/// Which rule refused a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// [`check_regex`].
    Regex,
    /// [`check_weight`].
    Weight,
    /// [`check_header_name`].
    HeaderName,
    /// [`check_dns1123_label`].
    Dns1123Label,
    /// [`check_dns1123_subdomain`].
    Dns1123Subdomain,
    /// [`check_gateway_ref`].
    GatewayRef,
    /// [`subset_name`].
    Version,
}

impl RuleKind {
    /// What the value was supposed to be, as used in messages (`invalid regex "…"`).
    pub fn noun(self) -> &'static str {
        match self {
            RuleKind::Regex => "regex",
            RuleKind::Weight => "weight",
            RuleKind::HeaderName => "header name",
            RuleKind::Dns1123Label => "DNS-1123 label",
            RuleKind::Dns1123Subdomain => "DNS-1123 subdomain",
            RuleKind::GatewayRef => "gateway reference",
            RuleKind::Version => "version",
        }
    }
}

/// A value refused by one of the rules.
///
/// `Display` gives `invalid <what> "<value>": <reason>`, e.g.
/// `invalid regex "(?=x)": look-around is not supported by RE2`. Values longer than 64 characters
/// are shortened in the message (the full value stays in [`RuleError::value`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule that refused the value.
    pub kind: RuleKind,
    /// The refused value, as given.
    pub value: String,
    /// Why it was refused, without the value (`must be at most 1024 characters, got 1025`).
    pub reason: String,
}

impl RuleError {
    fn new(kind: RuleKind, value: impl Into<String>, reason: impl Into<String>) -> Self {
        RuleError {
            kind,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The value as quoted in messages: JSON-style escaping, shortened when long.
    pub fn quoted_value(&self) -> String {
        quote(&self.value)
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {}: {}",
            self.kind.noun(),
            self.quoted_value(),
            self.reason
        )
    }
}

impl std::error::Error for RuleError {}

/// Quotes `value` for a message: escaped like a JSON string (so control characters and quotes
/// stay visible), and shortened to 64 characters plus its length when longer.
pub fn quote(value: &str) -> String {
    let count = value.chars().count();
    let shown: String = if count > MAX_QUOTED_LEN {
        value.chars().take(MAX_QUOTED_LEN).collect()
    } else {
        value.to_string()
    };
    let mut out = serde_json::to_string(&shown).unwrap_or_else(|_| format!("{:?}", shown));
    if count > MAX_QUOTED_LEN {
        out.insert_str(out.len() - 1, "...");
        out.push_str(&format!(" ({} characters)", count));
    }
    out
}

/// Checks a regex as Istio (Go's RE2 `regexp`) and Envoy (RE2) accept it: not empty, at most
/// 1024 bytes, RE2 syntax.
///
/// The pattern must compile with the `regex` crate, whose syntax is RE2's, so look-around and
/// backreferences are refused. The few extensions the `regex` crate has and RE2 lacks are refused
/// too: the `x`, `u` and `R` flags, nested character classes and class set operations
/// (`&&`, `--`, `~~`), `\<`, `\>`, `\b{...}`, `\u`/`\U` escapes, and repetition counts above 1000.
/// A few patterns RE2 takes and the `regex` crate does not are refused as well (stricter, never
/// looser): `\Q...\E`, `\C`, and an unclosed `{` that RE2 reads as a literal (`x{,`).
pub fn check_regex(pattern: &str) -> Result<(), RuleError> {
    let err = |reason: String| Err(RuleError::new(RuleKind::Regex, pattern, reason));
    if pattern.is_empty() {
        return err("must not be empty".to_string());
    }
    if pattern.len() > MAX_REGEX_LEN {
        return err(format!(
            "must be at most {} characters, got {}",
            MAX_REGEX_LEN,
            pattern.len()
        ));
    }
    if let Err(reason) = re2_extensions(pattern) {
        return err(reason);
    }
    match regex::Regex::new(pattern) {
        Ok(_) => Ok(()),
        Err(e) => err(regex_error_reason(pattern, &e)),
    }
}

/// A one-line reason for a `regex` compile error, naming RE2's missing features plainly.
fn regex_error_reason(pattern: &str, e: &regex::Error) -> String {
    if pattern.contains("(?=")
        || pattern.contains("(?!")
        || pattern.contains("(?<=")
        || pattern.contains("(?<!")
    {
        return "look-around is not supported by RE2".to_string();
    }
    let text = e.to_string();
    if text.contains("backreference") {
        return "backreferences are not supported by RE2".to_string();
    }
    // The regex crate's messages are multi-line pictures of the pattern; keep the last
    // `error: ...` line, which says what is wrong.
    let reason = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().last().unwrap_or("").trim().to_string());
    if reason.is_empty() {
        "not valid RE2 syntax".to_string()
    } else {
        format!("not valid RE2 syntax: {}", reason)
    }
}

/// Refuses the syntax the `regex` crate accepts but RE2 does not. A light lexical scan: anything
/// it lets through is then compiled by the `regex` crate.
fn re2_extensions(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut class_depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let next = chars.get(i + 1).copied();
            match next {
                Some('<') | Some('>') => {
                    return Err(format!("\\{} is not supported by RE2", next.unwrap_or(' ')));
                }
                Some('b') | Some('B') if chars.get(i + 2) == Some(&'{') => {
                    return Err("\\b{...} word boundaries are not supported by RE2".to_string());
                }
                Some('u') | Some('U') => {
                    return Err(format!(
                        "\\{} escapes are not supported by RE2 (use \\x{{...}})",
                        next.unwrap_or(' ')
                    ));
                }
                Some('Q') | Some('C') if class_depth == 0 => {
                    return Err(format!("\\{} is not supported here", next.unwrap_or(' ')));
                }
                Some('x') | Some('p') | Some('P') if chars.get(i + 2) == Some(&'{') => {
                    // \x{41}, \p{Greek}: skip the braces, they are not a repetition.
                    i = find_from(&chars, i + 3, &['}']).map_or(chars.len(), |end| end + 1);
                    continue;
                }
                _ => {}
            }
            i += 2;
            continue;
        }
        if class_depth > 0 {
            match c {
                '[' if chars.get(i + 1) == Some(&':') => {
                    // A POSIX class such as [:alpha:]; RE2 has them. Skip to its end.
                    match find_from(&chars, i + 2, &[':', ']']) {
                        Some(end) => i = end + 2,
                        None => i += 1,
                    }
                    continue;
                }
                '[' => return Err("nested character classes are not supported by RE2".to_string()),
                ']' => class_depth -= 1,
                // `--` right before the closing bracket is a literal range end in both.
                '&' | '-' | '~'
                    if chars.get(i + 1) == Some(&c)
                        && !(c == '-' && chars.get(i + 2) == Some(&']')) =>
                {
                    return Err(format!(
                        "character class set operation {}{} is not supported by RE2",
                        c, c
                    ));
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                class_depth = 1;
                i += 1;
                // A leading `^` and a leading `]` are part of the class, not its end.
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    i += 1;
                }
                continue;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                // Flags: (?flags) or (?flags:...). RE2 knows i, m, s, U and `-`.
                let mut j = i + 2;
                while matches!(chars.get(j), Some(f) if f.is_ascii_alphabetic() || *f == '-') {
                    j += 1;
                }
                if matches!(chars.get(j), Some(')') | Some(':')) {
                    if let Some(f) = chars[i + 2..j]
                        .iter()
                        .find(|f| !matches!(f, 'i' | 'm' | 's' | 'U' | '-'))
                    {
                        return Err(format!("flag {} is not supported by RE2", f));
                    }
                }
            }
            '{' => {
                if let Some(end) = find_from(&chars, i + 1, &['}']) {
                    let inner: String = chars[i + 1..end].iter().collect();
                    let is_count = !inner.is_empty()
                        && inner.chars().all(|d| d.is_ascii_digit() || d == ',')
                        && inner.starts_with(|d: char| d.is_ascii_digit());
                    if is_count {
                        for part in inner.split(',') {
                            if part.is_empty() {
                                continue;
                            }
                            let too_big = part
                                .parse::<u32>()
                                .map(|n| n > MAX_REGEX_REPEAT)
                                .unwrap_or(true);
                            if too_big {
                                return Err(format!(
                                    "repetition count {{{}}} exceeds RE2's maximum of {}",
                                    inner, MAX_REGEX_REPEAT
                                ));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Index of the first occurrence of `needle` in `chars` at or after `from`.
fn find_from(chars: &[char], from: usize, needle: &[char]) -> Option<usize> {
    if from > chars.len() {
        return None;
    }
    chars[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Checks a route weight: `0..=100` (Istio's `HTTPRouteDestination.weight`).
pub fn check_weight(weight: i64) -> Result<(), RuleError> {
    if (0..=100).contains(&weight) {
        Ok(())
    } else {
        Err(RuleError::new(
            RuleKind::Weight,
            weight.to_string(),
            "must be between 0 and 100",
        ))
    }
}

/// Checks a header name used in a match: a non-empty HTTP token (RFC 9110: letters, digits and
/// ``!#$%&'*+-.^_`|~``) in lower case — istiod refuses upper-case header names, and pseudo
/// headers such as `:authority` are not tokens.
pub fn check_header_name(name: &str) -> Result<(), RuleError> {
    let err = |reason: String| Err(RuleError::new(RuleKind::HeaderName, name, reason));
    if name.is_empty() {
        return err("must not be empty".to_string());
    }
    if let Some(c) = name.chars().find(|c| c.is_ascii_uppercase()) {
        return err(format!(
            "must be lower case (found {:?}); use {:?}",
            c,
            name.to_ascii_lowercase()
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_token_char(*c)) {
        return err(format!(
            "{:?} is not allowed in an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)",
            c
        ));
    }
    Ok(())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Checks a DNS-1123 label (RFC 1123, as Kubernetes uses it for namespaces, Service names and
/// Istio subset names): 1 to 63 characters, lower-case letters, digits and `-`, starting and ending
/// with a letter or digit.
pub fn check_dns1123_label(value: &str) -> Result<(), RuleError> {
    dns1123_label_reason(value).map_err(|r| RuleError::new(RuleKind::Dns1123Label, value, r))
}

fn dns1123_label_reason(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    if value.len() > MAX_DNS1123_LABEL_LEN {
        return Err(format!(
            "must be at most {} characters, got {}",
            MAX_DNS1123_LABEL_LEN,
            value.len()
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{:?} is not allowed (lower-case letters, digits and '-' only)",
            c
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("must start and end with a letter or digit".to_string());
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain (Kubernetes object names such as Gateways): at most 253
/// characters, one or more DNS-1123 labels separated by dots.
pub fn check_dns1123_subdomain(value: &str) -> Result<(), RuleError> {
    let err = |reason: String| Err(RuleError::new(RuleKind::Dns1123Subdomain, value, reason));
    if value.is_empty() {
        return err("must not be empty".to_string());
    }
    if value.len() > MAX_DNS1123_SUBDOMAIN_LEN {
        return err(format!(
            "must be at most {} characters, got {}",
            MAX_DNS1123_SUBDOMAIN_LEN,
            value.len()
        ));
    }
    for part in value.split('.') {
        if part.is_empty() {
            return err("must not have empty parts between dots".to_string());
        }
        // The length of a part is not limited to 63 inside a subdomain (Kubernetes' rule).
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return err(format!(
                "{:?} is not allowed (lower-case letters, digits, '-' and '.' only)",
                c
            ));
        }
        if part.starts_with('-') || part.ends_with('-') {
            return err("each dot-separated part must start and end with a letter or digit".into());
        }
    }
    Ok(())
}

/// Checks a gateway reference as a VirtualService's `gateways` accepts it: `mesh` (sidecar
/// traffic), `name` (a Gateway in the VirtualService's namespace) or `namespace/name`.
pub fn check_gateway_ref(value: &str) -> Result<(), RuleError> {
    let err = |reason: String| Err(RuleError::new(RuleKind::GatewayRef, value, reason));
    if value == "mesh" {
        return Ok(());
    }
    if value.is_empty() {
        return err("must not be empty (use `mesh`, `name` or `namespace/name`)".to_string());
    }
    let mut parts = value.splitn(2, '/');
    let first = parts.next().unwrap_or("");
    match parts.next() {
        None => {
            check_dns1123_subdomain(first).or_else(|e| err(format!("gateway name: {}", e.reason)))
        }
        Some(name) => {
            if name.contains('/') {
                return err("must be `mesh`, `name` or `namespace/name`".to_string());
            }
            if let Err(reason) = dns1123_label_reason(first) {
                return err(format!("namespace {}: {}", quote(first), reason));
            }
            check_dns1123_subdomain(name)
                .or_else(|e| err(format!("gateway name {}: {}", quote(name), e.reason)))
        }
    }
}

/// Derives the DestinationRule subset name of a version label value.
///
/// The mapping: lower-case it, turn `.` and `_` into `-`, and prefix `v` when it starts with a
/// digit. So `1.0` → `v1-0`, `2.0` → `v2-0`, `v1` → `v1`, `1.14.2` → `v1-14-2`,
/// `2.0-RC_1` → `v2-0-rc-1`, `canary` → `canary`.
///
/// Errors when the version is not a valid Kubernetes label value (empty, longer than 63, characters
/// other than letters, digits, `-`, `_` and `.`, not starting and ending with a letter or digit),
/// or when the result is not a DNS-1123 label (a 63-character version starting with a digit is one
/// character too long once prefixed). Two versions may map to the same name (`1.0` and `1_0`):
/// callers comparing versions compare their subset names.
pub fn subset_name(version: &str) -> Result<String, RuleError> {
    let err = |reason: String| Err(RuleError::new(RuleKind::Version, version, reason));
    if version.is_empty() {
        return err("must not be empty".to_string());
    }
    if version.len() > MAX_LABEL_VALUE_LEN {
        return err(format!(
            "must be at most {} characters (a label value), got {}",
            MAX_LABEL_VALUE_LEN,
            version.len()
        ));
    }
    if let Some(c) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return err(format!(
            "{:?} is not allowed in a label value (letters, digits, '-', '_' and '.' only)",
            c
        ));
    }
    let alnum_edges = version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !alnum_edges {
        return err("must start and end with a letter or digit".to_string());
    }
    let mut name = String::with_capacity(version.len() + 1);
    if version.starts_with(|c: char| c.is_ascii_digit()) {
        name.push('v');
    }
    name.extend(version.chars().map(|c| match c {
        '.' | '_' => '-',
        c => c.to_ascii_lowercase(),
    }));
    match dns1123_label_reason(&name) {
        Ok(()) => Ok(name),
        Err(reason) => err(format!(
            "its subset name {} is invalid: {}",
            quote(&name),
            reason
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<(), RuleError>) -> String {
        r.expect_err("expected an error").reason
    }

    #[test]
    fn regex_accepts_re2_patterns_istio_uses() {
        for ok in [
            "^(.*?;)?(user=tester)(;.*)?$",
            "/api.*",
            "^/api",
            ".*",
            "a{1000}",
            "a{2,1000}",
            "[[:alpha:]]+",
            "[^]a]",
            "[]a]",
            "(?i)Tester",
            "(?i:x)y",
            "(?P<name>x)",
            "\\d+\\.\\d+",
            "\\pL",
            "[a-]",
            "\\x{41}",
            "\\x{1001}",
            "\\p{Greek}",
        ] {
            assert_eq!(check_regex(ok), Ok(()), "{}", ok);
        }
    }

    #[test]
    fn regex_length_limit_is_1024_bytes() {
        let at_limit = "a".repeat(1024);
        assert_eq!(check_regex(&at_limit), Ok(()));
        let over = "a".repeat(1025);
        let e = check_regex(&over).unwrap_err();
        assert_eq!(e.reason, "must be at most 1024 characters, got 1025");
        assert_eq!(e.value.len(), 1025);
        assert_eq!(
            e.to_string(),
            format!(
                "invalid regex \"{}...\" (1025 characters): must be at most 1024 characters, got 1025",
                "a".repeat(64)
            )
        );
    }

    #[test]
    fn regex_refuses_empty_lookaround_and_backreferences() {
        assert_eq!(reason(check_regex("")), "must not be empty");
        for look in ["a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b"] {
            assert_eq!(
                reason(check_regex(look)),
                "look-around is not supported by RE2",
                "{}",
                look
            );
        }
        assert_eq!(
            reason(check_regex("(a)\\1")),
            "backreferences are not supported by RE2"
        );
        let e = check_regex("a(?=b)").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid regex \"a(?=b)\": look-around is not supported by RE2"
        );
        assert_eq!(e.kind, RuleKind::Regex);
    }

    #[test]
    fn regex_refuses_syntax_errors_with_one_line_reason() {
        for bad in ["(", "[a", "a)", "*a", "a{3,2}"] {
            let r = reason(check_regex(bad));
            assert!(r.starts_with("not valid RE2 syntax: "), "{}: {}", bad, r);
            assert!(!r.contains('\n'), "{}", r);
        }
    }

    #[test]
    fn regex_refuses_regex_crate_extensions_re2_lacks() {
        let cases = [
            ("(?x) a", "flag x is not supported by RE2"),
            ("(?u:a)", "flag u is not supported by RE2"),
            ("(?R)a", "flag R is not supported by RE2"),
            (
                "[a[bc]]",
                "nested character classes are not supported by RE2",
            ),
            (
                "[a&&b]",
                "character class set operation && is not supported by RE2",
            ),
            (
                "[a~~b]",
                "character class set operation ~~ is not supported by RE2",
            ),
            ("\\<a", "\\< is not supported by RE2"),
            ("a\\>", "\\> is not supported by RE2"),
            (
                "\\b{start}a",
                "\\b{...} word boundaries are not supported by RE2",
            ),
            (
                "\\u0041",
                "\\u escapes are not supported by RE2 (use \\x{...})",
            ),
            (
                "a{1001}",
                "repetition count {1001} exceeds RE2's maximum of 1000",
            ),
            (
                "a{1,5000}",
                "repetition count {1,5000} exceeds RE2's maximum of 1000",
            ),
            (
                "a{99999999999}",
                "repetition count {99999999999} exceeds RE2's maximum of 1000",
            ),
            ("\\Qa.b\\E", "\\Q is not supported here"),
        ];
        for (pattern, want) in cases {
            assert_eq!(reason(check_regex(pattern)), want, "{}", pattern);
        }
        // Escaped brackets and a literal `--]` range end are fine.
        assert_eq!(check_regex("\\[a\\]"), Ok(()));
        assert_eq!(check_regex("[\\[]"), Ok(()));
        assert_eq!(check_regex("[a--]"), Ok(()));
    }

    #[test]
    fn regex_never_panics_on_odd_input() {
        for odd in [
            "\\", "[", "[[", "[[:", "{", "(?", "(?i", "a{", "\u{0}", "é{2}", "[^", "[]",
        ] {
            let _ = check_regex(odd);
        }
    }

    #[test]
    fn weight_is_0_to_100() {
        assert_eq!(check_weight(0), Ok(()));
        assert_eq!(check_weight(100), Ok(()));
        assert_eq!(check_weight(37), Ok(()));
        let e = check_weight(101).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid weight \"101\": must be between 0 and 100"
        );
        assert_eq!(e.kind, RuleKind::Weight);
        assert!(check_weight(-1).is_err());
        assert!(check_weight(i64::MIN).is_err());
    }

    #[test]
    fn header_name_is_a_lower_case_token() {
        for ok in ["canary", "x-user", "cookie", "x_b3!#$%&'*+-.^`|~", "0"] {
            assert_eq!(check_header_name(ok), Ok(()), "{}", ok);
        }
        assert_eq!(reason(check_header_name("")), "must not be empty");
        assert_eq!(
            check_header_name("Canary").unwrap_err().to_string(),
            "invalid header name \"Canary\": must be lower case (found 'C'); use \"canary\""
        );
        assert_eq!(
            reason(check_header_name(":authority")),
            "':' is not allowed in an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        );
        assert!(check_header_name("a b").is_err());
        assert!(check_header_name("ä").is_err());
        assert!(check_header_name("a\n").is_err());
    }

    #[test]
    fn dns1123_label() {
        for ok in ["a", "voting-app", "v1-0", "0", "a1", &"a".repeat(63)] {
            assert_eq!(check_dns1123_label(ok), Ok(()), "{}", ok);
        }
        assert_eq!(reason(check_dns1123_label("")), "must not be empty");
        assert_eq!(
            reason(check_dns1123_label(&"a".repeat(64))),
            "must be at most 63 characters, got 64"
        );
        assert_eq!(
            check_dns1123_label("Voting").unwrap_err().to_string(),
            "invalid DNS-1123 label \"Voting\": 'V' is not allowed (lower-case letters, digits and '-' only)"
        );
        assert_eq!(
            reason(check_dns1123_label("-a")),
            "must start and end with a letter or digit"
        );
        assert!(check_dns1123_label("a-").is_err());
        assert!(check_dns1123_label("a.b").is_err());
        assert!(check_dns1123_label("a_b").is_err());
    }

    #[test]
    fn dns1123_subdomain() {
        for ok in [
            "a",
            "voting-gateway",
            "a.b.c",
            "my-gw.example",
            &"a".repeat(253),
        ] {
            assert_eq!(check_dns1123_subdomain(ok), Ok(()), "{}", ok);
        }
        assert_eq!(
            reason(check_dns1123_subdomain(&"a".repeat(254))),
            "must be at most 253 characters, got 254"
        );
        assert_eq!(
            reason(check_dns1123_subdomain("a..b")),
            "must not have empty parts between dots"
        );
        assert!(check_dns1123_subdomain(".a").is_err());
        assert!(check_dns1123_subdomain("a.").is_err());
        assert!(check_dns1123_subdomain("a.-b").is_err());
        assert!(check_dns1123_subdomain("A.b").is_err());
        assert!(check_dns1123_subdomain("").is_err());
    }

    #[test]
    fn gateway_refs() {
        for ok in [
            "mesh",
            "voting-gateway",
            "istio-system/voting-gateway",
            "istio-system/gw.example",
        ] {
            assert_eq!(check_gateway_ref(ok), Ok(()), "{}", ok);
        }
        assert_eq!(
            check_gateway_ref("Istio-System/gw").unwrap_err().to_string(),
            "invalid gateway reference \"Istio-System/gw\": namespace \"Istio-System\": 'I' is not allowed (lower-case letters, digits and '-' only)"
        );
        assert_eq!(
            reason(check_gateway_ref("a/b/c")),
            "must be `mesh`, `name` or `namespace/name`"
        );
        assert!(check_gateway_ref("").is_err());
        assert!(check_gateway_ref("/gw").is_err());
        assert!(check_gateway_ref("ns/").is_err());
        assert!(check_gateway_ref("ns/GW").is_err());
        assert!(check_gateway_ref("my_gw").is_err());
    }

    #[test]
    fn subset_names_from_versions() {
        for (version, want) in [
            ("1.0", "v1-0"),
            ("2.0", "v2-0"),
            ("v1", "v1"),
            ("v3", "v3"),
            ("1.14.2", "v1-14-2"),
            ("1.15", "v1-15"),
            ("2.0-RC_1", "v2-0-rc-1"),
            ("canary", "canary"),
            ("V2", "v2"),
            ("0", "v0"),
        ] {
            assert_eq!(subset_name(version).as_deref(), Ok(want), "{}", version);
        }
        let at_limit = "a".repeat(63);
        assert_eq!(subset_name(&at_limit), Ok(at_limit.clone()));
    }

    #[test]
    fn subset_name_refuses_versions_that_cannot_map() {
        assert_eq!(reason(subset_name("").map(|_| ())), "must not be empty");
        assert_eq!(
            subset_name("1.0/2").unwrap_err().to_string(),
            "invalid version \"1.0/2\": '/' is not allowed in a label value (letters, digits, '-', '_' and '.' only)"
        );
        assert_eq!(
            reason(subset_name(".1").map(|_| ())),
            "must start and end with a letter or digit"
        );
        assert!(subset_name("1.0.").is_err());
        assert!(subset_name("1 0").is_err());
        assert!(subset_name("1é").is_err());
        assert_eq!(
            reason(subset_name(&"a".repeat(64)).map(|_| ())),
            "must be at most 63 characters (a label value), got 64"
        );
        let digits = "1".repeat(63);
        assert_eq!(
            reason(subset_name(&digits).map(|_| ())),
            format!(
                "its subset name {} is invalid: must be at most 63 characters, got 64",
                quote(&format!("v{}", digits))
            )
        );
    }

    #[test]
    fn every_subset_name_is_a_dns1123_label() {
        let alphabet = ['1', 'a', 'Z', '.', '_', '-'];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let version: String = [a, b, c].iter().collect();
                    if let Ok(name) = subset_name(&version) {
                        assert_eq!(
                            check_dns1123_label(&name),
                            Ok(()),
                            "{} -> {}",
                            version,
                            name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(
            quote(&"é".repeat(65)),
            format!("\"{}...\" (65 characters)", "é".repeat(64))
        );
    }
}
