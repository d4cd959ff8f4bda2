//! Suites at once on one engine (`run --jobs N`): suites whose stacks claim nothing in common run
//! at the same time; suites that claim the same fixed host port wait for each other; all pass.
//! Order of events is read from the console, never from timings.

mod common;

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (i32, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .output()
        .unwrap();
    // Phases go to stderr, results to stdout; without a terminal both are plain lines, written as
    // they happen, so the merged order is the order of events only within each stream. Results
    // (stdout) carry what the assertions need.
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// `stackcheck ARGS` started in the background, its output captured.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn position(lines: &[String], what: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?}:\n{}", lines.join("\n")))
}

/// A one-service stack publishing `port` (python's http.server), and its suite `name` checking
/// only that it runs: a stack of a test's own, so no other test's run holds its port.
fn web_on_port(port: u16, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            "services:\n  web:\n    image: python:3.9-slim\n    command: [\"python3\", \"-m\", \"http.server\", \"8000\"]\n    ports: [\"127.0.0.1:{port}:8000\"]\n"
        ),
    )
    .unwrap();
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        format!("suite: {name}\nstack: {{ compose: [docker-compose.yml], timeout: 2m }}\nservices:\n  web: {{ state: running }}\n"),
    )
    .unwrap();
    (dir, suite)
}

#[test]
fn suites_without_common_claims_run_at_the_same_time() {
    // slow-health as written is healthy only after its first 30 s healthcheck interval; l3 is
    // done in seconds. Neither holds what the other needs.
    let (code, lines) = run(&[
        "run",
        "--jobs",
        "2",
        "--health",
        "documented",
        "fixtures/slow-health/suite.yaml",
        "fixtures/l3/suite.yaml",
    ]);
    assert_eq!(code, 0, "{}", lines.join("\n"));
    // The l3 run finishes while slow-health is still waiting for its first healthcheck.
    let l3_done = position(&lines, "l3-dry-run::teardown::no-leaks");
    let slow_done = position(&lines, "slow-health::teardown::no-leaks");
    let slow_first = position(&lines, "slow-health::");
    assert!(
        slow_first < l3_done && l3_done < slow_done,
        "not overlapped:\n{}",
        lines.join("\n")
    );
}

#[test]
fn suites_claiming_the_same_host_port_wait_for_each_other() {
    // The same suite twice: both publish one fixed host port, so the second starts after the
    // first has torn down; both pass. A stack of its own: another test's run of a shared fixture
    // would hold that port too, and this one would wait for it instead.
    let (_dir, suite) = web_on_port(common::free_port(), "same-port");
    let suite = suite.to_str().unwrap();
    let (code, lines) = run(&["run", "--jobs", "2", suite, suite]);
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let first_done = position(&lines, "same-port::teardown::no-leaks");
    let second_start = lines
        .iter()
        .enumerate()
        .skip(first_done + 1)
        .find(|(_, l)| l.contains("same-port::stack::config"))
        .map(|(i, _)| i);
    assert!(
        second_start.is_some(),
        "the second run started before the first had torn down:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("same-port::teardown::no-leaks") && l.starts_with("PASS"))
            .count(),
        2
    );
}

/// Two runs of one stack at the same time on one engine, with a fixed host port, a fixed
/// `container_name` (addressed by another service) and a fixed volume name: under
/// `ports: ephemeral` both pass, and `ports` still proves the documented mapping.
#[test]
fn two_runs_of_one_stack_with_ephemeral_ports_share_an_engine() {
    let args = ["run", "fixtures/parallel/suite.yaml"];
    let (a, b) = (spawn(&args), spawn(&args));
    for run in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        let out = String::from_utf8_lossy(&run.stdout);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{out}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            out.contains(
                r#"compose publishes {"127.0.0.1:18090:80"}; live on ephemeral host ports"#
            ),
            "{out}"
        );
        assert!(
            out.contains("client reaches web by its container name"),
            "{out}"
        );
    }
}

