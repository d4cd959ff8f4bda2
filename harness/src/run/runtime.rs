//! The runtime tests against the live stack: service promises, networks, volumes and checks.
//! Those that only look run concurrently; scenarios, which act on the stack, run afterwards in the
//! suite's order. A check with `retries:` runs again after a failure; an engine that stops
//! answering ends the checks with that as their cause.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::images::service_images;
use super::runner::{Runner, Stop};
use crate::checks::{self, state, Ctx, Verdict};
use crate::engine::{Compose, ComposeModel, Engine, EngineError, ObservedState};
use crate::plan::{PlannedTest, RunIdentity, ServicePromise, TestKind};
use crate::report::Progress;
use crate::suite::{Action, CheckKind, Suite};

/// Checks of one suite that run at the same time (each may start a helper container).
const CHECK_JOBS: usize = 4;

/// What the checks may look at, for a stack that is up.
pub(super) fn new_ctx<'a>(
    r: &Runner<'a>,
    model: &'a ComposeModel,
    compose: Option<&'a Compose>,
    id: &'a RunIdentity,
    workdir: &'a Path,
    containers: BTreeMap<String, String>,
) -> Ctx<'a> {
    Ctx {
        engine: r.engine,
        model,
        loaded: r.loaded,
        compose,
        run_id: &id.run_id,
        labels: &id.labels,
        containers: std::sync::Mutex::new(containers),
        tmp: workdir,
        canary: Default::default(),
        probe: Default::default(),
        pull: r.settings.pull,
        progress: r.progress,
        probed: Default::default(),
        ephemeral_ports: r.settings.ephemeral,
        http: Default::default(),
        removals: r.state.removals.clone(),
    }
}

/// A check whose steps act on the stack (restart, stop, start, kill, down/up): it runs after every
/// other runtime test, one at a time, in the suite's order.
fn is_scenario(suite: &Suite, kind: &TestKind) -> bool {
    let TestKind::Check { index } = kind else {
        return false;
    };
    matches!(&suite.checks[*index].kind, CheckKind::Steps(steps)
        if steps.iter().any(|s| !matches!(s.action, Action::Check { .. })))
}

/// The verdict of one runtime test (service promise, network, volume, check); None for others.
async fn runtime_verdict(
    ctx: &Ctx<'_>,
    suite: &Suite,
    progress: &dyn Progress,
    kind: &TestKind,
) -> Option<Verdict> {
    Some(match kind {
        TestKind::Service { service, promise } if *promise != ServicePromise::State => {
            let v = checks::check_service(ctx, service, promise, &suite.services[service]).await;
            if v.passed || !v.detail.is_empty() {
                v
            } else {
                v.with_detail(ctx.diagnostics(service).await)
            }
        }
        TestKind::Network { name } => checks::check_network(ctx, name, &suite.networks[name]).await,
        TestKind::Volume { name } => checks::check_volume(ctx, name).await,
        TestKind::Check { index } => {
            let check = &suite.checks[*index];
            progress.phase(&format!("check: {}", check.name));
            let mut failed: Vec<String> = Vec::new();
            loop {
                let v = checks::check(ctx, check).await;
                if v.passed {
                    break Verdict { flaky: failed, ..v };
                }
                if failed.len() as u32 >= check.retries {
                    break match failed.len() {
                        0 => v,
                        n => Verdict {
                            message: format!(
                                "failed on all {} attempts; last: {}",
                                n + 1,
                                v.message
                            ),
                            ..v
                        },
                    };
                }
                failed.push(format!("attempt {}: {}", failed.len() + 1, v.message));
                progress.phase(&format!(
                    "check: {} failed, re-running ({} of {} re-runs)",
                    check.name,
                    failed.len(),
                    check.retries
                ));
            }
        }
        _ => return None,
    })
}

/// One runtime test that started during bring-up (see `early`).
pub(super) struct EarlyRun {
    test: PlannedTest,
    /// The services its verdict stands on.
    on: BTreeSet<String>,
    verdict: Option<Verdict>,
    took: Duration,
}

