//! Hostile input: every file in `tests/hostile/` is a malformed suite (wrong types, unknown keys,
//! bad durations and ports, broken YAML, a YAML bomb, deep nesting, non-UTF-8…). Each must stop
//! `stackcheck run` with exit 2 and `file:line:column: <message>` before any engine is contacted
//! (the engine address points nowhere, so reaching it would show as exit 3), never a panic.
//! `tests/hostile/EXPECTED.tsv` holds the expected start of each message; each corpus file is its
//! own test (rstest `#[files]`), so a file without its line fails by name.
//! Two need more than the text: a check naming a service no compose file defines (resolved with
//! `docker compose config`, a client-only call) and a `{suite_dir}` mount leaving the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use rstest::rstest;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// `(position kind, message start)` of a corpus file, from EXPECTED.tsv.
fn expected(file: &str) -> Option<(String, String)> {
    let table = std::fs::read_to_string(dir().join("EXPECTED.tsv")).unwrap();
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.splitn(3, '\t').collect::<Vec<_>>())
        .find(|cols| cols[0] == file)
        .map(|cols| (cols[1].to_string(), cols[2].to_string()))
}

#[rstest]
fn a_hostile_suite_exits_2_with_its_position_and_message(
    #[files("tests/hostile/*.yaml")] path: PathBuf,
) {
    let file = path.file_name().unwrap().to_str().unwrap();
    let (pos, msg) = expected(file).unwrap_or_else(|| panic!("{file} has no line in EXPECTED.tsv"));
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["run", file])
        .current_dir(dir())
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
            lc.next().unwrap().parse::<u32>().is_ok() && lc.next().unwrap().parse::<u32>().is_ok(),
            "{file}: `{at}` is not line:column"
        );
        rest
    } else {
        rest.strip_prefix(": ").unwrap_or(rest)
    };
    assert!(
        rest.starts_with(&msg),
        "{file}: expected {msg:?}, got {rest:?}"
    );
}

/// Every line of EXPECTED.tsv names a corpus file (a renamed file leaves no stale row).
#[test]
fn every_expected_message_has_its_corpus_file() {
    let table = std::fs::read_to_string(dir().join("EXPECTED.tsv")).unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    for file in &rows {
        assert!(
            dir().join(file).is_file(),
            "EXPECTED.tsv names {file}, which is missing"
        );
    }
    assert!(rows.len() >= 50, "the corpus has {} files", rows.len());
}
