//! What kube-apiserver checks about a request before it decodes the body: the media types the
//! client accepts (406), how deeply the body nests (checked in one pass, before a YAML parser
//! whose cost grows faster than its input on `[[[[...` sees it), duplicate JSON fields (strict
//! decoding: an error with `fieldValidation=Strict`, a warning by default), and `continue` tokens
//! (400 when undecodable).

use crate::error::ApiError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Deepest nesting accepted in a YAML body. serde_json stops JSON at 128 levels already; YAML
/// gets the same bound, checked before parsing. (kube-apiserver's decoders stop at 10,000; no
/// Kubernetes object comes near either.)
pub const MAX_DEPTH: usize = 128;

/// The media types responses can be had in (kube-apiserver's negotiation: anything else is 406).
const SERVED: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// Other media types this server answers on the endpoints that serve them (OpenAPI protobuf).
const ALSO: &[&str] = &[
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v3@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
];

/// `Err(406 NotAcceptable)` when the `Accept` header names no media type the server produces
/// (an empty header accepts anything).
pub fn check_accept(accept: &str) -> Result<(), ApiError> {
    if accept.trim().is_empty() {
        return Ok(());
    }
    let acceptable = accept.split(',').any(|range| {
        let media = range
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        media == "*/*"
            || media == "application/*"
            || SERVED.contains(&media.as_str())
            || ALSO.contains(&media.as_str())
    });
    if acceptable {
        Ok(())
    } else {
        Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                SERVED.join(", ")
            ),
        ))
    }
}

/// `Err(400)` when a YAML body nests deeper than [`MAX_DEPTH`], found in one pass without
/// parsing (flow collections outside quotes and comments, block collections by indentation and
/// `- ` entries; block scalars skipped).
pub fn check_yaml_depth(body: &[u8]) -> Result<(), ApiError> {
    let text = String::from_utf8_lossy(body);
    match too_deep_at(&text, MAX_DEPTH) {
        Some((line, column)) => Err(ApiError::bad_request(format!(
            "error decoding YAML: exceeded max depth of {MAX_DEPTH} at line {line} column {column}"
        ))),
        None => Ok(()),
    }
}

/// Where (1-based line and column) YAML or JSON text first nests collections deeper than `limit`,
/// in one pass and without parsing: flow collections (`[`, `{`) outside quotes and comments,
/// block collections by indentation and `- ` entries. It counts generously (a block sequence
/// directly under a key is one level, not two), so it can only err towards the parser's depth
/// being smaller than counted by a small factor, never towards letting a deep input through
/// unnoticed; block scalars (`|`, `>`) are skipped.
pub fn too_deep_at(text: &str, limit: usize) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let (mut flow, mut base) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut block_scalar_parent: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let content = &line[indent..];
        if let Some(parent) = block_scalar_parent {
            if content.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar_parent = None;
        }
        let mut start = indent;
        if flow == 0 && quote.is_none() {
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            if indent == 0 && (content.starts_with("---") || content.starts_with("...")) {
                indents.clear();
                continue;
            }
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            base = indents.len();
            let mut rest = content;
            while rest == "-" || rest.starts_with("- ") || rest.starts_with("? ") {
                base += 1;
                let trimmed = rest[1..].trim_start_matches(' ');
                start += rest.len() - trimmed.len();
                rest = trimmed;
            }
            if base > limit {
                return Some((number + 1, indent + 1));
            }
        }
        let mut previous = ' ';
        let mut chars = line[start..].char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match quote {
                Some('"') => {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        quote = None;
                    }
                }
                Some(_) => {
                    if c == '\'' {
                        if chars.peek().map(|&(_, n)| n) == Some('\'') {
                            chars.next();
                        } else {
                            quote = None;
                        }
                    }
                }
                None => match c {
                    '#' if previous == ' ' || previous == '\t' => break,
                    '"' | '\'' if matches!(previous, ' ' | '\t' | '[' | '{' | ',' | ':') => {
                        quote = Some(c);
                    }
                    '[' | '{' => {
                        flow += 1;
                        if base + flow > limit {
                            return Some((number + 1, line[..start + at].chars().count() + 1));
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            previous = c;
        }
        if flow == 0 && quote.is_none() {
            let code = line[start..].split(" #").next().unwrap_or("").trim_end();
            let indicator =
                code.trim_end_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit());
            if indicator == "|"
                || indicator == ">"
                || indicator.ends_with(" |")
                || indicator.ends_with(" >")
            {
                block_scalar_parent = Some(indent);
            }
        }
    }
    None
}

