//! The conformance suites as a libtest-mimic target: every test of every suite in `suites/` is its
//! own test, named exactly as `stackcheck run` and JUnit name it.
//!
//! Sharing: a suite's stack is brought up once per test-runner invocation, not once per test.
//! The first test of a suite to run takes a file lock, runs the whole suite (build, up, all
//! checks, teardown) and stores the outcomes in `target/stackcheck-conformance/<run>/<suite>.json`;
//! every other test of that suite waits on the lock and reads its own outcome from there. The run
//! key is nextest's `NEXTEST_RUN_ID` (one process per test) or, under `cargo test` (one process),
//! the process id. Teardown happens inside the run that brought the stack up: on success, on
//! failure, on SIGINT/SIGTERM (what nextest sends when interrupted), and, when the process is
//! killed outright, by the `stackcheck __watch` process each run leaves beside itself.
//!
//! Every real bring-up appends the suite's name to `<cache dir>/bring-ups` (the sharing test
//! counts them). `STACKCHECK_SUITES` points the target at another folder of suites.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

mod common;
use stackcheck::engine::Engine;
use stackcheck::report::{Progress, Status, SuiteReport};
use stackcheck::suite::{self, LoadedSuite};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run_key() -> String {
    std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| format!("pid-{}", std::process::id()))
}

fn cache_dir() -> PathBuf {
    root()
        .join("target")
        .join("stackcheck-conformance")
        .join(run_key())
}

/// Outcomes of one suite, computed once per run key and shared by all its tests.
fn suite_report(loaded: &LoadedSuite) -> Result<SuiteReport, String> {
    static IN_PROCESS: OnceLock<Mutex<HashMap<String, Result<SuiteReport, String>>>> =
        OnceLock::new();
    let memo = IN_PROCESS.get_or_init(Default::default);
    let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = memo.get(&loaded.suite.id) {
        return r.clone();
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock =
        File::create(dir.join(format!("{}.lock", loaded.suite.id))).map_err(|e| e.to_string())?;
    lock.lock()
        .map_err(|e| format!("cannot lock the suite cache: {e}"))?;
    let cached = dir.join(format!("{}.json", loaded.suite.id));
    let result = match std::fs::read(&cached) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("corrupt cache {}: {e}", cached.display())),
        Err(_) => {
            let report = run_once(loaded);
            if let Ok(r) = &report {
                let _ = std::fs::write(&cached, serde_json::to_vec(r).unwrap_or_default());
            }
            report
        }
    };
    drop(lock);
    memo.insert(loaded.suite.id.clone(), result.clone());
    result
}

fn run_once(loaded: &LoadedSuite) -> Result<SuiteReport, String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let engine = Engine::connect(Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        // Once per process: stale runs of killed processes go, and a watcher covers this one.
        static WATCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WATCHED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = stackcheck::reap::reap(&engine, false, false).await;
            stackcheck::reap::spawn_watcher(Path::new(env!("CARGO_BIN_EXE_stackcheck")));
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cache_dir().join("bring-ups"))
            .map_err(|e| e.to_string())?;
        let _ = writeln!(log, "{}", loaded.suite.id);
        let console = Recorder::create(&cache_dir().join(format!("{}.console", loaded.suite.id)))?;
        let report = stackcheck::run::run_suite(loaded, &engine, &console).await;
        let junit = cache_dir().join(format!("{}.xml", loaded.suite.id));
        let one = std::slice::from_ref(&report);
        stackcheck::report::write_junit(&junit, one)
            .map_err(|e| format!("cannot write {}: {e}", junit.display()))?;
        // The other two reports `run --json/--summary` write, for the secrets test to read.
        let json = cache_dir().join(format!("{}.report.json", loaded.suite.id));
        stackcheck::report::write_json(&json, one, report.duration_ms)
            .map_err(|e| format!("cannot write {}: {e}", json.display()))?;
        let md = cache_dir().join(format!("{}.md", loaded.suite.id));
        stackcheck::report::write_summary(&md, one)
            .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
        Ok(report)
    })
}

/// What `stackcheck run -v` would print (every phase, work line and outcome), into a file the
/// secrets test reads.
struct Recorder(Mutex<File>);

impl Recorder {
    fn create(path: &Path) -> Result<Recorder, String> {
        File::create(path)
            .map(|f| Recorder(Mutex::new(f)))
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
    }
    fn line(&self, text: &str) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{text}");
    }
}

