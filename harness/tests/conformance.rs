//! The conformance suites as a libtest-mimic target: every test of every suite in `suites/` is its
//! own test, named exactly as `stackcheck run` and JUnit name it.
//!
//! Sharing: a suite's stack is brought up once per test-runner invocation, not once per test.
//! The first test of a suite to run takes a file lock, runs the whole suite (build, up, all
//! checks, teardown) and stores the outcomes in `target/stackcheck-conformance/<run>/<suite>.json`;
//! every other test of that suite waits on the lock and reads its own outcome from there. The run
//! key is nextest's `NEXTEST_RUN_ID` (one process per test) or, under `cargo test` (one process),
//! the process id. Teardown happens inside the run that brought the stack up.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use stackcheck::checks::Status;
use stackcheck::engine::Engine;
use stackcheck::report::Quiet;
use stackcheck::run::SuiteReport;
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
    if let Some(r) = memo.get(&loaded.suite.suite) {
        return r.clone();
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock = File::create(dir.join(format!("{}.lock", loaded.suite.suite)))
        .map_err(|e| e.to_string())?;
    lock.lock()
        .map_err(|e| format!("cannot lock the suite cache: {e}"))?;
    let cached = dir.join(format!("{}.json", loaded.suite.suite));
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
    memo.insert(loaded.suite.suite.clone(), result.clone());
    result
}

fn run_once(loaded: &LoadedSuite) -> Result<SuiteReport, String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let engine = Engine::connect(Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        Ok(stackcheck::run::run_suite(loaded, &engine, &Quiet).await)
    })
}

fn main() {
    let args = Arguments::from_args();
    let files = suite::discover(&[root().join("suites")]).expect("suites/ is readable");
    let mut trials = Vec::new();
    for file in files {
        match suite::load_file(&file) {
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
                        }
                    }));
                }
            }
            Err(e) => {
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
