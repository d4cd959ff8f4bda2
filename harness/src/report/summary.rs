//! A short Markdown summary (`run --summary FILE`) for a CI job's summary page
//! (`$GITHUB_STEP_SUMMARY`, a GitLab artifact): one row per suite, then what needs attention.

use std::fmt::Write;
use std::path::Path;

use super::json::{suite_status, RunStatus};
use super::{Ending, SuiteReport};
use crate::text::snippet;

/// `folder/` and its files' names, from the paths `--logs-dir` wrote.
pub fn logs_named(files: &[String]) -> String {
    let path = |f: &String| std::path::Path::new(f).to_path_buf();
    let folder = files
        .first()
        .and_then(|f| path(f).parent().map(|p| p.display().to_string()))
        .unwrap_or_default();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| {
            path(f)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .collect();
    format!("{folder}/ ({})", names.join(", "))
}

/// The Markdown summary of `reports`: a table per suite, then failed, flaky and quarantined tests.
pub fn summary_markdown(reports: &[SuiteReport]) -> String {
    let mut md = String::new();
    counts_table(&mut md, reports);
    failures(&mut md, reports);
    notes(&mut md, reports);
    images(&mut md, reports);
    for r in reports {
        if let Some(gantt) = r.timeline.mermaid(&r.suite) {
            let _ = writeln!(md, "\n### `{}`: timeline\n\n{gantt}", r.suite);
        }
    }
    md
}

/// The verdict, then a row of counts per suite.
fn counts_table(md: &mut String, reports: &[SuiteReport]) {
    let failed = reports.iter().any(|r| suite_status(r) == RunStatus::Failed);
    let verdict = if failed { "❌ failed" } else { "✅ passed" };
    let _ = writeln!(md, "## stackcheck: {verdict}\n");
    let _ = writeln!(
        md,
        "| suite | result | passed | failed | skipped | warned | flaky | quarantined | time |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let n = |e: Ending| r.outcomes.iter().filter(|o| o.ending() == e).count();
        let result = match (suite_status(r), r.interrupted, &r.infra_error) {
            (RunStatus::Passed, _, _) => "✅",
            (_, true, _) => "⏹ interrupted",
            (_, _, Some(_)) => "⚠️ error",
            _ => "❌",
        };
        let _ = writeln!(
            md,
            "| `{}` | {result} | {} | {} | {} | {} | {} | {} | {:.1}s |",
            r.suite,
            n(Ending::Passed),
            n(Ending::Failed),
            n(Ending::Skipped),
            n(Ending::Warned),
            n(Ending::Flaky),
            n(Ending::Quarantined),
            r.duration_ms as f64 / 1000.0
        );
    }
}

/// Suites that could not run, then the failed, flaky and quarantined tests with their messages.
fn failures(md: &mut String, reports: &[SuiteReport]) {
    let section = |md: &mut String, title: &str, pick: &dyn Fn(Ending) -> bool| {
        let rows: Vec<String> = reports
            .iter()
            .flat_map(|r| &r.outcomes)
            .filter(|o| pick(o.ending()))
            .map(|o| {
                format!(
                    "- `{}` — {}",
                    o.name,
                    cell(&format!("{}{}", o.message, o.flaky_note()))
                )
            })
            .collect();
        if !rows.is_empty() {
            let _ = writeln!(md, "\n### {title}\n\n{}", rows.join("\n"));
        }
    };
    let errors: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.infra_error
                .as_ref()
                .map(|e| format!("- `{}`: {}", r.suite, cell(e)))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n### Could not run\n\n{}", errors.join("\n"));
    }
    section(md, "Failed", &|e| e == Ending::Failed);
    section(md, "Flaky (passed on a re-run)", &|e| e == Ending::Flaky);
    section(md, "Quarantined", &|e| e == Ending::Quarantined);
}

/// Fast health, and where the service logs are.
fn notes(md: &mut String, reports: &[SuiteReport]) {
    let fast: Vec<String> = reports
        .iter()
        .filter(|r| r.fast_health)
        .map(|r| format!("`{}`", r.suite))
        .collect();
    if !fast.is_empty() {
        let _ = writeln!(
            md,
            "\n_Fast health: {} ran with healthchecks polling every 1 s; the written intervals are static promises._",
            fast.join(", ")
        );
    }
    let logs: Vec<String> = reports
        .iter()
        .filter(|r| !r.logs.is_empty())
        .map(|r| format!("- `{}`: {}", r.suite, logs_named(&r.logs)))
        .collect();
    if !logs.is_empty() {
        let _ = writeln!(md, "\n### Service logs\n\n{}", logs.join("\n"));
    }
}

/// The image each service ran and where it came from; which are stand-ins.
fn images(md: &mut String, reports: &[SuiteReport]) {
    let images: Vec<String> = reports
        .iter()
        .flat_map(|r| r.images.iter().map(move |i| (r, i)))
        .map(|(r, i)| {
            let digest = i
                .digests
                .first()
                .map(|d| format!(" `{d}`"))
                .unwrap_or_default();
            format!(
                "- `{}` `{}`: `{}` {}{digest}",
                r.suite,
                i.service,
                i.image,
                i.source()
            )
        })
        .collect();
    if !images.is_empty() {
        let _ = writeln!(
            md,
            "\n<details><summary>Images ({}): built, pulled or present</summary>\n\n{}\n\n</details>",
            images.len(),
            images.join("\n")
        );
    }
    let standins: Vec<String> = reports
        .iter()
        .flat_map(|r| r.images.iter().map(move |i| (r, i)))
        .filter_map(|(r, i)| {
            let what = if i.built {
                "is built on a stand-in base"
            } else {
                "is a stand-in"
            };
            i.standin.as_ref().map(|w| {
                format!(
                    "- `{}` `{}`: `{}` {what} — {}",
                    r.suite,
                    i.service,
                    i.image,
                    cell(w)
                )
            })
        })
        .collect();
    if !standins.is_empty() {
        let _ = writeln!(
            md,
            "\n<details><summary>Stand-in images ({})</summary>\n\n{}\n\n</details>",
            standins.len(),
            standins.join("\n")
        );
    }
}

/// One line, no table-breaking characters, bounded.
fn cell(text: &str) -> String {
    snippet(text, 300).replace('|', "\\|")
}

/// Writes [`summary_markdown`] to `path`.
pub fn write_summary(path: &Path, reports: &[SuiteReport]) -> std::io::Result<()> {
    std::fs::write(path, summary_markdown(reports))
}
