//! Images of a run: those that cannot be built are pulled as their policy says (or must already
//! be on the engine); `docker build`s of the suite's own images, side by side; the image promises;
//! and, after bring-up, what each service really ran.

use std::collections::BTreeMap;
use std::time::Instant;

use super::build_steps::BuildLog;
use super::runner::{Runner, Stop};
use crate::checks::{self, Verdict};
use crate::engine::{pulled_line, Compose, ComposeError, ComposeModel, Engine, EngineKind};
use crate::plan::{Needs, PlannedTest, RunIdentity, TestKind};
use crate::report::ServiceImage;
use crate::suite::{BuildSpec, PullPolicy};

/// An image the stack runs but nothing in it builds.
pub(super) struct Needed {
    /// The image reference as written.
    pub image: String,
    /// Who runs it, in words (``service `worker` ``).
    pub by: String,
    /// When to pull it: the service's own `pull_policy`, else `run --pull` / `stack.pull`.
    pub policy: PullPolicy,
}

/// The suite's prebuilt images (`images.<ref>` with neither `service` nor `build`): subjects of
/// their promises, pulled as `run --pull` / `stack.pull` says.
pub(super) fn prebuilt(r: &Runner<'_>) -> Vec<Needed> {
    r.loaded
        .suite
        .images
        .iter()
        .filter(|(_, i)| i.is_prebuilt())
        .filter(|(tag, _)| Needs::wants_image(r.settings.needs.as_ref(), tag))
        .map(|(tag, _)| Needed {
            image: tag.clone(),
            by: format!("`images.{tag}`"),
            policy: r.settings.pull,
        })
        .collect()
}

/// Gets every needed image onto the engine as its policy says, before anything starts: pulls
/// (side by side, one progress line each, within the budget) those absent or, under `always`,
/// all. An image that is absent under `never`, or whose pull fails, stops the run (exit 3),
/// naming the image, who runs it, that nothing in the stack builds it, why, and `how_to_get` it.
pub(super) async fn obtain_images(
    r: &mut Runner<'_>,
    needed: &[Needed],
    how_to_get: &str,
    deadline: Instant,
) -> Result<(), Stop> {
    let mut absent = Vec::new();
    let mut to_pull: Vec<&Needed> = Vec::new();
    for n in needed {
        if n.image.is_empty() {
            absent.push(format!("{} names no image and builds none", n.by));
            continue;
        }
        let present = match r.engine.image(&n.image).await {
            Ok(i) => i.is_some(),
            Err(e) => return Err(Stop::Infra(e.to_string())),
        };
        if !present && n.policy == PullPolicy::Never {
            absent.push(format!(
                "`{}` (run by {}; nothing in the stack builds it; pull policy `never`)",
                n.image, n.by
            ));
        } else if n.policy.pulls(present) && !to_pull.iter().any(|p| p.image == n.image) {
            to_pull.push(n);
        }
    }
    if !absent.is_empty() {
        return Err(Stop::Infra(format!(
            "images not on the engine: {}. {how_to_get}, then run again",
            absent.join(", ")
        )));
    }
    let (engine, progress) = (r.engine, r.progress);
    let mut pulls: futures_util::stream::FuturesUnordered<_> = to_pull
        .into_iter()
        .map(|n| async move {
            let t0 = Instant::now();
            progress.phase(&format!("pulling {} for {}", n.image, n.by));
            let limit = deadline.saturating_duration_since(Instant::now());
            let pulled = engine.pull(&n.image, limit, |l| progress.detail(l)).await;
            (n, pulled, t0)
        })
        .collect();
    let mut failed = Vec::new();
    let mut done = Vec::new();
    while let Some((n, pulled, t0)) = futures_util::StreamExt::next(&mut pulls).await {
        match pulled {
            Ok(digest) => {
                done.push(n.image.clone());
                progress.phase(&pulled_line(&n.image, t0.elapsed(), digest.as_deref()))
            }
            Err(e) => failed.push(format!(
                "`{}` (run by {}; nothing in the stack builds it): {e}",
                n.image, n.by
            )),
        }
    }
    drop(pulls);
    r.state.pulled.extend(done);
    if failed.is_empty() {
        return Ok(());
    }
    Err(Stop::Infra(format!(
        "cannot pull the images the stack runs: {}. {how_to_get}, then run again",
        failed.join("; ")
    )))
}

