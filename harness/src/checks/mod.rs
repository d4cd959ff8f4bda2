//! The checks stage: proving each promise against the compose model and the live stack.
//!
//! Every check yields an [`Outcome`] with a one-line message (what was expected, what was seen)
//! and, on failure, a detail block (health-check output, log lines) for reports.

mod home;
mod image;
mod net;
pub mod policy;
mod probe;
mod scenario;
mod service;
mod stack;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use bollard::models::ContainerInspectResponse;

use crate::engine::{Compose, ComposeModel, Engine};
use crate::suite::LoadedSuite;

pub use home::{classify, ProbeTarget, RunAddresses};
pub use net::Canary;
pub use scenario::{parse_mount, signal_number, Mount};

pub use image::check_image;
pub use probe::check_smoke;
pub use service::check_service;
pub use stack::{check_network, check_volume};

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
            flaky: self.flaky,
            quarantined: false,
        }
    }
}

/// Everything a check may look at once the stack is up.
pub struct Ctx<'a> {
    pub engine: &'a Engine,
    pub model: &'a ComposeModel,
    pub loaded: &'a LoadedSuite,
    /// The compose project (absent for a stack of `containers`).
    pub compose: Option<&'a Compose>,
    pub run_id: &'a str,
    /// Labels every helper container of this run carries.
    pub labels: &'a BTreeMap<String, String>,
    /// Container id per service (absent: never created); refreshed after `down_up`.
    pub containers: Mutex<BTreeMap<String, String>>,
    /// When the run started: files a check expects must be newer.
    pub started: SystemTime,
    /// The per-run temp dir (`{tmp}`).
    pub tmp: &'a Path,
    pub(crate) canary: tokio::sync::OnceCell<Result<Canary, String>>,
    /// Every address a probe of this run connected to (see `home`).
    pub probed: Mutex<Vec<ProbeTarget>>,
    /// Published ports are free host ports, not the documented ones (`stack.ports: ephemeral`).
    pub ephemeral_ports: bool,
}

impl Ctx<'_> {
    pub fn container(&self, service: &str) -> Result<String, Verdict> {
        if !self.model.services.contains_key(service) {
            return Err(Verdict::fail(format!(
                "service `{service}` is not defined in the stack"
            )));
        }
        let map = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        map.get(service).cloned().ok_or_else(|| {
            Verdict::fail(format!(
                "service `{service}` has no container (it was not started)"
            ))
        })
    }

    /// A service's container id and its inspect; either failure is the check's verdict.
    pub async fn inspect(
        &self,
        service: &str,
    ) -> Result<(String, ContainerInspectResponse), Verdict> {
        let id = self.container(service)?;
        let info = self
            .engine
            .inspect(&id)
            .await
            .map_err(|e| Verdict::fail(e.to_string()))?;
        Ok((id, info))
    }

    /// The container of a service that must be running for a probe to make sense.
    pub async fn running(&self, service: &str) -> Result<String, Verdict> {
        let (id, info) = self.inspect(service).await?;
        let state = info.state.unwrap_or_default();
        if state.running == Some(true) {
            return Ok(id);
        }
        let status = state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
        Err(Verdict::fail(format!(
            "`{service}` is not running (status {status}, exit code {})",
            state.exit_code.unwrap_or(0)
        )))
    }

    /// Health-check output and the last log lines of a service's container, for failure details.
    pub async fn diagnostics(&self, service: &str) -> String {
        let Ok(id) = self.container(service) else {
            return String::new();
        };
        state::diagnostics(self.engine, &id).await
    }

    /// Allows a probe to connect to `target` only if it is home (loopback, a service of this
    /// stack, an address this run created); records it.
    pub async fn home(&self, target: &str) -> Result<(), Verdict> {
        let services = self.model.services.keys().cloned().collect();
        let run = self
            .engine
            .run_addresses(&format!("{}={}", crate::engine::LABEL_RUN, self.run_id))
            .await
            .map_err(|e| Verdict::fail(format!("cannot list this run's addresses: {e}")))?;
        let home = classify(target, &services, &run).map_err(Verdict::fail)?;
        self.probed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ProbeTarget {
                target: target.to_string(),
                home,
            });
        Ok(())
    }

    /// The canaries of this run, started on first use.
    pub async fn canary(&self) -> Result<&Canary, String> {
        let networks: Vec<String> = self
            .model
            .networks
            .keys()
            .map(|n| self.model.network_name(n))
            .collect();
        let c = self
            .canary
            .get_or_init(|| async {
                Canary::start(self.engine, self.run_id, &networks, self.labels).await
            })
            .await;
        c.as_ref().map_err(Clone::clone)
    }

    /// A path of the suite with `{suite_dir}` and `{tmp}` replaced; relative paths are relative to the suite.
    pub fn host_path(&self, p: &str) -> PathBuf {
        let dir = self
            .loaded
            .dir
            .canonicalize()
            .unwrap_or_else(|_| self.loaded.dir.clone());
        let replaced = p
            .replace("{suite_dir}", &dir.to_string_lossy())
            .replace("{tmp}", &self.tmp.to_string_lossy());
        let path = PathBuf::from(replaced);
        if path.is_absolute() {
            path
        } else {
            dir.join(path)
        }
    }
}

/// `/regex/` or a substring.
pub fn text_matches(pattern: &str, text: &str) -> Result<bool, String> {
    if pattern.len() >= 2 && pattern.starts_with('/') && pattern.ends_with('/') {
        let re = regex::RegexBuilder::new(&pattern[1..pattern.len() - 1])
            .multi_line(true)
            .build()
            .map_err(|e| format!("invalid regex {pattern}: {e}"))?;
        Ok(re.is_match(text))
    } else {
        Ok(text.contains(pattern))
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

/// Parses sizes such as `900MiB`, `1GB`, `512k`, in bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_patterns() {
        assert!(text_matches("/^PONG$/", "PONG\n").unwrap());
        assert!(!text_matches("/^PONG$/", "NOPONG").unwrap());
        assert!(text_matches("ok", "status ok").unwrap());
        assert!(text_matches("/(/", "x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("900MiB"), Some(900 * 1024 * 1024));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("12 parsecs"), None);
    }

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
