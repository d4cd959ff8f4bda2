//! Drives one suite through every stage: plan → compose config → build → up and wait → checks,
//! then always tears down (`down -v`, then a sweep by the run's label) and proves nothing is left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod containers;
mod schedule;

pub use schedule::{claims, default_jobs, run_all};

use crate::checks::{self, state, Ctx, Outcome, ProbeTarget, Status, Verdict};
use crate::engine::{docker_build, Compose, ComposeModel, Engine, Leftovers};
use crate::plan::{self, PlannedTest, RunIdentity, ServicePromise, TestKind};
use crate::report::{Masked, Masker, Progress};
use crate::suite::LoadedSuite;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const CONFIG_TIMEOUT: Duration = Duration::from_secs(60);
const DOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long teardown waits for an engine that stopped answering (a restart) to come back.
const ENGINE_RETURN: Duration = Duration::from_secs(60);

/// Everything one suite run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteReport {
    pub suite: String,
    pub about: Option<String>,
    pub project: String,
    pub run_id: String,
    pub engine: String,
    pub outcomes: Vec<Outcome>,
    /// Set when the run could not be carried out (exit 3), as opposed to a promise failing.
    pub infra_error: Option<String>,
    pub interrupted: bool,
    pub duration_ms: u64,
    /// Every address a network probe of this run connected to, and why it was home.
    #[serde(default)]
    pub probes: Vec<ProbeTarget>,
    /// `docker compose version` (empty for a stack of `containers`).
    #[serde(default)]
    pub compose: String,
    /// The image each service ran (after bring-up).
    #[serde(default)]
    pub images: Vec<ServiceImage>,
}

/// The image one service ran: what the compose file names, what the engine used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceImage {
    pub service: String,
    /// As named in the compose file or suite (`postgres:14-alpine`).
    pub image: String,
    /// The engine's image id (`sha256:…`).
    pub id: String,
    /// Registry digests (`name@sha256:…`); empty for images built or imported locally.
    #[serde(default)]
    pub digests: Vec<String>,
    /// Set when the image is one of the offline stand-ins (`io.stackcheck.standin`), or was
    /// built on one (`built`): what the stand-in is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standin: Option<String>,
    /// Built by this run (compose `build:`), rather than an image the engine had.
    #[serde(default)]
    pub built: bool,
}

/// What each service's container runs, read from the engine.
async fn service_images(
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

impl SuiteReport {
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .count()
    }
}

/// Why the main phase stopped early; the remaining tests fail with this reason.
pub(crate) enum Stop {
    Infra(String),
    NotRun(String),
}

pub(crate) struct Runner<'a> {
    loaded: &'a LoadedSuite,
    engine: &'a Engine,
    progress: &'a dyn Progress,
    masker: Masker,
    tests: Vec<PlannedTest>,
    results: BTreeMap<String, Outcome>,
    probes: Vec<ProbeTarget>,
    images: Vec<ServiceImage>,
    fail_fast: bool,
    first_failure: Option<String>,
    ephemeral: bool,
    no_flaky: bool,
    /// Set by `--filter`: what the selected tests need (else everything is built and started).
    needs: Option<plan::Needs>,
}

/// How a suite is run (the CLI's flags).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop at the first failing test: the rest are reported as not run, teardown still runs.
    pub fail_fast: bool,
    /// Overrides each suite's `stack.ports`.
    pub ports: Option<crate::suite::PortsMode>,
    /// A check that passed only on a re-run fails instead of passing as flaky.
    pub no_flaky: bool,
    /// `--filter` globs: only matching tests run, and only what they need is built and started.
    pub filter: Vec<String>,
}

impl RunOptions {
    /// Whether this suite's stack runs with ephemeral ports and names.
    pub fn ephemeral(&self, loaded: &LoadedSuite) -> bool {
        self.ports.unwrap_or(loaded.suite.stack.ports) == crate::suite::PortsMode::Ephemeral
    }
}

