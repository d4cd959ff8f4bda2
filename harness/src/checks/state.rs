//! Waiting for services to reach their desired state, within one budget, failing a service as soon
//! as it turns unhealthy or exits, with its health-check output and last log lines.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, HealthStatusEnum};

use super::judge::{desired, instance_of, judge, Judgement, Uptime};
use super::replicas::{fold_replicas, replicas_of};
use super::Verdict;
use crate::engine::{ComposeError, Engine};

use crate::suite::DesiredState;

const POLL: Duration = Duration::from_millis(500);
pub const LOG_LINES: usize = 50;

/// What the waiter concluded, per service, and the containers it found.
pub struct StateReport {
    pub verdicts: BTreeMap<String, Verdict>,
    pub containers: BTreeMap<String, String>,
    /// `up` failed (the reason goes into the verdicts of services it did not start).
    pub up_error: Option<String>,
}

/// What to wait for: the services of `project` and the state each should reach by `deadline`.
pub struct WaitFor<'a> {
    pub project: &'a str,
    pub wants: &'a [(String, Option<DesiredState>)],
    pub deadline: Instant,
    /// Stop watching the others once one service has failed (`--fail-fast`).
    pub stop_at_first_failure: bool,
}

/// Runs `up` and, while it runs and after, watches every wanted service until each has a verdict
/// or the deadline passes. `progress` receives a one-line summary on every change; `on_decided`
/// each verdict as soon as it is reached (with the container as last inspected), so a failure is
/// reported within a poll of the engine knowing it, not when the last service is decided.
pub async fn bring_up_and_wait<U>(
    engine: &Engine,
    wait: &WaitFor<'_>,
    up: U,
    mut progress: impl FnMut(&str),
    mut on_decided: impl FnMut(&str, &Verdict, &[ContainerInspectResponse]),
) -> StateReport
where
    U: Future<Output = Result<(), ComposeError>>,
{
    let WaitFor {
        project,
        wants,
        deadline,
        stop_at_first_failure,
    } = *wait;
    let started = Instant::now();
    let mut inspected: BTreeMap<String, Vec<ContainerInspectResponse>> = BTreeMap::new();
    let mut announced: std::collections::BTreeSet<String> = Default::default();
    let mut announce =
        |verdicts: &BTreeMap<String, Verdict>,
         inspected: &BTreeMap<String, Vec<ContainerInspectResponse>>| {
            for (service, v) in verdicts {
                if announced.insert(service.clone()) {
                    let infos = inspected
                        .get(service)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    on_decided(service, v, infos);
                }
            }
        };
    tokio::pin!(up);
    let mut up_result: Option<Result<(), ComposeError>> = None;
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    let mut containers: BTreeMap<String, String> = BTreeMap::new();
    let mut running_since: BTreeMap<String, Uptime> = BTreeMap::new();
    let mut last_line = String::new();
    let mut changes = engine.container_changes(project);
    loop {
        tokio::select! {
            r = &mut up, if up_result.is_none() => up_result = Some(r),
            // A healthcheck's first pass ends a wait at once, not up to a poll later.
            () = changes.next() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        let listed = match engine.project_containers(project).await {
            Ok(l) => l,
            Err(e) if engine.ping().await.is_err() => {
                // Gone (restarting, crashed): waiting out the budget would only hide the cause.
                for (service, _) in wants {
                    verdicts.entry(service.clone()).or_insert_with(|| {
                        Verdict::fail(format!(
                            "the Docker engine stopped answering while `{service}` was starting ({e})"
                        ))
                    });
                }
                break;
            }
            Err(_) => Vec::new(),
        };
        let replicas = replicas_of(&listed);
        for (svc, ids) in &replicas {
            containers.insert(svc.clone(), ids[0].clone());
        }
        let mut summary = Vec::new();
        for (service, want) in wants {
            if verdicts.contains_key(service) {
                continue;
            }
            let Some(ids) = replicas.get(service) else {
                match &up_result {
                    Some(Err(e)) => {
                        verdicts.insert(
                            service.clone(),
                            Verdict::fail(format!(
                                "`{service}` was never started: docker compose up failed"
                            ))
                            .with_detail(e.tail().to_string()),
                        );
                    }
                    Some(Ok(())) => {
                        verdicts.insert(
                            service.clone(),
                            Verdict::fail(format!("compose created no container for `{service}`")),
                        );
                    }
                    None => summary.push(format!("{service}: not created")),
                }
                continue;
            };
            // Every replica (`deploy.replicas`) must reach the state; checks use the first.
            let elapsed = started.elapsed().as_secs_f32();
            let mut all = Vec::new();
            let mut infos = Vec::new();
            for (n, id) in ids.iter().enumerate() {
                let Ok(info) = engine.inspect(id).await else {
                    all.push((n + 1, id, Judgement::Waiting("not inspected".into())));
                    continue;
                };
                let uptime = running_since
                    .entry(format!("{service}#{}", n + 1))
                    .or_default();
                let judged = match &up_result {
                    _ if observe(&info) != "created" => {
                        judge(service, *want, &info, elapsed, uptime)
                    }
                    None => Judgement::Waiting("created".into()),
                    Some(Err(e)) => Judgement::Decided(
                        Verdict::fail(format!(
                            "`{service}` was created but never started: docker compose up failed"
                        ))
                        .with_detail(e.tail().to_string()),
                    ),
                    Some(Ok(())) => Judgement::Decided(Verdict::fail(format!(
                        "`{service}` was created but never started"
                    ))),
                };
                all.push((n + 1, id, judged));
                infos.push(info);
            }
            inspected.insert(service.clone(), infos);
            match fold_replicas(service, all) {
                (Judgement::Decided(v), _) if v.passed => {
                    verdicts.insert(service.clone(), v);
                }
                (Judgement::Decided(v), id) if v.detail.is_empty() => {
                    let detail = diagnostics(engine, id.unwrap_or(&ids[0])).await;
                    verdicts.insert(service.clone(), v.with_detail(detail));
                }
                (Judgement::Decided(v), _) => {
                    verdicts.insert(service.clone(), v);
                }
                (Judgement::Waiting(now), _) => summary.push(format!("{service}: {now}")),
            }
        }
        let line = format!(
            "{}/{} services ready; {}",
            verdicts.len(),
            wants.len(),
            summary.join(", ")
        );
        if line != last_line {
            progress(&line);
            last_line = line;
        }
        announce(&verdicts, &inspected);
        if stop_at_first_failure && verdicts.values().any(|v| !v.passed) {
            break;
        }
        let all_decided = verdicts.len() == wants.len();
        if all_decided && up_result.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            for (service, want) in wants {
                if verdicts.contains_key(service) {
                    continue;
                }
                let want = want
                    .map(|w| w.to_string())
                    .unwrap_or_else(|| "ready".into());
                let seen = summary
                    .iter()
                    .find(|s| s.starts_with(&format!("{service}:")))
                    .cloned()
                    .unwrap_or_default();
                let mut v = Verdict::fail(format!(
                    "`{service}` not {want} within {:.0?} (last seen {seen})",
                    deadline - started
                ));
                if let Some(id) = containers.get(service) {
                    v = v.with_detail(diagnostics(engine, id).await);
                }
                verdicts.insert(service.clone(), v);
            }
            break;
        }
        if all_decided {
            // Every wanted service is decided; `up` may still wait on services the suite does not
            // name. Give it until the deadline but no longer.
            if let Ok(r) =
                tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), &mut up)
                    .await
            {
                up_result = Some(r);
            }
            break;
        }
    }
    announce(&verdicts, &inspected);
    // `up` may have created containers after the last look (services the suite does not name).
    let listed = engine.project_containers(project).await.unwrap_or_default();
    for (svc, ids) in replicas_of(&listed) {
        containers.insert(svc, ids[0].clone());
    }
    let up_error = match up_result {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    StateReport {
        verdicts,
        containers,
        up_error,
    }
}

