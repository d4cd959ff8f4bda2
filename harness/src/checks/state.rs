//! Waiting for services to reach their desired state, within one budget, failing a service as soon
//! as it turns unhealthy or exits, with its health-check output and last log lines.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;

use super::judge::{desired, instance_of, judge, Judgement, Uptime};
use super::replicas::{fold_replicas, replicas_of};
use super::Verdict;
use crate::engine::{ComposeError, ContainerStatus, Engine, Health, ObservedState};

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
    let mut watch = Watch::new(wait);
    let mut changes = engine.container_changes(wait.project);
    tokio::pin!(up);
    loop {
        tokio::select! {
            r = &mut up, if watch.up_result.is_none() => watch.up_result = Some(r),
            // A healthcheck's first pass ends a wait at once, not up to a poll later.
            () = changes.next() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        let Some(summary) = watch.look(engine).await else {
            break;
        };
        watch.say(&summary, &mut progress);
        watch.announce(&mut on_decided);
        if wait.stop_at_first_failure && watch.verdicts.values().any(|v| !v.passed) {
            break;
        }
        let all_decided = watch.verdicts.len() == wait.wants.len();
        if all_decided && watch.up_result.is_some() {
            break;
        }
        if Instant::now() >= wait.deadline {
            watch.time_out(engine, &summary).await;
            break;
        }
        if all_decided {
            // Every wanted service is decided; `up` may still wait on services the suite does not
            // name. Give it until the deadline but no longer.
            let left = wait.deadline.saturating_duration_since(Instant::now());
            if let Ok(r) = tokio::time::timeout(left, &mut up).await {
                watch.up_result = Some(r);
            }
            break;
        }
    }
    watch.announce(&mut on_decided);
    watch.report(engine).await
}

/// The wait in progress: what `up` said, each service's verdict once decided, and what the last
/// look saw.
struct Watch<'a> {
    wait: &'a WaitFor<'a>,
    started: Instant,
    up_result: Option<Result<(), ComposeError>>,
    verdicts: BTreeMap<String, Verdict>,
    containers: BTreeMap<String, String>,
    inspected: BTreeMap<String, Vec<ContainerInspectResponse>>,
    running_since: BTreeMap<String, Uptime>,
    announced: std::collections::BTreeSet<String>,
    last_line: String,
}

