//! Drives one suite through every stage: plan → compose config → build → up and wait → checks,
//! then always tears down (`down -v`, then a sweep by the run's label) and proves nothing is left.
//!
//! `runner` records verdicts for both kinds of stack: compose projects (`compose`) and
//! `docker run` containers (`containers`); `images` requires and builds images, `runtime`
//! runs the checks against the live stack, `teardown` ends every run, `schedule` runs
//! several suites at once by their claims, and `claims` holds a run's claims on the engine against
//! other processes.

mod build_steps;
mod claims;
mod compose;
mod containers;
mod early;
mod facts;
mod images;
mod keep;
mod logs;
pub mod reap;
mod runner;
mod runtime;
mod schedule;
mod subnets;
mod teardown;
mod timeline;

use std::path::Path;
use std::time::{Duration, Instant};

pub use facts::{Observed, ServiceFacts};
pub use keep::{down, kept, reusable, reusable_of_files, stack_of, Keep, KeptStack};
pub use schedule::{claims, default_jobs, run_all};
pub(crate) use teardown::interruption;
pub use teardown::teardown;

use crate::checks::Verdict;
use crate::engine::{Engine, Removal};
use crate::plan::{self, RunIdentity, TestKind};
use crate::report::{Masked, Progress, Status, SuiteReport};
use crate::suite::{HealthMode, LoadedSuite, PortsMode, PullPolicy};
use runner::{Runner, RunnerSettings, Stop};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long before its removal a container may already have been killed (and judged gone).
const REMOVAL_LEAD: Duration = Duration::from_secs(5);
/// An outside clean-up is taken as finished once it removed nothing more for this long …
const REMOVAL_QUIET: Duration = Duration::from_secs(2);
/// … or after this long, when the run says what it removed.
const REMOVAL_GATHER: Duration = Duration::from_secs(10);

/// How a suite is run: the flags of `stackcheck run` (each field's comment is its `--help`), and
/// what the library adds (`#[arg(skip)]`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunOptions {
    /// Stop at the first failing test (and skip the remaining suites); teardown still runs.
    #[arg(long)]
    pub fail_fast: bool,
    /// Host ports and fixed names: as documented, or ephemeral (free host ports, run-unique
    /// names) so runs of the same stack can share an engine. Overrides `stack.ports`.
    #[arg(long, value_enum)]
    pub ports: Option<PortsMode>,
    /// Fail checks that passed only on a re-run (`retries:`) instead of passing them as flaky.
    #[arg(long)]
    pub no_flaky: bool,
    /// Run only the tests whose name matches GLOB (full, `mt5::service::db::*`, or without the
    /// suite, `checks::*redis*`; `*` spans `::`). Repeatable. Builds and starts only what the
    /// selected tests need; suites with no match are skipped.
    #[arg(long, value_name = "GLOB")]
    pub filter: Vec<String>,
    /// When to pull the images the stacks run: missing (default), always or never. Overrides
    /// `stack.pull`; a service's own `pull_policy` still wins.
    #[arg(long, value_enum, value_name = "MODE")]
    pub pull: Option<PullPolicy>,
    /// Leave the stack up when the run ends: `on-failure` (a test failed) or `always`. Prints
    /// the project and how to remove it (`stackcheck down`); Ctrl-C still tears down.
    #[arg(long, value_enum, value_name = "WHEN")]
    pub keep: Option<Keep>,
    /// Check the stack `stackcheck up` (or `--keep`) left running: no build, no bring-up, no
    /// teardown. Fails before starting anything if it is not up, or up from other files.
    #[arg(long, conflicts_with = "keep")]
    pub reuse: bool,
    /// The kept stack to check (a [`crate::Stack`]'s own); without it, `reuse` looks for the
    /// suite's one kept stack.
    #[arg(skip)]
    pub reuse_stack: Option<KeptStack>,
    /// Write each service's whole log (stdout and stderr, timestamped, secrets masked) to
    /// `DIR/<suite>/<service>.log` before teardown, also on failure and Ctrl-C; a failing
    /// test's JUnit `<system-out>` gets the last lines of the services it touches.
    #[arg(long, value_name = "DIR")]
    pub logs_dir: Option<std::path::PathBuf>,
    /// How often healthchecks poll in this run: `documented` (as written) or `fast` (every
    /// second, with the written interval × retries as the retry budget). Overrides
    /// `stack.health`.
    #[arg(long, value_enum, value_name = "MODE")]
    pub health: Option<HealthMode>,
    /// A compose file added after the suite's own (a mutant of `stackcheck mutate`): the run sees
    /// the stack as if its files said so, its model included.
    #[arg(skip)]
    pub mutation: Option<std::path::PathBuf>,
    /// Before teardown, read each running service's facts into this (`stackcheck mutate`).
    #[arg(skip)]
    pub observe: Option<Observed>,
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

