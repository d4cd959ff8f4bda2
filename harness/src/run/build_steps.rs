//! What a builder's log says of its steps' times, read line by line as the log arrives: BuildKit
//! (`#5 [api 2/4] RUN pip install …` … `#5 DONE 38.1s`), the classic builder (`Step 2/4 : RUN …`)
//! and Buildah (`STEP 2/4: RUN …`). Only the Dockerfile's own instructions are steps (the ones
//! numbered `k/n`); the builder's internal work (loading the context, exporting) is not, and a
//! cached step, which took no time of its own, is left out.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::report::BuildStep;

/// The steps of one builder's log so far.
pub(super) struct BuildLog {
    /// What a step belongs to when its line does not name it (classic and Buildah logs).
    image: String,
    /// The suite's start: step times are ms from it.
    t0: Instant,
    /// BuildKit's steps started and not yet done, by their `#id`.
    open_by_id: BTreeMap<u32, BuildStep>,
    /// The classic or Buildah step running (steps follow one another).
    open: Option<BuildStep>,
    steps: Vec<BuildStep>,
}

impl BuildLog {
    /// A log of building `image` (a compose service, or a suite's tag) in a run started at `t0`.
    pub(super) fn new(image: &str, t0: Instant) -> BuildLog {
        BuildLog {
            image: image.to_string(),
            t0,
            open_by_id: BTreeMap::new(),
            open: None,
            steps: Vec::new(),
        }
    }

    /// Reads one line as it arrives now.
    pub(super) fn line(&mut self, line: &str) {
        let at = self.t0.elapsed().as_millis() as u64;
        self.line_at(line, at);
    }

    /// Reads one line that arrived at `at_ms` from the suite's start.
    fn line_at(&mut self, line: &str, at_ms: u64) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('#') {
            self.buildkit(rest, at_ms);
        } else if let Some(step) = classic_step(line) {
            self.close_open(at_ms);
            self.open = Some(self.step(&self.image.clone(), step, at_ms));
        } else if line.starts_with("Successfully built") || line.starts_with("COMMIT") {
            self.close_open(at_ms);
        } else if line == "---> Using cache" || line == "--> Using cache" {
            // A cached step took no time of its own.
            self.open = None;
        }
    }

    /// The steps the log timed, a step still open ended at `at_ms`; cached steps left out.
    fn finish_at(mut self, at_ms: u64) -> Vec<BuildStep> {
        self.close_open(at_ms);
        for (_, mut step) in std::mem::take(&mut self.open_by_id) {
            step.duration_ms = at_ms.saturating_sub(step.start_ms);
            self.steps.push(step);
        }
        self.steps.sort_by_key(|s| s.start_ms);
        self.steps
    }

    /// The steps the log timed, a step still open ended now.
    pub(super) fn finish(self) -> Vec<BuildStep> {
        let at = self.t0.elapsed().as_millis() as u64;
        self.finish_at(at)
    }

    /// `5 [api 2/4] RUN …` opens step 5; `5 DONE 38.1s` ends it; `5 CACHED` drops it; `5 ERROR`
    /// ends it now.
    fn buildkit(&mut self, rest: &str, at_ms: u64) {
        let Some((id, what)) = rest.split_once(' ') else {
            return;
        };
        let Ok(id) = id.parse::<u32>() else {
            return;
        };
        if let Some(bracket) = what.strip_prefix('[') {
            let Some((inside, step)) = bracket.split_once("] ") else {
                return;
            };
            let mut words: Vec<&str> = inside.split_whitespace().collect();
            if words.pop().is_some_and(is_step_number) && !self.open_by_id.contains_key(&id) {
                let image = words.first().map_or(self.image.clone(), |w| w.to_string());
                let step = self.step(&image, step, at_ms);
                self.open_by_id.insert(id, step);
            }
        } else if let Some(secs) = what.strip_prefix("DONE ") {
            if let Some(mut step) = self.open_by_id.remove(&id) {
                let took = secs.trim_end_matches('s').parse::<f64>().ok();
                step.duration_ms = took.map_or(at_ms.saturating_sub(step.start_ms), |s| {
                    (s * 1000.0).round() as u64
                });
                self.steps.push(step);
            }
        } else if what == "CACHED" {
            self.open_by_id.remove(&id);
        } else if what.starts_with("ERROR") {
            if let Some(mut step) = self.open_by_id.remove(&id) {
                step.duration_ms = at_ms.saturating_sub(step.start_ms);
                self.steps.push(step);
            }
        }
    }

    fn step(&self, image: &str, step: &str, at_ms: u64) -> BuildStep {
        BuildStep {
            image: image.to_string(),
            step: step.trim().to_string(),
            start_ms: at_ms,
            duration_ms: 0,
        }
    }

    fn close_open(&mut self, at_ms: u64) {
        if let Some(mut step) = self.open.take() {
            step.duration_ms = at_ms.saturating_sub(step.start_ms);
            self.steps.push(step);
        }
    }
}

