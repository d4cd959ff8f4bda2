//! The result model: what a run concluded, test by test and suite by suite. Every report
//! (console, JUnit, JSON, summary) is written from these types alone.

use serde::{Deserialize, Serialize};

use crate::mask::Masker;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// Whether a test passed the gate.
pub enum Status {
    /// Passed (possibly with a warning, flaky or quarantined).
    Passed,
    /// Failed.
    Failed,
    /// Not run: what it needs failed first (a service that never started, a build, `--fail-fast`).
    /// That root cause is a failure of its own; this is not another one.
    Skipped,
}

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The test's full name.
    pub name: String,
    /// Whether it passed the gate.
    pub status: Status,
    /// Passed, but a `warn`-level policy rule found something.
    #[serde(default)]
    pub warning: bool,
    /// One line: what was expected, what was seen.
    pub message: String,
    #[serde(default)]
    /// On failure, what helps find the cause: health-check output, log lines, command output.
    pub detail: String,
    /// How long the test took.
    pub duration_ms: u64,
    /// When it started, in ms from the suite's start.
    #[serde(default)]
    pub started_ms: u64,
    /// What the failed attempts said before a retry passed (`retries:`); non-empty: flaky.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flaky: Vec<String>,
    /// A failure listed under the suite's `quarantine:`, reported as a warning instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantined: bool,
    /// With `run --logs-dir`, on failure: the last lines of the logs of the services it touches.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub logs: String,
    /// A scenario's steps, each timed within the test.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<super::StepSpan>,
}

/// How a test ended, as reports name it (JSON `status`, console mark, summary columns).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// Passed.
    Passed,
    /// Passed; a `warn`-level policy rule found something.
    Warned,
    /// Passed on a re-run (`retries`) after failing.
    Flaky,
    /// Failed, but listed under `quarantine:`: a warning, not a failure.
    Quarantined,
    /// Failed.
    Failed,
    /// Not run, because what it needs failed first.
    Skipped,
}

impl Ending {
    /// The JSON `status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Passed => "passed",
            Ending::Warned => "warned",
            Ending::Flaky => "flaky",
            Ending::Quarantined => "quarantined",
            Ending::Failed => "failed",
            Ending::Skipped => "skipped",
        }
    }
    /// The console's column mark.
    pub fn mark(self) -> &'static str {
        match self {
            Ending::Passed => "PASS",
            Ending::Warned => "WARN",
            Ending::Flaky => "FLAKY",
            Ending::Quarantined => "QUAR",
            Ending::Failed => "FAIL",
            Ending::Skipped => "SKIP",
        }
    }
}

impl Outcome {
    /// How the test ended, as reports name it.
    pub fn ending(&self) -> Ending {
        match self.status {
            Status::Failed => Ending::Failed,
            Status::Skipped => Ending::Skipped,
            Status::Passed if self.quarantined => Ending::Quarantined,
            Status::Passed if !self.flaky.is_empty() => Ending::Flaky,
            Status::Passed if self.warning => Ending::Warned,
            Status::Passed => Ending::Passed,
        }
    }

    /// For a flaky test, ` (flaky: passed on attempt N; attempt 1: …)`; else empty.
    pub fn flaky_note(&self) -> String {
        if self.flaky.is_empty() {
            return String::new();
        }
        format!(
            " (flaky: passed on attempt {}; {})",
            self.flaky.len() + 1,
            self.flaky.join("; ")
        )
    }

    /// Every text of the outcome (its name too) through the masking rule: what one writer
    /// hides, no other prints.
    pub fn mask_with(&mut self, masker: &Masker) {
        for text in [
            &mut self.name,
            &mut self.message,
            &mut self.detail,
            &mut self.logs,
        ] {
            *text = masker.mask(text);
        }
        for attempt in &mut self.flaky {
            *attempt = masker.mask(attempt);
        }
        for step in &mut self.steps {
            step.step = masker.mask(&step.step);
        }
    }

    /// A test that never ran, skipped with why.
    pub fn not_run(name: &str, reason: &str) -> Outcome {
        Outcome {
            name: name.to_string(),
            status: Status::Skipped,
            warning: false,
            message: format!("not run: {reason}"),
            detail: String::new(),
            duration_ms: 0,
            started_ms: 0,
            flaky: Vec::new(),
            quarantined: false,
            logs: String::new(),
            steps: Vec::new(),
        }
    }
}

