//! Bounded memory for whatever a stack prints (issue 17, item 5): `fixtures/loud` prints a
//! gigabyte on a command's stdout, in an HTTP body, in its log and from a one-off run. Every byte
//! is still judged — a pattern on the very last line is found, so the checks that exclude it fail,
//! naming the line — and the harness's peak RSS stays under 100 MB (it kept everything before).

use std::process::Command;

mod common;
use common::{fixture, test_status, valid_report};

/// Peak RSS allowed for the harness while a stack prints gigabytes.
const PEAK_RSS_LIMIT_KB: u64 = 100 * 1024;
/// The last line of each gigabyte: 1024 × 1024 lines of 1 KiB, then `the end`.
const LAST_LINE: &str = "line 1048577 does: the end";

#[test]
fn a_gigabyte_of_output_is_judged_to_its_end_in_bounded_memory() {
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("r.json");
    let log = out_dir.path().join("console.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .arg("run")
        .arg(fixture("loud/suite.yaml"))
        .arg("--json")
        .arg(&json)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(out_dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    // The harness's own high-water mark (VmHWM), read until it exits: its children (compose, the
    // docker CLI) are not the harness.
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            peak_kb = peak_kb.max(vm_hwm_kb(&text));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let console = std::fs::read_to_string(&log).unwrap()
        + &std::fs::read_to_string(out_dir.path().join("stderr.txt")).unwrap();
    assert_eq!(status.code(), Some(1), "{console}");
    let report = valid_report(&json);
    let t = test_status(&report, "loud::checks::a gigabyte log ends as it should");
    assert_eq!(t["status"], "passed", "{t}\n{console}");
    // Each of these fails on the gigabyte's last line, and only there; stdout and the body must
    // also match that line, which is judged first: a message about the exclusion says it did.
    for (name, key) in [
        (
            "a gigabyte of stdout is judged to its last line",
            "stdout must not match",
        ),
        (
            "a gigabyte body is judged to its last line",
            "body must not match",
        ),
        (
            "the last line of a gigabyte log is seen",
            "the log of `loud` must not match",
        ),
        (
            "a gigabyte from a one-off run is seen to its end",
            "stdout must not match",
        ),
    ] {
        let t = test_status(&report, &format!("loud::checks::{name}"));
        let message = t["message"].as_str().unwrap_or_default();
        assert_eq!(t["status"], "failed", "{name}: {t}");
        assert!(
            message.contains(key) && message.contains(LAST_LINE),
            "{name}: {message}"
        );
    }
    assert!(
        peak_kb < PEAK_RSS_LIMIT_KB,
        "the harness's peak RSS was {} MB with a gigabyte of output",
        peak_kb / 1024
    );
    eprintln!("peak RSS of the harness: {} MB", peak_kb / 1024);
}

/// `VmHWM` (peak resident set) of a `/proc/<pid>/status`, in kB.
fn vm_hwm_kb(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
