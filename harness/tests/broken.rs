//! Proof the other way: each variant in `fixtures/broken/` breaks exactly one MT5 promise, and
//! exactly the tests stating that promise fail, with a precise message. Drives the real engine.

mod common;

use common::{
    assert_diagnostics, assert_failed_exactly, assert_message, fixture, outcome, run_file,
    run_file_with,
};
use stackcheck::report::SuiteReport;
use stackcheck::run::RunOptions;
use stackcheck::suite::PortsMode;

/// A broken variant, on ephemeral host ports: each breaks a promise the ports mode does not
/// touch, and so none waits for the conformance run (or another variant) holding MT5's ports.
fn run(name: &str) -> SuiteReport {
    let options = RunOptions {
        ports: Some(PortsMode::Ephemeral),
        ..RunOptions::default()
    };
    let suite = format!("broken/{name}/suite.yaml");
    if name.starts_with("features-") {
        // Over a copy of the features stack building tags of its own (`features_copy`).
        let (_copy, fixtures) = common::features_copy(&["features", &format!("broken/{name}")]);
        return run_file_with(&fixtures.join(suite), &options);
    }
    run_file_with(&fixture(&suite), &options)
}

#[test]
fn a_port_published_differently_fails_only_the_ports_check() {
    let r = run("port-changed");
    assert_failed_exactly(&r, &["broken-port-changed::service::redis::ports"]);
    let m = &outcome(&r, "broken-port-changed::service::redis::ports").message;
    assert!(
        m.contains(r#"expected ports {"6379:6379"}, compose publishes {"6380:6379"}"#),
        "{m}"
    );
}

#[test]
fn a_healthcheck_that_never_passes_fails_the_state_early_with_its_output() {
    let r = run("never-healthy");
    assert_failed_exactly(&r, &["broken-never-healthy::service::redis::state"]);
    let o = outcome(&r, "broken-never-healthy::service::redis::state");
    assert!(
        o.message.contains("`redis` became unhealthy after"),
        "{}",
        o.message
    );
    assert!(o.message.contains("expected healthy"), "{}", o.message);
    // Failing as soon as the engine marks it unhealthy, not at the end of the 2m budget.
    assert!(
        o.detail.contains("--- last health checks ---"),
        "{}",
        o.detail
    );
    assert!(
        o.detail.contains("Could not connect") || o.detail.contains("Connection refused"),
        "{}",
        o.detail
    );
    assert!(
        o.detail.contains("--- last 50 log lines ---"),
        "{}",
        o.detail
    );
}

#[test]
fn a_missing_service_fails_config_and_its_own_promises() {
    let r = run("missing-service");
    assert_failed_exactly(
        &r,
        &[
            "broken-missing-service::stack::config",
            "broken-missing-service::service::grafana::state",
            "broken-missing-service::service::grafana::ports",
        ],
    );
    let m = &outcome(&r, "broken-missing-service::stack::config").message;
    assert!(
        m.contains(r#"services named by the suite but not defined by compose: ["grafana"]"#),
        "{m}"
    );
    let m = &outcome(&r, "broken-missing-service::service::grafana::state").message;
    assert!(
        m.contains("service `grafana` is not defined in the compose files"),
        "{m}"
    );
}

#[test]
fn network_promises_fail_when_isolation_internal_and_separation_are_broken() {
    let r = run("features-network");
    let n = |s: &str| format!("broken-features-network::{s}");
    assert_failed_exactly(
        &r,
        &[
            &n("network::back"),
            &n("checks::sealed has no network"),
            &n("checks::web cannot reach the cache"),
            &n("checks::the host reaches web on its published loopback port"),
        ],
    );
    assert_message(
        &r,
        &n("checks::the host reaches web on its published loopback port"),
        "Connection refused",
    );
    assert_message(
        &r,
        &n("network::back"),
        "to be internal, but a container on it reached the harness's canary",
    );
    let sealed = n("checks::sealed has no network");
    assert_message(
        &r,
        &sealed,
        "`sealed` is not isolated: interfaces besides loopback: [\"eth0\"]",
    );
    assert_message(&r, &sealed, "default via eth0");
    assert_message(
        &r,
        &sealed,
        "reached the egress canary outside every stack network",
    );
    assert_diagnostics(&r, &sealed);
    assert_message(
        &r,
        &n("checks::web cannot reach the cache"),
        "expected cache:6379 to be unreachable from web, but a TCP connection succeeded",
    );
    // The positive reach in the same broken stack still passes: the probe is not just failing.
    assert_eq!(
        outcome(&r, &n("checks::web reaches the api by name")).status,
        stackcheck::report::Status::Passed
    );
}

#[test]
fn runtime_promises_fail_one_respect_each() {
    let r = run("features-runtime");
    let n = |s: &str| format!("broken-features-runtime::{s}");
    assert_failed_exactly(
        &r,
        &[
            &n("service::api::read_only_mounts"),
            &n("service::api::writable_mounts"),
            &n("checks::api logs that it is ready"),
            &n("checks::ops snapshot writes a report"),
            &n("checks::cache data survives down and up"),
            &n("checks::cache comes back after a crash"),
        ],
    );
    assert_message(
        &r,
        &n("service::api::read_only_mounts"),
        "expected read-only mounts in `api`: /app/config: a write succeeded",
    );
    assert_message(
        &r,
        &n("service::api::writable_mounts"),
        "/app/state: write failed (Read-only file system)",
    );
    let logs = n("checks::api logs that it is ready");
    assert_message(&r, &logs, "no log line of `api` matched");
    assert_diagnostics(&r, &logs);
    assert!(
        outcome(&r, &logs)
            .detail
            .contains("api started on port 8080"),
        "{}",
        outcome(&r, &logs).detail
    );
    assert_message(
        &r,
        &n("checks::ops snapshot writes a report"),
        "run ops snapshot: expected exit 0, got 3",
    );
    assert_message(
        &r,
        &n("checks::cache data survives down and up"),
        "step 3 (exec check) failed: stdout does not match /^42$/",
    );
    let crash = n("checks::cache comes back after a crash");
    assert_message(
        &r,
        &crash,
        "step 2 (state check) failed: expected `cache` to be healthy within 10s; it is exited:137",
    );
    assert_diagnostics(&r, &crash);
}

#[test]
fn image_promises_fail_from_metadata_and_filesystem_and_a_failed_build_carries_its_log() {
    let r = run("features-images");
    let n = |s: &str| format!("broken-features-images::{s}");
    assert_failed_exactly(
        &r,
        &[
            &n("build::broken-failing:1.0"),
            &n("image::broken-failing:1.0::files"),
            &n("image::broken-api:1.0::labels"),
            &n("image::broken-api:1.0::healthcheck"),
            &n("image::broken-api:1.0::user"),
            &n("image::broken-api:1.0::files"),
            &n("image::broken-api:1.0::base"),
            &n("image::broken-scratch:1.0::files"),
            &n("image::broken-scratch:1.0::env"),
            &n("image::broken-scratch:1.0::workdir"),
            &n("image::broken-scratch:1.0::volumes"),
        ],
    );
    // Each attribute of a file, said at once; the file that keeps its promise is not named.
    let files = &outcome(&r, &n("image::broken-scratch:1.0::files")).message;
    for part in [
        "/etc/motd has mode 0600 (expected 0644)",
        "/etc/motd is owned by 1000:1000 (expected 0:0)",
        "/etc/motd does not contain /^built FROM scratch/",
        "/etc/motd has sha256 ",
        "(expected dbbf6e7a7d5350aa8831ff9b3d8adc443bb0c3a29e7c0c7a6ee96b75bb10c3ed)",
    ] {
        assert!(files.contains(part), "{part}: {files}");
    }
    assert!(!files.contains("motd-owned"), "{files}");
    assert_message(
        &r,
        &n("image::broken-scratch:1.0::env"),
        r#"image env: MOTD_PATH="/etc/issue" (expected "/etc/motd")"#,
    );
    assert_message(
        &r,
        &n("image::broken-scratch:1.0::workdir"),
        "expected workdir /srv, the image has / (unset)",
    );
    assert_message(
        &r,
        &n("image::broken-scratch:1.0::volumes"),
        r#"expected volumes ["/data"], the image declares []"#,
    );
    let build = outcome(&r, &n("build::broken-failing:1.0"));
    assert!(
        build.detail.contains("missing-from-context.txt"),
        "{}",
        build.detail
    );
    assert_message(
        &r,
        &n("image::broken-api:1.0::labels"),
        r#"label maintainer="someone else", expected "stackcheck fixtures""#,
    );
    assert_message(
        &r,
        &n("image::broken-api:1.0::healthcheck"),
        "expected a HEALTHCHECK, the image has none",
    );
    assert_message(
        &r,
        &n("image::broken-api:1.0::user"),
        "expected user `non-root`, the image runs as `root (default)`",
    );
    assert_message(
        &r,
        &n("image::broken-api:1.0::files"),
        "/usr/bin/gcc is present (expected absent)",
    );
    assert_message(
        &r,
        &n("image::broken-api:1.0::base"),
        "expected the final stage to be FROM `python:3.9-slim`",
    );
    // The failed build did not stop the stack: its service still came up.
    assert_eq!(
        outcome(&r, &n("service::cache::state")).status,
        stackcheck::report::Status::Passed
    );
}

#[test]
fn a_docker_run_container_with_a_network_and_a_writable_repo_fails_exit_isolation_and_read_only() {
    let r = run("l3-networked");
    let n = |s: &str| format!("broken-l3-networked::{s}");
    assert_failed_exactly(
        &r,
        &[
            &n("service::l3::state"),
            &n("service::l3::read_only_mounts"),
            &n("checks::l3 has no network"),
        ],
    );
    // The dry run itself refuses to run with a network: expect_exit catches that.
    assert_message(
        &r,
        &n("service::l3::state"),
        "expected `l3` to be exited:0; it is exited:3",
    );
    let state = outcome(&r, &n("service::l3::state"));
    assert!(
        state.detail.contains("refusing to run: network interfaces"),
        "{}",
        state.detail
    );
    assert_message(
        &r,
        &n("service::l3::read_only_mounts"),
        "/work: a write succeeded",
    );
    assert_message(
        &r,
        &n("checks::l3 has no network"),
        "`l3` is not isolated: interfaces besides loopback",
    );
    assert_diagnostics(&r, &n("checks::l3 has no network"));
}

#[test]
fn a_host_listener_advertising_the_container_name_fails_only_the_host_client_check() {
    // Documented ports: the broker advertises a host port, which ephemeral ports would move.
    let r = run_file(&fixture("broken/keeper-listeners/suite.yaml"));
    let host = "broken-keeper-listeners::checks::kafka advertises localhost:9092 to the host, and a host client round-trips a message";
    assert_failed_exactly(&r, &[host]);
    // The in-network listener still works, and the failure names what the host was told.
    assert_message(&r, host, "advertised ['kafka:9092']");
}

#[test]
fn secrets_in_output_and_logs_never_reach_the_console_or_junit() {
    let junit = std::env::temp_dir().join(format!("stackcheck-secrets-{}.xml", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args([
            "run",
            "-v",
            "fixtures/broken/secrets-leak/suite.yaml",
            "--junit",
        ])
        .arg(&junit)
        // As CI passes a connection string: in the process environment, read by compose.
        .env("DATABASE_URL", "postgres://app:url-pass-4321@db:5432/app")
        .current_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap(),
        )
        .output()
        .unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    let _ = std::fs::remove_file(&junit);
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{console}");
    for (name, text) in [("console", &console), ("junit", &xml)] {
        for secret in [
            "tok-4b1d-leak-me-please",
            "pw-leak-me-9876",
            "literal-signing-key-5150",
            "url-pass-4321",
            "cache-pass-7788",
        ] {
            assert!(!text.contains(secret), "{name} shows {secret}:\n{text}");
        }
        // The failures really carried them: masked where they were.
        assert!(
            text.contains("token is ****"),
            "{name}: no masked log line:\n{text}"
        );
        assert!(
            text.contains("password ****"),
            "{name}: no masked stderr:\n{text}"
        );
        assert!(
            text.contains("signing with ****"),
            "{name}: no masked compose-file secret:\n{text}"
        );
        // Only the password of a URL is hidden; the rest still says where it connects.
        assert!(
            text.contains(
                "connecting to postgres://app:****@db:5432/app and redis://:****@cache:6379/0"
            ),
            "{name}: no masked URL credentials:\n{text}"
        );
    }
}

/// Fail early: a crash loop under `restart: always` is failed as one (after a bounded number of
/// restarts), not waited out until the 5-minute budget ends; its neighbour is judged on its own.
#[test]
fn a_crash_loop_fails_as_one_not_at_the_end_of_the_budget() {
    let r = run("crash-loop");
    assert_failed_exactly(&r, &["broken-crash-loop::service::looper::state"]);
    let o = outcome(&r, "broken-crash-loop::service::looper::state");
    assert!(
        o.message.contains("`looper` is crash-looping: restarted")
            && o.message.contains("last exit code 3"),
        "{}",
        o.message
    );
    assert!(
        o.detail.contains("cannot start: config missing"),
        "{}",
        o.detail
    );
}

/// `--fail-fast`: the run stops at the first failure (the crash loop), reports the rest as not
/// run, still tears down, and exits 1.
#[test]
fn fail_fast_stops_at_the_first_failure_and_still_tears_down() {
    let junit = std::env::temp_dir().join(format!("stackcheck-ff-{}.xml", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args([
            "run",
            "--fail-fast",
            "fixtures/broken/crash-loop/suite.yaml",
            "--junit",
        ])
        .arg(&junit)
        .current_dir(fixture("..").canonicalize().unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let _ = std::fs::remove_file(&junit);
    assert!(
        xml.contains("not run: --fail-fast: `broken-crash-loop::service::looper::state` failed"),
        "{xml}"
    );
    let steady = "broken-crash-loop::checks::steady answers";
    assert!(
        stdout
            .lines()
            .all(|l| !l.contains(steady) || l.starts_with("SKIP")),
        "a check ran after the first failure:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("SKIP") && l.contains(steady)),
        "the check not run is reported as skipped:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("PASS") && l.contains("broken-crash-loop::teardown::no-leaks")),
        "{stdout}"
    );
}
