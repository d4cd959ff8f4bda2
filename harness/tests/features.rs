//! Proof one way: the conforming fixtures pass every promise kind of the suite format against the
//! real engine (fixtures/features: compose; fixtures/l3: a stack started by `docker run`).
//! `broken.rs` proves the other way.

mod common;

use common::{assert_failed_exactly, fixture, outcome, run_file};
use stackcheck::report::Status;

#[test]
fn the_features_fixture_keeps_every_promise() {
    let r = run_file(&fixture("features/suite.yaml"));
    assert_failed_exactly(&r, &[]);
    // Every kind really ran (a renamed or skipped check would make this set shrink).
    for name in [
        "features::checks::sealed has no network",
        "features::checks::web cannot reach the cache",
        "features::network::back",
        "features::service::api::read_only_mounts",
        "features::checks::api logs that it is ready",
        "features::checks::ops snapshot writes a report",
        "features::checks::cache data survives down and up",
        "features::checks::cache comes back after a crash",
        "features::checks::cache stops, starts and restarts on request",
        "features::image::features-scratch:1.0::files",
        "features::image::features-scratch:1.0::env",
        "features::image::features-scratch:1.0::workdir",
        "features::image::features-scratch:1.0::volumes",
        "features::image::features-api:1.0::files",
        "features::image::features-api:1.0::workdir",
        "features::image::features-api:1.0::base",
        "features::policy::no_default_credentials",
    ] {
        assert_eq!(outcome(&r, name).status, Status::Passed, "{name}");
    }
    // A crash on first start is waited out (the restart policy brings it back), and said.
    let starter = &outcome(&r, "features::service::starter::state").message;
    assert!(
        starter.contains("healthy after")
            && starter.contains("(restarted 1× by its restart policy)"),
        "{starter}"
    );
    assert!(outcome(&r, "features::network::back")
        .message
        .contains("cannot leave it"));
    assert!(outcome(&r, "features::network::front")
        .message
        .contains("reached"));
    assert_probes_stayed_home(&r);
}

/// Probes stay home: every address a network probe connected to was loopback, a service of the
/// stack, or an address of a container or network the run created — and the isolation,
/// reachability, egress and smoke probes all recorded theirs (so the list cannot be vacuous).
fn assert_probes_stayed_home(r: &stackcheck::report::SuiteReport) {
    let homes: Vec<&str> = r.probes.iter().map(|p| p.home.as_str()).collect();
    for p in &r.probes {
        let ok = p.home == "loopback"
            || p.home.starts_with("service ")
            || p.home.starts_with("container ")
            || p.home.starts_with("gateway of network ");
        assert!(ok, "{} probed as {:?}", p.target, p.home);
    }
    for kind in ["loopback", "service ", "container ", "gateway of network "] {
        assert!(
            homes.iter().any(|h| h.starts_with(kind)),
            "no probe target of kind {kind:?}: {:#?}",
            r.probes
        );
    }
}

#[test]
fn the_l3_dry_run_started_by_docker_run_keeps_its_promises() {
    let r = run_file(&fixture("l3/suite.yaml"));
    assert_failed_exactly(&r, &[]);
    let state = outcome(&r, "l3-dry-run::service::l3::state");
    assert!(state.message.contains("exited:0"), "{}", state.message);
    let iso = outcome(&r, "l3-dry-run::checks::l3 has no network");
    assert!(
        iso.message.contains("only loopback, no route"),
        "{}",
        iso.message
    );
}
