//! Drives one suite through every stage: plan → compose config → build → up and wait → checks,
//! then always tears down (`down -v`, then a sweep by the run's label) and proves nothing is left.
//!
//! `runner` records verdicts for both kinds of stack: compose projects (`compose`) and
//! `docker run` containers (`containers`); `images` requires and builds images, `runtime`
//! runs the checks against the live stack, `teardown` ends every run, `schedule` runs
//! several suites at once by their claims, and `claims` holds a run's claims on the engine against
//! other processes.

mod claims;
mod compose;
mod containers;
mod early;
mod images;
mod keep;
mod logs;
mod runner;
mod runtime;
mod schedule;
mod subnets;
mod teardown;

use std::path::Path;
use std::time::{Duration, Instant};

pub use keep::{down, kept, reusable, stack_of, Keep, KeptStack};
pub use schedule::{claims, default_jobs, run_all};
pub(crate) use teardown::interruption;
pub use teardown::teardown;

use crate::checks::Verdict;
use crate::engine::Engine;
use crate::plan::{self, RunIdentity, TestKind};
use crate::report::{Masked, Masker, Progress, Status, SuiteReport};
use crate::suite::{HealthMode, LoadedSuite, PortsMode, PullPolicy};
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
    /// Leave the stack up instead of tearing it down (`--keep`, or `stackcheck up`).
    pub keep: Option<Keep>,
    /// Check the stack `stackcheck up` (or `--keep`) left: no build, no bring-up, no teardown.
    pub reuse: bool,
    /// The kept stack to check (a [`crate::Stack`]'s own); without it, `reuse` looks for the
    /// suite's one kept stack.
    pub reuse_stack: Option<KeptStack>,
    /// Write each service's whole log (masked) under this folder, before teardown.
    pub logs_dir: Option<std::path::PathBuf>,
    /// Overrides each suite's `stack.health`.
    pub health: Option<HealthMode>,
    /// A compose file added after the suite's own (a mutant of `stackcheck mutate`): the run sees
    /// the stack as if its files said so, its model included.
    pub mutation: Option<std::path::PathBuf>,
    /// Before teardown, read each running service's facts into this (`stackcheck mutate`).
    pub observe: Option<crate::mutate::Observed>,
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
    let reusing = match (&options.reuse_stack, options.reuse) {
        (Some(k), _) => Some(k.clone()),
        (None, true) => match keep::reusable(engine, loaded).await {
            Ok(k) => Some(k),
            Err(why) => return not_started(loaded, engine, why, started),
        },
        (None, false) => None,
    };
    let id = match &reusing {
        Some(k) => k.adopted_identity(),
        None => RunIdentity::new(loaded),
    };
    let mut tests = plan::select_for_run(&loaded.suite, &options.filter);
    tests.retain(|t| stage_runs(&t.kind, options.keep, reusing.is_some()));
    // A mutant is a compose file: it never changes how an image is built, so the image's own
    // promises cannot see it (its build still runs: the stack needs the image).
    if options.mutation.is_some() {
        tests.retain(|t| !matches!(t.kind, TestKind::Image { .. }));
    }
    let needs = (!options.filter.is_empty()).then(|| plan::needs(&loaded.suite, &tests));
    let masker = Masker::for_suite(loaded);
    // A reused stack polls as it was brought up; its override says how.
    let fast_health = reusing.is_none()
        && options.health.unwrap_or(loaded.suite.stack.health) == HealthMode::Fast;
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
        ephemeral: match &reusing {
            Some(k) => k.ephemeral,
            None => options.ephemeral(loaded),
        },
        pull: options.pull.unwrap_or(loaded.suite.stack.pull),
        no_flaky: options.no_flaky,
        up_only: matches!(options.keep, Some(Keep::Up | Keep::Held)),
        reusing: reusing.clone(),
        logs_dir: options.logs_dir.clone(),
        fast_health,
    };
    let mut runner = Runner::new(loaded, engine, progress, settings);
    // A reusing run's own folder (its helpers' files): the kept run's folder holds its override.
    let workdir = match &reusing {
        Some(_) => std::env::temp_dir().join(format!(
            "stackcheck-{}-reuse-{}",
            id.run_id,
            std::process::id()
        )),
        None => std::env::temp_dir().join(format!("stackcheck-{}", id.run_id)),
    };
    let mut compose = match &reusing {
        Some(k) => k.compose(loaded),
        None => id.compose(loaded, Some(workdir.join(keep::OVERRIDE))),
    };
    compose.files.extend(options.mutation.clone());
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
    if let Some(observed) = options.observe.as_ref().filter(|_| !interrupted) {
        observed.fill(engine, &id.project).await;
    }
    if let Some(dir) = options.logs_dir.as_ref().filter(|_| runner.logs.is_none()) {
        progress.phase(&format!("{suite_id}: writing logs to {}", dir.display()));
        let services = logs::project_services(engine, &id.project).await;
        runner.logs = Some(logs::write(engine, dir, suite_id, &services, &runner.masker).await);
    }
    let failed = runner.any_failed() || matches!(stop, Some(Stop::Infra(_)));
    let keeping = !interrupted
        && reusing.is_none()
        && !loaded.suite.stack.compose.is_empty()
        && match options.keep {
            Some(Keep::Always | Keep::Up | Keep::Held) => true,
            Some(Keep::OnFailure) => failed,
            None => false,
        };
    let t0 = Instant::now();
    let mut kept = None;
    let no_leaks = if let Some(k) = options.keep.filter(|_| keeping) {
        let stack = keep::KeptStack::of(
            loaded,
            &id,
            k,
            runner.ephemeral,
            runner.moves.clone(),
            workdir.clone(),
        );
        let hint = stack.hint(&loaded.path);
        progress.phase(&format!("{suite_id}: {hint}"));
        kept = Some(hint);
        match keep::keep(engine, &id, &stack).await {
            Ok(l) if l.is_empty() => Verdict::pass(format!(
                "the stack of project {} is kept on request; nothing else of run {} remains",
                id.project, id.run_id
            )),
            Ok(l) => Verdict::fail(format!(
                "left behind beside the kept stack: {}",
                l.describe()
            )),
            Err(e) => Verdict::fail(format!("could not mark the kept stack: {e}")),
        }
    } else {
        // A reusing run removes only what it created itself: the stack belongs to the kept run.
        let (leftovers, label) = match &reusing {
            Some(_) => {
                let label = format!(
                    "{} & {}={}",
                    id.run_label(),
                    crate::engine::LABEL_OWNER,
                    crate::engine::owner()
                );
                (engine.sweep(&label).await.map_err(|e| e.to_string()), label)
            }
            None => {
                progress.phase(&format!("{suite_id}: tearing down {}", id.project));
                let left = teardown(engine, &compose, &id).await;
                (left.map_err(|e| e.to_string()), id.run_label())
            }
        };
        let _ = std::fs::remove_dir_all(&workdir);
        match leftovers {
            Ok(l) if l.is_empty() => Verdict::pass(format!("nothing labelled {label} remains")),
            Ok(l) => Verdict::fail(format!("left behind after teardown: {}", l.describe())),
            Err(e) => Verdict::fail(format!("could not list leftovers: {e}")),
        }
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
    let written = runner.logs.take().unwrap_or_default();
    logs::attach(&mut outcomes, &runner.tests, &loaded.suite, &written);
    for p in &written.problems {
        progress.phase(&format!("{suite_id}: --logs-dir: {p}"));
    }
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
        fast_health,
        kept,
        logs: written
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
    }
}

