//! The report people read (`run --html FILE`): one self-contained page, for any number of suites.
//! The verdict first, then every failure with what the run saw (its message, diagnostics and log
//! tail) and every skip with its cause; per suite, a timeline of the run (`svg.rs`), the images
//! it ran, and every test, filterable by status and name.
//! Nothing is fetched: styles and the filter's script are inline, the timeline is inline SVG. The
//! reports are masked before any writer sees them; each failure's text is bounded, so the page
//! stays small however much a stack printed.

use std::fmt::Write;
use std::path::Path;

use super::{Ending, Outcome, SuiteReport};

/// Characters of one failure's diagnostics and of its log tail kept on the page (their ends).
const FAILURE_TEXT: usize = 4000;

/// Characters of diagnostics the whole page shows; failures past it show their message alone.
const ALL_FAILURE_TEXT: usize = 1_000_000;

/// Characters of a message shown (a message is one line, but may quote a whole body).
const MESSAGE: usize = 500;

/// Writes the HTML report of `reports`.
pub fn write_html(path: &Path, reports: &[SuiteReport]) -> std::io::Result<()> {
    std::fs::write(path, html(reports))
}

/// The page.
pub fn html(reports: &[SuiteReport]) -> String {
    let failed = reports.iter().any(|r| !passed(r));
    let verdict = if failed { "FAILED" } else { "PASSED" };
    let mut p = String::new();
    header(&mut p, reports, verdict);
    failures(&mut p, reports);
    for (n, r) in reports.iter().enumerate() {
        suite(&mut p, r, n);
    }
    page(&format!("stackcheck: {verdict}"), &p)
}

/// A self-contained page around `body` (HTML): the one style and filter script every stackcheck
/// page shares. A table with `id="tests-N"` after a `.filters` block with `data-suite="N"` is
/// filtered by its rows' `data-status` and `data-name`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}<script>{SCRIPT}</script>\n</body></html>\n",
        esc(title)
    )
}

/// The filter controls over table `tests-N`: a name field and a box per status.
pub fn filters(n: usize, statuses: &[&str]) -> String {
    format!(
        "<div class=\"filters\" data-suite=\"{n}\"><input type=\"search\" placeholder=\"filter by name\" aria-label=\"filter by name\">{}</div>",
        statuses
            .iter()
            .map(|s| format!("<label><input type=\"checkbox\" value=\"{s}\" checked>{s}</label>"))
            .collect::<String>()
    )
}

fn passed(r: &SuiteReport) -> bool {
    super::json::suite_status(r) == super::json::RunStatus::Passed
}

fn header(p: &mut String, reports: &[SuiteReport], verdict: &str) {
    let count = |e: Ending| super::result::count_ending(reports, e);
    let class = verdict.to_ascii_lowercase();
    let _ = write!(
        p,
        "<header><h1 id=\"verdict\" class=\"{class}\">{verdict}</h1><p>{} suite(s): {} passed, {} failed, {} skipped, {} flaky, {} warned</p>",
        reports.len(),
        count(Ending::Passed),
        count(Ending::Failed),
        count(Ending::Skipped),
        count(Ending::Flaky),
        count(Ending::Warned),
    );
    for r in reports
        .iter()
        .filter(|r| r.infra_error.is_some() || r.interrupted)
    {
        let why = r
            .infra_error
            .clone()
            .unwrap_or_else(|| "interrupted".into());
        let _ = write!(p, "<p class=\"infra\">{}: {}</p>", esc(&r.suite), esc(&why));
    }
    p.push_str("</header>\n");
}

