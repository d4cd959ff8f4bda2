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

impl ServiceLife {
    /// When it started on its way to its promised state. The engine keeps only a container's
    /// last start, and a later one (a scenario's `restart`) says nothing of the bring-up: then
    /// there is none to tell.
    pub fn first_start_ms(&self) -> Option<u64> {
        let start = self.started_ms?;
        match self.ready_ms {
            Some(ready) if start > ready => None,
            _ => Some(start),
        }
    }
}

/// One step of a scenario, timed within its test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpan {
    /// What the step did, as the scenario's verdict says it (`down_up`, `restart db`).
    pub step: String,
    /// When it started, in ms from its test's start.
    pub offset_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether it passed (a scenario stops at its first failed step).
    pub passed: bool,
}

/// One step of an image build, as the builder's log timed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildStep {
    /// What was built: compose's service, or the suite's image tag.
    pub image: String,
    /// The Dockerfile instruction (`RUN pip install -r requirements.txt`).
    pub step: String,
    /// When the builder started it, in ms from the suite's start.
    pub start_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
}

/// What happened when in one suite's run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    /// The run's phases, in order.
    pub phases: Vec<PhaseSpan>,
    /// Each image build's steps, in the order the builders started them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<BuildStep>,
    /// Each service's container.
    pub services: Vec<ServiceLife>,
}

impl Timeline {
    /// Where the time went: the three longest waits of at least a second, each saying what it
    /// was: an image's build (its longest step), a service waiting to be started (on what it
    /// depends on), a service from its start to its promised state (its own start, its
    /// healthcheck), a test (its requests, its retries, its steps).
    pub fn longest_waits(&self, suite: &str, outcomes: &[super::Outcome]) -> Vec<String> {
        let mut waits = self.build_waits();
        waits.extend(self.service_waits());
        for o in outcomes {
            let check = o
                .name
                .strip_prefix(&format!("{suite}::"))
                .unwrap_or(&o.name);
            // A state test's time is its service's wait, and a build test's is its build's,
            // each said with its cause.
            let said_above = (check.starts_with("service::") && check.ends_with("::state"))
                || (check.starts_with("build::") && !self.builds.is_empty());
            if said_above {
                continue;
            }
            let longest_step = o.steps.iter().max_by_key(|s| s.duration_ms);
            let why = match longest_step {
                Some(s) if o.steps.len() > 1 => {
                    format!(", most in step `{}` ({:.1} s)", s.step, secs(s.duration_ms))
                }
                _ => String::new(),
            };
            waits.push((
                o.duration_ms,
                format!("`{check}` took {:.1} s{why}", secs(o.duration_ms)),
            ));
        }
        waits.retain(|(w, _)| *w >= 1000);
        waits.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
        waits.into_iter().take(3).map(|(_, said)| said).collect()
    }

    /// Each image built, from its first step's start to its last step's end.
    pub fn build_spans(&self) -> Vec<(&str, u64, u64)> {
        let mut images: Vec<&str> = self.builds.iter().map(|b| b.image.as_str()).collect();
        images.sort();
        images.dedup();
        images
            .into_iter()
            .map(|image| {
                let steps: Vec<&BuildStep> =
                    self.builds.iter().filter(|b| b.image == image).collect();
                let start = steps.iter().map(|b| b.start_ms).min().unwrap_or(0);
                let end = steps.iter().map(|b| b.start_ms + b.duration_ms).max();
                (image, start, end.unwrap_or(start))
            })
            .collect()
    }

    /// Each image's build with the step that took longest.
    fn build_waits(&self) -> Vec<(u64, String)> {
        let mut waits = Vec::new();
        for (image, start, end) in self.build_spans() {
            let steps = self.builds.iter().filter(|b| b.image == image);
            let Some(longest) = steps.max_by_key(|b| b.duration_ms) else {
                continue;
            };
            let said = format!(
                "the build of `{image}` took {:.1} s, most in `{}` ({:.1} s)",
                secs(end.saturating_sub(start)),
                crate::text::snippet(&longest.step, 60),
                secs(longest.duration_ms)
            );
            waits.push((end.saturating_sub(start), said));
        }
        waits
    }

    /// Each service's wait to be started (on what it depends on) and from its start to its
    /// promised state (its own start, or its healthcheck's pace).
    fn service_waits(&self) -> Vec<(u64, String)> {
        let mut waits = Vec::new();
        for s in &self.services {
            if let (Some(c), Some(st)) = (s.created_ms, s.first_start_ms()) {
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
            if let (Some(st), Some(r)) = (s.first_start_ms(), s.ready_ms) {
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
        waits
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
        if !self.builds.is_empty() {
            m.push_str("  section builds\n");
        }
        for (image, start, end) in self.build_spans() {
            let _ = writeln!(m, "  {} : {start}, {}", name(image), end.max(start + 1));
        }
        m.push_str("  section services\n");
        let end = self.phases.iter().map(|p| p.end_ms).max().unwrap_or(0);
        for s in &self.services {
            let Some(start) = s.first_start_ms().or(s.created_ms) else {
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

/// Milliseconds as seconds.
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
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

    fn step(image: &str, step: &str, start_ms: u64, duration_ms: u64) -> BuildStep {
        BuildStep {
            image: image.into(),
            step: step.into(),
            start_ms,
            duration_ms,
        }
    }

    #[test]
    fn the_longest_waits_name_a_build_step_a_scenario_step_and_no_later_start() {
        let mut scenario = crate::report::Outcome::not_run("s::checks::back", "x");
        scenario.duration_ms = 9_000;
        scenario.steps = ["restart db", "state check"]
            .iter()
            .enumerate()
            .map(|(i, s)| StepSpan {
                step: s.to_string(),
                offset_ms: i as u64 * 1_000,
                duration_ms: 1_000 + i as u64 * 7_000,
                passed: true,
            })
            .collect();
        let build = crate::report::Outcome {
            duration_ms: 60_000,
            ..crate::report::Outcome::not_run("s::build::api", "x")
        };
        let timeline = Timeline {
            builds: vec![
                step("api", "FROM base", 100, 0),
                step("api", "RUN pip install -r requirements.txt", 100, 38_000),
                step("api", "COPY . .", 38_100, 500),
            ],
            services: vec![ServiceLife {
                service: "db".into(),
                created_ms: Some(40_000),
                // Its last start is the scenario's restart, long after it was ready.
                started_ms: Some(70_000),
                ready_ms: Some(41_000),
                ..ServiceLife::default()
            }],
            ..Timeline::default()
        };
        assert_eq!(
            timeline.longest_waits("s", &[scenario, build]),
            [
                "the build of `api` took 38.5 s, most in `RUN pip install -r requirements.txt` (38.0 s)",
                "`checks::back` took 9.0 s, most in step `state check` (8.0 s)",
            ]
        );
    }
}
