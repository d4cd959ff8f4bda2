//! The bookkeeping every suite run shares, whatever its stack: each planned test's verdict is
//! recorded once (flaky policy, quarantine, masking, progress), the first failure is remembered for
//! `--fail-fast`, and tests that never ran are filled in with why.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::checks::state::Held;
use crate::checks::Verdict;
use crate::engine::Engine;
use crate::mask::Masker;
use crate::plan::{Needs, PlannedTest, TestKind};
use crate::report::{Outcome, ProbeTarget, Progress, ServiceImage, Status};
use crate::suite::{LoadedSuite, PullPolicy};

/// Why a run's main phase stopped early; the tests it did not reach are reported with this.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stop {
    /// The run could not be carried out (engine, images, files): exit 3.
    #[error("{0}")]
    Infra(String),
    /// An earlier failure (or Ctrl-C, or `--fail-fast`) makes the remaining tests pointless.
    #[error("{0}")]
    NotRun(String),
    /// Something outside the run removed its stack: an infrastructure error once what went is
    /// known (`run::removed_from_outside`).
    #[error("the stack was removed from outside the run")]
    RemovedFromOutside,
}

/// One suite's run in progress: what it may touch, what it was asked to do, and what it has
/// concluded so far.
pub(crate) struct Runner<'a> {
    pub loaded: &'a LoadedSuite,
    pub engine: &'a Engine,
    pub progress: &'a dyn Progress,
    /// What the run was asked to do; fixed for its whole length.
    pub settings: RunnerSettings,
    /// What it has found and done so far.
    pub state: RunState,
}

/// What a [`Runner`] is asked to do beyond the suite and the engine.
pub(crate) struct RunnerSettings {
    pub masker: Masker,
    /// The planned tests of this run (after `--filter`), in report order.
    pub tests: Vec<PlannedTest>,
    /// Set by `--filter`: what the selected tests need (else everything is built and started).
    pub needs: Option<Needs>,
    pub fail_fast: bool,
    /// Published ports and fixed names are made unique to this run.
    pub ephemeral: bool,
    /// When images the stack does not build are pulled (a service's `pull_policy` wins).
    pub pull: PullPolicy,
    pub no_flaky: bool,
    /// `stackcheck up`: stop once the stack is up and its states judged.
    pub up_only: bool,
    /// The kept stack this run checks (`--reuse`): no build, no bring-up.
    pub reusing: Option<super::KeptStack>,
    /// `--logs-dir`: where each service's log goes before its containers are removed.
    pub logs_dir: Option<std::path::PathBuf>,
    /// `health: fast`: the run's healthchecks poll every second.
    pub fast_health: bool,
}

/// What a run has found and done so far.
#[derive(Default)]
pub(crate) struct RunState {
    results: BTreeMap<String, Outcome>,
    first_failure: Option<String>,
    /// Every address a network probe connected to, and why it was home.
    pub probes: Vec<ProbeTarget>,
    /// The image each service ran (after bring-up).
    pub images: Vec<ServiceImage>,
    /// State promises that passed, looked at again when the checks end.
    pub held: Vec<Held>,
    /// Tests that passed during bring-up, with the services their pass stands on.
    pub early_passes: Vec<(PlannedTest, std::collections::BTreeSet<String>)>,
    /// The images the suite built under `images:`, once built.
    pub built: Vec<crate::report::ServiceImage>,
    /// The images this run pulled.
    pub pulled: Vec<String>,
    /// Where this run put the fixed subnets it moved (a kept stack remembers them).
    pub moves: crate::plan::SubnetMoves,
    /// The logs written, once they are.
    pub logs: Option<super::logs::WrittenLogs>,
    /// The watch on the stack's containers and networks being removed from outside the run,
    /// while it stands.
    pub removals: Option<crate::engine::Removals>,
    /// When each verdict was recorded (a failure after an outside removal is not a verdict).
    recorded_at: BTreeMap<String, Instant>,
    /// When the run started, on the monotonic clock and on the wall clock (engine times).
    pub started: Option<(Instant, std::time::SystemTime)>,
    /// The run's phases so far, and each service's life (filled before teardown).
    pub timeline: crate::report::Timeline,
}

