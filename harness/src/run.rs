//! Drives one suite through every stage: plan → compose config → build → up and wait → checks,
//! then always tears down (`down -v`, then a sweep by the run's label) and proves nothing is left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::checks::{self, state, Ctx, Outcome, Status, Verdict};
use crate::engine::{Compose, Engine, Leftovers};
use crate::plan::{self, PlannedTest, RunIdentity, ServicePromise, TestKind};
use crate::report::{Masker, Progress};
use crate::suite::{CheckKind, LoadedSuite};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const CONFIG_TIMEOUT: Duration = Duration::from_secs(60);
const DOWN_TIMEOUT: Duration = Duration::from_secs(120);

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
}

impl SuiteReport {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.status == Status::Failed).count()
    }
}

/// Why the main phase stopped early; the remaining tests fail with this reason.
enum Stop {
    Infra(String),
    NotRun(String),
}

struct Runner<'a> {
    loaded: &'a LoadedSuite,
    engine: &'a Engine,
    progress: &'a dyn Progress,
    masker: Masker,
    tests: Vec<PlannedTest>,
    results: BTreeMap<String, Outcome>,
}

impl Runner<'_> {
    fn record(&mut self, name: &str, verdict: Verdict, started: Instant) {
        let mut outcome = verdict.into_outcome(name, started);
        outcome.message = self.masker.mask(&outcome.message);
        outcome.detail = self.masker.mask(&outcome.detail);
        self.progress.outcome(&outcome);
        self.results.insert(name.to_string(), outcome);
    }

    fn tests_where(&self, f: impl Fn(&TestKind) -> bool) -> Vec<PlannedTest> {
        self.tests.iter().filter(|t| f(&t.kind)).cloned().collect()
    }
}