/// One address a probe of this run connected to, and why it was allowed (see `checks::home`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTarget {
    /// `host:port` as connected to.
    pub target: String,
    /// Why it is home: loopback, a service of the stack, an address the run created.
    pub home: String,
}

/// Everything one suite run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteReport {
    /// The suite id.
    pub suite: String,
    /// The suite's `about`.
    pub about: Option<String>,
    /// The compose project of the run.
    pub project: String,
    /// The run id (its label value).
    pub run_id: String,
    /// The engine's version and endpoint (`… at tcp://h:2376 (DOCKER_HOST, TLS)`).
    pub engine: String,
    /// Every planned test's outcome, in plan order.
    pub outcomes: Vec<Outcome>,
    /// Set when the run could not be carried out (exit 3), as opposed to a promise failing.
    pub infra_error: Option<String>,
    /// Stopped by Ctrl-C or SIGTERM (after tearing down).
    pub interrupted: bool,
    /// How long the suite took.
    pub duration_ms: u64,
    /// Every address a network probe of this run connected to, and why it was home.
    #[serde(default)]
    pub probes: Vec<ProbeTarget>,
    /// `docker compose version` (empty for a stack of `containers`).
    #[serde(default)]
    pub compose: String,
    /// The image each service ran (after bring-up).
    #[serde(default)]
    pub images: Vec<ServiceImage>,
    /// The images the suite built under `images:` (by tag, `service` naming its key), whether or
    /// not a service ran them: release-gate evidence names them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub built: Vec<ServiceImage>,
    /// The run's healthchecks polled every second (`health: fast`).
    #[serde(default)]
    pub fast_health: bool,
    /// Set when the stack was left up on request (`--keep`, `stackcheck up`): where it is and how
    /// to remove it.
    #[serde(default)]
    pub kept: Option<String>,
    /// The log files `run --logs-dir` wrote, one per service.
    #[serde(default)]
    pub logs: Vec<String>,
    /// When things happened: the run's phases and each service's life.
    #[serde(default)]
    pub timeline: super::Timeline,
}

/// The image one service ran: what the compose file names, what the engine used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceImage {
    /// The service (or `stack.containers` name).
    pub service: String,
    /// As named in the compose file or suite (`postgres:14-alpine`).
    pub image: String,
    /// The engine's image id (`sha256:…`).
    pub id: String,
    /// Registry digests (`name@sha256:…`); empty for images built or imported locally.
    #[serde(default)]
    pub digests: Vec<String>,
    /// Set when the image is one of the offline stand-ins (`io.stackcheck.standin`), or was
    /// built on one (`built`): what the stand-in is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standin: Option<String>,
    /// Built by this run (compose `build:`), rather than an image the engine had.
    #[serde(default)]
    pub built: bool,
    /// Pulled by this run from its registry (else built, or already on the engine).
    #[serde(default)]
    pub pulled: bool,
}

impl ServiceImage {
    /// Where the image came from in this run: `built`, `pulled` or `present`.
    pub fn source(&self) -> &'static str {
        match (self.built, self.pulled) {
            (true, _) => "built",
            (_, true) => "pulled",
            _ => "present",
        }
    }
}

/// How many tests of all `reports` ended this way.
pub fn count_ending(reports: &[SuiteReport], e: Ending) -> usize {
    reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter(|o| o.ending() == e)
        .count()
}

impl SuiteReport {
    /// Every text a writer prints of this report (console, JUnit, JSON, summary) through the
    /// masking rule: the one place a report is masked before any writer sees it.
    pub fn mask_with(mut self, masker: &Masker) -> SuiteReport {
        for o in &mut self.outcomes {
            o.mask_with(masker);
        }
        for b in &mut self.timeline.builds {
            b.step = masker.mask(&b.step);
        }
        for t in [&mut self.about, &mut self.infra_error, &mut self.kept]
            .into_iter()
            .flatten()
        {
            *t = masker.mask(t);
        }
        self
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.count(Status::Failed)
    }

    /// How many tests did not run (what they need failed first).
    pub fn skipped(&self) -> usize {
        self.count(Status::Skipped)
    }

    fn count(&self, status: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == status).count()
    }
}
