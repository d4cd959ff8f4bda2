//! A remote engine with `userland-proxy: false` (issue 14 item 2). `ci/remote-engine.sh` starts a
//! second dockerd in its own network namespace, reached over a veth at tcp://10.250.0.2:2375: to
//! a client it is remote (published ports live on its host, not on loopback), and with no
//! docker-proxy a published port with nothing behind it refuses outright. stackcheck must talk to
//! that engine for everything (compose and its own API calls alike), prove a listener there, and
//! fail a port with none, under ephemeral and documented ports. Drives real engines.

use std::process::Command;

mod common;
use common::{fixture, root, text};

/// The second engine, stopped (with its namespace) when the test ends, however it ends.
struct RemoteEngine(String);

impl RemoteEngine {
    fn start() -> RemoteEngine {
        let out = Command::new("bash")
            .arg("ci/remote-engine.sh")
            .current_dir(root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let host = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let engine = RemoteEngine(host);
        // Nothing is pulled: the image comes from the local engine.
        let image = "python:3.9-slim";
        if !engine.docker(&["image", "inspect", image]).status.success() {
            let out = Command::new("bash")
                .args([
                    "-c",
                    &format!("docker save {image} | DOCKER_HOST={} docker load", engine.0),
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
        engine
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.0)
            .output()
            .unwrap()
    }

    /// `stackcheck run` against this engine; its exit code, output and JSON report.
    fn run(&self, suite: &str, extra: &[&str]) -> (Option<i32>, String, serde_json::Value) {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("report.json");
        let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
            .args(["run", fixture(suite).to_str().unwrap()])
            .args(extra)
            .args(["--json", json.to_str().unwrap()])
            .env("DOCKER_HOST", &self.0)
            .current_dir(root())
            .output()
            .unwrap();
        let report = common::valid_report(&json);
        let run = report["suites"][0]["run"].as_str().unwrap().to_string();
        let left = self.docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.stackcheck.run={run}"),
        ]);
        assert!(
            text(&left).trim().is_empty(),
            "left on the remote engine: {}",
            text(&left)
        );
        (out.status.code(), text(&out), report)
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args(["ci/remote-engine.sh", "stop"])
            .current_dir(root())
            .output();
    }
}

#[test]
fn listeners_are_proven_on_a_remote_engine_without_the_userland_proxy() {
    let engine = RemoteEngine::start();
    let host = engine
        .0
        .trim_start_matches("tcp://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    for ports in ["ephemeral", "documented"] {
        let (code, out, report) = engine.run("listeners/suite.yaml", &["--ports", ports]);
        assert_eq!(code, Some(0), "{ports}: {out}");
        let live = common::test_status(&report, "listeners::checks::api accepts TCP on 8000");
        assert!(
            live["message"]
                .as_str()
                .unwrap()
                .contains(&format!("(via {host}:")),
            "{ports}: the check went to the remote engine's host: {live}"
        );

        let (code, out, report) = engine.run("broken/no-listener/suite.yaml", &["--ports", ports]);
        assert_eq!(code, Some(1), "{ports}: {out}");
        for name in [
            "broken-no-listener::service::api::ports",
            "broken-no-listener::checks::api accepts TCP on 8000",
        ] {
            let t = common::test_status(&report, name);
            assert_eq!(t["status"], "failed", "{ports}: {t}");
            // No proxy: the engine's host refuses outright.
            let why = t["message"].as_str().unwrap();
            assert!(
                why.contains(&format!("nothing listens on container port 8000: {host}:"))
                    && why.contains("refused a TCP connection"),
                "{ports}: {why}"
            );
        }
        let state = common::test_status(&report, "broken-no-listener::service::api::state");
        assert_eq!(state["status"], "passed", "{ports}: {state}");
    }
}
