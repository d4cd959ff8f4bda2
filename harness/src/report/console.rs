//! Console output: a spinner with the current phase and work line, one line per finished test,
//! and a summary. Without a terminal, phases are printed as plain lines instead.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;
use super::{Ending, Outcome, Status, SuiteReport};
use crate::text::snippet;

// A reader that goes away (`stackcheck run … | head -1`, a closed CI log pipe) must not end the
// run before its teardown, as `println!` would by panicking on EPIPE: what it can't write is
// dropped, and the run goes on to tear down and exit with its verdict.
macro_rules! out {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock());
    }};
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

/// Progress and results on the terminal: phases and outcomes as lines, ongoing work on a spinner.
pub struct Console {
    bar: ProgressBar,
    tty: bool,
    verbose: bool,
    /// Why tests were skipped, as already printed.
    skip_reasons: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Console {
    /// With `verbose`, every build and bring-up line is printed instead of shown transiently.
    pub fn new(verbose: bool) -> Console {
        let tty = std::io::stderr().is_terminal();
        let bar = if tty {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {prefix} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Console {
            bar,
            tty,
            verbose,
            skip_reasons: Default::default(),
        }
    }

    /// The closing summary ([`closing`]): notes and failure details on stderr, counts on stdout.
    pub fn summary(&self, reports: &[SuiteReport]) {
        self.bar.finish_and_clear();
        let (notes, counts) = closing(reports);
        if !notes.is_empty() {
            err!("{}", notes.trim_end_matches('\n'));
        }
        out!("{}", counts.trim_end_matches('\n'));
    }
}

/// The closing summary as text: `(notes, counts)`. The notes, for stderr, are each suite's
/// infrastructure error, fast health, kept stack and logs, then every failure's detail; the
/// counts, for stdout, are a line per suite (when there are several) and the totals.
pub fn closing(reports: &[SuiteReport]) -> (String, String) {
    (closing_notes(reports), closing_counts(reports))
}

fn closing_notes(reports: &[SuiteReport]) -> String {
    let mut notes = String::new();
    let mut say = |line: String| {
        notes += &line;
        notes.push('\n');
    };
    for r in reports {
        if let Some(e) = &r.infra_error {
            say(format!("error: {}: {e}", r.suite));
        }
        if r.fast_health {
            say(format!(
                "{}: health fast: healthchecks polled every 1 s in this run (the written intervals are judged as static promises)",
                r.suite
            ));
        }
        if let Some(k) = &r.kept {
            say(format!("{}: {k}", r.suite));
        }
        let waits = r.timeline.longest_waits(&r.suite, &r.outcomes);
        if !waits.is_empty() {
            say(format!(
                "{}: the longest waits: {}",
                r.suite,
                waits.join("; ")
            ));
        }
        if !r.logs.is_empty() {
            say(format!(
                "{}: logs in {}",
                r.suite,
                super::summary::logs_named(&r.logs)
            ));
        }
        for o in r
            .outcomes
            .iter()
            .filter(|o| o.status == Status::Failed && !o.detail.is_empty())
        {
            say(format!(
                "\n--- {} ---\n{}",
                o.name,
                tail_lines(&o.detail, 15)
            ));
        }
    }
    notes
}

fn closing_counts(reports: &[SuiteReport]) -> String {
    let mut counts = String::new();
    if reports.len() > 1 {
        counts.push('\n');
        for r in reports {
            counts += &format!(
                "  {:<24} {:>4} passed, {} failed, {} not run in {:.1}s\n",
                r.suite,
                r.outcomes.len() - r.failed() - r.skipped(),
                r.failed(),
                r.skipped(),
                r.duration_ms as f64 / 1000.0
            );
        }
    }
    let total: usize = reports.iter().map(|r| r.outcomes.len()).sum();
    let failed: usize = reports.iter().map(SuiteReport::failed).sum();
    let not_run: usize = reports.iter().map(SuiteReport::skipped).sum();
    let count = |e: Ending| super::result::count_ending(reports, e);
    let notes: Vec<String> = [
        (count(Ending::Warned), "with warnings"),
        (count(Ending::Flaky), "flaky"),
        (count(Ending::Quarantined), "quarantined"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let warned = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    let skipped = if not_run > 0 {
        format!(", {not_run} not run")
    } else {
        String::new()
    };
    let secs: f64 = reports.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
    counts += &format!(
        "\n{} passed{warned}, {} failed{skipped} ({} suites, {secs:.1}s)\n",
        total - failed - not_run,
        failed,
        reports.len()
    );
    counts
}

/// The line a finished test prints: its mark, duration, name, `message` (the outcome's own, or
/// `(same cause)` for a skip whose cause was already printed) and the flaky note.
pub fn outcome_line(o: &Outcome, message: &str) -> String {
    let mark = o.ending().mark();
    let secs = o.duration_ms as f64 / 1000.0;
    format!(
        "{mark:<5} [{secs:>6.1}s] {}  {message}{}",
        o.name,
        o.flaky_note()
    )
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

impl Progress for Console {
    fn phase(&self, msg: &str) {
        if self.tty {
            self.bar.set_prefix(msg.to_string());
            self.bar.set_message("");
        } else {
            err!("· {msg}");
        }
    }

    fn detail(&self, msg: &str) {
        if self.tty {
            self.bar.set_message(snippet(msg, 120));
        } else if self.verbose {
            err!("  {msg}");
        }
    }

    fn outcome(&self, o: &Outcome) {
        // A root cause is printed once: tests skipped for the same reason only name themselves.
        let message = if o.status == Status::Skipped
            && !self
                .skip_reasons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(o.message.clone())
        {
            "(same cause)"
        } else {
            o.message.as_str()
        };
        self.bar.suspend(|| out!("{}", outcome_line(o, message)));
    }
}

/// Progress for embedding (the conformance target): phases only, on stderr.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, msg: &str) {
        err!("· {msg}");
    }
    fn detail(&self, _: &str) {}
    fn outcome(&self, o: &Outcome) {
        let mark = o.ending().mark().to_ascii_lowercase();
        err!("  {mark} {}  {}", o.name, o.message);
    }
}
