//! A run removed from outside (`fixtures/removed`): something other than the run — another
//! tool's clean-up, a person — removes its containers and network mid-run. The run says what
//! went and when, ends as an infrastructure error (exit 3) instead of failing the stack's
//! promises with the removal's echoes, and leaves nothing behind. Its twin is the same suite
//! left alone: it passes, its own `down_up` being no outside removal.
//! Drives the real engine and the real binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{docker_labelled, labelled, read_until, run_id, spawn_lines, stackcheck, text};

const SUITE: &str = "fixtures/removed/suite.yaml";

#[test]
fn left_alone_the_stack_passes_its_own_down_up_included() {
    let out = stackcheck(&["run", "-v", SUITE]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("removed from outside"), "{said}");
}

/// `docker` with these arguments; its stdout's lines.
fn docker(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_stack_removed_mid_run_is_an_infrastructure_error_that_says_what_went() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackcheck"));
    cmd.args(["run", "-v", SUITE]);
    let (mut child, rx) = spawn_lines(cmd);
    // Once the stack is up and judged, while the late check waits: the outside clean-up.
    let mut said = Vec::new();
    let up = "removed::service::worker::state";
    read_until(
        &rx,
        &mut said,
        up,
        Duration::from_secs(300),
        "the stack coming up",
    );
    let run = run_id(&said.join("\n"));
    let project = format!("label=com.docker.compose.project={}", project_of(&said));
    let containers = docker(&["ps", "-aq", "--filter", &project]);
    assert_eq!(containers.len(), 2, "{containers:?}");
    let removed_at = Instant::now();
    // As a clean-up script does it: the containers, then their network (which the run's own
    // teardown may already have taken by then).
    let clean_up = format!(
        "docker rm -f {} >/dev/null && docker network ls -q --filter {project} | xargs -r docker network rm >/dev/null 2>&1; true",
        containers.join(" ")
    );
    let out = Command::new("sh").args(["-c", &clean_up]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            removed_at.elapsed() < Duration::from_secs(60),
            "still running 60 s after the removal:\n{}",
            said.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    said.extend(rx.iter());
    let said = said.join("\n");
    assert_eq!(status.code(), Some(3), "{said}");
    assert!(
        said.contains("the stack was removed from outside the run: "),
        "{said}"
    );
    for what in [
        "the container of `app` at ",
        "the container of `worker` at ",
    ] {
        assert!(said.contains(what), "{what} missing:\n{said}");
    }
    // Not the removal's echoes dressed as broken promises.
    for echo in [
        "marked for removal",
        "No such container",
        "404",
        "became unhealthy",
    ] {
        assert!(!said.contains(echo), "{echo}:\n{said}");
    }
    assert!(!said.lines().any(|l| l.starts_with("FAIL")), "{said}");
    // Nothing of the run is left.
    assert!(
        labelled(&format!("io.stackcheck.run={run}")).is_empty(),
        "{said}"
    );
    assert!(
        docker_labelled(&format!("io.stackcheck.run={run}")).is_empty(),
        "{said}"
    );
}

/// The compose project of the run, from its `project P (run R)` line.
fn project_of(said: &[String]) -> String {
    let line = said
        .iter()
        .find(|l| l.contains(": project ") && l.contains("(run "))
        .unwrap_or_else(|| panic!("no project line:\n{}", said.join("\n")));
    let after = line.split(": project ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().to_string()
}
