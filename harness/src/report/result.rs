//! The result model: what a run concluded, test by test and suite by suite. Every report
//! (console, JUnit, JSON, summary) is written from these types alone.

use serde::{Deserialize, Serialize};

use crate::checks::{ProbeTarget, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
}

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub name: String,
    pub status: Status,
    /// Passed, but a `warn`-level policy rule found something.
    #[serde(default)]
    pub warning: bool,
    pub message: String,
    #[serde(default)]
    pub detail: String,
    pub duration_ms: u64,
    /// What the failed attempts said before a retry passed (`retries:`); non-empty: flaky.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flaky: Vec<String>,
    /// A failure listed under the suite's `quarantine:`, reported as a warning instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantined: bool,
}

/// How a test ended, as reports name it (JSON `status`, console mark, summary columns).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    Passed,
    /// Passed; a `warn`-level policy rule found something.
    Warned,
    /// Passed on a re-run (`retries`) after failing.
    Flaky,
    /// Failed, but listed under `quarantine:`: a warning, not a failure.
    Quarantined,
    Failed,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Passed => "passed",
            Ending::Warned => "warned",
            Ending::Flaky => "flaky",
            Ending::Quarantined => "quarantined",
            Ending::Failed => "failed",
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
        }
    }
}

impl Outcome {
    /// A check's verdict, named and timed.
    pub fn from_verdict(name: &str, v: Verdict, started: std::time::Instant) -> Outcome {
        Outcome {
            name: name.to_string(),
            status: if v.passed {
                Status::Passed
            } else {
                Status::Failed
            },
            warning: v.warning,
            message: v.message,
            detail: v.detail,
            duration_ms: started.elapsed().as_millis() as u64,
            flaky: v.flaky,
            quarantined: false,
        }
    }

    pub fn ending(&self) -> Ending {
        match self.status {
            Status::Failed => Ending::Failed,
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

    /// A test that never ran, failed with why.
    pub fn not_run(name: &str, reason: &str) -> Outcome {
        Outcome {
            name: name.to_string(),
            status: Status::Failed,
            warning: false,
            message: format!("not run: {reason}"),
            detail: String::new(),
            duration_ms: 0,
            flaky: Vec::new(),
            quarantined: false,
        }
    }
}

/// Everything one suite run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteReport {
    pub suite: String,
    pub about: Option<String>,
    pub project: String,
    pub run_id: String,
    pub engine: String,
    pub outcomes: Vec<Outcome>,
    /// Set when the run could not be carried out (exit 3), as opposed to a promise failing.
    pub infra_error: Option<String>,
    pub interrupted: bool,
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
}

/// The image one service ran: what the compose file names, what the engine used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceImage {
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
}

impl SuiteReport {
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .count()
    }
}
