//! Promises about behaviour over time: `state` within a time, `logs` showing a line, one-off
//! `run`s, and `steps` scenarios with their actions (restart, stop, start, kill, down_up).

use std::time::{Duration, Instant};

use super::{state, Ctx, Verdict};
use crate::engine::ObservedState;
use crate::report::StepSpan;
use crate::suite::{
    signal_number, Action, DesiredState, Expect, KillAction, LogsCheck, Pattern, RunCheck,
    StateCheck, Step, ValueError,
};
use crate::text::snippet;

const DEFAULT_WITHIN: Duration = Duration::from_secs(30);
const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Reading a whole log for `logs.excludes` (a gigabyte takes about a minute here: the engine
/// decodes its json-file log as it sends it).
const LOG_READ_LIMIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(250);

/// Polls until the service's container is in `want`, at most `within`.
pub async fn check_state(ctx: &Ctx<'_>, p: &StateCheck) -> Verdict {
    let within = p.within.map(|d| d.0).unwrap_or(DEFAULT_WITHIN);
    let deadline = Instant::now() + within;
    let t0 = Instant::now();
    loop {
        let info = match ctx.container(&p.service) {
            Ok(id) => match ctx.engine.inspect(&id).await {
                Ok(info) => info,
                Err(e) => return Verdict::fail(e.to_string()),
            },
            Err(v) => return v,
        };
        let seen = ObservedState::of(&info);
        if seen.satisfies(p.is) {
            return Verdict::pass(format!(
                "`{}` is {} after {:.1}s",
                p.service,
                p.is,
                t0.elapsed().as_secs_f32()
            ));
        }
        if Instant::now() >= deadline {
            let note = crate::engine::stop_timeout_note(&info, ctx.engine.kind);
            return Verdict::fail(format!(
                "expected `{}` to be {} within {within:?}; it is {seen}{}",
                p.service,
                p.is,
                note.unwrap_or_default()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn check_logs(ctx: &Ctx<'_>, p: &LogsCheck) -> Verdict {
    let id = match ctx.container(&p.service) {
        Ok(id) => id,
        Err(v) => return v,
    };
    let mut passed = Vec::new();
    if let Some(contains) = &p.contains {
        let pattern = match Pattern::new(contains) {
            Ok(p) => p,
            Err(e) => return Verdict::fail(e),
        };
        let within = p.within.map(|d| d.0).unwrap_or(DEFAULT_WITHIN);
        match ctx
            .engine
            .wait_for_log(&id, within, move |line| pattern.is_match(line.as_bytes()))
            .await
        {
            Ok(line) => passed.push(format!("`{}` logged: {}", p.service, snippet(&line, 200))),
            // The detail (health checks, last 50 log lines) is added by the caller, as for every kind.
            Err(_) => {
                return Verdict::fail(format!(
                    "no log line of `{}` matched {:?} within {within:?}",
                    p.service, contains
                ))
            }
        }
    }
    if let Some(excludes) = &p.excludes {
        let pattern = match Pattern::new(excludes) {
            Ok(p) => p,
            Err(e) => return Verdict::fail(e),
        };
        let log = ctx
            .engine
            .scan_log(&id, LOG_READ_LIMIT, std::slice::from_ref(&pattern))
            .await;
        match log.as_ref().map(|log| log.found(&pattern)) {
            Ok(None) => passed.push(format!("no log line of `{}` matches {excludes}", p.service)),
            Ok(Some((n, line))) => {
                return Verdict::fail(format!(
                    "the log of `{}` must not match {excludes}, but line {n} does: {}",
                    p.service,
                    snippet(line, 200)
                ))
            }
            Err(e) => return Verdict::fail(e.to_string()),
        }
    }
    Verdict::pass(passed.join("; "))
}

pub async fn check_run(ctx: &Ctx<'_>, p: &RunCheck, expect: &Expect) -> Verdict {
    let Some(compose) = ctx.compose else {
        return Verdict::fail("`run` needs a compose stack (`stack.compose`)");
    };
    let started = std::time::SystemTime::now();
    let t0 = Instant::now();
    let limit = p.timeout.map(|d| d.0).unwrap_or(DEFAULT_RUN_TIMEOUT);
    let shown = format!("run {} {}", p.service, p.args.join(" "));
    let (code, stdout) = match compose
        .run_once(
            &p.service,
            &p.args,
            ctx.labels,
            limit,
            &super::expect::watching(expect).stdout,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Verdict::fail(format!("{shown}: {e}")),
    };
    let want = expect.exit.unwrap_or(0);
    if i64::from(code) != want {
        return Verdict::fail(format!("{shown}: expected exit {want}, got {code}"))
            .with_detail(format!("output:\n{}", stdout.text()));
    }
    // `run` keeps stdout only (validation refuses stderr keys for it).
    let judged = [
        super::expect::within("the command", expect.within.map(|d| d.0), t0.elapsed()),
        super::expect::output_ok(expect, &stdout, &Default::default()),
    ];
    if let Some(why) = judged.into_iter().find_map(Result::err) {
        return Verdict::fail(format!("{shown}: {why}"));
    }
    if let Some(globs) = &expect.files {
        if let Err(v) = fresh_files(ctx, globs, started) {
            return v;
        }
    }
    Verdict::pass(format!("{shown}: exit {code}"))
}

/// Each glob matches at least one host file written since `since`.
fn fresh_files(
    ctx: &Ctx<'_>,
    globs: &[String],
    since: std::time::SystemTime,
) -> Result<(), Verdict> {
    // Coarse file-system clocks: allow a second of slack.
    let since = since - Duration::from_secs(1);
    for g in globs {
        let pattern = ctx.host_path(g);
        let pattern = pattern.to_string_lossy();
        let paths =
            glob::glob(&pattern).map_err(|e| Verdict::fail(format!("invalid glob `{g}`: {e}")))?;
        let mut stale = 0;
        let mut fresh = false;
        for p in paths.flatten() {
            match std::fs::metadata(&p).and_then(|m| m.modified()) {
                Ok(t) if t >= since => fresh = true,
                _ => stale += 1,
            }
        }
        if !fresh {
            return Err(Verdict::fail(format!(
                "no file matching `{pattern}` was written by the run ({stale} older match{})",
                if stale == 1 { "" } else { "es" }
            )));
        }
    }
    Ok(())
}

/// Runs a scenario's steps in order, stopping at the first that fails; the verdict carries each
/// step's time (the report draws them as bars of their own).
pub async fn check_steps(ctx: &Ctx<'_>, steps: &[Step]) -> Verdict {
    let t0 = Instant::now();
    let mut done = Vec::new();
    let mut spans = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let what = step.action.describe();
        let started = t0.elapsed();
        let v = run_step(ctx, &step.action).await;
        spans.push(StepSpan {
            step: what.clone(),
            offset_ms: started.as_millis() as u64,
            duration_ms: (t0.elapsed() - started).as_millis() as u64,
            passed: v.passed,
        });
        if !v.passed {
            let msg = format!("step {} ({what}) failed: {}", i + 1, v.message);
            return Verdict {
                message: msg,
                steps: spans,
                ..v
            };
        }
        // What a `down_up` skipped is part of how the verdict was earned: it is said.
        match step.action {
            Action::DownUp => done.push(format!("{what} ({})", v.message)),
            _ => done.push(what),
        }
    }
    Verdict {
        steps: spans,
        ..Verdict::pass(format!("{} steps: {}", steps.len(), done.join(" → ")))
    }
}

async fn run_step(ctx: &Ctx<'_>, action: &Action) -> Verdict {
    match action {
        Action::Check {
            kind,
            expect,
            retry,
        } => Box::pin(super::check_kind(ctx, kind, expect, retry.as_ref())).await,
        Action::Restart(s) => {
            on_container(ctx, s, |id| async move { ctx.engine.restart(&id).await }).await
        }
        Action::Stop(s) => {
            on_container(ctx, s, |id| async move { ctx.engine.stop(&id).await }).await
        }
        Action::Start(s) => {
            on_container(ctx, s, |id| async move { ctx.engine.start(&id).await }).await
        }
        Action::Kill(k) => kill(ctx, k).await,
        Action::DownUp => down_up(ctx).await,
    }
}

async fn on_container<F, Fut>(ctx: &Ctx<'_>, service: &str, act: F) -> Verdict
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::engine::EngineError>>,
{
    match ctx.container(service) {
        Ok(id) => match act(id).await {
            Ok(()) => Verdict::pass("done"),
            Err(e) => Verdict::fail(e.to_string()),
        },
        Err(v) => v,
    }
}

/// Signals the container's main process from the host, as a crash would: unlike `docker kill`,
/// this does not count as a manual stop, so the restart policy applies.
async fn kill(ctx: &Ctx<'_>, k: &KillAction) -> Verdict {
    let id = match ctx.running(&k.service).await {
        Ok(id) => id,
        Err(v) => return v,
    };
    let pid = match ctx.engine.inspect(&id).await {
        Ok(info) => info.state.and_then(|s| s.pid).unwrap_or(0),
        Err(e) => return Verdict::fail(e.to_string()),
    };
    let sig = match signal_number(&k.signal).and_then(|n| {
        nix::sys::signal::Signal::try_from(n).map_err(|_| ValueError::SignalNumber(n))
    }) {
        Ok(s) => s,
        Err(e) => return Verdict::fail(e),
    };
    if pid <= 0 {
        return Verdict::fail(format!("`{}` has no main process to signal", k.service));
    }
    if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig) {
        return Verdict::fail(format!(
            "cannot signal pid {pid} of `{}`: {e} (the harness must run on the engine's host with permission to signal its processes)",
            k.service
        ));
    }
    // Later steps must see the signal's effect, not the state from before it.
    if sig == nix::sys::signal::Signal::SIGKILL {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = ctx
                .engine
                .inspect(&id)
                .await
                .ok()
                .and_then(|i| i.state)
                .unwrap_or_default();
            if now.pid != Some(pid) || now.running != Some(true) {
                break;
            }
            if Instant::now() >= deadline {
                return Verdict::fail(format!(
                    "`{}` still runs pid {pid} 10 s after {sig}",
                    k.service
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Verdict::pass(format!("sent {sig} to pid {pid}"))
}

async fn down_up(ctx: &Ctx<'_>) -> Verdict {
    let Some(compose) = ctx.compose else {
        return Verdict::fail("`down_up` needs a compose stack");
    };
    // Named volumes survive `down`; anonymous ones would be orphaned without a label, so they go.
    let ids = ctx.container_ids();
    let mut anonymous = Vec::new();
    // Services stop within their own grace periods, the longest bounding the whole `down`.
    let mut limit = Duration::from_secs(120);
    for id in &ids {
        anonymous.extend(ctx.engine.anonymous_volumes(id).await);
        limit = limit.max(ctx.engine.stop_bound(id).await + Duration::from_secs(60));
    }
    // The containers and networks `down` removes are the run's own doing.
    let _own = ctx.removals.as_ref().map(|r| r.own());
    let idle = ctx
        .engine
        .skip_idle_grace(&compose.project, ctx.model.dependencies());
    let down = compose.down_keep_volumes(limit).await;
    let skipped = idle.finish();
    if let Err(e) = down {
        return Verdict::fail(format!("down: {e}"));
    }
    for v in &anonymous {
        let _ = ctx.engine.remove_volume(v).await;
    }
    let services: Vec<String> = ctx
        .containers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    let wants: Vec<(String, Option<DesiredState>)> = ctx
        .loaded
        .suite
        .services
        .iter()
        .map(|(n, s)| (n.clone(), s.state))
        .filter(|(n, _)| services.contains(n))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let up = compose.up(&services, Duration::from_secs(300), |_| {});
    let wait = state::WaitFor {
        project: &compose.project,
        wants: &wants,
        deadline,
        stop_at_first_failure: false,
    };
    let report = state::bring_up_and_wait(ctx.engine, &wait, up, |_| {}, |_, _, _| {}).await;
    *ctx.containers.lock().unwrap_or_else(|e| e.into_inner()) = report.containers.clone();
    let failed: Vec<String> = report
        .verdicts
        .iter()
        .filter(|(_, v)| !v.passed)
        .map(|(s, v)| format!("{s}: {}", v.message))
        .collect();
    match (&report.up_error, failed.is_empty()) {
        (Some(e), _) => Verdict::fail(format!("up: {}", snippet(e, 300))),
        (None, true) if skipped.is_empty() => {
            Verdict::pass(format!("{} services back", services.len()))
        }
        (None, true) => Verdict::pass(format!(
            "{} services back; killed at once, not after an idle grace (PID 1 drops its stop signal; no shutdown was running): {}",
            services.len(),
            skipped.join(", ")
        )),
        (None, false) => Verdict::fail(failed.join("; ")),
    }
}