/// A build said it succeeded: the tag must now exist. The verdict, and the image built (its
/// `service` naming the suite's `images.<key>`) when it does.
pub(super) async fn built_verdict(
    engine: &Engine,
    key: &str,
    image: &str,
    t0: Instant,
) -> (Verdict, Option<ServiceImage>) {
    match engine.image(image).await {
        Ok(Some(info)) => {
            let built = info.id.map(|id| ServiceImage {
                service: format!("images.{key}"),
                image: image.to_string(),
                id,
                digests: Vec::new(),
                standin: None,
                built: true,
                pulled: false,
            });
            let v = Verdict::pass(format!("built in {:.1}s", t0.elapsed().as_secs_f32()));
            (v, built)
        }
        Ok(None) => (
            Verdict::fail(format!(
                "the build succeeded but no image is tagged `{image}`"
            )),
            None,
        ),
        Err(e) => (Verdict::fail(e.to_string()), None),
    }
}

/// `docker build` for images with `build:` (under `images:` or `stack.containers`). A failed
/// build fails its own test with the log's tail; the rest of the suite goes on.
pub(super) async fn build_own_images(r: &mut Runner<'_>, id: &RunIdentity, deadline: Instant) {
    let suite = &r.loaded.suite;
    let mut builds: Vec<(String, BuildSpec)> = suite
        .images
        .iter()
        .filter(|(tag, _)| Needs::wants_image(r.settings.needs.as_ref(), tag))
        .filter_map(|(tag, i)| i.build.clone().map(|b| (tag.clone(), b)))
        .collect();
    for c in suite.stack.containers.values() {
        if let Some(b) = &c.build {
            let tag = b.tag.clone().unwrap_or_default();
            if !builds.iter().any(|(t, _)| *t == tag) {
                builds.push((tag, b.clone()));
            }
        }
    }
    // Independent images build at the same time (the engine's classic builder runs each build in
    // its own containers); each is recorded as it finishes.
    let (engine, progress, dir) = (r.engine, r.progress, &r.loaded.dir);
    let run_t0 = r.started_at();
    let mut running: futures_util::stream::FuturesUnordered<_> = builds
        .into_iter()
        .map(|(tag, b)| async move {
            let t0 = Instant::now();
            progress.phase(&format!("docker build {tag}"));
            let limit = deadline.saturating_duration_since(Instant::now());
            let mut log = BuildLog::new(&tag, run_t0);
            let built = engine
                .docker_build(dir, &b, &tag, &id.labels, limit, |l| {
                    log.line(l);
                    progress.detail(l)
                })
                .await;
            let (v, image) = match built {
                Ok(()) => built_verdict(engine, &tag, &tag, t0).await,
                Err(e) => (
                    Verdict::fail(e.to_string())
                        .with_detail(format!("last lines of the build log:\n{}", e.tail())),
                    None,
                ),
            };
            (tag, v, t0, log.finish(), image)
        })
        .collect();
    while let Some((tag, v, t0, steps, image)) = futures_util::StreamExt::next(&mut running).await {
        r.state.timeline.builds.extend(steps);
        r.state.built.extend(image);
        r.record(&TestKind::Build { image: tag }, v, t0);
    }
    r.state.timeline.builds.sort_by_key(|s| s.start_ms);
}

