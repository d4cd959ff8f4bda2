//! Crash safety: a harness killed with SIGKILL at a random point of a run leaves nothing behind
//! (its watcher removes what it owned), and `stackcheck reap` removes runs whose owner is gone.
//! Drives the real engine and the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stackcheck::engine::{Engine, Leftovers};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What carries `label`. A listing may fail while resources vanish under it (a volume removed
/// mid-list), so it is retried a few times.
fn labelled(label: &str) -> Leftovers {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::connect(Duration::from_secs(5))
            .await
            .expect("engine");
        let mut last = None;
        for _ in 0..5 {
            match engine.labelled(label).await {
                Ok(l) => return l,
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("listing {label} failed 5 times: {last:?}")
    })
}

/// Polls until `cond` holds for what carries `label`, at most `limit`; returns the last listing.
fn wait_for(label: &str, limit: Duration, cond: impl Fn(&Leftovers) -> bool) -> (bool, Leftovers) {
    let deadline = Instant::now() + limit;
    loop {
        let l = labelled(label);
        if cond(&l) || Instant::now() >= deadline {
            return (cond(&l), l);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A pseudo-random delay in `0..max_ms` (no RNG crate needed for spreading kill points).
fn jitter(max_ms: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(nanos % max_ms)
}

/// Starts `stackcheck run` on the features fixture, kills it with SIGKILL once the run owns
/// resources on the engine and printed a line containing `after_line` (if any), plus a random
/// delay, and asserts that nothing it owned survives 15 s later.
fn kill_during(phase: &str, after_line: Option<&str>, max_extra_ms: u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["run", "-v", "fixtures/features/suite.yaml"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let label = format!("io.stackcheck.owner-pid={pid}");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen_line = after_line.is_none();
    let mut reached = false;
    while !reached && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen_line |= after_line.is_some_and(|want| line.contains(want));
        }
        reached = seen_line && !labelled(&label).is_empty();
    }
    assert!(reached, "the run never reached {phase} within 120 s");
    std::thread::sleep(jitter(max_extra_ms));
    assert!(
        !labelled(&label).is_empty() || phase == "teardown",
        "nothing labelled before the kill"
    );
    child.kill().unwrap(); // SIGKILL: no teardown by the harness itself
    child.wait().unwrap();
    let (clean, left) = wait_for(&label, Duration::from_secs(15), Leftovers::is_empty);
    assert!(
        clean,
        "killed during {phase}: still there after 15 s: {left:?}"
    );
}

#[test]
fn sigkill_during_bring_up_leaves_nothing_within_15s() {
    kill_during("bring-up", None, 3000);
}

#[test]
fn sigkill_during_checks_leaves_nothing_within_15s() {
    kill_during("checks", Some("features::checks::"), 8000);
}

#[test]
fn reap_lists_then_removes_runs_whose_owner_is_gone() {
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let run = format!("reaptest{}", std::process::id());
    let labels = [
        format!("io.stackcheck.run={run}"),
        "io.stackcheck.suite=reap-test".to_string(),
        format!("io.stackcheck.owner-pid={dead_pid}"),
    ];
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
