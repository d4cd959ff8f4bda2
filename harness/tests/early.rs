//! Checks start when what they touch is ready: a runtime test whose services (and what they
//! `depends_on`) reached their promised state runs while slower services are still coming up.
//! Only a pass is earned early; an early failure runs again once the stack is up, and a check
//! whose pass could come from the rest of the stack being absent never runs early.

mod common;

use common::{fixture, labelled, stackcheck, text, valid_report};

/// Index of the outcome line (PASS/FAIL…, on stdout) of test `name`. Progress lines go to stderr,
/// so only outcome lines are compared by position.
fn line_of(console: &str, name: &str) -> usize {
    console
        .lines()
        .position(|l| !l.starts_with('·') && l.contains(&format!("] {name}  ")))
        .unwrap_or_else(|| panic!("no outcome of {name:?}:\n{console}"))
}

#[test]
fn a_check_on_a_ready_service_passes_before_a_slower_service_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let suite = fixture("early/suite.yaml");
    // stdout and stderr into one file, so that progress and outcomes keep their order.
    let both = dir.path().join("console");
    let file = std::fs::File::create(&both).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args([
            "run",
            suite.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .current_dir(common::root())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    let console = std::fs::read_to_string(&both).unwrap();
    assert_eq!(status.code(), Some(0), "{console}");
    // The image test (static) ran while the stack came up, not before `up`.
    let starting = console
        .lines()
        .position(|l| l == "· early: starting 2 services")
        .unwrap_or_else(|| panic!("{console}"));
    assert!(
        starting < line_of(&console, "early::image::python:3.9-slim::files"),
        "{console}"
    );
    // `front answers` is decided while `back` (about 20 s) is still starting.
    let early = line_of(&console, "early::checks::front answers");
    let back = line_of(&console, "early::service::back::state");
    assert!(
        console.lines().nth(early).unwrap().starts_with("PASS"),
        "{console}"
    );
    assert!(early < back, "{console}");
    // `front reaches back` also started early, failed (503: `back` was not up), and that was not
    // its verdict: it ran again with the stack up, after `back`'s state, and passed.
    assert!(
        console.contains(
            "early::checks::front reaches back failed during bring-up (GET front:8080/back: expected status 2xx, got 503"
        ),
        "{console}"
    );
    let reaches = line_of(&console, "early::checks::front reaches back");
    assert!(back < reaches, "{console}");
    assert!(
        console.lines().nth(reaches).unwrap().starts_with("PASS"),
        "{console}"
    );
    let report = valid_report(&json);
    let run = report["suites"][0]["run"].as_str().unwrap();
    assert!(labelled(&format!("io.stackcheck.run={run}")).is_empty());
}

/// The broken twin: a check expecting `front` to refuse (503) would pass if it ran while `back`
/// is still starting; it waits for the whole stack and fails, as the stack up answers 200. And
/// `fading` answers during bring-up, then exits: its state fails, and its early passes are judged
/// again (the answer fails, the image still holds).
#[test]
fn a_check_expecting_a_refusal_waits_and_an_early_pass_on_a_service_that_exits_is_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let suite = fixture("broken/early/suite.yaml");
    let out = stackcheck(&[
        "run",
        suite.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let console = text(&out);
    assert_eq!(out.status.code(), Some(1), "{console}");
    let check = line_of(
        &console,
        "broken-early::checks::front refuses while back is down",
    );
    let back = line_of(&console, "broken-early::service::back::state");
    assert!(back < check, "{console}");
    let line = console.lines().nth(check).unwrap();
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("expected status 503, got 200"), "{line}");
    assert!(
        !console.contains("front refuses while back is down failed during bring-up"),
        "{console}"
    );
    // `fading` passed `running` and its check early, then exited.
    let fading = "broken-early::checks::fading answers";
    assert!(
        console
            .lines()
            .nth(line_of(&console, fading))
            .unwrap()
            .starts_with("PASS"),
        "{console}"
    );
    let taken_back = console
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains(&format!("] {fading}  ")))
        .unwrap_or_else(|| panic!("{console}"));
    assert!(
        taken_back.contains("passed during bring-up, but `fading` did not stay in its promised state afterwards (see broken-early::service::fading::state); judged again: "),
        "{taken_back}"
    );
    // Its image promise also passed early; judged again once `fading` is gone, it still holds, as
    // it would had it not run early: the verdicts do not depend on when the exit was seen.
    let image = "broken-early::service::fading::image";
    let image_lines: Vec<&str> = console
        .lines()
        .filter(|l| l.contains(&format!("] {image}  ")))
        .collect();
    assert_eq!(image_lines.len(), 2, "{console}");
    assert!(
        image_lines.iter().all(|l| l.starts_with("PASS")),
        "{console}"
    );
    let report = valid_report(&json);
    let mut failed = common::failed_in(&report);
    failed.sort();
    assert_eq!(
        failed,
        [
            "broken-early::checks::fading answers",
            "broken-early::checks::front refuses while back is down",
            "broken-early::service::fading::state",
        ],
        "{console}"
    );
}
