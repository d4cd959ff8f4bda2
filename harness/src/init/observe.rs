//! `stackcheck init --observe`: a first suite from watching the stack run. The stack comes up as
//! `run` brings it up (its labels, ephemeral ports, teardown on every exit), and each service is
//! watched for a window: whether it stays up (healthy, when it has a healthcheck) or ends for
//! good; which container ports accept connections; what a few well-known HTTP paths answer on
//! them; whether a known server's own readiness command says it is ready. An observation becomes
//! a promise only when it was seen the same twice, and each promise says what was seen. The
//! suite is then run against the stack it came from before the stack is taken down.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::look::{look, Promise};
use super::{render, InitRequest};
use crate::engine::{ComposeError, ComposeModel, ContainerStatus, Health, ObservedState};
use crate::report::{Progress, Status};
use crate::suite::PortsMode;
use crate::{Stack, StackError};

/// Between the two looks whose agreement makes a promise.
const BETWEEN_LOOKS: Duration = Duration::from_secs(2);

/// What `init --observe` was asked for.
pub struct ObserveRequest {
    /// The compose project and where the suite goes.
    pub init: InitRequest,
    /// Only these services (and what they depend on) are started and watched; empty: all.
    pub services: Vec<String>,
    /// How long each service is watched once the stack is up.
    pub window: Duration,
    /// Watch the stack `stackcheck up` left up from these compose files (left up afterwards)
    /// instead of bringing one up.
    pub reuse: bool,
}

