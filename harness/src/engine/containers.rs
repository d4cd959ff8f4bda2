//! Stacks started by `docker run` (`stack.containers`), one container at a time, through
//! testcontainers for the container lifecycle. Each container carries the run's labels.

use std::collections::BTreeMap;

use testcontainers::core::{AccessMode, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::EngineError;

/// One `docker run`, resolved: image, network, mounts with placeholders replaced, command, env.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub(crate) image: String,
    pub(crate) network: Option<String>,
    /// `(host, container, read_only)`.
    pub(crate) mounts: Vec<(String, String, bool)>,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) labels: BTreeMap<String, String>,
}

/// A started container; removed by [`Started::remove`] (and by the teardown sweep if that is missed).
pub struct Started {
    pub(crate) id: String,
    container: ContainerAsync<GenericImage>,
}

impl Started {
    /// Stops and removes the container and its anonymous volumes.
    pub async fn remove(self) {
        let _ = self.container.rm().await;
    }
}

/// Splits `name[:tag]` the way testcontainers wants it (a registry port is not a tag).
fn split_ref(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// Starts `spec` as `docker run` would.
pub async fn start(spec: &RunSpec) -> Result<Started, EngineError> {
    let (name, tag) = split_ref(&spec.image);
    let mut request = GenericImage::new(name, tag).with_labels(spec.labels.clone());
    if let Some(net) = &spec.network {
        request = request.with_network(net.clone());
    }
    for (host, target, ro) in &spec.mounts {
        let mode = if *ro {
            AccessMode::ReadOnly
        } else {
            AccessMode::ReadWrite
        };
        request = request
            .with_mount(Mount::bind_mount(host.clone(), target.clone()).with_access_mode(mode));
    }
    if let Some(cmd) = &spec.command {
        request = request.with_cmd(cmd.clone());
    }
    for (k, v) in &spec.env {
        request = request.with_env_var(k.clone(), v.clone());
    }
    let container = request.start().await.map_err(|e| EngineError::Call {
        what: format!("start a container of {}", spec.image),
        cause: e.to_string(),
    })?;
    Ok(Started {
        id: container.id().to_string(),
        container,
    })
}