/// Every failure, then every skip with its cause, before anything else.
fn failures(p: &mut String, reports: &[SuiteReport]) {
    let bad: Vec<&Outcome> = reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter(|o| matches!(o.ending(), Ending::Failed | Ending::Skipped))
        .collect();
    if bad.is_empty() {
        return;
    }
    p.push_str("<section id=\"failures\"><h2>Failures</h2>\n");
    let mut shown = 0;
    for o in bad.iter().filter(|o| o.ending() == Ending::Failed) {
        let _ = write!(
            p,
            "<details open class=\"failure\" data-name=\"{n}\"><summary><b>{n}</b> — {m}</summary>",
            n = esc(&o.name),
            m = esc(&message(o))
        );
        for (what, text) in [("diagnostics", &o.detail), ("log tail", &o.logs)] {
            if text.trim().is_empty() {
                continue;
            }
            if shown > ALL_FAILURE_TEXT {
                let _ = write!(p, "<p>{what}: in the JSON report (this page is full)</p>");
                continue;
            }
            let text = tail(text);
            shown += text.len();
            let _ = write!(p, "<h4>{what}</h4><pre>{}</pre>", esc(&text));
        }
        p.push_str("</details>\n");
    }
    let skipped: Vec<&&Outcome> = bad
        .iter()
        .filter(|o| o.ending() == Ending::Skipped)
        .collect();
    if !skipped.is_empty() {
        p.push_str("<h3>Not run, and why</h3><ul class=\"skipped\">");
        for o in skipped {
            let _ = write!(p, "<li><b>{}</b> — {}</li>", esc(&o.name), esc(&message(o)));
        }
        p.push_str("</ul>");
    }
    p.push_str("</section>\n");
}

fn suite(p: &mut String, r: &SuiteReport, n: usize) {
    let status = if passed(r) { "passed" } else { "failed" };
    let _ = write!(
        p,
        "<section class=\"suite\" id=\"suite-{n}\"><h2>{} <span class=\"{status}\">{status}</span></h2>\
         <p class=\"meta\">{:.1} s · project {} · engine {} · {}</p>",
        esc(&r.suite),
        r.duration_ms as f64 / 1000.0,
        esc(&r.project),
        esc(&r.engine),
        esc(&r.compose),
    );
    if let Some(about) = &r.about {
        let _ = write!(p, "<p>{}</p>", esc(about));
    }
    p.push_str(&super::svg::timeline(r));
    images(p, r);
    tests(p, r, n);
    p.push_str("</section>\n");
}

fn images(p: &mut String, r: &SuiteReport) {
    if r.images.is_empty() {
        return;
    }
    p.push_str("<h3>Images</h3><table class=\"images\"><tr><th>service</th><th>image</th><th>source</th><th>id / digests</th></tr>");
    for i in &r.images {
        let digests = match i.digests.is_empty() {
            true => i.id.clone(),
            false => i.digests.join(" "),
        };
        let _ = write!(
            p,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&i.service),
            esc(&i.image),
            i.source(),
            esc(&digests)
        );
    }
    p.push_str("</table>\n");
}

/// Every test, failures first, each row carrying its status and name for the filter.
fn tests(p: &mut String, r: &SuiteReport, n: usize) {
    let mut rows: Vec<&Outcome> = r.outcomes.iter().collect();
    rows.sort_by_key(|o| match o.ending() {
        Ending::Failed => 0,
        Ending::Skipped => 1,
        Ending::Flaky | Ending::Quarantined | Ending::Warned => 2,
        Ending::Passed => 3,
    });
    let _ = write!(
        p,
        "<h3>Tests</h3>{}<table class=\"tests\" id=\"tests-{n}\"><tr><th>status</th><th>test</th><th>s</th><th>message</th></tr>",
        filters(
            n,
            &["failed", "skipped", "flaky", "warned", "quarantined", "passed"]
        )
    );
    for o in rows {
        let e = o.ending().as_str();
        let _ = write!(
            p,
            "<tr class=\"test {e}\" data-status=\"{e}\" data-name=\"{name}\"><td>{}</td><td>{name}</td><td>{:.1}</td><td>{}</td></tr>",
            o.ending().mark(),
            o.duration_ms as f64 / 1000.0,
            esc(&message(o)),
            name = esc(&o.name),
        );
    }
    p.push_str("</table>\n");
}

