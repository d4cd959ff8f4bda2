//! What the engine reports as it happens: a compose project's containers starting, exiting or
//! changing health (so a wait looks the moment something changed, not a poll later), and networks
//! anyone creates or removes.
//!
//! Networks: each such change reprograms Docker's firewall,
//! and while it does, a container on an internal or separate network can reach across: measured
//! here (Docker 20.10), a container on an internal network connected to a published port on
//! another network in most tries while another client created and removed networks, and in none
//! before or after. A crossing proves a leak only when no change overlapped it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;

use super::{Engine, LABEL_PROJECT};

/// Wakes a waiter each time a container of a project starts, exits or changes health.
pub struct ContainerChanges {
    rx: tokio::sync::mpsc::Receiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ContainerChanges {
    /// Resolves at the next change; never, once the engine's stream ended (an engine without
    /// events leaves the waiter to its own poll).
    pub async fn next(&mut self) {
        if self.rx.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for ContainerChanges {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long after a probe a change is still looked for: the engine reports a change once its
/// firewall rules are in place, which is after the moment they let traffic through.
const LINGER: Duration = Duration::from_secs(1);

/// The networks created or removed since [`Engine::watch_network_changes`], by anyone.
pub struct NetworkChanges {
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Engine {
    /// Starts watching `project`'s containers for starts, exits and health changes.
    pub fn container_changes(&self, project: &str) -> ContainerChanges {
        let options = EventsOptions {
            filters: Some(HashMap::from([
                ("type".into(), vec!["container".into()]),
                ("label".into(), vec![format!("{LABEL_PROJECT}={project}")]),
                // The engine matches `health_status` against `health_status: healthy` and the rest.
                (
                    "event".into(),
                    ["start", "die", "health_status"].map(String::from).to_vec(),
                ),
            ])),
            ..Default::default()
        };
        let mut events = self.docker.events(Some(options));
        // One pending wake is enough: the waiter looks at everything when it wakes.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(async move {
            while let Some(Ok(_)) = events.next().await {
                let _ = tx.try_send(());
            }
        });
        ContainerChanges { rx, task }
    }

    /// Starts noting every network the engine creates or removes. An engine that does not stream
    /// events yields none, so a crossing there counts as a leak, as it would without the watch.
    pub fn watch_network_changes(&self) -> NetworkChanges {
        let options = EventsOptions {
            filters: Some(HashMap::from([("type".into(), vec!["network".into()])])),
            ..Default::default()
        };
        let mut events = self.docker.events(Some(options));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                let action = event.action.unwrap_or_default();
                if !matches!(action.as_str(), "create" | "destroy" | "remove") {
                    continue;
                }
                let name = event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|a| a.get("name").cloned())
                    .unwrap_or_default();
                into.lock().unwrap().push(format!("{action} {name}"));
            }
        });
        NetworkChanges { seen, task }
    }
}

impl NetworkChanges {
    /// The changes seen until a moment after now (a second: the engine reports a change once its
    /// rules are in place); ends the watch.
    pub async fn finish(self) -> Vec<String> {
        tokio::time::sleep(LINGER).await;
        self.task.abort();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for NetworkChanges {
    fn drop(&mut self) {
        self.task.abort();
    }
}