/// [`run_suite`] with options. A list of phases: prepare, bring up and check, look before the
/// teardown, keep or tear down, report.
pub async fn run_suite_with(
    loaded: &LoadedSuite,
    engine: &Engine,
    progress: &dyn Progress,
    options: &RunOptions,
) -> SuiteReport {
    let started = Instant::now();
    let reusing = match reused_stack(loaded, engine, options).await {
        Ok(reusing) => reusing,
        Err(why) => {
            return not_started(loaded, engine, why, started).mask_with(&plan::masker(loaded))
        }
    };
    let (run, settings) = Prepared::new(loaded, engine, options, reusing);
    let masked = Masked {
        inner: progress,
        masker: settings.masker.clone(),
        prefix: format!("{}: ", loaded.suite.id),
    };
    let mut runner = Runner::new(loaded, engine, &masked, settings);
    let (stop, interrupted) = bring_up_and_check(&mut runner, &run).await;
    before_teardown(&mut runner, &run, options, interrupted).await;
    let failed = runner.any_failed() || matches!(stop, Some(Stop::Infra(_)));
    let kept = keep_or_tear_down(&mut runner, &run, options, failed, interrupted).await;
    report(runner, run, stop, interrupted, kept, started)
}

/// The kept stack a `--reuse` run checks (or a [`crate::Stack`]'s own), if this is one.
async fn reused_stack(
    loaded: &LoadedSuite,
    engine: &Engine,
    options: &RunOptions,
) -> Result<Option<KeptStack>, String> {
    match (&options.reuse_stack, options.reuse) {
        (Some(k), _) => Ok(Some(k.clone())),
        (None, true) => keep::reusable(engine, loaded).await.map(Some),
        (None, false) => Ok(None),
    }
}

/// What a run is, decided before it touches the engine: its identity, its working folder and
/// compose command, and the stack it reuses, if any.
struct Prepared {
    id: RunIdentity,
    reusing: Option<KeptStack>,
    workdir: std::path::PathBuf,
    compose: crate::engine::Compose,
}

impl Prepared {
    fn new(
        loaded: &LoadedSuite,
        engine: &Engine,
        options: &RunOptions,
        reusing: Option<KeptStack>,
    ) -> (Prepared, RunnerSettings) {
        let id = match &reusing {
            Some(k) => k.adopted_identity(),
            None => RunIdentity::new(loaded),
        };
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
        }
        .reaching(engine);
        compose.files.extend(options.mutation.clone());
        let settings = settings(loaded, options, reusing.clone());
        let run = Prepared {
            id,
            reusing,
            workdir,
            compose,
        };
        (run, settings)
    }
}

/// The tests this run carries out and how, from the suite and the command line.
fn settings(
    loaded: &LoadedSuite,
    options: &RunOptions,
    reusing: Option<KeptStack>,
) -> RunnerSettings {
    let mut tests = plan::select_for_run(&loaded.suite, &options.filter);
    tests.retain(|t| stage_runs(&t.kind, options.keep, reusing.is_some()));
    // A mutant is a compose file: it never changes how an image is built, so the image's own
    // promises cannot see it (its build still runs: the stack needs the image).
    if options.mutation.is_some() {
        tests.retain(|t| !matches!(t.kind, TestKind::Image { .. }));
    }
    let needs = (!options.filter.is_empty()).then(|| plan::needs(&loaded.suite, &tests));
    RunnerSettings {
        masker: plan::masker(loaded),
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
        // A reused stack polls as it was brought up; its override says how.
        fast_health: reusing.is_none()
            && options.health.unwrap_or(loaded.suite.stack.health) == HealthMode::Fast,
        reusing,
        logs_dir: options.logs_dir.clone(),
    }
}

