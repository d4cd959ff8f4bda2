//! The `stack.containers` path: build, start each container as `docker run` would (through
//! testcontainers), judge its state (`expect_exit` for one-shots), then the same checks as for
//! compose stacks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::images::{build_own_images, image_tests, obtain_images, prebuilt, Needed};
use super::runner::{Runner, Stop};
use super::runtime::{new_ctx, runtime_tests};
use crate::checks::{self, state, Verdict};
use crate::engine::containers::{self, RunSpec, Started};
use crate::engine::{ComposeModel, ModelService, ObservedState};
use crate::plan::{RunIdentity, TestKind};
use crate::suite::{parse_mount, ContainerSpec, DesiredState};

const POLL: Duration = Duration::from_millis(250);

pub(super) async fn containers_phase(
    r: &mut Runner<'_>,
    id: &RunIdentity,
    workdir: &Path,
    deadline: Instant,
) -> Result<(), Stop> {
    let specs = r.loaded.suite.stack.containers.clone();
    let model = model_of(&specs, id);
    let t0 = Instant::now();
    let v = checks::check_config(&r.loaded.suite, &model, "stack.containers");
    r.record(&TestKind::StackConfig, v, t0);
    images(r, id, &model, &specs, deadline).await?;
    let mut started: Vec<Started> = Vec::new();
    let mut ids = BTreeMap::new();
    let result = async {
        for (name, c) in &specs {
            if let Some(s) = start(r, id, workdir, name, c, deadline).await? {
                ids.insert(name.clone(), s.id.clone());
                started.push(s);
            }
        }
        let ctx = new_ctx(r, &model, None, id, workdir, ids.clone());
        runtime_tests(r, &ctx).await
    }
    .await;
    // Their logs go with them: written first.
    if let Some(dir) = r.settings.logs_dir.clone() {
        let services = ids
            .iter()
            .map(|(n, id)| (n.clone(), vec![id.clone()]))
            .collect();
        let suite = &r.loaded.suite.id;
        let written =
            super::logs::write(r.engine, &dir, suite, &services, &r.settings.masker).await;
        r.state.logs = Some(written);
    }
    for s in started {
        s.remove().await;
    }
    result
}

/// The containers as a compose model of one service each, for the checks that read a model.
fn model_of(specs: &BTreeMap<String, ContainerSpec>, id: &RunIdentity) -> ComposeModel {
    ComposeModel {
        name: id.project.clone(),
        services: specs
            .iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    ModelService {
                        image: Some(image_of(c)),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// The images the containers run: pulled (or present), built, and their promises judged.
async fn images(
    r: &mut Runner<'_>,
    id: &RunIdentity,
    model: &ComposeModel,
    specs: &BTreeMap<String, ContainerSpec>,
    deadline: Instant,
) -> Result<(), Stop> {
    let mut needed: Vec<Needed> = specs
        .iter()
        .filter(|(_, c)| c.build.is_none())
        .map(|(n, c)| Needed {
            image: image_of(c),
            by: format!("container `{n}`"),
            policy: r.settings.pull,
        })
        .collect();
    needed.extend(prebuilt(r));
    let images: Vec<&str> = needed.iter().map(|n| n.image.as_str()).collect();
    let how = format!("Pull them yourself (`docker pull {}`)", images.join(" "));
    obtain_images(r, &needed, &how, deadline).await?;
    build_own_images(r, id, deadline).await;
    image_tests(r, id, model).await;
    Ok(())
}

/// Starts one container and judges its state (recorded): the container, when it started.
async fn start(
    r: &mut Runner<'_>,
    id: &RunIdentity,
    workdir: &Path,
    name: &str,
    c: &ContainerSpec,
    deadline: Instant,
) -> Result<Option<Started>, Stop> {
    let t0 = Instant::now();
    let state_test = TestKind::state_of(name);
    if r.engine.image(&image_of(c)).await.ok().flatten().is_none() {
        let v = Verdict::fail(format!(
            "image `{}` was not built, so `{name}` cannot start",
            image_of(c)
        ));
        r.record(&state_test, v, t0);
        return Ok(None);
    }
    let suite_dir = r
        .loaded
        .dir
        .canonicalize()
        .unwrap_or_else(|_| r.loaded.dir.clone());
    let spec = run_spec(c, &suite_dir, workdir, &id.labels)
        .map_err(|e| Stop::Infra(format!("container {name}: {e}")))?;
    r.progress
        .phase(&format!("docker run {name} ({})", spec.image));
    let s = match containers::start(&spec).await {
        Ok(s) => s,
        Err(e) => {
            r.record(&state_test, Verdict::fail(e.to_string()), t0);
            return Ok(None);
        }
    };
    let want = r
        .loaded
        .suite
        .services
        .get(name)
        .and_then(|s| s.state)
        .or(c.expect_exit.map(DesiredState::Exited));
    let v = wait_state(r, name, &s.id, want, deadline).await;
    if v.passed {
        if let Ok(info) = r.engine.inspect(&s.id).await {
            r.state.held.extend(state::Held::new(name, want, &[info]));
        }
    }
    r.record(&state_test, v, t0);
    Ok(Some(s))
}

fn image_of(c: &ContainerSpec) -> String {
    c.build
        .as_ref()
        .and_then(|b| b.tag.clone())
        .or_else(|| c.image.clone())
        .unwrap_or_default()
}

fn run_spec(
    c: &ContainerSpec,
    suite_dir: &Path,
    tmp: &Path,
    labels: &BTreeMap<String, String>,
) -> Result<RunSpec, String> {
    let mut mounts = Vec::new();
    for m in &c.mounts {
        let m = parse_mount(m, suite_dir, tmp).map_err(|e| e.to_string())?;
        // `{tmp}` folders are the run's own: create them, as `docker run -v` would create a missing host path.
        if m.host.starts_with(tmp) {
            std::fs::create_dir_all(&m.host)
                .map_err(|e| format!("cannot create {}: {e}", m.host.display()))?;
        }
        if !m.host.exists() {
            return Err(format!("mount source {} does not exist", m.host.display()));
        }
        mounts.push((
            m.host.to_string_lossy().into_owned(),
            m.container,
            m.read_only,
        ));
    }
    Ok(RunSpec {
        image: image_of(c),
        network: c.network.clone(),
        mounts,
        command: c.command.clone(),
        env: c.env.clone(),
        labels: labels.clone(),
    })
}

/// Waits for the container's desired state: `exited:<code>` for one-shots, else healthy when it
/// has a healthcheck, else running.
async fn wait_state(
    r: &Runner<'_>,
    name: &str,
    id: &str,
    want: Option<DesiredState>,
    deadline: Instant,
) -> Verdict {
    let t0 = Instant::now();
    loop {
        let info = match r.engine.inspect(id).await {
            Ok(i) => i,
            Err(e) => return Verdict::fail(e.to_string()),
        };
        let has_health = info
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| !t.is_empty());
        let want = want.unwrap_or(if has_health {
            DesiredState::Healthy
        } else {
            DesiredState::Running
        });
        let seen = ObservedState::of(&info);
        if seen.satisfies(want) {
            return Verdict::pass(format!(
                "`{name}` is {seen} after {:.1}s",
                t0.elapsed().as_secs_f32()
            ));
        }
        let done = seen.is_final();
        if done || Instant::now() >= deadline {
            return Verdict::fail(format!("expected `{name}` to be {want}; it is {seen}"))
                .with_detail(state::diagnostics(r.engine, id).await);
        }
        tokio::time::sleep(POLL).await;
    }
}