/// Why no observed suite was written.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The compose files do not resolve.
    #[error("the compose files do not resolve: {0}")]
    Compose(#[from] ComposeError),
    /// The stack could not be brought up, watched or taken down.
    #[error("{0}")]
    Stack(#[from] StackError),
    /// A file next to the suite could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// The suite `init --observe` wrote, and whether it passed on the stack it came from.
pub struct Written {
    /// The suite's text.
    pub text: String,
    /// Set when the suite did not pass on the stack it was written from: what failed.
    pub unproven: Option<String>,
}

/// What held while the stack ran: each watched service's state, and the checks seen twice.
pub struct Observed {
    pub(super) states: BTreeMap<String, Seen>,
    checks: Vec<Promise>,
    /// Persistence scenarios that held (each its check's lines).
    scenarios: Vec<String>,
}

/// One service, as watched: the state to promise (none: nothing held) and what was seen.
pub(super) struct Seen {
    pub(super) state: Option<String>,
    pub(super) note: String,
    /// The variables compose sets that its container has with the same value (no secret).
    pub(super) env: BTreeMap<String, String>,
    /// The variables compose sets that are left out as secrets.
    pub(super) secret_env: Vec<String>,
    /// The container paths mounted read-only.
    pub(super) read_only: Vec<String>,
}

/// Brings the stack up, watches it, writes what held and proves it on the stack: the suite's
/// text, for the caller to write.
pub async fn observe(
    req: &ObserveRequest,
    progress: &dyn Progress,
) -> Result<Written, ObserveError> {
    let model = super::model(&req.init).await?;
    let watching = beside(&req.init, "observing");
    write(&watching, &watch_suite(&model, req))?;
    let stack = match req.reuse {
        true => {
            progress.phase("looking for the kept stack of these compose files");
            Stack::builder(&watching).reuse().await
        }
        false => {
            progress.phase(&format!(
                "starting the stack to watch it ({})",
                watching.display()
            ));
            Stack::builder(&watching)
                .ports(PortsMode::Ephemeral)
                .up()
                .await
        }
    };
    let _ = std::fs::remove_file(&watching);
    let stack = stack?;
    progress.phase(&format!("watching project {}", stack.project()));
    // The signal handler the bring-up installed stays: Ctrl-C is this phase's to answer.
    let written = tokio::select! {
        w = watch_and_prove(&stack, &model, req, progress) => w,
        why = crate::run::interruption() => Err(StackError::Interrupted(why.into()).into()),
    };
    if !req.reuse {
        progress.phase("taking the stack down");
    }
    stack.down().await?;
    written
}

/// Watches the stack, writes what held and proves it there.
async fn watch_and_prove(
    stack: &Stack,
    model: &ComposeModel,
    req: &ObserveRequest,
    progress: &dyn Progress,
) -> Result<Written, ObserveError> {
    let observed = watch(stack, model, req, progress).await;
    let text = render(model, &req.init, Some(&observed));
    progress.phase("running the written suite against the stack it watched");
    let unproven = prove(stack, &req.init, &text).await?.err();
    Ok(Written { text, unproven })
}

/// A file beside the suite's output (its relative paths then resolve the same).
fn beside(init: &InitRequest, what: &str) -> PathBuf {
    let stem = init
        .output
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "stackcheck".into());
    init.output.with_file_name(format!(".{stem}.{what}.yaml"))
}

fn write(path: &PathBuf, text: &str) -> Result<(), ObserveError> {
    std::fs::write(path, text).map_err(|error| ObserveError::Write {
        path: path.clone(),
        error,
    })
}

/// The suite the stack is started with: its compose files and no promise, so that nothing about
/// the stack is assumed before it is seen.
fn watch_suite(model: &ComposeModel, req: &ObserveRequest) -> String {
    let suite_dir = super::absolute(
        req.init
            .output
            .parent()
            .unwrap_or(std::path::Path::new(".")),
    );
    let id = req
        .init
        .name
        .clone()
        .unwrap_or_else(|| super::default_id(&req.init.compose));
    let mut y = super::render_stack(model, &req.init, &suite_dir, &id, true);
    if !req.services.is_empty() {
        let _ = writeln!(y, "  services: {}", super::list(&req.services));
    }
    y.push_str("  timeout: 5m\nservices: {}\n");
    y
}

/// The services the stack started: those named (with what they depend on), else every one
/// outside a profile.
fn started(model: &ComposeModel, req: &ObserveRequest) -> Vec<String> {
    match req.services.is_empty() {
        true => model
            .services
            .iter()
            .filter(|(_, s)| s.profiles.is_empty())
            .map(|(n, _)| n.clone())
            .collect(),
        false => model
            .with_dependencies(req.services.clone())
            .into_iter()
            .collect(),
    }
}

async fn watch(
    stack: &Stack,
    model: &ComposeModel,
    req: &ObserveRequest,
    progress: &dyn Progress,
) -> Observed {
    let services = started(model, req);
    progress.phase(&format!(
        "watching {} service(s) for {} s",
        services.len(),
        req.window.as_secs()
    ));
    let mut states = watch_states(stack, &services, req.window).await;
    let secrets = super::container::secret_values(model);
    for (service, seen) in states.iter_mut().filter(|(_, s)| s.state.is_some()) {
        let got = stack.env(service).await.unwrap_or_default();
        (seen.env, seen.secret_env) = super::container::environment(model, service, &got, &secrets);
        seen.read_only = stack.read_only_mounts(service).await.unwrap_or_default();
    }
    let up: Vec<String> = states
        .iter()
        .filter(|(_, s)| s.state.as_deref().is_some_and(|s| !s.starts_with("exited")))
        .map(|(n, _)| n.clone())
        .collect();
    progress.phase(&format!(
        "looking at what {} running service(s) serve",
        up.len()
    ));
    let first = look(stack, model, &up).await;
    tokio::time::sleep(BETWEEN_LOOKS).await;
    let seen = first.agreed(&look(stack, model, &up).await);
    let mut checks = seen.promises;
    // A service that serves no port is known by what it says.
    for service in up.iter().filter(|s| !seen.accepting.contains_key(*s)) {
        let log = stack.logs(service, 500).await.unwrap_or_default();
        checks.extend(super::logs::said(service, &log, &secrets));
    }
    let between = super::topology::candidates(model, &up, &seen.accepting);
    if !between.is_empty() {
        progress.phase(&format!(
            "trying {} reach and isolation check(s) between the services",
            between.len()
        ));
        checks.extend(held_twice(stack, model, req, between).await);
    }
    let scenarios = persisted(stack, model, req, &states, progress).await;
    Observed {
        states,
        checks,
        scenarios,
    }
}

/// The checks of `candidates` that passed in each of two runs of them on the stack.
async fn held_twice(
    stack: &Stack,
    model: &ComposeModel,
    req: &ObserveRequest,
    candidates: Vec<Promise>,
) -> Vec<Promise> {
    let mut suite = format!("{}checks:\n", watch_suite(model, req));
    for p in &candidates {
        p.render(&mut suite);
    }
    let mut kept = candidates;
    for _ in 0..2 {
        let Ok(Ok(report)) = outcomes(stack, &req.init, &suite).await else {
            return Vec::new();
        };
        kept.retain(|p| {
            let name = format!("::checks::{}", p.name);
            report
                .outcomes
                .iter()
                .any(|o| o.name.ends_with(&name) && o.status == Status::Passed)
        });
    }
    kept
}

/// The persistence scenarios of the servers that stayed up with their data on a named volume,
/// each kept only when it held on the stack (it takes the stack down and up once).
async fn persisted(
    stack: &Stack,
    model: &ComposeModel,
    req: &ObserveRequest,
    states: &BTreeMap<String, Seen>,
    progress: &dyn Progress,
) -> Vec<String> {
    let named: Vec<&String> = model.volumes.keys().collect();
    let mut out = Vec::new();
    for (service, seen) in states {
        let up = seen
            .state
            .as_deref()
            .is_some_and(|s| !s.starts_with("exited"));
        let Some(scenario) = model
            .services
            .get(service)
            .filter(|_| up)
            .and_then(|s| super::persist::scenario(service, s, &named))
        else {
            continue;
        };
        progress.phase(&format!(
            "trying whether `{service}` keeps its data across down_up"
        ));
        let suite = format!("{}checks:\n{scenario}", watch_suite(model, req));
        match prove(stack, &req.init, &suite).await {
            Ok(Ok(())) => out.push(scenario),
            Ok(Err(why)) => progress.phase(&format!(
                "`{service}`'s data was not seen surviving down_up, not promised: {why}"
            )),
            Err(e) => progress.phase(&format!("`{service}`: {e}")),
        }
    }
    out
}

/// How one service went while watched.
#[derive(Default)]
struct Track {
    first: Option<(ObservedState, i64)>,
    last: Option<(ObservedState, i64)>,
    /// Since when it has been seen running at every look with no restart (from the watch's
    /// start); None while it is not running.
    steady_since: Option<Duration>,
}

impl Track {
    /// One look, `at` into the watch: a look that finds it not running, or restarted since the
    /// last look, starts its steady stretch anew.
    fn saw(&mut self, now: (ObservedState, i64), at: Duration) {
        let restarted = self.last.as_ref().is_some_and(|(_, n)| now.1 > *n);
        self.steady_since = match (now.0.status == ContainerStatus::Running, restarted) {
            (false, _) => None,
            (true, true) => Some(at),
            (true, false) => self.steady_since.or(Some(at)),
        };
        self.first.get_or_insert(now.clone());
        self.last = Some(now);
    }

    /// How long it has been steady, `at` into the watch.
    fn steady(&self, at: Duration) -> Duration {
        self.steady_since
            .map(|s| at.saturating_sub(s))
            .unwrap_or_default()
    }
}

/// Each service's state every second for `window`, and longer (up to 2 minutes) while a
/// healthcheck has not decided yet; what held is the state to promise.
async fn watch_states(
    stack: &Stack,
    services: &[String],
    window: Duration,
) -> BTreeMap<String, Seen> {
    let t0 = Instant::now();
    let mut tracks: BTreeMap<String, Track> = services
        .iter()
        .map(|s| (s.clone(), Track::default()))
        .collect();
    loop {
        for (service, track) in tracks.iter_mut() {
            match stack.state(service).await {
                Ok(now) => track.saw(now, t0.elapsed()),
                Err(_) => track.steady_since = None,
            }
        }
        let elapsed = t0.elapsed();
        // A healthcheck not decided yet, or a service that restarted while starting and has not
        // been steady for a whole window since: watched longer (up to 2 minutes).
        let undecided = tracks.values().any(|t| {
            let last = t.last.as_ref().map(|(s, _)| s);
            last.is_some_and(|s| s.health == Some(Health::Starting))
                || (t.steady_since.is_some_and(|s| s > Duration::ZERO)
                    && t.steady(elapsed) < window)
        });
        if elapsed >= window && (!undecided || elapsed >= Duration::from_secs(120)) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let at = t0.elapsed();
    tracks
        .into_iter()
        .map(|(service, t)| (service, judge(&t, at, window)))
        .collect()
}

/// The state a track supports, `at` into the watch, with what was seen. A service promised up
/// was seen up with no restart for a whole `window`: restarts while it started (a dependency not
/// ready yet, which its restart policy rides out) are said, and earlier than that window.
fn judge(t: &Track, at: Duration, window: Duration) -> Seen {
    let none = |note: String| Seen::new(None, note);
    let (Some((first, restarts_before)), Some((last, restarts_after))) = (&t.first, &t.last) else {
        return none("never seen: no container".into());
    };
    let secs = at.as_secs();
    let restarts = restarts_after - restarts_before;
    let steady = t.steady(at).as_secs();
    let steady_enough = t.steady(at) >= window;
    if restarts > 0 && !steady_enough {
        return none(format!(
            "restarted {restarts}× while watched ({secs} s), up {steady} s since: not promised"
        ));
    }
    let starting = match restarts {
        0 => String::new(),
        n => format!("restarted {n}× while it started, then "),
    };
    match (&last.status, last.health) {
        (ContainerStatus::Exited(0), _) => Seen::new(
            Some("exited:0"),
            format!("observed: exited with code 0 and stayed so ({secs} s)"),
        ),
        (ContainerStatus::Exited(code), _) => none(format!(
            "observed: exited with code {code}: a failing job or a crash? Not promised"
        )),
        (ContainerStatus::Running, Some(Health::Healthy)) if steady_enough => Seen::new(
            Some("healthy"),
            format!("observed: {starting}healthy, up without a restart for {steady} s"),
        ),
        (ContainerStatus::Running, None) if steady_enough => Seen::new(
            Some("running"),
            format!("observed: {starting}running, up without a restart for {steady} s"),
        ),
        (ContainerStatus::Running, Some(h)) => none(format!(
            "observed: its healthcheck said {h} after {secs} s: not promised"
        )),
        _ => none(format!(
            "observed: {first} at first, {last} after {secs} s: not promised"
        )),
    }
}

impl Seen {
    fn new(state: Option<&str>, note: String) -> Seen {
        Seen {
            state: state.map(String::from),
            note,
            env: BTreeMap::new(),
            secret_env: Vec::new(),
            read_only: Vec::new(),
        }
    }
}

impl Observed {
    /// `checks:`, one per promise that held twice, each saying what was seen.
    pub(super) fn render_checks(&self, y: &mut String) {
        if self.checks.is_empty() && self.scenarios.is_empty() {
            let _ = writeln!(
                *y,
                "\n# Nothing the stack serves held twice while it was watched."
            );
            return;
        }
        let _ = writeln!(
            *y,
            "\n# What the stack served, seen the same twice while it ran.\nchecks:"
        );
        for p in &self.checks {
            p.render(y);
        }
        for scenario in &self.scenarios {
            y.push_str(scenario);
        }
    }
}

/// A suite's report on the stack: Err(why it did not load) inside.
async fn outcomes(
    stack: &Stack,
    init: &InitRequest,
    text: &str,
) -> Result<Result<crate::report::SuiteReport, String>, ObserveError> {
    let path = beside(init, "observed");
    write(&path, text)?;
    let loaded = crate::plan::load_file(&path);
    let _ = std::fs::remove_file(&path);
    Ok(match loaded {
        Ok(l) => Ok(stack.check_with(&l).await),
        Err(e) => Err(format!("it does not load (please report): {e}")),
    })
}

/// Runs the written suite against the stack it was written from: Err(what failed) inside.
async fn prove(
    stack: &Stack,
    init: &InitRequest,
    text: &str,
) -> Result<Result<(), String>, ObserveError> {
    let report = match outcomes(stack, init, text).await? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let failed: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| format!("{}: {}", o.name, o.message))
        .collect();
    Ok(match (report.infra_error, failed.is_empty()) {
        (Some(e), _) => Err(e),
        (None, true) => Ok(()),
        (None, false) => Err(failed.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: ContainerStatus, health: Option<Health>) -> (ObservedState, i64) {
        (ObservedState { status, health }, 0)
    }

    #[test]
    fn only_what_held_is_promised() {
        let window = Duration::from_secs(10);
        let at = |s| Duration::from_secs(s);
        // Looks a second apart: (state, restarts) at each.
        let watched = |looks: &[(ObservedState, i64)]| {
            let mut t = Track::default();
            for (n, l) in looks.iter().enumerate() {
                t.saw(l.clone(), at(n as u64));
            }
            judge(&t, at(looks.len() as u64 - 1), window)
        };
        let running = |n| (state(ContainerStatus::Running, None).0, n);
        let exited = |c| state(ContainerStatus::Exited(c), None);
        let up = vec![running(0); 12];
        assert_eq!(watched(&up).state.as_deref(), Some("running"));
        let mut job = vec![running(0); 2];
        job.extend(vec![exited(0); 10]);
        assert_eq!(watched(&job).state.as_deref(), Some("exited:0"));
        let mut failed = vec![running(0); 2];
        failed.extend(vec![exited(3); 10]);
        assert_eq!(watched(&failed).state, None);
        // Not running at one look, running again at the end without a restart counted: a crash
        // the restart hid, up for less than a window since.
        let mut hidden = vec![running(0); 6];
        hidden.push(exited(1));
        hidden.extend(vec![running(0); 5]);
        assert_eq!(watched(&hidden).state, None);
        let healthy = |n| (state(ContainerStatus::Running, Some(Health::Healthy)).0, n);
        assert_eq!(
            watched(&vec![healthy(0); 12]).state.as_deref(),
            Some("healthy")
        );
        // Restarted twice late in the watch: not promised, and said.
        let mut late = vec![running(0); 8];
        late.extend([running(1), running(2), running(2), running(2)]);
        let seen = watched(&late);
        assert_eq!(seen.state, None);
        assert!(seen.note.contains("restarted 2×"), "{}", seen.note);
        // Restarted twice while it started, then up a whole window: promised, saying so.
        let mut settled = vec![running(0), running(1), running(2)];
        settled.extend(vec![healthy(2); 11]);
        let seen = watched(&settled);
        assert_eq!(seen.state.as_deref(), Some("healthy"));
        assert!(
            seen.note.contains("restarted 2× while it started"),
            "{}",
            seen.note
        );
    }
}
