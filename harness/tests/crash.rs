//! Crash safety: a harness interrupted (Ctrl-C, SIGTERM) or killed (SIGKILL) at a random point of
//! a run — build, bring-up, checks, teardown — leaves nothing behind within 15 s (it tears down
//! itself, or its watcher removes what it owned); the same for the conformance target as nextest
//! runs it; and `stackcheck reap` removes runs whose owner is gone.
//! Drives the real engine and the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use stackcheck::engine::Leftovers;

mod common;
use common::{jitter, labelled, wait_for};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// When the signal is sent: after a line of output containing this text (plus a random delay),
/// or once the run owns something on the engine.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    Line(&'static str),
    OwnsResources,
}

const BUILD: Trigger = Trigger::Line("features: building");
const BRING_UP: Trigger = Trigger::Line("features: starting");
const CHECKS: Trigger = Trigger::Line("features::checks::");
const TEARDOWN: Trigger = Trigger::Line("tearing down");

/// Waits for `child` to exit, at most `limit` (counted from now), failing with `after`.
fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
    after: &str,
) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            t0.elapsed() < limit,
            "still running {} s after {after}",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `cmd` (in its own process group), sends `signal` at `trigger` + a random delay up to
/// `max_extra_ms`, and asserts that nothing the process owned is on the engine 15 s later.
/// SIGINT/SIGTERM go to the whole group, as a terminal's Ctrl-C or a test runner does; SIGKILL
/// only to the harness (its children die with it). Returns the exit status.
fn interrupt(
    cmd: Command,
    signal: Signal,
    trigger: Trigger,
    max_extra_ms: u64,
) -> std::process::ExitStatus {
    let (mut child, rx) = common::spawn_lines(cmd);
    let pid = child.id();
    let label = format!("io.stackcheck.owner-pid={pid}");
    // Generous: the run may first wait for another test's run of the same fixture to release
    // what both claim (its fixed ports, names and the tags it builds).
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut output = Vec::new();
    let reached = loop {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            output.push(line);
        }
        let hit = match trigger {
            Trigger::Line(want) => output.iter().any(|l| l.contains(want)),
            Trigger::OwnsResources => !labelled(&label).is_empty(),
        };
        if hit || Instant::now() >= deadline {
            break hit;
        }
    };
    assert!(
        reached,
        "never reached {trigger:?} within 600 s; output:\n{}",
        output.join("\n")
    );
    std::thread::sleep(jitter(max_extra_ms));
    let target = if signal == Signal::SIGKILL {
        Pid::from_raw(pid as i32)
    } else {
        Pid::from_raw(-(pid as i32))
    };
    nix::sys::signal::kill(target, signal).unwrap();
    let sent = Instant::now();
    let status = exit_within(
        &mut child,
        Duration::from_secs(60),
        &format!("{signal} at {trigger:?}"),
    );
    let left = Duration::from_secs(15).saturating_sub(sent.elapsed());
    let (clean, left) = wait_for(&label, left, Leftovers::is_empty);
    // The watcher's timeline (a killed harness's sweep): what it had done by now.
    let log = stackcheck::run::reap::watch_log(pid as i32);
    let timeline = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        clean,
        "{signal} at {trigger:?}: still there 15 s after the signal: {left:?}\n\
         the watcher's timeline:\n{timeline}"
    );
    let _ = std::fs::remove_file(log);
    status
}

fn run_features() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackcheck"));
    cmd.args(["run", "-v", "fixtures/features/suite.yaml"]);
    cmd
}