pub(super) async fn run_early(ctx: &Ctx<'_>, test: PlannedTest, on: BTreeSet<String>) -> EarlyRun {
    let t0 = Instant::now();
    let suite = &ctx.loaded.suite;
    let verdict = match runtime_verdict(ctx, suite, ctx.progress, &test.kind).await {
        Some(v) => Some(with_cause(ctx, suite, &test.kind, v).await),
        None => None,
    };
    EarlyRun {
        test,
        on,
        verdict,
        took: t0.elapsed(),
    }
}

/// An early pass is the test's verdict; an early failure is not (the rest of the stack was still
/// coming up): the test runs again with the others once the stack is up.
pub(super) fn record_early(r: &mut Runner<'_>, ran: EarlyRun) {
    let EarlyRun {
        test,
        on,
        verdict,
        took,
    } = ran;
    match verdict {
        Some(v) if v.passed => {
            let started = Instant::now()
                .checked_sub(took)
                .unwrap_or_else(Instant::now);
            r.record(&test.kind, v, started);
            r.state.early_passes.push((test, on));
        }
        Some(v) => {
            let said = r
                .settings
                .masker
                .mask(&crate::text::snippet(&v.message, 200));
            r.progress.phase(&format!(
                "{} failed during bring-up ({said}); it runs again once the stack is up",
                test.name
            ));
        }
        None => {}
    }
}

/// The least time a passed `running`/`healthy` state is watched before the run may end. A run
/// with few checks would otherwise look again a moment after the pass, and an engine under load
/// reports a container that crashed 2 s after its start as up a moment longer (it passed the
/// 3 s settle window on a stale view): 5 s more is past any lag seen here.
const HOLD_AT_LEAST: Duration = Duration::from_secs(5);

/// How often the states are looked at while the hold window is still open.
const HOLD_POLL: Duration = Duration::from_millis(500);

/// A `running`/`healthy` promise holds for the run: each one that passed is looked at again once
/// the checks that only look are done (and before scenarios act on the stack on purpose), and
/// watched until it has held for [`HOLD_AT_LEAST`]; a service that exited, restarted or turned
/// unhealthy since fails its state test after all.
async fn states_held(r: &mut Runner<'_>, ctx: &Ctx<'_>) -> Result<(), Stop> {
    let mut watching = std::mem::take(&mut r.state.held);
    let mut said = false;
    let mut again = Vec::new();
    loop {
        let mut still = Vec::new();
        for held in watching {
            match held.still_holds(r.engine).await {
                Some(_) if removed_from_outside(ctx).await => return Err(Stop::RemovedFromOutside),
                Some(v) => again.extend(state_not_held(r, &held, v)),
                // Seen holding after its whole window: done.
                None if held.held_for() >= HOLD_AT_LEAST => {}
                None => still.push(held),
            }
        }
        watching = still;
        let Some(left) = watching
            .iter()
            .map(|h| HOLD_AT_LEAST.saturating_sub(h.held_for()))
            .max()
        else {
            return taken_back(r, ctx, again).await;
        };
        if !said {
            r.progress.detail(&format!(
                "watching {} state(s) hold for {:.1}s more",
                watching.len(),
                left.as_secs_f32()
            ));
            said = true;
        }
        tokio::time::sleep(left.min(HOLD_POLL)).await;
    }
}

/// A state that passed did not hold: its test fails, and every early pass that stood on it is
/// taken back, to be judged again (see [`taken_back`]), each with the state test that undid it.
fn state_not_held(
    r: &mut Runner<'_>,
    held: &state::Held,
    v: Verdict,
) -> Vec<(PlannedTest, String)> {
    let service = held.service().to_string();
    let kind = TestKind::Service {
        service: service.clone(),
        promise: ServicePromise::State,
    };
    r.record(&kind, v, Instant::now());
    let because = format!(
        "passed during bring-up, but `{service}` did not stay in its promised state afterwards (see {})",
        r.name_of(&kind).unwrap_or_default()
    );
    let (undone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut r.state.early_passes)
        .into_iter()
        .partition(|(_, on)| on.contains(&service));
    r.state.early_passes = kept;
    undone
        .into_iter()
        .map(|(t, _)| (t, because.clone()))
        .collect()
}

