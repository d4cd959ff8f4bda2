//! Stacks left up on purpose: `run --keep`, `stackcheck up`, `run --reuse` and `stackcheck down`.
//!
//! A kept run removes its own helpers (canary, probes), leaves the compose project, and marks
//! itself with an empty volume whose labels say what it is: project, compose files, ports mode,
//! moved subnets and where its generated override lives. The mark is on the engine, not in a file,
//! so every later process sees it: stale-run sweeps and the crash watcher leave a marked run alone,
//! `--reuse` finds it and `down` removes it with the same leak proof as a run's teardown.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::engine::{
    Compose, Engine, EngineError, Leftovers, ResourceKind, LABEL_KEPT, LABEL_OWNER,
    LABEL_OWNER_PID, LABEL_PROJECT, LABEL_RUN, LABEL_SUITE, LABEL_VISIT,
};
use crate::plan::{RunIdentity, SubnetMoves};
use crate::suite::LoadedSuite;

const LABEL_KEPT_PROJECT: &str = "io.stackcheck.kept.project";
const LABEL_KEPT_STACK: &str = "io.stackcheck.kept.stack";
const LABEL_KEPT_PORTS: &str = "io.stackcheck.kept.ports";
const LABEL_KEPT_SUBNETS: &str = "io.stackcheck.kept.subnets";
const LABEL_KEPT_WORKDIR: &str = "io.stackcheck.kept.workdir";
/// The `why` of a stack held by a live process's [`crate::Stack`].
const HELD: &str = "held";

/// When `run` leaves the stack up instead of tearing it down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Keep {
    /// When a test failed (or the run hit an infrastructure error); Ctrl-C still tears down.
    OnFailure,
    /// Whatever the verdict (not on Ctrl-C).
    Always,
    /// `stackcheck up`: the stack is the point of the run.
    #[value(skip)]
    Up,
    /// Up for a [`crate::Stack`] while its process lives: unlike the others, not kept on purpose
    /// once that process is gone, so sweeps and the watcher remove it then.
    #[value(skip)]
    Held,
}

impl Keep {
    fn word(self) -> &'static str {
        match self {
            Keep::OnFailure => "on-failure",
            Keep::Always => "always",
            Keep::Up => "up",
            Keep::Held => HELD,
        }
    }
}

/// A stack some earlier process left up, as its mark describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptStack {
    /// The kept run's id (its resources' `io.stackcheck.run`).
    pub run_id: String,
    /// Its compose project.
    pub project: String,
    /// The suite id.
    pub suite: String,
    /// `always`, `on-failure` or `up`.
    pub why: String,
    /// Compose files, env file and profiles it was brought up from ([`stack_of`]).
    pub stack: String,
    /// Brought up with ephemeral ports and run-unique names.
    pub ephemeral: bool,
    /// Where that run put the fixed subnets it moved.
    pub moves: SubnetMoves,
    /// The run's folder with its generated compose override (labels, ephemeral names).
    pub workdir: PathBuf,
    /// The process that kept it (`host/pid`).
    pub owner: String,
}

impl KeptStack {
    /// What a run of `loaded` with identity `id` leaves when it keeps its stack.
    pub(super) fn of(
        loaded: &LoadedSuite,
        id: &RunIdentity,
        why: Keep,
        ephemeral: bool,
        moves: SubnetMoves,
        workdir: PathBuf,
    ) -> KeptStack {
        KeptStack {
            run_id: id.run_id.clone(),
            project: id.project.clone(),
            suite: loaded.suite.id.clone(),
            why: why.word().into(),
            stack: stack_of(loaded),
            ephemeral,
            moves,
            workdir,
            owner: crate::engine::owner(),
        }
    }

    fn marker_name(&self) -> String {
        format!("sc-kept-{}", self.run_id)
    }

