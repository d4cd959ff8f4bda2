//! The verdicts of `stackcheck mutate`: one per mutant, the score, and the console table, JSON
//! (`docs/mutate.schema.json`) and Markdown summary that say them.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Mutant, MutantKind};
use crate::report::{Status, SuiteReport};
use crate::suite::{HealthMode, LoadedSuite};

/// The schema id of `mutate --json`.
pub const MUTATE_SCHEMA: &str = "stackcheck-mutate/1";

/// What became of one mutant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MutantVerdict {
    /// At least one test failed.
    Killed,
    /// Every test passed: the suite does not notice this breakage.
    Survived,
    /// The mutant could not be started for a reason no promise is about (its compose file was
    /// refused, an image did not build, the engine failed): reported, not counted.
    Invalid,
    /// Not run: the budget was spent, or the command was interrupted.
    NotRun,
}

/// One mutant and its verdict.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct MutantResult {
    /// `<kind>:<target>[:<part>]`.
    pub id: String,
    /// The kind of breakage.
    pub kind: MutantKind,
    /// The service (or `network <key>`) changed.
    pub target: String,
    /// Which part of it (port mapping, variable, volume, path, dependency), if one.
    pub part: String,
    /// The change, in words.
    pub change: String,
    /// Killed, survived, invalid or not run.
    pub verdict: MutantVerdict,
    /// The tests that failed on it (killed).
    pub killed_by: Vec<String>,
    /// What the first killing test said, or why the mutant is invalid or was not run.
    pub detail: String,
    /// For a survivor: a promise or check that would kill it.
    pub suggestion: Option<String>,
    /// How long its run took.
    pub duration_ms: u64,
}

impl MutantResult {
    fn base(m: &Mutant, verdict: MutantVerdict, detail: String, t0: Option<Instant>) -> Self {
        MutantResult {
            id: m.id(),
            kind: m.kind,
            target: m.target.clone(),
            part: m.part.clone(),
            change: m.change.clone(),
            verdict,
            killed_by: Vec::new(),
            detail,
            suggestion: None,
            duration_ms: t0.map(|t| t.elapsed().as_millis() as u64).unwrap_or(0),
        }
    }

    /// A mutant that did not run, and why.
    pub fn not_run(m: &Mutant, why: &str) -> Self {
        Self::base(m, MutantVerdict::NotRun, why.to_string(), None)
    }

    /// A mutant that could not be judged, and why.
    pub fn invalid(m: &Mutant, why: String, t0: Instant) -> Self {
        Self::base(m, MutantVerdict::Invalid, why, Some(t0))
    }

    /// The verdict of a mutant's run. A failure of the compose model or of a build means the
    /// mutant never became a stack: invalid, not killed. Nor does a teardown that left something
    /// (the harness's failure, not the suite's) kill it.
    pub fn judged(m: &Mutant, report: &SuiteReport, t0: Instant) -> Self {
        if report.interrupted {
            return Self::base(
                m,
                MutantVerdict::NotRun,
                super::INTERRUPTED.into(),
                Some(t0),
            );
        }
        let failed: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .collect();
        let not_a_stack =
            |name: &str| name.ends_with("::stack::config") || name.contains("::build::");
        let killers: Vec<_> = failed
            .iter()
            .filter(|o| !not_a_stack(&o.name) && !o.name.ends_with("::teardown::no-leaks"))
            .collect();
        if let Some(first) = killers.first() {
            let mut r = Self::base(m, MutantVerdict::Killed, first.message.clone(), Some(t0));
            r.killed_by = killers.iter().map(|o| o.name.clone()).collect();
            return r;
        }
        if let Some(o) = failed.first() {
            let why = format!("{}: {}", o.name, o.message);
            return Self::base(m, MutantVerdict::Invalid, why, Some(t0));
        }
        if let Some(e) = &report.infra_error {
            return Self::base(m, MutantVerdict::Invalid, e.clone(), Some(t0));
        }
        let mut r = Self::base(m, MutantVerdict::Survived, String::new(), Some(t0));
        r.suggestion = Some(m.suggestion.clone());
        r
    }
}

