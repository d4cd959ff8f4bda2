//! What a quiet service says, for `init --observe`: a worker that serves no port still says it is
//! starting, ready, connected or polling. That line, with what varies from one start to the next (numbers,
//! a container id, a time) made a pattern, becomes a `logs` check: a worker that comes up doing
//! nothing (an idle or broken command) never says it.

use super::look::Promise;
use super::q;

/// Words a line of a service that is up and working says.
const WORKING: &str =
    r"(?i)\b(ready|starting|started|listening|running|connected|consuming|polling)\b";

/// Longest line written as a promise (a longer one is mostly data).
const LONGEST: usize = 160;

/// The `logs` check for `service` from its log so far: its first line that says it is working,
/// unless that line holds a secret.
pub(super) fn said(service: &str, log: &str, secrets: &[String]) -> Option<Promise> {
    let working = regex::Regex::new(WORKING).ok()?;
    let line = log
        .lines()
        .map(str::trim)
        .filter(|l| l.len() <= LONGEST && working.is_match(l))
        .find(|l| !secrets.iter().any(|s| l.contains(s.as_str())))?;
    let (pattern, varies) = pattern(line);
    // A line written `/…/` would be read as a pattern: it is written as one.
    let contains = if varies || (line.starts_with('/') && line.ends_with('/')) {
        format!("/{pattern}/")
    } else {
        line.to_string()
    };
    Some(Promise {
        name: format!("{service} says it is working"),
        seen: format!("said in its log while watched: {line:?}"),
        keys: vec![format!(
            "logs: {{ service: {}, contains: {}, within: 30s }}",
            q(service),
            q(&contains)
        )],
    })
}

/// The line as a regex in which every number and every long hex run (an id, a hash) matches any
/// other; whether anything was replaced.
fn pattern(line: &str) -> (String, bool) {
    let Ok(varying) = regex::Regex::new(r"[0-9a-fA-F]{8,}|\d+") else {
        return (regex::escape(line), false);
    };
    let (mut out, mut last, mut varies) = (String::new(), 0, false);
    for m in varying.find_iter(line) {
        out.push_str(&regex::escape(&line[last..m.start()]));
        out.push_str(match m.as_str().len() >= 8 {
            true => "[0-9a-fA-F]+",
            false => r"\d+",
        });
        last = m.end();
        varies = true;
    }
    out.push_str(&regex::escape(&line[last..]));
    (out, varies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_working_line_is_promised_with_what_varies_as_a_pattern() {
        let log = "booting\n[2026-12-07 15:00:01] celery@3f9a2b7c1d4e ready.\nworker ready\n";
        let p = said("worker", log, &[]).unwrap();
        assert_eq!(
            p.keys[0],
            r#"logs: { service: worker, contains: "/\\[\\d+\\-\\d+\\-\\d+ \\d+:\\d+:\\d+\\] celery@[0-9a-fA-F]+ ready\\./", within: 30s }"#
        );
        let plain = said("worker", "worker ready\n", &[]).unwrap();
        assert_eq!(
            plain.keys[0],
            r#"logs: { service: worker, contains: "worker ready", within: 30s }"#
        );
        // A line holding a secret is never written; nothing working said: no promise.
        assert!(said(
            "w",
            "connected to redis://:s3cret-pw@cache\n",
            &["s3cret-pw".into()]
        )
        .is_none());
        assert!(said("w", "booting\n", &[]).is_none());
    }
}
