//! Proof the other way: each variant in `fixtures/broken/` breaks exactly one MT5 promise, and
//! exactly the tests stating that promise fail, with a precise message. Drives the real engine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stackcheck::checks::Status;
use stackcheck::engine::Engine;
use stackcheck::report::Quiet;
use stackcheck::run::SuiteReport;

fn variant(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/broken")
        .join(name)
        .join("suite.yaml")
}

fn run(name: &str) -> SuiteReport {
    let loaded = stackcheck::suite::load_file(&variant(name)).expect("broken suite is valid");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::connect(Duration::from_secs(5))
            .await
            .expect("a Docker engine (run ci/engine.sh)");
        stackcheck::run::run_suite(&loaded, &engine, &Quiet).await
    })
}

fn failed(report: &SuiteReport) -> BTreeSet<String> {
    report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| o.name.clone())
        .collect()
}

fn outcome<'a>(report: &'a SuiteReport, name: &str) -> &'a stackcheck::checks::Outcome {
    report
        .outcomes
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("{name} not in report"))
}

fn assert_failed_exactly(report: &SuiteReport, expected: &[&str]) {
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