    fn labels(&self, id: &RunIdentity) -> BTreeMap<String, String> {
        let subnets: Vec<String> = self
            .moves
            .0
            .iter()
            .map(|(from, to)| format!("{from}>{to}"))
            .collect();
        let mut labels = id.labels.clone();
        labels.extend([
            (LABEL_KEPT.to_string(), self.why.clone()),
            (LABEL_KEPT_PROJECT.into(), self.project.clone()),
            (LABEL_KEPT_STACK.into(), self.stack.clone()),
            (LABEL_KEPT_PORTS.into(), ports_word(self.ephemeral).into()),
            (LABEL_KEPT_SUBNETS.into(), subnets.join(",")),
            (
                LABEL_KEPT_WORKDIR.into(),
                self.workdir.display().to_string(),
            ),
        ]);
        labels
    }

    /// The stack a marker's labels describe (None for a resource that is no marker).
    pub(crate) fn from_labels(
        labels: &std::collections::HashMap<String, String>,
    ) -> Option<KeptStack> {
        let get = |k: &str| labels.get(k).cloned();
        let moves = get(LABEL_KEPT_SUBNETS)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|pair| {
                let (from, to) = pair.split_once('>')?;
                Some((from.parse().ok()?, to.parse().ok()?))
            })
            .collect();
        Some(KeptStack {
            run_id: get(LABEL_RUN)?,
            project: get(LABEL_KEPT_PROJECT)?,
            suite: get(LABEL_SUITE)?,
            why: get(LABEL_KEPT)?,
            stack: get(LABEL_KEPT_STACK).unwrap_or_default(),
            ephemeral: get(LABEL_KEPT_PORTS).as_deref() == Some(ports_word(true)),
            moves: SubnetMoves(moves),
            workdir: get(LABEL_KEPT_WORKDIR).unwrap_or_default().into(),
            owner: get(LABEL_OWNER).unwrap_or_default(),
        })
    }

    /// Kept on purpose, beyond the life of the process that brought it up.
    pub fn on_purpose(&self) -> bool {
        self.why != HELD
    }

    /// What left it up, as the user typed it: `stackcheck up`, `--keep always`.
    pub fn left_up_by(&self) -> String {
        match self.why.as_str() {
            w if w == Keep::Up.word() => "`stackcheck up`".into(),
            w => format!("`--keep {w}`"),
        }
    }

    /// How to look at the kept stack and how to remove it.
    pub fn hint(&self, suite_path: &std::path::Path) -> String {
        if !self.on_purpose() {
            return format!(
                "held by this process: project {} (run {}), taken down when its Stack is dropped or the process ends",
                self.project, self.run_id
            );
        }
        format!(
            "kept (--keep {}): project {} (run {}); look: `docker compose -p {} ps`, `docker compose -p {} logs`; remove: `stackcheck down {}` or `stackcheck reap --include-live`",
            self.why,
            self.project,
            self.run_id,
            self.project,
            self.project,
            suite_path.display()
        )
    }

    /// The identity a later run adopts to look at this stack: the kept run's id and project (its
    /// containers and fixed names carry them), but this process as owner, so what that run creates
    /// is its own to remove and the kept stack is not.
    pub fn adopted_identity(&self) -> RunIdentity {
        RunIdentity {
            run_id: self.run_id.clone(),
            project: self.project.clone(),
            labels: BTreeMap::from([
                (LABEL_RUN.to_string(), self.run_id.clone()),
                (LABEL_SUITE.to_string(), self.suite.clone()),
                (LABEL_OWNER_PID.to_string(), std::process::id().to_string()),
                (LABEL_OWNER.to_string(), crate::engine::owner()),
                (LABEL_VISIT.to_string(), visit()),
            ]),
        }
    }

    /// The compose project as it was brought up (its override included, while it exists).
    pub fn compose(&self, loaded: &LoadedSuite) -> Compose {
        let id = self.adopted_identity();
        let override_file = self.workdir.join(OVERRIDE);
        id.compose(loaded, override_file.exists().then_some(override_file))
    }
}

/// The generated override's name inside a run's folder.
pub(super) const OVERRIDE: &str = "stackcheck.override.yaml";

