//! A suite's stack for hand-written tests: bring it up, ask it what a test needs, run the suite's
//! own promises on demand, and have it torn down on drop (a panicking test included).
//!
//! ```no_run
//! # async fn example() -> Result<(), stackcheck::StackError> {
//! use stackcheck::Stack;
//!
//! let stack = Stack::up("tests/stacks/api.yaml").await?;
//! let base = stack.base_url("api", 8080).await?;     // "http://127.0.0.1:49153"
//! let out = stack.exec("db", ["pg_isready"]).await?;
//! assert_eq!(out.exit, 0);
//! let report = stack.check().await;                   // the suite's promises, on this stack
//! assert!(report.infra_error.is_none());
//! stack.down().await?;                                // or let it drop
//! # Ok(()) }
//! ```
//!
//! Leak-proof like the CLI: everything the stack is made of carries its run's labels, and a
//! watcher process (the `docker` CLI, started beside the test) removes it if the test process is
//! killed before it could tear down; any later stackcheck run removes it as stale too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::{Engine, ExecOutput, ObservedState};
use crate::report::{Quiet, Status, SuiteReport};
use crate::run::{KeptStack, RunOptions};
use crate::suite::{HealthMode, LoadedSuite, PortsMode};

/// Why a [`Stack`] could not be brought up or asked.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The suite did not load (its file, line and column are in the message).
    #[error("{0}")]
    Suite(String),
    /// No engine answered, or it refused a call.
    #[error("engine: {0}")]
    Engine(String),
    /// The stack did not come up as the suite promises; it was taken down again.
    #[error("the stack of suite `{suite}` did not come up: {failures}")]
    Up {
        /// The suite id.
        suite: String,
        /// The failed tests and why, one per line.
        failures: String,
    },
    /// The stack has no such service, or it publishes no such port.
    #[error("{0}")]
    NotThere(String),
    /// No kept stack (or more than one) to adopt: why, and what to do.
    #[error("{0}")]
    NothingToReuse(String),
    /// Ctrl-C or SIGTERM while the stack came up (or was watched): it was taken down.
    #[error("interrupted ({0}); the stack was taken down")]
    Interrupted(String),
}

/// How to bring a suite's stack up: [`Stack::builder`].
#[derive(Clone, Debug)]
pub struct StackBuilder {
    suite: PathBuf,
    variant: Option<String>,
    options: RunOptions,
}

/// A suite's stack, up until [`Stack::down`] or drop.
pub struct Stack {
    engine: Engine,
    loaded: LoadedSuite,
    kept: KeptStack,
    /// Taken down already, or not this value's to take down (adopted with
    /// [`StackBuilder::reuse`]).
    down: bool,
}

impl Stack {
    /// Brings the stack of the suite at `suite` up as the suite describes it (its ports mode and
    /// health mode), and waits until every service is in its promised state.
    pub async fn up(suite: impl AsRef<Path>) -> Result<Stack, StackError> {
        Stack::builder(suite).up().await
    }

    /// A builder to choose ports, health mode, variant and which services are needed.
    pub fn builder(suite: impl AsRef<Path>) -> StackBuilder {
        StackBuilder {
            suite: suite.as_ref().to_path_buf(),
            variant: None,
            options: RunOptions::default(),
        }
    }

    /// The compose project the stack runs as.
    pub fn project(&self) -> &str {
        &self.kept.project
    }

    /// The suite as loaded.
    pub fn suite(&self) -> &LoadedSuite {
        &self.loaded
    }

    /// Where the host reaches `service`'s container port `port` (TCP): `127.0.0.1:49153`.
    pub async fn host_port(&self, service: &str, port: u16) -> Result<String, StackError> {
        let info = self.inspect(service).await?;
        crate::engine::published_host_port(&info, port)
            .map(|p| self.engine.published_addr(&p))
            .ok_or_else(|| {
                StackError::NotThere(format!("`{service}` publishes no host port for {port}/tcp"))
            })
    }

    /// `http://` and [`Stack::host_port`].
    pub async fn base_url(&self, service: &str, port: u16) -> Result<String, StackError> {
        Ok(format!("http://{}", self.host_port(service, port).await?))
    }

