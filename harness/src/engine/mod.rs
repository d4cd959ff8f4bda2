//! The engine stage: the Docker API (through bollard) and Docker Compose v2 (its CLI).
//!
//! Every call here is bounded in time; a call that runs out says what it waited for.

mod build;
mod claims;
mod cli;
mod compose;
pub mod containers;
mod dockerfile;
mod endpoint;
mod events;
mod grace;
mod helper;
mod image_fs;
mod labelled;
mod logs;
mod model;
mod model_cache;
mod observed;
pub mod output;
mod podman;
mod pull;
mod subnets;

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerSummary, ImageInspect, NetworkInspect};
use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;

pub use crate::error::{BuildError, ComposeError, EngineError};

pub(crate) use claims::is_claim;
pub use compose::{compose_version, Compose, CONFIG_TIMEOUT};
pub use dockerfile::Dockerfile;
pub use endpoint::{published_host_port, Endpoint, EndpointError, Tls};
pub use events::{ContainerChanges, NetworkChanges, OwnRemoval, Removal, Removals};
pub use grace::IdleGrace;
pub use helper::{probe_image, HelperSpec, DEFAULT_PROBE_IMAGE};
pub use image_fs::{FileFacts, ImageFs};
pub use labelled::{Leftovers, ResourceKind, RunAddresses, Tagged};
pub use model::{
    ComposeModel, ModelBuild, ModelHealthcheck, ModelNetwork, ModelPort, ModelService,
    ModelVolumeMount,
};
pub use observed::{ContainerStatus, Health, ObservedState};
pub use output::{Captured, Lines, Watching};
pub use podman::{stop_timeout_note, stored_healthcheck_note, EngineKind, HealthDriver};
pub use pull::{own_digests_first, pulled_line, registry_of, PullError, PullFailure};
pub use subnets::UsedRange;

/// Labels every resource of a run carries.
pub const LABEL_RUN: &str = "io.stackcheck.run";
/// The suite id of a run's resources.
pub const LABEL_SUITE: &str = "io.stackcheck.suite";
/// The pid of the harness process that owns a run (with [`LABEL_OWNER`] for the host).
pub const LABEL_OWNER_PID: &str = "io.stackcheck.owner-pid";
/// On the marker volume of a run whose stack is left up on purpose: why (`always`, `on-failure`,
/// `up`). Later runs do not sweep it as stale; `stackcheck down` and `reap --include-live` do.
pub const LABEL_KEPT: &str = "io.stackcheck.kept";
/// `<hostname>/<pid>` of the harness: pids are only meaningful on the machine that owns them
/// (several machines may share one engine through `DOCKER_HOST`).
pub const LABEL_OWNER: &str = "io.stackcheck.owner";

/// On what a run that checks a kept stack creates itself (probes, canaries, one-offs): that run's
/// own mark. Its teardown removes only these, never the stack it checked, whose containers carry
/// the same owner when the same process holds it (a [`crate::Stack`] proving another suite).
pub const LABEL_VISIT: &str = "io.stackcheck.visit";

/// This harness's `LABEL_OWNER` value.
pub fn owner() -> String {
    owner_of(std::process::id() as i32)
}

/// `<this hostname>/<pid>`.
pub fn owner_of(pid: i32) -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}/{pid}")
}
/// Compose's own label naming the project of a container, network or volume.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
/// Compose's own label naming the service of a container.
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// Put by `ci/images.sh` on offline stand-ins: what the image really is.
pub const LABEL_STANDIN: &str = "io.stackcheck.standin";
/// Compose's label on `docker compose run` containers: one-offs, never the service itself.
const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";

/// Whether a listed container is a `compose run` one-off rather than one of its service's own.
pub fn is_oneoff(c: &ContainerSummary) -> bool {
    c.labels
        .as_ref()
        .and_then(|l| l.get(LABEL_ONEOFF))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected Docker engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// The engine's version (`docker version`), for reports.
    pub version: String,
    /// Where it was reached and why there: reports print it (`tcp://h:2376 (DOCKER_HOST, TLS)`),
    /// and every child (compose, `docker build`, watchers) gets it through its own environment.
    pub endpoint: Endpoint,
    /// Where its published ports are, when it is remote.
    remote_host: Option<String>,
    /// Docker or Podman: where their APIs differ, the harness must know which answers.
    pub kind: EngineKind,
    libpod: Option<podman::Libpod>,
}