/// Everything `mutate` found about one suite.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct MutationReport {
    /// `stackcheck-mutate/1`.
    pub schema: String,
    /// The suite id.
    pub suite: String,
    /// The suite file.
    pub path: String,
    /// `fast` or `documented`: how healthchecks polled in the baseline and every mutant run.
    pub health: String,
    /// killed / (killed + survived); none when nothing was judged.
    pub score: Option<f64>,
    /// Mutants judged: killed + survived. The score speaks for these only.
    pub judged: usize,
    /// judged / every mutant: how much of the stack the score measured; none without mutants.
    pub coverage: Option<f64>,
    /// Mutants some test noticed.
    pub killed: usize,
    /// Mutants no test noticed.
    pub survived: usize,
    /// Mutants that could not be judged (not counted in the score).
    pub invalid: usize,
    /// Mutants not run (budget, interruption).
    pub not_run: usize,
    /// Stopped by Ctrl-C or SIGTERM (every started run was torn down).
    pub interrupted: bool,
    /// The whole command, baseline included.
    pub duration_ms: u64,
    /// Every mutant, in a stable order.
    pub mutants: Vec<MutantResult>,
}

impl MutationReport {
    /// The report of these verdicts.
    pub fn new(
        loaded: &LoadedSuite,
        health: HealthMode,
        took: Duration,
        interrupted: bool,
        mutants: Vec<MutantResult>,
    ) -> Self {
        let count = |v| mutants.iter().filter(|m| m.verdict == v).count();
        let (killed, survived) = (count(MutantVerdict::Killed), count(MutantVerdict::Survived));
        MutationReport {
            schema: MUTATE_SCHEMA.into(),
            suite: loaded.suite.id.clone(),
            path: loaded.path.display().to_string(),
            health: match health {
                HealthMode::Fast => "fast",
                HealthMode::Documented => "documented",
            }
            .into(),
            score: (killed + survived > 0).then(|| killed as f64 / (killed + survived) as f64),
            judged: killed + survived,
            coverage: (!mutants.is_empty())
                .then(|| (killed + survived) as f64 / mutants.len() as f64),
            killed,
            survived,
            invalid: count(MutantVerdict::Invalid),
            not_run: count(MutantVerdict::NotRun),
            interrupted,
            duration_ms: took.as_millis() as u64,
            mutants,
        }
    }

    /// The score as a percentage, or `n/a`.
    pub fn score_text(&self) -> String {
        match self.score {
            Some(s) => format!("{:.0}%", s * 100.0),
            None => "n/a".into(),
        }
    }

    /// The score with how much it measured: `89%, 19 of 19 judged`. A score over a few judged
    /// mutants must never read as a strong suite.
    pub fn score_with_coverage(&self) -> String {
        format!(
            "{}, {} of {} judged",
            self.score_text(),
            self.judged,
            self.mutants.len()
        )
    }

    /// The `--min-score` gate: the score at least `min_score`, over at least `min_judged` of the
    /// mutants. Err says which of the two failed, in words.
    pub fn gate(&self, min_score: f64, min_judged: f64) -> Result<(), String> {
        let coverage = self.coverage.unwrap_or(0.0);
        if coverage < min_judged {
            return Err(format!(
                "only {} of {} mutants were judged ({:.0}%), under --min-judged {min_judged}: \
                 the score {} measures too little of the stack",
                self.judged,
                self.mutants.len(),
                coverage * 100.0,
                self.score_text()
            ));
        }
        match self.score {
            Some(score) if score >= min_score => Ok(()),
            _ => Err(format!(
                "score {} is under --min-score {min_score}",
                self.score_text()
            )),
        }
    }

