//! The compose path of a run, in its four steps: the model as compose resolves it (`config`), the
//! images (`build`), bring-up with each service's state judged as it is reached (`up`), then the
//! runtime checks against the live stack.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::images::{build, builder_of};
use super::runner::{Runner, Stop};
use super::runtime::{new_ctx, runtime_tests};
use crate::checks::{self, state, Verdict};
use crate::engine::{Compose, ComposeModel, ObservedState, CONFIG_TIMEOUT};
use crate::plan::{PlannedTest, RunIdentity, SubnetMoves, TestKind};

/// A compose stack through config, build, up and checks.
pub(super) async fn compose_phase(
    r: &mut Runner<'_>,
    compose: &Compose,
    id: &RunIdentity,
    workdir: &Path,
    deadline: Instant,
) -> Result<(), Stop> {
    let model = config(r, compose).await?;
    if let Some(kept) = r.settings.reusing.clone() {
        return reuse_phase(r, compose, id, workdir, model, &kept, deadline).await;
    }
    let override_file = compose.override_file.clone().unwrap_or_default();
    let ephemeral = r.settings.ephemeral;
    let fast = r.settings.fast_health.then_some(r.loaded.dir.as_path());
    let write_override = |moves: &SubnetMoves| {
        std::fs::write(
            &override_file,
            id.label_override(&model, ephemeral, moves, fast),
        )
        .map_err(|e| Stop::Infra(format!("cannot write {}: {e}", override_file.display())))
    };
    write_override(&SubnetMoves::default())?;
    // `--filter` may select only tests that need nothing running.
    let live = r.settings.needs.as_ref().is_none_or(|n| n.live);
    let selected = if live {
        services_to_start(r, &model)
    } else {
        Vec::new()
    };
    let touched = touched(r, &model, &selected);
    let deadline = deadline + super::claims::hold(r, &touched, &id.labels, deadline).await?;
    let t0 = Instant::now();
    build(r, compose, id, &model, &selected, deadline).await?;
    r.phase_done(crate::report::Phase::Build, t0);
    if !live {
        return Ok(());
    }
    let moves = super::subnets::settle(r, &model, &id.labels, deadline).await?;
    if !moves.is_empty() {
        write_override(&moves)?;
    }
    let ours = super::subnets::run_subnets(&model, &moves);
    r.state.moves = moves.clone();
    let live_model = if r.settings.ephemeral {
        id.ephemeral_names(&model, &moves)
    } else {
        model.clone()
    };
    let ctx = new_ctx(
        r,
        &live_model,
        Some(compose),
        id,
        workdir,
        Default::default(),
    );
    // `up` proves states only: nothing else runs, early or late.
    let early = (!r.settings.up_only).then_some(&ctx);
    let start = (selected.as_slice(), ours.as_slice());
    let t0 = Instant::now();
    let containers = judge_states(r, compose, id, &model, Some(start), early, deadline).await?;
    r.phase_done(crate::report::Phase::BringUp, t0);
    if r.settings.up_only {
        return Ok(());
    }
    *ctx.containers.lock().unwrap_or_else(|e| e.into_inner()) = containers;
    let t0 = Instant::now();
    let checked = runtime_tests(r, &ctx).await;
    r.phase_done(crate::report::Phase::Checks, t0);
    checked
}

/// `--reuse`: the stack a kept run left, judged as it is now (its states, then the checks); no
/// build, no bring-up. The kept run's moves and names say where its parts are.
async fn reuse_phase(
    r: &mut Runner<'_>,
    compose: &Compose,
    id: &RunIdentity,
    workdir: &Path,
    model: ComposeModel,
    kept: &super::KeptStack,
    deadline: Instant,
) -> Result<(), Stop> {
    let live_model = if kept.ephemeral {
        id.ephemeral_names(&model, &kept.moves)
    } else {
        model.clone()
    };
    let ctx = new_ctx(
        r,
        &live_model,
        Some(compose),
        id,
        workdir,
        Default::default(),
    );
    let containers = judge_states(r, compose, id, &model, None, Some(&ctx), deadline).await?;
    *ctx.containers.lock().unwrap_or_else(|e| e.into_inner()) = containers;
    runtime_tests(r, &ctx).await
}

