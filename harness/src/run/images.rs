//! Images of a run: those that cannot be built are pulled as their policy says (or must already
//! be on the engine); `docker build`s of the suite's own images, side by side; the image promises;
//! and, after bring-up, what each service really ran.

use std::collections::BTreeMap;
use std::time::Instant;

use super::runner::{Runner, Stop};
use crate::checks::{self, Verdict};
use crate::engine::{docker_build, pulled_line, ComposeModel, Engine};
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
        .filter(|(tag, _)| Needs::wants_image(r.needs.as_ref(), tag))
        .map(|(tag, _)| Needed {
            image: tag.clone(),
            by: format!("`images.{tag}`"),
            policy: r.pull,
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
    r.pulled.extend(done);
    if failed.is_empty() {
        return Ok(());
    }
    Err(Stop::Infra(format!(
        "cannot pull the images the stack runs: {}. {how_to_get}, then run again",
        failed.join("; ")
    )))
}

/// A build said it succeeded: the tag must now exist.
pub(super) async fn built_verdict(engine: &Engine, image: &str, t0: Instant) -> Verdict {
    match engine.image(image).await {
        Ok(Some(_)) => Verdict::pass(format!("built in {:.1}s", t0.elapsed().as_secs_f32())),
        Ok(None) => Verdict::fail(format!(
            "the build succeeded but no image is tagged `{image}`"
        )),
        Err(e) => Verdict::fail(e.to_string()),
    }
}

/// `docker build` for images with `build:` (under `images:` or `stack.containers`). A failed
/// build fails its own test with the log's tail; the rest of the suite goes on.
pub(super) async fn build_own_images(r: &mut Runner<'_>, id: &RunIdentity, deadline: Instant) {
    let suite = &r.loaded.suite;
    let mut builds: Vec<(String, BuildSpec)> = suite
        .images
        .iter()
        .filter(|(tag, _)| Needs::wants_image(r.needs.as_ref(), tag))
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
    let mut running: futures_util::stream::FuturesUnordered<_> = builds
        .into_iter()
        .map(|(tag, b)| async move {
            let t0 = Instant::now();
            progress.phase(&format!("docker build {tag}"));
            let limit = deadline.saturating_duration_since(Instant::now());
            let built = docker_build(
                &dir.join(&b.context),
                b.dockerfile.as_deref(),
                &tag,
                &b.args,
                &id.labels,
                limit,
                |l| progress.detail(l),
            )
            .await;
            let v = match built {
                Ok(()) => built_verdict(engine, &tag, t0).await,
                Err(e) => Verdict::fail(e.to_string())
                    .with_detail(format!("last lines of the build log:\n{}", e.tail())),
            };
            (tag, v, t0)
        })
        .collect();
    while let Some((image, v, t0)) = futures_util::StreamExt::next(&mut running).await {
        r.record(&TestKind::Build { image }, v, t0);
    }
}

/// The promises about each image's metadata, files and base.
pub(super) async fn image_tests(r: &mut Runner<'_>, id: &RunIdentity) {
    let tests = r.tests_where(|k| matches!(k, TestKind::Image { .. }));
    let verdicts = image_verdicts(r.engine, r.loaded, id, tests);
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
    tests: Vec<PlannedTest>,
) -> impl futures_util::Stream<Item = (PlannedTest, Verdict, Instant)> + 'a {
    futures_util::StreamExt::then(futures_util::stream::iter(tests), move |t| async move {
        let t0 = Instant::now();
        let v = match &t.kind {
            TestKind::Image { image, promise } => {
                checks::check_image(
                    engine,
                    image,
                    promise,
                    &loaded.suite.images[image],
                    &id.labels,
                )
                .await
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