fn ports_word(ephemeral: bool) -> &'static str {
    if ephemeral {
        "ephemeral"
    } else {
        "documented"
    }
}

/// What a suite's stack is brought up from: compose files, env file and profiles, resolved.
pub fn stack_of(loaded: &LoadedSuite) -> String {
    let compose = crate::plan::static_compose(loaded);
    let files: Vec<String> = compose
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let mut out = format!("compose files {}", files.join(", "));
    if let Some(env) = &compose.env_file {
        out.push_str(&format!("; env file {}", env.display()));
    }
    if !compose.profiles.is_empty() {
        out.push_str(&format!("; profiles {}", compose.profiles.join(", ")));
    }
    out
}

/// Ends a run by keeping its stack: removes what the run created beside the compose project
/// (canary, probe containers and networks), then marks the run. Returns what the run created
/// and still has on the engine that is not part of the kept stack (should be nothing).
pub(super) async fn keep(
    engine: &Engine,
    id: &RunIdentity,
    kept: &KeptStack,
) -> Result<Leftovers, EngineError> {
    let label = format!("{} & {LABEL_OWNER}={}", id.run_label(), kept.owner);
    for _ in 0..2 {
        let helpers = helpers(engine, &label).await?;
        for c in &helpers.containers {
            let _ = engine.remove(c).await;
        }
        for n in &helpers.networks {
            let _ = engine.remove_network(n).await;
        }
    }
    engine
        .create_marker(&kept.marker_name(), &kept.labels(id))
        .await?;
    helpers(engine, &label).await
}

/// Containers and networks carrying `label` that compose did not create: a run's helpers. Not its
/// claims: a stack left up still holds its host ports and names, so another run waits for its
/// `down` instead of colliding with it halfway through its `up`.
async fn helpers(engine: &Engine, label: &str) -> Result<Leftovers, EngineError> {
    let tagged = engine.tagged(label).await?;
    Ok(Leftovers::from_tagged(tagged.into_iter().filter(|t| {
        matches!(t.kind, ResourceKind::Container | ResourceKind::Network)
            && !t.labels.contains_key(LABEL_PROJECT)
            && !crate::engine::is_claim(&t.name)
    })))
}

/// Every kept stack on the engine (of suite `suite`, when given).
pub async fn kept(engine: &Engine, suite: Option<&str>) -> Result<Vec<KeptStack>, EngineError> {
    let label = match suite {
        Some(s) => format!("{LABEL_KEPT} & {LABEL_SUITE}={s}"),
        None => LABEL_KEPT.to_string(),
    };
    let mut out: Vec<KeptStack> = engine
        .tagged(&label)
        .await?
        .into_iter()
        .filter(|t| t.kind == ResourceKind::Volume)
        .filter_map(|t| KeptStack::from_labels(&t.labels))
        .collect();
    out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    out.dedup_by(|a, b| a.run_id == b.run_id);
    Ok(out)
}

/// Why `--reuse` cannot run `loaded` against what is up, in words; else the stack it adopts.
pub async fn reusable(engine: &Engine, loaded: &LoadedSuite) -> Result<KeptStack, String> {
    if loaded.suite.stack.compose.is_empty() {
        return Err(format!(
            "{}: --reuse works on compose stacks; this suite runs `stack.containers`",
            loaded.path.display()
        ));
    }
    let suite = &loaded.suite.id;
    let found = kept(engine, Some(suite))
        .await
        .map_err(|e| format!("cannot look for a kept stack of suite `{suite}`: {e}"))?;
    let path = loaded.path.display();
    let stack = match found.as_slice() {
        [] => {
            return Err(format!(
                "no stack of suite `{suite}` is up; bring one up with `stackcheck up {path}` (or keep one with `run --keep always`)"
            ))
        }
        [one] => one.clone(),
        many => {
            let runs: Vec<&str> = many.iter().map(|k| k.run_id.as_str()).collect();
            return Err(format!(
                "{} stacks of suite `{suite}` are up (runs {}); `stackcheck down {path}` and bring one up",
                many.len(),
                runs.join(", ")
            ));
        }
    };
    let want = stack_of(loaded);
    if stack.stack != want {
        return Err(format!(
            "the stack of suite `{suite}` that is up (project {}) was brought up from {}; this suite names {want}. `stackcheck down {path}` and `stackcheck up {path}` again",
            stack.project, stack.stack
        ));
    }
    still_there(
        engine,
        stack,
        &format!("`stackcheck down {path}` and `stackcheck up {path}` again"),
    )
    .await
}

