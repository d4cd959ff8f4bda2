//! Compose features real projects use (issue 14 item 7): `fixtures/compose-spec/` holds one small
//! stack per feature. Each goes through `init` → `validate` → `run` green, its own suite (the
//! feature's promises) passes, and where a promise can break, a twin in `fixtures/broken/` breaks
//! exactly it. Drives the real engine.

use std::path::PathBuf;

use rstest::rstest;

mod common;
use common::{assert_failed_exactly, assert_message, fixture, run_file, stackcheck, text};

/// Every feature folder, with the compose files its suite names (in `-f` order).
fn features() -> Vec<(String, Vec<PathBuf>)> {
    let root = fixture("compose-spec");
    let mut out: Vec<(String, Vec<PathBuf>)> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("suite.yaml").is_file())
        .map(|dir| {
            let loaded = stackcheck::plan::load_file(&dir.join("suite.yaml")).unwrap();
            let files = loaded
                .suite
                .stack
                .compose
                .iter()
                .map(|f| dir.join(f))
                .collect();
            (
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                files,
            )
        })
        .collect();
    out.sort();
    out
}

/// `init` on each feature's compose files writes a suite that validates, and a run of all of them
/// (ephemeral ports: the committed suites may run at the same time) passes every test.
#[test]
fn every_feature_goes_through_init_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let features = features();
    assert!(features.len() >= 20, "{features:?}");
    for (name, files) in &features {
        common::init_suite(
            files,
            &dir.path().join(format!("{name}.yaml")),
            &format!("init-{name}"),
        );
    }
    let o = stackcheck(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    common::run_dir_green(dir.path(), features.len());
}

/// Each feature's own suite: the promises that feature makes, all kept.
#[test]
fn every_feature_keeps_its_promises() {
    let suites: Vec<String> = features()
        .iter()
        .map(|(name, _)| {
            fixture(&format!("compose-spec/{name}/suite.yaml"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut args: Vec<&str> = vec!["validate"];
    args.extend(suites.iter().map(String::as_str));
    let o = stackcheck(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    args[0] = "run";
    args.extend(["--json", json.to_str().unwrap()]);
    let o = stackcheck(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = common::valid_report(&json);
    assert_eq!(report["suites"].as_array().unwrap().len(), suites.len());
    assert_eq!(report["counts"]["failed"], 0);
}

/// The twins: each breaks one feature's promise, and exactly that test fails, saying why.
#[rstest]
#[case::udp_port_with_nothing_bound(
    "spec-udp-unbound",
    "broken-spec-udp-unbound::service::server::ports",
    "nothing is bound to UDP port 5353 in `server`'s network namespace"
)]
#[case::read_only_made_writable(
    "spec-read-only-writable",
    "broken-spec-read-only-writable::checks::the root filesystem refuses writes",
    "exit code 0, expected 1"
)]
#[case::one_of_two_replicas_exits(
    "spec-replica-exits",
    "broken-spec-replica-exits::service::worker::state",
    "of 2: `worker` exited with code 3"
)]
#[case::second_replica_not_listening(
    "spec-replica-not-listening",
    "broken-spec-replica-not-listening::service::worker::ports",
    "replica 2 of 2: 127.0.0.1:18322-18323:8000: nothing listens on container port 8000"
)]
#[case::second_replica_does_not_hold(
    "spec-replica-does-not-hold",
    "broken-spec-replica-does-not-hold::service::worker::state",
    "replica 2 of 2: `worker` did not stay running: it is exited:3 now"
)]
#[case::grace_period_left_at_the_default(
    "spec-grace-period-default",
    "broken-spec-grace-period-default::checks::stop_grace_period cuts a 4 s shutdown at 2 s",
    "exited:0"
)]
#[case::shutdown_hook_wipes_the_store(
    "spec-stop-hook-wipes",
    "broken-spec-stop-hook-wipes::checks::the store keeps its data across down and up",
    "step 3 (exec check) failed"
)]
#[case::build_target_dev_instead_of_runtime(
    "spec-build-target-dev",
    "broken-spec-build-target-dev::image::api::labels",
    "label stage=\"dev\", expected \"runtime\""
)]
#[case::profile_not_enabled(
    "spec-profile-not-enabled",
    "broken-spec-profile-not-enabled::service::admin::state",
    "`admin` was not started: it is behind profile [\"admin\"], which `stack.profiles` [\"debug\"] does not enable"
)]
fn a_broken_feature_fails_exactly_its_promise(
    #[case] twin: &str,
    #[case] test: &str,
    #[case] why: &str,
) {
    let r = run_file(&fixture(&format!("broken/{twin}/suite.yaml")));
    assert_failed_exactly(&r, &[test]);
    assert_message(&r, test, why);
}

/// A profile no service uses is a typo: bad input, exit 2, with where and a did-you-mean.
#[test]
fn a_profile_no_service_uses_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.yaml");
    let compose = fixture("compose-spec/profiles/docker-compose.yml");
    std::fs::write(
        &suite,
        format!(
            "suite: typo\nstack:\n  compose: [{}]\n  profiles: [debgu]\n",
            compose.display()
        ),
    )
    .unwrap();
    let o = stackcheck(&["validate", suite.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains(":4:"), "{out}");
    assert!(out.contains("stack.profiles: `debgu` is not a profile of the compose files (profiles: admin, debug); did you mean `debug`?"), "{out}");
}

/// A scenario's `down` skips a grace only where nothing can tell: `store` and `worker` (Python
/// PID 1s without a SIGTERM handler) are killed at once, but `store` only after `drainer`'s
/// shutdown hook has reached it (the goodbye line is there after `up`). The broken twin (the hook
/// wipes the store) fails for the same reason: the hook ran, as it does in a real `down`.
#[test]
fn a_down_skips_only_the_grace_nothing_can_observe() {
    let r = run_file(&fixture("compose-spec/stop-signals/suite.yaml"));
    let name = "spec-stop-signals::checks::the store keeps its data and hears the drainer's goodbye across down and up";
    assert_failed_exactly(&r, &[]);
    assert_message(
        &r,
        name,
        "killed at once, not after an idle grace (PID 1 drops its stop signal; no shutdown was running): store, worker)",
    );
}
