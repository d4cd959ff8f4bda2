//! `stackcheck mutate`: how strong a suite is as a gate. The stack is broken on purpose, one
//! breakage at a time (`mutants`), and the suite is run against each: a mutant is killed when a
//! test fails, survived when every test passes. Every mutant run is a normal run (ephemeral ports,
//! labels, watcher, teardown, the no-leaks proof) with one compose file added after the user's.
//!
//! First the suite runs on the stack as written (the baseline): it must pass, or no verdict on a
//! mutant would mean anything; that run also shows what the files alone do not say
//! (`facts`). `report` writes the verdicts.

mod filter;
mod mutants;
mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

pub use crate::run::{Observed, ServiceFacts};
pub use filter::MutantFilter;
pub use mutants::{mutants, Mutant, MutantKind};
pub use report::{mutation_schema_json, MutantResult, MutantVerdict, MutationReport};

use crate::engine::{Engine, CONFIG_TIMEOUT};
use crate::report::{Progress, Status, SuiteReport};
use crate::run::{run_suite_with, RunOptions};
use crate::suite::{HealthMode, LoadedSuite, PortsMode};

/// Why a mutant's own run did not finish.
const INTERRUPTED: &str = "interrupted";

/// How `mutate` runs.
#[derive(Clone, Debug)]
pub struct MutateOptions {
    /// Only the mutants these select (all when empty).
    pub only: Vec<MutantFilter>,
    /// Mutant runs at the same time.
    pub jobs: usize,
    /// Host ports and fixed names of every run: ephemeral (runs share the engine) or documented
    /// (runs take turns on them). Unset: ephemeral, unless a `from_host` command of the suite
    /// names a documented host port.
    pub ports: Option<PortsMode>,
    /// No mutant run starts after this much time (running ones finish, each bounded by the
    /// suite's own timeout).
    pub budget: Duration,
}

/// Why `mutate` produced no verdicts.
#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    /// The suite fails on the stack as written: a mutant's verdict would mean nothing.
    #[error("the suite fails on the stack as written ({}); mutants are judged against a passing suite", .0.join("; "))]
    BaselineFailed(Vec<String>),
    /// The baseline could not be carried out (engine, compose).
    #[error("the baseline run could not be carried out: {0}")]
    Infra(String),
    /// Ctrl-C during the baseline (after its teardown).
    #[error("interrupted during the baseline run")]
    Interrupted,
}

/// Runs the baseline, derives the mutants and runs the suite against each. `progress` sees the
/// baseline's tests; `line` gets one line per phase and per mutant verdict.
pub async fn mutate(
    loaded: &LoadedSuite,
    engine: &Engine,
    options: &MutateOptions,
    progress: &dyn Progress,
    line: &(dyn Fn(&str) + Sync),
) -> Result<MutationReport, MutateError> {
    let started = Instant::now();
    let model = crate::plan::static_compose(loaded)
        .config_static(true, CONFIG_TIMEOUT)
        .await
        .map_err(|e| MutateError::Infra(e.to_string()))?;
    let needs = crate::checks::names_a_documented_port(&loaded.suite, &model);
    let ports = match (options.ports, needs) {
        (Some(p), _) => p,
        (None, Some((check, port))) => {
            line(&format!(
                "check `{check}` names documented host port {port} (a host command may reach it): every run uses the documented ports, one after another"
            ));
            PortsMode::Documented
        }
        (None, None) => PortsMode::Ephemeral,
    };
    let (baseline, health) = baseline(loaded, engine, ports, progress, line).await?;
    let facts = baseline.facts();
    let all: Vec<Mutant> = mutants(&model, &facts)
        .into_iter()
        .filter(|m| options.only.is_empty() || options.only.iter().any(|f| f.selects(m)))
        .collect();
    // On the documented ports, runs of one stack can only take turns.
    let jobs = match ports {
        PortsMode::Documented => 1,
        PortsMode::Ephemeral => options.jobs.max(1),
    };
    line(&format!(
        "{} mutant(s) of {} service(s), {jobs} at a time (budget {}s)",
        all.len(),
        facts.len(),
        options.budget.as_secs()
    ));
    let dir = std::env::temp_dir().join(format!("stackcheck-mutate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| MutateError::Infra(format!("cannot create {}: {e}", dir.display())))?;
    let deadline = started + options.budget;
    // Runs under way see Ctrl-C themselves and tear down; this keeps the queued ones from
    // starting (between two runs nobody else would notice it).
    let stop = Arc::new(AtomicBool::new(false));
    let watch = {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::run::interruption().await;
            stop.store(true, Ordering::SeqCst);
        })
    };
    let done = AtomicUsize::new(0);
    let total = all.len();
    let runs = all.iter().enumerate().map(|(i, m)| {
        let file = dir.join(format!("mutant-{i}.yaml"));
        let (stop, done) = (&*stop, &done);
        async move {
            let result = if stop.load(Ordering::SeqCst) {
                MutantResult::not_run(m, "not started: the command was interrupted")
            } else if Instant::now() >= deadline {
                MutantResult::not_run(m, "the budget was spent before it started")
            } else {
                one(loaded, engine, m, file, health, ports).await
            };
            if result.verdict == MutantVerdict::NotRun && result.detail == INTERRUPTED {
                stop.store(true, Ordering::SeqCst);
            }
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            line(&report::progress_line(n, total, &result));
            (i, result)
        }
    });
    let mut results: Vec<(usize, MutantResult)> = futures_util::stream::iter(runs)
        .buffer_unordered(jobs)
        .collect()
        .await;
    watch.abort();
    let _ = std::fs::remove_dir_all(&dir);
    results.sort_by_key(|(i, _)| *i);
    Ok(MutationReport::new(
        loaded,
        health,
        started.elapsed(),
        stop.load(Ordering::SeqCst),
        results.into_iter().map(|(_, r)| r).collect(),
    ))
}

