//! The primitive checks of Istio's `pkg/config/validation` (and `agent/`, `labels/`): domain names,
//! label maps, durations, header names, ports, percentages. Each returns Istio's own message, so
//! a denial reads as istiod's does.

use policy_sdk::rules;

/// `ValidateWildcardDomain`: at most 255 characters, a wildcard only in the first label (`*`,
/// `*foo`, `*-foo`), every other label DNS-1123, and a top-level domain that is not all digits.
pub fn wildcard_domain(domain: &str) -> Result<(), String> {
    dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => dns1123_labels(rest),
        None => Ok(()),
    }
}

/// `ValidateWildcardDomainForVirtualServiceBoundToGateway`: with `sni`, Istio's SNI cluster
/// names (`outbound_.<port>_._.<host>`) are allowed; otherwise as [`wildcard_domain`].
pub fn vs_host(sni: bool, domain: &str) -> Result<(), String> {
    if sni {
        let parts: Vec<&str> = domain.splitn(4, '.').collect();
        if let ["outbound_", port, "_", host] = parts.as_slice() {
            if port
                .strip_suffix('_')
                .is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
            {
                return wildcard_domain(host);
            }
        }
    }
    wildcard_domain(domain)
}

/// `ValidateFQDN`: at most 255 characters and DNS-1123 labels (no wildcard).
pub fn fqdn(domain: &str) -> Result<(), String> {
    dns1123_preconditions(domain)?;
    dns1123_labels(domain)
}

fn dns1123_preconditions(domain: &str) -> Result<(), String> {
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    if domain.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts[parts.len() - 1];
    if !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        // A trailing dot (`istio.io.`) is allowed.
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A DNS-1123 label: 1..=63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(value: &str) -> bool {
    rules::check_dns1123_label(value).is_ok()
}

/// `IsWildcardDNS1123Label`: `*`, or a DNS-1123 label optionally prefixed by `*` or `*-`.
fn is_wildcard_dns1123_label(value: &str) -> bool {
    if value == "*" {
        return true;
    }
    if value.len() > 63 {
        return false;
    }
    let rest = value
        .strip_prefix("*-")
        .or_else(|| value.strip_prefix('*'))
        .unwrap_or(value);
    is_dns1123_label(rest)
}

/// Whether `value` is an IPv4 or IPv6 address.
pub fn is_ip(value: &str) -> bool {
    value.parse::<std::net::IpAddr>().is_ok()
}

/// `labels.Instance.Validate`: every key a qualified name (optional DNS-1123 subdomain prefix and
/// `/`), every value a label value.
pub fn label_map<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
) -> Vec<String> {
    let mut errs = Vec::new();
    for (key, value) in labels {
        if let Err(e) = label_key(key) {
            errs.push(e);
        }
        let value = value.as_str().unwrap_or_default();
        if !is_label_value(value) {
            errs.push(format!("invalid tag value: {value:?}"));
        }
    }
    errs
}

fn label_key(key: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid tag key: {key:?}"));
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if rules::check_dns1123_subdomain(prefix).is_err() {
            return bad();
        }
    }
    if name.is_empty() || !is_label_value(name) {
        return bad();
    }
    Ok(())
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends (or empty).
pub fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && alnum(value.chars().next())
        && alnum(value.chars().last())
}

/// A protobuf JSON duration (`"2.000000042s"`, `"-11s"`) in nanoseconds.
pub fn parse_duration(text: &str) -> Option<i128> {
    let body = text.strip_suffix('s')?;
    let (negative, body) = match body.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i128 = secs.parse().ok()?;
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let total = secs * 1_000_000_000 + nanos;
    Some(if negative { -total } else { total })
}

/// `ValidateDuration`: at least 1ms, and whole milliseconds.
pub fn duration(text: &str) -> Result<(), String> {
    let Some(nanos) = parse_duration(text) else {
        return Err(format!("invalid duration {text:?}"));
    };
    if nanos < 1_000_000 {
        return Err("duration must be greater than 1ms".to_string());
    }
    if nanos % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".to_string());
    }
    Ok(())
}

