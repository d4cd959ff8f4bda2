//! Issue 21, proof from outside: a cargo project made in a temporary folder depends on this crate
//! by path, with a three-line nextest target over a copy of `fixtures/outside` and one rstest test
//! that uses `Stack`. `cargo nextest list` there names the suite's tests as the CLI does, `cargo
//! nextest run` passes, and nothing of either is left on the engine.

mod common;

use std::path::Path;
use std::process::Command;

const MANIFEST: &str = r#"[package]
name = "uses-stackcheck"
version = "0.0.0"
edition = "2021"
publish = false

# Its own workspace, wherever the temporary folder is.
[workspace]

[dev-dependencies]
stackcheck = { path = "HARNESS" }
rstest = "0.26"
tokio = { version = "1", features = ["full"] }
# The features this repository's own dev-dependencies turn on in crates stackcheck uses, so that
# the dependencies its test build compiled are reused here instead of compiled a second time,
# for different features, beside every other engine test (minutes of CPU on a fresh clone).
hashbrown = "0.17"
num-bigint = "0.4"
regex-automata = { version = "0.4", features = ["dfa-search", "nfa", "perf"] }
serde_json = { version = "1", features = ["float_roundtrip"] }

[[test]]
name = "stacks"
harness = false
"#;

const TARGET: &str = r#"fn main() {
    stackcheck::nextest::main("tests/stacks");
}
"#;

const STACK_TEST: &str = r#"use std::io::{Read, Write};

use rstest::rstest;
use stackcheck::report::Status;
use stackcheck::suite::{HealthMode, PortsMode};
use stackcheck::Stack;

#[rstest]
#[case::its_root("/")]
#[tokio::test]
async fn the_web_service_answers_on_its_published_port(#[case] path: &str) {
    let stack = Stack::builder("tests/stacks/suite.yaml")
        .ports(PortsMode::Ephemeral)
        .health(HealthMode::Fast)
        .filter("outside::service::*")
        .up()
        .await
        .unwrap();
    let addr = stack.host_port("web", 8000).await.unwrap();
    let mut http = std::net::TcpStream::connect(&addr).unwrap();
    write!(http, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert_eq!(stack.base_url("web", 8000).await.unwrap(), format!("http://{addr}"));
    let out = stack.exec("web", ["python3", "-c", "print('inside')"]).await.unwrap();
    assert_eq!((out.exit, out.stdout.text().trim()), (0, "inside"));
    assert!(stack.project().starts_with("sc-outside-"), "{}", stack.project());
    // The request above is in the server's log.
    let logs = stack.logs("web", 20).await.unwrap();
    assert!(logs.contains(&format!("\"GET {path} HTTP/1.0\" 200")), "{logs}");
    let report = stack.check().await;
    let failed: Vec<_> = report.outcomes.iter().filter(|o| o.status == Status::Failed).collect();
    assert!(failed.is_empty() && report.infra_error.is_none(), "{failed:?} {:?}", report.infra_error);
    assert!(stack.host_port("web", 9).await.is_err(), "a port the service does not publish");
    stack.down().await.unwrap();
}

#[tokio::test]
#[should_panic(expected = "a test that fails while it holds a stack")]
async fn a_failing_test_still_takes_its_stack_down() {
    let _stack = Stack::up("tests/stacks/suite.yaml").await.unwrap();
    panic!("a test that fails while it holds a stack");
}

/// Run alone by the outer test, which kills it outright while it holds the stack.
#[tokio::test]
#[ignore]
async fn holds_its_stack_until_killed() {
    let stack = Stack::up("tests/stacks/suite.yaml").await.unwrap();
    println!("up: {}", stack.project());
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
}
"#;

/// This repository's `[profile.*]` sections, as a project would set its own: with the same
/// profile the dependencies this build compiled are reused, instead of compiled again for a
/// profile of their own (minutes on a fresh clone's cold target folder), and stackcheck built as
/// the workspace builds it.
fn profiles() -> String {
    let manifest = std::fs::read_to_string(common::root().join("Cargo.toml")).unwrap();
    let mut keep = false;
    let mut out = String::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            keep = line.starts_with("[profile.");
        }
        if keep && !line.trim_start().starts_with('#') {
            out += line;
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "the workspace sets the dev profile");
    // stackcheck is a member there, built as the workspace's own crate, not as a dependency.
    out + "[profile.dev.package.stackcheck]\nopt-level = 0\ndebug = \"line-tables-only\"\n"
}

