//! Pulling images from their registries, with the credentials the docker CLI would use
//! (`DOCKER_CONFIG` or `~/.docker/config.json`: `auths`, `credsStore`, `credHelpers`). The
//! credentials go to the engine and nowhere else: no message of this module carries them.

use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::Engine;

/// Docker Hub's key in `config.json` (`docker login` with no server writes it).
const HUB: &str = "https://index.docker.io/v1/";

/// Why a pull failed, in the words a user acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry refused the credentials (or their absence): 401/403.
    Denied,
    /// The registry has no such repository or tag: 404.
    NotFound,
    /// The registry did not answer, or not in time.
    Unreachable,
    /// The docker CLI's config or credential helper could not give the credentials.
    Credentials,
    /// Anything else the engine said.
    Other,
}

/// A failed pull: which image, from which registry, and why. Never carries credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct PullError {
    /// The image as written.
    pub image: String,
    /// The registry it comes from (`docker.io` for Docker Hub).
    pub registry: String,
    /// The kind of failure.
    pub kind: PullFailure,
    /// The engine's words.
    pub cause: String,
}

impl PullError {
    fn describe(&self) -> String {
        let PullError {
            image,
            registry,
            cause,
            ..
        } = self;
        match self.kind {
            PullFailure::Denied => format!(
                "registry {registry} refused access to `{image}` ({cause}); log in with `docker login {registry}` (stackcheck uses the docker CLI's credentials)"
            ),
            PullFailure::NotFound => format!("registry {registry} has no `{image}` ({cause})"),
            PullFailure::Unreachable => {
                format!("registry {registry} did not answer for `{image}` ({cause})")
            }
            PullFailure::Credentials => format!(
                "cannot get the docker CLI's credentials for registry {registry} (to pull `{image}`): {cause}"
            ),
            PullFailure::Other => format!("pulling `{image}` from {registry} failed: {cause}"),
        }
    }
}

/// The registry an image reference names: its first component when that is a host (has a `.`
/// or a `:`, or is `localhost`), else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

/// The credentials the docker CLI would send to `registry`: none when none are configured (or a
/// helper has none for it, as the CLI then pulls anonymously); an error, in words without any
/// secret, when the config or a credential helper cannot give them.
fn credentials(registry: &str) -> Result<Option<DockerCredentials>, String> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let key = if registry == "docker.io" {
        HUB
    } else {
        registry
    };
    let found = match docker_credential::get_credential(key) {
        Ok(found) => found,
        Err(E::NoCredentialConfigured | E::ConfigNotFound) => return Ok(None),
        Err(E::HelperFailure { stdout, stderr, .. })
            if format!("{stdout}{stderr}").contains("credentials not found") =>
        {
            return Ok(None)
        }
        Err(E::HelperFailure { helper, stderr, .. }) => {
            let said = stderr.lines().next().unwrap_or_default();
            return Err(format!(
                "credential helper `{helper}` failed: {}",
                crate::text::snippet(said, 200)
            ));
        }
        Err(E::HelperCommunicationError) => {
            return Err(
                "the credential helper that config.json names for it (`credHelpers` or `credsStore`) could not be run; is its `docker-credential-…` program on PATH?"
                    .into(),
            )
        }
        Err(e) => return Err(format!("config.json: {e}")),
    };
    Ok(Some(match found {
        DockerCredential::UsernamePassword(username, password) => DockerCredentials {
            username: Some(username),
            password: Some(password),
            serveraddress: Some(key.to_string()),
            ..Default::default()
        },
        DockerCredential::IdentityToken(token) => DockerCredentials {
            identitytoken: Some(token),
            serveraddress: Some(key.to_string()),
            ..Default::default()
        },
    }))
}

impl Engine {
    /// Pulls `image` within `limit`, calling `progress` with one line of where it stands (layers
    /// done of those seen). Returns the pulled digest (`RepoDigests`), when the engine has one.
    pub async fn pull(
        &self,
        image: &str,
        limit: Duration,
        mut progress: impl FnMut(&str),
    ) -> Result<Option<String>, PullError> {
        let registry = registry_of(image);
        // `name:tag` or `name@digest`; a bare name means `latest`, as the CLI does.
        let (from_image, tag) = split_reference(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&from_image)
            .tag(&tag)
            .build();
        let auth = credentials(&registry).map_err(|cause| PullError {
            image: image.to_string(),
            registry: registry.clone(),
            kind: PullFailure::Credentials,
            cause,
        })?;
        let mut stream = self.docker.create_image(Some(opts), None, auth);
        let started = Instant::now();
        let mut layers: std::collections::BTreeMap<String, bool> = Default::default();
        let err = |cause: String| classify(image, &registry, cause);
        loop {
            let left = limit.saturating_sub(started.elapsed());
            let next = tokio::time::timeout(left, stream.next())
                .await
                .map_err(|_| PullError {
                    image: image.to_string(),
                    registry: registry.clone(),
                    kind: PullFailure::Unreachable,
                    cause: format!("no end of the pull within {} s", limit.as_secs()),
                })?;
            let Some(item) = next else { break };
            let info = item.map_err(|e| err(e.to_string()))?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                return Err(err(e));
            }
            if let (Some(id), Some(status)) = (info.id, info.status.as_deref()) {
                let done = matches!(status, "Pull complete" | "Already exists");
                *layers.entry(id).or_default() |= done;
                let finished = layers.values().filter(|d| **d).count();
                progress(&format!(
                    "pulling {image}: {finished}/{} layers",
                    layers.len()
                ));
            }
        }
        let digests = self
            .image(image)
            .await
            .ok()
            .flatten()
            .and_then(|i| i.repo_digests)
            .unwrap_or_default();
        Ok(own_digests_first(image, digests).into_iter().next())
    }
}