    /// The console table: one row per mutant, then the score and every survivor in words.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self.mutants.iter().map(|m| m.id.len()).max().unwrap_or(0);
        for m in &self.mutants {
            let _ = writeln!(
                out,
                "{:<9} {:<width$}  {}",
                verdict_word(m.verdict),
                m.id,
                row_note(m)
            );
        }
        let _ = writeln!(
            out,
            "\n{}: score {} ({} killed, {} survived, {} invalid, {} not run) in {:.1}s",
            self.suite,
            self.score_with_coverage(),
            self.killed,
            self.survived,
            self.invalid,
            self.not_run,
            self.duration_ms as f64 / 1000.0
        );
        for m in self.survivors() {
            let _ = writeln!(out, "  no test notices when {}", m.change);
            if let Some(s) = &m.suggestion {
                let _ = writeln!(out, "    would be killed by: {s}");
            }
        }
        out
    }

    /// `N of M judged: K killed, S survived, I invalid, R not run (H health, T s)`.
    fn counts(&self) -> String {
        format!(
            "{} of {} judged: {} killed, {} survived, {} invalid, {} not run ({} health, {:.1} s)",
            self.judged,
            self.mutants.len(),
            self.killed,
            self.survived,
            self.invalid,
            self.not_run,
            self.health,
            self.duration_ms as f64 / 1000.0
        )
    }

    /// The mutant table as one self-contained page (`mutate --html`): the score, the survivors
    /// with what would kill each, then every mutant, filterable by verdict and id.
    pub fn html(&self) -> String {
        use crate::report::html_escape as esc;
        let mut b = format!(
            "<header><h1 id=\"verdict\">mutate <code>{}</code>: score {}</h1><p>{}</p></header>",
            esc(&self.suite),
            esc(&self.score_text()),
            esc(&self.counts())
        );
        if self.survived > 0 {
            b.push_str("<section id=\"failures\"><h2>Survivors</h2><ul>");
            for m in self.survivors() {
                let _ = write!(
                    b,
                    "<li class=\"survivor\">No test notices when {}.",
                    esc(&m.change)
                );
                if let Some(s) = &m.suggestion {
                    let _ = write!(b, " Would be killed by: {}.", esc(s));
                }
                b.push_str("</li>");
            }
            b.push_str("</ul></section>");
        }
        let verdicts = ["survived", "killed", "invalid", "not-run"];
        let _ = write!(
            b,
            "<h2>Mutants</h2>{}<table class=\"tests\" id=\"tests-0\"><tr><th>mutant</th><th>verdict</th><th>by / why</th><th>s</th></tr>",
            crate::report::html_filters(0, &verdicts)
        );
        let mut rows: Vec<&MutantResult> = self.mutants.iter().collect();
        rows.sort_by_key(|m| m.verdict != MutantVerdict::Survived);
        for m in rows {
            let v = match m.verdict {
                MutantVerdict::Killed => "killed",
                MutantVerdict::Survived => "survived",
                MutantVerdict::Invalid => "invalid",
                MutantVerdict::NotRun => "not-run",
            };
            let _ = write!(
                b,
                "<tr class=\"test {v}\" data-status=\"{v}\" data-name=\"{id}\"><td><code>{id}</code></td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
                verdict_word(m.verdict),
                esc(&row_note(m)),
                m.duration_ms as f64 / 1000.0,
                id = esc(&m.id),
            );
        }
        b.push_str("</table>");
        crate::report::html_page(&format!("stackcheck mutate: {}", self.suite), &b)
    }

    /// A Markdown summary (e.g. for `$GITHUB_STEP_SUMMARY`).
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "## stackcheck mutate: `{}`\n\nScore **{}**, {}.\n\n",
            self.suite,
            self.score_text(),
            self.counts()
        );
        if self.survived > 0 {
            out.push_str("### Survivors\n\n");
            for m in self.survivors() {
                let _ = writeln!(out, "- No test notices when {}.", m.change);
                if let Some(s) = &m.suggestion {
                    let _ = writeln!(out, "  Would be killed by: {s}.");
                }
            }
            out.push('\n');
        }
        out.push_str("| Mutant | Verdict | By / why |\n|---|---|---|\n");
        for m in &self.mutants {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                m.id,
                verdict_word(m.verdict),
                row_note(m).replace('|', "\\|")
            );
        }
        out
    }

    fn survivors(&self) -> impl Iterator<Item = &MutantResult> {
        self.mutants
            .iter()
            .filter(|m| m.verdict == MutantVerdict::Survived)
    }
}

fn verdict_word(v: MutantVerdict) -> &'static str {
    match v {
        MutantVerdict::Killed => "killed",
        MutantVerdict::Survived => "SURVIVED",
        MutantVerdict::Invalid => "invalid",
        MutantVerdict::NotRun => "not run",
    }
}

/// Who killed it, or why it is what it is.
fn row_note(m: &MutantResult) -> String {
    match m.verdict {
        MutantVerdict::Killed => format!(
            "by {}",
            m.killed_by.first().map(String::as_str).unwrap_or("?")
        ),
        MutantVerdict::Survived => m.change.clone(),
        MutantVerdict::Invalid | MutantVerdict::NotRun => m.detail.clone(),
    }
}

/// The line printed as each mutant's verdict comes in.
pub fn progress_line(n: usize, total: usize, m: &MutantResult) -> String {
    format!(
        "[{n:>w$}/{total}] {:<9} {}  {} ({:.1}s)",
        verdict_word(m.verdict),
        m.id,
        row_note(m),
        m.duration_ms as f64 / 1000.0,
        w = total.to_string().len()
    )
}

