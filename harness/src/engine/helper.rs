//! Helper containers the harness itself starts: probes that share a target's network namespace or
//! mounts, canary listeners, and throw-away containers for reading an image's filesystem. Every one
//! carries the run's labels, so the teardown sweep finds it even when a check is cut short.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest, NetworkCreateRequest,
    PortBinding,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;

use super::{bounded, optional, Engine, EngineError, ExecOutput, Watching, CALL_TIMEOUT};

/// The image probes and canaries run from unless `STACKCHECK_PROBE_IMAGE` names another (built by
/// `ci/images.sh`: Debian minbase + python3; it is in no registry, so it is never pulled).
pub const DEFAULT_PROBE_IMAGE: &str = "stackcheck/probe:1";

/// The probe image of this process: `STACKCHECK_PROBE_IMAGE` (any image with `python3` on its
/// PATH, e.g. one a team mirrors into its own registry), else [`DEFAULT_PROBE_IMAGE`].
pub fn probe_image() -> &'static str {
    static IMAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::var("STACKCHECK_PROBE_IMAGE")
            .ok()
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PROBE_IMAGE.to_string())
    });
    &IMAGE
}

/// A helper container to create.
#[derive(Clone, Debug, Default)]
pub struct HelperSpec {
    pub(crate) image: String,
    pub(crate) cmd: Vec<String>,
    /// `none`, `container:<id>`, a network name; default: the engine's default bridge.
    pub(crate) network_mode: Option<String>,
    /// Further networks to connect before start.
    pub(crate) networks: Vec<String>,
    /// Containers whose mounts (with their ro/rw modes) the helper gets.
    pub(crate) volumes_from: Vec<String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// Publish this container port on the host at this address (random host port).
    pub(crate) publish: Option<(String, u16)>,
}

impl Engine {
    pub(super) async fn create_helper(&self, spec: &HelperSpec) -> Result<String, EngineError> {
        let port_key = spec.publish.as_ref().map(|(_, p)| format!("{p}/tcp"));
        let port_bindings = spec.publish.as_ref().map(|(ip, p)| {
            let binding = PortBinding {
                host_ip: Some(ip.clone()),
                host_port: Some(String::new()),
            };
            std::collections::HashMap::from([(format!("{p}/tcp"), Some(vec![binding]))])
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            exposed_ports: port_key.map(|k| vec![k]),
            cmd: Some(spec.cmd.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            host_config: Some(HostConfig {
                network_mode: spec.network_mode.clone(),
                volumes_from: (!spec.volumes_from.is_empty()).then(|| spec.volumes_from.clone()),
                port_bindings,
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().build();
        let created = bounded(
            format!("create helper from {}", spec.image),
            CALL_TIMEOUT,
            self.docker.create_container(Some(opts), body),
        )
        .await?;
        for net in &spec.networks {
            let req = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(EndpointSettings::default()),
            };
            if let Err(e) = bounded(
                format!("connect helper to {net}"),
                CALL_TIMEOUT,
                self.docker.connect_network(net, req),
            )
            .await
            {
                let _ = self.remove(&created.id).await;
                return Err(e);
            }
        }
        Ok(created.id)
    }

    /// Runs a helper to completion (at most `limit`) and removes it; returns its exit code and output.
    pub async fn run_helper(
        &self,
        spec: &HelperSpec,
        limit: Duration,
        watching: &Watching,
    ) -> Result<ExecOutput, EngineError> {
        let id = self.create_helper(spec).await?;
        let result = async {
            bounded(
                "start helper",
                CALL_TIMEOUT,
                self.docker.start_container(&id, None),
            )
            .await?;
            let mut wait = self.docker.wait_container(&id, None);
            // A non-zero exit arrives as an error item; the exit code is read from inspect below.
            let _ = tokio::time::timeout(limit, wait.next())
                .await
                .map_err(|_| EngineError::Timeout {
                    what: format!("helper {:?} from {}", spec.cmd.first(), spec.image),
                    secs: limit.as_secs(),
                })?;
            let state = self.inspect(&id).await?.state.unwrap_or_default();
            let mut out = ExecOutput::watching(watching);
            out.exit = state.exit_code.unwrap_or(-1);
            let opts = LogsOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .build();
            let mut logs = self.docker.logs(&id, Some(opts));
            while let Some(Ok(item)) = logs.next().await {
                out.push(item);
            }
            out.finish();
            Ok(out)
        }
        .await;
        let _ = self.remove(&id).await;
        result
    }

    /// Starts a long-running helper (a canary) and returns its id; the caller removes it.
    pub async fn start_helper(&self, spec: &HelperSpec) -> Result<String, EngineError> {
        let id = self.create_helper(spec).await?;
        if let Err(e) = bounded(
            "start helper",
            CALL_TIMEOUT,
            self.docker.start_container(&id, None),
        )
        .await
        {
            let _ = self.remove(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Creates a labelled bridge network and returns its gateway address.
    pub async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        bounded(
            format!("create network {name}"),
            CALL_TIMEOUT,
            self.docker.create_network(req),
        )
        .await?;
        let info = self.network(name).await?.unwrap_or_default();
        info.ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| c.gateway)
            .ok_or_else(|| EngineError::Call {
                what: format!("inspect network {name}"),
                cause: "no gateway address".into(),
            })
    }

    /// Removes a network the run created.
    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        optional(
            bounded(
                format!("remove network {name}"),
                CALL_TIMEOUT,
                self.docker.remove_network(name),
            )
            .await,
        )
        .map(drop)
    }
}