/// The one kept stack brought up from the compose files, env file and profiles `loaded` names,
/// whatever its suite (`init --observe --reuse`, whose suite is not written yet).
pub async fn reusable_of_files(engine: &Engine, loaded: &LoadedSuite) -> Result<KeptStack, String> {
    let want = stack_of(loaded);
    let found: Vec<KeptStack> = kept(engine, None)
        .await
        .map_err(|e| format!("cannot look for kept stacks: {e}"))?
        .into_iter()
        // A stack another process holds goes with that process: never adopted.
        .filter(|k| k.stack == want && k.why != HELD)
        .collect();
    match found.as_slice() {
        [] => Err(format!(
            "no kept stack of {want} is up; bring one up with `stackcheck up SUITE` (a suite over these files)"
        )),
        [one] => still_there(engine, one.clone(), "`stackcheck down` it and bring it up again").await,
        many => {
            let projects: Vec<&str> = many.iter().map(|k| k.project.as_str()).collect();
            Err(format!(
                "{} kept stacks of {want} are up (projects {}); take all but one down with `stackcheck down`",
                many.len(),
                projects.join(", ")
            ))
        }
    }
}

/// The kept stack, unless its containers are gone (`then`: what to do about it).
async fn still_there(engine: &Engine, stack: KeptStack, then: &str) -> Result<KeptStack, String> {
    let live = engine
        .project_containers(&stack.project)
        .await
        .map_err(|e| format!("cannot list project {}: {e}", stack.project))?;
    if live.is_empty() {
        return Err(format!(
            "the kept stack of suite `{}` (project {}) has no containers any more; {then}",
            stack.suite, stack.project
        ));
    }
    Ok(stack)
}

/// Removes a kept stack with a run's teardown; returns what survived.
pub async fn down(
    engine: &Engine,
    loaded: &LoadedSuite,
    stack: &KeptStack,
) -> Result<Leftovers, crate::error::TeardownError> {
    let id = stack.adopted_identity();
    let compose = stack.compose(loaded).reaching(engine);
    let left = super::teardown(engine, &compose, &id).await?;
    if stack.workdir.starts_with(std::env::temp_dir()) {
        let _ = std::fs::remove_dir_all(&stack.workdir);
    }
    Ok(left)
}

/// A mark no other visit of a kept stack shares: this process and a count of its visits.
fn visit() -> String {
    static VISITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = VISITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", crate::engine::owner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_mark_reads_back_as_the_stack_it_describes() {
        let loaded = crate::suite::load_str(
            Path::new("/s/suite.yaml"),
            "suite: p\nstack: { compose: [c.yml], profiles: [debug] }\n",
        )
        .unwrap();
        let id = RunIdentity::new(&loaded);
        let moves = SubnetMoves(BTreeMap::from([(
            "172.30.0.0/24".parse().unwrap(),
            "10.9.8.0/24".parse().unwrap(),
        )]));
        let kept = KeptStack::of(&loaded, &id, Keep::OnFailure, true, moves, "/tmp/w".into());
        let labels: std::collections::HashMap<_, _> = kept.labels(&id).into_iter().collect();
        assert_eq!(KeptStack::from_labels(&labels), Some(kept.clone()));
        assert_eq!(kept.stack, "compose files /s/c.yml; profiles debug");
        assert_eq!(kept.left_up_by(), "`--keep on-failure`");
        assert!(kept
            .hint(Path::new("suite.yaml"))
            .contains("stackcheck down suite.yaml"));
    }
}