/// Step 1: the compose model, as compose itself resolves it; the `stack::config` and policy tests.
async fn config(r: &mut Runner<'_>, compose: &Compose) -> Result<ComposeModel, Stop> {
    let t0 = Instant::now();
    let model = match compose.config(CONFIG_TIMEOUT).await {
        Ok(m) => m,
        Err(e) => {
            r.record(
                &TestKind::StackConfig,
                Verdict::fail("docker compose config failed").with_detail(e.to_string()),
                t0,
            );
            return Err(Stop::NotRun("the compose files do not resolve".into()));
        }
    };
    crate::plan::add_model_secrets(&r.settings.masker, &model, &r.loaded.suite.stack.secrets);
    // Said once: as a `no_default_credentials` finding when the suite has that rule, else here.
    let policy = &r.loaded.suite.policy;
    if policy.level(crate::suite::Rule::NoDefaultCredentials) == crate::suite::Level::Off {
        for finding in checks::policy::unmaskable(&r.settings.masker) {
            r.progress.detail(&format!("warning: {finding}"));
        }
    }
    let v = checks::check_config(&r.loaded.suite, &model, "compose");
    r.record(&TestKind::StackConfig, v, t0);
    policy_tests(r, compose, &model).await;
    r.halt()?;
    Ok(model)
}

/// The services `up` starts: the suite's `stack.services` (else every service outside a profile
/// or in one of `stack.profiles`),
/// narrowed by `--filter` to the services the selected tests name, with what they depend on.
fn services_to_start(r: &Runner<'_>, model: &ComposeModel) -> Vec<String> {
    let selected = crate::plan::services_up(&r.loaded.suite, model);
    match r.settings.needs.as_ref().map(|n| &n.services) {
        Some(Some(named)) => model
            .with_dependencies(named.iter().cloned())
            .into_iter()
            .collect(),
        _ => selected,
    }
}

/// The model narrowed to what this run starts and builds (`selected`, what they depend on, the
/// builders of the images they run, the services of the suite's `images`): a run of two services
/// of a stack claims their ports and builds, not the rest of the stack's.
fn touched(r: &Runner<'_>, model: &ComposeModel, selected: &[String]) -> ComposeModel {
    let mut keep = model.with_dependencies(selected.iter().cloned());
    let images = keep.iter().filter_map(|s| model.services[s].image.clone());
    let builders: Vec<String> = images.filter_map(|i| builder_of(model, &i)).collect();
    keep.extend(builders);
    keep.extend(
        r.loaded
            .suite
            .images
            .values()
            .filter_map(|i| i.service.clone()),
    );
    let mut out = model.clone();
    out.services.retain(|name, _| keep.contains(name));
    out
}

