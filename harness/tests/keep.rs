//! Stacks left up on purpose, through the CLI as a user drives it: `run --keep`, `stackcheck up`,
//! `run --reuse` and `stackcheck down`, each with its leak proof. Every suite here has its own id
//! and ephemeral ports, so these tests run beside the others.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{fixture, labelled, run_id, text, valid_report, wait_for};

/// A suite `id` over the parallel fixture's stack (web + client, ephemeral ports); `extra` is
/// appended to its checks.
fn suite(dir: &Path, id: &str, extra: &str) -> PathBuf {
    let compose = fixture("parallel/docker-compose.yml")
        .canonicalize()
        .unwrap();
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"suite: {id}
stack: {{ compose: ["{}"], ports: ephemeral, timeout: 2m }}
services:
  web: {{ state: healthy, ports: ["127.0.0.1:18090:80"] }}
  client: {{ state: running }}
checks:
  - name: web answers
    http: {{ service: web, port: 80, path: / }}
    expect: {{ status: 200 }}
  - name: client reaches web by its container name
    exec: {{ service: client, cmd: [python3, -c, "import urllib.request as u; print(u.urlopen('http://parallel-web/', timeout=5).status)"] }}
    expect: {{ stdout: /^200$/ }}
{extra}"#,
            compose.display()
        ),
    )
    .unwrap();
    path
}

/// Takes down a suite's kept stacks when a test ends, passed or not: a kept stack left by a failed
/// test would make the next run of it refuse (`up` twice, `--reuse` of two).
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = stackcheck(&["down", self.0.to_str().unwrap()]);
    }
}

/// A suite id unique to this test process (a killed earlier run may have kept its stack).
fn unique(id: &str) -> String {
    format!("{id}-{}", std::process::id())
}