    /// Runs `cmd` in `service`'s (first) container, at most 60 s, and returns its exit code and output.
    pub async fn exec<I, S>(&self, service: &str, cmd: I) -> Result<ExecOutput, StackError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let id = self.container(service).await?;
        let cmd: Vec<String> = cmd.into_iter().map(Into::into).collect();
        self.engine
            .exec(
                &id,
                &cmd,
                None,
                Duration::from_secs(60),
                &Default::default(),
            )
            .await
            .map_err(engine)
    }

    /// The last `lines` lines `service`'s (first) container wrote, stdout and stderr interleaved.
    pub async fn logs(&self, service: &str, lines: usize) -> Result<String, StackError> {
        let id = self.container(service).await?;
        Ok(self.engine.logs_tail(&id, lines).await)
    }

    /// Runs the suite's own promises against this stack (no build, no bring-up, no teardown).
    pub async fn check(&self) -> SuiteReport {
        self.check_with(&self.loaded).await
    }

    /// Writes the evidence of `report` (a [`Stack::check`] of this stack) as `run --attest`
    /// does: a DSSE envelope of an in-toto test-result statement, signed if `to` has a key.
    /// Returns what was written, for a log line.
    ///
    /// ```no_run
    /// # async fn gate() -> Result<(), Box<dyn std::error::Error>> {
    /// let stack = stackcheck::Stack::up("suites/shop.yaml").await?;
    /// let report = stack.check().await;
    /// let to = stackcheck::attest::AttestTo::from_flags(Some("shop.intoto.json".into()), None)?
    ///     .expect("a path was given");
    /// println!("{}", stack.attest(&report, &to)?);
    /// stack.down().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn attest(
        &self,
        report: &SuiteReport,
        to: &crate::attest::AttestTo,
    ) -> Result<String, String> {
        to.write(
            std::slice::from_ref(&self.loaded),
            std::slice::from_ref(report),
        )
    }

    /// Runs another suite's promises against this stack: a suite over the same compose files
    /// (`init --observe` proves the suite it wrote on the stack it watched).
    pub async fn check_with(&self, suite: &LoadedSuite) -> SuiteReport {
        let options = RunOptions {
            reuse_stack: Some(self.kept.clone()),
            ..Default::default()
        };
        crate::run::run_suite_with(suite, &self.engine, &Quiet, &options).await
    }

    /// What `service`'s (first) container is doing now, and how often it was restarted.
    pub async fn state(&self, service: &str) -> Result<(ObservedState, i64), StackError> {
        let info = self.inspect(service).await?;
        Ok((ObservedState::of(&info), info.restart_count.unwrap_or(0)))
    }

    /// Where this machine may reach `service`'s container port `port`: its published port, else
    /// its address on each of its networks (a local engine's container addresses route here;
    /// an internal network's may not).
    pub async fn addresses(&self, service: &str, port: u16) -> Result<Vec<String>, StackError> {
        if let Ok(published) = self.host_port(service, port).await {
            return Ok(vec![published]);
        }
        if self.engine.remote_host().is_some() {
            return Err(StackError::NotThere(format!(
                "`{service}` port {port} is not published, and a remote engine's container addresses cannot be reached from here"
            )));
        }
        let info = self.inspect(service).await?;
        let networks = info
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        Ok(networks
            .into_values()
            .filter_map(|n| n.ip_address.filter(|ip| !ip.is_empty()))
            .map(|ip| format!("{ip}:{port}"))
            .collect())
    }

    /// The TCP ports `service`'s (first) container listens on, read from its network
    /// namespace's socket table (`/proc/<pid>/net/tcp*`, where a local engine's containers are
    /// this machine's processes); empty when it cannot be read (a remote engine, no permission).
    pub async fn listening(&self, service: &str) -> Result<Vec<u16>, StackError> {
        if self.engine.remote_host().is_some() {
            return Ok(Vec::new());
        }
        let info = self.inspect(service).await?;
        let Some(pid) = info.state.and_then(|s| s.pid).filter(|p| *p > 0) else {
            return Ok(Vec::new());
        };
        let tables =
            ["tcp", "tcp6"].map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")));
        let mut ports: Vec<u16> = tables
            .iter()
            .flatten()
            .flat_map(|table| listening_ports(table))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        Ok(ports)
    }

    /// The ports `service`'s image declares (`EXPOSE`), as its container was made.
    pub async fn exposed(&self, service: &str) -> Result<Vec<u16>, StackError> {
        let info = self.inspect(service).await?;
        let exposed = info
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default();
        Ok(exposed
            .iter()
            .filter_map(|p| p.strip_suffix("/tcp")?.parse().ok())
            .collect())
    }

    /// The environment `service`'s (first) container was made with: what compose gave it and
    /// what its image sets.
    pub async fn env(
        &self,
        service: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StackError> {
        let info = self.inspect(service).await?;
        let env = info.config.and_then(|c| c.env).unwrap_or_default();
        Ok(env
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// The container paths `service`'s (first) container has mounted read-only.
    pub async fn read_only_mounts(&self, service: &str) -> Result<Vec<String>, StackError> {
        let info = self.inspect(service).await?;
        Ok(info
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.rw == Some(false))
            .filter_map(|m| m.destination)
            .collect())
    }

    /// Tears the stack down as a run does; says what survived, if anything. A stack adopted with
    /// [`StackBuilder::reuse`] is left up: it is whoever kept it's to remove.
    pub async fn down(mut self) -> Result<(), StackError> {
        if std::mem::replace(&mut self.down, true) {
            return Ok(());
        }
        take_down(&self.engine, &self.loaded, &self.kept).await
    }

    /// The inspect of `service`'s (first) container.
    async fn inspect(
        &self,
        service: &str,
    ) -> Result<bollard::models::ContainerInspectResponse, StackError> {
        let id = self.container(service).await?;
        self.engine.inspect(&id).await.map_err(engine)
    }

    async fn container(&self, service: &str) -> Result<String, StackError> {
        let listed = self
            .engine
            .project_containers(&self.kept.project)
            .await
            .map_err(engine)?;
        listed
            .into_iter()
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get("com.docker.compose.service"))
                    == Some(&service.to_string())
            })
            .min_by_key(|c| {
                let n = c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("com.docker.compose.container-number"));
                n.and_then(|n| n.parse::<u32>().ok()).unwrap_or(u32::MAX)
            })
            .and_then(|c| c.id)
            .ok_or_else(|| {
                StackError::NotThere(format!(
                    "project {} has no container of `{service}`",
                    self.kept.project
                ))
            })
    }
}

