//! Claims: what only one stack can hold at a time on an engine (a fixed host port, a
//! `container_name`, a fixed network or volume name, the tag of an image it builds, a fixed
//! subnet), held by a run across processes and hosts sharing the engine. A claim is a container
//! named after what it claims, created and never started: the engine lets only one container have a name, so creating it is
//! the atomic test-and-set. It carries the run's labels, so teardown, the stale sweep and the
//! crash watcher remove it with the run's other resources.

use std::collections::BTreeMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use ipnet::Ipv4Net;

use super::{bounded, optional, Engine, EngineError, CALL_TIMEOUT, LABEL_RUN};

impl Engine {
    /// Claims `what` (a claim as `run::schedule::claims_of` words it: `host port 5432/tcp`) for
    /// the run with these labels. `Ok(None)`: claimed; `Ok(Some(run))`: that stackcheck run holds
    /// it.
    pub async fn claim(
        &self,
        what: &str,
        labels: &BTreeMap<String, String>,
        images: &[String],
    ) -> Result<Option<String>, EngineError> {
        self.claim_named(&claim_name(what), what, labels, images)
            .await
    }

    /// Claims `subnet` for the run with these labels (see [`Engine::claim`]).
    pub async fn claim_subnet(
        &self,
        subnet: &Ipv4Net,
        labels: &BTreeMap<String, String>,
        images: &[String],
    ) -> Result<Option<String>, EngineError> {
        let name = subnet_claim_name(subnet);
        self.claim_named(&name, &format!("subnet {subnet}"), labels, images)
            .await
    }

    async fn claim_named(
        &self,
        name: &str,
        what: &str,
        labels: &BTreeMap<String, String>,
        images: &[String],
    ) -> Result<Option<String>, EngineError> {
        // Any image will do, the container never starts; the caller lists the candidates. Never
        // another run's build: that run's teardown could not remove an image a claim stands on.
        let mut images = images.iter();
        let mut image = images.next();
        let mut conflicts = 0;
        while let Some(img) = image {
            let body = ContainerCreateBody {
                image: Some(img.clone()),
                cmd: Some(vec!["claim".into()]),
                labels: Some(labels.clone().into_iter().collect()),
                host_config: Some(HostConfig {
                    network_mode: Some("none".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let opts = CreateContainerOptionsBuilder::default().name(name).build();
            let created = bounded(
                format!("claim {what}"),
                CALL_TIMEOUT,
                self.docker.create_container(Some(opts), body),
            )
            .await;
            match created {
                Ok(_) => return Ok(None),
                Err(EngineError::Call { cause, .. }) if cause.contains("No such image") => {
                    image = images.next();
                }
                Err(EngineError::Call { cause, .. })
                    if super::status_code(&cause) == Some(409)
                        || cause.contains("already in use") =>
                {
                    if let Some(info) = optional(self.inspect(name).await)? {
                        let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
                        let run = labels.get(LABEL_RUN).cloned();
                        return Ok(Some(run.unwrap_or_else(|| "(unlabelled)".into())));
                    }
                    // Released between our create and our look: try again.
                    conflicts += 1;
                    if conflicts == 3 {
                        return Ok(Some("(claims churn)".into()));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(EngineError::Call {
            what: format!("claim {what}"),
            cause: "none of the stack's images is on the engine to create a claim from".into(),
        })
    }
}

impl Engine {
    /// Tags of the engine's images that no stackcheck run built: a claim container can be made
    /// from one before the stack's own images exist, and no run's teardown removes it.
    pub async fn plain_images(&self) -> Result<Vec<String>, EngineError> {
        let all = bounded(
            "list images",
            CALL_TIMEOUT,
            self.docker
                .list_images(None::<bollard::query_parameters::ListImagesOptions>),
        )
        .await?;
        let plain = all
            .into_iter()
            .filter(|i| !i.labels.keys().any(|k| k.starts_with("io.stackcheck.")));
        Ok(plain
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .collect())
    }
}

/// Whether a container (by name, as the engine lists it) is a claim.
pub(crate) fn is_claim(name: &str) -> bool {
    let name = name.trim_start_matches('/');
    name.starts_with(CLAIM_PREFIX) || name.starts_with(SUBNET_PREFIX)
}

const CLAIM_PREFIX: &str = "stackcheck-claim-";
const SUBNET_PREFIX: &str = "stackcheck-subnet-";

/// The container name that claims a subnet (`/` is not allowed in names).
fn subnet_claim_name(subnet: &Ipv4Net) -> String {
    format!("{SUBNET_PREFIX}{}", subnet.to_string().replace('/', "_"))
}

/// The container name that claims `what`: container names allow `[a-zA-Z0-9_.-]`; anything else
/// becomes `_`. Two claims that map to one name only make their runs wait for each other.
fn claim_name(what: &str) -> String {
    let slug: String = what
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    format!("{CLAIM_PREFIX}{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_are_valid_container_names() {
        assert_eq!(
            claim_name("host port 5432/tcp"),
            "stackcheck-claim-host_port_5432_tcp"
        );
        assert_eq!(
            claim_name("container name mt5-db"),
            "stackcheck-claim-container_name_mt5-db"
        );
        assert_eq!(
            subnet_claim_name(&"172.28.0.0/16".parse().unwrap()),
            "stackcheck-subnet-172.28.0.0_16"
        );
        assert!(is_claim("/stackcheck-claim-host_port_5432_tcp"));
        assert!(!is_claim("sc-features-1-api-1"));
    }
}
