//! JUnit XML (quick-junit): one `<testsuite>` per suite, one `<testcase>` per test, named as in
//! the CLI and in `cargo nextest list`.

use std::path::Path;
use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use super::{Ending, Outcome, Status, SuiteReport};

/// Writes JUnit XML: one `<testsuite>` per suite, with its properties.
pub fn write_junit(path: &Path, reports: &[SuiteReport]) -> std::io::Result<()> {
    let mut report = Report::new("stackcheck");
    let mut total = Duration::ZERO;
    for r in reports {
        let mut suite = TestSuite::new(r.suite.as_str());
        let time = Duration::from_millis(r.duration_ms);
        total += time;
        suite.set_time(time);
        suite.add_properties(properties(r));
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
            let mut case = TestCase::new(o.name.as_str(), status(o));
            case.set_classname(r.suite.as_str());
            case.set_time(Duration::from_millis(o.duration_ms));
            let note = match o.ending() {
                Ending::Failed | Ending::Skipped => None,
                // Passed with a note: the test still counts as passed.
                Ending::Warned => Some(format!("WARNING (passed with warning): {}", o.message)),
                Ending::Quarantined => Some(format!(
                    "QUARANTINED (failure reported as a warning): {}",
                    o.message
                )),
                Ending::Flaky => Some(format!("FLAKY: {}{}", o.message, o.flaky_note())),
                Ending::Passed => Some(o.message.clone()),
            };
            if let Some(note) = note {
                case.set_system_out(note);
            } else if !o.logs.is_empty() {
                case.set_system_out(o.logs.as_str());
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

fn status(o: &Outcome) -> TestCaseStatus {
    if o.status == Status::Skipped {
        let mut s = TestCaseStatus::skipped();
        s.set_message(o.message.as_str());
        s.set_type("stackcheck.skipped");
        return s;
    }
    if o.status == Status::Failed {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(o.message.as_str());
        s.set_type("stackcheck.failure");
        s.set_description(if o.detail.is_empty() {
            o.message.clone()
        } else {
            format!("{}\n\n{}", o.message, o.detail)
        });
        return s;
    }
    let mut s = TestCaseStatus::success();
    // Each failed attempt before the pass becomes a `<flakyFailure>` (as nextest writes them).
    s.add_reruns(o.flaky.iter().map(|m| {
        let mut run = TestRerun::new(NonSuccessKind::Failure);
        run.set_message(m.as_str());
        run.set_type("stackcheck.flaky");
        run
    }));
    s
}

/// The run's facts a CI page shows next to the results: versions and what each service ran.
fn properties(r: &SuiteReport) -> Vec<Property> {
    let mut props = vec![
        Property::new("stackcheck.version", env!("CARGO_PKG_VERSION")),
        Property::new("stackcheck.run", r.run_id.as_str()),
        Property::new("compose.project", r.project.as_str()),
        Property::new("engine.version", r.engine.as_str()),
        Property::new(
            "stackcheck.health",
            if r.fast_health { "fast" } else { "documented" },
        ),
    ];
    if !r.compose.is_empty() {
        props.push(Property::new("compose.version", r.compose.as_str()));
    }
    for i in &r.images {
        let key = |what: &str| format!("image.{}.{what}", i.service);
        props.push(Property::new(key("name"), i.image.as_str()));
        props.push(Property::new(key("id"), i.id.as_str()));
        props.push(Property::new(key("source"), i.source()));
        for d in &i.digests {
            props.push(Property::new(key("digest"), d.as_str()));
        }
        if let Some(what) = &i.standin {
            let key = key(if i.built { "standin_base" } else { "standin" });
            props.push(Property::new(key, what.as_str()));
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::Outcome;
    use super::*;

    #[test]
    fn a_warning_passes_with_a_note() {
        let outcome = |name: &str, status, warning, message: &str| Outcome {
            name: name.into(),
            status,
            warning,
            message: message.into(),
            detail: String::new(),
            duration_ms: 1,
            started_ms: 0,
            flaky: Vec::new(),
            quarantined: false,
            logs: String::new(),
            steps: Vec::new(),
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
                Outcome {
                    flaky: vec!["attempt 1: GET a:80/ → 503".into()],
                    ..outcome("s::checks::up", Status::Passed, false, "GET a:80/ → 200")
                },
                Outcome {
                    quarantined: true,
                    ..outcome(
                        "s::checks::known",
                        Status::Passed,
                        true,
                        "quarantined: timed out",
                    )
                },
            ],
            infra_error: None,
            kept: None,
            fast_health: false,
            logs: Vec::new(),
            interrupted: false,
            duration_ms: 2,
            probes: Vec::new(),
            compose: "2.40.3".into(),
            images: vec![crate::report::ServiceImage {
                service: "a".into(),
                image: "redis:7".into(),
                id: "sha256:abc".into(),
                digests: vec!["redis@sha256:def".into()],
                standin: Some("Debian redis".into()),
                built: false,
                pulled: true,
            }],
            built: Vec::new(),
            timeline: Default::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.xml");
        write_junit(&path, &[report]).unwrap();
        let xml = std::fs::read_to_string(path).unwrap();
        assert!(
            xml.contains("tests=\"4\"") && xml.contains("failures=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<flakyFailure message="attempt 1: GET a:80/ → 503" type="stackcheck.flaky""#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                "FLAKY: GET a:80/ → 200 (flaky: passed on attempt 2; attempt 1: GET a:80/ → 503)"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("QUARANTINED (failure reported as a warning): quarantined: timed out"),
            "{xml}"
        );
        for prop in [
            r#"<property name="compose.version" value="2.40.3"/>"#,
            r#"<property name="engine.version" value="e"/>"#,
            r#"<property name="image.a.id" value="sha256:abc"/>"#,
            r#"<property name="image.a.standin" value="Debian redis"/>"#,
            r#"<property name="image.a.source" value="pulled"/>"#,
            r#"<property name="image.a.digest" value="redis@sha256:def"/>"#,
        ] {
            assert!(xml.contains(prop), "{prop} missing: {xml}");
        }
        assert!(
            xml.contains("WARNING (passed with warning): warning: `a` uses `x:latest`"),
            "{xml}"
        );
    }
}
