//! `stackcheck mutate` (issue 22) on `fixtures/mutate`: the exact killed and survived sets of a
//! strong suite and of a states-only one, the JSON against its committed schema, the Markdown, the
//! gate of `--min-score`, a suite failing as written, bad input, Ctrl-C, and nothing left behind.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{root, stackcheck, text};

/// The mutants of `report` with this verdict.
fn ids(report: &serde_json::Value, verdict: &str) -> BTreeSet<String> {
    report["mutants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["verdict"] == verdict)
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The report at `path`, checked against `docs/mutate.schema.json`.
fn valid(path: &Path) -> serde_json::Value {
    common::valid_against("docs/mutate.schema.json", path)
}

/// Nothing of any run of `suite` is left on the engine.
fn nothing_left(suite: &str) {
    let left = common::docker_labelled(&format!("io.stackcheck.suite={suite}"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn hash(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

#[test]
fn the_strong_suite_kills_every_mutant_but_the_two_it_makes_no_promise_about() {
    let dir = tempfile::tempdir().unwrap();
    let (json, md) = (dir.path().join("m.json"), dir.path().join("m.md"));
    let before = hash("fixtures/mutate/compose.yaml");
    let out = stackcheck(&[
        "mutate",
        "fixtures/mutate/strong.yaml",
        "--jobs",
        "3",
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let report = valid(&json);
    let survived = set(&["env-removed:api:GREETING", "idle-command:signer"]);
    let killed = set(&[
        "port-dropped:api:18480:8080",
        "health-fails:api",
        "idle-command:api",
        "exits-early:api",
        "restart-removed:api",
        "env-removed:api:CACHE_HOST",
        "depends-on-dropped:api:cache",
        "mount-writable:api:/app",
        "health-fails:cache",
        "idle-command:cache",
        "exits-early:cache",
        "volume-fresh:cache:ledger_data",
        "restart-removed:cache",
        "network-opened:network backend",
        "exits-early:signer",
        "network-opened:signer",
        "restart-removed:signer",
        // From the service's `env_file` only: the mutant replaces the files too.
        "env-removed:signer:SIGNER_KEY_ID",
    ]);
    assert_eq!(ids(&report, "survived"), survived, "{said}");
    assert_eq!(ids(&report, "killed"), killed, "{said}");
    assert_eq!(report["invalid"], 0, "{said}");
    assert_eq!(report["score"].as_f64(), Some(18.0 / 20.0));
    assert_eq!(report["judged"], 20, "{said}");
    let by = |id: &str| -> Vec<String> {
        let m = report["mutants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap();
        serde_json::from_value(m["killed_by"].clone()).unwrap()
    };
    // Each breakage is noticed by the promise about it, not by a side effect.
    assert!(by("depends-on-dropped:api:cache").contains(&"ledger::service::api::depends_on".into()));
    assert!(by("env-removed:signer:SIGNER_KEY_ID").contains(&"ledger::service::signer::env".into()));
    assert!(by("network-opened:signer").contains(&"ledger::checks::signer has no network".into()));
    assert!(by("network-opened:network backend").contains(&"ledger::network::backend".into()));
    assert!(
        by("mount-writable:api:/app").contains(&"ledger::service::api::read_only_mounts".into())
    );
    assert!(by("exits-early:signer").contains(&"ledger::service::signer::state".into()));
    // Every survivor in words, with what would kill it, in the table and the Markdown.
    assert!(
        said.contains("no test notices when `api` starts without `GREETING`"),
        "{said}"
    );
    assert!(
        said.contains("`services.api.env: { GREETING: … }`"),
        "{said}"
    );
    assert!(
        said.contains(
            "ledger: score 90%, 20 of 20 judged (18 killed, 2 survived, 0 invalid, 0 not run)"
        ),
        "{said}"
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("No test notices when `signer` runs an idle process"),
        "{md}"
    );
    assert!(md.contains("| `health-fails:api` | killed |"), "{md}");
    // Mutants are files added after the user's: the user's own are untouched.
    assert_eq!(hash("fixtures/mutate/compose.yaml"), before);
    nothing_left("ledger");
}

#[test]
fn a_states_only_suite_scores_low_and_fails_min_score() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("m.json");
    let mut args = vec!["mutate", "fixtures/mutate/weak.yaml", "--jobs", "3"];
    // Kinds, and mutants by their id or its start: `exits-early:signer` is left out.
    for only in [
        "port-dropped",
        "exits-early:api",
        "exits-early:cache",
        "volume-fresh:cache:ledger_data",
        "restart-removed",
    ] {
        args.extend(["--only", only]);
    }
    args.extend(["--min-score", "0.5", "--json", json.to_str().unwrap()]);
    let out = stackcheck(&args);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("score 29% is under --min-score 0.5"),
        "{said}"
    );
    let report = valid(&json);
    assert_eq!(
        ids(&report, "killed"),
        set(&["exits-early:api", "exits-early:cache"]),
        "{said}"
    );
    assert_eq!(report["mutants"].as_array().unwrap().len(), 7, "{said}");
    assert_eq!(
        ids(&report, "survived"),
        set(&[
            "port-dropped:api:18480:8080",
            "restart-removed:api",
            "restart-removed:cache",
            "restart-removed:signer",
            "volume-fresh:cache:ledger_data",
        ]),
        "{said}"
    );
    assert!(
        said.contains("no test notices when `cache` loses `ledger_data` at every start"),
        "{said}"
    );
    nothing_left("ledger-states");
}

/// A suite of its own id over the fixture's stack (its leftovers are told apart from other tests').
fn suite(dir: &Path, id: &str, services: &str) -> std::path::PathBuf {
    let compose = root().join("fixtures/mutate/compose.yaml");
    let suite = dir.join(format!("{id}.yaml"));
    let text = format!(
        "suite: {id}\nstack: {{ compose: [{}], timeout: 2m }}\nservices:\n{services}",
        compose.display()
    );
    std::fs::write(&suite, text).unwrap();
    suite
}

#[test]
fn a_suite_failing_as_written_gives_no_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(
        dir.path(),
        "ledger-wrong",
        "  api: { state: healthy, restart: always }\n",
    );
    let out = stackcheck(&["mutate", suite.to_str().unwrap(), "--only", "port-dropped"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the suite fails on the stack as written"),
        "{said}"
    );
    assert!(
        said.contains("ledger-wrong::service::api::restart"),
        "{said}"
    );
    assert!(!said.contains("mutant(s) of"), "{said}");
    nothing_left("ledger-wrong");
}

#[test]
fn bad_input_is_refused_before_anything_starts() {
    for (args, needle) in [
        (
            &["mutate", "fixtures/mutate/weak.yaml", "--only", "port-gone"][..],
            "port-gone",
        ),
        (
            &["mutate", "fixtures/mutate/weak.yaml", "--only", "gone:api"][..],
            "`gone` is no mutant kind",
        ),
        (
            &["mutate", "fixtures/mutate/weak.yaml", "--min-score", "2"][..],
            "--min-score 2",
        ),
        (
            &[
                "mutate",
                "fixtures/mutate/weak.yaml",
                "--min-score",
                "0.5",
                "--min-judged",
                "1.5",
            ][..],
            "--min-judged 1.5",
        ),
        (
            &["mutate", "fixtures/mutate/weak.yaml", "--budget", "soon"][..],
            "invalid duration",
        ),
        (&["mutate", "fixtures/mutate/nope.yaml"][..], "nope.yaml"),
    ] {
        let out = stackcheck(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(needle), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("baseline"), "{}", text(&out));
    }
}

#[test]
fn ctrl_c_during_mutants_stops_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let states =
        "  cache: { state: healthy }\n  api: { state: healthy }\n  signer: { state: running }\n";
    let suite = suite(dir.path(), "ledger-interrupted", states);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args([
            "mutate",
            suite.to_str().unwrap(),
            "--jobs",
            "1",
            "--only",
            "restart-removed",
        ])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first verdict line says the mutant runs are under way.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !seen.iter().any(|l: &String| l.starts_with("[1/3]")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no first verdict within 180 s:\n{}", seen.join("\n")),
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    seen.extend(rx.try_iter());
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    // The runs under way were torn down before the exit; the third was never started.
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with("[3/3] killed") || l.starts_with("[3/3] SURVIVED")),
        "{}",
        seen.join("\n")
    );
    nothing_left("ledger-interrupted");
}

#[test]
fn the_committed_mutate_schema_is_the_one_the_binary_prints() {
    let out = stackcheck(&["schema", "--mutate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        std::fs::read_to_string(root().join("docs/mutate.schema.json")).unwrap().trim(),
        "docs/mutate.schema.json is stale: run `stackcheck schema --mutate > docs/mutate.schema.json`"
    );
}
