//! Running a suite file against the real engine, and reading its report, for the fixture tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stackcheck::engine::{Engine, Leftovers};
use stackcheck::report::{Outcome, Quiet, Status, SuiteReport};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `stackcheck` binary, run from the repository's root as a user would.
pub fn stackcheck(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

/// Everything a run printed, stdout then stderr.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A path under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

pub fn run_file(path: &Path) -> SuiteReport {
    run_file_with(path, &stackcheck::run::RunOptions::default())
}

/// [`run_file`] with the CLI's options (`--ports ephemeral`: `ports` promises are still judged
/// against the compose model, and the run waits for no other run's documented host ports).
pub fn run_file_with(path: &Path, options: &stackcheck::run::RunOptions) -> SuiteReport {
    let loaded = stackcheck::plan::load_file(path).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::connect()
            .await
            .expect("a Docker engine (run ci/engine.sh)");
        stackcheck::run::run_suite_with(&loaded, &engine, &Quiet, options).await
    })
}

pub fn failed(report: &SuiteReport) -> BTreeSet<String> {
    report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| o.name.clone())
        .collect()
}

pub fn outcome<'a>(report: &'a SuiteReport, name: &str) -> &'a Outcome {
    report
        .outcomes
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("{name} not in report"))
}

/// Exactly these tests failed, there was no infrastructure error, and nothing was left behind.
pub fn assert_failed_exactly(report: &SuiteReport, expected: &[&str]) {
    assert!(
        report.infra_error.is_none(),
        "infrastructure error: {:?}",
        report.infra_error
    );
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(failed(report), want, "outcomes: {:#?}", report.outcomes);
    let leaks = outcome(report, &format!("{}::teardown::no-leaks", report.suite));
    assert_eq!(leaks.status, Status::Passed, "{}", leaks.message);
}

/// The failure of `name` says `needle` in its message.
pub fn assert_message(report: &SuiteReport, name: &str, needle: &str) {
    let o = outcome(report, name);
    assert!(
        o.message.contains(needle),
        "{name}: {:?} does not contain {needle:?}",
        o.message
    );
}

/// The failure of `name` carries the container's diagnostics (health checks, last 50 log lines).
pub fn assert_diagnostics(report: &SuiteReport, name: &str) {
    let o = outcome(report, name);
    assert!(
        o.detail.contains("--- last 50 log lines ---"),
        "{name}: no log lines in detail: {:?}",
        o.detail
    );
}

/// What carries `label`. A listing may fail while resources vanish under it (a volume removed
/// mid-list), so it is retried a few times.
pub fn labelled(label: &str) -> Leftovers {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::connect().await.expect("engine");
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
pub fn wait_for(
    label: &str,
    limit: Duration,
    cond: impl Fn(&Leftovers) -> bool,
) -> (bool, Leftovers) {
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
pub fn jitter(max_ms: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(nanos % max_ms)
}

/// Resources on the engine carrying `label`, by kind (via the docker CLI, independent of the harness).
pub fn docker_labelled(label: &str) -> Vec<String> {
    cli_labelled("docker", label)
}

/// Resources carrying `label`, by kind, as the engine's own CLI (`docker`, `podman`) lists them.
pub fn cli_labelled(cli: &str, label: &str) -> Vec<String> {
    let filter = format!("label={label}");
    let mut found = Vec::new();
    for kind in [
        &["ps", "-aq"][..],
        &["network", "ls", "-q"][..],
        &["volume", "ls", "-q"][..],
    ] {
        let o = std::process::Command::new(cli)
            .args(kind)
            .args(["--filter", &filter])
            .output()
            .unwrap();
        found.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| format!("{}:{l}", kind[0])),
        );
    }
    found
}

/// The JSON report at `path` must satisfy `docs/report.schema.json`; returns it parsed.
pub fn valid_report(path: &Path) -> serde_json::Value {
    valid_against("docs/report.schema.json", path)
}