/// Runs one suite against a connected engine. Never leaves the stack behind: teardown runs after
/// success, failure and Ctrl-C alike.
pub async fn run_suite(loaded: &LoadedSuite, engine: &Engine, progress: &dyn Progress) -> SuiteReport {
    let started = Instant::now();
    let id = RunIdentity::new(loaded);
    let tests = plan::tests(&loaded.suite);
    let masker = Masker::for_suite(loaded);
    let mut runner = Runner { loaded, engine, progress, masker, tests, results: BTreeMap::new() };
    let workdir = std::env::temp_dir().join(format!("stackcheck-{}", id.run_id));
    let compose = compose_for(loaded, &id, &workdir);
    progress.phase(&format!("{}: project {} (run {})", loaded.suite.suite, id.project, id.run_id));

    let mut interrupted = false;
    let stop = {
        let main = main_phase(&mut runner, &compose, &id, &workdir);
        tokio::select! {
            r = main => r.err(),
            _ = tokio::signal::ctrl_c() => { interrupted = true; Some(Stop::NotRun("interrupted (Ctrl-C)".into())) }
        }
    };

    progress.phase(&format!("{}: tearing down {}", loaded.suite.suite, id.project));
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
    let no_leaks = runner.tests.iter().find(|t| t.kind == TestKind::NoLeaks).map(|t| t.name.clone());
    if let Some(name) = no_leaks {
        let t0 = Instant::now();
        let v = match leftovers {
            Ok(l) if l.is_empty() => Verdict::pass(format!("nothing labelled {} remains", id.run_label())),
            Ok(l) => Verdict::fail(format!("left behind after teardown: {}", describe(&l))),
            Err(e) => Verdict::fail(format!("could not list leftovers: {e}")),
        };
        runner.record(&name, v, t0);
    }
    let outcomes = runner
        .tests
        .iter()
        .map(|t| {
            runner.results.get(&t.name).cloned().unwrap_or_else(|| Outcome {
                name: t.name.clone(),
                status: Status::Failed,
                message: format!("not run: {reason}"),
                detail: String::new(),
                duration_ms: 0,
            })
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
        override_file: Some(workdir.join("stackcheck.override.json")),
    }
}

async fn main_phase(r: &mut Runner<'_>, compose: &Compose, id: &RunIdentity, workdir: &Path) -> Result<(), Stop> {
    let suite = &r.loaded.suite;
    let budget = suite.stack.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
    let deadline = Instant::now() + budget;

    // 1. The compose model, as compose itself resolves it.
    let t0 = Instant::now();
    let config_test = format!("{}::stack::config", suite.suite);
    let model = match compose.config(CONFIG_TIMEOUT).await {
        Ok(m) => m,
        Err(e) => {
            r.record(&config_test, Verdict::fail("docker compose config failed").with_detail(e.to_string()), t0);
            return Err(Stop::NotRun("the compose files do not resolve".into()));
        }
    };
    let named = named_services(r.loaded);
    let missing: Vec<&String> = named.iter().filter(|s| !model.services.contains_key(*s)).collect();
    let v = if missing.is_empty() {
        Verdict::pass(format!("{} services, {} networks, {} volumes", model.services.len(), model.networks.len(), model.volumes.len()))
    } else {
        let known: Vec<&String> = model.services.keys().collect();
        Verdict::fail(format!("services named by the suite but not defined by compose: {missing:?} (defined: {known:?})"))
    };
    r.record(&config_test, v, t0);

    std::fs::create_dir_all(workdir).map_err(|e| Stop::Infra(format!("cannot create {}: {e}", workdir.display())))?;
    let override_file = compose.override_file.clone().unwrap_or_default();
    std::fs::write(&override_file, id.label_override(&model).to_string())
        .map_err(|e| Stop::Infra(format!("cannot write {}: {e}", override_file.display())))?;

    let selected: Vec<String> =
        if suite.stack.services.is_empty() { model.services.keys().cloned().collect() } else { suite.stack.services.clone() };
    let selected: Vec<String> = selected.into_iter().filter(|s| model.services.contains_key(s)).collect();

    // 2. Images that cannot be built must already exist: offline, nothing can be pulled.
    let mut absent = Vec::new();
    for s in &selected {
        let svc = &model.services[s];
        if svc.build.is_none() {
            let tag = svc.image.clone().unwrap_or_default();
            match r.engine.image(&tag).await {
                Ok(Some(_)) => {}
                Ok(None) => absent.push(format!("{tag} (service {s})")),
                Err(e) => return Err(Stop::Infra(e.to_string())),
            }
        }
    }
    if !absent.is_empty() {
        return Err(Stop::Infra(format!(
            "images not present on the engine and not pullable offline: {}; build them with `bash ci/images.sh`",
            absent.join(", ")
        )));
    }

    // 3. Build what compose builds, the way compose builds it.
    let mut to_build: Vec<String> = selected.iter().filter(|s| model.services[*s].build.is_some()).cloned().collect();
    for spec in suite.images.values() {
        if let Some(s) = &spec.service {
            if model.services.get(s).is_some_and(|m| m.build.is_some()) && !to_build.contains(s) {
                to_build.push(s.clone());
            }
        }
    }
    if !to_build.is_empty() {
        let t0 = Instant::now();
        r.progress.phase(&format!("building {}", to_build.join(", ")));
        let progress = r.progress;
        let built = compose.build(&to_build, deadline.saturating_duration_since(Instant::now()), |l| progress.detail(l)).await;
        for t in r.tests_where(|k| matches!(k, TestKind::Build { .. })) {
            let TestKind::Build { image } = &t.kind else { continue };
            let v = match &built {
                Ok(()) => match r.engine.image(image).await {
                    Ok(Some(_)) => Verdict::pass(format!("built in {:.1}s", t0.elapsed().as_secs_f32())),
                    Ok(None) => Verdict::fail(format!("the build succeeded but no image is tagged `{image}`")),
                    Err(e) => Verdict::fail(e.to_string()),
                },
                Err(e) => Verdict::fail("docker compose build failed").with_detail(e.tail().to_string()),
            };
            r.record(&t.name, v, t0);
        }
        if built.is_err() {
            return Err(Stop::NotRun("the build failed".into()));
        }
    }
    for t in r.tests_where(|k| matches!(k, TestKind::Image { .. })) {
        let TestKind::Image { image, promise } = &t.kind else { continue };
        let t0 = Instant::now();
        let v = checks::check_image(r.engine, image, promise, &suite.images[image]).await;
        r.record(&t.name, v, t0);
    }

    // 4. Up, judging each service's state ourselves (`up --wait` cannot judge one-shots).
    let (wants, undefined): (Vec<_>, Vec<_>) =
        suite.services.iter().map(|(name, spec)| (name.clone(), spec.state)).partition(|(name, _)| model.services.contains_key(name));
    for (service, _) in undefined {
        let known: Vec<&String> = model.services.keys().collect();
        let v = Verdict::fail(format!("service `{service}` is not defined in the compose files (services: {known:?})"));
        r.record(&format!("{}::service::{service}::state", suite.suite), v, Instant::now());
    }
    r.progress.phase(&format!("starting {} services", selected.len()));
    let progress = r.progress;
    let up = compose.up(&selected, deadline.saturating_duration_since(Instant::now()), |l| progress.detail(l));
    let report = state::bring_up_and_wait(r.engine, &id.project, &wants, deadline, up, |l| progress.detail(l)).await;
    let t0 = Instant::now();
    for (service, verdict) in report.verdicts {
        r.record(&format!("{}::service::{service}::state", suite.suite), verdict, t0);
    }
    if let Some(e) = &report.up_error {
        r.progress.phase(&format!("docker compose up failed: {}", checks::snippet(e, 300)));
    }

    // 5. Every other promise, against the model and the live stack.
    let ctx = Ctx { engine: r.engine, model: &model, loaded: r.loaded, containers: &report.containers };
    for t in r.tests.clone() {
        let t0 = Instant::now();
        let v = match &t.kind {
            TestKind::Service { service, promise } if *promise != ServicePromise::State => {
                checks::check_service(&ctx, service, promise, &suite.services[service]).await
            }
            TestKind::Network { name } => checks::check_network(&ctx, name, &suite.networks[name]).await,
            TestKind::Volume { name } => checks::check_volume(&ctx, name).await,
            TestKind::Check { index } => {
                let check = &suite.checks[*index];
                r.progress.phase(&format!("check: {}", check.name));
                checks::check_smoke(&ctx, check).await
            }
            _ => continue,
        };
        r.record(&t.name, v, t0);
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
        match &c.kind {
            CheckKind::Http(p) => names.push(p.service.clone()),
            CheckKind::Tcp(p) => names.push(p.service.clone()),
            CheckKind::Exec(p) => names.push(p.service.clone()),
            CheckKind::Files(_) => {}
        }
    }
    names.sort();
    names.dedup();
    names
}

/// `down -v`, then remove anything still carrying the run's label; returns what survived.
pub async fn teardown(engine: &Engine, compose: &Compose, id: &RunIdentity) -> Result<Leftovers, String> {
    // Without the override (not yet written) compose still finds the project by name.
    let mut compose = compose.clone();
    if compose.override_file.as_ref().is_some_and(|f| !f.exists()) {
        compose.override_file = None;
    }
    let _ = compose.down(DOWN_TIMEOUT).await;
    engine.sweep(&id.run_label()).await.map_err(|e| e.to_string())
}

fn describe(l: &Leftovers) -> String {
    let mut parts = Vec::new();
    if !l.containers.is_empty() {
        parts.push(format!("containers {:?}", l.containers));
    }
    if !l.networks.is_empty() {
        parts.push(format!("networks {:?}", l.networks));
    }
    if !l.volumes.is_empty() {
        parts.push(format!("volumes {:?}", l.volumes));
    }
    parts.join(", ")
}
