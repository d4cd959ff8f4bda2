//! The report stage: what people and machines see. Progress and results go through [`Progress`];
//! JUnit, JSON and the Markdown summary are written from finished [`SuiteReport`]s. Secrets are masked
//! before anything leaves the run.

mod console;
mod html;
mod json;
mod junit;
mod mask;
mod outputs;
mod result;
mod summary;
mod svg;
mod timeline;

pub use console::{closing, outcome_line, Console, Quiet};
pub use html::{esc as html_escape, filters as html_filters, html, page as html_page, write_html};
pub use json::{report_schema_json, write_json, JsonReport, REPORT_SCHEMA};
pub use junit::write_junit;
pub use mask::Masked;
pub use outputs::{check_file_path, Outputs};
pub use result::{Ending, Outcome, ProbeTarget, ServiceImage, Status, SuiteReport};
pub use summary::{summary_markdown, write_summary};
pub use timeline::{ms_since, BuildStep, Phase, PhaseSpan, ServiceLife, StepSpan, Timeline};

/// Receives progress while a suite runs.
pub trait Progress: Sync {
    /// A new phase (building, starting, tearing down…).
    fn phase(&self, msg: &str);
    /// A line of ongoing work (build output, service states); may be shown transiently.
    fn detail(&self, msg: &str);
    /// One finished test.
    fn outcome(&self, outcome: &Outcome);
}