fn message(o: &Outcome) -> String {
    crate::text::snippet(&o.message, MESSAGE)
}

/// The end of a long text (where a log says what went wrong), saying what was left out.
fn tail(text: &str) -> String {
    let n = text.chars().count();
    if n <= FAILURE_TEXT {
        return text.to_string();
    }
    let kept: String = text.chars().skip(n - FAILURE_TEXT).collect();
    format!(
        "… ({} characters before this are in the JSON report)\n{kept}",
        n - FAILURE_TEXT
    )
}

/// Text as HTML (element content and attribute values).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1.passed{color:#17803d}h1.failed{color:#b42318}span.passed{color:#17803d}span.failed{color:#b42318}\
details.failure{border-left:4px solid #b42318;padding:.3em .8em;margin:.5em 0;background:#fff5f5}\
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;max-height:30em;overflow:auto}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}\
tr.failed td:first-child{color:#b42318;font-weight:bold}tr.skipped td:first-child{color:#888}\
svg text{font-size:11px}rect.build{fill:#8e7cc3}rect.bring-up{fill:#f1c232}rect.checks{fill:#6fa8dc}rect.teardown{fill:#999}\
rect.starting{fill:#f6d98a}rect.up{fill:#93c47d}rect.passed{fill:#6aa84f}rect.failed{fill:#cc0000}rect.skipped{fill:#bbb}\
rect.flaky,rect.warned,rect.quarantined{fill:#e69138}rect.build-step{fill:#b4a7d6;stroke:#fff}.infra{color:#b42318}.meta{color:#555}";

/// The filter: a row shows when its status is ticked and its name holds the typed text.
const SCRIPT: &str = "document.querySelectorAll('.filters').forEach(function(f){\
var t=document.getElementById('tests-'+f.dataset.suite);\
function apply(){var q=f.querySelector('input[type=search]').value.toLowerCase();\
var on=[].slice.call(f.querySelectorAll('input[type=checkbox]:checked')).map(function(c){return c.value});\
t.querySelectorAll('tr.test').forEach(function(r){r.style.display=(on.indexOf(r.dataset.status)>=0&&r.dataset.name.toLowerCase().indexOf(q)>=0)?'':'none'})}\
f.addEventListener('input',apply)});";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn outcome(name: &str, status: Status, detail: usize) -> Outcome {
        let mut o = Outcome::not_run(name, "x");
        o.status = status;
        o.message = "expected <a> & \"b\"".into();
        o.detail = "d".repeat(detail);
        o.logs = "l".repeat(detail);
        o
    }

    fn report(n: usize, detail: usize) -> SuiteReport {
        SuiteReport {
            suite: format!("s{n}"),
            about: None,
            project: "p".into(),
            run_id: "r".into(),
            engine: "e".into(),
            outcomes: (0..150)
                .map(|i| outcome(&format!("s{n}::checks::t{i}"), Status::Failed, detail))
                .collect(),
            infra_error: None,
            interrupted: false,
            duration_ms: 1000,
            probes: Vec::new(),
            compose: String::new(),
            images: Vec::new(),
            built: Vec::new(),
            fast_health: false,
            kept: None,
            logs: Vec::new(),
            timeline: crate::report::Timeline::default(),
        }
    }

    #[test]
    fn six_suites_that_printed_a_lot_stay_under_two_megabytes_and_text_is_escaped() {
        let six: Vec<SuiteReport> = (0..6).map(|n| report(n, 100_000)).collect();
        let page = html(&six);
        assert!(page.len() < 2 * 1024 * 1024, "{} bytes", page.len());
        assert!(page.contains("expected &lt;a&gt; &amp; &quot;b&quot;"));
        assert!(!page.contains("expected <a>"));
    }
}