/// The JSON at `path` must satisfy the committed schema `schema` (relative to the root); returns
/// it parsed.
pub fn valid_against(schema: &str, path: &Path) -> serde_json::Value {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(schema)).unwrap()).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match its schema: {errors:#?}"
    );
    report
}

pub fn test_status<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["suites"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tests"].as_array().unwrap())
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the report"))
}

/// `stackcheck init` on `compose` files, writing suite `name` to `out`; it must succeed.
pub fn init_suite(compose: &[PathBuf], out: &Path, name: &str) {
    let mut args: Vec<String> = vec!["init".into()];
    args.extend(compose.iter().map(|f| f.to_string_lossy().into_owned()));
    args.extend([
        "--output".into(),
        out.to_string_lossy().into_owned(),
        "--name".into(),
        name.into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = stackcheck(&args);
    assert_eq!(o.status.code(), Some(0), "init {name}: {}", text(&o));
}

/// Runs every suite in `dir` at once with ephemeral ports (others may run the same stacks) and
/// asserts all `suites` of them ran and nothing failed.
pub fn run_dir_green(dir: &Path, suites: usize) {
    let json = dir.join("report.json");
    let o = stackcheck(&[
        "run",
        dir.to_str().unwrap(),
        "--ports",
        "ephemeral",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = valid_report(&json);
    assert_eq!(report["suites"].as_array().unwrap().len(), suites);
    assert_eq!(report["counts"]["failed"], 0);
}

/// `cmd` (a `stackcheck run …`) with JUnit, JSON (`out_dir/r.json`), the summary and the services'
/// logs (`out_dir/logs`) written; exit code and everything it wrote: console, reports and logs. `secret` appears nowhere in
/// them, and nothing the run labelled remains.
pub fn run_with_reports(
    mut cmd: std::process::Command,
    out_dir: &Path,
    secret: &str,
) -> (Option<i32>, String) {
    let (junit, json, summary) = (
        out_dir.join("j.xml"),
        out_dir.join("r.json"),
        out_dir.join("s.md"),
    );
    let out = cmd
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .arg("--summary")
        .arg(&summary)
        .arg("--logs-dir")
        .arg(out_dir.join("logs"))
        .output()
        .unwrap();
    let mut all = text(&out);
    for f in [&junit, &json, &summary] {
        all.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    // Every service's log, as `--logs-dir` wrote it.
    for suite in std::fs::read_dir(out_dir.join("logs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for log in std::fs::read_dir(suite.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            all.push_str(&std::fs::read_to_string(log.path()).unwrap_or_default());
        }
    }
    assert!(!all.contains(secret), "the secret leaked: {all}");
    let run = if all.contains("(run ") {
        run_id(&all)
    } else {
        String::new()
    };
    assert!(
        labelled(&format!("io.stackcheck.run={run}")).is_empty(),
        "{all}"
    );
    (out.status.code(), all)
}

/// The conformance target as nextest runs it: one process per test, the stack shared through a
/// cache keyed by `NEXTEST_RUN_ID`. Its sibling in the build's `deps` folder.
pub fn conformance_binary() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("conformance-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no conformance test binary in {}", deps.display()))
}

/// A child `cargo` in the repository, on this build's target folder, with none of the test's
/// own environment: cargo and nextest set variables for test binaries (`CARGO_MANIFEST_DIR`
/// among them) that build scripts such as ring's list as inputs, so a child that saw them would
/// rebuild those crates, and the next outer build would rebuild them again.
pub fn cargo() -> std::process::Command {
    let keep = [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "DOCKER_HOST",
        "TMPDIR",
    ];
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear();
    for k in keep {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    let target = conformance_binary()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    cmd.env("CARGO_TARGET_DIR", target).current_dir(root());
    cmd
}

/// The run id a run printed (`(run 1a2b3c4d)`).
pub fn run_id(out: &str) -> String {
    out.split("(run ")
        .nth(1)
        .and_then(|r| r.get(..8))
        .unwrap_or_else(|| panic!("no run id in: {out}"))
        .to_string()
}

/// The names of the failed tests of a JSON report, every suite's, in report order.
pub fn failed_in(report: &serde_json::Value) -> Vec<&str> {
    report["suites"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tests"].as_array().unwrap())
        .filter(|t| t["status"] == "failed")
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

/// The tags `fixtures/features` builds (compose's `api`, the suite's `features-scratch`).
const FEATURES_TAGS: [&str; 2] = ["features-api:1.0", "features-scratch:1.0"];
/// The one host port `fixtures/features` publishes (and a host-side check names).
const FEATURES_PORT: &str = "18081";

/// A loopback port nothing listens on now (the kernel's pick).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Copies of `fixtures/<dirs>` under a temporary root laid out as `fixtures/` (relative paths
/// between them hold), with the tags the features fixture builds renamed to `…:p<pid>` (nextest
/// runs each test in a process of its own) and its host port moved to a free one. A run claims
/// the tags it builds and the host ports it publishes, so copies claim nothing another test's
/// copy needs and never wait for each other. Returns the root (kept alive by the caller) and the
/// copied `fixtures/` under it.
pub fn features_copy(dirs: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let name = format!("p{}", std::process::id());
    let port = free_port().to_string();
    let root = tempfile::tempdir().unwrap();
    // The copy's repository, which `{suite_dir}/..` placeholders may not leave.
    std::fs::create_dir(root.path().join(".git")).unwrap();
    let fixtures = root.path().join("fixtures");
    for dir in dirs {
        let to = fixtures.join(dir);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let cp = std::process::Command::new("cp")
            .arg("-r")
            .arg(fixture(dir))
            .arg(&to)
            .status()
            .unwrap();
        assert!(cp.success(), "cp -r fixtures/{dir}");
        // What earlier runs wrote to the host stays behind: the copy's run must write its own.
        if let Ok(reports) = std::fs::read_dir(to.join("reports")) {
            for entry in reports.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .ends_with("_snapshot.md")
                {
                    std::fs::remove_file(entry.path()).unwrap();
                }
            }
        }
        for entry in std::fs::read_dir(&to).unwrap() {
            let path = entry.unwrap().path();
            let yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
            if yaml {
                let mut text = std::fs::read_to_string(&path).unwrap();
                for tag in FEATURES_TAGS {
                    let renamed = tag.replace(":1.0", &format!(":{name}"));
                    text = text.replace(tag, &renamed);
                }
                text = text.replace(FEATURES_PORT, &port);
                std::fs::write(&path, text).unwrap();
            }
        }
    }
    (root, fixtures)
}

/// Starts `cmd` from the repository root in its own process group; its stdout and stderr lines
/// arrive on the receiver (which ends when both close).
pub fn spawn_lines(
    mut cmd: std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let streams: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

/// Takes lines from `rx` into `seen` until one contains `needle`; fails after `limit`, saying
/// that `what` never happened, with every line seen.
pub fn read_until(
    rx: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    limit: Duration,
    what: &str,
) {
    let deadline = Instant::now() + limit;
    while !seen.iter().any(|l| l.contains(needle)) {
        assert!(
            Instant::now() < deadline,
            "{what} never happened within {} s:\n{}",
            limit.as_secs(),
            seen.join("\n")
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
}

/// A suite's text with one more compose file at the end of its `stack.compose` list (a broken
/// twin's override over the stack the suite was written for).
pub fn with_override(suite: &str, override_file: &Path) -> String {
    let twin: String = suite
        .lines()
        .map(|l| {
            match l
                .strip_prefix("  compose: [")
                .and_then(|l| l.strip_suffix(']'))
            {
                Some(files) => format!("  compose: [{files}, \"{}\"]\n", override_file.display()),
                None => format!("{l}\n"),
            }
        })
        .collect();
    assert_ne!(
        twin, suite,
        "no `  compose: [...]` line to extend:\n{suite}"
    );
    twin
}
