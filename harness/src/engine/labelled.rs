//! What a run leaves on the engine, found by its labels: listing, sweeping, and the addresses of
//! what a run created (where probes may connect).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::future::join_all;

use super::{bounded, label_filter, Engine, EngineError, CALL_TIMEOUT};

/// Addresses of what this run created: container address → container, gateway → network.
#[derive(Clone, Debug, Default)]
pub struct RunAddresses {
    pub(crate) containers: BTreeMap<IpAddr, String>,
    pub(crate) gateways: BTreeMap<IpAddr, String>,
    /// A remote engine's host (`DOCKER_HOST`): its published ports are the stack's.
    pub(crate) engine_host: Option<String>,
}

/// Resources carrying a label, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leftovers {
    /// Container names (or ids).
    pub containers: Vec<String>,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names; anonymous ones are marked `(anonymous)`.
    pub volumes: Vec<String>,
    /// Images a run built (tag, or id when untagged).
    #[serde(default)]
    pub images: Vec<String>,
}

/// A resource the engine holds for a stackcheck run, with its labels.
#[derive(Clone, Debug)]
pub struct Tagged {
    pub(crate) kind: ResourceKind,
    pub(crate) name: String,
    pub(crate) labels: HashMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The kinds of resource a run creates.
pub enum ResourceKind {
    /// A container.
    Container,
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// An image the run built.
    Image,
}

impl Leftovers {
    /// Groups listed resources by kind.
    pub fn from_tagged(tagged: impl IntoIterator<Item = Tagged>) -> Leftovers {
        let mut out = Leftovers::default();
        for t in tagged {
            match t.kind {
                ResourceKind::Container => out.containers.push(t.name),
                ResourceKind::Network => out.networks.push(t.name),
                ResourceKind::Volume => out.volumes.push(t.name),
                ResourceKind::Image => out.images.push(t.name),
            }
        }
        out
    }

    /// Nothing is left.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
            && self.images.is_empty()
    }

