//! What a check may look at once the stack is up: the engine, the compose model, the containers
//! of the run, and the guard that keeps probes home.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bollard::models::ContainerInspectResponse;

use super::canary::Canary;
use super::home::classify;
use super::{state, Verdict};
use crate::engine::{Compose, ComposeModel, Engine};
use crate::report::{ProbeTarget, Progress};
use crate::suite::{LoadedSuite, PullPolicy};

/// Everything a check may look at once the stack is up.
pub struct Ctx<'a> {
    pub engine: &'a Engine,
    pub model: &'a ComposeModel,
    pub loaded: &'a LoadedSuite,
    /// The compose project (absent for a stack of `containers`).
    pub compose: Option<&'a Compose>,
    pub run_id: &'a str,
    /// Labels every helper container of this run carries.
    pub labels: &'a BTreeMap<String, String>,
    /// Container id per service (absent: never created); refreshed after `down_up`.
    pub containers: Mutex<BTreeMap<String, String>>,
    /// The per-run temp dir (`{tmp}`).
    pub tmp: &'a Path,
    pub(crate) canary: tokio::sync::OnceCell<Result<Canary, String>>,
    /// The probe image, obtained on first use (see `probe_ready`).
    pub(crate) probe: tokio::sync::OnceCell<Result<(), String>>,
    /// The run's pull policy (`run --pull` / `stack.pull`), for the probe image.
    pub pull: PullPolicy,
    /// Where pulling the probe image shows.
    pub progress: &'a dyn Progress,
    /// Every address a probe of this run connected to (see `home`).
    pub probed: Mutex<Vec<ProbeTarget>>,
    /// Published ports are free host ports, not the documented ones (`stack.ports: ephemeral`).
    pub ephemeral_ports: bool,
    /// The run's HTTP clients, made on first use and reused by every `http` check.
    pub(crate) http: super::HttpClients,
    /// The watch on removals from outside the run: `down_up` marks its own.
    pub removals: Option<crate::engine::Removals>,
}

impl Ctx<'_> {
    /// The container of every service, as last noted.
    pub fn container_ids(&self) -> Vec<String> {
        let map = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }

    /// Notes `service`'s container as the waiter found it during bring-up.
    pub fn set_container(&self, service: &str, id: String) {
        let mut map = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(service.to_string(), id);
    }

    pub fn container(&self, service: &str) -> Result<String, Verdict> {
        if !self.model.services.contains_key(service) {
            return Err(Verdict::fail(format!(
                "service `{service}` is not defined in the stack"
            )));
        }
        let map = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        map.get(service).cloned().ok_or_else(|| {
            Verdict::fail(format!(
                "service `{service}` has no container (it was not started)"
            ))
        })
    }

    /// A service's containers, one per replica (`deploy.replicas`) in replica order; the one
    /// container of a service without replicas or of a `containers` stack.
    pub async fn replicas(&self, service: &str) -> Result<Vec<String>, Verdict> {
        let first = self.container(service)?;
        let Some(compose) = self.compose else {
            return Ok(vec![first]);
        };
        let listed = self
            .engine
            .project_containers(&compose.project)
            .await
            .map_err(|e| Verdict::fail(e.to_string()))?;
        let mut all = super::replicas::replicas_of(&listed);
        Ok(all.remove(service).unwrap_or_else(|| vec![first]))
    }

    /// A service's container id and its inspect; either failure is the check's verdict.
    pub async fn inspect(
        &self,
        service: &str,
    ) -> Result<(String, ContainerInspectResponse), Verdict> {
        let id = self.container(service)?;
        let info = self
            .engine
            .inspect(&id)
            .await
            .map_err(|e| Verdict::fail(e.to_string()))?;
        Ok((id, info))
    }

    /// The container of a service that must be running for a probe to make sense.
    pub async fn running(&self, service: &str) -> Result<String, Verdict> {
        let (id, info) = self.inspect(service).await?;
        let state = info.state.unwrap_or_default();
        if state.running == Some(true) {
            return Ok(id);
        }
        let status = state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
        Err(Verdict::fail(format!(
            "`{service}` is not running (status {status}, exit code {})",
            state.exit_code.unwrap_or(0)
        )))
    }

    /// Health-check output and the last log lines of a service's container, for failure details.
    pub async fn diagnostics(&self, service: &str) -> String {
        let Ok(id) = self.container(service) else {
            return String::new();
        };
        state::diagnostics(self.engine, &id).await
    }

    /// Allows a probe to connect to `target` only if it is home (loopback, a service of this
    /// stack, an address this run created); records it.
    pub async fn home(&self, target: &str) -> Result<(), Verdict> {
        let services = self.model.services.keys().cloned().collect();
        let run = self
            .engine
            .run_addresses(&format!("{}={}", crate::engine::LABEL_RUN, self.run_id))
            .await
            .map_err(|e| Verdict::fail(format!("cannot list this run's addresses: {e}")))?;
        let home = classify(target, &services, &run).map_err(Verdict::fail)?;
        self.probed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ProbeTarget {
                target: target.to_string(),
                home,
            });
        Ok(())
    }

    /// The probe image on the engine, obtained once per run (pulled as the run's policy says).
    pub async fn probe_ready(&self) -> Result<(), String> {
        self.probe
            .get_or_init(|| super::net::obtain_probe_image(self.engine, self.pull, self.progress))
            .await
            .clone()
    }

    /// The canaries of this run, started on first use.
    pub async fn canary(&self) -> Result<&Canary, String> {
        self.probe_ready().await?;
        let networks: Vec<String> = self
            .model
            .networks
            .keys()
            .map(|n| self.model.network_name(n))
            .collect();
        let c = self
            .canary
            .get_or_init(|| async {
                Canary::start(self.engine, self.run_id, &networks, self.labels).await
            })
            .await;
        c.as_ref().map_err(Clone::clone)
    }

    /// A path of the suite with `{suite_dir}` and `{tmp}` replaced; relative paths are relative to the suite.
    pub fn host_path(&self, p: &str) -> PathBuf {
        let dir = self
            .loaded
            .dir
            .canonicalize()
            .unwrap_or_else(|_| self.loaded.dir.clone());
        let replaced = p
            .replace("{suite_dir}", &dir.to_string_lossy())
            .replace("{tmp}", &self.tmp.to_string_lossy());
        let path = PathBuf::from(replaced);
        if path.is_absolute() {
            path
        } else {
            dir.join(path)
        }
    }
}