/// `k/n`, a Dockerfile step's number.
fn is_step_number(word: &str) -> bool {
    word.split_once('/')
        .is_some_and(|(k, n)| k.parse::<u32>().is_ok() && n.parse::<u32>().is_ok())
}

/// The instruction of a classic (`Step 2/4 : RUN …`) or Buildah (`STEP 2/4: RUN …`) step line.
fn classic_step(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("Step ")
        .or_else(|| line.strip_prefix("STEP "))?;
    let (number, step) = rest.split_once(':')?;
    is_step_number(number.trim()).then_some(step.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(image: &str, lines: &[(&str, u64)], end: u64) -> Vec<(String, String, u64, u64)> {
        let mut log = BuildLog::new(image, Instant::now());
        for (line, at) in lines {
            log.line_at(line, *at);
        }
        log.finish_at(end)
            .into_iter()
            .map(|s| (s.image, s.step, s.start_ms, s.duration_ms))
            .collect()
    }

    #[test]
    fn buildkit_steps_are_timed_by_their_done_line_and_cached_ones_left_out() {
        let lines = [
            ("#1 [app internal] load build definition from Dockerfile", 0),
            ("#1 DONE 0.0s", 10),
            ("#4 [app 1/3] FROM docker.io/library/python:3.9-slim", 20),
            ("#4 CACHED", 21),
            ("#5 [app 2/3] RUN pip install -r requirements.txt", 30),
            ("#5 12.214 Collecting flask", 12_000),
            ("#5 DONE 38.1s", 38_200),
            ("#6 [worker 2/2] RUN sleep 1", 31),
            (
                "#6 ERROR: process \"/bin/sh -c sleep 1\" did not complete",
                1_500,
            ),
            ("#7 [app] exporting to image", 38_300),
            ("#7 DONE 0.2s", 38_500),
        ];
        assert_eq!(
            read("compose build", &lines, 40_000),
            [
                (
                    "app".into(),
                    "RUN pip install -r requirements.txt".into(),
                    30,
                    38_100
                ),
                ("worker".into(), "RUN sleep 1".into(), 31, 1_469),
            ]
        );
    }

    #[test]
    fn classic_and_buildah_steps_last_until_the_next_one() {
        let lines = [
            ("Step 1/4 : FROM python:3.9-slim", 0),
            (" ---> 2f3c", 5),
            ("Step 2/4 : ENV A=1", 7),
            (" ---> Using cache", 8),
            ("Step 3/4 : RUN pip install flask", 10),
            ("Collecting flask", 900),
            ("Step 4/4 : LABEL a=b", 20_010),
            ("Successfully built 9a1b", 20_100),
        ];
        assert_eq!(
            read("api", &lines, 30_000),
            [
                ("api".into(), "FROM python:3.9-slim".into(), 0, 7),
                ("api".into(), "RUN pip install flask".into(), 10, 20_000),
                ("api".into(), "LABEL a=b".into(), 20_010, 90),
            ]
        );
        let buildah = [("STEP 1/2: FROM base", 0), ("STEP 2/2: RUN make", 100)];
        assert_eq!(
            read("api", &buildah, 5_100)[1],
            ("api".into(), "RUN make".into(), 100, 5_000)
        );
    }

    #[test]
    fn lines_that_only_look_like_steps_are_not_steps() {
        let lines = [
            ("#x [app 1/2] RUN a", 0),
            ("#3 [app] exporting to image", 0),
            ("Step two: RUN a", 0),
            ("# a comment [1/2] RUN", 0),
        ];
        assert!(read("api", &lines, 10).is_empty());
    }
}
