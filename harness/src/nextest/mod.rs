//! Conformance suites as `cargo nextest run` tests, in any crate: a test target with
//! `harness = false` whose `main` is one call.
//!
//! ```toml
//! # Cargo.toml
//! [dev-dependencies]
//! stackcheck = "0.1"
//!
//! [[test]]
//! name = "stacks"
//! harness = false
//! ```
//!
//! ```text
//! // tests/stacks.rs
//! fn main() {
//!     stackcheck::nextest::main("tests/stacks");
//! }
//! ```
//!
//! Every test of every suite in that folder (relative to the crate, where cargo runs its tests)
//! is a test named as `stackcheck run` and its JUnit name it, plus `<suite>::reports::no-secrets`.
//! A suite's stack is brought up once per nextest run, not once per test (through a file lock under the
//! cargo target folder, `stackcheck-conformance/<NEXTEST_RUN_ID>/`), and is
//! torn down as by the CLI: on success, failure, SIGINT/SIGTERM, and by a watcher process (this
//! same binary, started with `__watch`) when the test process is killed outright.
//!
//! Environment: `STACKCHECK_SUITES` points the target at another folder or file of suites;
//! `STACKCHECK_TRIALS=suite` lists one test per suite (`<suite>::all`), so that
//! `cargo nextest run --partition` hands whole suites to each runner; `STACKCHECK_ATTEST=FILE`
//! writes the run's signed evidence there (`docs/release-gate.md`), with the key in
//! `STACKCHECK_SIGN_KEY`.

mod shared;

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

use crate::report::Status;
use crate::suite::LoadedSuite;

/// Runs the suites in `suites` (a folder or a file) as this test binary's tests, and exits.
pub fn main(suites: impl AsRef<Path>) -> ! {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(shared::WATCH) {
        let pid = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        std::process::exit(shared::watch(pid));
    }
    let suites = std::env::var_os("STACKCHECK_SUITES")
        .map(PathBuf::from)
        .unwrap_or_else(|| suites.as_ref().to_path_buf());
    let per_suite = std::env::var("STACKCHECK_TRIALS").is_ok_and(|v| v == "suite");
    libtest_mimic::run(&Arguments::from_args(), trials(&suites, per_suite)).exit()
}

/// One trial per test of every suite found in `suites`, or per suite (`per_suite`); a file that
/// does not load is one failing `<file>::load` trial.
pub fn trials(suites: &Path, per_suite: bool) -> Vec<Trial> {
    let files = match crate::suite::discover(&[suites.to_path_buf()]) {
        Ok(files) => files,
        Err(e) => {
            let msg = format!("cannot read the suites in {}: {e}", suites.display());
            return vec![Trial::test("suites::load", move || Err(msg.into()))];
        }
    };
    let mut trials = Vec::new();
    for file in files {
        let runs = match crate::plan::load_runs(&file) {
            Ok(runs) => runs,
            Err(e) => {
                let msg = e.to_string();
                let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("suite");
                trials.push(Trial::test(
                    format!("{stem}::load"),
                    move || Err(msg.into()),
                ));
                continue;
            }
        };
        for loaded in runs {
            if per_suite {
                let name = format!("{}::all", loaded.suite.id);
                trials.push(Trial::test(name, move || whole_suite(&loaded)));
                continue;
            }
            // Named as the run will report them: through the masking rule.
            let masker = listing_masker(&loaded);
            for test in crate::plan::tests(&loaded.suite) {
                let loaded = loaded.clone();
                let name = masker.mask(&test.name);
                trials.push(Trial::test(name.clone(), move || one_test(&loaded, &name)));
            }
            let name = format!("{}::reports::no-secrets", loaded.suite.id);
            trials.push(Trial::test(name, move || shared::no_secrets(&loaded)));
        }
    }
    trials
}

/// [`crate::plan::static_masker`], from this synchronous listing.
fn listing_masker(loaded: &LoadedSuite) -> crate::mask::Masker {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(crate::plan::static_masker(loaded)),
        Err(_) => crate::plan::masker(loaded),
    }
}

/// The outcome of the test `name` in its suite's one run.
fn one_test(loaded: &LoadedSuite, name: &str) -> Result<(), Failed> {
    let report = shared::suite_report(loaded)?;
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
        Status::Failed => Err(format!("{}\n{}", outcome.message, outcome.detail).into()),
        // A nextest test has no runtime skip; one that did not run did not pass.
        Status::Skipped => Err(format!("skipped: {}", outcome.message).into()),
    }
}

/// `<suite>::all`: every test of the suite passed, and its reports hold no secret.
fn whole_suite(loaded: &LoadedSuite) -> Result<(), Failed> {
    let report = shared::suite_report(loaded)?;
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
    shared::no_secrets(loaded)
}