/// The promises about each image's metadata, files and base.
pub(super) async fn image_tests(r: &mut Runner<'_>, id: &RunIdentity, model: &ComposeModel) {
    let tests = r.tests_where(|k| matches!(k, TestKind::Image { .. }));
    let verdicts = image_verdicts(r.engine, r.loaded, id, model, tests);
    let mut verdicts = std::pin::pin!(verdicts);
    while let Some((t, v, t0)) = futures_util::StreamExt::next(&mut verdicts).await {
        r.record(&t.kind, v, t0);
    }
}

/// The verdicts of image tests, one at a time, each with when it started: a stream, so that they
/// can be recorded as they come while the stack comes up.
pub(super) fn image_verdicts<'a>(
    engine: &'a Engine,
    loaded: &'a crate::suite::LoadedSuite,
    id: &'a RunIdentity,
    model: &'a ComposeModel,
    tests: Vec<PlannedTest>,
) -> impl futures_util::Stream<Item = (PlannedTest, Verdict, Instant)> + 'a {
    futures_util::StreamExt::then(futures_util::stream::iter(tests), move |t| async move {
        let t0 = Instant::now();
        let v = match &t.kind {
            TestKind::Image { image, promise } => {
                let spec = &loaded.suite.images[image];
                let tag = crate::plan::image_of(image, spec, model);
                checks::check_image(engine, &tag, promise, spec, &id.labels).await
            }
            _ => Verdict::fail("not an image test"),
        };
        (t, v, t0)
    })
}

/// What each service's container runs, read from the engine.
pub(super) async fn service_images(
    engine: &Engine,
    containers: &BTreeMap<String, String>,
    model: &ComposeModel,
    pulled: &[String],
) -> Vec<ServiceImage> {
    let mut out = Vec::new();
    for (service, id) in containers {
        let Ok(info) = engine.inspect(id).await else {
            continue;
        };
        let image_id = info.image.clone().unwrap_or_default();
        let named = info
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let inspected = engine.image(&image_id).await.ok().flatten();
        let digests = crate::engine::own_digests_first(
            &named,
            inspected
                .as_ref()
                .and_then(|i| i.repo_digests.clone())
                .unwrap_or_default(),
        );
        let standin = inspected
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(crate::engine::LABEL_STANDIN))
            .filter(|v| !v.is_empty())
            .cloned();
        out.push(ServiceImage {
            service: service.clone(),
            pulled: pulled.contains(&named),
            image: named,
            id: image_id,
            digests,
            standin,
            built: model
                .services
                .get(service)
                .is_some_and(|m| m.build.is_some()),
        });
    }
    out
}

/// What the selected services need: the services to build (a service that runs the image
/// another service builds needs that build, not an image from elsewhere: compose builds it once
/// for both), the images to obtain, and the services that run them.
fn images_of_selected<'m>(
    r: &Runner<'_>,
    model: &'m ComposeModel,
    selected: &'m [String],
) -> (Vec<String>, Vec<Needed>, Vec<&'m str>) {
    let mut to_build: Vec<String> = selected
        .iter()
        .filter(|s| model.services[*s].build.is_some())
        .cloned()
        .collect();
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
                    policy: own
                        .and_then(PullPolicy::of_service)
                        .unwrap_or(r.settings.pull),
                });
            }
        }
    }
    (to_build, needed, to_pull)
}