/// The duplicate fields of a JSON body as kube-apiserver's strict decoder names them
/// (`duplicate field "metadata.name"`), in document order. A body that is not JSON has none here
/// (the decoder reports it).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        found: &mut found,
    }
    .deserialize(&mut de);
    found
        .into_iter()
        .map(|path| format!("duplicate field {path:?}"))
        .collect()
}

struct Walk<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                self.found.push(path.clone());
            }
            map.next_value_seed(Walk {
                path,
                found: &mut *self.found,
            })?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(Walk {
                path: format!("{}[{index}]", self.path),
                found: &mut *self.found,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `Err` when a `continue` token cannot be used. This server returns every item of a list at
/// once (it never hands out a token), so a token is either undecodable (400, kube-apiserver's
/// words) or one it did not issue, which kube-apiserver would also refuse as expired (410).
pub fn check_continue(token: &str) -> Result<(), ApiError> {
    if token.is_empty() {
        return Ok(());
    }
    let invalid = |detail: String| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {detail}"
        ))
    };
    let data = raw_url_base64(token)
        .map_err(|at| invalid(format!("illegal base64 data at input byte {at}")))?;
    let value: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| invalid(e.to_string()))?;
    if value.get("v").and_then(|v| v.as_str()) != Some("meta.k8s.io/v1") {
        return Err(ApiError::bad_request(
            "invalid continue token: continue key is not valid: server does not recognize this encoded version",
        ));
    }
    Err(ApiError::new(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
    ))
}

/// Go's `base64.RawURLEncoding.DecodeString`: `Err(byte offset)` of the first illegal byte.
fn raw_url_base64(text: &str) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for (at, byte) in text.bytes().enumerate() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return Err(at),
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // A single leftover character cannot encode a byte.
    if text.len() % 4 == 1 {
        return Err(text.len() - 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_of_real_clients_pass_and_unknown_ones_are_406() {
        for ok in [
            "",
            "*/*",
            "application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            "application/vnd.kubernetes.protobuf, */*",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ] {
            assert!(check_accept(ok).is_ok(), "{ok}");
        }
        let e = check_accept("application/bogus").unwrap_err();
        assert_eq!((e.code, e.reason), (406, "NotAcceptable"));
        assert_eq!(
            e.message,
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
    }

    #[test]
    fn duplicate_fields_are_named_by_path() {
        let body = br#"{"a":1,"metadata":{"name":"x","name":"y"},"items":[{"k":1,"k":2}],"a":2}"#;
        assert_eq!(
            duplicate_fields(body),
            vec![
                "duplicate field \"metadata.name\"".to_string(),
                "duplicate field \"items[0].k\"".to_string(),
                "duplicate field \"a\"".to_string(),
            ]
        );
        assert!(duplicate_fields(br#"{"a":{"a":1}}"#).is_empty());
    }

    #[test]
    fn deep_yaml_is_refused_before_parsing() {
        let deep = format!("a: {}", "[".repeat(200));
        let e = check_yaml_depth(deep.as_bytes()).unwrap_err();
        assert_eq!(
            e.message,
            "error decoding YAML: exceeded max depth of 128 at line 1 column 131"
        );
        assert!(check_yaml_depth(b"a:\n  b: [1, [2, {c: d}]]\n").is_ok());
    }

    #[test]
    fn continue_tokens_undecodable_are_400_foreign_ones_410() {
        let e = check_continue("garbage!").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 7"
        );
        // {"v":"meta.k8s.io/v1","rv":5,"start":"a"}
        let e =
            check_continue("eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiJhIn0").unwrap_err();
        assert_eq!((e.code, e.reason), (410, "Expired"));
    }
}
