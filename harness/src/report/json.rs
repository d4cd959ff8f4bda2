//! The machine-readable report (`run --json FILE`): a versioned document whose JSON Schema is
//! `stackcheck schema --report` (committed as `docs/report.schema.json`). Additive changes keep
//! the version; a field removed or changed in meaning bumps it.

use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;

use super::{Ending, ServiceImage, SuiteReport, Timeline};

/// The value of `schema` in every report this version writes.
pub const REPORT_SCHEMA: &str = "stackcheck-report/1";

/// One `stackcheck run`.
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonReport {
    /// Always `stackcheck-report/1` for this layout.
    #[schemars(extend("const" = "stackcheck-report/1"))]
    pub schema: String,
    /// The stackcheck version that wrote it.
    pub stackcheck: String,
    /// `passed` when no test failed and nothing stopped a suite, else `failed`.
    pub status: RunStatus,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// Tests by how they ended, over every suite.
    pub counts: Counts,
    /// One entry per suite.
    pub suites: Vec<JsonSuite>,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Passed,
    Failed,
}

/// How many tests ended which way (`passed` excludes warned, flaky and quarantined ones).
#[derive(Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub tests: usize,
    pub passed: usize,
    pub warned: usize,
    pub flaky: usize,
    pub quarantined: usize,
    pub failed: usize,
    /// Not run because what they need failed first (that failure is counted once, in `failed`).
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, e: Ending) {
        self.tests += 1;
        *match e {
            Ending::Passed => &mut self.passed,
            Ending::Warned => &mut self.warned,
            Ending::Flaky => &mut self.flaky,
            Ending::Quarantined => &mut self.quarantined,
            Ending::Failed => &mut self.failed,
            Ending::Skipped => &mut self.skipped,
        } += 1;
    }
}

/// One suite's run.
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSuite {
    /// The suite id (`suite:` in the file).
    pub suite: String,
    pub status: RunStatus,
    /// The compose project and the run id its resources were labelled with.
    pub project: String,
    pub run: String,
    /// Docker engine version (API version in brackets) and where it was reached, e.g.
    /// `20.10.24 (API 1.41) at tcp://docker:2376 (DOCKER_HOST, TLS)`.
    pub engine: String,
    /// `docker compose version`; empty for a stack of `containers`.
    pub compose: String,
    pub duration_ms: u64,
    /// Why the suite could not be carried out (engine gone, infrastructure), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infra_error: Option<String>,
    /// Stopped by Ctrl-C or SIGTERM (after teardown).
    pub interrupted: bool,
    /// `fast` when the run's healthchecks polled every second (`health: fast`), else `documented`.
    pub health: String,
    /// The stack was left up on request (`run --keep`, `stackcheck up`): where, and how to remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
    /// The service logs `run --logs-dir` wrote, one file per service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    pub counts: Counts,
    /// The image each service ran; `standin` set where an offline stand-in replaced upstream.
    pub images: Vec<ServiceImage>,
    /// When things happened, in ms from the suite's start: its phases and each service's life.
    pub timeline: Timeline,
    pub tests: Vec<JsonTest>,
}

/// One test (one promise).
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonTest {
    /// Full name, as in the console, JUnit and `cargo nextest list`: `<suite>::<check>`.
    pub name: String,
    /// The name without the suite: `service::db::ports`, `checks::<name>`, `policy::<rule>`.
    pub check: String,
    pub status: Ending,
    /// When it started, in ms from the suite's start.
    pub started_ms: u64,
    pub duration_ms: u64,
    /// One line: what was expected and what was seen. Secrets are masked.
    pub message: String,
    /// Failure context (health-check output, log tail); empty when passed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// For a flaky test: what each failed attempt said, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<String>,
    /// A scenario's steps, each timed within the test.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<super::StepSpan>,
}

impl JsonReport {
    /// `wall_ms`: the whole run's wall time (suites may have overlapped).
    pub fn new(reports: &[SuiteReport], wall_ms: u64) -> JsonReport {
        let mut counts = Counts::default();
        let suites: Vec<JsonSuite> = reports
            .iter()
            .map(|r| {
                let mut c = Counts::default();
                let tests = r
                    .outcomes
                    .iter()
                    .map(|o| {
                        let e = o.ending();
                        c.add(e);
                        counts.add(e);
                        JsonTest {
                            name: o.name.clone(),
                            check: o
                                .name
                                .strip_prefix(&format!("{}::", r.suite))
                                .unwrap_or(&o.name)
                                .to_string(),
                            status: e,
                            started_ms: o.started_ms,
                            duration_ms: o.duration_ms,
                            message: o.message.clone(),
                            detail: o.detail.clone(),
                            failed_attempts: o.flaky.clone(),
                            steps: o.steps.clone(),
                        }
                    })
                    .collect();
                JsonSuite {
                    suite: r.suite.clone(),
                    status: suite_status(r),
                    project: r.project.clone(),
                    run: r.run_id.clone(),
                    engine: r.engine.clone(),
                    compose: r.compose.clone(),
                    duration_ms: r.duration_ms,
                    infra_error: r.infra_error.clone(),
                    interrupted: r.interrupted,
                    health: if r.fast_health { "fast" } else { "documented" }.into(),
                    kept: r.kept.clone(),
                    logs: r.logs.clone(),
                    counts: c,
                    images: r.images.clone(),
                    timeline: r.timeline.clone(),
                    tests,
                }
            })
            .collect();
        let status = if suites.iter().all(|s| s.status == RunStatus::Passed) {
            RunStatus::Passed
        } else {
            RunStatus::Failed
        };
        JsonReport {
            schema: REPORT_SCHEMA.into(),
            stackcheck: env!("CARGO_PKG_VERSION").into(),
            status,
            duration_ms: wall_ms,
            counts,
            suites,
        }
    }
}

pub(super) fn suite_status(r: &SuiteReport) -> RunStatus {
    if r.failed() == 0 && r.infra_error.is_none() && !r.interrupted {
        RunStatus::Passed
    } else {
        RunStatus::Failed
    }
}

/// Writes the JSON report of `reports` (schema `stackcheck-report/1`).
pub fn write_json(path: &Path, reports: &[SuiteReport], wall_ms: u64) -> std::io::Result<()> {
    let report = JsonReport::new(reports, wall_ms);
    let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// The JSON Schema of [`JsonReport`] (what `docs/report.schema.json` holds).
pub fn report_schema_json() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(JsonReport)).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "title".into(),
            format!("stackcheck run report ({REPORT_SCHEMA})").into(),
        );
    }
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