/// `ValidatePort`: 1..=65535.
pub fn port(port: i64) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// `ValidatePercent`: 0..=100.
pub fn percent(value: f64) -> Result<(), String> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("percentage {value} is not in range 0..100"))
    }
}

/// `ValidateHTTPHeaderName`: a token (RFC 7230), optionally a pseudo-header (`:authority`).
pub fn header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    let token = name.strip_prefix(':').unwrap_or(name);
    if token.is_empty()
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
    {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

/// `ValidateHTTPHeaderOperationName`: a header name that is not a pseudo-header; `allow_authority`
/// lets `:authority` be set or added on requests.
pub fn header_operation_name(name: &str, allow_authority: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("invalid header name: empty".to_string());
    }
    if allow_authority && name.eq_ignore_ascii_case(":authority") {
        return Ok(());
    }
    if name.starts_with(':') {
        return Err(format!(
            "invalid header {name:?}: pseudo-headers cannot be manipulated"
        ));
    }
    header_name(name)
}

/// `ValidateHTTPHeaderValue`: `%` starts an Envoy variable (`%HOSTNAME%`) or is escaped (`%%`).
pub fn header_value(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if bytes.get(i + 1) == Some(&b'%') {
                i += 2;
                continue;
            }
            match value[i + 1..].find('%') {
                Some(end) if end > 0 => i += end + 2,
                _ => {
                    return Err(format!(
                        "header value configuration {value:?} is invalid: a '%' must be escaped as '%%' or start a %VARIABLE%"
                    ))
                }
            }
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// A regex Istio accepts (RE2 syntax, at most 1024 characters, not empty).
pub fn regex(re: &str, at: &str) -> Result<(), String> {
    if re.is_empty() {
        return Err(format!("{at:?}: regex string match should not be empty"));
    }
    rules::check_regex(re).map_err(|e| format!("{at:?}: {}", e.reason))
}

/// Whether `n` is prime (maglev table sizes).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_as_istio_checks_them() {
        for ok in [
            "foo.bar",
            "*",
            "*.bar.com",
            "*foo",
            "*-foo.bar.com",
            "istio.io.",
        ] {
            assert_eq!(wildcard_domain(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            wildcard_domain("foo.*.com"),
            Err(r#"domain name "*.com" invalid (label "*" invalid)"#.to_string())
        );
        assert_eq!(
            wildcard_domain("1.1.1.1"),
            Err(
                r#"domain name "1.1.1" invalid (top level domain "1" cannot be all-numeric)"#
                    .to_string()
            )
        );
        assert!(wildcard_domain("foo*.bar.com").is_err());
        let sni_cluster = "outbound_.15010_._.istiod.istio-system.svc.cluster.local";
        assert_eq!(vs_host(true, sni_cluster), Ok(()));
        assert!(vs_host(false, sni_cluster).is_err());
        assert!(wildcard_domain("default/baz").is_err());
        assert_eq!(
            wildcard_domain(""),
            Err("empty domain name not allowed".to_string())
        );
    }

    #[test]
    fn durations_are_whole_milliseconds() {
        assert_eq!(parse_duration("2.000000042s"), Some(2_000_000_042));
        assert_eq!(parse_duration("-11.000000001s"), Some(-11_000_000_001));
        assert_eq!(duration("1s"), Ok(()));
        assert!(duration("0.000000999s").is_err());
        assert!(duration("1.000000001s").is_err());
        assert!(duration("-1s").is_err());
    }

    #[test]
    fn labels_headers_and_values() {
        let labels = serde_json::json!({"k8s.io/key": "v", "key_": "v", "ok": "value$", "": "x"});
        let errs = label_map(labels.as_object().unwrap());
        assert_eq!(
            errs,
            [
                r#"invalid tag key: """#,
                r#"invalid tag key: "key_""#,
                r#"invalid tag value: "value$""#
            ]
        );
        assert_eq!(header_name(":authority"), Ok(()));
        assert_eq!(header_name("X-Requested-With"), Ok(()));
        assert!(header_name("::").is_err());
        assert!(header_name("illegal\"char").is_err());
        assert_eq!(header_value("100%%"), Ok(()));
        assert_eq!(header_value("hello %HOSTNAME%"), Ok(()));
        assert!(header_value("abcd%oijasodifj").is_err());
    }
}