/// A `running` or `healthy` promise that passed, and the container instances (one per replica)
/// it passed on: the promise is that it holds for the run, so it is looked at again when the
/// checks end.
#[derive(Clone, Debug)]
pub struct Held {
    service: String,
    want: DesiredState,
    replicas: Vec<Instance>,
    since: Instant,
}

/// One container as a passing verdict saw it.
#[derive(Clone, Debug)]
struct Instance {
    id: String,
    instance: String,
    restarts: i64,
}

impl Held {
    /// From the inspects (one per replica) a passing state verdict was reached on; None for
    /// one-shots (`exited`).
    pub fn new(
        service: &str,
        want: Option<DesiredState>,
        infos: &[ContainerInspectResponse],
    ) -> Option<Held> {
        let want = desired(want, infos.first()?);
        if matches!(want, DesiredState::Exited(_)) {
            return None;
        }
        let replicas = infos
            .iter()
            .map(|info| {
                Some(Instance {
                    id: info.id.clone()?,
                    instance: instance_of(info),
                    restarts: info.restart_count.unwrap_or(0),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Held {
            service: service.to_string(),
            want,
            replicas,
            since: Instant::now(),
        })
    }

    /// The service this is about.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// How long ago the state passed.
    pub fn held_for(&self) -> Duration {
        self.since.elapsed()
    }

    /// None while every replica's container instance is still in the promised state; else the
    /// first failure: what it is now, when it exited and with which code, how often it was
    /// restarted since, and its health checks and last log lines.
    pub async fn still_holds(&self, engine: &Engine) -> Option<Verdict> {
        let count = self.replicas.len();
        for (n, held) in self.replicas.iter().enumerate() {
            if let Some(mut v) = self.replica_holds(engine, held).await {
                if count > 1 {
                    v.message = format!("replica {} of {count}: {}", n + 1, v.message);
                }
                return Some(v);
            }
        }
        None
    }

    async fn replica_holds(&self, engine: &Engine, held: &Instance) -> Option<Verdict> {
        let (service, want) = (&self.service, self.want);
        let held_for = self.since.elapsed().as_secs_f32();
        let info = match engine.inspect(&held.id).await {
            Ok(info) => info,
            Err(e) => {
                return Some(Verdict::fail(format!(
                    "`{service}` did not stay {want}: its container is gone {held_for:.1}s after it passed ({e})"
                )))
            }
        };
        let seen = observe(&info);
        if instance_of(&info) == held.instance && satisfies(&seen, want) {
            return None;
        }
        let state = info.state.clone().unwrap_or_default();
        let restarted = info.restart_count.unwrap_or(0) - held.restarts;
        let mut what = format!("it is {seen} now");
        // The engine's zero time means it never exited.
        if let Some(at) = state.finished_at.filter(|t| !t.starts_with("0001-")) {
            let code = state.exit_code.unwrap_or(0);
            what.push_str(&format!("; last exit code {code} at {at}"));
        }
        Some(
            Verdict::fail(format!(
                "`{service}` did not stay {want}: {what}, restarted {restarted}× since it was {want} {held_for:.1}s earlier"
            ))
            .with_detail(diagnostics(engine, &held.id).await),
        )
    }
}

/// Why a service is not up, in a few words, when it is not (restarting, exited, unhealthy): the
/// cause to name when a check that touches it fails.
pub async fn trouble(engine: &Engine, service: &str, id: &str) -> Option<String> {
    let info = engine.inspect(id).await.ok()?;
    let state = info.state.clone().unwrap_or_default();
    let code = state.exit_code.unwrap_or(0);
    let restarts = info.restart_count.unwrap_or(0);
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    match status.as_str() {
        "restarting" => Some(format!(
            "`{service}` is restarting after exit code {code} (restarted {restarts}×)"
        )),
        "exited" | "dead" => Some(format!("`{service}` exited with code {code}")),
        "running" if state.health.and_then(|h| h.status) == Some(HealthStatusEnum::UNHEALTHY) => {
            Some(format!("`{service}` is unhealthy"))
        }
        "running" | "" => None,
        other => Some(format!("`{service}` is {other}")),
    }
}

/// The container's last health-check outputs and its last log lines.
pub async fn diagnostics(engine: &Engine, id: &str) -> String {
    let mut out = String::new();
    if let Ok(info) = engine.inspect(id).await {
        if let Some(log) = info
            .state
            .as_ref()
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.log.as_ref())
        {
            out.push_str("--- last health checks ---\n");
            for entry in log.iter().rev().take(3).rev() {
                out.push_str(&format!(
                    "exit {}: {}\n",
                    entry.exit_code.unwrap_or(-1),
                    entry.output.as_deref().unwrap_or("").trim_end()
                ));
            }
        }
    }
    out.push_str(&format!("--- last {LOG_LINES} log lines ---\n"));
    out.push_str(&engine.logs_tail(id, LOG_LINES).await);
    out
}

/// A container's state in one line: `running`, `running (healthy)`, `exited:1`…
pub fn observe(info: &ContainerInspectResponse) -> String {
    let state = info.state.clone().unwrap_or_default();
    let status = state
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    if matches!(status.as_str(), "exited" | "dead") {
        return format!("exited:{}", state.exit_code.unwrap_or(0));
    }
    match state.health.and_then(|h| h.status) {
        Some(h)
            if status == "running"
                && h != HealthStatusEnum::NONE
                && h != HealthStatusEnum::EMPTY =>
        {
            format!("running ({h})")
        }
        _ => status,
    }
}

/// Whether an observed state (from [`observe`]) is the wanted one.
pub fn satisfies(seen: &str, want: DesiredState) -> bool {
    match want {
        DesiredState::Healthy => seen == "running (healthy)",
        DesiredState::Running => seen.starts_with("running"),
        DesiredState::Exited(c) => seen == format!("exited:{c}"),
    }
}
