//! Limits on every file the plugin reads, checked before anything is parsed.
//!
//! A YAML parser's cost grows faster than its input on deep nesting (`[[[[...`), and a release
//! with hundreds of thousands of services makes every later step slow. So every input is refused
//! up front, with the limit named, when it is larger than its [`Limit`] or nested deeper than
//! [`MAX_NESTING`] levels; what passes is small enough to be handled in well under a second.
//! Lists of problems are capped at [`MAX_LISTED`] lines, the rest counted ([`more_line`]).

use std::io::Read;
use std::path::{Path, PathBuf};

/// One MiB.
pub const MIB: u64 = 1 << 20;

/// Deepest nesting of collections accepted in any YAML or JSON input. A release spec needs about
/// ten levels; kube-apiserver's own JSON decoder stops at 10,000, serde_json at 128.
pub const MAX_NESTING: usize = 64;

/// How many problems a message lists before it counts the rest.
pub const MAX_LISTED: usize = 50;

/// A size limit for one kind of input, with the words that name it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The largest accepted size, in bytes.
    pub bytes: u64,
    /// What the input is, for messages: "a release spec".
    pub what: &'static str,
}

/// A release spec (`-f` of start, plan, render, demo; specs among lint's files).
pub const SPEC: Limit = Limit {
    bytes: MIB,
    what: "a release spec",
};

/// A file of Kubernetes objects (`-f` of lint, explain, mtls): kube-apiserver refuses requests
/// over 3 MiB, so no object it serves is larger.
pub const MANIFEST: Limit = Limit {
    bytes: 3 * MIB,
    what: "a manifest file",
};

/// A stage or decision file (`render --stage`).
pub const STAGE: Limit = Limit {
    bytes: MIB,
    what: "a stage file",
};

/// A metrics file (`plan --metrics`).
pub const METRICS: Limit = Limit {
    bytes: MIB,
    what: "a metrics file",
};

/// An input refused before parsing.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file (or stdin) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path (`-` for stdin).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Larger than its limit.
    #[error("{origin}: {} is over the {} limit for {}", size_text(*.size), size_text(.limit.bytes), .limit.what)]
    TooLarge {
        /// Where the text came from (a file name, `<stdin>`).
        origin: String,
        /// Its size in bytes (for stdin, as far as it was read: at most [`STDIN_COUNT_CAP`]).
        size: u64,
        /// The limit it is over.
        limit: Limit,
    },
    /// Nested deeper than [`MAX_NESTING`].
    #[error("{origin}:{line}:{column}: nesting deeper than {} levels is over the limit for {}", MAX_NESTING, .limit.what)]
    TooDeep {
        /// Where the text came from.
        origin: String,
        /// 1-based line of the collection that goes one level too deep.
        line: usize,
        /// 1-based column of it.
        column: usize,
        /// The input's limit (for its name).
        limit: Limit,
    },
}

/// How far an oversized stdin is counted to report its size (then the size is reported as read).
pub const STDIN_COUNT_CAP: u64 = 1 << 30;

/// Read `path` (`-` for stdin) as UTF-8 text, refused before parsing when it is over `limit` or
/// nested deeper than [`MAX_NESTING`]. `origin` names the input in messages.
pub fn read(path: &Path, origin: &str, limit: Limit) -> Result<String, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size| InputError::TooLarge {
        origin: origin.to_string(),
        size,
        limit,
    };
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        let mut stdin = std::io::stdin().lock();
        (&mut stdin)
            .take(limit.bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > limit.bytes {
            // Count the rest without keeping it, to say how large the input was.
            let rest = std::io::copy(
                &mut (&mut stdin).take(STDIN_COUNT_CAP),
                &mut std::io::sink(),
            )
            .map_err(io)?;
            return Err(too_large(bytes.len() as u64 + rest));
        }
    } else {
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > limit.bytes {
            return Err(too_large(size));
        }
        // The size may change under us (or be 0 for a pipe): read no more than the limit anyway.
        file.take(limit.bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > limit.bytes {
            return Err(too_large(bytes.len() as u64));
        }
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })?;
    check(&text, origin, limit)?;
    Ok(text)
}