/// Two processes run that stack as documented at the same time: its fixed `container_name`,
/// host port and volume name are claimed on the engine, so the second waits for the first to
/// tear down (and says for what) instead of failing halfway through its `up`; both pass.
#[test]
fn two_processes_with_the_same_fixed_names_wait_for_each_other_on_the_engine() {
    let args = [
        "run",
        "--ports",
        "documented",
        "fixtures/parallel/suite.yaml",
    ];
    let (a, b) = (spawn(&args), spawn(&args));
    let mut waited = 0;
    for run in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        let (out, err) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert_eq!(run.status.code(), Some(0), "{out}{err}");
        if err.contains("waiting for container name parallel-web: stackcheck run ") {
            waited += 1;
        }
    }
    assert_eq!(waited, 1, "exactly one run waits for the other's claim");
}

/// A run of some services of a stack claims what those services hold, not the whole stack's:
/// while one run of the whole stack holds its host port (its check takes half a minute), a run of
/// only the other service starts at once instead of waiting for that port.
#[test]
fn a_run_of_some_services_waits_only_for_what_they_hold() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"services:
  web:
    image: python:3.9-slim
    command: ["python3", "-m", "http.server", "8000"]
    ports: ["127.0.0.1:{port}:8000"]
  worker:
    image: python:3.9-slim
    command: ["sleep", "1000000"]
"#
        ),
    )
    .unwrap();
    let write = |name: &str, stack_services: &str, rest: &str| {
        let path = dir.path().join(name);
        let suite = format!(
            "suite: {name}-{}\nstack: {{ compose: [docker-compose.yml], timeout: 2m{stack_services} }}\n{rest}",
            std::process::id()
        );
        std::fs::write(&path, suite).unwrap();
        path.to_str().unwrap().to_string()
    };
    let whole = write(
        "whole",
        "",
        "services:\n  web: { state: running }\nchecks:\n  - name: a long look\n    exec: { service: web, cmd: [sleep, \"30\"] }\n",
    );
    let part = write(
        "part",
        ", services: [worker]",
        "services:\n  worker: { state: running }\n",
    );
    let mut first = spawn(&["run", &whole]);
    // Its output read to the end on a thread of its own: a run writing to a full pipe waits.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = first.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let stderr = first.stderr.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut { stderr }, &mut std::io::sink()));
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(120)) {
        let up = line.contains("::service::web::state");
        seen.push(line);
        if up {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.starts_with("PASS")),
        "the whole stack did not come up within 2 minutes: {seen:?}"
    );
    let (code, said) = {
        let out = spawn(&["run", &part]).wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), said)
    };
    let still = first.try_wait().unwrap().is_none();
    let _ = first.wait();
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("waiting for"), "{said}");
    assert!(
        still,
        "the whole stack's run ended first: the runs did not overlap"
    );
}

