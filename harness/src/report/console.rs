//! Console output: a spinner with the current phase and work line, one line per finished test,
//! and a summary. Without a terminal, phases are printed as plain lines instead.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;
use super::{snippet, Ending, Outcome, Status, SuiteReport};

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

    /// The closing summary: counts per suite, then every failure with its message.
    pub fn summary(&self, reports: &[SuiteReport]) {
        self.bar.finish_and_clear();
        let total: usize = reports.iter().map(|r| r.outcomes.len()).sum();
        let failed: usize = reports.iter().map(SuiteReport::failed).sum();
        let not_run: usize = reports.iter().map(SuiteReport::skipped).sum();
        let count = |e: Ending| {
            reports
                .iter()
                .flat_map(|r| &r.outcomes)
                .filter(|o| o.ending() == e)
                .count()
        };
        let (warned, flaky, quarantined) = (
            count(Ending::Warned),
            count(Ending::Flaky),
            count(Ending::Quarantined),
        );
        for r in reports {
            if let Some(e) = &r.infra_error {
                err!("error: {}: {e}", r.suite);
            }
            if r.fast_health {
                err!(
                    "{}: health fast: healthchecks polled every 1 s in this run (the written intervals are judged as static promises)",
                    r.suite
                );
            }
            if let Some(k) = &r.kept {
                err!("{}: {k}", r.suite);
            }
            if !r.logs.is_empty() {
                err!(
                    "{}: logs in {}",
                    r.suite,
                    super::summary::logs_named(&r.logs)
                );
            }
            for o in r
                .outcomes
                .iter()
                .filter(|o| o.status == Status::Failed && !o.detail.is_empty())
            {
                err!("\n--- {} ---\n{}", o.name, tail_lines(&o.detail, 15));
            }
        }
        if reports.len() > 1 {
            out!();
            for r in reports {
                out!(
                    "  {:<24} {:>4} passed, {} failed, {} not run in {:.1}s",
                    r.suite,
                    r.outcomes.len() - r.failed() - r.skipped(),
                    r.failed(),
                    r.skipped(),
                    r.duration_ms as f64 / 1000.0
                );
            }
        }
        let secs: f64 = reports.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
        let notes: Vec<String> = [
            (warned, "with warnings"),
            (flaky, "flaky"),
            (quarantined, "quarantined"),
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
        out!(
            "\n{} passed{warned}, {} failed{skipped} ({} suites, {secs:.1}s)",
            total - failed - not_run,
            failed,
            reports.len()
        );
    }
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
        let mark = o.ending().mark();
        let secs = o.duration_ms as f64 / 1000.0;
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
        self.bar.suspend(|| {
            out!(
                "{mark:<5} [{secs:>6.1}s] {}  {message}{}",
                o.name,
                o.flaky_note()
            )
        });
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