/// `docker compose build` of `to_build`, with the build tests of the images compose builds. A
/// failed build stops the run; with no image test to carry it, the services that needed it fail
/// their state with its log.
async fn compose_build(
    r: &mut Runner<'_>,
    compose: &Compose,
    model: &ComposeModel,
    to_build: &[String],
    deadline: Instant,
) -> Result<(), Stop> {
    let suite = &r.loaded.suite;
    let t0 = Instant::now();
    r.progress
        .phase(&format!("building {}", to_build.join(", ")));
    let progress = r.progress;
    let label = match to_build {
        [one] => one.clone(),
        _ => "compose build".to_string(),
    };
    let mut log = BuildLog::new(&label, r.started_at());
    let built = compose
        .build(
            to_build,
            r.engine.kind == EngineKind::Podman,
            deadline.saturating_duration_since(Instant::now()),
            |l| {
                log.line(l);
                progress.detail(l)
            },
        )
        .await;
    r.state.timeline.builds.extend(log.finish());
    let compose_built: Vec<PlannedTest> = r.tests_where(|k| match k {
        TestKind::Build { image } => suite.images.get(image).is_some_and(|i| i.service.is_some()),
        _ => false,
    });
    let reported = !compose_built.is_empty();
    for t in compose_built {
        let TestKind::Build { image } = &t.kind else {
            continue;
        };
        let (v, built_image) = match &built {
            Ok(()) => {
                let tag = crate::plan::image_of(image, &suite.images[image], model);
                built_verdict(r.engine, image, &tag, t0).await
            }
            Err(e) => (
                Verdict::fail(build_failure(e)).with_detail(e.tail().to_string()),
                None,
            ),
        };
        r.state.built.extend(built_image);
        r.record(&t.kind, v, t0);
    }
    if let Err(e) = &built {
        // The root cause must be a failure a reader sees: with no `images:` test for what did
        // not build, the services that needed the build fail their state with its log.
        if !reported {
            for s in to_build {
                let v = Verdict::fail(format!(
                    "`{s}` cannot start: its image did not build (`docker compose build` failed)"
                ))
                .with_detail(e.tail().to_string());
                r.record(&TestKind::state_of(s), v, t0);
            }
        }
        return Err(Stop::NotRun("the build failed".into()));
    }
    Ok(())
}

/// Why `docker compose build` did not build: failed, or ran out of the suite's budget.
fn build_failure(e: &ComposeError) -> String {
    match e {
        ComposeError::Timeout { secs, .. } => format!(
            "docker compose build did not finish within {secs} s (what was left of `stack.timeout`)"
        ),
        ComposeError::Failed { code, .. } => format!("docker compose build failed (exit {code})"),
        ComposeError::Missing(_) => "docker compose could not be started".into(),
    }
}

/// Step 2: images that cannot be built must already exist; then build what compose builds, the
/// way compose builds it, and the suite's own images.
pub(super) async fn build(
    r: &mut Runner<'_>,
    compose: &Compose,
    id: &RunIdentity,
    model: &ComposeModel,
    selected: &[String],
    deadline: Instant,
) -> Result<(), Stop> {
    let (mut to_build, mut needed, to_pull) = images_of_selected(r, model, selected);
    needed.extend(prebuilt(r));
    let how = format!(
        "Pull them yourself (`docker compose pull {}`) or build them",
        to_pull.join(" ")
    );
    obtain_images(r, &needed, &how, deadline).await?;

    for (tag, spec) in &r.loaded.suite.images {
        if !Needs::wants_image(r.settings.needs.as_ref(), tag) {
            continue;
        }
        if let Some(s) = &spec.service {
            if model.services.get(s).is_some_and(|m| m.build.is_some()) && !to_build.contains(s) {
                to_build.push(s.clone());
            }
        }
    }
    if !to_build.is_empty() {
        compose_build(r, compose, model, &to_build, deadline).await?;
    }
    r.halt()?;
    build_own_images(r, id, deadline).await;
    // With a stack to bring up, the image tests run during its bring-up wait (`judge_states`);
    // `--fail-fast` keeps them first, so that a failed one starts nothing.
    if selected.is_empty() || r.settings.fail_fast {
        image_tests(r, id, model).await;
    }
    r.halt()
}

/// The service of the model that builds `image` (has `build:` and names that `image:`).
pub(super) fn builder_of(model: &ComposeModel, image: &str) -> Option<String> {
    model
        .services
        .iter()
        .find(|(_, m)| m.build.is_some() && !image.is_empty() && m.image.as_deref() == Some(image))
        .map(|(name, _)| name.clone())
}
