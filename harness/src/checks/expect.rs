//! Judging an answer against the parts of `expect` that hold for more than one kind of check:
//! output that must or must not match (streamed, see `engine::output`), response headers, JSONPath values and time bounds. Each
//! returns the failure message a person can act on: what was expected, what was found, where.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::{Captured, Watching};
use crate::suite::{text_matches, Expect, Pattern};
use crate::text::snippet;

/// The patterns of `expect` to watch for while a command's output streams past.
pub(super) fn watching(expect: &Expect) -> Watching {
    Watching {
        stdout: patterns([&expect.stdout, &expect.stdout_excludes]),
        stderr: patterns([&expect.stderr, &expect.stderr_excludes]),
    }
}

/// Compiled patterns (each was compiled once at load time, so none fails here).
pub(super) fn patterns<'a>(written: impl IntoIterator<Item = &'a Option<String>>) -> Vec<Pattern> {
    written
        .into_iter()
        .flatten()
        .filter_map(|p| Pattern::new(p).ok())
        .collect()
}

/// The output matches `pattern` (substring or `/regex/`): the whole text when it was kept whole,
/// else some line of it.
pub(super) fn matches(key: &str, pattern: &str, out: &Captured) -> Result<(), String> {
    let p = Pattern::new(pattern).map_err(|e| e.to_string())?;
    if out.matches(&p) {
        return Ok(());
    }
    Err(format!(
        "{key} does not match {pattern}; {key}: {}",
        snippet(&out.text(), 300)
    ))
}

/// No line of the output matches `pattern`; else the first that does, with its number.
pub(super) fn excludes(key: &str, pattern: &str, out: &Captured) -> Result<(), String> {
    let p = Pattern::new(pattern).map_err(|e| e.to_string())?;
    match out.found(&p) {
        None => Ok(()),
        Some((n, line)) => Err(format!(
            "{key} must not match {pattern}, but line {n} does: {}",
            snippet(line, 200)
        )),
    }
}

/// `expect.stdout`/`stderr` match and their `_excludes` do not.
pub(super) fn output_ok(
    expect: &Expect,
    stdout: &Captured,
    stderr: &Captured,
) -> Result<(), String> {
    for (stream, out, must, must_not) in [
        ("stdout", stdout, &expect.stdout, &expect.stdout_excludes),
        ("stderr", stderr, &expect.stderr, &expect.stderr_excludes),
    ] {
        if let Some(p) = must {
            matches(stream, p, out)?;
        }
        if let Some(p) = must_not {
            excludes(stream, p, out)?;
        }
    }
    Ok(())
}