/// The most of a log's last lines a diagnostic keeps.
const LOG_TAIL_BYTES: usize = 128 << 10;

/// Output of a command run inside a container, each stream kept within bounds.
#[derive(Debug, Default)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit: i64,
    /// What it wrote to stdout.
    pub stdout: Captured,
    /// What it wrote to stderr.
    pub stderr: Captured,
}

impl ExecOutput {
    /// Empty output watched for these patterns.
    pub fn watching(w: &Watching) -> ExecOutput {
        ExecOutput {
            exit: -1,
            stdout: Captured::watching(&w.stdout),
            stderr: Captured::watching(&w.stderr),
        }
    }

    /// Takes one chunk of a container's output stream.
    pub(crate) fn push(&mut self, item: bollard::container::LogOutput) {
        match item {
            bollard::container::LogOutput::StdErr { message } => self.stderr.push(&message),
            other => self.stdout.push(&other.into_bytes()),
        }
    }

    pub(crate) fn finish(&mut self) {
        self.stdout.finish();
        self.stderr.finish();
    }
}

pub(crate) async fn bounded<T, E: std::fmt::Display>(
    what: impl Into<String>,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, EngineError> {
    let what = what.into();
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(EngineError::Call {
            what,
            cause: e.to_string(),
        }),
        Err(_) => Err(EngineError::Timeout {
            what,
            secs: limit.as_secs(),
        }),
    }
}

/// An inspect whose "no such object" answer means absence, not failure.
/// Whether the container is configured with a healthcheck (the configuration, not the health
/// state: a container that has not started yet has none).
pub fn has_healthcheck(info: &ContainerInspectResponse) -> bool {
    let test = info
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_deref())
        .unwrap_or_default();
    !test.is_empty() && test[0] != "NONE"
}

pub(crate) fn optional<T>(r: Result<T, EngineError>) -> Result<Option<T>, EngineError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(EngineError::Call { cause, .. }) if is_absent(&cause) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The HTTP status the engine answered with, as bollard words it ("Docker responded with status
/// code 404: …"). Read from that phrase only: ids, ports and names in the message hold any digits.
pub(crate) fn status_code(cause: &str) -> Option<u16> {
    let rest = cause.split("status code ").nth(1)?;
    rest.get(..3)?.parse().ok()
}

/// Whether an engine error says the thing asked about does not exist: a 404, or (from an engine
/// that gave no status) its "No such …" words.
pub(crate) fn is_absent(cause: &str) -> bool {
    match status_code(cause) {
        Some(code) => code == 404,
        None => cause.contains("No such") || cause.contains("not found"),
    }
}

/// `key=value`, a bare key, or several joined by `" & "`: the engine matches a resource only if it
/// carries every one (a kept run's stack and a later run's helpers share the run label and differ by
/// owner).
fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    let all = label.split(" & ").map(str::to_string).collect();
    HashMap::from([("label".to_string(), all)])
}

