//! One masking rule for every writer, on `fixtures/masking` (a Django-style stack whose services
//! take every credential from `env_file`s, with the password inside the database user and name)
//! and its twin `fixtures/broken/masking` (failures whose evidence quotes those values): the
//! password appears in no output — console, test names, JUnit, JSON, summary, logs directory,
//! `cargo nextest list` — while a password equal to the image's name, which no report can hide,
//! is named once as a policy finding and never half-masked. Drives the real engine and binary.

mod common;

use common::{conformance_binary, root, run_with_reports};

const SECRET: &str = "hello_django";

fn run(suite: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stackcheck"));
    cmd.current_dir(root()).args(["run", "-v", suite]);
    run_with_reports(cmd, dir.path(), SECRET)
}

/// How often `needle` appears in `all`.
fn count(all: &str, needle: &str) -> usize {
    all.matches(needle).count()
}

#[test]
fn a_secret_inside_other_values_is_masked_in_every_output_and_names_alike() {
    let (code, all) = run("fixtures/masking/suite.yaml");
    assert_eq!(code, Some(0), "{all}");
    // The test name carries the secret: masked in the PASS line, JUnit and JSON alike.
    assert!(all.contains("PASS"), "{all}");
    assert!(
        all.contains("masking::checks::db serves ****_dev  exit 0"),
        "{all}"
    );
    assert!(
        all.contains("\"name\": \"masking::checks::db serves ****_dev\""),
        "{all}"
    );
    assert!(count(&all, "db serves ****_dev") >= 3, "{all}");
    // `postgres` is a password and the image's name: named once by its variable, never hidden
    // in one output and shown in another.
    assert!(
        all.contains("ADMIN_PASSWORD cannot be masked in reports (the same as `postgres`, a name in the stack)"),
        "{all}"
    );
    assert!(all.contains("postgres:15-alpine"), "{all}");
    assert!(!all.contains("****:15-alpine"), "{all}");
    // `DEBUG=1` is an env-file value too short to hide, but no secret by its name: no finding.
    assert!(!all.contains("DEBUG cannot be masked"), "{all}");
}

#[test]
fn failures_quoting_a_secret_inside_other_values_mask_it_everywhere() {
    let (code, all) = run("fixtures/broken/masking/suite.yaml");
    assert_eq!(code, Some(1), "{all}");
    for failed in [
        "broken-masking::service::web::env",
        "broken-masking::checks::web says where it connects",
    ] {
        assert!(all.contains(failed), "{failed} missing:\n{all}");
    }
    // The evidence was there, masked where it was.
    assert!(all.contains("****_prod"), "{all}");
    assert!(
        all.contains("postgres://****:****@db:5432/****_prod"),
        "{all}"
    );
}

#[test]
fn the_listing_names_tests_as_the_run_reports_them() {
    let out = std::process::Command::new(conformance_binary())
        .current_dir(root())
        .env("STACKCHECK_SUITES", root().join("fixtures/masking"))
        .args(["--list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert!(
        listed.contains("masking::checks::db serves ****_dev: test"),
        "{listed}"
    );
    assert!(!listed.contains(SECRET), "{listed}");
}
