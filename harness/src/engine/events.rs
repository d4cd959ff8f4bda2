//! What the engine reports as it happens: a compose project's containers starting, exiting or
//! changing health (so a wait looks the moment something changed, not a poll later), networks
//! anyone creates or removes, and a run's containers and networks removed by someone else.
//!
//! Networks: each such change reprograms Docker's firewall,
//! and while it does, a container on an internal or separate network can reach across: measured
//! here (Docker 20.10), a container on an internal network connected to a published port on
//! another network in most tries while another client created and removed networks, and in none
//! before or after. A crossing proves a leak only when no change overlapped it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A run's container or network gone, as the engine reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// `container` or `network`.
    pub kind: &'static str,
    /// The container's compose service, or the network's name.
    pub name: String,
    /// When it was seen.
    pub seen: Instant,
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            "container" => write!(f, "the container of `{}`", self.name),
            _ => write!(f, "network `{}`", self.name),
        }
    }
}

/// How long after the run's own removal ends its events may still arrive.
const OWN_SLACK: Duration = Duration::from_secs(2);

/// The removals of a run's containers (its compose project's, one-offs aside) and networks,
/// watched from [`Engine::watch_removals`]; those the run makes itself are marked with
/// [`Removals::own`]. Clones share one watch.
#[derive(Clone)]
pub struct Removals {
    inner: Arc<RemovalsInner>,
}

struct RemovalsInner {
    seen: Mutex<Vec<Removal>>,
    /// The run's own removals: from, until (open while under way).
    own: Mutex<Vec<(Instant, Option<Instant>)>>,
    changed: tokio::sync::Notify,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RemovalsInner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// While it lives, removals are the run's own (`down_up`); a moment after it drops too.
pub struct OwnRemoval {
    inner: Arc<RemovalsInner>,
    index: usize,
}

impl Drop for OwnRemoval {
    fn drop(&mut self) {
        let mut own = self.inner.own.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = own.get_mut(self.index) {
            window.1 = Some(Instant::now());
        }
    }
}

impl Engine {
    /// Starts watching the removals of the containers of compose `project` and of the networks
    /// of run `run_id` (named after the project, or with the run id when the compose file fixes
    /// a name).
    pub fn watch_removals(&self, project: &str, run_id: &str) -> Removals {
        let options = EventsOptions {
            filters: Some(HashMap::from([
                ("type".into(), vec!["container".into(), "network".into()]),
                ("event".into(), vec!["destroy".into(), "remove".into()]),
            ])),
            ..Default::default()
        };
        let mut events = self.docker.events(Some(options));
        let (project, run_id) = (project.to_string(), run_id.to_string());
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<RemovalsInner>| {
            let weak = weak.clone();
            let task = tokio::spawn(async move {
                while let Some(Ok(event)) = events.next().await {
                    let Some(removal) = removal_of(&event, &project, &run_id) else {
                        continue;
                    };
                    let Some(inner) = weak.upgrade() else { return };
                    inner
                        .seen
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(removal);
                    inner.changed.notify_waiters();
                }
            });
            RemovalsInner {
                seen: Mutex::default(),
                own: Mutex::default(),
                changed: tokio::sync::Notify::new(),
                task,
            }
        });
        Removals { inner }
    }
}

/// The run's container or network an event removed, if it is one.
fn removal_of(
    event: &bollard::models::EventMessage,
    project: &str,
    run_id: &str,
) -> Option<Removal> {
    let attributes = event.actor.as_ref()?.attributes.as_ref()?;
    let name = attributes.get("name").cloned().unwrap_or_default();
    let kind = match event.typ? {
        bollard::models::EventMessageTypeEnum::CONTAINER => {
            let ours = attributes.get(LABEL_PROJECT).map(String::as_str) == Some(project);
            // `compose run` one-offs are removed by design; so are a build's intermediate
            // containers, which carry the project's labels from the image they build (compose
            // numbers only the containers it creates for a service).
            let oneoff = attributes
                .get("com.docker.compose.oneoff")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let numbered = attributes.contains_key("com.docker.compose.container-number");
            if !ours || oneoff || !numbered {
                return None;
            }
            let service = attributes.get("com.docker.compose.service").cloned();
            return Some(Removal {
                kind: "container",
                name: service.unwrap_or(name),
                seen: happened(event),
            });
        }
        bollard::models::EventMessageTypeEnum::NETWORK => "network",
        _ => return None,
    };
    let ours = name.starts_with(&format!("{project}_")) || name.ends_with(&format!("-{run_id}"));
    ours.then(|| Removal {
        kind,
        name,
        seen: happened(event),
    })
}

/// When the engine says the event happened, on this process's clock: an engine may deliver
/// events late (Podman's stream has, by tens of seconds), and a removal is the run's own by when
/// it happened, not by when it arrived. Never later than now.
fn happened(event: &bollard::models::EventMessage) -> Instant {
    let now = Instant::now();
    let nanos = event
        .time_nano
        .or(event.time.map(|s| s.saturating_mul(1_000_000_000)));
    let Some(nanos) = nanos.and_then(|n| u64::try_from(n).ok()) else {
        return now;
    };
    let at = std::time::UNIX_EPOCH + Duration::from_nanos(nanos);
    match std::time::SystemTime::now().duration_since(at) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(now),
        Err(_) => now,
    }
}

