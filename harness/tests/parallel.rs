//! Suites at once on one engine (`run --jobs N`): suites whose stacks claim nothing in common run
//! at the same time; suites that claim the same fixed host port wait for each other; all pass.
//! Order of events is read from the console, never from timings.

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

#[test]
fn suites_without_common_claims_run_at_the_same_time() {
    let (code, lines) = run(&[
        "run",
        "--jobs",
        "2",
        "fixtures/features/suite.yaml",
        "fixtures/l3/suite.yaml",
    ]);
    assert_eq!(code, 0, "{}", lines.join("\n"));
    // The l3 run (a few seconds) finishes while features (half a minute) is still running.
    let l3_done = position(&lines, "l3-dry-run::teardown::no-leaks");
    let features_done = position(&lines, "features::teardown::no-leaks");
    let features_first = position(&lines, "features::");
    assert!(
        features_first < l3_done && l3_done < features_done,
        "not overlapped:\n{}",
        lines.join("\n")
    );
}

#[test]
fn suites_claiming_the_same_host_port_wait_for_each_other() {
    // The same suite twice: both publish 127.0.0.1:18081, so the second starts after the first
    // has torn down; both pass.
    let (code, lines) = run(&[
        "run",
        "--jobs",
        "2",
        "fixtures/features/suite.yaml",
        "fixtures/features/suite.yaml",
    ]);
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let first_done = position(&lines, "features::teardown::no-leaks");
    let second_start = lines
        .iter()
        .enumerate()
        .skip(first_done + 1)
        .find(|(_, l)| l.contains("features::stack::config"))
        .map(|(i, _)| i);
    assert!(
        second_start.is_some(),
        "the second run started before the first had torn down:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("features::teardown::no-leaks") && l.starts_with("PASS"))
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
