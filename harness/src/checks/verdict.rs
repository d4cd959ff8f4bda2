//! What a check concludes ([`Verdict`]), how it becomes a named, timed [`Outcome`], and how a
//! check polls until a condition holds.

use std::time::{Duration, Instant};

use crate::report::{Outcome, Status, StepSpan};

/// What a single check concluded, before it is named and timed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub warning: bool,
    pub message: String,
    pub detail: String,
    /// Messages of failed attempts before this (passing) one.
    pub flaky: Vec<String>,
    /// A scenario's steps, each timed within the check.
    pub steps: Vec<StepSpan>,
}

impl Verdict {
    /// Names and times the verdict: the outcome of the test `name` started at `started`.
    pub fn into_outcome(self, name: &str, started: Instant) -> Outcome {
        Outcome {
            name: name.to_string(),
            status: if self.passed {
                Status::Passed
            } else {
                Status::Failed
            },
            warning: self.warning,
            message: self.message,
            detail: self.detail,
            duration_ms: started.elapsed().as_millis() as u64,
            started_ms: 0,
            flaky: self.flaky,
            quarantined: false,
            logs: String::new(),
            steps: self.steps,
        }
    }

    pub fn pass(message: impl Into<String>) -> Verdict {
        Verdict {
            passed: true,
            warning: false,
            message: message.into(),
            detail: String::new(),
            flaky: Vec::new(),
            steps: Vec::new(),
        }
    }
    /// Failed; `message` says what was expected and what was seen (any error reads as one).
    pub fn fail(message: impl std::fmt::Display) -> Verdict {
        Verdict {
            passed: false,
            warning: false,
            message: message.to_string(),
            detail: String::new(),
            flaky: Vec::new(),
            steps: Vec::new(),
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
            steps: Vec::new(),
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Verdict {
        self.detail = detail.into();
        self
    }
}

/// Polls `attempt` until it passes or the retry budget ends; without a budget, tries once.
pub async fn with_retry<F, Fut, E, EFut>(
    budget: Option<(Duration, Duration)>,
    mut attempt: F,
    mut ended: E,
) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Verdict>,
    E: FnMut() -> EFut,
    EFut: std::future::Future<Output = Option<String>>,
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
        // What the check waits on has ended for good: another try cannot see anything else.
        if let Some(why) = ended().await {
            let message = format!("{} (stopped waiting: {why})", v.message);
            return Verdict { message, ..v };
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
            || async { None },
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
            || async { None },
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