/// The early passes a state that did not hold took back run again on the stack as it is now,
/// as they would have had they not run early: a verdict does not depend on which window saw the
/// service go (its state's own wait, or the hold). A failure says which state undid the pass.
async fn taken_back(
    r: &mut Runner<'_>,
    ctx: &Ctx<'_>,
    again: Vec<(PlannedTest, String)>,
) -> Result<(), Stop> {
    let suite = &r.loaded.suite;
    for (t, because) in again {
        let t0 = Instant::now();
        let Some(v) = runtime_verdict(ctx, suite, r.progress, &t.kind).await else {
            continue;
        };
        let mut v = with_cause(ctx, suite, &t.kind, v).await;
        if !v.passed {
            v.message = format!("{because}; judged again: {}", v.message);
        }
        blamed(r, ctx, &t, v, t0).await?;
    }
    Ok(())
}

/// Skips the tests that touch a service that never started (no container, or one created and
/// never started): its failed state test, or what kept it from starting, is their one root cause,
/// reported once, instead of each test failing on its own after its retry budget. A service that
/// started and then failed is still looked at: those checks say what they see, with the cause.
async fn without_blocked(
    r: &mut Runner<'_>,
    ctx: &Ctx<'_>,
    suite: &Suite,
    tests: Vec<PlannedTest>,
) -> Vec<PlannedTest> {
    let mut runnable = Vec::new();
    for t in tests {
        let mut blocked = None;
        for service in touched(suite, &t.kind) {
            if !ctx.model.services.contains_key(&service) || started(ctx, &service).await {
                continue;
            }
            blocked = Some(
                r.not_up(&service)
                    .unwrap_or_else(|| format!("`{service}` never started")),
            );
            break;
        }
        match blocked {
            Some(reason) => r.skip(&t.kind, &reason),
            None => runnable.push(t),
        }
    }
    runnable
}

/// Whether a service's container exists and was started (whatever it is now).
async fn started(ctx: &Ctx<'_>, service: &str) -> bool {
    let Ok(id) = ctx.container(service) else {
        return false;
    };
    match ctx.engine.inspect(&id).await {
        Ok(info) => ObservedState::of(&info).was_started(),
        Err(_) => true, // cannot tell: let the check say what it sees
    }
}

/// The services whose running container a runtime test looks at.
fn touched(suite: &Suite, kind: &TestKind) -> Vec<String> {
    match kind {
        TestKind::Service { service, .. } => vec![service.clone()],
        TestKind::Check { index } => containers_of(&suite.checks[*index].kind),
        _ => Vec::new(),
    }
}

/// The services whose container a check kind uses; a one-off `run` starts its own.
fn containers_of(kind: &CheckKind) -> Vec<String> {
    match kind {
        CheckKind::Run(_) | CheckKind::Files(_) => Vec::new(),
        CheckKind::Steps(steps) => steps
            .iter()
            .flat_map(|s| match &s.action {
                Action::Check { kind, .. } => containers_of(kind),
                Action::Restart(s) | Action::Stop(s) | Action::Start(s) => vec![s.clone()],
                Action::Kill(k) => vec![k.service.clone()],
                Action::DownUp => Vec::new(),
            })
            .collect(),
        other => other.services(),
    }
}

/// A failed check names the trouble of the services it touches (restarting, exited, unhealthy)
/// as its cause, instead of leaving a reader with its symptom alone.
async fn with_cause(ctx: &Ctx<'_>, suite: &Suite, kind: &TestKind, mut v: Verdict) -> Verdict {
    if v.passed {
        return v;
    }
    for service in touched(suite, kind) {
        let Ok(id) = ctx.container(&service) else {
            continue;
        };
        if let Some(why) = state::trouble(ctx.engine, &service, &id).await {
            if !v.message.contains(&why) {
                v.message.push_str(&format!(" (cause: {why})"));
            }
        }
    }
    v
}

/// Says so when a failure coincides with the engine going away, and returns why it is gone.
async fn blame_engine(engine: &Engine, mut v: Verdict) -> (Verdict, Option<EngineError>) {
    if v.passed {
        return (v, None);
    }
    match engine.ping().await {
        Ok(()) => (v, None),
        Err(e) => {
            v.message
                .push_str(&format!(" (the Docker engine stopped answering: {e})"));
            (v, Some(e))
        }
    }
}