fn stackcheck(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

/// Running containers of a run.
fn running(run: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=io.stackcheck.run={run}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Waits until the crash watcher of the process that owns `run`'s stack has ended (it decides
/// what the run left once its owner is gone).
fn watcher_done(run: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=io.stackcheck.run={run}"),
            "--format",
            "{{.Label \"io.stackcheck.owner-pid\"}}",
        ])
        .output()
        .unwrap();
    let owner = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_else(|| panic!("run {run} has no containers"))
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let watching = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .any(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.get(1) == Some(&&b"__watch"[..]) && args.get(2) == Some(&owner.as_bytes())
            });
        if !watching {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher of pid {owner} still runs after 90 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn up_then_reuse_then_down_keeps_the_stack_between_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique("keep-loop");
    let path = suite(dir.path(), &id, "");
    let _down = DownOnDrop(path.clone());
    let p = path.to_str().unwrap();

    let t0 = Instant::now();
    let (code, out) = stackcheck(&["up", p]);
    assert_eq!(code, Some(0), "{out}");
    let up_took = t0.elapsed();
    let run = run_id(&out);
    assert!(out.contains("kept (--keep up)"), "{out}");
    assert!(out.contains(&format!("stackcheck down {p}")), "{out}");
    // `up` stops once the stack is up: no check ran.
    assert!(out.contains(&format!("{id}::service::web::state")), "{out}");
    assert!(!out.contains(&format!("{id}::checks::")), "{out}");

    // A second `up` would leave two stacks nobody can tell apart: refused, naming the first.
    let (code, again) = stackcheck(&["up", p]);
    assert_eq!(code, Some(3), "{again}");
    assert!(
        again.contains(&format!(
            "a stack of suite `{id}` is already up (project sc-keeploop{}-{run}",
            std::process::id()
        )),
        "{again}"
    );

    // Neither the crash watcher of `up` nor a later run's stale sweep takes a kept stack.
    watcher_done(&run);
    let (code, reaped) = stackcheck(&["reap"]);
    // `reap` sweeps the whole machine: another test's run whose owner it killed on purpose
    // (crash.rs) may be half-removed under it, and reap then says what it could not remove (exit
    // 3). This stack is never among what it touched.
    assert!(matches!(code, Some(0) | Some(3)), "{reaped}");
    assert!(
        !reaped.contains(&run),
        "the kept stack was touched: {reaped}"
    );
    assert_eq!(running(&run), 2, "the kept stack was removed: {reaped}");
    let (_, listed) = stackcheck(&["reap", "--include-live", "--dry-run"]);
    assert!(
        listed.contains(&format!("run {run}")) && listed.contains("kept by --keep up"),
        "{listed}"
    );

    // The inner loop: checks against what is up, twice, nothing built or started.
    for _ in 0..2 {
        let json = dir.path().join("r.json");
        let t0 = Instant::now();
        let (code, out) = stackcheck(&["run", p, "--reuse", "--json", json.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{out}");
        eprintln!("up took {up_took:?}, a --reuse run {:?}", t0.elapsed());
        assert!(out.contains(&format!("{id}::checks::web answers")), "{out}");
        assert!(!out.contains("starting"), "{out}");
        let report = valid_report(&json);
        let leaks = common::test_status(&report, &format!("{id}::teardown::no-leaks"));
        assert_eq!(leaks["status"], "passed", "{leaks}");
        assert!(
            leaks["message"]
                .as_str()
                .unwrap()
                .contains("& io.stackcheck.visit="),
            "{leaks}"
        );
        assert_eq!(running(&run), 2, "a --reuse run touched the stack");
    }

    // The same suite id from other compose files is not the stack that is up.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let moved = suite(&other, &id, "");
    let extra = other.join("more.yml");
    std::fs::write(
        &extra,
        "services:\n  client:\n    environment: { X: '1' }\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&moved).unwrap().replacen(
        "\"]",
        &format!("\", \"{}\"]", extra.canonicalize().unwrap().display()),
        1,
    );
    std::fs::write(&moved, text).unwrap();
    let (code, out) = stackcheck(&["run", moved.to_str().unwrap(), "--reuse"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("was brought up from compose files"), "{out}");
    assert!(out.contains("more.yml"), "{out}");

    let (code, out) = stackcheck(&["down", p]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("nothing labelled io.stackcheck.run={run} remains")),
        "{out}"
    );
    assert!(labelled(&format!("io.stackcheck.run={run}")).is_empty());
    let (code, out) = stackcheck(&["down", p]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{id}: no kept stack")), "{out}");

    // Nothing up: --reuse says so and starts nothing.
    let (code, out) = stackcheck(&["run", p, "--reuse"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "no stack of suite `{id}` is up; bring one up with `stackcheck up"
        )),
        "{out}"
    );
}

#[test]
fn keep_on_failure_keeps_only_a_run_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let green = suite(dir.path(), &unique("keep-green"), "");
    let _down_green = DownOnDrop(green.clone());
    let (code, out) = stackcheck(&["run", green.to_str().unwrap(), "--keep", "on-failure"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("kept ("), "{out}");
    assert!(labelled(&format!("io.stackcheck.run={}", run_id(&out))).is_empty());

    let red_id = unique("keep-red");
    let red = suite(
        dir.path(),
        &red_id,
        "  - name: missing page\n    http: { service: web, port: 80, path: /missing }\n    expect: { status: 200 }\n",
    );
    let _down_red = DownOnDrop(red.clone());
    let json = dir.path().join("red.json");
    let (code, out) = stackcheck(&[
        "run",
        red.to_str().unwrap(),
        "--keep",
        "on-failure",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    let run = run_id(&out);
    assert!(
        out.contains(&format!(
            "kept (--keep on-failure): project sc-keepred{}-{run}",
            std::process::id()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "docker compose -p sc-keepred{}-{run}",
            std::process::id()
        )),
        "{out}"
    );
    let report = valid_report(&json);
    assert!(
        report["suites"][0]["kept"]
            .as_str()
            .is_some_and(|k| k.contains("stackcheck down")),
        "{report}"
    );
    let leaks = common::test_status(&report, &format!("{red_id}::teardown::no-leaks"));
    assert_eq!(leaks["status"], "passed", "{leaks}");
    // Helpers (the http probe's) are gone; the stack's two containers stay, running.
    watcher_done(&run);
    assert_eq!(running(&run), 2);
    let left = labelled(&format!("io.stackcheck.run={run}"));
    assert_eq!(left.containers.len(), 2, "{left:?}");

    // `--reuse` after a kept failure: the same failure, judged again against the same stack.
    let (code, out) = stackcheck(&["run", red.to_str().unwrap(), "--reuse"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("{red_id}::checks::missing page")),
        "{out}"
    );

    let (code, out) = stackcheck(&["down", red.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    let (gone, left) = wait_for(
        &format!("io.stackcheck.run={run}"),
        Duration::from_secs(5),
        |l| l.is_empty(),
    );
    assert!(gone, "{left:?}");
}

#[test]
fn keep_up_and_reuse_refuse_a_stack_of_plain_containers_before_starting() {
    // `stack.containers` (docker run, no compose project): nothing to keep or to find again.
    let suite = common::root().join("suites/peak-trade-l3.yaml");
    let suite = suite.to_str().unwrap();
    for args in [
        vec!["run", suite, "--keep", "always"],
        vec!["run", suite, "--reuse"],
        vec!["up", suite],
    ] {
        let (code, out) = stackcheck(&args);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(
            out.contains("peak-trade-l3.yaml: `up`, `--keep` and `--reuse` work on compose stacks"),
            "{out}"
        );
        assert!(!out.contains("(run "), "{args:?} started a run: {out}");
    }
}
