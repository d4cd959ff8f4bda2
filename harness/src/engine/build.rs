//! `docker build` (the classic builder on this engine), for images a suite builds outside compose.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::cli::{stream, CliError};
use super::BuildError;
use crate::suite::BuildSpec;

impl super::Engine {
    /// `docker build` on this engine of `build` (its context relative to `dir`) as `tag`, putting
    /// `labels` on the image. `--force-rm`: the classic builder otherwise leaves the containers of
    /// failed steps behind.
    pub async fn docker_build(
        &self,
        dir: &Path,
        build: &BuildSpec,
        tag: &str,
        labels: &BTreeMap<String, String>,
        limit: Duration,
        on_line: impl FnMut(&str),
    ) -> Result<(), BuildError> {
        let context = dir.join(&build.context);
        let (dockerfile, args) = (build.dockerfile.as_deref(), &build.args);
        let mut cmd = Command::new("docker");
        self.endpoint.apply(cmd.as_std_mut());
        cmd.args(["build", "--force-rm", "--pull=false", "-t", tag]);
        if let Some(f) = dockerfile {
            cmd.arg("-f").arg(context.join(f));
        }
        for (k, v) in args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        for (k, v) in labels {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        cmd.arg(context).env("DOCKER_BUILDKIT", "0");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        stream(cmd, limit, on_line, super::Captured::default())
            .await
            .map(drop)
            .map_err(|e| match e {
                CliError::Spawn(m) => BuildError::Missing(m),
                CliError::Failed { code, tail, .. } => BuildError::Failed {
                    tag: tag.into(),
                    code,
                    tail,
                },
                CliError::Timeout { tail } => BuildError::Timeout {
                    tag: tag.into(),
                    secs: limit.as_secs(),
                    tail,
                },
            })
    }
}