/// Check text already in memory against `limit` and [`MAX_NESTING`].
pub fn check(text: &str, origin: &str, limit: Limit) -> Result<(), InputError> {
    if text.len() as u64 > limit.bytes {
        return Err(InputError::TooLarge {
            origin: origin.to_string(),
            size: text.len() as u64,
            limit,
        });
    }
    match too_deep_at(text, MAX_NESTING) {
        Some((line, column)) => Err(InputError::TooDeep {
            origin: origin.to_string(),
            line,
            column,
            limit,
        }),
        None => Ok(()),
    }
}

/// Where (1-based line and column) YAML or JSON text first nests collections deeper than
/// `limit`: the emulated API server's scanner ([`kube_emulator::decode::too_deep_at`]), so the
/// plugin and the server it is tested against refuse deep input alike.
pub fn too_deep_at(text: &str, limit: usize) -> Option<(usize, usize)> {
    kube_emulator::decode::too_deep_at(text, limit)
}

/// A size as people read it: `512 bytes`, `1 MiB`, `3.2 MiB`, `12.5 KiB`.
pub fn size_text(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const GIB: u64 = 1 << 30;
    let (unit, name) = match bytes {
        b if b >= GIB => (GIB, "GiB"),
        b if b >= MIB => (MIB, "MiB"),
        b if b >= KIB => (KIB, "KiB"),
        _ => return format!("{bytes} bytes"),
    };
    if bytes.is_multiple_of(unit) {
        format!("{} {name}", bytes / unit)
    } else {
        format!("{:.1} {name}", bytes as f64 / unit as f64)
    }
}

/// A count with thousands separators: `2,621,339`.
pub fn count_text(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The line that ends a capped list: `… and 2,621,339 more`.
pub fn more_line(left_off: usize) -> String {
    format!("… and {} more", count_text(left_off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_as_people_write_them() {
        assert_eq!(size_text(512), "512 bytes");
        assert_eq!(size_text(MIB), "1 MiB");
        assert_eq!(size_text(3 * MIB + MIB / 5), "3.2 MiB");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(count_text(2_621_339), "2,621,339");
        assert_eq!(count_text(999), "999");
        assert_eq!(count_text(1000), "1,000");
        assert_eq!(more_line(2_621_339), "… and 2,621,339 more");
    }

    #[test]
    fn flow_nesting_is_found_where_it_goes_too_deep() {
        let deep = format!("a: {}{}", "[".repeat(70), "]".repeat(70));
        // `a:` is level 1, so the 64th bracket (column 67) makes 65.
        assert_eq!(too_deep_at(&deep, 64), Some((1, 67)));
        let fine = format!("a: {}{}", "[".repeat(63), "]".repeat(63));
        assert_eq!(too_deep_at(&fine, 64), None);
        let json = format!("{}{}", "{\"a\":".repeat(100), "}".repeat(100));
        assert_eq!(too_deep_at(&json, 64), Some((1, 5 * 63 + 1)));
    }

    #[test]
    fn block_nesting_counts_indentation_and_entries() {
        let mut deep = String::new();
        for level in 0..70 {
            deep.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        assert_eq!(too_deep_at(&deep, 64), Some((65, 65)));
        let dashes = format!("{}x\n", "- ".repeat(70));
        assert_eq!(too_deep_at(&dashes, 64), Some((1, 1)));
    }

    #[test]
    fn brackets_in_strings_comments_and_block_text_do_not_count() {
        let text = format!(
            "a: \"{open}\"\nb: '{open}'\nc: x # {open}\nd: |\n  {open}\n  more\ne: don't {{}}\n",
            open = "[".repeat(100)
        );
        assert_eq!(too_deep_at(&text, 64), None);
    }

    #[test]
    fn a_large_text_is_refused_with_its_size_and_the_limit() {
        let text = "x".repeat((3 * MIB + MIB / 5) as usize);
        let err = check(&text, "spec.yaml", SPEC).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.yaml: 3.2 MiB is over the 1 MiB limit for a release spec"
        );
        let deep = format!("spec: {}", "[".repeat(100));
        let err = check(&deep, "spec.yaml", SPEC).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.yaml:1:70: nesting deeper than 64 levels is over the limit for a release spec"
        );
    }
}
