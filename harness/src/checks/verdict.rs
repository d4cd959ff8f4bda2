//! What a check concludes ([`Verdict`]), how it polls until a condition holds, and how captured
//! output is cut down to one line for its message.

use std::time::{Duration, Instant};

/// What a single check concluded, before it is named and timed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub warning: bool,
    pub message: String,
    pub detail: String,
    /// Messages of failed attempts before this (passing) one.
    pub flaky: Vec<String>,
}

impl Verdict {
    pub fn pass(message: impl Into<String>) -> Verdict {
        Verdict {
            passed: true,
            warning: false,
            message: message.into(),
            detail: String::new(),
            flaky: Vec::new(),
        }
    }
    pub fn fail(message: impl Into<String>) -> Verdict {
        Verdict {
            passed: false,
            warning: false,
            message: message.into(),
            detail: String::new(),
            flaky: Vec::new(),
        }
    }
    /// Passed with a note (a `warn`-level rule that found something).
    pub fn warn(message: impl Into<String>) -> Verdict {
        Verdict {
            passed: true,
            warning: true,
            message: message.into(),
            detail: String::new(),
            flaky: Vec::new(),
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Verdict {
        self.detail = detail.into();
        self
    }
}

/// Shortens captured output for one-line messages.
pub fn snippet(text: &str, max: usize) -> String {
    clip(text, max, false)
}

/// The end of `text` on one line: where a failing command says why (the last line of a traceback).
pub fn tail_snippet(text: &str, max: usize) -> String {
    clip(text, max, true)
}

fn clip(text: &str, max: usize, keep_end: bool) -> String {
    let t = text.trim();
    let n = t.chars().count();
    let one_line = |s: &str| s.replace('\n', "\\n");
    if n <= max {
        one_line(t)
    } else if keep_end {
        format!(
            "…{}",
            one_line(&t.chars().skip(n - max).collect::<String>())
        )
    } else {
        format!("{}…", one_line(&t.chars().take(max).collect::<String>()))
    }
}

/// Polls `attempt` until it passes or the retry budget ends; without a budget, tries once.
pub async fn with_retry<F, Fut>(budget: Option<(Duration, Duration)>, mut attempt: F) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Verdict>,
{
    let Some((total, every)) = budget else {
        return attempt().await;
    };
    let deadline = Instant::now() + total;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let v = attempt().await;
        if v.passed || Instant::now() + every > deadline {
            if v.passed {
                return v;
            }
            let waited = format!(
                "{} (still failing after {tries} attempts over {:?})",
                v.message, total
            );
            return Verdict {
                message: waited,
                ..v
            };
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retry_stops_when_it_passes() {
        let mut n = 0;
        let v = with_retry(
            Some((Duration::from_secs(5), Duration::from_millis(1))),
            || {
                n += 1;
                let ok = n >= 3;
                async move {
                    if ok {
                        Verdict::pass("ok")
                    } else {
                        Verdict::fail("no")
                    }
                }
            },
        )
        .await;
        assert!(v.passed);
        assert_eq!(n, 3);
    }

    #[tokio::test]
    async fn retry_reports_the_last_failure() {
        let v = with_retry(
            Some((Duration::from_millis(30), Duration::from_millis(10))),
            || async { Verdict::fail("closed") },
        )
        .await;
        assert!(!v.passed);
        assert!(
            v.message.starts_with("closed (still failing after"),
            "{}",
            v.message
        );
    }
}