impl<'a> Runner<'a> {
    pub fn new(
        loaded: &'a LoadedSuite,
        engine: &'a Engine,
        progress: &'a dyn Progress,
        settings: RunnerSettings,
    ) -> Runner<'a> {
        Runner {
            loaded,
            engine,
            progress,
            settings,
            state: RunState {
                started: Some((Instant::now(), std::time::SystemTime::now())),
                ..RunState::default()
            },
        }
    }

    /// When the run started (the origin of its timeline).
    pub fn started_at(&self) -> Instant {
        self.state.started.map_or_else(Instant::now, |(t, _)| t)
    }

    /// Milliseconds from the run's start to `at`.
    pub fn offset(&self, at: Instant) -> u64 {
        let t0 = self.state.started.map(|(t, _)| t).unwrap_or(at);
        at.saturating_duration_since(t0).as_millis() as u64
    }

    /// Notes that `phase` ran from `start` until now.
    pub fn phase_done(&mut self, phase: crate::report::Phase, start: Instant) {
        let span = crate::report::PhaseSpan {
            phase,
            start_ms: self.offset(start),
            end_ms: self.offset(Instant::now()),
        };
        self.state.timeline.phases.push(span);
    }

    /// Records the verdict of the planned test of this kind. A kind with no planned test was
    /// done only because a selected test needed it (`--filter`) and is not reported.
    pub fn record(&mut self, kind: &TestKind, mut verdict: Verdict, started: Instant) {
        let Some(name) = self
            .settings
            .tests
            .iter()
            .find(|t| t.kind == *kind)
            .map(|t| t.name.clone())
        else {
            return;
        };
        if self.settings.no_flaky && verdict.passed && !verdict.flaky.is_empty() {
            verdict.passed = false;
            verdict.message = format!(
                "flaky (--no-flaky): passed on attempt {} after {}",
                verdict.flaky.len() + 1,
                verdict.flaky.join("; ")
            );
        }
        let mut outcome = verdict.into_outcome(&name, started);
        outcome.started_ms = self.offset(started);
        if outcome.status == Status::Failed && self.loaded.suite.is_quarantined(&name) {
            outcome.status = Status::Passed;
            outcome.warning = true;
            outcome.quarantined = true;
            outcome.message = format!("quarantined: {}", outcome.message);
        }
        outcome.mask_with(&self.settings.masker);
        self.progress.outcome(&outcome);
        if outcome.status == Status::Failed && self.state.first_failure.is_none() {
            self.state.first_failure = Some(name.clone());
        }
        self.state.recorded_at.insert(name.clone(), Instant::now());
        self.state.results.insert(name, outcome);
    }

    /// The name of the planned test of this kind.
    pub fn name_of(&self, kind: &TestKind) -> Option<String> {
        self.settings
            .tests
            .iter()
            .find(|t| t.kind == *kind)
            .map(|t| t.name.clone())
    }

    /// Whether the test of this kind has its verdict already (e.g. it passed during bring-up).
    pub fn decided(&self, kind: &TestKind) -> bool {
        self.settings
            .tests
            .iter()
            .any(|t| t.kind == *kind && self.state.results.contains_key(&t.name))
    }

    /// Whether a test has failed so far.
    pub fn any_failed(&self) -> bool {
        self.state.first_failure.is_some()
    }

    /// With `--fail-fast`, ends the main phase once a test has failed.
    pub fn halt(&self) -> Result<(), Stop> {
        match (&self.state.first_failure, self.settings.fail_fast) {
            (Some(name), true) => Err(Stop::NotRun(format!("--fail-fast: `{name}` failed"))),
            _ => Ok(()),
        }
    }

    pub fn tests_where(&self, f: impl Fn(&TestKind) -> bool) -> Vec<PlannedTest> {
        self.settings
            .tests
            .iter()
            .filter(|t| f(&t.kind))
            .cloned()
            .collect()
    }

    /// Failures recorded since `since` are consequences of `cause` (the stack removed from
    /// outside), not verdicts about the stack: they become not run, for that cause.
    pub fn void_failures_since(&mut self, since: Instant, cause: &str) {
        let voided: Vec<String> = self
            .state
            .results
            .iter()
            .filter(|(_, o)| o.status == Status::Failed)
            .filter(|(name, _)| {
                self.state
                    .recorded_at
                    .get(*name)
                    .is_some_and(|t| *t >= since)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in voided {
            let mut outcome = Outcome::not_run(&name, cause);
            outcome.mask_with(&self.settings.masker);
            self.state.results.insert(name, outcome);
        }
    }

    /// Records the planned test of this kind as not run, because what it needs failed first
    /// (`reason` names that root cause, which is a failure of its own). A test already decided
    /// keeps its verdict.
    pub fn skip(&mut self, kind: &TestKind, reason: &str) {
        let Some(name) = self
            .settings
            .tests
            .iter()
            .find(|t| t.kind == *kind && !self.state.results.contains_key(&t.name))
            .map(|t| t.name.clone())
        else {
            return;
        };
        let mut outcome = Outcome::not_run(&name, reason);
        outcome.mask_with(&self.settings.masker);
        self.progress.outcome(&outcome);
        self.state.results.insert(name, outcome);
    }

    /// Why `service` is not up, when its state test failed or was skipped: the root cause that
    /// every test needing the service is skipped for (one wording, so it is printed once).
    pub fn not_up(&self, service: &str) -> Option<String> {
        let state = self.state_outcome(service)?;
        match state.status {
            Status::Failed => Some(format!("`{service}` is not up (`{}` failed)", state.name)),
            Status::Skipped => Some(state.message.trim_start_matches("not run: ").to_string()),
            Status::Passed => None,
        }
    }

    /// The outcome of `service`'s state test, once decided.
    fn state_outcome(&self, service: &str) -> Option<&Outcome> {
        let state = TestKind::Service {
            service: service.to_string(),
            promise: crate::plan::ServicePromise::State,
        };
        let test = self.settings.tests.iter().find(|t| t.kind == state)?;
        self.state.results.get(&test.name)
    }

    /// Every planned test's outcome, in plan order. Those never recorded did not run, for
    /// `reason`: they are reported (once per reason on the console) and skipped.
    pub fn finish(&mut self, reason: &str) -> Vec<Outcome> {
        let unrecorded: Vec<TestKind> = self
            .settings
            .tests
            .iter()
            .filter(|t| !self.state.results.contains_key(&t.name))
            .map(|t| t.kind.clone())
            .collect();
        for kind in unrecorded {
            self.skip(&kind, reason);
        }
        self.settings
            .tests
            .iter()
            .filter_map(|t| self.state.results.get(&t.name).cloned())
            .collect()
    }
}
