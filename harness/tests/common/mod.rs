//! Running a suite file against the real engine, and reading its report, for the fixture tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stackcheck::checks::{Outcome, Status};
use stackcheck::engine::Engine;
use stackcheck::report::Quiet;
use stackcheck::run::SuiteReport;

/// A path under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

pub fn run_file(path: &Path) -> SuiteReport {
    let loaded = stackcheck::suite::load_file(path).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::connect(Duration::from_secs(5))
            .await
            .expect("a Docker engine (run ci/engine.sh)");
        stackcheck::run::run_suite(&loaded, &engine, &Quiet).await
    })
}

pub fn failed(report: &SuiteReport) -> BTreeSet<String> {
    report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| o.name.clone())
        .collect()
}

pub fn outcome<'a>(report: &'a SuiteReport, name: &str) -> &'a Outcome {
    report
        .outcomes
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("{name} not in report"))
}

/// Exactly these tests failed, there was no infrastructure error, and nothing was left behind.
pub fn assert_failed_exactly(report: &SuiteReport, expected: &[&str]) {
    assert!(
        report.infra_error.is_none(),
        "infrastructure error: {:?}",
        report.infra_error
    );
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(failed(report), want, "outcomes: {:#?}", report.outcomes);
    let leaks = outcome(report, &format!("{}::teardown::no-leaks", report.suite));
    assert_eq!(leaks.status, Status::Passed, "{}", leaks.message);
}

/// The failure of `name` says `needle` in its message.
pub fn assert_message(report: &SuiteReport, name: &str, needle: &str) {
    let o = outcome(report, name);
    assert!(
        o.message.contains(needle),
        "{name}: {:?} does not contain {needle:?}",
        o.message
    );
}

/// The failure of `name` carries the container's diagnostics (health checks, last 50 log lines).
pub fn assert_diagnostics(report: &SuiteReport, name: &str) {
    let o = outcome(report, name);
    assert!(
        o.detail.contains("--- last 50 log lines ---"),
        "{name}: no log lines in detail: {:?}",
        o.detail
    );
}