/// A run killed together with its watcher, whose network another container still uses: the
/// stale sweep cannot remove that network, so the run's claims stay (they go with the last of
/// its resources). A later run needing the claimed host port does not wait ten minutes for a
/// release that cannot come: it sweeps the dead run itself, sees its leftovers survive, and stops
/// at once naming them (and `stackcheck reap` says what it could not remove, exit 3); once they
/// are freed, the same run passes.
#[test]
fn a_claim_of_a_dead_run_that_cannot_be_swept_stops_the_wait_naming_why() {
    let port = common::free_port();
    let (_dir, suite) = web_on_port(port, &format!("orphan-wait-{}", std::process::id()));
    // The dead run: its network and its claim on the port, owned by a process that ends only once
    // both are there (a concurrent run's stale sweep would otherwise take them half-made).
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let dead = owner.id() as i32;
    let run_id = format!("orphan{}", std::process::id());
    let labels = [
        format!("io.stackcheck.run={run_id}"),
        format!("io.stackcheck.owner-pid={dead}"),
        format!("io.stackcheck.owner={}", stackcheck::engine::owner_of(dead)),
        "io.stackcheck.suite=orphan".to_string(),
    ];
    let label_args: Vec<&str> = labels
        .iter()
        .flat_map(|l| ["--label", l.as_str()])
        .collect();
    let network = format!("sc-{run_id}_default");
    let blocker = format!("sc-{run_id}-user-debug-shell");
    let _cleanup = Cleanup(vec![
        vec!["rm".into(), "-f".into(), blocker.clone()],
        vec!["network".into(), "rm".into(), network.clone()],
        vec![
            "rm".into(),
            "-f".into(),
            format!("stackcheck-claim-host_port_{port}_tcp"),
        ],
    ]);
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            common::text(&out)
        );
    };
    docker(&[&["network", "create"], &label_args[..], &[&network]].concat());
    let claim = format!("stackcheck-claim-host_port_{port}_tcp");
    docker(
        &[
            &["create", "--name", &claim, "--network", "none"][..],
            &label_args,
            &["python:3.9-slim", "claim"],
        ]
        .concat(),
    );
    // Someone's debugging shell, attached to the dead run's network: not the run's, so no sweep
    // removes it, and the network cannot go while it is there.
    let d = ["run", "-d", "--name", &blocker, "--network", &network];
    docker(&[&d[..], &["python:3.9-slim", "sleep", "600"]].concat());
    owner.kill().unwrap();
    owner.wait().unwrap();

    let out = common::stackcheck(&["run", suite.to_str().unwrap()]);
    let said = common::text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains(&format!(
            "host port {port}/tcp: stackcheck run {run_id} holds it, its harness (pid {dead}) is gone"
        )) && said.contains(&format!("networks [\"{network}\"]")),
        "{said}"
    );
    assert!(
        !said.contains("still after"),
        "stopped only when the wait ran out: {said}"
    );
    let reap = common::stackcheck(&["reap"]);
    let reaped = common::text(&reap);
    assert_eq!(reap.status.code(), Some(3), "{reaped}");
    let survived = format!("networks [\"{network}\"] could not be removed");
    assert!(reaped.contains(&survived), "{reaped}");

    // Freed by hand, as the message says: the next run sweeps the rest and passes.
    docker(&["rm", "-f", &blocker]);
    let out = common::stackcheck(&["run", suite.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(common::labelled(&format!("io.stackcheck.run={run_id}")).is_empty());
}

/// `docker ARGS` for each, whatever happened: what a test created outside any run.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let _ = Command::new("docker").args(args).output();
        }
    }
}

/// A stack kept up on purpose (`stackcheck up`) holds its host port until someone takes it down:
/// a run needing that port waits, and says whose stack it is and how to free it, instead of only
/// naming a run id.
#[test]
fn a_wait_on_a_stack_kept_up_on_purpose_says_how_to_free_it() {
    use std::io::BufRead;
    let port = common::free_port();
    let id = format!("kept-wait-{}", std::process::id());
    let (_dir, suite) = web_on_port(port, &id);
    let suite = suite.to_str().unwrap();
    let up = common::stackcheck(&["up", suite]);
    // Taken down whatever happens below.
    struct Down<'a>(&'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = common::stackcheck(&["down", self.0]);
        }
    }
    let _down = Down(suite);
    assert_eq!(up.status.code(), Some(0), "{}", common::text(&up));

    let mut waiting = spawn(&["run", suite]);
    let stderr = waiting.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let needle = format!("waiting for host port {port}/tcp: stackcheck run ");
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        let found = line.contains(&needle);
        seen.push(line);
        if found {
            break;
        }
    }
    let _ = waiting.kill();
    let _ = waiting.wait();
    let said = seen.last().cloned().unwrap_or_default();
    assert!(
        said.contains(&needle)
            && said.contains(&format!(
                "kept up on purpose by `stackcheck up` (suite `{id}`): `stackcheck down` with that suite"
            )),
        "no wait that says how to free the port within 60 s: {seen:#?}"
    );
}
