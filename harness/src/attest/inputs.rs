//! What a run was made from, for the statement's `configuration`: each suite file, the compose
//! files and env files it names (the suite's `stack.env_file` and each service's `env_file` as
//! the compose files write them), by path and `sha256` — never a value from them — and the
//! stackcheck, engine and compose that ran it. And the CI run's URL, when the environment says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::statement::ResourceDescriptor;
use crate::suite::LoadedSuite;

/// A file named by the run that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {why}")]
pub struct InputError {
    /// The file, as the run names it.
    pub file: String,
    /// Why it could not be read.
    pub why: String,
}

/// The files of `loaded` (each once, in the order first named), each with its `sha256`.
pub fn files(loaded: &[LoadedSuite]) -> Result<Vec<ResourceDescriptor>, InputError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for s in loaded {
        let named = std::iter::once(s.path.clone())
            .chain(s.suite.stack.compose.iter().map(|c| s.dir.join(c)))
            .chain(s.suite.stack.env_file.iter().map(|e| s.dir.join(e)));
        for p in named {
            push_new(&mut paths, p);
        }
        for c in &s.suite.stack.compose {
            for e in env_files_of(&s.dir.join(c)) {
                push_new(&mut paths, e);
            }
        }
    }
    paths.iter().map(|p| descriptor(p)).collect()
}

fn push_new(paths: &mut Vec<PathBuf>, p: PathBuf) {
    let p = normal(&p);
    if !paths.contains(&p) {
        paths.push(p);
    }
}

/// `p` without `.` parts, so that one file has one name.
fn normal(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// The file at `p` by its path and `sha256`.
fn descriptor(p: &Path) -> Result<ResourceDescriptor, InputError> {
    let name = p.display().to_string();
    let bytes = std::fs::read(p).map_err(|e| InputError {
        file: name.clone(),
        why: e.to_string(),
    })?;
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
    Ok(ResourceDescriptor::sha256(&name, &digest))
}

/// The `env_file`s the services of the compose file at `compose` name (a path, a list of paths,
/// or a list of `{ path: … }`), relative to its folder. A file this reader cannot parse names
/// none: compose itself will have refused it.
fn env_files_of(compose: &Path) -> Vec<PathBuf> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        services: BTreeMap<String, Service>,
    }
    #[derive(serde::Deserialize)]
    struct Service {
        #[serde(default)]
        env_file: Option<serde_json::Value>,
    }
    let dir = compose.parent().unwrap_or(Path::new(""));
    let Some(file) = std::fs::read_to_string(compose)
        .ok()
        .and_then(|t| serde_saphyr::from_str::<File>(&t).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in file.services.values() {
        let entries = match &s.env_file {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(v) => vec![v.clone()],
            None => Vec::new(),
        };
        for e in entries {
            let path = e
                .as_str()
                .or_else(|| e.get("path").and_then(|p| p.as_str()));
            if let Some(path) = path {
                out.push(dir.join(path));
            }
        }
    }
    out
}

/// stackcheck itself, with the engine and compose that ran the suites.
pub fn harness(engine: &str, compose: &str) -> ResourceDescriptor {
    let version = env!("CARGO_PKG_VERSION");
    ResourceDescriptor {
        name: "stackcheck".into(),
        uri: Some(format!("pkg:cargo/stackcheck@{version}")),
        annotations: BTreeMap::from([
            ("version".to_string(), version.to_string()),
            ("engine".to_string(), engine.to_string()),
            ("compose".to_string(), compose.to_string()),
        ]),
        ..ResourceDescriptor::default()
    }
}

/// The CI run's URL from the variables common CI systems set (GitHub Actions, GitLab CI,
/// Buildkite, CircleCI, Jenkins), read through `var`.
///
/// ```
/// let env = |k: &str| match k {
///     "GITHUB_SERVER_URL" => Some("https://github.com".to_string()),
///     "GITHUB_REPOSITORY" => Some("acme/shop".to_string()),
///     "GITHUB_RUN_ID" => Some("42".to_string()),
///     _ => None,
/// };
/// assert_eq!(
///     stackcheck::attest::ci_url(&env).as_deref(),
///     Some("https://github.com/acme/shop/actions/runs/42")
/// );
/// assert_eq!(stackcheck::attest::ci_url(&|_| None), None);
/// ```
pub fn ci_url(var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let (Some(server), Some(repo), Some(run)) = (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        return Some(format!("{server}/{repo}/actions/runs/{run}"));
    }
    [
        "CI_JOB_URL",
        "BUILDKITE_BUILD_URL",
        "CIRCLE_BUILD_URL",
        "BUILD_URL",
    ]
    .into_iter()
    .find_map(|k| var(k).filter(|v| !v.is_empty()))
}