/// The local ports of the listening sockets of a `/proc/net/tcp` table (state `0A`), bound to
/// any address a client outside the container could reach (not loopback alone).
fn listening_ports(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            let (addr, port) = local.split_once(':')?;
            // 127.0.0.1 and ::1 as the kernel writes them.
            let loopback = addr == "0100007F" || addr == "00000000000000000000000001000000";
            (*state == "0A" && !loopback).then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

impl StackBuilder {
    /// `documented` (the suite's host ports and names) or `ephemeral` (free ports, unique names,
    /// so that tests can hold several stacks of one suite at once).
    pub fn ports(mut self, ports: PortsMode) -> Self {
        self.options.ports = Some(ports);
        self
    }

    /// `fast`: every healthcheck polls each second (`--health fast`).
    pub fn health(mut self, health: HealthMode) -> Self {
        self.options.health = Some(health);
        self
    }

    /// Only what tests matching these globs need is built and started (`--filter`).
    pub fn filter(mut self, glob: impl Into<String>) -> Self {
        self.options.filter.push(glob.into());
        self
    }

    /// Which of the suite's `stack.variants` (needed when it has any).
    pub fn variant(mut self, name: impl Into<String>) -> Self {
        self.variant = Some(name.into());
        self
    }

    /// Adopts the stack `stackcheck up` (or `run --keep`) left up from the compose files, env
    /// file and profiles this suite names, whatever suite brought it up: nothing is built or
    /// started, and neither [`Stack::down`] nor drop takes it down.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), stackcheck::StackError> {
    /// let stack = stackcheck::Stack::builder("stackcheck.yaml").reuse().await?;
    /// let report = stack.check().await;
    /// # Ok(()) }
    /// ```
    pub async fn reuse(self) -> Result<Stack, StackError> {
        let loaded = self.load()?;
        let engine = Engine::connect().await.map_err(engine)?;
        let kept = crate::run::reusable_of_files(&engine, &loaded)
            .await
            .map_err(StackError::NothingToReuse)?;
        Ok(Stack {
            engine,
            loaded,
            kept,
            down: true,
        })
    }

    /// Brings the stack up and waits for its promised states; on failure it is taken down again.
    pub async fn up(self) -> Result<Stack, StackError> {
        let loaded = self.load()?;
        let engine = Engine::connect().await.map_err(engine)?;
        let options = RunOptions {
            keep: Some(crate::run::Keep::Held),
            ..self.options
        };
        let report = crate::run::run_suite_with(&loaded, &engine, &Quiet, &options).await;
        let kept = crate::run::kept(&engine, Some(&loaded.suite.id))
            .await
            .map_err(|e| StackError::Engine(e.to_string()))?
            .into_iter()
            .find(|k| k.run_id == report.run_id);
        let failures = failures(&report);
        if report.interrupted {
            return Err(StackError::Interrupted("Ctrl-C or SIGTERM".into()));
        }
        match kept {
            Some(kept) if failures.is_empty() => {
                watch(&kept.run_id, &engine);
                Ok(Stack {
                    engine,
                    loaded,
                    kept,
                    down: false,
                })
            }
            kept => {
                if let Some(k) = kept {
                    let _ = take_down(&engine, &loaded, &k).await;
                }
                let failures = match failures.is_empty() {
                    true => "it was not kept up".into(),
                    false => failures,
                };
                Err(StackError::Up {
                    suite: loaded.suite.id,
                    failures,
                })
            }
        }
    }

    fn load(&self) -> Result<LoadedSuite, StackError> {
        let runs =
            crate::plan::load_runs(&self.suite).map_err(|e| StackError::Suite(e.to_string()))?;
        let ids: Vec<&str> = runs.iter().map(|r| r.suite.id.as_str()).collect();
        let wanted = |r: &LoadedSuite| match &self.variant {
            Some(v) => r.suite.id.ends_with(&format!("@{v}")),
            None => runs.len() == 1,
        };
        runs.iter().find(|r| wanted(r)).cloned().ok_or_else(|| {
            StackError::Suite(format!(
                "{}: choose one of {ids:?} with `.variant(..)`",
                self.suite.display()
            ))
        })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        // Inside a runtime (a `#[tokio::test]`), blocking on it would deadlock: a thread of its own.
        let (engine, loaded, kept) = (self.engine.clone(), self.loaded.clone(), self.kept.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().ok()?;
            rt.block_on(take_down(&engine, &loaded, &kept)).err()
        })
        .join();
        if let Ok(Some(e)) = done {
            eprintln!("stackcheck: {e}");
        }
    }
}