/// The suite on the stack as written, with fast health if it passes so (every mutant run is then
/// faster), else as documented. Returns what it observed and the health mode that passed.
async fn baseline(
    loaded: &LoadedSuite,
    engine: &Engine,
    ports: PortsMode,
    progress: &dyn Progress,
    line: &(dyn Fn(&str) + Sync),
) -> Result<(Observed, HealthMode), MutateError> {
    let mut failures = Vec::new();
    for health in [HealthMode::Fast, HealthMode::Documented] {
        line(&format!(
            "baseline: the suite on the stack as written ({} health, {} ports)",
            match health {
                HealthMode::Fast => "fast",
                HealthMode::Documented => "documented",
            },
            match ports {
                PortsMode::Ephemeral => "ephemeral",
                PortsMode::Documented => "documented",
            }
        ));
        let observed = Observed::default();
        let options = RunOptions {
            ports: Some(ports),
            health: Some(health),
            observe: Some(observed.clone()),
            ..Default::default()
        };
        let report = run_suite_with(loaded, engine, progress, &options).await;
        if report.interrupted {
            return Err(MutateError::Interrupted);
        }
        if let Some(e) = &report.infra_error {
            return Err(MutateError::Infra(e.clone()));
        }
        failures = failed(&report);
        if failures.is_empty() {
            return Ok((observed, health));
        }
        line(&format!(
            "baseline failed with {} test(s) failing",
            failures.len()
        ));
    }
    Err(MutateError::BaselineFailed(failures))
}

/// One mutant's run and verdict.
async fn one(
    loaded: &LoadedSuite,
    engine: &Engine,
    m: &Mutant,
    file: PathBuf,
    health: HealthMode,
    ports: PortsMode,
) -> MutantResult {
    let t0 = Instant::now();
    if let Err(e) = std::fs::write(&file, &m.file) {
        return MutantResult::invalid(m, format!("cannot write {}: {e}", file.display()), t0);
    }
    let mut compose = crate::plan::static_compose(loaded);
    compose.files.push(file.clone());
    match compose.config(CONFIG_TIMEOUT).await {
        Ok(model) if m.took_effect(&model.raw) => {}
        Ok(_) => {
            let why = "compose's model with the mutant's file does not have the change (a merge rule kept it)";
            return MutantResult::invalid(m, why.into(), t0);
        }
        Err(e) => {
            return MutantResult::invalid(m, format!("compose refuses the mutant's file: {e}"), t0)
        }
    }
    let options = RunOptions {
        ports: Some(ports),
        health: Some(health),
        // The first failing test kills the mutant; the rest would only cost time.
        fail_fast: true,
        mutation: Some(file),
        ..Default::default()
    };
    let report = run_suite_with(loaded, engine, &Silent, &options).await;
    MutantResult::judged(m, &report, t0)
}

/// `name: message` of each failed test.
fn failed(report: &SuiteReport) -> Vec<String> {
    report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| format!("{}: {}", o.name, o.message))
        .collect()
}

/// A mutant run prints nothing of its own: its verdict is one line.
struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str) {}
    fn detail(&self, _: &str) {}
    fn outcome(&self, _: &crate::report::Outcome) {}
}
