//! The string formats the API server checks (kube-openapi's `strfmt` registry); formats it does
//! not know, and numeric formats (`int32`, `double`, ...), are accepted as the API server does.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether `value` is valid for `format`. Unknown formats accept everything.
pub(crate) fn check(format: &str, value: &str) -> bool {
    match format {
        "byte" => is_base64(value),
        "date-time" | "datetime" => is_date_time(value),
        "date" => is_date(value),
        "uuid" => is_uuid(value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(value),
        "hostname" => is_hostname(value),
        _ => true,
    }
}

fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return false;
    }
    bytes[..bytes.len() - pad]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn is_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(y), Some(m), Some(d)) = (digits(y, 4), digits(m, 2), digits(d, 2)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// RFC 3339 `date-time`: `2006-01-02T15:04:05(.frac)?(Z|±hh:mm)`.
fn is_date_time(s: &str) -> bool {
    let Some(t) = s.find(['T', 't', ' ']) else {
        return false;
    };
    if !is_date(&s[..t]) {
        return false;
    }
    let rest = &s[t + 1..];
    let (time, zone) = if let Some(z) = rest.strip_suffix(['Z', 'z']) {
        (z, None)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        (&rest[..pos], Some(&rest[pos + 1..]))
    } else {
        return false;
    };
    if let Some(zone) = zone {
        let mut zp = zone.split(':');
        match (
            zp.next().and_then(|h| digits(h, 2)),
            zp.next().and_then(|m| digits(m, 2)),
            zp.next(),
        ) {
            (Some(h), Some(m), None) if h < 24 && m < 60 => {}
            _ => return false,
        }
    }
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let mut p = hms.split(':');
    matches!(
        (p.next().and_then(|h| digits(h, 2)), p.next().and_then(|m| digits(m, 2)), p.next().and_then(|s| digits(s, 2)), p.next()),
        (Some(h), Some(m), Some(sec), None) if h < 24 && m < 60 && sec <= 60
    )
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else {
        ip.parse::<Ipv6Addr>().is_ok() && bits <= 128
    }
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn formats() {
        assert!(check("byte", "aGVsbG8="));
        assert!(!check("byte", "not base64!"));
        assert!(check("date-time", "2024-02-29T10:00:00Z"));
        assert!(check("date-time", "2024-02-29T10:00:00.123+02:00"));
        assert!(!check("date-time", "2023-02-29T10:00:00Z"));
        assert!(!check("date-time", "yesterday"));
        assert!(check("int32", "anything"));
        assert!(check("cidr", "10.0.0.0/8"));
        assert!(!check("cidr", "10.0.0.0/33"));
        assert!(check("uuid", "123e4567-e89b-12d3-a456-426614174000"));
    }
}