impl Runner<'_> {
    fn record(&mut self, name: &str, mut verdict: Verdict, started: Instant) {
        if self.needs.is_some() && !self.tests.iter().any(|t| t.name == name) {
            return; // outside `--filter`: done only because a selected test needed it
        }
        if self.no_flaky && verdict.passed && !verdict.flaky.is_empty() {
            verdict.passed = false;
            verdict.message = format!(
                "flaky (--no-flaky): passed on attempt {} after {}",
                verdict.flaky.len() + 1,
                verdict.flaky.join("; ")
            );
        }
        let mut outcome = verdict.into_outcome(name, started);
        if outcome.status == Status::Failed && self.loaded.suite.is_quarantined(name) {
            outcome.status = Status::Passed;
            outcome.warning = true;
            outcome.quarantined = true;
            outcome.message = format!("quarantined: {}", outcome.message);
        }
        outcome.message = self.masker.mask(&outcome.message);
        outcome.detail = self.masker.mask(&outcome.detail);
        self.progress.outcome(&outcome);
        if outcome.status == Status::Failed && self.first_failure.is_none() {
            self.first_failure = Some(name.to_string());
        }
        self.results.insert(name.to_string(), outcome);
    }

    /// With `--fail-fast`, ends the main phase once a test has failed.
    fn halt(&self) -> Result<(), Stop> {
        match (&self.first_failure, self.fail_fast) {
            (Some(name), true) => Err(Stop::NotRun(format!("--fail-fast: `{name}` failed"))),
            _ => Ok(()),
        }
    }

    fn tests_where(&self, f: impl Fn(&TestKind) -> bool) -> Vec<PlannedTest> {
        self.tests.iter().filter(|t| f(&t.kind)).cloned().collect()
    }
}

/// Runs one suite against a connected engine. Never leaves the stack behind: teardown runs after
/// success, failure and Ctrl-C alike.
pub async fn run_suite(
    loaded: &LoadedSuite,
    engine: &Engine,
    progress: &dyn Progress,
) -> SuiteReport {
    run_suite_with(loaded, engine, progress, &RunOptions::default()).await
}

