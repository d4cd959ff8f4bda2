//! `stackcheck init` round-trips (issue 7 item 1): for every fixture compose project, the suite it
//! writes validates, and a run of that suite against the stack it came from passes every test.

use std::path::{Path, PathBuf};

mod common;
use common::{stackcheck, text};

/// Every compose project among the fixtures (the broken variants excepted), with the env file
/// its suite uses. `fixtures/shared-image` is left out: its one built tag would be built and
/// removed by two runs at once (this one and `sound.rs`'s).
const PROJECTS: &[(&str, &[&str], Option<&str>)] = &[
    ("features", &["fixtures/features/docker-compose.yml"], None),
    ("flaky", &["fixtures/flaky/docker-compose.yml"], None),
    ("parallel", &["fixtures/parallel/docker-compose.yml"], None),
    (
        "mt5",
        &["fixtures/mt5/docker-compose.prod.yml"],
        Some("fixtures/mt5/.env.example"),
    ),
    (
        "keeper",
        &["fixtures/keeper/docker-compose.yml"],
        Some("fixtures/keeper/.env.example"),
    ),
    (
        "algo-trade",
        &["fixtures/algo-trade/docker-compose.yml"],
        Some("fixtures/algo-trade/.env.docker"),
    ),
    (
        "peak-trade-mlflow",
        &["fixtures/peak-trade/docker/compose.yml"],
        Some("fixtures/peak-trade/docker/.env.example"),
    ),
    (
        "peak-trade-ops",
        &["fixtures/peak-trade/docker/docker-compose.obs.yml"],
        None,
    ),
    ("holds", &["fixtures/holds/docker-compose.yml"], None),
    (
        "listeners",
        &["fixtures/listeners/docker-compose.yml"],
        None,
    ),
    (
        "upstream-defaults",
        &["fixtures/upstream-defaults/docker-compose.yml"],
        None,
    ),
];

fn scaffold(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (name, files, env) in PROJECTS {
        let suite = dir.join(format!("{name}.yaml"));
        let mut args: Vec<&str> = vec!["init"];
        args.extend(files.iter());
        args.extend(["--output", suite.to_str().unwrap(), "--name", name]);
        if let Some(env) = env {
            args.extend(["--env-file", env]);
        }
        let o = stackcheck(&args);
        assert_eq!(o.status.code(), Some(0), "init {name}: {}", text(&o));
        out.push(suite);
    }
    out
}

#[test]
fn init_writes_suites_that_validate_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let suites = scaffold(dir.path());
    let o = stackcheck(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mt5 = suites.iter().find(|s| s.ends_with("mt5.yaml")).unwrap();
    let mt5 = std::fs::read_to_string(mt5).unwrap();
    for promise in [
        "service: feature_api",
        "labels: { description: \"Feature Serving API for MT5 Trading System\"",
        "base: \"python:3.9-slim\"",
        "ports: [\"9091:9090\"]",
        "mt5-net: { driver: bridge, subnet: \"172.28.0.0/16\" }",
        "depends_on: { db: service_healthy, redis: service_healthy }",
        "# checks:",
    ] {
        assert!(mt5.contains(promise), "{promise} missing:\n{mt5}");
    }
    let o = stackcheck(&[
        "init",
        "fixtures/mt5/docker-compose.prod.yml",
        "--output",
        suites[3].to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("exists; pass --force"), "{}", text(&o));
    let o = stackcheck(&["init", "fixtures/nope/compose.yml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// The round trip on the engine: all generated suites in one run, every test passing. On
/// ephemeral ports with fast health: what `init` writes is judged the same, and the run waits
/// neither for other runs' documented ports nor for each healthcheck's written interval.
#[test]
fn every_fixture_round_trips_through_init_and_run() {
    let dir = tempfile::tempdir().unwrap();
    scaffold(dir.path());
    let json = dir.path().join("report.json");
    let o = stackcheck(&[
        "run",
        dir.path().to_str().unwrap(),
        "--ports",
        "ephemeral",
        "--health",
        "fast",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        report["suites"].as_array().unwrap().len(),
        PROJECTS.len(),
        "{out}"
    );
    assert_eq!(report["counts"]["failed"], 0, "{out}");
}

/// Quiet servers — no healthcheck, published port or restart policy, as public projects write
/// Postgres, Redis and workers — are promised to stay up, each known by its image or command; a
/// one-shot migration is left to its author. The suite passes on the stack it came from and
/// fails exactly the worker's state on the twin whose worker crashes.
#[test]
fn quiet_servers_are_promised_to_stay_up_and_their_crash_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("quiet.yaml");
    let o = stackcheck(&[
        "init",
        "fixtures/quiet-servers/docker-compose.yml",
        "--output",
        suite.to_str().unwrap(),
        "--name",
        "quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let written = std::fs::read_to_string(&suite).unwrap();
    for promise in [
        "  # PostgreSQL by its image `postgres:15-alpine`: a server, it stays up\n  db:\n    state: running",
        "  # Redis by its image `redis:7-alpine`: a server, it stays up\n  cache:\n    state: running",
        "  # Python's HTTP server by its command: a server, it stays up\n  worker:\n    state: running",
        "  # migrate:\n  #   state: running",
    ] {
        assert!(written.contains(promise), "{promise} missing:\n{written}");
    }
    let o = stackcheck(&["run", suite.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The twin: the same suite over the stack with the crashing worker.
    let twin = dir.path().join("quiet-twin.yaml");
    let override_file =
        common::root().join("fixtures/broken/quiet-servers/docker-compose.override.yml");
    let twin_text = common::with_override(&written, &override_file);
    std::fs::write(&twin, twin_text).unwrap();
    let json = dir.path().join("twin.json");
    let o = stackcheck(&[
        "run",
        twin.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        common::failed_in(&report),
        ["quiet::service::worker::state"],
        "{}",
        text(&o)
    );
}