/// Step 3: brings `start` (services and the subnets they hold) up, or, without it, only looks at a
/// stack that is already up (`--reuse`); judges each promised service's state ourselves as it is
/// reached (`up --wait` cannot judge one-shots), and, given a `ctx`, starts each runtime test
/// whose services are ready (`early`). Returns the container of each service.
async fn judge_states(
    r: &mut Runner<'_>,
    compose: &Compose,
    id: &RunIdentity,
    model: &ComposeModel,
    start: Option<(&[String], &[ipnet::Ipv4Net])>,
    ctx: Option<&crate::checks::Ctx<'_>>,
    deadline: Instant,
) -> Result<BTreeMap<String, String>, Stop> {
    let all;
    let (selected, subnets): (&[String], &[ipnet::Ipv4Net]) = match start {
        Some(s) => s,
        None => {
            all = services_to_start(r, model);
            (&all, &[])
        }
    };
    let starting = start.is_some();
    let loaded = r.loaded;
    let wants = promised_states(r, model, selected);
    r.progress.phase(&starting_line(starting, selected, id));
    let (progress, engine) = (r.progress, r.engine);
    let up = async {
        match starting {
            true => {
                super::subnets::up(engine, progress, compose, id, selected, subnets, deadline).await
            }
            false => Ok(()),
        }
    };
    let wait = state::WaitFor {
        project: &id.project,
        wants: &wants,
        deadline,
        stop_at_first_failure: r.settings.fail_fast,
    };
    let t0 = Instant::now();
    let mut unstarted = Vec::new();
    // Each decision comes out of the waiter as it is reached, so that the tests it makes ready
    // start while the waiter goes on watching the others.
    let (decided, mut decisions) = tokio::sync::mpsc::unbounded_channel();
    let waiting = state::bring_up_and_wait(
        r.engine,
        &wait,
        up,
        |l| progress.detail(l),
        move |service, verdict, infos| {
            let _ = decided.send((service.to_string(), verdict.clone(), infos.to_vec()));
        },
    );
    tokio::pin!(waiting);
    let mut early = ctx.map(|_| super::early::Early::new(&loaded.suite, model, &r.settings.tests));
    let mut running = futures_util::stream::FuturesUnordered::new();
    let images = match starting {
        true => images_left(r),
        false => Vec::new(),
    };
    let mut image_verdicts = std::pin::pin!(super::images::image_verdicts(
        engine, loaded, id, model, images
    ));
    let mut report = None;
    loop {
        tokio::select! {
            Some((t, v, t0)) = futures_util::StreamExt::next(&mut image_verdicts) => {
                r.record(&t.kind, v, t0);
            }
            done = &mut waiting, if report.is_none() => report = Some(done),
            Some((service, verdict, infos)) = decisions.recv() => {
                let passed = decide(r, model, &wants, &service, verdict, &infos, &mut unstarted, t0);
                if let (Some(ctx), Some(early), true) = (ctx, early.as_mut(), passed) {
                    if let Some(info) = infos.first() {
                        ctx.set_container(&service, info.id.clone().unwrap_or_default());
                    }
                    for (t, on) in early.ready(&service) {
                        running.push(super::runtime::run_early(ctx, t, on));
                    }
                }
            }
            Some(ran) = futures_util::StreamExt::next(&mut running), if !running.is_empty() => {
                super::runtime::record_early(r, ran);
            }
            else => break,
        }
    }
    let report = report.expect("the waiter ended before its channel closed");
    record_unstarted(r, model, unstarted, t0);
    if let Some(e) = &report.up_error {
        r.progress.phase(&format!(
            "docker compose up failed: {}",
            crate::text::snippet(e, 300)
        ));
    }
    r.halt()?;
    Ok(report.containers)
}

/// What the bring-up phase is doing, in words.
fn starting_line(starting: bool, selected: &[String], id: &RunIdentity) -> String {
    match starting {
        true => format!("starting {} services", selected.len()),
        false => format!(
            "looking at the {} services of {}",
            selected.len(),
            id.project
        ),
    }
}

/// The services whose state the suite promises and this run starts. A promise about a service the
/// compose files do not define, or one behind a profile the suite does not enable, fails here,
/// saying why.
fn promised_states(
    r: &mut Runner<'_>,
    model: &ComposeModel,
    selected: &[String],
) -> Vec<(String, Option<crate::suite::DesiredState>)> {
    let loaded = r.loaded;
    let (wants, undefined): (Vec<_>, Vec<_>) = loaded
        .suite
        .services
        .iter()
        .map(|(name, spec)| (name.clone(), spec.state))
        .filter(|(name, _)| r.settings.needs.is_none() || selected.contains(name))
        .partition(|(name, _)| model.services.contains_key(name));
    for (service, _) in undefined {
        let known: Vec<&String> = model.services.keys().collect();
        let v = Verdict::fail(format!(
            "service `{service}` is not defined in the compose files (services: {known:?})"
        ));
        r.record(&TestKind::state_of(&service), v, Instant::now());
    }
    let (wants, off): (Vec<_>, Vec<_>) = wants
        .into_iter()
        .partition(|(name, _)| selected.contains(name) || model.services[name].profiles.is_empty());
    for (service, _) in off {
        let v = Verdict::fail(format!(
            "`{service}` was not started: it is behind profile {:?}, which `stack.profiles` {:?} does not enable",
            model.services[&service].profiles, loaded.suite.stack.profiles
        ));
        r.record(&TestKind::state_of(&service), v, Instant::now());
    }
    wants
}

