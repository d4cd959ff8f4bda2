//! Podman as the engine (issue 16, item 5): Debian's Podman 4.3 serving the Docker API on its own
//! socket (`STACKCHECK_ENGINE=podman bash ci/engine.sh`), with the images it needs copied into its
//! store (`ci/images.sh`). The features suite runs on it through the CLI with `DOCKER_HOST`.
//!
//! What Podman 4.3 really does differently is a verdict, never a pass: exec-form healthchecks with
//! spaces are split (the service is unhealthy there) and compose's containers are killed on stop
//! (no grace period). Both fail with the engine's reason; a stack written for those limits passes
//! every promise kind.

use std::path::Path;
use std::process::Command;

mod common;
use common::{root, test_status, text};

const SOCKET: &str = "unix:///run/podman/podman.sock";

/// Podman up with the features images, via the CI scripts (idempotent: seconds when done).
fn podman() {
    for script in ["ci/engine.sh", "ci/images.sh"] {
        let mut cmd = Command::new("bash");
        cmd.arg(script).env("STACKCHECK_ENGINE", "podman");
        if script == "ci/images.sh" {
            cmd.arg("mt5");
        }
        let out = cmd.current_dir(root()).output().unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out));
    }
}

/// `stackcheck run SUITE --json` on Podman; exit code, console and the JSON report.
/// Host ports are the host's, not one engine's, and docker runs of the features fixture elsewhere
/// in the test run claim 18081 on the other engine: a run here either publishes ephemeral ports
/// or its own copy of the fixture publishes another fixed port.
fn run_on_podman(suite: &Path, ports: &str) -> (Option<i32>, String, serde_json::Value) {
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["run", "--ports", ports])
        .arg(suite)
        .arg("--json")
        .arg(&json)
        .env("DOCKER_HOST", SOCKET)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .current_dir(root())
        .output()
        .unwrap();
    let console = text(&out);
    let report = common::valid_report(&json);
    (out.status.code(), console, report)
}

fn status(report: &serde_json::Value, name: &str) -> String {
    test_status(report, name)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn message(report: &serde_json::Value, name: &str) -> String {
    test_status(report, name)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The report names Podman and its version, the run left nothing on Podman.
fn assert_podman_run(report: &serde_json::Value) {
    let suite = &report["suites"][0];
    let engine = suite["engine"].as_str().unwrap();
    assert!(
        engine.starts_with("Podman 4.") && engine.ends_with(&format!("at {SOCKET} (DOCKER_HOST)")),
        "{engine}"
    );
    let run = suite["run"].as_str().unwrap();
    // Asked of Podman itself, not through the harness.
    let left = common::cli_labelled("podman", &format!("io.stackcheck.run={run}"));
    assert_eq!(left, Vec::<String>::new());
}

/// The features stack as written: what Podman 4.3 breaks fails with the engine's reason; the
/// promises it keeps pass, among them the ones only Podman-specific work makes true: healthchecks
/// run (no systemd here), the image's HEALTHCHECK read (libpod), an internal network proven
/// internal and a normal one proven open (Podman isolates networks from each other).
#[test]
fn features_as_written_fail_only_where_podman_breaks_them() {
    podman();
    let features = root().join("fixtures/features/suite.yaml");
    let (code, out, report) = run_on_podman(&features, "ephemeral");
    assert_eq!(code, Some(1), "{out}");
    for service in ["web", "api"] {
        let name = format!("features::service::{service}::state");
        assert_eq!(status(&report, &name), "failed", "{out}");
        let m = message(&report, &name);
        assert!(
            m.contains("became unhealthy")
                && m.contains("not as written")
                && m.contains("containers/podman#26519"),
            "{m}"
        );
    }
    // Under ephemeral ports, a host command naming the documented port would reach whatever
    // else holds it (a docker run of this fixture, in this test run): it fails, never passes.
    let host = "features::checks::the host reaches web on its published loopback port";
    assert_eq!(status(&report, host), "failed", "{out}");
    let m = message(&report, host);
    assert!(
        m.contains("names host port 18081, which this run does not publish"),
        "{m}"
    );
    let stop = "features::checks::cache stops, starts and restarts on request";
    assert_eq!(status(&report, stop), "failed", "{out}");
    let m = message(&report, stop);
    assert!(
        m.contains("exited:137") && m.contains("containers/podman#19139"),
        "{m}"
    );
    for passed in [
        "features::image::features-api:1.0::healthcheck",
        "features::service::cache::state",
        "features::service::sealed::state",
        "features::service::starter::state",
        "features::network::back",
        "features::network::front",
        "features::checks::sealed has no network",
        "features::checks::web cannot reach the cache",
        "features::checks::cache comes back after a crash",
        "features::teardown::no-leaks",
    ] {
        assert_eq!(
            status(&report, passed),
            "passed",
            "{passed}: {}\n{out}",
            message(&report, passed)
        );
    }
    assert_podman_run(&report);
}

/// The features stack in the shape Podman 4.3 keeps (healthchecks in the shell form, a grace
/// period for the cache, `back` not internal and the cache on `front` too, since CNI's dnsname
/// serves no internal network and a container on two networks asks one of their resolvers):
/// every promise kind passes on Podman: state, ports, http, exec, reach, isolation, logs, one-off
/// runs, scenarios, image metadata.
#[test]
fn features_promises_hold_on_podman() {
    podman();
    let dir = tempfile::tempdir().unwrap();
    let copy = Command::new("cp")
        .arg("-a")
        .arg(root().join("fixtures/features/."))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", text(&copy));
    let edit = |file: &str, from: &str, to: &str| {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit(
        "docker-compose.yml",
        r#"test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8080/health', timeout=2)"]"#,
        r#"test: ["CMD-SHELL", "python3 -c \"import urllib.request; urllib.request.urlopen('http://localhost:8080/health', timeout=2)\""]"#,
    );
    edit(
        "docker-compose.yml",
        r#"test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('localhost', 8081), 2)"]"#,
        r#"test: ["CMD-SHELL", "python3 -c \"import socket; socket.create_connection(('localhost', 8081), 2)\""]"#,
    );
    edit(
        "docker-compose.yml",
        "    volumes: [\"cache_data:/data\"]\n",
        "    volumes: [\"cache_data:/data\"]\n    stop_grace_period: 10s\n",
    );
    edit("docker-compose.yml", "back: { internal: true }", "back: {}");
    // dnsname answers each network's names on that network's own resolver, and a container on
    // two networks gets their resolvers in random order: api finds the cache by name only if
    // both know it. The cache joins `front` too, so web reaching it is no longer a broken promise.
    edit(
        "docker-compose.yml",
        "networks: [back]\n    restart: unless-stopped",
        "networks: [back, front]\n    restart: unless-stopped",
    );
    edit(
        "suite.yaml",
        "  - name: web cannot reach the cache\n    reach: { from: web, to: \"cache:6379\", expect: unreachable }\n",
        "",
    );
    edit(
        "suite.yaml",
        "back: { internal: true }",
        "back: { internal: false }",
    );
    // Its own host port, so that `from_host` reaches this stack and no docker run's.
    edit(
        "docker-compose.yml",
        "127.0.0.1:18081:8081",
        "127.0.0.1:18181:8081",
    );
    edit("suite.yaml", "localhost:18081/", "localhost:18181/");
    let (code, out, report) = run_on_podman(&dir.path().join("suite.yaml"), "documented");
    assert_eq!(code, Some(0), "{out}");
    assert_podman_run(&report);
}