impl Progress for Recorder {
    fn phase(&self, msg: &str) {
        self.line(&format!("· {msg}"));
    }
    fn detail(&self, msg: &str) {
        self.line(&format!("  {msg}"));
    }
    fn outcome(&self, o: &stackcheck::report::Outcome) {
        self.line(&format!(
            "{:?} {}  {}\n{}",
            o.status, o.name, o.message, o.detail
        ));
    }
}

/// `<suite>::reports::no-secrets`: the console output, JUnit, JSON and Markdown summary of the suite's run hold
/// none of its secret values (collected independently of the harness's masker).
fn no_secrets(loaded: &LoadedSuite) -> Result<(), Failed> {
    let report = suite_report(loaded)?;
    let secrets = common::secret_values(loaded);
    let dir = cache_dir();
    let name = &loaded.suite.id;
    let mut texts = vec![(
        "JSON".to_string(),
        serde_json::to_string(&report).unwrap_or_default(),
    )];
    for ext in ["console", "xml", "report.json", "md"] {
        let path = dir.join(format!("{name}.{ext}"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        texts.push((path.display().to_string(), text));
    }
    common::assert_no_secret_in(&secrets, &texts).map_err(Failed::from)
}

/// `<suite>::all`: every test of the suite passed (each listed in the suite's own JUnit), and its
/// reports hold no secret.
fn whole_suite(loaded: &LoadedSuite) -> Result<(), Failed> {
    let report = suite_report(loaded)?;
    if let Some(e) = &report.infra_error {
        return Err(format!("infrastructure error: {e}").into());
    }
    let failed: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.status != Status::Passed)
        .map(|o| format!("{}: {}", o.name, o.message))
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} of {} failed:\n{}",
            failed.len(),
            report.outcomes.len(),
            failed.join("\n")
        )
        .into());
    }
    no_secrets(loaded)
}

fn suites_dir() -> PathBuf {
    std::env::var_os("STACKCHECK_SUITES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("suites"))
}

fn main() {
    let args = Arguments::from_args();
    let files = suite::discover(&[suites_dir()]).expect("the suites folder is readable");
    let mut trials = Vec::new();
    // `STACKCHECK_TRIALS=suite`: one trial per suite, so `cargo nextest run --partition` hands
    // whole suites to each runner (per-test trials would bring every suite up on every shard).
    let per_suite = std::env::var("STACKCHECK_TRIALS").is_ok_and(|v| v == "suite");
    let runs = files
        .into_iter()
        .flat_map(|file| match stackcheck::validate::load_runs(&file) {
            Ok(runs) => runs.into_iter().map(Ok).collect(),
            Err(e) => vec![Err((file, e))],
        });
    for run in runs {
        match run {
            Ok(loaded) if per_suite => {
                let name = format!("{}::all", loaded.suite.id);
                trials.push(Trial::test(name, move || whole_suite(&loaded)));
            }
            Ok(loaded) => {
                for test in stackcheck::plan::tests(&loaded.suite) {
                    let loaded = loaded.clone();
                    let name = test.name.clone();
                    trials.push(Trial::test(test.name, move || {
                        let report = suite_report(&loaded).map_err(Failed::from)?;
                        if let Some(e) = &report.infra_error {
                            return Err(format!("infrastructure error: {e}").into());
                        }
                        let outcome = report
                            .outcomes
                            .iter()
                            .find(|o| o.name == name)
                            .ok_or("test not in the suite's report")?;
                        match outcome.status {
                            Status::Passed => Ok(()),
                            Status::Failed => {
                                Err(format!("{}\n{}", outcome.message, outcome.detail).into())
                            }
                            // A nextest test has no runtime skip; one that did not run did not pass.
                            Status::Skipped => Err(format!("skipped: {}", outcome.message).into()),
                        }
                    }));
                }
                let name = format!("{}::reports::no-secrets", loaded.suite.id);
                trials.push(Trial::test(name, move || no_secrets(&loaded)));
            }
            Err((file, e)) => {
                let msg = e.to_string();
                let name = format!(
                    "{}::load",
                    file.file_stem().and_then(|s| s.to_str()).unwrap_or("suite")
                );
                trials.push(Trial::test(name, move || Err(msg.clone().into())));
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