async fn take_down(
    engine: &Engine,
    loaded: &LoadedSuite,
    kept: &KeptStack,
) -> Result<(), StackError> {
    let left = crate::run::down(engine, loaded, kept)
        .await
        .map_err(|e| StackError::Engine(e.to_string()))?;
    match left.is_empty() {
        true => Ok(()),
        false => Err(StackError::Engine(format!(
            "left behind after taking project {} down: {}",
            kept.project,
            left.describe()
        ))),
    }
}

/// Removes the run's resources once this process is gone. A test binary has no `stackcheck
/// __watch` of its own, so the docker CLI does it, in a process group of its own (the test's group
/// may be killed whole), with this stack's engine in its environment.
fn watch(run_id: &str, engine: &Engine) {
    use std::os::unix::process::CommandExt;
    const SWEEP: &str = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
f="label=$2"
for _ in 1 2 3; do
  docker ps -aq --filter "$f" | xargs -r docker rm -fv
  docker network ls -q --filter "$f" | xargs -r docker network rm
  docker volume ls -q --filter "$f" | xargs -r docker volume rm -f
  docker image ls -q --filter "$f" | xargs -r docker rmi -f
  sleep 1
done"#;
    let label = format!("{}={run_id}", crate::engine::LABEL_RUN);
    let mut cmd = std::process::Command::new("sh");
    engine.endpoint.apply(&mut cmd);
    let spawned = cmd
        .args([
            "-c",
            SWEEP,
            "stackcheck-watch",
            &std::process::id().to_string(),
            &label,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        eprintln!(
            "stackcheck: no watcher for crash cleanup ({e}); `stackcheck reap` removes leftovers"
        );
    }
}

fn failures(report: &SuiteReport) -> String {
    let failed = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| format!("{}: {}", o.name, o.message));
    report
        .infra_error
        .iter()
        .cloned()
        .chain(failed)
        .collect::<Vec<_>>()
        .join("\n")
}

fn engine(e: impl std::fmt::Display) -> StackError {
    StackError::Engine(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::listening_ports;

    #[test]
    fn listening_sockets_reachable_from_outside_are_read_from_the_socket_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0B00A8C0:1F90 0200A8C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        // 8080 listens on every address; 3306 on loopback only; the third is a connection.
        assert_eq!(listening_ports(table), [8080]);
    }
}