/// Builds, brings up and checks, until done or Ctrl-C: why it stopped early, if it did, and
/// whether it was interrupted.
async fn bring_up_and_check(runner: &mut Runner<'_>, run: &Prepared) -> (Option<Stop>, bool) {
    let id = &run.id;
    runner.progress.phase(&format!(
        "{}: project {} (run {})",
        runner.loaded.suite.id, id.project, id.run_id
    ));
    // Podman without systemd runs no healthchecks on its own: play its timer while the stack lives.
    let _health = runner.engine.drive_healthchecks(&id.run_label());
    let removals = runner.engine.watch_removals(&id.project, &id.run_id);
    runner.state.removals = Some(removals.clone());
    let started = Instant::now();
    let (stop, interrupted) = tokio::select! {
        r = main_phase(runner, &run.compose, id, &run.workdir) => (r.err(), false),
        _ = removals.first_outside() => (Some(Stop::RemovedFromOutside), false),
        why = teardown::interruption() => (Some(Stop::NotRun(format!("interrupted ({why})"))), true),
    };
    runner.state.removals = None;
    let removed = matches!(stop, Some(Stop::RemovedFromOutside)) || !removals.outside().is_empty();
    if !removed || interrupted {
        return (stop, interrupted);
    }
    let gone = removals.gathered(REMOVAL_QUIET, REMOVAL_GATHER).await;
    (Some(removed_from_outside(runner, &gone, started)), false)
}

/// The run's end when something else removed its stack: what went and when, as an
/// infrastructure error; the failures that followed are consequences, not verdicts.
fn removed_from_outside(runner: &mut Runner<'_>, gone: &[Removal], started: Instant) -> Stop {
    let mut what: Vec<String> = gone
        .iter()
        .map(|r| {
            let at = r.seen.saturating_duration_since(started).as_secs_f64();
            format!("{r} at {at:.1} s")
        })
        .collect();
    // An engine that reports no events still shows the container gone.
    if what.is_empty() {
        what.push("a container of it (the engine reported no removal event)".into());
    }
    let why = format!(
        "the stack was removed from outside the run: {}. Something other than this run (another \
         tool's clean-up, a person) removed it; nothing judged after that is a verdict about the stack",
        what.join(", ")
    );
    // A container is killed a moment before it is removed: what failed from then on is a
    // consequence of the removal.
    let first = gone
        .iter()
        .map(|r| r.seen)
        .min()
        .unwrap_or_else(Instant::now);
    let since = first.checked_sub(REMOVAL_LEAD).unwrap_or(started);
    runner.void_failures_since(since, "the stack was removed from outside the run");
    Stop::Infra(why)
}

/// What must be read while the stack still stands: each service's facts (`observe`) and, with
/// `--logs-dir`, every service's log.
async fn before_teardown(
    runner: &mut Runner<'_>,
    run: &Prepared,
    options: &RunOptions,
    interrupted: bool,
) {
    let engine = runner.engine;
    if let Some(observed) = options.observe.as_ref().filter(|_| !interrupted) {
        observed.fill(engine, &run.id.project).await;
    }
    if let Some((_, wall)) = runner.state.started {
        runner.state.timeline.services = timeline::lives(engine, &run.id.project, wall).await;
    }
    let suite_id = &runner.loaded.suite.id;
    if let Some(dir) = options
        .logs_dir
        .as_ref()
        .filter(|_| runner.state.logs.is_none())
    {
        runner
            .progress
            .phase(&format!("{suite_id}: writing logs to {}", dir.display()));
        let services = logs::project_services(engine, &run.id.project).await;
        let written = logs::write(engine, dir, suite_id, &services, &runner.settings.masker).await;
        runner.state.logs = Some(written);
    }
}

/// Keeps the stack when asked to (`--keep`, `stackcheck up`), else tears it down; either way
/// records `teardown::no-leaks`. The kept stack's hint, when kept.
async fn keep_or_tear_down(
    runner: &mut Runner<'_>,
    run: &Prepared,
    options: &RunOptions,
    failed: bool,
    interrupted: bool,
) -> Option<String> {
    let keeping = !interrupted
        && run.reusing.is_none()
        && !runner.loaded.suite.stack.compose.is_empty()
        && match options.keep {
            Some(Keep::Always | Keep::Up | Keep::Held) => true,
            Some(Keep::OnFailure) => failed,
            None => false,
        };
    let t0 = Instant::now();
    let (no_leaks, kept) = match options.keep.filter(|_| keeping) {
        Some(k) => {
            let (verdict, hint) = keep_stack(runner, run, k).await;
            (verdict, Some(hint))
        }
        None => {
            let verdict = tear_down(runner, run).await;
            runner.phase_done(crate::report::Phase::Teardown, t0);
            (verdict, None)
        }
    };
    runner.record(&TestKind::NoLeaks, no_leaks, t0);
    kept
}