/// `cargo nextest <args>` in `project`, with this build's target folder (the dependencies are
/// compiled already) and none of the outer nextest run's variables.
fn nextest(project: &Path, args: &[&str]) -> std::process::Output {
    let deps = common::conformance_binary();
    let target = deps.ancestors().nth(3).unwrap();
    let mut cmd = Command::new("cargo");
    cmd.arg("nextest")
        .args(args)
        .arg("--offline")
        .current_dir(project)
        .env("CARGO_TARGET_DIR", target);
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("NEXTEST") || k.starts_with("CARGO_"))
    {
        cmd.env_remove(k);
    }
    cmd.env("CARGO_TARGET_DIR", target).output().unwrap()
}

#[test]
fn another_crate_runs_its_suites_under_nextest_and_holds_a_stack_in_its_own_tests() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let harness = common::root().join("harness");
    std::fs::write(
        p.join("Cargo.toml"),
        MANIFEST.replace("HARNESS", &harness.display().to_string()) + &profiles(),
    )
    .unwrap();
    // The versions this repository builds with, so nothing new is resolved or compiled.
    std::fs::copy(common::root().join("Cargo.lock"), p.join("Cargo.lock")).unwrap();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(p.join("src/lib.rs"), "").unwrap();
    std::fs::create_dir_all(p.join("tests/stacks")).unwrap();
    std::fs::write(p.join("tests/stacks.rs"), TARGET).unwrap();
    std::fs::write(p.join("tests/web.rs"), STACK_TEST).unwrap();
    for f in ["suite.yaml", "docker-compose.yml"] {
        std::fs::copy(
            common::fixture("outside").join(f),
            p.join("tests/stacks").join(f),
        )
        .unwrap();
    }
    assert_eq!(TARGET.lines().count(), 3, "the target is three lines");

    let list = nextest(p, &["list", "--message-format", "oneline"]);
    let listed = common::text(&list);
    assert!(list.status.success(), "{listed}");
    for name in [
        "stacks outside::stack::config",
        "stacks outside::service::web::state",
        "stacks outside::checks::the web root answers",
        "stacks outside::teardown::no-leaks",
        "stacks outside::reports::no-secrets",
        "web the_web_service_answers_on_its_published_port::case_1_its_root",
    ] {
        assert!(
            listed.lines().any(|l| l.ends_with(name)),
            "{name} not listed:\n{listed}"
        );
    }

    let run = nextest(p, &["run", "--no-fail-fast"]);
    let out = common::text(&run);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("7 tests run: 7 passed, 1 skipped"), "{out}");
    assert_eq!(common::docker_labelled(SUITE), Vec::<String>::new());

    // Killed outright while it holds the stack: the watcher it left takes the stack down.
    let binary = newest(&deps_dir(), "web-");
    let mut held = Command::new(&binary)
        .args([
            "--ignored",
            "--exact",
            "holds_its_stack_until_killed",
            "--nocapture",
        ])
        .current_dir(p)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(held.stdout.take().unwrap()));
    let up = lines.find(|l| l.as_ref().is_ok_and(|l| l.starts_with("up: ")));
    assert!(up.is_some(), "the stack never came up");
    assert!(
        !common::docker_labelled(SUITE).is_empty(),
        "nothing to leak"
    );
    held.kill().unwrap();
    held.wait().unwrap();
    let (gone, left) =
        common::wait_for(SUITE, std::time::Duration::from_secs(30), |l| l.is_empty());
    assert!(gone, "left 30 s after SIGKILL: {}", left.describe());
}

const SUITE: &str = "io.stackcheck.suite=outside";

fn deps_dir() -> std::path::PathBuf {
    common::conformance_binary().parent().unwrap().to_path_buf()
}

/// The newest test binary whose name starts with `prefix` in `deps`.
fn newest(deps: &Path, prefix: &str) -> std::path::PathBuf {
    std::fs::read_dir(deps)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(prefix) && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no {prefix}* binary in {}", deps.display()))
}
