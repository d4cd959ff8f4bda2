//! JUnit XML (quick-junit): one `<testsuite>` per suite, one `<testcase>` per test, named as in
//! the CLI and in `cargo nextest list`.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::checks::Status;
use crate::run::SuiteReport;

pub fn write_junit(path: &Path, reports: &[SuiteReport]) -> std::io::Result<()> {
    let mut report = Report::new("stackcheck");
    let mut total = Duration::ZERO;
    for r in reports {
        let mut suite = TestSuite::new(r.suite.as_str());
        let time = Duration::from_millis(r.duration_ms);
        total += time;
        suite.set_time(time);
        let mut out = format!(
            "project {} (run {}), engine {}\n",
            r.project, r.run_id, r.engine
        );
        if let Some(about) = &r.about {
            out.push_str(&format!("about: {about}\n"));
        }
        if let Some(e) = &r.infra_error {
            out.push_str(&format!("infrastructure error: {e}\n"));
        }
        suite.set_system_out(out);
        for o in &r.outcomes {
            let status = match o.status {
                Status::Passed => TestCaseStatus::success(),
                Status::Failed => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(o.message.as_str());
                    s.set_type("stackcheck.failure");
                    s.set_description(if o.detail.is_empty() {
                        o.message.clone()
                    } else {
                        format!("{}\n\n{}", o.message, o.detail)
                    });
                    s
                }
            };
            let mut case = TestCase::new(o.name.as_str(), status);
            case.set_classname(r.suite.as_str());
            case.set_time(Duration::from_millis(o.duration_ms));
            if o.status == Status::Passed {
                // Passed with a warning: the note says so, the test still counts as passed.
                let out = if o.warning {
                    format!("WARNING (passed with warning): {}", o.message)
                } else {
                    o.message.clone()
                };
                case.set_system_out(out);
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.set_time(total);
    let file = std::fs::File::create(path)?;
    report
        .serialize(std::io::BufWriter::new(file))
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;

    #[test]
    fn a_warning_passes_with_a_note() {
        let outcome = |name: &str, status, warning, message: &str| Outcome {
            name: name.into(),
            status,
            warning,
            message: message.into(),
            detail: String::new(),
            duration_ms: 1,
        };
        let report = SuiteReport {
            suite: "s".into(),
            about: None,
            project: "p".into(),
            run_id: "r".into(),
            engine: "e".into(),
            outcomes: vec![
                outcome(
                    "s::policy::no_latest_tags",
                    Status::Passed,
                    true,
                    "warning: `a` uses `x:latest`",
                ),
                outcome(
                    "s::policy::resource_limits",
                    Status::Failed,
                    false,
                    "resource_limits: `a` has no memory limit",
                ),
            ],
            infra_error: None,
            interrupted: false,
            duration_ms: 2,
            probes: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.xml");
        write_junit(&path, &[report]).unwrap();
        let xml = std::fs::read_to_string(path).unwrap();
        assert!(
            xml.contains("tests=\"2\"") && xml.contains("failures=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("WARNING (passed with warning): warning: `a` uses `x:latest`"),
            "{xml}"
        );
    }
}