/// The features suite from a copy with tags and a host port of its own (`features_copy`): the
/// interrupt tests then hold nothing another one waits for. The copy lives as long as the returned dir.
fn run_features_copy() -> (tempfile::TempDir, Command) {
    let (dir, fixtures) = common::features_copy(&["features"]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackcheck"));
    cmd.args(["run", "-v"])
        .arg(fixtures.join("features/suite.yaml"));
    (dir, cmd)
}

#[test]
fn sigkill_during_build_leaves_nothing_within_15s() {
    let (_copy, cmd) = run_features_copy();
    interrupt(cmd, Signal::SIGKILL, BUILD, 1500);
}

#[test]
fn sigkill_during_bring_up_leaves_nothing_within_15s() {
    let (_copy, cmd) = run_features_copy();
    interrupt(cmd, Signal::SIGKILL, BRING_UP, 3000);
}

#[test]
fn sigkill_during_checks_leaves_nothing_within_15s() {
    let (_copy, cmd) = run_features_copy();
    interrupt(cmd, Signal::SIGKILL, CHECKS, 8000);
}

#[test]
fn sigkill_during_teardown_leaves_nothing_within_15s() {
    let (_copy, cmd) = run_features_copy();
    interrupt(cmd, Signal::SIGKILL, TEARDOWN, 1500);
}

/// Ctrl-C: the harness tears down itself and exits 130 (during teardown it finishes teardown).
fn ctrl_c(trigger: Trigger, max_extra_ms: u64) {
    let (_copy, cmd) = run_features_copy();
    let status = interrupt(cmd, Signal::SIGINT, trigger, max_extra_ms);
    let during_teardown = matches!(trigger, Trigger::Line(l) if l == "tearing down");
    if !during_teardown {
        assert_eq!(status.code(), Some(130), "{status:?}");
    }
}

#[test]
fn ctrl_c_during_build_leaves_nothing_within_15s() {
    ctrl_c(BUILD, 1500);
}

#[test]
fn ctrl_c_during_bring_up_leaves_nothing_within_15s() {
    ctrl_c(BRING_UP, 3000);
}

#[test]
fn ctrl_c_during_checks_leaves_nothing_within_15s() {
    ctrl_c(CHECKS, 8000);
}

#[test]
fn ctrl_c_during_teardown_leaves_nothing_within_15s() {
    ctrl_c(TEARDOWN, 1500);
}

fn conformance(suites: &str, run_id: &str, test: &str) -> Command {
    let mut cmd = Command::new(common::conformance_binary());
    cmd.env("STACKCHECK_SUITES", root().join(suites))
        .env("NEXTEST_RUN_ID", run_id)
        .args(["--exact", test, "--nocapture"]);
    cmd
}

fn fresh_run_id(what: &str) -> String {
    format!(
        "{what}-{}-{}",
        std::process::id(),
        jitter(1_000_000).as_micros()
    )
}

/// `stackcheck run … | head -1`: the reader of the results goes away after the first line. The run
/// still tears down what it started, soon, and exits with its verdict (every test passes): a
/// closed stdout is no reason to leave a stack behind or to hold its claims.
#[test]
fn a_reader_that_goes_away_after_one_line_stops_nothing_but_the_output() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["run", "fixtures/parallel/suite.yaml"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let label = format!("io.stackcheck.owner-pid={}", child.id());
    let stderr = child.stderr.take().unwrap();
    let said = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("PASS"), "first line: {first:?}");
    // The reader is dropped here: every later line meets a closed pipe.
    let status = exit_within(&mut child, Duration::from_secs(180), "the first line");
    let said = said.join().unwrap();
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    let (clean, left) = wait_for(&label, Duration::from_secs(15), Leftovers::is_empty);
    assert!(clean, "left after the run exited: {left:?}\n{said}");
}

/// nextest interrupted (SIGINT to the test's process group, SIGTERM, or SIGKILL after its grace
/// period) while a conformance test has the stack up: nothing is left.
#[test]
fn interrupted_conformance_test_leaves_nothing_within_15s() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL] {
        let cmd = conformance(
            "fixtures/features/suite.yaml",
            &fresh_run_id("interrupted"),
            "features::service::api::state",
        );
        let status = interrupt(cmd, signal, Trigger::OwnsResources, 3000);
        assert!(
            !status.success(),
            "{signal}: the test passed although interrupted"
        );
    }
}

/// One bring-up per suite per nextest run, however many of its tests run (each in its own
/// process); filtering to one suite brings up no other.
#[test]
fn a_suite_is_brought_up_once_per_run_and_only_when_selected() {
    let run_id = fresh_run_id("sharing");
    let list = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["list", "suites/peak-trade-l3.yaml"])
        .current_dir(root())
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for name in names.iter().take(3) {
        let out = conformance("suites", &run_id, name).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{name} did not run: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // `<target>/stackcheck-conformance/<run>/`, beside the binary's `<target>/<profile>/deps/`.
    let binary = common::conformance_binary();
    let target = binary.ancestors().nth(3).unwrap();
    let log = target
        .join("stackcheck-conformance")
        .join(&run_id)
        .join("bring-ups");
    let bring_ups = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        bring_ups.lines().collect::<Vec<_>>(),
        ["peak-trade-l3"],
        "bring-ups recorded in {}",
        log.display()
    );
}

/// A container and a network labelled as a run `run` of suite `reap-test` with these extra labels.
fn plant(run: &str, extra: &[String]) {
    let mut labels = vec![
        format!("io.stackcheck.run={run}"),
        "io.stackcheck.suite=reap-test".to_string(),
    ];
    labels.extend_from_slice(extra);
    let mut create = Command::new("docker");
    create.args(["create", "--name", &format!("sc-{run}")]);
    let mut net = Command::new("docker");
    net.args(["network", "create", &format!("sc-{run}")]);
    for l in &labels {
        create.args(["--label", l]);
        net.args(["--label", l]);
    }
    assert!(create
        .args(["stackcheck/probe:1", "true"])
        .output()
        .unwrap()
        .status
        .success());
    assert!(net.output().unwrap().status.success());
}

fn dead_pid() -> u32 {
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    pid
}

fn reap(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .arg("reap")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    text
}