    /// `containers [..], volumes [..]`: only the kinds that have something.
    pub fn describe(&self) -> String {
        let kinds = [
            ("containers", &self.containers),
            ("networks", &self.networks),
            ("volumes", &self.volumes),
            ("images", &self.images),
        ];
        kinds
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} {v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Engine {
    /// Containers (running or not) and networks carrying `label`.
    async fn containers_and_networks(
        &self,
        label: &str,
    ) -> Result<(Vec<ContainerSummary>, Vec<bollard::models::Network>), EngineError> {
        let filters = label_filter(label);
        let containers = self.list_containers(true, &filters).await?;
        let networks = bounded(
            "list networks",
            CALL_TIMEOUT,
            self.docker.list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        Ok((containers, networks))
    }

    /// Lists what carries `label` (`key=value`, or a bare key), with each resource's labels.
    pub async fn tagged(&self, label: &str) -> Result<Vec<Tagged>, EngineError> {
        let filters = label_filter(label);
        let (containers, networks) = self.containers_and_networks(label).await?;
        let volumes = bounded(
            "list volumes",
            CALL_TIMEOUT,
            self.docker.list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        let images = bounded(
            "list images",
            CALL_TIMEOUT,
            self.docker.list_images(Some(
                bollard::query_parameters::ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        let mut out: Vec<Tagged> = containers
            .into_iter()
            .map(|c| Tagged {
                kind: ResourceKind::Container,
                name: c
                    .names
                    .and_then(|n| n.first().cloned())
                    .unwrap_or_else(|| c.id.unwrap_or_default())
                    .trim_start_matches('/')
                    .to_string(),
                labels: c.labels.unwrap_or_default(),
            })
            .collect();
        out.extend(networks.into_iter().filter_map(|n| {
            Some(Tagged {
                kind: ResourceKind::Network,
                name: n.name?,
                labels: n.labels.unwrap_or_default(),
            })
        }));
        out.extend(
            volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| Tagged {
                    kind: ResourceKind::Volume,
                    name: v.name,
                    labels: v.labels,
                }),
        );
        out.extend(images.into_iter().map(|i| Tagged {
            kind: ResourceKind::Image,
            // The id, not a tag: a later build of the same tag by another run must not be hit.
            name: i.id,
            labels: i.labels,
        }));
        Ok(out)
    }

    /// Addresses of the containers and network gateways carrying `label`.
    pub async fn run_addresses(&self, label: &str) -> Result<RunAddresses, EngineError> {
        let (containers, networks) = self.containers_and_networks(label).await?;
        let mut out = RunAddresses {
            engine_host: self.remote_host.clone(),
            ..Default::default()
        };
        for c in containers {
            let name = c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let nets = c
                .network_settings
                .and_then(|n| n.networks)
                .unwrap_or_default();
            for ep in nets.into_values() {
                if let Some(ip) = ep.ip_address.and_then(|ip| ip.parse().ok()) {
                    out.containers.insert(ip, name.clone());
                }
            }
        }
        for n in networks {
            let configs = n.ipam.and_then(|i| i.config).unwrap_or_default();
            for gw in configs.into_iter().filter_map(|c| c.gateway) {
                if let Ok(ip) = gw.parse() {
                    out.gateways.insert(ip, n.name.clone().unwrap_or_default());
                }
            }
        }
        Ok(out)
    }

    /// Lists what carries `label` (`key=value`), by kind.
    pub async fn labelled(&self, label: &str) -> Result<Leftovers, EngineError> {
        Ok(Leftovers::from_tagged(self.tagged(label).await?))
    }

    /// Creates an empty volume that only carries `labels`: the mark of a kept run, readable by
    /// any later process through the engine alone.
    pub async fn create_marker(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let opts = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        bounded(
            format!("create volume {name}"),
            CALL_TIMEOUT,
            self.docker.create_volume(opts),
        )
        .await
        .map(drop)
    }

    /// Removes the images a run built. Their untagged parents are the classic builder's cache
    /// and stay (the next build of unchanged inputs is all cache hits), except those made by the
    /// builder's `--label` steps: one step per label, each parent carrying the labels so far
    /// (owner, pid…). Those are this run's alone, never a cache hit, and would be left dangling.
    pub(crate) async fn remove_built_images(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let all = bounded(
            "list images",
            CALL_TIMEOUT,
            self.docker.list_images(Some(
                bollard::query_parameters::ListImagesOptionsBuilder::default()
                    .all(true)
                    .build(),
            )),
        )
        .await
        .unwrap_or_default();
        let by_id: HashMap<&str, &bollard::models::ImageSummary> =
            all.iter().map(|i| (i.id.as_str(), i)).collect();
        for id in ids {
            let mut next = Some(id.clone());
            let mut first = true;
            while let Some(image) = next.take() {
                let info = by_id.get(image.as_str());
                // A `--label` step's image carries the owner (the first label added). Any other
                // label of ours is inherited from the base: the offline stand-ins carry
                // `io.stackcheck.standin`, and the Dockerfile's own steps over them are the cache.
                let ours = info.is_some_and(|i| i.labels.contains_key(super::LABEL_OWNER));
                // The engine lists an untagged image as `<none>:<none>`.
                let tagged = info.is_some_and(|i| i.repo_tags.iter().any(|t| t != "<none>:<none>"));
                if !first && (!ours || tagged) {
                    break;
                }
                first = false;
                let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default()
                    .force(true)
                    .noprune(true)
                    .build();
                let removed = bounded(
                    format!("remove image {image}"),
                    CALL_TIMEOUT,
                    self.docker.remove_image(&image, Some(opts), None),
                )
                .await;
                if removed.is_ok() {
                    next = info.map(|i| i.parent_id.clone()).filter(|p| !p.is_empty());
                }
            }
        }
    }

    /// Removes everything carrying `label`: containers first, then networks and volumes, then the
    /// run's claims once nothing else of it is left. Returns what could not be removed.
    pub async fn sweep(&self, label: &str) -> Result<Leftovers, EngineError> {
        self.sweep_with(label, true).await
    }

    /// [`Engine::sweep`], but the run's claims stay: teardown's first pass, while a `docker
    /// compose` the run interrupted may still be creating what the claims keep others off.
    pub async fn sweep_holding_claims(&self, label: &str) -> Result<Leftovers, EngineError> {
        self.sweep_with(label, false).await
    }

    async fn sweep_with(&self, label: &str, release: bool) -> Result<Leftovers, EngineError> {
        let found = self.labelled(label).await?;
        let (claims, containers): (Vec<&String>, Vec<&String>) = found
            .containers
            .iter()
            .partition(|c| super::claims::is_claim(c));
        // All at once: on a busy engine each removal waits on the daemon, not on the others,
        // and a killed harness's watcher has seconds, not a minute.
        join_all(containers.into_iter().map(|c| self.force_remove(c))).await;
        // Networks and volumes once no container of the run holds them.
        let networks = found.networks.iter().map(|n| async move {
            let _ = bounded(
                format!("remove network {n}"),
                CALL_TIMEOUT,
                self.docker.remove_network(n),
            )
            .await;
        });
        let volumes = found.volumes.iter().map(|v| async move {
            let opts = bollard::query_parameters::RemoveVolumeOptionsBuilder::default()
                .force(true)
                .build();
            let _ = bounded(
                format!("remove volume {v}"),
                CALL_TIMEOUT,
                self.docker.remove_volume(v, Some(opts)),
            )
            .await;
        });
        futures_util::join!(join_all(networks), join_all(volumes));
        // Claims go last, and only once the rest is gone: another run waiting on one starts the
        // moment it goes, and must not meet this run's port, name or network still there.
        if release && !claims.is_empty() {
            let rest = self.labelled(label).await?;
            let held = rest.containers.iter().any(|c| !super::claims::is_claim(c));
            if !held && rest.networks.is_empty() && rest.volumes.is_empty() {
                join_all(claims.into_iter().map(|c| self.force_remove(c))).await;
            }
        }
        self.remove_built_images(&found.images).await;
        self.labelled(label).await
    }

    async fn force_remove(&self, container: &str) {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let _ = bounded(
            format!("remove container {container}"),
            CALL_TIMEOUT,
            self.docker.remove_container(container, Some(opts)),
        )
        .await;
    }
}
