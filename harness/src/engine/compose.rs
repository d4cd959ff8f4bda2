//! Docker Compose v2, driven through its CLI: the real tool users run, with a unique project name.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::ComposeModel;

const TAIL_LINES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("`docker compose` could not be started ({0}); install it with `bash ci/engine.sh`")]
    Missing(String),
    #[error("`docker compose {what}` failed (exit {code}):\n{tail}")]
    Failed { what: String, code: i32, tail: String },
    #[error("`docker compose {what}` did not finish within {secs} s:\n{tail}")]
    Timeout { what: String, secs: u64, tail: String },
}

impl ComposeError {
    /// The last lines compose printed, for failure reports.
    pub fn tail(&self) -> &str {
        match self {
            ComposeError::Missing(m) => m,
            ComposeError::Failed { tail, .. } | ComposeError::Timeout { tail, .. } => tail,
        }
    }
}

/// One compose project: its files, env and the project name unique to this run.
#[derive(Clone, Debug)]
pub struct Compose {
    pub project: String,
    pub files: Vec<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// Generated override (labels); applied after the user's files.
    pub override_file: Option<PathBuf>,
}

impl Compose {
    fn command(&self, with_override: bool) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("compose").args(["--ansi", "never", "--progress", "plain", "-p", &self.project]);
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
        cmd.envs(&self.env).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    /// Runs compose, feeding every output line to `on_line`; keeps stdout and a tail of all output.
    async fn run(
        &self,
        what: &str,
        args: &[String],
        with_override: bool,
        limit: Duration,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, ComposeError> {
        let mut cmd = self.command(with_override);
        cmd.args(args);
        let mut child = cmd.spawn().map_err(|e| ComposeError::Missing(e.to_string()))?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ComposeError::Missing("no output pipes".into()));
        };
        let mut out = BufReader::new(out).lines();
        let mut err = BufReader::new(err).lines();
        let mut stdout = String::new();
        let mut tail: VecDeque<String> = VecDeque::new();
        let push = |line: String, tail: &mut VecDeque<String>| {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        };
        let work = async {
            let (mut out_open, mut err_open) = (true, true);
            while out_open || err_open {
                tokio::select! {
                    l = out.next_line(), if out_open => match l {
                        Ok(Some(l)) => { on_line(&l); stdout.push_str(&l); stdout.push('\n'); push(l, &mut tail); }
                        _ => out_open = false,
                    },
                    l = err.next_line(), if err_open => match l {
                        Ok(Some(l)) => { on_line(&l); push(l, &mut tail); }
                        _ => err_open = false,
                    },
                }
            }
            child.wait().await
        };
        let status = tokio::time::timeout(limit, work).await;
        let tail_text = || tail.iter().cloned().collect::<Vec<_>>().join("\n");
        match status {
            Err(_) => Err(ComposeError::Timeout { what: what.into(), secs: limit.as_secs(), tail: tail_text() }),
            Ok(Err(e)) => Err(ComposeError::Missing(e.to_string())),
            Ok(Ok(s)) if s.success() => Ok(stdout),
            Ok(Ok(s)) => Err(ComposeError::Failed { what: what.into(), code: s.code().unwrap_or(-1), tail: tail_text() }),
        }
    }

    /// The resolved model of the user's files (no override), as compose sees it.
    pub async fn config(&self, limit: Duration) -> Result<ComposeModel, ComposeError> {
        let args = vec!["config".into(), "--format".into(), "json".into()];
        let json = self.run("config", &args, false, limit, |_| {}).await?;
        ComposeModel::parse(&json).map_err(|tail| ComposeError::Failed { what: "config".into(), code: 0, tail })
    }

    pub async fn build(&self, services: &[String], limit: Duration, on_line: impl FnMut(&str)) -> Result<(), ComposeError> {
        let mut args = vec!["build".to_string()];
        args.extend(services.iter().cloned());
        self.run("build", &args, true, limit, on_line).await.map(drop)
    }

    /// `up -d` without building or pulling: images were built or checked before.
    pub async fn up(&self, services: &[String], limit: Duration, on_line: impl FnMut(&str)) -> Result<(), ComposeError> {
        let mut args: Vec<String> = ["up", "-d", "--no-build", "--pull", "never", "--remove-orphans"].map(String::from).to_vec();
        args.extend(services.iter().cloned());
        self.run("up", &args, true, limit, on_line).await.map(drop)
    }

    /// `down -v`: containers, networks and this project's volumes.
    pub async fn down(&self, limit: Duration) -> Result<(), ComposeError> {
        let args: Vec<String> = ["down", "-v", "--remove-orphans", "--timeout", "10"].map(String::from).to_vec();
        self.run("down", &args, true, limit, |_| {}).await.map(drop)
    }
}
