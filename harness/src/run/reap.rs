//! Runs that outlived their harness. Every resource a run creates carries `io.stackcheck.run` and
//! `io.stackcheck.owner-pid`; a run whose owner process is gone from this machine is stale. This
//! module finds and removes stale runs (`stackcheck reap`, and at the start of every `run`), and
//! is the watcher a `run` leaves beside itself: a separate process that, once the harness is gone
//! without having torn down (SIGKILL, OOM), removes what the harness's runs left.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::KeptStack;
use crate::engine::{
    Engine, EngineError, Leftovers, ResourceKind, LABEL_OWNER, LABEL_OWNER_PID, LABEL_RUN,
    LABEL_SUITE,
};

const WATCH_EVERY: Duration = Duration::from_millis(250);
/// After the owner is gone, sweep until two sweeps in a row find nothing (a `compose up` the
/// harness started may still be creating containers for a moment), at most this long.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// One run's resources on the engine.
#[derive(Clone, Debug)]
pub struct RunResources {
    /// The run id.
    pub run: String,
    /// The suite it ran.
    pub suite: String,
    /// The machine the owner ran on, when the run says (`io.stackcheck.owner`).
    pub owner_host: Option<String>,
    /// The harness process that owns it, when labelled.
    pub owner_pid: Option<i32>,
    /// Whether that process still runs on this machine.
    pub owner_alive: bool,
    /// What the run left, by kind.
    pub left: Leftovers,
    /// Set when the run left its stack up on purpose (`--keep`, `stackcheck up`): not stale.
    pub kept: Option<KeptStack>,
    /// After a reap, what its sweep could not remove (a network another container is attached
    /// to); empty otherwise.
    pub survived: Leftovers,
}

impl RunResources {
    /// One line for `stackcheck reap`.
    pub fn describe(&self) -> String {
        let here = self.owner_host.as_deref().is_none_or(|h| h == this_host());
        let owner = match self.owner_pid {
            Some(p) if !here => format!(
                "owner pid {p} on {}, another machine",
                self.owner_host.as_deref().unwrap_or_default()
            ),
            Some(p) if self.owner_alive => format!("owner pid {p} running"),
            Some(p) => format!("owner pid {p} gone"),
            None => "no owner pid".into(),
        };
        let owner = match &self.kept {
            Some(k) => format!("{owner}, kept by --keep {}", k.why),
            None => owner,
        };
        format!(
            "run {} (suite {}, {owner}): {} containers, {} networks, {} volumes, {} images",
            self.run,
            self.suite,
            self.left.containers.len(),
            self.left.networks.len(),
            self.left.volumes.len(),
            self.left.images.len()
        )
    }
}

fn this_host() -> String {
    let owner = crate::engine::owner();
    owner
        .rsplit_once('/')
        .map(|(h, _)| h.to_string())
        .unwrap_or(owner)
}

/// Whether a process with this pid exists on this machine (a permission error means it does).
pub fn pid_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == Errno::EPERM,
    }
}

/// Every run that has resources on the engine, grouped by run id.
pub async fn runs(engine: &Engine) -> Result<Vec<RunResources>, EngineError> {
    type Owner = (
        String,
        Option<String>,
        Option<i32>,
        Vec<crate::engine::Tagged>,
    );
    let mut by_run: BTreeMap<String, Owner> = BTreeMap::new();
    for t in engine.tagged(LABEL_RUN).await? {
        let run = t.labels.get(LABEL_RUN).cloned().unwrap_or_default();
        let entry = by_run.entry(run).or_insert_with(|| {
            let host = t
                .labels
                .get(LABEL_OWNER)
                .and_then(|o| o.rsplit_once('/'))
                .map(|(h, _)| h.to_string());
            (
                t.labels.get(LABEL_SUITE).cloned().unwrap_or_default(),
                host,
                t.labels.get(LABEL_OWNER_PID).and_then(|p| p.parse().ok()),
                Vec::new(),
            )
        });
        entry.3.push(t);
    }
    let here = this_host();
    Ok(by_run
        .into_iter()
        .map(|(run, (suite, owner_host, owner_pid, tagged))| {
            let kept = tagged
                .iter()
                .filter(|t| t.kind == ResourceKind::Volume)
                .find_map(|t| KeptStack::from_labels(&t.labels));
            RunResources {
                // A pid on another machine cannot be checked from here: counted as alive, so only
                // `--include-live` removes it.
                owner_alive: match owner_host.as_deref() {
                    Some(h) if h != here => true,
                    _ => owner_pid.is_some_and(pid_alive),
                },
                run,
                suite,
                owner_host,
                owner_pid,
                left: Leftovers::from_tagged(tagged),
                kept,
                survived: Leftovers::default(),
            }
        })
        .collect())
}

