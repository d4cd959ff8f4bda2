//! `run --html`: the report a person reads, rendered in a real browser (Debian's headless
//! Chromium, installed by `ci/browser.sh`). For a passing and a failing run: every test is on the
//! page, failures come before anything else, the timeline has a row for every service, a
//! screenshot is taken, and the page names nothing outside itself to fetch.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, root, stackcheck, text, valid_report};

/// The browser's path (installed on first use).
fn chromium() -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join("ci/browser.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The DOM of `page` once rendered, and a screenshot of it at `png`. Every request but the page
/// itself goes to a proxy that does not exist, so a page that needed anything from outside would
/// render without it.
fn render(page: &Path, png: &Path) -> String {
    let browser = chromium();
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        let out = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--proxy-server=127.0.0.1:9",
                "--window-size=1280,1600",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    run(&[format!("--screenshot={}", png.display())]);
    let png_bytes = std::fs::read(png).unwrap();
    assert!(png_bytes.starts_with(b"\x89PNG"), "no screenshot");
    String::from_utf8_lossy(&run(&["--dump-dom".into()]).stdout).to_string()
}

/// Runs `suite` with `--html` and `--json`; the exit code, the page's text, its rendered DOM and
/// the JSON report.
fn run_with_html(suite: &Path, dir: &Path) -> (Option<i32>, String, String, serde_json::Value) {
    let (page, json) = (dir.join("report.html"), dir.join("report.json"));
    let o = stackcheck(&[
        "run",
        suite.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let dom = render(&page, &dir.join("report.png"));
    (o.status.code(), html, dom, valid_report(&json))
}

/// Every test of the JSON report is on the page, and every service of its timeline has a row.
fn every_test_and_service_shown(dom: &str, report: &serde_json::Value) {
    for suite in report["suites"].as_array().unwrap() {
        for test in suite["tests"].as_array().unwrap() {
            let name = test["name"].as_str().unwrap();
            let row = format!("data-name=\"{}\"", name.replace('"', "&quot;"));
            assert!(dom.contains(&row), "no row for {name}");
        }
        let services = suite["timeline"]["services"].as_array().unwrap();
        assert!(!services.is_empty(), "{suite}");
        for s in services {
            let row = format!(
                "class=\"service-row\" data-service=\"{}\"",
                s["service"].as_str().unwrap()
            );
            assert!(dom.contains(&row), "no timeline row for {s}");
        }
    }
}

/// The page's own text names nothing to fetch: no remote script, style, image or font.
fn self_contained(html: &str) {
    for outside in [
        "src=", "href=", "url(", "@import", "<link", "http://", "https://",
    ] {
        assert!(
            !html.contains(outside),
            "the page refers outside itself: {outside}"
        );
    }
}

#[test]
fn a_passing_run_reads_passed_with_every_test_and_service() {
    let dir = tempfile::tempdir().unwrap();
    let (code, html, dom, report) = run_with_html(&fixture("parallel/suite.yaml"), dir.path());
    assert_eq!(code, Some(0), "{html}");
    self_contained(&html);
    assert!(
        dom.contains("<h1 id=\"verdict\" class=\"passed\">PASSED</h1>"),
        "{dom}"
    );
    assert!(!dom.contains("id=\"failures\""), "{dom}");
    every_test_and_service_shown(&dom, &report);
    // The phases of the run are drawn.
    for phase in ["bring-up", "checks", "teardown"] {
        assert!(dom.contains(&format!("class=\"phase {phase}\"")), "{phase}");
    }
}

#[test]
fn a_failing_run_shows_its_failures_first_with_what_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let (code, html, dom, report) = run_with_html(&fixture("broken/early/suite.yaml"), dir.path());
    assert_eq!(code, Some(1), "{html}");
    self_contained(&html);
    assert!(
        dom.contains("<h1 id=\"verdict\" class=\"failed\">FAILED</h1>"),
        "{dom}"
    );
    every_test_and_service_shown(&dom, &report);
    let failures = dom.find("id=\"failures\"").expect("a failures section");
    let suite = dom.find("class=\"suite\"").unwrap();
    assert!(failures < suite, "failures come first");
    let failed: Vec<&str> = common::failed_in(&report);
    assert_eq!(failed.len(), 3, "{failed:?}");
    for name in failed {
        let at = dom
            .find(&format!(
                "<details open=\"\" class=\"failure\" data-name=\"{name}\">"
            ))
            .unwrap_or_else(|| panic!("{name} is not among the failures:\n{dom}"));
        assert!(at < suite);
    }
    // What the run saw: the state that did not hold, with the time and the exit code.
    assert!(dom.contains("`fading` did not stay running"), "{dom}");
    // In the tests table, the failures are the first rows.
    let table = &dom[dom.find("class=\"tests\"").unwrap()..];
    let first_pass = table.find("data-status=\"passed\"").unwrap();
    let last_fail = table.rfind("data-status=\"failed\"").unwrap();
    assert!(last_fail < first_pass);
    // `fading` exited during the run: its timeline row says with which code.
    assert!(dom.contains("exited 124"), "{dom}");
    // The timeline has what explains a wait: `back`'s healthcheck pace, from the engine.
    let services = report["suites"][0]["timeline"]["services"]
        .as_array()
        .unwrap();
    let back = services.iter().find(|s| s["service"] == "back").unwrap();
    assert_eq!(back["healthcheck"], "every 1s", "{back}");
    assert_eq!(back["state"], "healthy", "{back}");
    assert!(
        back["ready_ms"].as_u64() > back["started_ms"].as_u64(),
        "{back}"
    );
}

/// A stack compose builds (`build:` and no `image:`) and a scenario: the build's steps and the
/// scenario's steps are bars of their own, and the build's slow step is named among the run's
/// longest waits. The Dockerfile's step echoes a value new on each run, so it is never cached.
#[test]
fn build_steps_and_scenario_steps_are_drawn_and_a_slow_step_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let unique = format!("{:?}", std::time::SystemTime::now());
    let files = [
        (
            "Dockerfile",
            format!("FROM python:3.11-slim\nRUN echo '{unique}' && sleep 2\nCMD [\"python3\", \"-c\", \"import time; time.sleep(10**9)\"]\n"),
        ),
        ("docker-compose.yml", "services:\n  app:\n    build: .\n    init: true\n".into()),
        (
            "suite.yaml",
            "suite: steps\nstack: { compose: [docker-compose.yml], timeout: 3m }\nservices:\n  app: { state: running }\nchecks:\n  - name: app comes back\n    steps:\n      - restart: app\n      - state: { service: app, is: running, within: 30s }\n".into(),
        ),
    ];
    for (name, body) in &files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let (page, json) = (dir.path().join("r.html"), dir.path().join("r.json"));
    let o = stackcheck(&[
        "run",
        dir.path().join("suite.yaml").to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(0), "{said}");
    // The build's step, timed from its log, is the run's longest wait with its cause.
    assert!(
        said.contains("the build of `app` took") && said.contains("most in `RUN echo"),
        "{said}"
    );
    let report = valid_report(&json);
    let builds = report["suites"][0]["timeline"]["builds"]
        .as_array()
        .unwrap();
    let slow = builds
        .iter()
        .find(|b| b["step"].as_str().unwrap().starts_with("RUN echo"));
    let slow = slow.unwrap_or_else(|| panic!("{builds:?}"));
    assert!(slow["duration_ms"].as_u64() >= Some(2000), "{slow}");
    // The scenario's steps are timed within their test, one after the other.
    let tests = report["suites"][0]["tests"].as_array().unwrap();
    let scenario = tests
        .iter()
        .find(|t| t["name"].as_str().unwrap().ends_with("app comes back"))
        .unwrap();
    let steps = scenario["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{scenario}");
    assert_eq!(steps[0]["step"], "restart app", "{scenario}");
    assert!(
        steps[1]["offset_ms"].as_u64() >= steps[0]["duration_ms"].as_u64(),
        "{scenario}"
    );
    let dom = render(&page, &dir.path().join("r.png"));
    assert!(
        dom.contains("class=\"build-row\" data-image=\"app\""),
        "{dom}"
    );
    assert_eq!(dom.matches("class=\"step-row\"").count(), 2, "{dom}");
    assert!(dom.contains("1. restart app"), "{dom}");
}
