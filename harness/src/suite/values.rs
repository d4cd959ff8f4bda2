//! Values written inside a suite that need more than a type to read: mounts, sizes, signal names
//! and text patterns. The loader checks them (so bad ones are exit 2) and the checks use them.

use std::path::{Path, PathBuf};

pub use crate::error::ValueError;

/// A `host:container[:ro|:rw]` mount with placeholders replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The host path (placeholders replaced, relative paths from the suite).
    pub host: PathBuf,
    /// The path in the container.
    pub container: String,
    /// Mounted `:ro`.
    pub read_only: bool,
}

/// Parses a mount; `{suite_dir}` and `{tmp}` become `suite_dir` and `tmp`.
pub fn parse_mount(text: &str, suite_dir: &Path, tmp: &Path) -> Result<Mount, ValueError> {
    let bad = || ValueError::Mount(text.to_string());
    let replaced = text
        .replace("{suite_dir}", &suite_dir.to_string_lossy())
        .replace("{tmp}", &tmp.to_string_lossy());
    let parts: Vec<&str> = replaced.split(':').collect();
    let (host, container, read_only) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        _ => return Err(bad()),
    };
    if host.is_empty() || !container.starts_with('/') {
        return Err(bad());
    }
    let host = PathBuf::from(host);
    let host = if host.is_absolute() {
        host
    } else {
        suite_dir.join(host)
    };
    Ok(Mount {
        host,
        container: container.to_string(),
        read_only,
    })
}

/// `KILL`, `SIGKILL`, `9` → the signal number.
pub fn signal_number(name: &str) -> Result<i32, ValueError> {
    use std::str::FromStr;
    if let Ok(n) = name.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|s| s as i32)
            .map_err(|_| ValueError::SignalNumber(n));
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&full)
        .map(|s| s as i32)
        .map_err(|_| ValueError::SignalName(name.to_string()))
}

/// `/regex/` or a substring.
pub fn text_matches(pattern: &str, text: &str) -> Result<bool, ValueError> {
    Ok(Pattern::new(pattern)?.is_match(text.as_bytes()))
}

/// A compiled `/regex/` (multi-line: `^` and `$` match at each line) or substring, matched on
/// bytes: what a stack prints need not be UTF-8.
#[derive(Clone, Debug)]
pub struct Pattern {
    written: String,
    re: regex::bytes::Regex,
}

impl Pattern {
    /// Compiles a pattern as written in a suite.
    pub fn new(pattern: &str) -> Result<Pattern, ValueError> {
        let source = if pattern.len() >= 2 && pattern.starts_with('/') && pattern.ends_with('/') {
            pattern[1..pattern.len() - 1].to_string()
        } else {
            regex::escape(pattern)
        };
        let re = regex::bytes::RegexBuilder::new(&source)
            .multi_line(true)
            .build()
            .map_err(|e| ValueError::Regex {
                pattern: pattern.to_string(),
                cause: e.to_string(),
            })?;
        Ok(Pattern {
            written: pattern.to_string(),
            re,
        })
    }

    /// The pattern as the suite wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// Whether it matches anywhere in `hay`.
    pub fn is_match(&self, hay: &[u8]) -> bool {
        self.re.is_match(hay)
    }

    /// Where its first match in `hay` starts.
    pub fn find(&self, hay: &[u8]) -> Option<usize> {
        self.re.find(hay).map(|m| m.start())
    }
}

/// Parses sizes such as `900MiB`, `1GB`, `512k`, in bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn mounts() {
        let m = parse_mount(
            "{suite_dir}/repo:/work:ro",
            Path::new("/s"),
            Path::new("/t"),
        )
        .unwrap();
        assert_eq!(
            m,
            Mount {
                host: "/s/repo".into(),
                container: "/work".into(),
                read_only: true
            }
        );
        let m = parse_mount("{tmp}/out:/out:rw", Path::new("/s"), Path::new("/t")).unwrap();
        assert!(!m.read_only && m.host == Path::new("/t/out"));
        assert!(parse_mount("/a:/b:rx", Path::new("/s"), Path::new("/t")).is_err());
        assert!(parse_mount("/a", Path::new("/s"), Path::new("/t")).is_err());
    }

    #[rstest]
    #[case("/^PONG$/", "PONG\n", true)]
    #[case("/^PONG$/", "NOPONG", false)]
    #[case("ok", "status ok", true)]
    #[case("a.c", "abc", false)]
    #[case("/a.c/", "abc", true)]
    fn text_patterns(#[case] pattern: &str, #[case] text: &str, #[case] matches: bool) {
        assert_eq!(text_matches(pattern, text).unwrap(), matches);
    }

    #[test]
    fn a_broken_regex_is_an_error() {
        assert!(text_matches("/(/", "x").is_err());
    }

    #[rstest]
    #[case("900MiB", Some(900 * 1024 * 1024))]
    #[case("1GB", Some(1_000_000_000))]
    #[case("12 parsecs", None)]
    fn sizes(#[case] text: &str, #[case] bytes: Option<u64>) {
        assert_eq!(parse_size(text), bytes);
    }

    #[rstest]
    #[case("KILL", Some(9))]
    #[case("sigterm", Some(15))]
    #[case("2", Some(2))]
    #[case("NOPE", None)]
    fn signals(#[case] name: &str, #[case] number: Option<i32>) {
        assert_eq!(signal_number(name).ok(), number);
    }
}