/// Removes the runs whose owner is gone and that were not kept on purpose (all of them with
/// `include_live`); returns what was found, before removal, and what survived it. `dry_run` only
/// lists.
pub async fn reap(
    engine: &Engine,
    include_live: bool,
    dry_run: bool,
) -> Result<Vec<RunResources>, EngineError> {
    let mut stale: Vec<RunResources> = runs(engine)
        .await?
        .into_iter()
        .filter(|r| {
            include_live || (!r.owner_alive && !r.kept.as_ref().is_some_and(KeptStack::on_purpose))
        })
        .collect();
    if !dry_run {
        for r in &mut stale {
            r.survived = engine.sweep(&format!("{LABEL_RUN}={}", r.run)).await?;
            if let Some(k) = &r.kept {
                if k.workdir.starts_with(std::env::temp_dir()) {
                    let _ = std::fs::remove_dir_all(&k.workdir);
                }
            }
        }
    }
    Ok(stale)
}

/// Where the watcher of harness `pid` writes its timeline while it sweeps (removed once the
/// engine stays clean): what a crash test quotes when a sweep is late.
pub fn watch_log(pid: i32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("stackcheck-watch-{pid}.log"))
}

/// The watcher's timeline: each step with the time since the owner was seen gone.
struct Timeline {
    file: Option<std::fs::File>,
    since: Instant,
}

impl Timeline {
    fn start(pid: i32) -> Timeline {
        Timeline {
            file: std::fs::File::create(watch_log(pid)).ok(),
            since: Instant::now(),
        }
    }

    fn say(&mut self, what: &str) {
        use std::io::Write;
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{:6.2}s {what}", self.since.elapsed().as_secs_f64());
        }
    }
}

/// The watcher: waits until process `pid` is gone, then removes everything it owned but the runs it
/// kept on purpose, sweeping until the engine stays clean. Returns what the first sweep found.
pub async fn watch(pid: i32) -> Result<Leftovers, EngineError> {
    while pid_alive(pid) {
        tokio::time::sleep(WATCH_EVERY).await;
    }
    let mut timeline = Timeline::start(pid);
    timeline.say(&format!("harness {pid} gone"));
    // Connected only now, and again until it answers: an engine busy enough to miss one 5 s
    // answer (at the run's start, or now) must not leave a killed harness's stack behind.
    let deadline = Instant::now() + SETTLE_LIMIT;
    let engine = loop {
        match Engine::connect().await {
            Ok(engine) => break engine,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => timeline.say(&format!("engine did not answer: {e}")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    timeline.say("engine connected");
    let engine = &engine;
    // This machine's pid: another machine's harness may have the same number.
    let label = format!("{LABEL_OWNER}={}", crate::engine::owner_of(pid));
    let first = not_kept(engine, &label).await.map(|(left, _)| left);
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut clean_in_a_row = 0;
    while clean_in_a_row < 2 && Instant::now() < deadline {
        // A listing can fail while resources vanish under it (a volume removed mid-list): that
        // is not "clean", so sweep again rather than give up.
        match not_kept(engine, &label).await {
            Ok((found, _)) if found.is_empty() => clean_in_a_row += 1,
            Ok((found, runs)) => {
                clean_in_a_row = 0;
                timeline.say(&format!("sweeping {}", found.describe()));
                for run in runs.iter().filter(|r| !r.is_empty()) {
                    let _ = engine.sweep(&format!("{label} & {LABEL_RUN}={run}")).await;
                }
                if runs.contains("") {
                    // Images without a run label are a build cut short between the classic
                    // builder's `--label` steps (owner first): never part of a kept stack.
                    engine.remove_built_images(&found.images).await;
                }
                timeline.say("swept");
            }
            // Never a blind sweep of the owner: it would take the stacks it kept with it.
            Err(e) => {
                clean_in_a_row = 0;
                timeline.say(&format!("listing failed: {e}"));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if clean_in_a_row >= 2 {
        let _ = std::fs::remove_file(watch_log(pid));
    } else {
        timeline.say("gave up: the engine did not stay clean");
    }
    first
}

/// What carries `label` (an owner) outside the runs that owner kept on purpose, and those runs.
async fn not_kept(
    engine: &Engine,
    label: &str,
) -> Result<(Leftovers, BTreeSet<String>), EngineError> {
    let tagged = engine.tagged(label).await?;
    let run_of = |t: &crate::engine::Tagged| t.labels.get(LABEL_RUN).cloned().unwrap_or_default();
    let kept: BTreeSet<String> = tagged
        .iter()
        .filter(|t| t.kind == ResourceKind::Volume)
        .filter(|t| KeptStack::from_labels(&t.labels).is_some_and(|k| k.on_purpose()))
        .map(run_of)
        .collect();
    let doomed: Vec<_> = tagged
        .into_iter()
        .filter(|t| !kept.contains(&run_of(t)))
        .collect();
    let runs = doomed.iter().map(run_of).collect();
    Ok((Leftovers::from_tagged(doomed), runs))
}

/// Starts `exe __watch <this pid>` (a `stackcheck` binary) beside this harness: if the harness
/// dies without tearing down (SIGKILL), the watcher removes what it owned. In its own process
/// group, so Ctrl-C (or a test runner signalling the harness's group) reaches only the harness,
/// which tears down itself. No stdio: a test runner must not wait on the watcher's pipes.
pub fn spawn_watcher(exe: &std::path::Path, engine: &Engine) {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(exe);
    engine.endpoint.apply(&mut cmd);
    let spawned = cmd
        .args(["__watch", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        eprintln!(
            "warning: no watcher for crash cleanup ({e}); `stackcheck reap` removes leftovers"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(pid_alive(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }
}