/// How long an engine may take to answer the first calls before it counts as unavailable: the
/// endpoints documentation promises exit 3 within 5 s for a silent or refusing endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Engine {
    /// Connects to the engine the docker CLI would use and settles the API version; fails within
    /// 5 s when nothing answers there.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), stackcheck::error::EngineError> {
    /// let engine = stackcheck::engine::Engine::connect().await?;
    /// println!("{} at {}", engine.version, engine.endpoint);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect() -> Result<Engine, EngineError> {
        let limit = CONNECT_TIMEOUT;
        let resolved = Endpoint::resolve()?;
        let endpoint = resolved.to_string();
        let unavailable = |cause: String| EngineError::Unavailable {
            endpoint: endpoint.clone(),
            cause,
        };
        // The endpoint as the docker CLI and compose resolve it: the local-only constructor would
        // talk to this machine's socket while compose talked to the remote engine.
        let docker = endpoint::client(&resolved).map_err(unavailable)?;
        let docker = match tokio::time::timeout(limit, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(unavailable(endpoint::innermost(&e))),
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} s",
                    limit.as_secs()
                )))
            }
        };
        let (version, kind) = match tokio::time::timeout(limit, docker.version()).await {
            Ok(Ok(v)) => {
                let kind = EngineKind::of(&v);
                let name = if kind == EngineKind::Podman {
                    "Podman "
                } else {
                    ""
                };
                let version = format!(
                    "{name}{} (API {})",
                    v.version.unwrap_or_default(),
                    v.api_version.unwrap_or_default()
                );
                (version, kind)
            }
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} s",
                    limit.as_secs()
                )))
            }
        };
        let libpod = (kind == EngineKind::Podman)
            .then(|| podman::Libpod::for_host(&resolved.host))
            .flatten();
        Ok(Engine {
            docker,
            version,
            remote_host: endpoint::remote_host(&resolved),
            endpoint: resolved,
            kind,
            libpod,
        })
    }

    /// All containers (running or not) of a compose project.
    pub async fn project_containers(
        &self,
        project: &str,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        self.list_containers(true, &label_filter(&format!("{LABEL_PROJECT}={project}")))
            .await
    }

    /// The container's inspect (state, config, networks, mounts).
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, EngineError> {
        self.inspect_container(id).await
    }

    /// The container's restart policy as the engine applies it (`no` when none is set).
    pub fn restart_policy(info: &ContainerInspectResponse) -> String {
        info.host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|r| r.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "no".into())
    }

    /// The last `n` lines a container wrote (stdout and stderr interleaved).
    pub async fn logs_tail(&self, id: &str, n: usize) -> String {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(opts));
        let mut out = String::new();
        let collect = async {
            while let Some(Ok(chunk)) = stream.next().await {
                out.push_str(&chunk.to_string());
                // n lines can still be gigabytes: the end is what a failure report shows.
                if out.len() > 2 * LOG_TAIL_BYTES {
                    let cut = out.ceil_char_boundary(out.len() - LOG_TAIL_BYTES);
                    out.replace_range(..cut, "[stackcheck: earlier output left out]\n");
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), collect)
            .await
            .is_err()
        {
            out.push_str("\n[stackcheck: log read stopped after 10 s]");
        }
        out
    }

    /// Runs `cmd` inside a running container and waits for it, at most `limit`.
    pub async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        user: Option<&str>,
        limit: Duration,
        watching: &Watching,
    ) -> Result<ExecOutput, EngineError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let what = format!("exec {:?} in {id}", cmd);
        let opts = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.to_vec()),
            user: user.map(str::to_string),
            ..Default::default()
        };
        let created = bounded(&what, CALL_TIMEOUT, self.docker.create_exec(id, opts)).await?;
        let (docker, mut out) = (self.docker.clone(), ExecOutput::watching(watching));
        let run = output::read_on_worker(async move {
            if let StartExecResults::Attached { mut output, .. } =
                docker.start_exec(&created.id, None).await?
            {
                while let Some(item) = output.next().await {
                    out.push(item?);
                }
            }
            out.finish();
            let inspect = docker.inspect_exec(&created.id).await?;
            out.exit = inspect.exit_code.unwrap_or(-1);
            Ok::<_, bollard::errors::Error>(out)
        });
        bounded(&what, limit, run).await
    }

    /// Restarts a container (`docker restart`) within its own grace period (`stop_grace_period`):
    /// the engine then stops it as `docker compose restart` would.
    pub async fn restart(&self, id: &str) -> Result<(), EngineError> {
        let bound = self.stop_bound(id).await;
        let opts = bollard::query_parameters::RestartContainerOptions::default();
        bounded(
            format!("restart {id}"),
            bound,
            self.docker.restart_container(id, Some(opts)),
        )
        .await
    }

    /// Stops a container (`docker stop`) within its own grace period (`stop_grace_period`).
    pub async fn stop(&self, id: &str) -> Result<(), EngineError> {
        let bound = self.stop_bound(id).await;
        let opts = bollard::query_parameters::StopContainerOptions::default();
        bounded(
            format!("stop {id}"),
            bound,
            self.docker.stop_container(id, Some(opts)),
        )
        .await
    }

    /// How long a stop may take: the container's grace period (the engine's default 10 s when
    /// unset) and a margin for the kill and the engine.
    pub async fn stop_bound(&self, id: &str) -> Duration {
        let grace = self
            .inspect(id)
            .await
            .ok()
            .and_then(|i| i.config?.stop_timeout)
            .unwrap_or(10);
        Duration::from_secs(u64::try_from(grace).unwrap_or(10) + 50)
    }

    /// Starts a stopped container (`docker start`).
    pub async fn start(&self, id: &str) -> Result<(), EngineError> {
        bounded(
            format!("start {id}"),
            CALL_TIMEOUT,
            self.docker.start_container(id, None),
        )
        .await
    }

    /// Anonymous volumes (unnamed, unlabelled) mounted by a container: `down` without `-v` orphans them.
    pub async fn anonymous_volumes(&self, id: &str) -> Vec<String> {
        let mounts = self
            .inspect(id)
            .await
            .ok()
            .and_then(|i| i.mounts)
            .unwrap_or_default();
        mounts
            .into_iter()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .filter_map(|m| m.name)
            .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
            .collect()
    }

    /// Removes a volume (forced).
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::RemoveVolumeOptionsBuilder::default()
            .force(true)
            .build();
        optional(
            bounded(
                format!("remove volume {name}"),
                CALL_TIMEOUT,
                self.docker.remove_volume(name, Some(opts)),
            )
            .await,
        )
        .map(drop)
    }

    /// Removes one container (and its anonymous volumes), whatever its state.
    pub async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        optional(
            bounded(
                format!("remove container {id}"),
                CALL_TIMEOUT,
                self.docker.remove_container(id, Some(opts)),
            )
            .await,
        )
        .map(drop)
    }

    /// The image with this tag or id; None when the engine has none.
    pub async fn image(&self, tag: &str) -> Result<Option<ImageInspect>, EngineError> {
        let mut image = optional(
            bounded(
                format!("inspect image {tag}"),
                CALL_TIMEOUT,
                self.docker.inspect_image(tag),
            )
            .await,
        )?;
        if let Some(config) = image.as_mut().and_then(|i| i.config.as_mut()) {
            if config.healthcheck.is_none() {
                config.healthcheck = self.libpod_image_healthcheck(tag).await;
            }
        }
        Ok(image)
    }

    /// The network with this name; None when there is none.
    pub async fn network(&self, name: &str) -> Result<Option<NetworkInspect>, EngineError> {
        optional(
            bounded(
                format!("inspect network {name}"),
                CALL_TIMEOUT,
                self.docker.inspect_network(name, None),
            )
            .await,
        )
    }

    /// Whether a volume of this name exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, EngineError> {
        optional(
            bounded(
                format!("inspect volume {name}"),
                CALL_TIMEOUT,
                self.docker.inspect_volume(name),
            )
            .await,
        )
        .map(|v| v.is_some())
    }

    /// Whether the engine answers now (within 5 s).
    pub async fn ping(&self) -> Result<(), EngineError> {
        bounded("ping", Duration::from_secs(5), self.docker.ping())
            .await
            .map(drop)
    }

    /// Waits until the engine answers again (after a restart), at most `limit`; returns how long
    /// that took.
    pub async fn wait_back(&self, limit: Duration) -> Result<Duration, EngineError> {
        let t0 = std::time::Instant::now();
        loop {
            match self.ping().await {
                Ok(()) => return Ok(t0.elapsed()),
                Err(_) if t0.elapsed() < limit => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                Err(_) => {
                    return Err(EngineError::Timeout {
                        what: "the engine to answer again".into(),
                        secs: limit.as_secs(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// A 500 about container `a404…` is not an absence; a 404 is, whatever its words.
    #[test]
    fn absence_is_read_from_the_status_not_from_digits_in_names() {
        let said =
            |code: u16, msg: &str| format!("Docker responded with status code {code}: {msg}");
        assert!(super::is_absent(&said(404, "No such container: x")));
        assert!(!super::is_absent(&said(
            500,
            "container a404b1 is restarting"
        )));
        assert!(!super::is_absent(&said(
            500,
            "volume in use, not found elsewhere"
        )));
        assert!(super::is_absent("No such image: x"));
        assert_eq!(super::status_code(&said(409, "Conflict")), Some(409));
        assert_eq!(
            super::status_code("error trying to connect: port 40127"),
            None
        );
    }
}
