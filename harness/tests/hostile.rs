//! Hostile input: every file in `tests/hostile/` is a malformed suite (wrong types, unknown keys,
//! bad durations and ports, broken YAML, a YAML bomb, deep nesting, non-UTF-8…). Each must stop
//! `stackcheck run` with exit 2 and `file:line:column: <message>` before any engine is contacted
//! (the engine address points nowhere, so reaching it would show as exit 3), never a panic.
//! `tests/hostile/EXPECTED.tsv` holds the expected start of each message.
//! Two need more than the text: a check naming a service no compose file defines (resolved with
//! `docker compose config`, a client-only call) and a `{suite_dir}` mount leaving the repository.

use std::path::Path;
use std::process::Command;

#[test]
fn every_hostile_suite_exits_2_with_its_position_and_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut cols = line.splitn(3, '\t');
        let (file, pos, msg) = (
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap(),
        );
        let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
            .args(["run", file])
            .current_dir(&dir)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(!err.contains("panicked"), "{file}: {err}");
        let rest = err
            .strip_prefix(&format!("error: {file}"))
            .unwrap_or_else(|| panic!("{file}: not prefixed by its name: {err}"));
        let rest = if pos == "pos" {
            let (at, rest) = rest
                .strip_prefix(':')
                .and_then(|r| r.split_once(": "))
                .unwrap_or_else(|| panic!("{file}: no line:column: {err}"));
            let mut lc = at.split(':');
            assert!(
                lc.next().unwrap().parse::<u32>().is_ok()
                    && lc.next().unwrap().parse::<u32>().is_ok(),
                "{file}: `{at}` is not line:column"
            );
            rest
        } else {
            rest.strip_prefix(": ").unwrap_or(rest)
        };
        assert!(
            rest.starts_with(msg),
            "{file}: expected {msg:?}, got {rest:?}"
        );
        checked += 1;
    }
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(
        checked, files,
        "every corpus file has a line in EXPECTED.tsv"
    );
    assert!(checked >= 40, "the corpus has {checked} files");
}
