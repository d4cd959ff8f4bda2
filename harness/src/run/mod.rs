//! Drives one suite through every stage: plan → compose config → build → up and wait → checks,
//! then always tears down (`down -v`, then a sweep by the run's label) and proves nothing is left.
//!
//! `runner` records verdicts for both kinds of stack: compose projects (`compose`) and
//! `docker run` containers (`containers`); `images` requires and builds images, `runtime`
//! runs the checks against the live stack, `teardown` ends every run, and `schedule` runs
//! several suites at once by their claims.

mod compose;
mod containers;
mod images;
mod runner;
mod runtime;
mod schedule;
mod subnets;
mod teardown;

use std::path::Path;
use std::time::{Duration, Instant};

pub use schedule::{claims, default_jobs, run_all};
pub use teardown::teardown;

use crate::checks::Verdict;
use crate::engine::Engine;
use crate::plan::{self, RunIdentity, TestKind};
use crate::report::{Masked, Masker, Progress, Status, SuiteReport};
use crate::suite::{LoadedSuite, PortsMode, PullPolicy};
use runner::{Runner, RunnerSettings, Stop};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How a suite is run (the CLI's flags).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop at the first failing test: the rest are reported as not run, teardown still runs.
    pub fail_fast: bool,
    /// Overrides each suite's `stack.ports`.
    pub ports: Option<PortsMode>,
    /// A check that passed only on a re-run fails instead of passing as flaky.
    pub no_flaky: bool,
    /// `--filter` globs: only matching tests run, and only what they need is built and started.
    pub filter: Vec<String>,
    /// Overrides each suite's `stack.pull` (a service's own `pull_policy` still wins).
    pub pull: Option<PullPolicy>,
}

impl RunOptions {
    /// Whether this suite's stack runs with ephemeral ports and names.
    pub fn ephemeral(&self, loaded: &LoadedSuite) -> bool {
        self.ports.unwrap_or(loaded.suite.stack.ports) == PortsMode::Ephemeral
    }
}

/// Runs one suite against a connected engine. Never leaves the stack behind: teardown runs after
/// success, failure and Ctrl-C alike.
pub async fn run_suite(
    loaded: &LoadedSuite,
    engine: &Engine,
    progress: &dyn Progress,
) -> SuiteReport {
    run_suite_with(loaded, engine, progress, &RunOptions::default()).await
}

/// [`run_suite`] with options.
pub async fn run_suite_with(
    loaded: &LoadedSuite,
    engine: &Engine,
    progress: &dyn Progress,
    options: &RunOptions,
) -> SuiteReport {
    let started = Instant::now();
    let suite_id = &loaded.suite.id;
    let id = RunIdentity::new(loaded);
    let tests = plan::select_for_run(&loaded.suite, &options.filter);
    let needs = (!options.filter.is_empty()).then(|| plan::needs(&loaded.suite, &tests));
    let masker = Masker::for_suite(loaded);
    let masked = Masked {
        inner: progress,
        masker: masker.clone(),
        prefix: format!("{suite_id}: "),
    };
    let progress: &dyn Progress = &masked;
    let settings = RunnerSettings {
        masker,
        tests,
        needs,
        fail_fast: options.fail_fast,
        ephemeral: options.ephemeral(loaded),
        pull: options.pull.unwrap_or(loaded.suite.stack.pull),
        no_flaky: options.no_flaky,
    };
    let mut runner = Runner::new(loaded, engine, progress, settings);
    let workdir = std::env::temp_dir().join(format!("stackcheck-{}", id.run_id));
    let compose = id.compose(loaded, Some(workdir.join("stackcheck.override.yaml")));
    progress.phase(&format!(
        "{suite_id}: project {} (run {})",
        id.project, id.run_id
    ));

    // Podman without systemd runs no healthchecks on its own: play its timer while the stack lives.
    let health = engine.drive_healthchecks(&id.run_label());
    let mut interrupted = false;
    let stop = {
        let main = main_phase(&mut runner, &compose, &id, &workdir);
        tokio::select! {
            r = main => r.err(),
            why = teardown::interruption() => { interrupted = true; Some(Stop::NotRun(format!("interrupted ({why})"))) }
        }
    };

    drop(health);
    progress.phase(&format!("{suite_id}: tearing down {}", id.project));
    let leftovers = teardown(engine, &compose, &id).await;
    let _ = std::fs::remove_dir_all(&workdir);

    let t0 = Instant::now();
    let no_leaks = match leftovers {
        Ok(l) if l.is_empty() => {
            Verdict::pass(format!("nothing labelled {} remains", id.run_label()))
        }
        Ok(l) => Verdict::fail(format!("left behind after teardown: {}", l.describe())),
        Err(e) => Verdict::fail(format!("could not list leftovers: {e}")),
    };
    runner.record(&TestKind::NoLeaks, no_leaks, t0);

    let infra_error = match &stop {
        Some(Stop::Infra(m)) => Some(runner.masker.mask(m)),
        _ => None,
    };
    let reason = match &stop {
        Some(s) => s.to_string(),
        None => "not run".to_string(),
    };
    let mut outcomes = runner.finish(&reason);
    // A gate must never pass on tests that did not run: every skip has a failed root cause (or an
    // infrastructure error, or Ctrl-C). Should one ever lack it, the skips count as failures.
    let root_cause = outcomes.iter().any(|o| o.status == Status::Failed);
    if !root_cause && infra_error.is_none() && !interrupted {
        for o in outcomes.iter_mut().filter(|o| o.status == Status::Skipped) {
            o.status = Status::Failed;
        }
    }
    SuiteReport {
        suite: suite_id.clone(),
        about: loaded.suite.about.clone(),
        project: id.project,
        run_id: id.run_id,
        engine: format!("{} at {}", engine.version, engine.endpoint),
        outcomes,
        infra_error,
        interrupted,
        duration_ms: started.elapsed().as_millis() as u64,
        probes: runner.probes,
        compose: if loaded.suite.stack.compose.is_empty() {
            String::new()
        } else {
            crate::engine::compose_version()
        },
        images: runner.images,
    }
}

async fn main_phase(
    r: &mut Runner<'_>,
    compose: &crate::engine::Compose,
    id: &RunIdentity,
    workdir: &Path,
) -> Result<(), Stop> {
    let stack = &r.loaded.suite.stack;
    let budget = stack.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
    let deadline = Instant::now() + budget;
    std::fs::create_dir_all(workdir)
        .map_err(|e| Stop::Infra(format!("cannot create {}: {e}", workdir.display())))?;
    if stack.containers.is_empty() {
        compose::compose_phase(r, compose, id, workdir, deadline).await
    } else {
        containers::containers_phase(r, id, workdir, deadline).await
    }
}
