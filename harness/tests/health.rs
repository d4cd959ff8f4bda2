//! `health: fast` (`run --health fast`): the run's override makes every healthcheck poll each
//! second with the written interval × retries as its retry budget, keeps the written test, and
//! every report says so; a healthcheck that never passes still fails under it.

mod common;

use std::process::Command;

use common::{fixture, labelled, stackcheck, text, valid_report};

/// `docker inspect` of the one container of a compose project: its healthcheck, as JSON.
fn healthcheck(project: &str) -> serde_json::Value {
    let ids = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&ids.stdout).trim().to_string();
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Healthcheck}}", &id])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {id}"))
}

#[test]
fn fast_health_polls_every_second_with_the_written_test_and_says_so_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (json, junit, md) = (
        dir.path().join("r.json"),
        dir.path().join("j.xml"),
        dir.path().join("s.md"),
    );
    let suite = fixture("slow-health/suite.yaml");
    let out = stackcheck(&[
        "run",
        suite.to_str().unwrap(),
        "--keep",
        "always",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--summary",
        md.to_str().unwrap(),
    ]);
    let console = text(&out);
    assert_eq!(out.status.code(), Some(0), "{console}");
    let report = valid_report(&json);
    let project = report["suites"][0]["project"].as_str().unwrap().to_string();
    let hc = healthcheck(&project);
    let down = stackcheck(&["down", suite.to_str().unwrap()]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));

    // Every second, 30 s × 3 retries of budget, the written test and timeout.
    assert_eq!(hc["Interval"], 1_000_000_000u64, "{hc}");
    assert_eq!(hc["Retries"], 90, "{hc}");
    assert_eq!(hc["Timeout"], 3_000_000_000u64, "{hc}");
    assert_eq!(hc["Test"][0], "CMD", "{hc}");
    assert_eq!(hc["Test"][1], "python3", "{hc}");

    assert_eq!(report["suites"][0]["health"], "fast");
    assert!(
        console.contains("slow-health: health fast: healthchecks polled every 1 s"),
        "{console}"
    );
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(
        junit.contains(r#"<property name="stackcheck.health" value="fast"/>"#),
        "{junit}"
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("Fast health: `slow-health`"), "{md}");
    let run = report["suites"][0]["run"].as_str().unwrap();
    assert!(labelled(&format!("io.stackcheck.run={run}")).is_empty());
}

#[test]
fn a_healthcheck_that_never_passes_still_fails_under_fast_health() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = stackcheck(&[
        "run",
        "fixtures/broken/slow-health/suite.yaml",
        "--json",
        json.to_str().unwrap(),
    ]);
    let console = text(&out);
    assert_eq!(out.status.code(), Some(1), "{console}");
    let report = valid_report(&json);
    let failed = common::failed_in(&report);
    assert_eq!(
        failed,
        ["broken-slow-health::service::sick::state"],
        "{console}"
    );
    assert!(console.contains("unhealthy"), "{console}");
}