impl Removals {
    /// Marks the removals from now until a moment after the guard drops as the run's own.
    pub fn own(&self) -> OwnRemoval {
        let mut own = self.inner.own.lock().unwrap_or_else(|e| e.into_inner());
        own.push((Instant::now(), None));
        OwnRemoval {
            inner: self.inner.clone(),
            index: own.len() - 1,
        }
    }

    /// Whether the run is removing things itself now (or was a moment ago).
    pub fn own_open(&self) -> bool {
        let now = Instant::now();
        let own = self.inner.own.lock().unwrap_or_else(|e| e.into_inner());
        own.iter()
            .any(|(_, until)| until.is_none_or(|u| now <= u + OWN_SLACK))
    }

    /// Whether something outside the run removed (or is removing) one of these containers of
    /// its stack: already seen as an event, or, racing the event, found gone or being removed
    /// while the run removes nothing itself (compose never removes a service's container on its
    /// own).
    pub async fn removed_any(&self, engine: &Engine, ids: &[String]) -> bool {
        if !self.outside().is_empty() {
            return true;
        }
        if self.own_open() {
            return false;
        }
        for id in ids {
            let gone = match super::optional(engine.inspect(id).await) {
                Ok(None) => true,
                Ok(Some(info)) => {
                    super::ObservedState::of(&info).status == super::ContainerStatus::Removing
                }
                Err(_) => false,
            };
            if gone {
                return true;
            }
        }
        false
    }

    /// The removals the run did not make, in the order seen.
    pub fn outside(&self) -> Vec<Removal> {
        let own = self
            .inner
            .own
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let by_run = |r: &Removal| {
            own.iter().any(|(from, until)| {
                r.seen >= *from && until.is_none_or(|u| r.seen <= u + OWN_SLACK)
            })
        };
        let seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().filter(|r| !by_run(r)).cloned().collect()
    }

    /// Resolves once something outside the run removed one of its containers or networks.
    pub async fn first_outside(&self) {
        loop {
            // Registered before looking, so a removal between the look and the wait still wakes it.
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.outside().is_empty() {
                return;
            }
            changed.await;
        }
    }

    /// What was removed from outside, once the clean-up went `quiet` without removing more (one
    /// clean-up removes several things, the network after its containers), at most `limit`.
    pub async fn gathered(&self, quiet: Duration, limit: Duration) -> Vec<Removal> {
        let deadline = Instant::now() + limit;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let left = deadline.saturating_duration_since(Instant::now());
            let removed_more = tokio::time::timeout(quiet.min(left), changed).await.is_ok();
            if !removed_more || left.is_zero() {
                return self.outside();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, EventMessage, EventMessageTypeEnum};

    fn event(typ: EventMessageTypeEnum, attributes: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some("destroy".into()),
            actor: Some(EventActor {
                id: Some("x".into()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_runs_service_containers_and_networks_count() {
        let container = |extra: &[(&str, &str)]| {
            let mut a = vec![
                (LABEL_PROJECT, "sc-p-1234"),
                ("com.docker.compose.service", "db"),
                ("name", "sc-p-1234-db-1"),
            ];
            a.extend_from_slice(extra);
            event(EventMessageTypeEnum::CONTAINER, &a)
        };
        let numbered = [("com.docker.compose.container-number", "1")];
        let removal = removal_of(&container(&numbered), "sc-p-1234", "1234").unwrap();
        assert_eq!(removal.to_string(), "the container of `db`");
        // A build's intermediate container carries the project's labels from its image.
        assert_eq!(removal_of(&container(&[]), "sc-p-1234", "1234"), None);
        let oneoff = [numbered[0], ("com.docker.compose.oneoff", "True")];
        assert_eq!(removal_of(&container(&oneoff), "sc-p-1234", "1234"), None);
        assert_eq!(removal_of(&container(&numbered), "sc-other", "9999"), None);
        let network = |name| event(EventMessageTypeEnum::NETWORK, &[("name", name)]);
        let gone = removal_of(&network("sc-p-1234_back"), "sc-p-1234", "1234").unwrap();
        assert_eq!(gone.to_string(), "network `sc-p-1234_back`");
        assert!(removal_of(&network("fixed-net-1234"), "sc-p-1234", "1234").is_some());
        assert_eq!(removal_of(&network("bridge"), "sc-p-1234", "1234"), None);
    }

    #[test]
    fn a_late_event_is_placed_when_it_happened() {
        let mut late = event(EventMessageTypeEnum::NETWORK, &[("name", "sc-p-1234_back")]);
        let ten_ago = std::time::SystemTime::now() - Duration::from_secs(10);
        let nanos = ten_ago
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        late.time_nano = Some(nanos as i64);
        let removal = removal_of(&late, "sc-p-1234", "1234").unwrap();
        let ago = removal.seen.elapsed();
        assert!(
            ago >= Duration::from_secs(9) && ago < Duration::from_secs(12),
            "{ago:?}"
        );
    }
}