/// Leaves the stack up, marked as kept: the `no-leaks` verdict and how to look at it and free it.
async fn keep_stack(runner: &Runner<'_>, run: &Prepared, k: Keep) -> (Verdict, String) {
    let (loaded, id) = (runner.loaded, &run.id);
    let stack = keep::KeptStack::of(
        loaded,
        id,
        k,
        runner.settings.ephemeral,
        runner.state.moves.clone(),
        run.workdir.clone(),
    );
    let hint = stack.hint(&loaded.path);
    runner
        .progress
        .phase(&format!("{}: {hint}", loaded.suite.id));
    let verdict = match keep::keep(runner.engine, id, &stack).await {
        Ok(l) if l.is_empty() => Verdict::pass(format!(
            "the stack of project {} is kept on request; nothing else of run {} remains",
            id.project, id.run_id
        )),
        Ok(l) => Verdict::fail(format!(
            "left behind beside the kept stack: {}",
            l.describe()
        )),
        Err(e) => Verdict::fail(format!("could not mark the kept stack: {e}")),
    };
    (verdict, hint)
}

/// Removes what the run made (a reusing run only its own helpers: the stack is the kept run's)
/// and proves nothing of it is left.
async fn tear_down(runner: &Runner<'_>, run: &Prepared) -> Verdict {
    let (engine, id) = (runner.engine, &run.id);
    let (leftovers, label) = match &run.reusing {
        Some(_) => {
            // What this visit made, not the stack it checked (see `LABEL_VISIT`).
            let visit = crate::engine::LABEL_VISIT;
            let label = format!(
                "{} & {visit}={}",
                id.run_label(),
                id.labels.get(visit).map(String::as_str).unwrap_or_default()
            );
            (engine.sweep(&label).await.map_err(|e| e.to_string()), label)
        }
        None => {
            runner.progress.phase(&format!(
                "{}: tearing down {}",
                runner.loaded.suite.id, id.project
            ));
            let left = teardown(engine, &run.compose, id).await;
            (left.map_err(|e| e.to_string()), id.run_label())
        }
    };
    let _ = std::fs::remove_dir_all(&run.workdir);
    match leftovers {
        Ok(l) if l.is_empty() => Verdict::pass(format!("nothing labelled {label} remains")),
        Ok(l) => Verdict::fail(format!("left behind after teardown: {}", l.describe())),
        Err(e) => Verdict::fail(format!("could not list leftovers: {e}")),
    }
}

/// The suite's report: every planned test's outcome (those not reached said why), logs attached.
fn report(
    mut runner: Runner<'_>,
    run: Prepared,
    stop: Option<Stop>,
    interrupted: bool,
    kept: Option<String>,
    started: Instant,
) -> SuiteReport {
    let (loaded, engine) = (runner.loaded, runner.engine);
    let suite_id = &loaded.suite.id;
    let infra_error = match &stop {
        Some(Stop::Infra(m)) => Some(m.clone()),
        _ => None,
    };
    let reason = match &stop {
        Some(s) => s.to_string(),
        None => "not run".to_string(),
    };
    let mut outcomes = runner.finish(&reason);
    let mut timeline = std::mem::take(&mut runner.state.timeline);
    timeline::with_ready(
        &mut timeline.services,
        &loaded.suite,
        &runner.settings.tests,
        &outcomes,
    );
    let written = runner.state.logs.take().unwrap_or_default();
    logs::attach(
        &mut outcomes,
        &runner.settings.tests,
        &loaded.suite,
        &written,
    );
    for p in &written.problems {
        runner
            .progress
            .phase(&format!("{suite_id}: --logs-dir: {p}"));
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
        project: run.id.project,
        run_id: run.id.run_id,
        engine: format!("{} at {}", engine.version, engine.endpoint),
        outcomes,
        infra_error,
        interrupted,
        duration_ms: started.elapsed().as_millis() as u64,
        probes: runner.state.probes,
        compose: if loaded.suite.stack.compose.is_empty() {
            String::new()
        } else {
            crate::engine::compose_version()
        },
        images: runner.state.images,
        built: runner.state.built,
        fast_health: runner.settings.fast_health,
        kept,
        logs: written
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        timeline,
    }
    .mask_with(&runner.settings.masker)
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
        built: Vec::new(),
        fast_health: false,
        kept: None,
        logs: Vec::new(),
        timeline: Default::default(),
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
