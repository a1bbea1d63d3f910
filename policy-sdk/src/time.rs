//! Time without a clock: policies get `now` in their input, and these helpers read it.
//!
//! Hand-written (no chrono) so the SDK keeps to the crates Debian packages and stays tiny in wasm.
//!
//! # Durations
//!
//! kubectl-canary has one duration grammar, this one. It is used by the built-in policies for
//! `config.pause`, by the host for the `"format": "duration"` of a policy's config schema, and
//! for every duration flag (`--request-timeout`, `--settle`, `--propagation-timeout`,
//! `--interval`, the runner's Lease timings), so a value means the same thing everywhere:
//!
//! ```text
//! duration = seconds | part { part }
//! seconds  = digit { digit }                 a bare number counts as seconds: "300"
//! part     = digit { digit } unit            "30s", "5m", "1h30m", "2d", "250ms"
//! unit     = "ms" | "s" | "m" | "h" | "d"    milliseconds, seconds, minutes, hours, days
//! ```
//!
//! Leading and trailing spaces are ignored; nothing else is accepted: no spaces inside, no
//! fractions (`1.5h`), no signs, no other units (`5min`, `1w`). The total must fit in a `u64`
//! of milliseconds. [`duration_millis`] says what is wrong with a refused value, in the same
//! words wherever it is refused; [`duration_seconds`] is the same for values that must be whole
//! seconds (a policy's `pause`), and [`parse_duration`] is that parse without the reason.
//!
//! ```
//! use policy_sdk::time::{duration_seconds, parse_duration};
//! assert_eq!(parse_duration("1h30m"), Some(5400));
//! assert_eq!(parse_duration("300"), Some(300));
//! assert_eq!(
//!     duration_seconds("5min").unwrap_err().to_string(),
//!     "invalid duration \"5min\": unknown unit \"min\" (units are ms, s, m, h and d, e.g. 30s, \
//!      5m, 1h30m; a bare number is seconds)"
//! );
//! ```

/// Seconds since the Unix epoch for an RFC 3339 timestamp (`2026-11-22T10:00:00Z`,
/// `2026-11-22T12:00:00.5+02:00`); `None` when it is not one. Fractions of a second are dropped.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
    {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let fraction = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if fraction == 0 {
            return None;
        }
        rest = &rest[1 + fraction..];
    }
    let offset = match rest {
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 3600 + minutes * 60) as i64;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month, day);
    Some(days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`2026-11-22T10:00:00Z`).
pub fn format_rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        year,
        month,
        day,
        of_day / 3600,
        (of_day % 3600) / 60,
        of_day % 60
    )
}

/// Day of the week for seconds since the epoch (UTC): 0 = Monday .. 6 = Sunday.
pub fn weekday(seconds: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    (seconds.div_euclid(86_400) + 3).rem_euclid(7) as u32
}

/// Hour of the day (UTC) for seconds since the epoch.
pub fn hour(seconds: i64) -> u32 {
    (seconds.rem_euclid(86_400) / 3600) as u32
}

/// Seconds in a duration of the [grammar above](self#durations) (`30s`, `5m`, `1h30m`, `2d`, or a
/// bare number of seconds); `None` when it is not one.
pub fn parse_duration(text: &str) -> Option<u64> {
    duration_seconds(text).ok()
}

/// What the grammar accepts, in the words every refusal ends with.
pub const DURATION_HINT: &str =
    "units are ms, s, m, h and d, e.g. 30s, 5m, 1h30m; a bare number is seconds";

/// Why a duration was refused; its message quotes the value and says what the grammar accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong, without the quoted value.
    pub reason: String,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid duration {:?}: {} ({})",
            self.text, self.reason, DURATION_HINT
        )
    }
}

impl std::error::Error for DurationError {}

/// Seconds in a duration of the [grammar above](self#durations), or why it is not one; a value
/// that is not a whole number of seconds (`1500ms`) is refused.
pub fn duration_seconds(text: &str) -> Result<u64, DurationError> {
    let millis = duration_millis(text)?;
    if millis % 1000 != 0 {
        return Err(DurationError {
            text: text.to_string(),
            reason: "not a whole number of seconds".to_string(),
        });
    }
    Ok(millis / 1000)
}