impl<'a> Watch<'a> {
    fn new(wait: &'a WaitFor<'a>) -> Watch<'a> {
        Watch {
            wait,
            started: Instant::now(),
            up_result: None,
            verdicts: BTreeMap::new(),
            containers: BTreeMap::new(),
            inspected: BTreeMap::new(),
            running_since: BTreeMap::new(),
            announced: Default::default(),
            last_line: String::new(),
        }
    }

    /// One look at the project: judges every undecided service, and says what the others are
    /// waiting for (`service: now`). None when the engine stopped answering: every undecided
    /// service has failed with that cause, since waiting out the budget would only hide it.
    async fn look(&mut self, engine: &Engine) -> Option<Vec<String>> {
        let listed = match engine.project_containers(self.wait.project).await {
            Ok(l) => l,
            Err(e) if engine.ping().await.is_err() => {
                for (service, _) in self.wait.wants {
                    self.verdicts.entry(service.clone()).or_insert_with(|| {
                        Verdict::fail(format!(
                            "the Docker engine stopped answering while `{service}` was starting ({e})"
                        ))
                    });
                }
                return None;
            }
            Err(_) => Vec::new(),
        };
        let replicas = replicas_of(&listed);
        for (svc, ids) in &replicas {
            self.containers.insert(svc.clone(), ids[0].clone());
        }
        let mut summary = Vec::new();
        for (service, want) in self.wait.wants {
            if self.verdicts.contains_key(service) {
                continue;
            }
            let waiting = match replicas.get(service) {
                Some(ids) => self.judge_service(engine, service, *want, ids).await,
                None => self.not_created(service),
            };
            summary.extend(waiting.map(|now| format!("{service}: {now}")));
        }
        Some(summary)
    }

    /// A service with no container yet: failed once `up` has ended, else still waited for.
    fn not_created(&mut self, service: &str) -> Option<String> {
        let verdict = match &self.up_result {
            Some(Err(e)) => Verdict::fail(format!(
                "`{service}` was never started: docker compose up failed"
            ))
            .with_detail(e.tail().to_string()),
            Some(Ok(())) => Verdict::fail(format!("compose created no container for `{service}`")),
            None => return Some("not created".into()),
        };
        self.verdicts.insert(service.to_string(), verdict);
        None
    }

    /// Judges every replica of a service (`deploy.replicas`: each must reach the state; checks
    /// use the first). What it is waiting for, while it is.
    async fn judge_service(
        &mut self,
        engine: &Engine,
        service: &str,
        want: Option<DesiredState>,
        ids: &[String],
    ) -> Option<String> {
        let elapsed = self.started.elapsed().as_secs_f32();
        let mut all = Vec::new();
        let mut infos = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let Ok(info) = engine.inspect(id).await else {
                all.push((n + 1, id, Judgement::Waiting("not inspected".into())));
                continue;
            };
            let uptime = self
                .running_since
                .entry(format!("{service}#{}", n + 1))
                .or_default();
            let judged = match &self.up_result {
                _ if ObservedState::of(&info).was_started() => {
                    judge(service, want, &info, elapsed, uptime)
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
        self.inspected.insert(service.to_string(), infos);
        let verdict = match fold_replicas(service, all) {
            (Judgement::Waiting(now), _) => return Some(now),
            (Judgement::Decided(v), id) if !v.passed && v.detail.is_empty() => {
                let detail = diagnostics(engine, id.unwrap_or(&ids[0])).await;
                v.with_detail(detail)
            }
            (Judgement::Decided(v), _) => v,
        };
        self.verdicts.insert(service.to_string(), verdict);
        None
    }

    /// The progress line, when it changed.
    fn say(&mut self, summary: &[String], progress: &mut impl FnMut(&str)) {
        let line = format!(
            "{}/{} services ready; {}",
            self.verdicts.len(),
            self.wait.wants.len(),
            summary.join(", ")
        );
        if line != self.last_line {
            progress(&line);
            self.last_line = line;
        }
    }

    /// Hands each verdict reached since the last call to `on_decided`, once.
    fn announce(
        &mut self,
        on_decided: &mut impl FnMut(&str, &Verdict, &[ContainerInspectResponse]),
    ) {
        for (service, v) in &self.verdicts {
            if self.announced.insert(service.clone()) {
                let infos = self
                    .inspected
                    .get(service)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                on_decided(service, v, infos);
            }
        }
    }

    /// The deadline passed: every undecided service fails with what it was last seen doing.
    async fn time_out(&mut self, engine: &Engine, summary: &[String]) {
        let WaitFor {
            wants, deadline, ..
        } = *self.wait;
        for (service, want) in wants {
            if self.verdicts.contains_key(service) {
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
                deadline - self.started
            ));
            if let Some(id) = self.containers.get(service) {
                v = v.with_detail(diagnostics(engine, id).await);
            }
            self.verdicts.insert(service.clone(), v);
        }
    }

    async fn report(mut self, engine: &Engine) -> StateReport {
        // `up` may have created containers after the last look (services the suite does not name).
        let listed = engine
            .project_containers(self.wait.project)
            .await
            .unwrap_or_default();
        for (svc, ids) in replicas_of(&listed) {
            self.containers.insert(svc, ids[0].clone());
        }
        let up_error = match self.up_result {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        StateReport {
            verdicts: self.verdicts,
            containers: self.containers,
            up_error,
        }
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
        let seen = ObservedState::of(&info);
        if instance_of(&info) == held.instance && seen.satisfies(want) {
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
    let code = info.state.as_ref().and_then(|s| s.exit_code).unwrap_or(0);
    let restarts = info.restart_count.unwrap_or(0);
    let seen = ObservedState::of(&info);
    match (&seen.status, seen.health) {
        (ContainerStatus::Restarting, _) => Some(format!(
            "`{service}` is restarting after exit code {code} (restarted {restarts}×)"
        )),
        (ContainerStatus::Exited(code), _) => Some(format!("`{service}` exited with code {code}")),
        (ContainerStatus::Running, Some(Health::Unhealthy)) => {
            Some(format!("`{service}` is unhealthy"))
        }
        (ContainerStatus::Running, _) => None,
        (ContainerStatus::Other(word), _) if word.is_empty() => None,
        (status, _) => Some(format!("`{service}` is {}", status.word())),
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