/// The services that never started, decided once every service is: skipped when a dependency
/// is down (that dependency's failure is the one root cause), else failed with their verdict.
fn record_unstarted(
    r: &mut Runner<'_>,
    model: &ComposeModel,
    unstarted: Vec<(String, Verdict)>,
    t0: Instant,
) {
    for (service, verdict) in unstarted {
        let dependency_down = model
            .services
            .get(&service)
            .and_then(|m| m.depends_on.keys().find_map(|d| r.not_up(d)));
        match dependency_down {
            Some(why) => r.skip(&TestKind::state_of(&service), &why),
            None => r.record(&TestKind::state_of(&service), verdict, t0),
        }
    }
}

/// The image tests that build left for now: static, they only need the images, so they run
/// during the bring-up wait.
fn images_left(r: &Runner<'_>) -> Vec<PlannedTest> {
    r.tests_where(|k| matches!(k, TestKind::Image { .. }))
        .into_iter()
        .filter(|t| !r.decided(&t.kind))
        .collect()
}

/// Records one service's state verdict as the waiter reached it (with what its container says
/// about stand-ins and the stored healthcheck); returns whether it passed. A service that never
/// started is decided once every service is, since a dependency that failed first is the one root
/// cause.
#[allow(clippy::too_many_arguments)]
fn decide(
    r: &mut Runner<'_>,
    model: &ComposeModel,
    wants: &[(String, Option<crate::suite::DesiredState>)],
    service: &str,
    mut verdict: Verdict,
    infos: &[bollard::models::ContainerInspectResponse],
    unstarted: &mut Vec<(String, Verdict)>,
    t0: Instant,
) -> bool {
    if let Some(info) = infos.first() {
        let built = model
            .services
            .get(service)
            .is_some_and(|m| m.build.is_some());
        verdict.message.push_str(&standin_note(info, built));
        let written = model
            .services
            .get(service)
            .and_then(|m| m.healthcheck.as_ref());
        if let Some(note) = written
            .filter(|_| !verdict.passed)
            .and_then(|h| crate::engine::stored_healthcheck_note(&h.test, info, r.engine.kind))
        {
            verdict.message.push_str(&note);
        }
        let want = wants
            .iter()
            .find(|(s, _)| s == service)
            .and_then(|(_, w)| *w);
        if verdict.passed {
            r.state.held.extend(state::Held::new(service, want, infos));
        }
    }
    let never_started = infos
        .first()
        .is_none_or(|i| !ObservedState::of(i).was_started());
    if !verdict.passed && never_started {
        unstarted.push((service.to_string(), verdict));
        return false;
    }
    let passed = verdict.passed;
    r.record(&TestKind::state_of(service), verdict, t0);
    passed
}

/// ` [stand-in: …]` when the service runs one of our offline stand-ins, so nobody mistakes it
/// for the upstream image. Images built from a stand-in inherit its label: for them, the note
/// names the base.
fn standin_note(info: &bollard::models::ContainerInspectResponse, built: bool) -> String {
    let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
    match labels.and_then(|l| l.get(crate::engine::LABEL_STANDIN)) {
        Some(what) if !what.is_empty() && built => format!(" [built on a stand-in base: {what}]"),
        Some(what) if !what.is_empty() => format!(" [stand-in: {what}]"),
        _ => String::new(),
    }
}

/// The static rules, on the interpolated model and on the files as written.
async fn policy_tests(r: &mut Runner<'_>, compose: &Compose, model: &ComposeModel) {
    let active = r.loaded.suite.policy.active();
    if active.is_empty() {
        return;
    }
    let t0 = Instant::now();
    let raw = compose.config_raw(CONFIG_TIMEOUT).await;
    for (rule, level) in active {
        let v = match &raw {
            Ok(raw) => {
                let models = (model, raw);
                let (suite, masker) = (&r.loaded.suite, &r.settings.masker);
                checks::policy::evaluate(rule, level, suite, models, masker, &r.loaded.dir)
            }
            Err(e) => Verdict::fail(format!("cannot read the compose files as written: {e}")),
        };
        r.record(&TestKind::Policy { rule }, v, t0);
    }
}
