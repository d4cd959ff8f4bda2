//! `stack.variants`: one suite over variants of its stack (an env file per environment, an overlay
//! only staging runs). Each variant is its own run named `<suite>@<variant>` in the CLI, JSON,
//! JUnit and `list`; one variant failing fails only under its own name.

mod common;

use common::{stackcheck, text, valid_report};

#[test]
fn each_variant_runs_as_its_own_suite_with_its_files_and_env() {
    let listed = text(&stackcheck(&["list", "fixtures/variants/suite.yaml"]));
    for name in [
        "variants@dev::checks::api runs with the variant's settings",
        "variants@staging::checks::api runs with the variant's settings",
        "variants@staging::teardown::no-leaks",
    ] {
        assert!(listed.lines().any(|l| l == name), "{name}: {listed}");
    }
    assert!(!listed.contains("variants::"), "{listed}");

    let dir = tempfile::tempdir().unwrap();
    let (json, junit) = (dir.path().join("r.json"), dir.path().join("j.xml"));
    let out = stackcheck(&[
        "run",
        "fixtures/variants/suite.yaml",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = valid_report(&json);
    let suites = report["suites"].as_array().unwrap();
    let by_id = |id: &str| {
        suites
            .iter()
            .find(|s| s["suite"] == id)
            .unwrap_or_else(|| panic!("no suite {id}: {report}"))
    };
    let message = |id: &str, test: &str| {
        by_id(id)["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == format!("{id}::{test}"))
            .map(|t| t["message"].as_str().unwrap().to_string())
            .unwrap()
    };
    // Each ran with its own env file and env.
    let settings = "checks::api runs with the variant's settings";
    assert!(message("variants@dev", settings).contains("stdout: dev pg14"));
    assert!(message("variants@staging", settings).contains("stdout: staging pg15"));
    // Only staging appends the overlay that adds a worker.
    let services = |id: &str| -> Vec<String> {
        by_id(id)["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["service"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(services("variants@dev"), ["api"]);
    assert_eq!(services("variants@staging"), ["api", "worker"]);
    // Two runs, two projects.
    assert_ne!(
        by_id("variants@dev")["run"],
        by_id("variants@staging")["run"]
    );
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(
        junit.contains(r#"<testsuite name="variants@dev""#),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<testsuite name="variants@staging""#),
        "{junit}"
    );
}

#[test]
fn cargo_nextest_lists_each_variants_tests_under_its_name() {
    // What `cargo nextest list` reads: the conformance target's `--list`.
    let out = std::process::Command::new(common::conformance_binary())
        .env("STACKCHECK_SUITES", common::fixture("variants"))
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    for name in [
        "variants@dev::checks::api answers in a known mode: test",
        "variants@staging::service::api::state: test",
        "variants@staging::reports::no-secrets: test",
    ] {
        assert!(listed.lines().any(|l| l == name), "{name}: {listed}");
    }
}

#[test]
fn a_broken_variant_fails_alone_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = stackcheck(&[
        "run",
        "fixtures/broken/variants/suite.yaml",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = valid_report(&json);
    let failed = common::failed_in(&report);
    assert_eq!(
        failed,
        ["broken-variants@bad::checks::api answers in a known mode"]
    );
    let text = text(&out);
    assert!(
        text.contains("GET api:8080/: expected status 200, got 500"),
        "{text}"
    );
}

#[test]
fn a_variant_naming_a_missing_file_or_a_bad_name_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let compose = common::fixture("variants/docker-compose.yml")
        .canonicalize()
        .unwrap();
    let write = |name: &str, variants: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "suite: v\nstack:\n  compose: [\"{}\"]\n  variants:\n{variants}",
                compose.display()
            ),
        )
        .unwrap();
        path
    };
    let missing = write(
        "missing.yaml",
        "    a: {}\n    b: { compose: [nope.yml] }\n",
    );
    let out = stackcheck(&["run", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("variant `b`: stack.compose: `nope.yml` does not exist"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("(run "), "{}", text(&out));
    let bad = write("bad.yaml", "    \"pg 15\": {}\n");
    let out = stackcheck(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("bad.yaml:5:5: variant name `pg 15`"),
        "{}",
        text(&out)
    );
}