/// The JSON Schema of [`MutationReport`] (what `docs/mutate.schema.json` holds).
pub fn mutation_schema_json() -> String {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(MutationReport)).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "title".into(),
            format!("stackcheck mutate report ({MUTATE_SCHEMA})").into(),
        );
    }
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    fn mutant() -> Mutant {
        Mutant {
            kind: MutantKind::EnvRemoved,
            target: "api".into(),
            part: "GREETING".into(),
            change: "`api` starts without `GREETING`".into(),
            suggestion: "`services.api.env: { GREETING: … }`".into(),
            file: String::new(),
        }
    }

    fn report(failed: &[&str], infra: Option<&str>) -> SuiteReport {
        let names = [
            "s::stack::config",
            "s::build::api:1",
            "s::service::api::env",
            "s::teardown::no-leaks",
        ];
        let outcomes = names
            .iter()
            .map(|n| Outcome {
                name: n.to_string(),
                status: if failed.contains(n) {
                    Status::Failed
                } else {
                    Status::Passed
                },
                warning: false,
                message: format!("{n} said so"),
                detail: String::new(),
                duration_ms: 1,
                started_ms: 0,
                flaky: Vec::new(),
                quarantined: false,
                logs: String::new(),
                steps: Vec::new(),
            })
            .collect();
        SuiteReport {
            suite: "s".into(),
            about: None,
            project: "p".into(),
            run_id: "r".into(),
            engine: String::new(),
            outcomes,
            infra_error: infra.map(str::to_string),
            interrupted: false,
            duration_ms: 1,
            probes: Vec::new(),
            compose: String::new(),
            images: Vec::new(),
            built: Vec::new(),
            fast_health: true,
            kept: None,
            logs: Vec::new(),
            timeline: Default::default(),
        }
    }

    #[test]
    fn a_failing_promise_kills_and_a_stack_that_never_was_is_invalid() {
        let judge = |failed: &[&str], infra| {
            MutantResult::judged(&mutant(), &report(failed, infra), Instant::now())
        };
        let killed = judge(&["s::service::api::env", "s::teardown::no-leaks"], None);
        assert_eq!(killed.verdict, MutantVerdict::Killed);
        assert_eq!(killed.killed_by, ["s::service::api::env"]);
        assert_eq!(killed.detail, "s::service::api::env said so");
        for failed in [
            &["s::stack::config"][..],
            &["s::build::api:1"],
            &["s::teardown::no-leaks"],
        ] {
            let r = judge(failed, None);
            assert_eq!(r.verdict, MutantVerdict::Invalid, "{failed:?}");
            assert!(r.detail.starts_with(failed[0]), "{}", r.detail);
        }
        assert_eq!(
            judge(&[], Some("engine gone")).verdict,
            MutantVerdict::Invalid
        );
        let survived = judge(&[], None);
        assert_eq!(survived.verdict, MutantVerdict::Survived);
        assert_eq!(
            survived.suggestion.as_deref(),
            Some("`services.api.env: { GREETING: … }`")
        );
    }

    #[test]
    fn the_score_counts_killed_and_survived_only() {
        let m = mutant();
        let loaded = crate::suite::load_str(
            std::path::Path::new("s.yaml"),
            "suite: s\nstack: { compose: [c.yml] }\n",
        )
        .unwrap();
        let results = vec![
            MutantResult::judged(&m, &report(&["s::service::api::env"], None), Instant::now()),
            MutantResult::judged(&m, &report(&[], None), Instant::now()),
            MutantResult::judged(&m, &report(&["s::stack::config"], None), Instant::now()),
            MutantResult::not_run(&m, "budget"),
        ];
        let r = MutationReport::new(
            &loaded,
            HealthMode::Fast,
            Duration::from_secs(1),
            false,
            results,
        );
        assert_eq!((r.killed, r.survived, r.invalid, r.not_run), (1, 1, 1, 1));
        assert_eq!(r.score, Some(0.5));
        assert_eq!((r.judged, r.coverage), (2, Some(0.5)));
        assert!(r
            .table()
            .contains("no test notices when `api` starts without `GREETING`"));
        assert!(r.table().contains("score 50%, 2 of 4 judged (1 killed"));
        assert!(r.markdown().contains("Score **50%**, 2 of 4 judged"));
        // The page: the survivor first, every mutant a filterable row, nothing fetched.
        let page = r.html();
        let survivor = page.find("class=\"survivor\"").unwrap();
        assert!(survivor < page.find("id=\"tests-0\"").unwrap());
        assert_eq!(page.matches("<tr class=\"test ").count(), 4);
        assert!(
            page.find("data-status=\"survived\"").unwrap()
                < page.find("data-status=\"killed\"").unwrap()
        );
        assert!(!page.contains("src=") && !page.contains("href="));
        // The gate wants both: the score, and enough of the stack judged for it to mean anything.
        assert_eq!(r.gate(0.5, 0.5), Ok(()));
        let thin = r.gate(0.5, 0.8).unwrap_err();
        assert!(
            thin.contains("only 2 of 4 mutants were judged (50%), under --min-judged 0.8"),
            "{thin}"
        );
        assert_eq!(
            r.gate(0.6, 0.5).unwrap_err(),
            "score 50% is under --min-score 0.6"
        );
    }
}