/// [`run_suite`] with options.
pub async fn run_suite_with(
    loaded: &LoadedSuite,
    engine: &Engine,
    progress: &dyn Progress,
    options: &RunOptions,
) -> SuiteReport {
    let started = Instant::now();
    let id = RunIdentity::new(loaded);
    let mut tests = plan::select(&loaded.suite, &options.filter);
    if !options.filter.is_empty() {
        // The run's own guarantee, whatever was selected.
        if !tests.iter().any(|t| t.kind == TestKind::NoLeaks) {
            tests.extend(
                plan::tests(&loaded.suite)
                    .into_iter()
                    .filter(|t| t.kind == TestKind::NoLeaks),
            );
        }
    }
    let needs = (!options.filter.is_empty()).then(|| plan::needs(&loaded.suite, &tests));
    let masker = Masker::for_suite(loaded);
    let masked = Masked {
        inner: progress,
        masker: masker.clone(),
        prefix: format!("{}: ", loaded.suite.suite),
    };
    let progress: &dyn Progress = &masked;
    let mut runner = Runner {
        loaded,
        engine,
        progress,
        masker,
        tests,
        results: BTreeMap::new(),
        probes: Vec::new(),
        images: Vec::new(),
        fail_fast: options.fail_fast,
        first_failure: None,
        ephemeral: options.ephemeral(loaded),
        no_flaky: options.no_flaky,
        needs,
    };
    let workdir = std::env::temp_dir().join(format!("stackcheck-{}", id.run_id));
    let compose = compose_for(loaded, &id, &workdir);
    progress.phase(&format!(
        "{}: project {} (run {})",
        loaded.suite.suite, id.project, id.run_id
    ));

    let mut interrupted = false;
    let stop = {
        let main = main_phase(&mut runner, &compose, &id, &workdir);
        tokio::select! {
            r = main => r.err(),
            why = interruption() => { interrupted = true; Some(Stop::NotRun(format!("interrupted ({why})"))) }
        }
    };

    progress.phase(&format!(
        "{}: tearing down {}",
        loaded.suite.suite, id.project
    ));
    let leftovers = teardown(engine, &compose, &id).await;
    let _ = std::fs::remove_dir_all(&workdir);

    let infra_error = match &stop {
        Some(Stop::Infra(m)) => Some(runner.masker.mask(m)),
        _ => None,
    };
    let reason = match &stop {
        Some(Stop::Infra(m)) | Some(Stop::NotRun(m)) => runner.masker.mask(m),
        None => "not run".to_string(),
    };
    let no_leaks = runner
        .tests
        .iter()
        .find(|t| t.kind == TestKind::NoLeaks)
        .map(|t| t.name.clone());
    if let Some(name) = no_leaks {
        let t0 = Instant::now();
        let v = match leftovers {
            Ok(l) if l.is_empty() => {
                Verdict::pass(format!("nothing labelled {} remains", id.run_label()))
            }
            Ok(l) => Verdict::fail(format!("left behind after teardown: {}", l.describe())),
            Err(e) => Verdict::fail(format!("could not list leftovers: {e}")),
        };
        runner.record(&name, v, t0);
    }
    let outcomes = runner
        .tests
        .iter()
        .map(|t| {
            runner
                .results
                .get(&t.name)
                .cloned()
                .unwrap_or_else(|| Outcome::not_run(&t.name, &reason))
        })
        .collect();
    SuiteReport {
        suite: loaded.suite.suite.clone(),
        about: loaded.suite.about.clone(),
        project: id.project,
        run_id: id.run_id,
        engine: engine.version.clone(),
        outcomes,
        infra_error,
        interrupted,
        duration_ms: started.elapsed().as_millis() as u64,
        probes: runner.probes,
        compose: if loaded.suite.stack.compose.is_empty() {
            String::new()
        } else {
            crate::engine::compose_version()
        },
        images: runner.images,
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (what `cargo nextest` and CI runners send first): either way the
/// run stops and tears down.
async fn interruption() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "Ctrl-C";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

fn compose_for(loaded: &LoadedSuite, id: &RunIdentity, workdir: &Path) -> Compose {
    let abs = |p: &String| -> PathBuf {
        let joined = loaded.dir.join(p);
        std::fs::canonicalize(&joined).unwrap_or(joined)
    };
    Compose {
        project: id.project.clone(),
        files: loaded.suite.stack.compose.iter().map(abs).collect(),
        env_file: loaded.suite.stack.env_file.as_ref().map(abs),
        env: loaded.suite.stack.env.clone(),
        override_file: Some(workdir.join("stackcheck.override.yaml")),
    }
}

async fn main_phase(
    r: &mut Runner<'_>,
    compose: &Compose,
    id: &RunIdentity,
    workdir: &Path,
) -> Result<(), Stop> {
    let suite = &r.loaded.suite;
    let budget = suite.stack.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
    let deadline = Instant::now() + budget;
    std::fs::create_dir_all(workdir)
        .map_err(|e| Stop::Infra(format!("cannot create {}: {e}", workdir.display())))?;
    if !suite.stack.containers.is_empty() {
        return containers::containers_phase(r, id, workdir, deadline).await;
    }

    // 1. The compose model, as compose itself resolves it.
    let t0 = Instant::now();
    let config_test = format!("{}::stack::config", suite.suite);
    let model = match compose.config(CONFIG_TIMEOUT).await {
        Ok(m) => m,
        Err(e) => {
            r.record(
                &config_test,
                Verdict::fail("docker compose config failed").with_detail(e.to_string()),
                t0,
            );
            return Err(Stop::NotRun("the compose files do not resolve".into()));
        }
    };
    r.masker.add_model(&model, &suite.stack.secrets);
    let v = config_verdict(r.loaded, &model, "compose");
    r.record(&config_test, v, t0);
    policy_tests(r, compose, &model).await;
    r.halt()?;

    let override_file = compose.override_file.clone().unwrap_or_default();
    std::fs::write(&override_file, id.label_override(&model, r.ephemeral))
        .map_err(|e| Stop::Infra(format!("cannot write {}: {e}", override_file.display())))?;

    let selected: Vec<String> = if suite.stack.services.is_empty() {
        model
            .services
            .iter()
            .filter(|(_, m)| m.profiles.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    } else {
        suite.stack.services.clone()
    };
    let selected: Vec<String> = selected
        .into_iter()
        .filter(|s| model.services.contains_key(s))
        .collect();
    // `--filter`: only the services the selected tests name, with what they depend on.
    let live = r.needs.as_ref().is_none_or(|n| n.live);
    let selected = match r.needs.as_ref().map(|n| &n.services) {
        _ if !live => Vec::new(),
        Some(Some(named)) => with_dependencies(&model, named.iter().cloned()),
        _ => selected,
    };

    // 2. Images that cannot be built must already exist: offline, nothing can be pulled.
    let needed: Vec<(String, String)> = selected
        .iter()
        .filter(|s| model.services[*s].build.is_none())
        .map(|s| {
            (
                model.services[s].image.clone().unwrap_or_default(),
                format!("service {s}"),
            )
        })
        .collect();
    require_images(r.engine, &needed).await?;

    // 3. Build what compose builds, the way compose builds it; then images built on their own.
    let mut to_build: Vec<String> = selected
        .iter()
        .filter(|s| model.services[*s].build.is_some())
        .cloned()
        .collect();
    for (tag, spec) in &suite.images {
        if !plan::Needs::wants_image(r.needs.as_ref(), tag) {
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
            r.record(&t.name, v, t0);
        }
        if built.is_err() {
            return Err(Stop::NotRun("the build failed".into()));
        }
    }
    r.halt()?;
    build_own_images(r, id, deadline).await;
    image_tests(r, id).await;
    r.halt()?;
    if !live {
        return Ok(()); // `--filter` selected only tests that need nothing running
    }

    // 4. Up, judging each service's state ourselves (`up --wait` cannot judge one-shots).
    let (wants, undefined): (Vec<_>, Vec<_>) = suite
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
        r.record(
            &format!("{}::service::{service}::state", suite.suite),
            v,
            Instant::now(),
        );
    }
    r.progress
        .phase(&format!("starting {} services", selected.len()));
    let progress = r.progress;
    let up = compose.up(
        &selected,
        deadline.saturating_duration_since(Instant::now()),
        |l| progress.detail(l),
    );
    let wait = state::WaitFor {
        project: &id.project,
        wants: &wants,
        deadline,
        stop_at_first_failure: r.fail_fast,
    };
    let t0 = Instant::now();
    let report = state::bring_up_and_wait(
        r.engine,
        &wait,
        up,
        |l| progress.detail(l),
        |service, verdict, info| {
            let mut verdict = verdict.clone();
            if let Some(info) = info {
                let built = model
                    .services
                    .get(service)
                    .is_some_and(|m| m.build.is_some());
                verdict.message.push_str(&standin_note(info, built));
            }
            r.record(
                &format!("{}::service::{service}::state", suite.suite),
                verdict,
                t0,
            );
        },
    )
    .await;
    if let Some(e) = &report.up_error {
        r.progress.phase(&format!(
            "docker compose up failed: {}",
            checks::snippet(e, 300)
        ));
    }
    r.halt()?;

    // 5. Every other promise, against the model and the live stack.
    let live_model = if r.ephemeral {
        id.ephemeral_names(&model)
    } else {
        model.clone()
    };
    let ctx = new_ctx(
        r,
        &live_model,
        Some(compose),
        id,
        workdir,
        report.containers,
    );
    runtime_tests(r, &ctx).await
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
/// for the upstream image.
/// Images built from a stand-in inherit its label: for them, the note names the base.
fn standin_note(info: &bollard::models::ContainerInspectResponse, built: bool) -> String {
    let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
    match labels.and_then(|l| l.get(crate::engine::LABEL_STANDIN)) {
        Some(what) if !what.is_empty() && built => format!(" [built on a stand-in base: {what}]"),
        Some(what) if !what.is_empty() => format!(" [stand-in: {what}]"),
        _ => String::new(),
    }
}

fn new_ctx<'a>(
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
        started: std::time::SystemTime::now(),
        tmp: workdir,
        canary: Default::default(),
        probed: Default::default(),
        ephemeral_ports: r.ephemeral,
    }
}

/// Every service the suite names is defined by the stack.
fn config_verdict(loaded: &LoadedSuite, model: &ComposeModel, source: &str) -> Verdict {
    let named = named_services(loaded);
    let missing: Vec<&String> = named
        .iter()
        .filter(|s| !model.services.contains_key(*s))
        .collect();
    if missing.is_empty() {
        Verdict::pass(format!(
            "{} services, {} networks, {} volumes",
            model.services.len(),
            model.networks.len(),
            model.volumes.len()
        ))
    } else {
        let known: Vec<&String> = model.services.keys().collect();
        Verdict::fail(format!("services named by the suite but not defined by {source}: {missing:?} (defined: {known:?})"))
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
        let name = format!("{}::policy::{}", r.loaded.suite.suite, rule.name());
        let v = match &raw {
            Ok(raw) => {
                checks::policy::evaluate(rule, level, &r.loaded.suite, model, raw, &r.loaded.dir)
            }
            Err(e) => Verdict::fail(format!("cannot read the compose files as written: {e}")),
        };
        r.record(&name, v, t0);
    }
}

async fn require_images(engine: &Engine, needed: &[(String, String)]) -> Result<(), Stop> {
    let mut absent = Vec::new();
    for (tag, why) in needed {
        match engine.image(tag).await {
            Ok(Some(_)) => {}
            Ok(None) => absent.push(format!("{tag} ({why})")),
            Err(e) => return Err(Stop::Infra(e.to_string())),
        }
    }
    if absent.is_empty() {
        return Ok(());
    }
    Err(Stop::Infra(format!(
        "images not present on the engine and not pullable offline: {}; build them with `bash ci/images.sh`",
        absent.join(", ")
    )))
}

async fn built_verdict(engine: &Engine, image: &str, t0: Instant) -> Verdict {
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
async fn build_own_images(r: &mut Runner<'_>, id: &RunIdentity, deadline: Instant) {
    let suite = &r.loaded.suite;
    let mut builds: Vec<(String, crate::suite::BuildSpec)> = suite
        .images
        .iter()
        .filter(|(tag, _)| plan::Needs::wants_image(r.needs.as_ref(), tag))
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
    while let Some((tag, v, t0)) = futures_util::StreamExt::next(&mut running).await {
        r.record(&format!("{}::build::{tag}", suite.suite), v, t0);
    }
}

async fn image_tests(r: &mut Runner<'_>, id: &RunIdentity) {
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
        r.record(&t.name, v, t0);
    }
}

/// Service, network, volume and smoke tests against the live stack.
/// Checks of one suite that run at the same time (each may start a probe container).
const CHECK_JOBS: usize = 4;

/// A check whose steps act on the stack (restart, stop, start, kill, down/up): it runs after every
/// other runtime test, one at a time, in the suite's order.
fn is_scenario(suite: &crate::suite::Suite, kind: &TestKind) -> bool {
    let TestKind::Check { index } = kind else {
        return false;
    };
    matches!(&suite.checks[*index].kind, crate::suite::CheckKind::Steps(steps)
        if steps.iter().any(|s| !matches!(s.action, crate::suite::Action::Check { .. })))
}

/// The verdict of one runtime test (service promise, network, volume, check); None for others.
async fn runtime_verdict(
    ctx: &Ctx<'_>,
    suite: &crate::suite::Suite,
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
                let v = checks::check_smoke(ctx, check).await;
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

/// Says so when a failure coincides with the engine going away, and returns why it is gone.
async fn blame_engine(
    engine: &Engine,
    mut v: Verdict,
) -> (Verdict, Option<crate::engine::EngineError>) {
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

fn engine_gone(e: crate::engine::EngineError) -> Stop {
    Stop::Infra(format!(
        "the Docker engine stopped answering during the checks ({e})"
    ))
}

/// Runtime tests against the live stack. Those that only look (service promises, networks,
/// volumes, single checks) run concurrently, [`CHECK_JOBS`] at a time; scenarios, which change
/// the stack, run afterwards in order. An engine that stops answering (restarted, crashed) ends
/// the checks with that as the cause, instead of every later check failing on its own.
async fn runtime_tests(r: &mut Runner<'_>, ctx: &Ctx<'_>) -> Result<(), Stop> {
    let containers = ctx
        .containers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    r.images = service_images(r.engine, &containers, ctx.model).await;
    let result = runtime_tests_in_order(r, ctx).await;
    let mut probed = ctx.probed.lock().unwrap_or_else(|e| e.into_inner());
    r.probes.append(&mut probed);
    result
}

async fn runtime_tests_in_order(r: &mut Runner<'_>, ctx: &Ctx<'_>) -> Result<(), Stop> {
    use futures_util::StreamExt;
    let loaded: &LoadedSuite = r.loaded;
    let suite = &loaded.suite;
    let (engine, progress) = (r.engine, r.progress);
    let runtime: Vec<PlannedTest> = r.tests_where(|k| {
        matches!(
            k,
            TestKind::Service { .. }
                | TestKind::Network { .. }
                | TestKind::Volume { .. }
                | TestKind::Check { .. }
        )
    });
    let (scenarios, looks): (Vec<_>, Vec<_>) = runtime
        .into_iter()
        .partition(|t| is_scenario(suite, &t.kind));
    r.halt()?;
    engine.ping().await.map_err(engine_gone)?;
    let mut verdicts = futures_util::stream::iter(looks)
        .map(|t| async move {
            let t0 = Instant::now();
            let v = runtime_verdict(ctx, suite, progress, &t.kind).await;
            (t, v, t0)
        })
        .buffer_unordered(CHECK_JOBS);
    while let Some((t, v, t0)) = verdicts.next().await {
        if let Some(v) = v {
            let (v, gone) = blame_engine(engine, v).await;
            r.record(&t.name, v, t0);
            if let Some(e) = gone {
                return Err(engine_gone(e));
            }
        }
        if r.halt().is_err() {
            break; // --fail-fast: the checks still in flight are dropped
        }
    }
    drop(verdicts);
    for t in scenarios {
        r.halt()?;
        engine.ping().await.map_err(engine_gone)?;
        let t0 = Instant::now();
        if let Some(v) = runtime_verdict(ctx, suite, progress, &t.kind).await {
            let (v, gone) = blame_engine(engine, v).await;
            r.record(&t.name, v, t0);
            if let Some(e) = gone {
                return Err(engine_gone(e));
            }
        }
    }
    Ok(())
}

/// Services the suite refers to anywhere; each must exist in the compose model.
fn named_services(loaded: &LoadedSuite) -> Vec<String> {
    let s = &loaded.suite;
    let mut names: Vec<String> = s.services.keys().cloned().collect();
    names.extend(s.stack.services.iter().cloned());
    names.extend(s.images.values().filter_map(|i| i.service.clone()));
    for c in &s.checks {
        names.extend(c.kind.services());
    }
    names.sort();
    names.dedup();
    names
}

/// `down -v`, then remove anything still carrying the run's label; returns what survived.
pub async fn teardown(
    engine: &Engine,
    compose: &Compose,
    id: &RunIdentity,
) -> Result<Leftovers, String> {
    // An engine that is restarting gets a bounded chance to come back: teardown needs it.
    if engine.ping().await.is_err() {
        engine
            .wait_back(ENGINE_RETURN)
            .await
            .map_err(|e| format!("cannot tear down: {e}"))?;
    }
    // Anonymous volumes carry no label; note them while their containers still name them.
    let mut anonymous = Vec::new();
    if let Ok(found) = engine.labelled(&id.run_label()).await {
        for c in &found.containers {
            anonymous.extend(engine.anonymous_volumes(c).await);
        }
    }
    // Helpers (canary, probes) first: a canary still attached keeps compose from removing networks.
    let _ = engine.sweep(&id.run_label()).await;
    if !compose.files.is_empty() {
        // Without the override (not yet written) compose still finds the project by name.
        let mut compose = compose.clone();
        if compose.override_file.as_ref().is_some_and(|f| !f.exists()) {
            compose.override_file = None;
        }
        let _ = compose.down(DOWN_TIMEOUT).await;
    }
    let mut left = engine
        .sweep(&id.run_label())
        .await
        .map_err(|e| e.to_string())?;
    for v in anonymous {
        if engine.volume_exists(&v).await.unwrap_or(true) && engine.remove_volume(&v).await.is_err()
        {
            left.volumes.push(format!("{v} (anonymous)"));
        }
    }
    Ok(left)
}

/// The compose model of a suite for the checks made before anything starts (references, static
/// policy), resolved once per process: `validate` and `run` both need it for both. The project
/// name in it is arbitrary; a run resolves its own model with its project.
async fn static_model(loaded: &LoadedSuite, compose: &Compose) -> Result<ComposeModel, String> {
    type Models = std::sync::Mutex<BTreeMap<std::path::PathBuf, Result<ComposeModel, String>>>;
    static MODELS: std::sync::OnceLock<Models> = std::sync::OnceLock::new();
    let models = MODELS.get_or_init(Default::default);
    if let Some(m) = models
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&loaded.path)
    {
        return m.clone();
    }
    let m = compose
        .config(CONFIG_TIMEOUT)
        .await
        .map_err(|e| e.to_string());
    models
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(loaded.path.clone(), m.clone());
    m
}

/// Bad input that needs the compose model to see, found before anything starts: a check naming a
/// service that neither the suite's `services:` nor the compose files define (a typo in the suite,
/// not a broken stack — a service the suite declares but the stack lost fails `stack::config`
/// instead). Needs only the compose CLI. When compose cannot resolve the files, that is left to
/// the run's `stack::config` test.
pub async fn check_references(loaded: &LoadedSuite) -> Result<(), crate::suite::SuiteError> {
    let s = &loaded.suite;
    let unknown = |svc: &String| !s.services.contains_key(svc);
    if s.stack.compose.is_empty()
        || !s
            .checks
            .iter()
            .any(|c| c.kind.services().iter().any(unknown))
    {
        return Ok(());
    }
    let id = RunIdentity::new(loaded);
    let compose = Compose {
        override_file: None,
        ..compose_for(loaded, &id, Path::new("."))
    };
    let Ok(model) = static_model(loaded, &compose).await else {
        return Ok(());
    };
    for c in &s.checks {
        for svc in c.kind.services() {
            if unknown(&svc) && !model.services.contains_key(&svc) {
                let known = model.services.keys().map(String::as_str);
                let hint = crate::suite::nearest(&svc, known)
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                return Err(crate::suite::SuiteError::invalid(
                    &loaded.path,
                    Some(c.at),
                    format!(
                        "check `{}`: service `{svc}` is not defined by the compose files (services: {}){hint}",
                        c.name,
                        model.services.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The static `policy:` rules of a compose suite, without an engine (for `stackcheck validate`).
/// Err: compose could not resolve the files.
pub async fn static_policy(loaded: &LoadedSuite) -> Result<Vec<Outcome>, String> {
    let active = loaded.suite.policy.active();
    if active.is_empty() || loaded.suite.stack.compose.is_empty() {
        return Ok(Vec::new());
    }
    let id = RunIdentity::new(loaded);
    let compose = compose_for(loaded, &id, Path::new("."));
    let compose = Compose {
        override_file: None,
        ..compose
    };
    // Two compose processes at once: each costs a process start more than any work.
    let (model, raw) = tokio::join!(
        static_model(loaded, &compose),
        compose.config_raw(CONFIG_TIMEOUT)
    );
    let model = model?;
    let raw = raw.map_err(|e| e.to_string())?;
    let masker = Masker::for_suite(loaded);
    masker.add_model(&model, &loaded.suite.stack.secrets);
    Ok(active
        .into_iter()
        .map(|(rule, level)| {
            let t0 = Instant::now();
            let name = format!("{}::policy::{}", loaded.suite.suite, rule.name());
            let mut o =
                checks::policy::evaluate(rule, level, &loaded.suite, &model, &raw, &loaded.dir)
                    .into_outcome(&name, t0);
            o.message = masker.mask(&o.message);
            o
        })
        .collect())
}
