//! The compose path of a run, in its four steps: the model as compose resolves it (`config`), the
//! images (`build`), bring-up with each service's state judged as it is reached (`up`), then the
//! runtime checks against the live stack.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::images::{
    build_own_images, built_verdict, image_tests, obtain_images, prebuilt, Needed,
};
use super::runner::{Runner, Stop};
use super::runtime::{new_ctx, runtime_tests};
use crate::checks::{self, state, Verdict};
use crate::engine::{Compose, ComposeError, ComposeModel, EngineKind, CONFIG_TIMEOUT, LABEL_RUN};
use crate::plan::{Needs, PlannedTest, RunIdentity, ServicePromise, SubnetMoves, TestKind};
use crate::suite::PullPolicy;

/// A compose stack through config, build, up and checks.
pub(super) async fn compose_phase(
    r: &mut Runner<'_>,
    compose: &Compose,
    id: &RunIdentity,
    workdir: &Path,
    deadline: Instant,
) -> Result<(), Stop> {
    let model = config(r, compose).await?;
    if let Some(kept) = r.reusing.clone() {
        return reuse_phase(r, compose, id, workdir, model, &kept, deadline).await;
    }
    let override_file = compose.override_file.clone().unwrap_or_default();
    let ephemeral = r.ephemeral;
    let fast = r.fast_health.then_some(r.loaded.dir.as_path());
    let write_override = |moves: &SubnetMoves| {
        std::fs::write(
            &override_file,
            id.label_override(&model, ephemeral, moves, fast),
        )
        .map_err(|e| Stop::Infra(format!("cannot write {}: {e}", override_file.display())))
    };
    write_override(&SubnetMoves::default())?;
    // `--filter` may select only tests that need nothing running.
    let live = r.needs.as_ref().is_none_or(|n| n.live);
    let selected = if live {
        services_to_start(r, &model)
    } else {
        Vec::new()
    };
    let touched = touched(r, &model, &selected);
    let deadline = deadline + super::claims::hold(r, &touched, &id.labels, deadline).await?;
    build(r, compose, id, &model, &selected, deadline).await?;
    if !live {
        return Ok(());
    }
    let moves = super::subnets::settle(r, &model, &id.labels, deadline).await?;
    if !moves.is_empty() {
        write_override(&moves)?;
    }
    let ours = super::subnets::run_subnets(&model, &moves);
    r.moves = moves.clone();
    let live_model = if r.ephemeral {
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
    let early = (!r.up_only).then_some(&ctx);
    let start = (selected.as_slice(), ours.as_slice());
    let containers = judge_states(r, compose, id, &model, Some(start), early, deadline).await?;
    if r.up_only {
        return Ok(());
    }
    *ctx.containers.lock().unwrap_or_else(|e| e.into_inner()) = containers;
    runtime_tests(r, &ctx).await
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
    r.masker.add_model(&model, &r.loaded.suite.stack.secrets);
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
    let suite = &r.loaded.suite;
    let selected: Vec<String> = if suite.stack.services.is_empty() {
        model
            .services
            .iter()
            .filter(|(_, m)| {
                m.profiles.is_empty() || m.profiles.iter().any(|p| suite.stack.profiles.contains(p))
            })
            .map(|(k, _)| k.clone())
            .collect()
    } else {
        suite.stack.services.clone()
    };
    let selected: Vec<String> = selected
        .into_iter()
        .filter(|s| model.services.contains_key(s))
        .collect();
    match r.needs.as_ref().map(|n| &n.services) {
        Some(Some(named)) => with_dependencies(model, named.iter().cloned()),
        _ => selected,
    }
}

/// The model narrowed to what this run starts and builds (`selected`, what they depend on, the
/// builders of the images they run, the services of the suite's `images`): a run of two services
/// of a stack claims their ports and builds, not the rest of the stack's.
fn touched(r: &Runner<'_>, model: &ComposeModel, selected: &[String]) -> ComposeModel {
    let mut keep = with_dependencies(model, selected.iter().cloned());
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

/// Step 2: images that cannot be built must already exist; then build what compose builds, the
/// way compose builds it, and the suite's own images.
async fn build(
    r: &mut Runner<'_>,
    compose: &Compose,
    id: &RunIdentity,
    model: &ComposeModel,
    selected: &[String],
    deadline: Instant,
) -> Result<(), Stop> {
    let suite = &r.loaded.suite;
    let mut to_build: Vec<String> = selected
        .iter()
        .filter(|s| model.services[*s].build.is_some())
        .cloned()
        .collect();
    // A service that runs the image another service builds (`image: app` beside `build:` +
    // `image: app`) needs that build, not an image from elsewhere: compose builds it once for both.
    let mut needed = Vec::new();
    let mut to_pull = Vec::new();
    for s in selected
        .iter()
        .filter(|s| model.services[*s].build.is_none())
    {
        let image = model.services[s].image.clone().unwrap_or_default();
        match builder_of(model, &image) {
            Some(b) if !to_build.contains(&b) => to_build.push(b),
            Some(_) => {}
            None => {
                to_pull.push(s.as_str());
                let own = model.services[s].pull_policy.as_deref();
                needed.push(Needed {
                    image,
                    by: format!("service `{s}`"),
                    policy: own.and_then(PullPolicy::of_service).unwrap_or(r.pull),
                });
            }
        }
    }
    needed.extend(prebuilt(r));
    let how = format!(
        "Pull them yourself (`docker compose pull {}`) or build them",
        to_pull.join(" ")
    );
    obtain_images(r, &needed, &how, deadline).await?;

    for (tag, spec) in &suite.images {
        if !Needs::wants_image(r.needs.as_ref(), tag) {
            continue;
        }
        if let Some(s) = &spec.service {
            if model.services.get(s).is_some_and(|m| m.build.is_some()) && !to_build.contains(s) {
                to_build.push(s.clone());
            }
        }
    }
    if !to_build.is_empty() {
        let t0 = Instant::now();
        r.progress
            .phase(&format!("building {}", to_build.join(", ")));
        let progress = r.progress;
        let built = compose
            .build(
                &to_build,
                r.engine.kind == EngineKind::Podman,
                deadline.saturating_duration_since(Instant::now()),
                |l| progress.detail(l),
            )
            .await;
        let compose_built: Vec<PlannedTest> = r.tests_where(|k| match k {
            TestKind::Build { image } => {
                suite.images.get(image).is_some_and(|i| i.service.is_some())
            }
            _ => false,
        });
        let reported = !compose_built.is_empty();
        for t in compose_built {
            let TestKind::Build { image } = &t.kind else {
                continue;
            };
            let v = match &built {
                Ok(()) => built_verdict(r.engine, image, t0).await,
                Err(e) => {
                    Verdict::fail("docker compose build failed").with_detail(e.tail().to_string())
                }
            };
            r.record(&t.kind, v, t0);
        }
        if let Err(e) = &built {
            // The root cause must be a failure a reader sees: with no `images:` test for what did
            // not build, the services that needed the build fail their state with its log.
            if !reported {
                for s in &to_build {
                    let v = Verdict::fail(format!(
                        "`{s}` cannot start: its image did not build (`docker compose build` failed)"
                    ))
                    .with_detail(e.tail().to_string());
                    r.record(&state_test(s), v, t0);
                }
            }
            return Err(Stop::NotRun("the build failed".into()));
        }
    }
    r.halt()?;
    build_own_images(r, id, deadline).await;
    // With a stack to bring up, the image tests run during its bring-up wait (`judge_states`);
    // `--fail-fast` keeps them first, so that a failed one starts nothing.
    if selected.is_empty() || r.fail_fast {
        image_tests(r, id).await;
    }
    r.halt()
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
    let (wants, undefined): (Vec<_>, Vec<_>) = loaded
        .suite
        .services
        .iter()
        .map(|(name, spec)| (name.clone(), spec.state))
        .filter(|(name, _)| r.needs.is_none() || selected.contains(name))
        .partition(|(name, _)| model.services.contains_key(name));
    for (service, _) in undefined {
        let known: Vec<&String> = model.services.keys().collect();
        let v = Verdict::fail(format!(
            "service `{service}` is not defined in the compose files (services: {known:?})"
        ));
        r.record(&state_test(&service), v, Instant::now());
    }
    // A promised service behind a profile the suite does not enable never starts: say why.
    let (wants, off): (Vec<_>, Vec<_>) = wants
        .into_iter()
        .partition(|(name, _)| selected.contains(name) || model.services[name].profiles.is_empty());
    for (service, _) in off {
        let v = Verdict::fail(format!(
            "`{service}` was not started: it is behind profile {:?}, which `stack.profiles` {:?} does not enable",
            model.services[&service].profiles, loaded.suite.stack.profiles
        ));
        r.record(&state_test(&service), v, Instant::now());
    }
    r.progress.phase(&match starting {
        true => format!("starting {} services", selected.len()),
        false => format!(
            "looking at the {} services of {}",
            selected.len(),
            id.project
        ),
    });
    let (progress, engine) = (r.progress, r.engine);
    let own = id.labels.get(LABEL_RUN);
    // The subnets were held until now; released, one may still be taken before compose creates
    // its network (the engine then creates no container): wait for it and start again.
    let up = async {
        if !starting {
            return Ok(());
        }
        if let Err(e) = engine.release_subnets(&id.run_id).await {
            progress.detail(&format!("could not release held subnets: {e}"));
        }
        let mut tries = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match compose
                .up(selected, remaining, |l| progress.detail(l))
                .await
            {
                Err(ComposeError::Failed { what, code, tail })
                    if tries < 3 && tail.contains("Pool overlaps with other one") =>
                {
                    tries += 1;
                    progress.phase("a network took a subnet of the stack as it started");
                    if let Err(why) =
                        super::subnets::wait_clear(engine, progress, subnets, own, deadline).await
                    {
                        let tail = format!("{tail}\n{why}");
                        return Err(ComposeError::Failed { what, code, tail });
                    }
                }
                other => return other,
            }
        }
    };
    let wait = state::WaitFor {
        project: &id.project,
        wants: &wants,
        deadline,
        stop_at_first_failure: r.fail_fast,
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
    let mut early = ctx.map(|_| super::early::Early::new(&loaded.suite, model, &r.tests));
    let mut running = futures_util::stream::FuturesUnordered::new();
    // The image tests that build left for now: static, they only need the images.
    let images: Vec<PlannedTest> = match starting {
        true => r.tests_where(|k| matches!(k, TestKind::Image { .. })),
        false => Vec::new(),
    };
    let images: Vec<PlannedTest> = images.into_iter().filter(|t| !r.decided(&t.kind)).collect();
    let mut image_verdicts =
        std::pin::pin!(super::images::image_verdicts(engine, loaded, id, images));
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
    for (service, verdict) in unstarted {
        let dependency_down = model
            .services
            .get(&service)
            .and_then(|m| m.depends_on.keys().find_map(|d| r.not_up(d)));
        match dependency_down {
            Some(why) => r.skip(&state_test(&service), &why),
            None => r.record(&state_test(&service), verdict, t0),
        }
    }
    if let Some(e) = &report.up_error {
        r.progress.phase(&format!(
            "docker compose up failed: {}",
            crate::report::snippet(e, 300)
        ));
    }
    r.halt()?;
    Ok(report.containers)
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
            r.held.extend(state::Held::new(service, want, infos));
        }
    }
    let never_started = infos.first().is_none_or(|i| state::observe(i) == "created");
    if !verdict.passed && never_started {
        unstarted.push((service.to_string(), verdict));
        return false;
    }
    let passed = verdict.passed;
    r.record(&state_test(service), verdict, t0);
    passed
}

fn state_test(service: &str) -> TestKind {
    TestKind::Service {
        service: service.to_string(),
        promise: ServicePromise::State,
    }
}

/// The service of the model that builds `image` (has `build:` and names that `image:`).
fn builder_of(model: &ComposeModel, image: &str) -> Option<String> {
    model
        .services
        .iter()
        .find(|(_, m)| m.build.is_some() && !image.is_empty() && m.image.as_deref() == Some(image))
        .map(|(name, _)| name.clone())
}

/// `services` and, transitively, every service they `depends_on` (what `compose up` starts).
fn with_dependencies(
    model: &ComposeModel,
    services: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = services.into_iter().collect();
    while let Some(s) = todo.pop() {
        if out.contains(&s) || !model.services.contains_key(&s) {
            continue;
        }
        todo.extend(model.services[&s].depends_on.keys().cloned());
        out.push(s);
    }
    out.sort();
    out
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
                checks::policy::evaluate(rule, level, &r.loaded.suite, model, raw, &r.loaded.dir)
            }
            Err(e) => Verdict::fail(format!("cannot read the compose files as written: {e}")),
        };
        r.record(&TestKind::Policy { rule }, v, t0);
    }
}
