//! A scenario's `down` as the stack's users run it, minus the stop grace nothing can observe.
//!
//! `docker compose down` stops containers in reverse dependency order, each with its stop signal
//! and then, after its grace period (10 s by default), SIGKILL. A container's PID 1 is its PID
//! namespace's init: the kernel drops every signal it has no handler for (SIGKILL aside). A Python
//! or shell PID 1 without a SIGTERM handler therefore does nothing at all during its grace; the
//! engine just waits it out (10 s of MT5's `down_up`, measured).
//!
//! Skipping that wait changes nothing a shutdown can see only while no shutdown runs: when every
//! container compose is stopping (the running ones no other running container depends on) has
//! a PID 1 that drops its stop signal, every other running container is waiting for them to go,
//! and no handler is running anywhere. Only then are they killed at once, as the engine would at
//! the end of their grace. A catcher anywhere among them, and the down runs at its own pace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{KillContainerOptions, TopOptionsBuilder};

use super::model::{depended_on, Dependencies};
use super::{bounded, Engine, CALL_TIMEOUT, LABEL_SERVICE};

/// How often the project's containers are looked at while compose takes them down.
const POLL: Duration = Duration::from_millis(100);

/// The watch started by [`Engine::skip_idle_grace`]; [`IdleGrace::finish`] ends it.
pub struct IdleGrace {
    killed: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl IdleGrace {
    /// Ends the watch; the services whose idle grace was skipped.
    pub fn finish(self) -> Vec<String> {
        self.task.abort();
        let killed = self.killed.lock().unwrap_or_else(|e| e.into_inner());
        killed.iter().cloned().collect()
    }
}

impl Engine {
    /// Watches `project` while its `down` runs (start it just before) and kills, at once, the
    /// containers whose whole remaining stop is an idle grace (see the module's comment).
    pub fn skip_idle_grace(&self, project: &str, deps: Dependencies) -> IdleGrace {
        let killed = Arc::new(Mutex::new(BTreeSet::new()));
        let (engine, project, into) = (self.clone(), project.to_string(), killed.clone());
        let task = tokio::spawn(async move {
            // A container's answer is kept: one that catches its signal is waited for anyway.
            let mut drops: BTreeMap<String, bool> = BTreeMap::new();
            loop {
                let running = engine.running_services(&project).await;
                let stopping = stopping(&running, &deps);
                let mut all_idle = !stopping.is_empty();
                for id in &stopping {
                    let idle = match drops.get(id) {
                        Some(idle) => *idle,
                        None => engine.stop_signal_dropped(id).await,
                    };
                    drops.insert(id.clone(), idle);
                    all_idle &= idle;
                }
                if all_idle {
                    for id in &stopping {
                        // Looked at again just before: a handler installed since must be honoured.
                        if engine.stop_signal_dropped(id).await && engine.kill(id).await {
                            let service = running.get(id).cloned().unwrap_or_default();
                            into.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(service);
                        }
                    }
                }
                tokio::time::sleep(POLL).await;
            }
        });
        IdleGrace { killed, task }
    }

    /// Running service containers of `project` (not one-off `run` containers), id → service.
    async fn running_services(&self, project: &str) -> BTreeMap<String, String> {
        let listed = self.project_containers(project).await.unwrap_or_default();
        listed
            .into_iter()
            .filter(|c| c.state.map(|s| s.to_string()).as_deref() == Some("running"))
            .filter(|c| !super::is_oneoff(c))
            .filter_map(|c| {
                let service = c.labels?.get(LABEL_SERVICE)?.clone();
                Some((c.id?, service))
            })
            .collect()
    }

    /// Whether the kernel drops `id`'s stop signal: its PID 1 is the init of its own PID
    /// namespace and has no handler for the signal. Anything not proven (another engine, a
    /// shared PID namespace, an unknown signal, no `ps` answer) counts as a catcher.
    pub async fn stop_signal_dropped(&self, id: &str) -> bool {
        if self.libpod.is_some() {
            return false;
        }
        let Ok(info) = self.inspect(id).await else {
            return false;
        };
        let (Some(signal), Some(pid)) = (stop_signal(&info), init_pid(&info)) else {
            return false;
        };
        let opts = TopOptionsBuilder::new().ps_args("-o pid,caught").build();
        let top = bounded(
            format!("top {id}"),
            CALL_TIMEOUT,
            self.docker.top_processes(id, Some(opts)),
        )
        .await;
        let Ok(top) = top else { return false };
        let row = top
            .processes
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.first().and_then(|p| p.parse::<i64>().ok()) == Some(pid));
        match row
            .as_ref()
            .and_then(|r| r.get(1))
            .map(|m| caught(m, signal))
        {
            Some(Some(caught)) => !caught,
            _ => false,
        }
    }

