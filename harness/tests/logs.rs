//! `run --logs-dir DIR`: each service's whole log in `DIR/<suite>/<service>.log`, masked, written
//! before teardown on a failing run and on Ctrl-C; a failing test's JUnit `<system-out>` carries
//! the last lines of the services it touches (and only those).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{labelled, run_id, text};

const TOKEN: &str = "s3cr3t-token-4711";

/// A stack of two services in `dir`: `talker` prints the token it was given, a line on stderr and
/// then a numbered line every 0.2 s; `quiet` prints one line. Its suite `id` has a check that
/// fails on `talker`.
fn stack(dir: &Path, id: &str) -> PathBuf {
    std::fs::write(dir.join(".env"), format!("API_TOKEN={TOKEN}\n")).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        r#"services:
  talker:
    image: python:3.9-slim
    environment: { API_TOKEN: "${API_TOKEN}" }
    command: ["sh", "-c", "echo \"starting with token $$API_TOKEN\"; echo to-stderr >&2; i=0; while true; do echo tick $$i; i=$$((i+1)); sleep 0.2; done"]
  quiet:
    image: python:3.9-slim
    command: ["sh", "-c", "echo quiet-started; exec sleep 1000000"]
"#,
    )
    .unwrap();
    let suite = dir.join("suite.yaml");
    std::fs::write(
        &suite,
        format!(
            r#"suite: {id}
stack: {{ compose: [docker-compose.yml], env_file: .env, timeout: 2m }}
services:
  talker: {{ state: running }}
  quiet: {{ state: running }}
checks:
  - name: talker has a config file
    exec: {{ service: talker, cmd: [test, -f, /etc/talker.conf] }}
"#
        ),
    )
    .unwrap();
    suite
}

#[test]
fn a_failing_run_leaves_every_service_log_masked_and_the_tail_in_junit() {
    let dir = tempfile::tempdir().unwrap();
    let suite = stack(dir.path(), "logs-red");
    let logs = dir.path().join("logs");
    let (junit, summary) = (dir.path().join("j.xml"), dir.path().join("s.md"));
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .arg("run")
        .arg(&suite)
        .arg("--logs-dir")
        .arg(&logs)
        .arg("--junit")
        .arg(&junit)
        .arg("--summary")
        .arg(&summary)
        .output()
        .unwrap();
    let console = text(&out);
    assert_eq!(out.status.code(), Some(1), "{console}");
    let folder = logs.join("logs-red");
    assert!(
        console.contains(&format!(
            "logs-red: logs in {}/ (quiet.log, talker.log)",
            folder.display()
        )),
        "{console}"
    );

    let talker = std::fs::read_to_string(folder.join("talker.log")).unwrap();
    let quiet = std::fs::read_to_string(folder.join("quiet.log")).unwrap();
    assert!(talker.contains("starting with token ****"), "{talker}");
    assert!(
        talker.contains("to-stderr"),
        "stderr is in the log: {talker}"
    );
    assert!(talker.contains("tick 0\n"), "{talker}");
    // Every line carries the engine's timestamp.
    assert!(
        talker
            .lines()
            .all(|l| l.starts_with("20") && l.as_bytes().get(10) == Some(&b'T')),
        "{talker}"
    );
    assert!(quiet.contains("quiet-started"), "{quiet}");

    let junit = std::fs::read_to_string(&junit).unwrap();
    let case = junit
        .split("<testcase ")
        .find(|c| c.contains("talker has a config file"))
        .unwrap();
    assert!(case.contains("<failure"), "{case}");
    assert!(case.contains("--- last lines of `talker` ---"), "{case}");
    assert!(case.contains("tick "), "{case}");
    assert!(
        !case.contains("quiet-started"),
        "a service it does not touch: {case}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("### Service logs"), "{md}");
    assert!(md.contains("talker.log"), "{md}");

    for (what, t) in [
        ("console", &console),
        ("talker.log", &talker),
        ("junit", &junit),
        ("summary", &md),
    ] {
        assert!(!t.contains(TOKEN), "the token leaked into {what}");
    }
    assert!(labelled(&format!("io.stackcheck.run={}", run_id(&console))).is_empty());
}

#[test]
fn ctrl_c_still_writes_the_logs_before_teardown() {
    let dir = tempfile::tempdir().unwrap();
    let suite = stack(dir.path(), "logs-int");
    // A check that waits: the run is still in its checks when Ctrl-C comes.
    let mut text_ = std::fs::read_to_string(&suite).unwrap();
    text_.push_str("  - name: waits for a line that never comes\n    logs: { service: quiet, contains: never-printed, within: 100s }\n");
    std::fs::write(&suite, text_).unwrap();
    let logs = dir.path().join("logs");
    let child = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .arg("run")
        .arg(&suite)
        .arg("--logs-dir")
        .arg(&logs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once talker has printed its token line: a container `running` may not have
    // run its first `echo` yet, and an empty log would prove nothing about masking.
    let deadline = Instant::now() + Duration::from_secs(90);
    let label = "label=io.stackcheck.suite=logs-int";
    loop {
        let ps = Command::new("docker")
            .args(["ps", "-q", "--filter", label])
            .args(["--filter", "label=com.docker.compose.service=talker"])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&ps.stdout).trim().to_string();
        let printed = !id.is_empty() && {
            let logs = Command::new("docker").args(["logs", &id]).output().unwrap();
            String::from_utf8_lossy(&logs.stdout).contains("tick")
        };
        if printed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "talker did not print its first lines in 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let console = text(&out);
    assert_eq!(out.status.code(), Some(130), "{console}");
    let talker = std::fs::read_to_string(logs.join("logs-int/talker.log")).unwrap();
    assert!(talker.contains("starting with token ****"), "{talker}");
    assert!(!talker.contains(TOKEN));
    assert!(labelled(&format!("io.stackcheck.run={}", run_id(&console))).is_empty());
}