/// Milliseconds in a duration of the [grammar above](self#durations), or why it is not one.
pub fn duration_millis(text: &str) -> Result<u64, DurationError> {
    let fail = |reason: String| DurationError {
        text: text.to_string(),
        reason,
    };
    let overflow = || fail("too large".to_string());
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("empty".to_string()));
    }
    if trimmed.bytes().all(|c| c.is_ascii_digit()) {
        let seconds: u64 = trimmed.parse().map_err(|_| overflow())?;
        return seconds.checked_mul(1000).ok_or_else(overflow);
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    let mut rest = trimmed;
    while let Some(c) = rest.chars().next() {
        if let Some(d) = c.to_digit(10) {
            let n = number.unwrap_or(0).checked_mul(10).ok_or_else(overflow)?;
            number = Some(n.checked_add(d as u64).ok_or_else(overflow)?);
            rest = &rest[1..];
            continue;
        }
        // The unit: every letter up to the next digit, so "5min" names "min", not "m".
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ if unit.chars().all(|c| c.is_ascii_alphabetic()) => {
                return Err(fail(format!("unknown unit {:?}", unit)))
            }
            _ => {
                let bad = unit.chars().find(|c| !c.is_ascii_alphabetic()).unwrap_or(c);
                return Err(fail(format!("unexpected {:?}", bad)));
            }
        };
        let value = match number.take() {
            Some(value) => value,
            None => return Err(fail(format!("unit {:?} without a number before it", unit))),
        };
        total = total
            .checked_add(value.checked_mul(scale).ok_or_else(overflow)?)
            .ok_or_else(overflow)?;
        rest = &rest[unit_len..];
    }
    if let Some(n) = number {
        return Err(fail(format!("{} has no unit after it", n)));
    }
    Ok(total)
}

fn digits(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for c in bytes {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + (c - b'0') as u32;
    }
    Some(value)
}

// `u32::is_multiple_of` is newer than rustc 1.63, which this crate supports.
#[allow(clippy::manual_is_multiple_of)]
fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (public domain), days relative to 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        let t = parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-22T10:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-22T12:00:00.25+02:00"), Some(t));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z")
                .map(format_rfc3339)
                .as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("2026-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-22 10:00"), None);
        assert_eq!(parse_rfc3339("2026-11-22T10:00:00"), None);
    }

    #[test]
    fn weekday_and_hour() {
        // 2026-11-22 is a Sunday; 2026-11-23 a Monday.
        let sunday = parse_rfc3339("2026-11-22T10:30:00Z").unwrap();
        assert_eq!(weekday(sunday), 6);
        assert_eq!(weekday(sunday + 86_400), 0);
        assert_eq!(hour(sunday), 10);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("45"), Some(45));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5m3"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration(" 2h "), Some(7200));
        assert_eq!(parse_duration("5min"), None);
        assert_eq!(parse_duration("1.5h"), None);
        assert_eq!(parse_duration("99999999999999999999"), None);
    }

    #[test]
    fn refused_durations_say_why() {
        let why = |text: &str| duration_seconds(text).unwrap_err().reason;
        assert_eq!(why("5min"), "unknown unit \"min\"");
        assert_eq!(why("1500ms"), "not a whole number of seconds");
        assert_eq!(super::duration_millis("1500ms").unwrap(), 1500);
        assert_eq!(super::duration_millis("1m250ms").unwrap(), 60_250);
        assert_eq!(why("m"), "unit \"m\" without a number before it");
        assert_eq!(why("5m3"), "3 has no unit after it");
        assert_eq!(why("1.5h"), "unexpected '.'");
        assert_eq!(why("1 h"), "unexpected ' '");
        assert_eq!(why(""), "empty");
        assert_eq!(why("99999999999999999999"), "too large");
        assert_eq!(why("999999999999999999d"), "too large");
        assert_eq!(
            duration_seconds("soon").unwrap_err().to_string(),
            "invalid duration \"soon\": unknown unit \"soon\" (units are ms, s, m, h and d, e.g. \
             30s, 5m, 1h30m; a bare number is seconds)"
        );
    }
}
