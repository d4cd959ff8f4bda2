//! When things happened in a suite's run, in milliseconds from its start: the run's phases
//! (build, bring-up, checks, teardown) and each service's life as the engine recorded it
//! (created, started, its promised state reached, exited, restarts). The HTML report draws it;
//! the JSON report carries it.

use serde::{Deserialize, Serialize};

/// A stage of a run.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `docker compose build` and image pulls.
    Build,
    /// `up` until every promised state was judged.
    BringUp,
    /// The checks against the live stack (scenarios included).
    Checks,
    /// `down` and the sweep of what carries the run's label.
    Teardown,
}

impl Phase {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::BringUp => "bring-up",
            Phase::Checks => "checks",
            Phase::Teardown => "teardown",
        }
    }
}

/// One phase, from its start to its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpan {
    /// Which phase.
    pub phase: Phase,
    /// When it started (ms from the suite's start).
    pub start_ms: u64,
    /// When it ended.
    pub end_ms: u64,
}

/// One service's container, as the engine recorded its life (ms from the suite's start).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceLife {
    /// The service (`name#2` for a second replica).
    pub service: String,
    /// When its container was created.
    pub created_ms: Option<u64>,
    /// When its container (last) started.
    pub started_ms: Option<u64>,
    /// When the run saw it reach its promised state (its state test passed).
    pub ready_ms: Option<u64>,
    /// What that state was (`healthy`, `running`, `exited:0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When it exited, if it was not running when the checks ended.
    pub exited_ms: Option<u64>,
    /// Its exit code then.
    pub exit_code: Option<i64>,
    /// How often the engine restarted it.
    pub restarts: u32,
    /// What compose waited for before starting it (`db: service_healthy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Its healthcheck's pace (`every 10s, start period 30s`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<String>,
}

/// What happened when in one suite's run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    /// The run's phases, in order.
    pub phases: Vec<PhaseSpan>,
    /// Each service's container.
    pub services: Vec<ServiceLife>,
}

impl Timeline {
    /// Where the time went: the three longest waits of at least a second, each saying what it
    /// was: a service waiting to be started (on what it depends on), a service from its start to
    /// its promised state (its own start, its healthcheck), a test (its requests, its retries).
    pub fn longest_waits(&self, suite: &str, outcomes: &[super::Outcome]) -> Vec<String> {
        let secs = |ms: u64| ms as f64 / 1000.0;
        let mut waits: Vec<(u64, String)> = Vec::new();
        for s in &self.services {
            if let (Some(c), Some(st)) = (s.created_ms, s.started_ms) {
                let w = st.saturating_sub(c);
                let on = match s.depends_on.is_empty() {
                    true => "compose's own start order".to_string(),
                    false => format!("depends on {}", s.depends_on.join(", ")),
                };
                let said = format!(
                    "`{}` waited {:.1} s to be started ({on})",
                    s.service,
                    secs(w)
                );
                waits.push((w, said));
            }
            if let (Some(st), Some(r)) = (s.started_ms, s.ready_ms) {
                let w = r.saturating_sub(st);
                let state = s.state.as_deref().unwrap_or("ready");
                let why = match &s.healthcheck {
                    Some(h) => format!("healthcheck {h}"),
                    None => "its own start".into(),
                };
                let said = format!(
                    "`{}` was {state} {:.1} s after its start ({why})",
                    s.service,
                    secs(w)
                );
                waits.push((w, said));
            }
        }
        for o in outcomes {
            let check = o
                .name
                .strip_prefix(&format!("{suite}::"))
                .unwrap_or(&o.name);
            // A state test's time is its service's wait, said above with its cause.
            if check.starts_with("service::") && check.ends_with("::state") {
                continue;
            }
            waits.push((
                o.duration_ms,
                format!("`{check}` took {:.1} s", secs(o.duration_ms)),
            ));
        }
        waits.retain(|(w, _)| *w >= 1000);
        waits.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
        waits.into_iter().take(3).map(|(_, said)| said).collect()
    }

    /// The bring-up as a Mermaid `gantt` (rendered by CI job pages): the phases, then each
    /// service from its start to its promised state and on to its exit or the end.
    pub fn mermaid(&self, suite: &str) -> Option<String> {
        use std::fmt::Write;
        if self.phases.is_empty() && self.services.is_empty() {
            return None;
        }
        // Mermaid reads `:` and `#` as syntax.
        let name = |s: &str| s.replace([':', '#', ';'], " ");
        let mut m = format!(
            "```mermaid\ngantt\n  title {}\n  dateFormat x\n  axisFormat %M:%S\n  section phases\n",
            name(suite)
        );
        for p in &self.phases {
            let _ = writeln!(
                m,
                "  {} : {}, {}",
                p.phase.as_str(),
                p.start_ms,
                p.end_ms.max(p.start_ms + 1)
            );
        }
        m.push_str("  section services\n");
        let end = self.phases.iter().map(|p| p.end_ms).max().unwrap_or(0);
        for s in &self.services {
            let Some(start) = s.started_ms.or(s.created_ms) else {
                continue;
            };
            let ready = s.ready_ms.unwrap_or(start);
            if ready > start {
                let _ = writeln!(m, "  {} starting : {start}, {ready}", name(&s.service));
            }
            let stop = s.exited_ms.unwrap_or(end).max(ready + 1);
            let what = match s.exit_code {
                Some(code) => format!("exited {code}"),
                None => s.state.clone().unwrap_or_else(|| "up".into()),
            };
            let _ = writeln!(
                m,
                "  {} {} : {ready}, {stop}",
                name(&s.service),
                name(&what)
            );
        }
        m.push_str("```\n");
        Some(m)
    }
}

/// Milliseconds from `t0` (a wall-clock instant as the engine writes it, RFC 3339) to `at`; None
/// for an unset engine time (`0001-01-01T00:00:00Z`) or one before `t0`.
pub fn ms_since(t0: std::time::SystemTime, at: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    let at: std::time::SystemTime = at.with_timezone(&chrono::Utc).into();
    at.duration_since(t0).ok().map(|d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn engine_times_are_read_relative_to_the_start() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_796_654_000);
        let at = chrono::DateTime::from_timestamp(1_796_654_002, 500_000_000).unwrap();
        let text = at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        assert_eq!(ms_since(t0, &text), Some(2500));
        assert_eq!(ms_since(t0, "0001-01-01T00:00:00Z"), None);
        assert_eq!(ms_since(t0, "not a time"), None);
    }
}
