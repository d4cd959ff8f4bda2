//! Docker Compose v2, driven through its CLI: the real tool users run, with a unique project name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::Command;

use super::cli::CliError;
use super::{ComposeError, ComposeModel};

/// How long `docker compose config` may take (it reads files; no engine involved).
pub const CONFIG_TIMEOUT: Duration = Duration::from_secs(60);

/// One compose project: its files, env and the project name unique to this run.
#[derive(Clone, Debug)]
pub struct Compose {
    /// The project name (unique per run).
    pub project: String,
    /// The compose files, in `-f` order.
    pub files: Vec<PathBuf>,
    /// `--env-file`, if any.
    pub env_file: Option<PathBuf>,
    /// Extra environment for interpolation.
    pub env: BTreeMap<String, String>,
    /// Generated override (labels); applied after the user's files.
    pub override_file: Option<PathBuf>,
    /// Profiles to enable (`--profile`).
    pub profiles: Vec<String>,
    /// The engine its commands reach, handed to each through its own environment; `None` for a
    /// project only read (`config`), which leaves the docker CLI's own choice.
    pub endpoint: Option<super::Endpoint>,
}

/// `docker compose version --short`, asked once per process; empty if compose does not answer.
pub fn compose_version() -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let mut cmd = match compose_plugin() {
                Some(p) => std::process::Command::new(p),
                None => {
                    let mut c = std::process::Command::new("docker");
                    c.arg("compose");
                    c
                }
            };
            cmd.args(["version", "--short"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// The Compose v2 plugin binary, where the docker CLI would find it. Reading a model
/// (`config`, no engine involved) calls it directly: going through `docker` costs a second
/// process start, which is most of what `stackcheck validate` spends.
fn compose_plugin() -> Option<&'static Path> {
    static PLUGIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            let config = std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
            let dirs = config.map(|c| c.join("cli-plugins")).into_iter().chain(
                [
                    "/usr/local/lib/docker/cli-plugins",
                    "/usr/local/libexec/docker/cli-plugins",
                    "/usr/lib/docker/cli-plugins",
                    "/usr/libexec/docker/cli-plugins",
                ]
                .map(PathBuf::from),
            );
            dirs.map(|d| d.join("docker-compose")).find(|p| p.is_file())
        })
        .as_deref()
}

impl Compose {
    /// The same project, its commands reaching `engine` (see [`Compose::endpoint`]).
    pub fn reaching(mut self, engine: &super::Engine) -> Compose {
        self.endpoint = Some(engine.endpoint.clone());
        self
    }

    fn command(&self, with_override: bool) -> Command {
        self.command_via(with_override, false)
    }