/// The progress line of a finished pull: `pulled R in 2.4s (R@sha256:…)`.
pub fn pulled_line(image: &str, took: Duration, digest: Option<&str>) -> String {
    let digest = digest.map(|d| format!(" ({d})")).unwrap_or_default();
    format!("pulled {image} in {:.1}s{digest}", took.as_secs_f32())
}

/// An image's `RepoDigests`, those of `image`'s own repository first: the same content pushed
/// elsewhere (another tag of the same layers, a mirror) shares one image id and lists every
/// repository it came from, in no useful order.
pub fn own_digests_first(image: &str, mut digests: Vec<String>) -> Vec<String> {
    let (repo, _) = split_reference(image);
    digests.sort_by_key(|d| d.split_once('@').map(|(r, _)| r) != Some(repo.as_str()));
    digests
}

/// `registry/name:tag` → (`registry/name`, `tag`); `name@sha256:…` keeps the digest as the tag,
/// as the engine's API takes it.
fn split_reference(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    // A `:` after the last `/` is a tag; one before it is a registry's port.
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// What the engine's answer means for the user. The answer quotes the image and the registry,
/// whose ports and tags may hold any digits (a registry on port 40127 must not read as a 401), so
/// the image is cut out first and status codes count only as whole three-digit words.
fn classify(image: &str, registry: &str, cause: String) -> PullError {
    let lower = cause.replace(image, " ").to_lowercase();
    let codes: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let any = |words: &[&str], status: &[&str]| {
        words.iter().any(|w| lower.contains(w)) || status.iter().any(|s| codes.contains(s))
    };
    let kind = if any(
        &["unauthorized", "denied", "authentication required"],
        &["401", "403"],
    ) {
        PullFailure::Denied
    } else if any(
        &["not found", "manifest unknown", "does not exist"],
        &["404"],
    ) {
        PullFailure::NotFound
    } else if any(
        &["connection refused", "no such host", "timeout", "dial tcp"],
        &[],
    ) {
        PullFailure::Unreachable
    } else {
        PullFailure::Other
    };
    PullError {
        image: image.to_string(),
        registry: registry.to_string(),
        kind,
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_registry_and_tag_as_the_cli_reads_them() {
        assert_eq!(registry_of("python:3.9-slim"), "docker.io");
        assert_eq!(registry_of("grafana/grafana:latest"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/app:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/org/app"), "ghcr.io");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(
            split_reference("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app".into(), "latest".into())
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/app:1.2"),
            ("127.0.0.1:5000/app".into(), "1.2".into())
        );
        assert_eq!(
            split_reference("app@sha256:abc"),
            ("app".into(), "sha256:abc".into())
        );
    }

    #[test]
    fn the_digest_of_the_images_own_repository_comes_first() {
        let all = vec![
            "b:5000/app@sha256:2".to_string(),
            "a:5000/app@sha256:1".into(),
        ];
        assert_eq!(
            own_digests_first("a:5000/app:1", all.clone())[0],
            "a:5000/app@sha256:1"
        );
        assert_eq!(own_digests_first("c/app:1", all.clone()), all);
    }

    #[test]
    fn engine_answers_become_causes_a_user_acts_on() {
        let c = |cause: &str| classify("r/app:1", "r", cause.to_string()).kind;
        assert_eq!(
            c("unauthorized: authentication required"),
            PullFailure::Denied
        );
        assert_eq!(
            c("manifest for r/app:1 not found: manifest unknown"),
            PullFailure::NotFound
        );
        assert_eq!(
            c("Get \"http://r/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused"),
            PullFailure::Unreachable
        );
        assert_eq!(
            c("Docker responded with status code 403: no"),
            PullFailure::Denied
        );
    }

    /// The run that found it: a registry on port 40127 answering 404 read as "refused access".
    #[test]
    fn digits_in_the_registry_or_image_are_not_status_codes() {
        let image = "127.0.0.1:40127/sc/probe:absent";
        let cause = format!(
            "Docker responded with status code 404: manifest for {image} not found: manifest unknown"
        );
        assert_eq!(
            classify(image, "127.0.0.1:40127", cause).kind,
            PullFailure::NotFound
        );
        let image = "127.0.0.1:5000/app:401";
        let cause = format!("pull access to {image} failed: manifest unknown");
        assert_eq!(
            classify(image, "127.0.0.1:5000", cause).kind,
            PullFailure::NotFound
        );
    }
}
