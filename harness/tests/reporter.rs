//! What people read, under snapshot tests: the console lines, the closing summary, the Markdown
//! summary, JUnit, the JSON report and the HTML page of one fixed result set (`tests/reporter/results.json`:
//! two suites with a pass, a failure with its detail, two skips of one cause, a flaky pass, a
//! warning, a quarantined failure, fast health, a kept stack, log files and a timeline). A wording change is
//! a visible diff in `tests/snapshots/`, reviewed like code (`cargo insta review`, or
//! `INSTA_UPDATE=always` to rewrite them).

use std::path::Path;

use stackcheck::report::{
    closing, outcome_line, summary_markdown, write_json, write_junit, Status, SuiteReport,
};

fn results() -> Vec<SuiteReport> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reporter/results.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn console_lines_and_closing_summary() {
    let reports = results();
    let mut text = String::new();
    let mut causes = std::collections::HashSet::new();
    for o in reports.iter().flat_map(|r| &r.outcomes) {
        // As the console prints them: a skip's cause once, then `(same cause)`.
        let repeated = o.status == Status::Skipped && !causes.insert(o.message.clone());
        let message = if repeated { "(same cause)" } else { &o.message };
        text += &outcome_line(o, message);
        text.push('\n');
    }
    let (notes, counts) = closing(&reports);
    text += &format!("--- stderr ---\n{notes}--- stdout ---\n{counts}");
    insta::assert_snapshot!("console", text);
}

#[test]
fn markdown_summary() {
    insta::assert_snapshot!("summary", summary_markdown(&results()));
}

#[test]
fn junit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    write_junit(&path, &results()).unwrap();
    let text = std::fs::read_to_string(path).unwrap().replace(
        &format!("value=\"{}\"", env!("CARGO_PKG_VERSION")),
        "value=\"[version]\"",
    );
    insta::assert_snapshot!("junit", text);
}

#[test]
fn json_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    write_json(&path, &results(), 41500).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    // The version moves with every release; everything else is the report's wording.
    let text = text.replace(
        &format!("\"stackcheck\": \"{}\"", env!("CARGO_PKG_VERSION")),
        "\"stackcheck\": \"[version]\"",
    );
    insta::assert_snapshot!("json", text);
}

#[test]
fn html_report() {
    insta::assert_snapshot!("html", stackcheck::report::html(&results()));
}