    /// `direct`: the plugin binary itself (standalone mode), when it is found.
    fn command_via(&self, with_override: bool, direct: bool) -> Command {
        let mut cmd = match compose_plugin().filter(|_| direct) {
            Some(plugin) => Command::new(plugin),
            None => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
        };
        cmd.args([
            "--ansi",
            "never",
            "--progress",
            "plain",
            "-p",
            &self.project,
        ]);
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        if with_override {
            if let Some(o) = &self.override_file {
                cmd.arg("-f").arg(o);
            }
        }
        if let Some(e) = &self.env_file {
            cmd.arg("--env-file").arg(e);
        }
        for p in &self.profiles {
            cmd.arg("--profile").arg(p);
        }
        if let Some(endpoint) = &self.endpoint {
            endpoint.apply(cmd.as_std_mut());
        }
        cmd.envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs compose, feeding every output line to `on_line`; keeps stdout and a tail of all output.
    async fn run(
        &self,
        what: &str,
        args: &[String],
        with_override: bool,
        limit: Duration,
        on_line: impl FnMut(&str),
    ) -> Result<String, ComposeError> {
        let direct = what == "config";
        let mut cmd = self.command_via(with_override, direct);
        cmd.args(args);
        // Compose's own output (a model of the user's files, progress): kept whole.
        super::cli::stream(cmd, limit, on_line, super::Captured::whole())
            .await
            .map(|out| out.text())
            .map_err(|e| match e {
                CliError::Spawn(m) => ComposeError::Missing(m),
                CliError::Failed { code, tail, .. } => ComposeError::Failed {
                    what: what.into(),
                    code,
                    tail,
                },
                CliError::Timeout { tail } => ComposeError::Timeout {
                    what: what.into(),
                    secs: limit.as_secs(),
                    tail,
                },
            })
    }

    /// The resolved model of the user's files (no override), as compose sees it.
    pub async fn config(&self, limit: Duration) -> Result<ComposeModel, ComposeError> {
        self.model(true, limit).await
    }

    /// The model before interpolation: `${VAR}` stays as written (for the credentials rule).
    /// Read from the files themselves where that is certain to agree with compose (one process
    /// less per suite: `validate` is mostly compose start-ups).
    pub async fn config_raw(&self, limit: Duration) -> Result<ComposeModel, ComposeError> {
        if let Some(m) = ComposeModel::written_environment(&self.files) {
            return Ok(m);
        }
        self.model(false, limit).await
    }

    async fn model(
        &self,
        interpolate: bool,
        limit: Duration,
    ) -> Result<ComposeModel, ComposeError> {
        let json = self.config_json(interpolate, limit).await?;
        parsed(&json)
    }

    /// `config --format json` of every profile: services behind one (one-off jobs) are part of
    /// the model too.
    async fn config_json(
        &self,
        interpolate: bool,
        limit: Duration,
    ) -> Result<String, ComposeError> {
        let mut args: Vec<String> = ["--profile", "*", "config", "--format", "json"]
            .map(String::from)
            .to_vec();
        if !interpolate {
            args.push("--no-interpolate".into());
        }
        self.run("config", &args, false, limit, |_| {}).await
    }

    /// The model of the files as written (`interpolate`: as `config`, else as `config
    /// --no-interpolate`), for what is judged before anything starts (`validate`, and `run`
    /// before it starts): from the model cache while every input compose reads is unchanged.
    /// Not for a run's own project: the cached model names another project.
    pub async fn config_static(
        &self,
        interpolate: bool,
        limit: Duration,
    ) -> Result<ComposeModel, ComposeError> {
        if !interpolate {
            if let Some(m) = ComposeModel::written_environment(&self.files) {
                return Ok(m);
            }
        }
        let key = compose_plugin().and_then(|p| super::model_cache::key(self, p, interpolate));
        if let Some(m) = key
            .as_deref()
            .and_then(super::model_cache::get)
            .and_then(|json| ComposeModel::parse(&json).ok())
        {
            return Ok(m);
        }
        let json = self.config_json(interpolate, limit).await?;
        let model = parsed(&json)?;
        if let Some(key) = &key {
            super::model_cache::put(key, &json);
        }
        Ok(model)
    }

    /// `docker compose build` of `services`, each line of output to `on_line`. `classic`: with the
    /// engine's own builder, for engines without BuildKit (Podman): compose would otherwise start
    /// a BuildKit container, whose image comes from Docker Hub.
    pub async fn build(
        &self,
        services: &[String],
        classic: bool,
        limit: Duration,
        on_line: impl FnMut(&str),
    ) -> Result<(), ComposeError> {
        let mut args = vec!["build".to_string()];
        args.extend(services.iter().cloned());
        let mut compose = self.clone();
        if classic {
            compose.env.insert("DOCKER_BUILDKIT".into(), "0".into());
        }
        compose
            .run("build", &args, true, limit, on_line)
            .await
            .map(drop)
    }

    /// `up -d` without building or pulling: images were built or checked before.
    pub async fn up(
        &self,
        services: &[String],
        limit: Duration,
        on_line: impl FnMut(&str),
    ) -> Result<(), ComposeError> {
        let mut args: Vec<String> = [
            "up",
            "-d",
            "--no-build",
            "--pull",
            "never",
            "--remove-orphans",
        ]
        .map(String::from)
        .to_vec();
        args.extend(services.iter().cloned());
        self.run("up", &args, true, limit, on_line).await.map(drop)
    }

    /// `run --rm` of a one-off container carrying the run's labels; returns exit code and output.
    pub async fn run_once(
        &self,
        service: &str,
        args: &[String],
        labels: &BTreeMap<String, String>,
        limit: Duration,
        watching: &[crate::suite::Pattern],
    ) -> Result<(i32, super::Captured), ComposeError> {
        let mut a: Vec<String> = ["run", "--rm", "-T", "--quiet-pull"]
            .map(String::from)
            .to_vec();
        for (k, v) in labels {
            a.push("--label".into());
            a.push(format!("{k}={v}"));
        }
        a.push(service.into());
        a.extend(args.iter().cloned());
        let mut cmd = self.command(true);
        cmd.args(&a);
        let stdout = super::Captured::watching(watching);
        match super::cli::stream(cmd, limit, |_| {}, stdout).await {
            Ok(out) => Ok((0, out)),
            Err(CliError::Failed { code, stdout, .. }) => Ok((code, stdout)),
            Err(CliError::Spawn(m)) => Err(ComposeError::Missing(m)),
            Err(CliError::Timeout { tail }) => Err(ComposeError::Timeout {
                what: "run".into(),
                secs: limit.as_secs(),
                tail,
            }),
        }
    }

    /// `down` keeping volumes (a scenario's `down_up`), each service stopped within its own
    /// `stop_grace_period`, as the stack's users stop it: what survives must survive that.
    pub async fn down_keep_volumes(&self, limit: Duration) -> Result<(), ComposeError> {
        let args: Vec<String> = ["down"].map(String::from).to_vec();
        self.run("down", &args, true, limit, |_| {}).await.map(drop)
    }

    /// `down -v`: containers, networks and this project's volumes.
    pub async fn down(&self, limit: Duration) -> Result<(), ComposeError> {
        let args: Vec<String> = ["down", "-v", "--remove-orphans", "--timeout", "10"]
            .map(String::from)
            .to_vec();
        self.run("down", &args, true, limit, |_| {}).await.map(drop)
    }
}

fn parsed(json: &str) -> Result<ComposeModel, ComposeError> {
    ComposeModel::parse(json).map_err(|tail| ComposeError::Failed {
        what: "config".into(),
        code: 0,
        tail,
    })
}