    /// SIGKILL, as the engine sends it when a grace runs out; false if the container was gone.
    async fn kill(&self, id: &str) -> bool {
        let opts = KillContainerOptions::default();
        bounded(
            format!("kill {id}"),
            CALL_TIMEOUT,
            self.docker.kill_container(id, Some(opts)),
        )
        .await
        .is_ok()
    }
}

/// The running containers compose is stopping (or about to): those no other running container
/// depends on, directly or through services that are no longer running.
fn stopping(running: &BTreeMap<String, String>, deps: &Dependencies) -> Vec<String> {
    let up: BTreeSet<&String> = running.values().collect();
    let needed: BTreeSet<String> = up
        .iter()
        .flat_map(|s| reachable(s, deps))
        .filter(|d| up.contains(d))
        .collect();
    running
        .iter()
        .filter(|(_, service)| !needed.contains(*service))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Every service `service` depends on, transitively.
fn reachable(service: &str, deps: &Dependencies) -> BTreeSet<String> {
    let mut seen = depended_on(&BTreeSet::from([service.to_string()]), deps);
    seen.remove(service);
    seen
}

/// The host pid of the container's PID 1, when that process is its own namespace's init.
fn init_pid(info: &ContainerInspectResponse) -> Option<i64> {
    let mode = info
        .host_config
        .as_ref()?
        .pid_mode
        .clone()
        .unwrap_or_default();
    if !(mode.is_empty() || mode == "private") {
        return None;
    }
    let state = info.state.as_ref()?;
    (state.running == Some(true)).then_some(state.pid?)
}

/// The container's stop signal as a number (SIGTERM when none is set).
fn stop_signal(info: &ContainerInspectResponse) -> Option<u32> {
    let written = info
        .config
        .as_ref()?
        .stop_signal
        .clone()
        .unwrap_or_default();
    let name = if written.is_empty() {
        "SIGTERM"
    } else {
        &written
    };
    // Real-time signals are not parsed: counted as caught, their grace is waited out.
    let n = crate::suite::signal_number(name).ok()?;
    u32::try_from(n).ok().filter(|n| (1..=64).contains(n))
}

/// Whether the `ps -o caught` mask (hex, bit n-1 for signal n) has a handler for `signal`.
fn caught(mask: &str, signal: u32) -> Option<bool> {
    let bits = u64::from_str_radix(mask.trim(), 16).ok()?;
    Some(bits & (1u64 << (signal - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(pairs: &[(&str, &[&str])]) -> Dependencies {
        pairs
            .iter()
            .map(|(s, d)| (s.to_string(), d.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    fn running(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(id, s)| (id.to_string(), s.to_string()))
            .collect()
    }

    /// MT5: the runner depends on the API, which depends on the database and the cache; grafana
    /// on prometheus. Compose stops the runner and grafana first.
    #[test]
    fn compose_stops_what_nothing_running_depends_on() {
        let d = deps(&[
            ("runner", &["api", "db", "redis"]),
            ("api", &["db", "redis"]),
            ("grafana", &["prometheus"]),
        ]);
        let all = running(&[
            ("1", "runner"),
            ("2", "api"),
            ("3", "db"),
            ("4", "redis"),
            ("5", "grafana"),
            ("6", "prometheus"),
        ]);
        assert_eq!(stopping(&all, &d), ["1", "5"]);
        let later = running(&[("2", "api"), ("3", "db"), ("4", "redis")]);
        assert_eq!(stopping(&later, &d), ["2"]);
    }

    /// A dependency whose dependent is gone is stopped, even when a service further up still
    /// runs through a dependency compose's model no longer shows.
    #[test]
    fn a_chain_with_a_gap_still_protects_what_is_needed() {
        let d = deps(&[("a", &["b"]), ("b", &["c"])]);
        assert_eq!(stopping(&running(&[("1", "a"), ("3", "c")]), &d), ["1"]);
        // Replicas of one service do not wait for each other.
        let r = running(&[("1", "w"), ("2", "w")]);
        assert_eq!(stopping(&r, &deps(&[("w", &["w"])])), ["1", "2"]);
    }

    /// Masks as `ps -o caught` prints them for MT5's processes.
    #[test]
    fn a_mask_says_which_signals_have_handlers() {
        // python3 without a SIGTERM handler (SIGINT only).
        assert_eq!(caught("0000000180000002", 15), Some(false));
        assert_eq!(caught("0000000180000002", 2), Some(true));
        // uvicorn handles SIGTERM.
        assert_eq!(caught("0000000180004002", 15), Some(true));
        // postgres stops on SIGINT, which it handles.
        assert_eq!(caught("0000000000014a07", 2), Some(true));
        assert_eq!(caught("-", 15), None);
    }
}