fn engine_gone(e: EngineError) -> Stop {
    Stop::Infra(format!(
        "the Docker engine stopped answering during the checks ({e})"
    ))
}

/// Runtime tests against the live stack. Those that only look (service promises, networks,
/// volumes, single checks) run concurrently, [`CHECK_JOBS`] at a time; scenarios, which change
/// the stack, run afterwards in order. An engine that stops answering (restarted, crashed) ends
/// the checks with that as the cause, instead of every later check failing on its own.
pub(super) async fn runtime_tests(r: &mut Runner<'_>, ctx: &Ctx<'_>) -> Result<(), Stop> {
    let containers = ctx
        .containers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    r.state.images = service_images(r.engine, &containers, ctx.model, &r.state.pulled).await;
    let result = runtime_tests_in_order(r, ctx).await;
    let mut probed = ctx.probed.lock().unwrap_or_else(|e| e.into_inner());
    r.state.probes.append(&mut probed);
    result
}

async fn runtime_tests_in_order(r: &mut Runner<'_>, ctx: &Ctx<'_>) -> Result<(), Stop> {
    let (loaded, engine, progress) = (r.loaded, r.engine, r.progress);
    let suite = &loaded.suite;
    // State tests were decided during bring-up.
    let runtime: Vec<PlannedTest> = r.tests_where(|k| match k {
        TestKind::Service { promise, .. } => *promise != ServicePromise::State,
        k => matches!(
            k,
            TestKind::Network { .. } | TestKind::Volume { .. } | TestKind::Check { .. }
        ),
    });
    let (scenarios, looks): (Vec<_>, Vec<_>) = runtime
        .into_iter()
        .filter(|t| !r.decided(&t.kind))
        .partition(|t| is_scenario(suite, &t.kind));
    r.halt()?;
    engine.ping().await.map_err(engine_gone)?;
    let looks = without_blocked(r, ctx, suite, looks).await;
    let mut verdicts = futures_util::stream::iter(looks)
        .map(|t| async move {
            let t0 = Instant::now();
            let v = match runtime_verdict(ctx, suite, progress, &t.kind).await {
                Some(v) => Some(with_cause(ctx, suite, &t.kind, v).await),
                None => None,
            };
            (t, v, t0)
        })
        .buffer_unordered(CHECK_JOBS);
    while let Some((t, v, t0)) = verdicts.next().await {
        if let Some(v) = v {
            blamed(r, ctx, &t, v, t0).await?;
        }
        if r.halt().is_err() {
            break; // --fail-fast: the checks still in flight are dropped
        }
    }
    drop(verdicts);
    if r.halt().is_ok() {
        states_held(r, ctx).await?;
    }
    for t in scenarios {
        r.halt()?;
        if without_blocked(r, ctx, suite, vec![t.clone()])
            .await
            .is_empty()
        {
            continue;
        }
        engine.ping().await.map_err(engine_gone)?;
        let t0 = Instant::now();
        if let Some(v) = runtime_verdict(ctx, suite, progress, &t.kind).await {
            blamed(r, ctx, &t, v, t0).await?;
        }
    }
    Ok(())
}

/// Records a runtime test's verdict, unless its failure coincides with the stack being removed
/// from outside the run (then it is no verdict, and the checks end); a failure while the engine
/// went away is recorded saying so, and ends the checks.
async fn blamed(
    r: &mut Runner<'_>,
    ctx: &Ctx<'_>,
    t: &PlannedTest,
    v: Verdict,
    t0: Instant,
) -> Result<(), Stop> {
    if !v.passed && removed_from_outside(ctx).await {
        return Err(Stop::RemovedFromOutside);
    }
    let (v, gone) = blame_engine(ctx.engine, v).await;
    r.record(&t.kind, v, t0);
    match gone {
        Some(e) => Err(engine_gone(e)),
        None => Ok(()),
    }
}

/// Whether the stack's containers are being removed by something other than the run.
pub(super) async fn removed_from_outside(ctx: &Ctx<'_>) -> bool {
    let Some(removals) = &ctx.removals else {
        return false;
    };
    removals.removed_any(ctx.engine, &ctx.container_ids()).await
}
