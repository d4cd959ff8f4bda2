//! Images of a run: those that cannot be built must already be on the engine (offline, nothing
//! is pulled); `docker build`s of the suite's own images, side by side; the image promises; and,
//! after bring-up, what each service really ran.

use std::collections::BTreeMap;
use std::time::Instant;

use super::runner::{Runner, Stop};
use crate::checks::{self, Verdict};
use crate::engine::{docker_build, ComposeModel, Engine};
use crate::plan::{Needs, RunIdentity, TestKind};
use crate::report::ServiceImage;
use crate::suite::BuildSpec;

/// An image the stack runs but nothing in it builds.
pub(super) struct Needed {
    /// The image reference as written.
    pub image: String,
    /// Who runs it, in words (``service `worker` ``).
    pub by: String,
}

/// Every needed image must be on the engine; else the run cannot start (exit 3), and the message
/// says which image, who runs it, that nothing in the stack builds it, and `how_to_get` it.
pub(super) async fn require_images(
    engine: &Engine,
    needed: &[Needed],
    how_to_get: &str,
) -> Result<(), Stop> {
    let mut absent = Vec::new();
    for n in needed {
        if n.image.is_empty() {
            absent.push(format!("{} names no image and builds none", n.by));
            continue;
        }
        match engine.image(&n.image).await {
            Ok(Some(_)) => {}
            Ok(None) => absent.push(format!(
                "`{}` (run by {}; nothing in the stack builds it)",
                n.image, n.by
            )),
            Err(e) => return Err(Stop::Infra(e.to_string())),
        }
    }
    if absent.is_empty() {
        return Ok(());
    }
    Err(Stop::Infra(format!(
        "images not on the engine: {}. stackcheck does not pull images: {how_to_get}, then run again",
        absent.join(", ")
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
    for t in r.tests_where(|k| matches!(k, TestKind::Image { .. })) {
        let TestKind::Image { image, promise } = &t.kind else {
            continue;
        };
        let t0 = Instant::now();
        let v = checks::check_image(
            r.engine,
            image,
            promise,
            &r.loaded.suite.images[image],
            &id.labels,
        )
        .await;
        r.record(&t.kind, v, t0);
    }
}

/// What each service's container runs, read from the engine.
pub(super) async fn service_images(
    engine: &Engine,
    containers: &BTreeMap<String, String>,
    model: &ComposeModel,
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
        let digests = inspected
            .as_ref()
            .and_then(|i| i.repo_digests.clone())
            .unwrap_or_default();
        let standin = inspected
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(crate::engine::LABEL_STANDIN))
            .filter(|v| !v.is_empty())
            .cloned();
        out.push(ServiceImage {
            service: service.clone(),
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