/// Several machines may share one engine (`DOCKER_HOST`): a run owned by a pid on another
/// machine is never taken for stale here, only `--include-live` removes it.
#[test]
fn reap_leaves_runs_of_other_machines_unless_told() {
    let pid = dead_pid();
    let run = format!("reapother{}", std::process::id());
    plant(
        &run,
        &[
            format!("io.stackcheck.owner-pid={pid}"),
            format!("io.stackcheck.owner=some-other-machine/{pid}"),
        ],
    );
    let label = format!("io.stackcheck.run={run}");
    let text = reap(&["--dry-run"]);
    assert!(!text.contains(&run), "{text}");
    reap(&[]);
    assert_eq!(
        labelled(&label).containers.len(),
        1,
        "reap removed another machine's run"
    );
    let text = reap(&["--include-live", "--dry-run"]);
    assert!(
        text.contains(&format!(
            "run {run} (suite reap-test, owner pid {pid} on some-other-machine, another machine)"
        )),
        "{text}"
    );
    // Not `reap --include-live` for real: it would also take live runs of other tests.
    let _ = Command::new("docker")
        .args(["rm", "-f", &format!("sc-{run}")])
        .output();
    let _ = Command::new("docker")
        .args(["network", "rm", &format!("sc-{run}")])
        .output();
    assert!(labelled(&label).is_empty(), "{:?}", labelled(&label));
}

#[test]
fn reap_lists_then_removes_runs_whose_owner_is_gone() {
    let dead_pid = dead_pid();
    let run = format!("reaptest{}", std::process::id());
    plant(&run, &[format!("io.stackcheck.owner-pid={dead_pid}")]);
    let label = format!("io.stackcheck.run={run}");

    let dry = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["reap", "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{text}");
    assert!(
        text.contains(&format!("would remove run {run} (suite reap-test, owner pid {dead_pid} gone): 1 containers, 1 networks")),
        "{text}"
    );
    let still = labelled(&label);
    assert_eq!(
        (still.containers.len(), still.networks.len()),
        (1, 1),
        "--dry-run removed something"
    );

    let real = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .arg("reap")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&real.stdout);
    assert!(text.contains(&format!("removed run {run}")), "{text}");
    assert!(
        labelled(&label).is_empty(),
        "reap left {:?}",
        labelled(&label)
    );
}

/// Stops dockerd (SIGTERM, as a service manager would) and starts it again the way CI does.
fn restart_engine() {
    use std::os::unix::process::CommandExt;
    // The main daemon, by its pidfile: `ci/remote-engine.sh` may run a second one.
    let pid = std::fs::read_to_string("/var/run/docker.pid").unwrap_or_default();
    let pid = pid.trim();
    let kill = Command::new("kill").args(["-TERM", pid]).status();
    assert!(
        !pid.is_empty() && kill.is_ok_and(|s| s.success()),
        "no local dockerd to restart (this test needs the engine `ci/engine.sh` starts)"
    );
    let t0 = Instant::now();
    while Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "dockerd did not stop within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its own process group: the dockerd it starts in the background must not share this test's
    // group, which the test runner may signal.
    let out = Command::new("bash")
        .arg("ci/engine.sh")
        .current_dir(root())
        .process_group(0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ci/engine.sh could not start the engine again: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The engine restarts while checks run: the checks stop with that as their cause (exit 3),
/// teardown waits for the engine and still runs, nothing hangs and nothing is left.
#[test]
fn engine_restarted_during_checks_fails_with_the_cause_and_tears_down() {
    let (mut child, rx) = common::spawn_lines(run_features());
    let pid = child.id();
    let mut output = Vec::new();
    let checks = "features::checks::";
    common::read_until(
        &rx,
        &mut output,
        checks,
        Duration::from_secs(120),
        "the checks",
    );
    restart_engine();
    let status = exit_within(&mut child, Duration::from_secs(180), "the engine came back");
    output.extend(rx.iter());
    let text = output.join("\n");
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(
        text.contains("the Docker engine stopped answering"),
        "no clear cause:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS") && l.contains("features::teardown::no-leaks")),
        "teardown did not run or left something:\n{text}"
    );
    let (clean, left) = wait_for(
        &format!("io.stackcheck.owner-pid={pid}"),
        Duration::from_secs(15),
        Leftovers::is_empty,
    );
    assert!(clean, "left after the engine restart: {left:?}");
}

/// Ctrl-C while `init --observe` watches the stack it brought up: nothing of it is left.
#[test]
fn ctrl_c_while_init_observes_leaves_nothing_within_15s() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackcheck"));
    cmd.args([
        "init",
        "fixtures/observe/docker-compose.yml",
        "--observe",
        "-o",
    ])
    .arg(dir.path().join("observed.yaml"));
    let status = interrupt(
        cmd,
        Signal::SIGINT,
        Trigger::Line("· watching 5 service(s)"),
        5000,
    );
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(!dir.path().join("observed.yaml").exists());
}
