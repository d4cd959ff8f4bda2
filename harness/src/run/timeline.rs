//! The run's timeline as the engine and the verdicts tell it: each service container's creation,
//! (last) start, exit and restarts, read before teardown removes them, and the moment its state
//! test passed.

use std::time::SystemTime;

use crate::engine::{Engine, LABEL_SERVICE};
use crate::plan::{PlannedTest, ServicePromise, TestKind};
use crate::report::{ms_since, Outcome, ServiceLife, Status};
use crate::suite::Suite;

/// Compose's label numbering a service's replicas.
const LABEL_NUMBER: &str = "com.docker.compose.container-number";

/// Compose's label listing what a container's start waited for (`db:service_healthy:false,…`).
const LABEL_DEPENDS_ON: &str = "com.docker.compose.depends_on";

/// Each service container of `project` (one-offs left out), as the engine recorded it.
pub(super) async fn lives(engine: &Engine, project: &str, t0: SystemTime) -> Vec<ServiceLife> {
    let Ok(listed) = engine.project_containers(project).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in listed.iter().filter(|c| !crate::engine::is_oneoff(c)) {
        let labels = c.labels.clone().unwrap_or_default();
        let (Some(id), Some(service)) = (c.id.as_deref(), labels.get(LABEL_SERVICE)) else {
            continue;
        };
        let Ok(info) = engine.inspect(id).await else {
            continue;
        };
        let state = info.state.unwrap_or_default();
        let at = |t: Option<&String>| t.and_then(|t| ms_since(t0, t));
        let running = state.running.unwrap_or(false);
        let service = match labels.get(LABEL_NUMBER).map(String::as_str) {
            None | Some("1") => service.clone(),
            Some(n) => format!("{service}#{n}"),
        };
        out.push(ServiceLife {
            service,
            created_ms: info
                .created
                .and_then(|c| SystemTime::from(c).duration_since(t0).ok())
                .map(|d| d.as_millis() as u64),
            started_ms: at(state.started_at.as_ref()),
            exited_ms: at(state.finished_at.as_ref()).filter(|_| !running),
            exit_code: state.exit_code.filter(|_| !running),
            restarts: info.restart_count.unwrap_or(0).max(0) as u32,
            depends_on: depends_on(&labels),
            healthcheck: info.config.as_ref().and_then(pace),
            ..ServiceLife::default()
        });
    }
    out.sort_by(|a, b| a.service.cmp(&b.service));
    out
}

/// `db: service_healthy` for each dependency compose's label lists.
fn depends_on(labels: &std::collections::HashMap<String, String>) -> Vec<String> {
    let Some(list) = labels.get(LABEL_DEPENDS_ON) else {
        return Vec::new();
    };
    list.split(',')
        .filter_map(|d| {
            let mut parts = d.split(':');
            let service = parts.next().filter(|s| !s.is_empty())?;
            let condition = parts.next().unwrap_or("service_started");
            Some(format!("{service}: {condition}"))
        })
        .collect()
}

/// A container's healthcheck pace in words (`every 10s, start period 30s`).
fn pace(config: &bollard::models::ContainerConfig) -> Option<String> {
    let h = config.healthcheck.as_ref()?;
    let test = h.test.as_ref()?;
    if test.first().is_some_and(|t| t == "NONE") {
        return None;
    }
    let secs = |ns: Option<i64>| ns.filter(|n| *n > 0).map(|n| n as f64 / 1e9);
    let mut said = vec![format!("every {}s", secs(h.interval).unwrap_or(30.0))];
    if let Some(start) = secs(h.start_period) {
        said.push(format!("start period {start}s"));
    }
    Some(said.join(", "))
}

/// Marks on each service's life the moment its state test passed, and the state it promised.
pub(super) fn with_ready(
    lives: &mut [ServiceLife],
    suite: &Suite,
    tests: &[PlannedTest],
    outcomes: &[Outcome],
) {
    for life in lives.iter_mut() {
        let service = life.service.split('#').next().unwrap_or_default();
        let state = TestKind::Service {
            service: service.to_string(),
            promise: ServicePromise::State,
        };
        let Some(test) = tests.iter().find(|t| t.kind == state) else {
            continue;
        };
        let passed = outcomes
            .iter()
            .find(|o| o.name == test.name && o.status == Status::Passed);
        if let Some(o) = passed {
            life.ready_ms = Some(o.started_ms + o.duration_ms);
            life.state = suite.services[service].state.map(|s| s.to_string());
        }
    }
}