/// Whether a test belongs to this kind of run: `stackcheck up` stops once the stack is up, and a
/// run reusing a kept stack neither builds nor judges images (it did not make them).
fn stage_runs(kind: &TestKind, keep: Option<Keep>, reusing: bool) -> bool {
    use crate::plan::ServicePromise;
    match kind {
        TestKind::Build { .. } | TestKind::Image { .. } => !reusing,
        TestKind::StackConfig | TestKind::Policy { .. } | TestKind::NoLeaks => true,
        TestKind::Service {
            promise: ServicePromise::State,
            ..
        } => true,
        _ => !matches!(keep, Some(Keep::Up | Keep::Held)),
    }
}

/// The report of a suite that could not start (nothing was created): exit 3 with `why`.
fn not_started(
    loaded: &LoadedSuite,
    engine: &Engine,
    why: String,
    started: Instant,
) -> SuiteReport {
    SuiteReport {
        suite: loaded.suite.id.clone(),
        about: loaded.suite.about.clone(),
        project: String::new(),
        run_id: String::new(),
        engine: format!("{} at {}", engine.version, engine.endpoint),
        outcomes: Vec::new(),
        infra_error: Some(why),
        interrupted: false,
        duration_ms: started.elapsed().as_millis() as u64,
        probes: Vec::new(),
        compose: String::new(),
        images: Vec::new(),
        fast_health: false,
        kept: None,
        logs: Vec::new(),
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
