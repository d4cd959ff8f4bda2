//! A suite's run drawn over time as inline SVG, for the HTML report: a row of phases, a row per
//! image built (a bar per build step), a row per service (starting, then up to its exit), a row
//! per test, and under a scenario's test a row per step.

use std::fmt::Write;

use super::html::esc;
use super::{Outcome, ServiceLife, SuiteReport};

/// The drawing's width in pixels, labels excluded, and its label column.
const WIDTH: f64 = 900.0;
const LABELS: f64 = 220.0;

/// The height of a row.
const ROW: usize = 14;

/// The timeline of `r`'s run.
pub(super) fn timeline(r: &SuiteReport) -> String {
    let t = &r.timeline;
    let end = r
        .outcomes
        .iter()
        .map(|o| o.started_ms + o.duration_ms)
        .chain(t.phases.iter().map(|s| s.end_ms))
        .chain(t.builds.iter().map(|b| b.start_ms + b.duration_ms))
        .chain([r.duration_ms, 1])
        .max()
        .unwrap_or(1);
    let steps: usize = r.outcomes.iter().map(|o| o.steps.len()).sum();
    let builds = t.build_spans().len();
    let rows = 1 + builds + t.services.len() + r.outcomes.len() + steps;
    let mut svg = Svg {
        out: String::new(),
        y: 4,
        end: end as f64,
    };
    svg.phases(r);
    svg.builds(r);
    for s in &t.services {
        svg.service(s);
    }
    for o in &r.outcomes {
        svg.test(&r.suite, o);
    }
    format!(
        "<h3>Timeline</h3><svg class=\"timeline\" width=\"{}\" height=\"{}\" role=\"img\">{}</svg>\n",
        LABELS + WIDTH + 10.0,
        16 + rows * ROW,
        svg.out
    )
}

/// The drawing so far: its rows, where the next goes, and the time the width stands for.
struct Svg {
    out: String,
    y: usize,
    end: f64,
}

impl Svg {
    fn x(&self, ms: u64) -> f64 {
        LABELS + WIDTH * ms as f64 / self.end
    }

    /// A bar from `from` to `to` (at least `min` pixels wide), of `class`, titled.
    fn bar(&mut self, class: &str, from: u64, to: u64, height: usize, title: &str) {
        let (x, w) = (self.x(from), (self.x(to) - self.x(from)).max(1.0));
        let _ = write!(
            self.out,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{height}\"><title>{}</title></rect>",
            self.y,
            esc(title)
        );
    }

    /// Opens a row of `class` labelled `label`.
    fn row(&mut self, class: &str, attrs: &str, label: &str) {
        let _ = write!(
            self.out,
            "<g class=\"{class}\"{attrs}><text x=\"0\" y=\"{}\">{}</text>",
            self.y + 10,
            esc(label)
        );
    }

    fn close_row(&mut self) {
        self.out.push_str("</g>");
        self.y += ROW;
    }

    fn phases(&mut self, r: &SuiteReport) {
        self.row("phase-row", "", "phases");
        for s in &r.timeline.phases {
            let c = s.phase.as_str();
            let secs = s.end_ms.saturating_sub(s.start_ms) as f64 / 1000.0;
            self.bar(
                &format!("phase {c}"),
                s.start_ms,
                s.end_ms,
                12,
                &format!("{c}: {secs:.1} s"),
            );
        }
        self.close_row();
    }

    /// A row per image built, a bar per step of its build.
    fn builds(&mut self, r: &SuiteReport) {
        for (image, _, _) in r.timeline.build_spans() {
            let attrs = format!(" data-image=\"{}\"", esc(image));
            self.row("build-row", &attrs, &format!("build {image}"));
            for b in r.timeline.builds.iter().filter(|b| b.image == image) {
                let title = format!("{}: {:.1} s", b.step, b.duration_ms as f64 / 1000.0);
                self.bar(
                    "build-step",
                    b.start_ms,
                    b.start_ms + b.duration_ms,
                    12,
                    &title,
                );
            }
            self.close_row();
        }
    }

    /// The service from its start to its promised state, then up to its exit.
    fn service(&mut self, s: &ServiceLife) {
        let start = s.first_start_ms().or(s.created_ms).unwrap_or(0);
        let ready = s.ready_ms.unwrap_or(start);
        let stop = s.exited_ms.unwrap_or(self.end as u64);
        let restarts = match s.restarts {
            0 => String::new(),
            n => format!(" ↻{n}"),
        };
        let exited = s
            .exit_code
            .map(|c| format!(", exited {c}"))
            .unwrap_or_default();
        let attrs = format!(" data-service=\"{}\"", esc(&s.service));
        self.row("service-row", &attrs, &format!("{}{restarts}", s.service));
        let state = s.state.as_deref().unwrap_or("ready");
        let title = format!(
            "{}: started {:.1} s, {state} {:.1} s{exited}",
            s.service,
            start as f64 / 1000.0,
            ready as f64 / 1000.0
        );
        self.bar("starting", start, ready, 12, &title);
        self.bar("up", ready, stop, 12, &title);
        self.close_row();
    }

    /// The test as a bar from its start to its verdict; a scenario's steps below it.
    fn test(&mut self, suite: &str, o: &Outcome) {
        let check = o
            .name
            .strip_prefix(&format!("{suite}::"))
            .unwrap_or(&o.name);
        self.row("test-row", "", &crate::text::snippet(check, 34));
        let end = o.started_ms + o.duration_ms;
        let title = format!("{}: {:.1} s", o.name, o.duration_ms as f64 / 1000.0);
        self.bar(o.ending().as_str(), o.started_ms, end, 10, &title);
        self.close_row();
        for (i, s) in o.steps.iter().enumerate() {
            let label = format!("  {}. {}", i + 1, s.step);
            self.row("step-row", "", &crate::text::snippet(&label, 34));
            let from = o.started_ms + s.offset_ms;
            let class = if s.passed { "passed" } else { "failed" };
            let title = format!("{}: {:.1} s", s.step, s.duration_ms as f64 / 1000.0);
            self.bar(class, from, from + s.duration_ms, 8, &title);
            self.close_row();
        }
    }
}