/// Every wanted response header is present (name case-insensitive) with the text, or matching
/// the `/regex/`; a header sent several times passes when one of its values does.
pub(super) fn headers(
    want: &BTreeMap<String, String>,
    got: &reqwest::header::HeaderMap,
) -> Result<(), String> {
    for (name, pattern) in want {
        let values: Vec<String> = got
            .get_all(name.to_ascii_lowercase().as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if values.is_empty() {
            let mut present: Vec<&str> = got.keys().map(|k| k.as_str()).collect();
            present.dedup();
            return Err(format!(
                "response has no `{name}` header (it has: {})",
                present.join(", ")
            ));
        }
        let ok = values.iter().any(|v| header_matches(pattern, v));
        if !ok {
            return Err(format!(
                "header `{name}`: expected {}, got {}",
                shown_pattern(pattern),
                values
                    .iter()
                    .map(|v| format!("`{}`", snippet(v, 120)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// A header value is exact text unless written as `/regex/`.
fn header_matches(pattern: &str, value: &str) -> bool {
    if is_regex(pattern) {
        text_matches(pattern, value).unwrap_or(false)
    } else {
        value == pattern
    }
}

fn is_regex(pattern: &str) -> bool {
    pattern.len() >= 2 && pattern.starts_with('/') && pattern.ends_with('/')
}

fn shown_pattern(pattern: &str) -> String {
    if is_regex(pattern) {
        pattern.to_string()
    } else {
        format!("`{pattern}`")
    }
}

/// Every node each path selects equals the wanted value, or (a `/regex/` string) matches it; a
/// path that selects nothing fails.
pub(super) fn jsonpath(
    want: &BTreeMap<String, serde_json::Value>,
    body: &serde_json::Value,
) -> Result<(), String> {
    for (path, value) in want {
        let query = serde_json_path::JsonPath::parse(path)
            .map_err(|e| format!("`{path}` is not an RFC 9535 path: {e}"))?;
        let nodes = query.query_located(body);
        if nodes.is_empty() {
            return Err(format!("jsonpath `{path}` selected nothing in the body"));
        }
        let count = nodes.len();
        for node in nodes.iter() {
            if !json_matches(value, node.node()) {
                let at = node.location().to_string();
                let which = if count == 1 {
                    String::new()
                } else {
                    format!(" at {at} (one of {count} nodes)")
                };
                return Err(format!(
                    "jsonpath `{path}`{which}: expected {}, found {}",
                    shown_value(value),
                    snippet(&node.node().to_string(), 200)
                ));
            }
        }
    }
    Ok(())
}

/// Equal (numbers by value: `1` is `1.0`), or a `/regex/` string matching a scalar's text.
fn json_matches(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (want, got) {
        (Value::String(p), _) if is_regex(p) => {
            let text = match got {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => got.to_string(),
                _ => return false,
            };
            text_matches(p, &text).unwrap_or(false)
        }
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

fn shown_value(v: &serde_json::Value) -> String {
    match v.as_str() {
        Some(p) if is_regex(p) => p.to_string(),
        _ => v.to_string(),
    }
}

/// How long one attempt of a check may take: its default bound, or the check's `within` when that
/// is longer (a promise of three minutes is not cut at one).
pub(super) fn attempt_bound(default: Duration, expect: &Expect) -> Duration {
    expect.within.map_or(default, |w| w.0.max(default))
}

/// The answer came within the bound.
pub(super) fn within(what: &str, limit: Option<Duration>, took: Duration) -> Result<(), String> {
    match limit {
        Some(limit) if took > limit => Err(format!(
            "{what} took {:.2}s, more than `within: {}`",
            took.as_secs_f64(),
            crate::suite::Dur(limit)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[test]
    fn a_longer_within_is_the_attempt_bound_and_a_shorter_one_is_not() {
        let ten = Duration::from_secs(10);
        let with = |w: Option<u64>| Expect {
            within: w.map(|s| crate::suite::Dur(Duration::from_secs(s))),
            ..Default::default()
        };
        assert_eq!(attempt_bound(ten, &with(None)), ten);
        assert_eq!(attempt_bound(ten, &with(Some(2))), ten);
        assert_eq!(
            attempt_bound(ten, &with(Some(180))),
            Duration::from_secs(180)
        );
    }

    #[rstest]
    #[case("/error/i", "ok\nall fine\n", None)]
    #[case(
        "/(?i)error/",
        "ok\nan ERROR here\nmore\n",
        Some("line 2 does: an ERROR here")
    )]
    #[case(
        "Traceback",
        "x\ny\nTraceback (most recent call last):\n",
        Some("line 3 does: Traceback")
    )]
    fn excluded_text_names_the_line(
        #[case] pattern: &str,
        #[case] text: &str,
        #[case] want: Option<&str>,
    ) {
        let out = Captured::of(text, &[Pattern::new(pattern).unwrap()]);
        match (excludes("body", pattern, &out), want) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => assert!(e.contains(w), "{e}"),
            (r, w) => panic!("{r:?} vs {w:?}"),
        }
    }

    fn header_map(pairs: &[(&'static str, &'static str)]) -> reqwest::header::HeaderMap {
        let mut m = reqwest::header::HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, reqwest::header::HeaderValue::from_static(v));
        }
        m
    }

    #[rstest]
    #[case("Location", "/transfers/", "/transfers/7", None)]
    #[case("location", "/^/transfers/[0-9]+$/", "/transfers/7", None)]
    #[case("location", "/transfers/", "/transfers/7", None)]
    #[case(
        "location",
        "/transfers",
        "/transfers/7",
        Some("expected `/transfers`, got `/transfers/7`")
    )]
    #[case("location", "/^/x/", "/transfers/7", Some("expected /^/x/"))]
    #[case(
        "etag",
        "abc",
        "/transfers/7",
        Some("no `etag` header (it has: location)")
    )]
    fn response_headers(
        #[case] name: &str,
        #[case] pattern: &str,
        #[case] value: &'static str,
        #[case] want: Option<&str>,
    ) {
        let got = header_map(&[("location", value)]);
        let expected: BTreeMap<String, String> = [(name.to_string(), pattern.to_string())].into();
        match (headers(&expected, &got), want) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => assert!(e.contains(w), "{e}"),
            (r, w) => panic!("{r:?} vs {w:?}"),
        }
    }

    #[rstest]
    #[case("$.fee", json!(1), None)]
    #[case("$.fee", json!(1.0), None)]
    #[case("$.fee", json!(2), Some("jsonpath `$.fee`: expected 2, found 1"))]
    #[case("$.items[*].id", json!("/^a[0-9]$/"), None)]
    #[case("$.items[*].id", json!("/^a1$/"), Some("at $['items'][1]['id'] (one of 2 nodes): expected /^a1$/, found \"a2\""))]
    #[case("$.missing", json!(1), Some("selected nothing"))]
    #[case("$.fee", json!("/^[0-9]+$/"), None)]
    #[case("$.items", json!("/a/"), Some("expected /a/"))]
    fn jsonpath_values(
        #[case] path: &str,
        #[case] value: serde_json::Value,
        #[case] want: Option<&str>,
    ) {
        let body = json!({"fee": 1, "items": [{"id": "a1"}, {"id": "a2"}]});
        let expected: BTreeMap<String, serde_json::Value> = [(path.to_string(), value)].into();
        match (jsonpath(&expected, &body), want) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => assert!(e.contains(w), "{e}"),
            (r, w) => panic!("{r:?} vs {w:?}"),
        }
    }

    #[rstest]
    #[case(None, 5000, true)]
    #[case(Some(2000), 1999, true)]
    #[case(Some(2000), 2001, false)]
    fn time_bounds(#[case] limit: Option<u64>, #[case] took: u64, #[case] ok: bool) {
        let r = within(
            "the response",
            limit.map(Duration::from_millis),
            Duration::from_millis(took),
        );
        assert_eq!(r.is_ok(), ok, "{r:?}");
    }
}
