//! Suite model: what one documented stack promises (the v1 contract in `suite-format.md`).
//!
//! Parsing is strict: unknown keys, wrong types and missing required keys are errors with
//! file:line:column (see `load`). Semantic checks that need the whole document live in
//! `validate`.

/// A type read from one string (`FromStr`), with its JSON Schema: a string of this pattern. Defined
/// before the modules so they can use it.
macro_rules! from_str_serde {
    ($t:ty, $desc:literal, $pattern:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "description": $desc, "pattern": $pattern })
            }
        }
    };
}

mod check;
mod duration;
mod expect;
mod extensions;
mod files;
mod load;
mod policy;
mod rules;
mod secrets;
mod values;
mod variants;
mod vars;

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use check::*;
pub use duration::Dur;
pub use expect::{Expect, Retry};
pub use files::{ContentPattern, FileAttrs, FileMode, FileSpec, Owner, Sha256};
pub use load::{discover, load_str, nearest, read_file, schema_json, SuiteError};
pub use policy::{Level, Policy, Rule};
pub use secrets::{looks_secret, named_secret, url_passwords};
pub use values::{
    parse_mount, parse_size, signal_number, text_matches, Mount, Pattern, ValueError,
};
pub use variants::{Variant, VariantName};
pub use vars::{env_file_entries, request_secrets, templates, Expanded, Vars, VarsError};

/// A loaded suite and where it came from (paths in it are relative to its folder).
#[derive(Clone, Debug)]
pub struct LoadedSuite {
    /// The suite file as given.
    pub path: PathBuf,
    /// Its folder: relative paths in the suite are relative to it.
    pub dir: PathBuf,
    /// What it promises.
    pub suite: Suite,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// Top-level `x-…` keys are skipped before these rules apply (see `extensions`).
#[schemars(extend("patternProperties" = { "^x-": {} }))]
/// A suite: what a stack's documentation promises. Top-level keys starting with `x-` are
/// ignored, as in compose files: a place for anchors that checks share.
pub struct Suite {
    /// Id used in test names: `<suite>::<section>::<check>`.
    #[serde(rename = "suite")]
    pub id: String,
    /// Free text shown in reports.
    #[serde(default)]
    pub about: Option<String>,
    /// Where the promises are documented (free text).
    #[serde(default)]
    pub docs: Option<String>,
    /// How to bring the stack up.
    pub stack: Stack,
    /// Build and image-metadata promises, keyed by image tag.
    #[serde(default)]
    pub(crate) images: BTreeMap<String, ImageSpec>,
    /// Per-service runtime promises.
    #[serde(default)]
    pub(crate) services: BTreeMap<String, ServiceSpec>,
    /// Network promises, keyed by the compose network name.
    #[serde(default)]
    pub(crate) networks: BTreeMap<String, NetworkSpec>,
    /// Named volumes that must exist.
    #[serde(default)]
    pub(crate) volumes: Vec<String>,
    /// Smoke behaviour; each is one test `<suite>::checks::<name>`.
    #[serde(default)]
    pub(crate) checks: Vec<Check>,
    /// Release-gate rules over the compose model, each `error`, `warn` or `off`.
    #[serde(default)]
    pub(crate) policy: Policy,
    /// Tests whose failures are reported as warnings (known problems being worked on): test
    /// names without the `<suite>::` prefix (`checks::<name>`, `service::db::ports`), `*` globs.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(crate) quarantine: Vec<serde_saphyr::Spanned<String>>,
}

impl Suite {
    /// Whether the test `name` (full, `<suite>::…`) is quarantined.
    pub fn is_quarantined(&self, name: &str) -> bool {
        self.quarantine
            .iter()
            .any(|q| self.short_name_matches(&q.value, name))
    }

    /// Services the suite refers to anywhere (its promises, `stack.services`, images built by a
    /// service, checks); each must exist in the compose model.
    pub fn named_services(&self) -> Vec<String> {
        let mut names: Vec<String> = self.services.keys().cloned().collect();
        names.extend(self.stack.services.iter().cloned());
        names.extend(self.images.values().filter_map(|i| i.service.clone()));
        for c in &self.checks {
            names.extend(c.kind.services());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Whether `pattern` matches the test `name` (full) without its `<suite>::` prefix — how
    /// `quarantine:` entries name tests.
    pub fn short_name_matches(&self, pattern: &str, name: &str) -> bool {
        let short = name
            .strip_prefix(&self.id)
            .and_then(|n| n.strip_prefix("::"))
            .unwrap_or(name);
        name_glob(pattern, short)
    }
}

/// `pattern` (a glob; `*` matches across `::`) against a test name.
pub fn name_glob(pattern: &str, name: &str) -> bool {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    glob::Pattern::new(pattern)
        .map(|p| p.matches_with(name, options))
        .unwrap_or(false)
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// How the stack is brought up: compose files, or containers started one by one.
pub struct Stack {
    /// One or more compose files (`-f` order), relative to the suite file.
    #[serde(default)]
    pub compose: Vec<String>,
    /// Or: containers started one by one, as `docker run` would (e.g. an L3 dry-run).
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerSpec>,
    /// Env file passed to compose (`--env-file`); all its values are masked in reports.
    #[serde(default)]
    pub env_file: Option<String>,
    /// Extra environment for interpolation.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The same suite over variants of this stack, each run as `<suite>@<variant>`: `compose`
    /// files appended, `env_file` replaced, `env` merged.
    #[serde(default)]
    pub variants: BTreeMap<VariantName, Variant>,
    /// Names of variables whose values are masked in every report.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Subset of services to start; default all.
    #[serde(default)]
    pub(crate) services: Vec<String>,
    /// Compose profiles to enable (as `--profile`): their services start with the others.
    #[serde(default)]
    pub(crate) profiles: Vec<String>,
    /// `documented` (default) or `ephemeral` (see [`PortsMode`]); `run --ports` overrides it.
    #[serde(default)]
    pub(crate) ports: PortsMode,
    /// When images are pulled: `missing` (default, as compose), `always` or `never`; a service's
    /// own `pull_policy` wins; `run --pull` overrides it.
    #[serde(default)]
    pub(crate) pull: PullPolicy,
    /// Budget for build + up (default 5m).
    #[serde(default)]
    pub(crate) timeout: Option<Dur>,
    /// `documented` (default) or `fast`: this run's healthchecks poll every second (see
    /// [`HealthMode`]); `run --health` overrides it.
    #[serde(default)]
    pub health: HealthMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
/// How often the stack's healthchecks poll during a run.
pub enum HealthMode {
    /// As the compose files and images say.
    #[default]
    Documented,
    /// Every second, with the written interval × retries as the retry budget, so a slow start is
    /// still not a failure; the written interval stays a promise the static checks judge.
    Fast,
}

/// A container started the way `docker run` starts it.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Build the image first (`tag` names it); otherwise `image` must exist.
    #[serde(default)]
    pub(crate) build: Option<BuildSpec>,
    #[serde(default)]
    pub(crate) image: Option<String>,
    /// `none`, `bridge` or a network name (default bridge).
    #[serde(default)]
    pub(crate) network: Option<String>,
    /// `host:container[:ro|:rw]`; `{suite_dir}` and `{tmp}` (a per-run temp dir) are replaced.
    #[serde(default)]
    pub(crate) mounts: Vec<String>,
    #[serde(default)]
    pub(crate) command: Option<Vec<String>>,
    #[serde(default)]
    /// Environment of the container.
    pub env: BTreeMap<String, String>,
    /// One-shot container: wait for it to exit and assert the code.
    #[serde(default)]
    pub(crate) expect_exit: Option<i64>,
}

/// A `docker build`: context and Dockerfile relative to the suite file.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    pub(crate) context: String,
    /// Relative to the context (default `Dockerfile`).
    #[serde(default)]
    pub(crate) dockerfile: Option<String>,
    /// Tag of the built image (containers only; under `images:` the key is the tag).
    #[serde(default)]
    pub(crate) tag: Option<String>,
    #[serde(default)]
    pub(crate) args: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
/// Whether published ports and fixed names are the documented ones or made unique per run.
pub enum PortsMode {
    /// Host ports, `container_name`s and fixed volume/network names exactly as the compose files
    /// say (one run of the stack per engine at a time).
    #[default]
    Documented,
    /// Every published port gets a free host port, `container_name`s and fixed volume/network
    /// names get the run's id appended (the old name stays a network alias), so runs of the same
    /// stack can share an engine. `ports` promises are still proven: the documented mapping from
    /// the compose model, the live binding of the container port.
    Ephemeral,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
/// When a run pulls the images the stack runs (those it does not build), before bring-up, with
/// the docker CLI's credentials.
pub enum PullPolicy {
    /// Those not on the engine (compose's default).
    #[default]
    Missing,
    /// Every one, so a moved tag is seen.
    Always,
    /// None: an image not on the engine stops the run before anything starts (exit 3).
    Never,
}

impl PullPolicy {
    /// Whether an image the engine has (`present`) or lacks is pulled under this policy.
    pub fn pulls(self, present: bool) -> bool {
        match self {
            PullPolicy::Always => true,
            PullPolicy::Missing => !present,
            PullPolicy::Never => false,
        }
    }

    /// A compose service's `pull_policy`, where it decides: `always`, `never`, `missing` /
    /// `if_not_present`; `daily`, `weekly`, `every_<d>` pull when missing (a run keeps no pull
    /// history); `build` and unknown values leave it to the suite.
    pub fn of_service(policy: &str) -> Option<PullPolicy> {
        match policy {
            "always" => Some(PullPolicy::Always),
            "never" => Some(PullPolicy::Never),
            "missing" | "if_not_present" | "daily" | "weekly" => Some(PullPolicy::Missing),
            p if p.starts_with("every_") => Some(PullPolicy::Missing),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Promises about one image (key of `images:`: its tag).
pub struct ImageSpec {
    /// Build the image the way this compose service builds it.
    #[serde(default)]
    pub(crate) service: Option<String>,
    /// Or build it with `docker build` from this context.
    #[serde(default)]
    pub(crate) build: Option<BuildSpec>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    /// `present`, `absent`, or the exact `{test, interval, timeout, retries, start_period}`.
    #[serde(default)]
    pub(crate) healthcheck: Option<HealthcheckSpec>,
    #[serde(default)]
    pub(crate) entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) cmd: Option<Vec<String>>,
    /// A user name, or `non-root`.
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// Exposed ports such as `8000/tcp`.
    #[serde(default)]
    pub(crate) exposes: Option<Vec<String>>,
    /// Largest allowed size, such as `900MiB`.
    #[serde(default)]
    pub(crate) max_size: Option<String>,
    /// Paths read from the image filesystem (no shell needed): `present`, `absent`, or
    /// `{ mode, owner, contains, sha256 }`.
    #[serde(default)]
    pub(crate) files: BTreeMap<String, FileSpec>,
    /// Variables the image's config sets (`ENV`), each with exactly this value; others may exist.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// The image's working directory (`WORKDIR`).
    #[serde(default)]
    pub(crate) workdir: Option<String>,
    /// The image's `VOLUME`s, all of them.
    #[serde(default)]
    pub(crate) volumes: Option<Vec<String>>,
    /// The final stage's `FROM`: the image's layers start with this image's layers.
    #[serde(default)]
    pub(crate) base: Option<String>,
}

impl ImageSpec {
    /// Neither `service` nor `build`: a prebuilt image, pulled or present, is the subject.
    pub fn is_prebuilt(&self) -> bool {
        self.service.is_none() && self.build.is_none()
    }
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
/// A healthcheck promise: present/absent, or an exact test and timings.
pub enum HealthcheckSpec {
    /// `present` or `absent`.
    Presence(Presence),
    /// The exact healthcheck.
    Exact(ExactHealthcheck),
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A healthcheck as the image must declare it.
pub struct ExactHealthcheck {
    /// As in a Dockerfile's exec form, e.g. `[CMD, curl, -f, http://localhost:8000/health]`.
    pub(crate) test: Vec<String>,
    #[serde(default)]
    pub(crate) interval: Option<Dur>,
    #[serde(default)]
    pub(crate) timeout: Option<Dur>,
    #[serde(default)]
    pub(crate) retries: Option<i64>,
    #[serde(default)]
    pub(crate) start_period: Option<Dur>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// Whether something is there.
pub enum Presence {
    /// It is there.
    Present,
    /// It is not.
    Absent,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Promises about one service of the running stack.
pub struct ServiceSpec {
    /// `healthy`, `running` or `exited:<code>`; default: healthy if a healthcheck exists, else running.
    #[serde(default)]
    pub(crate) state: Option<DesiredState>,
    #[serde(default)]
    pub(crate) image: Option<String>,
    /// Documented `host:container[/proto]` mappings, asserted published and accepting connections.
    #[serde(default)]
    pub(crate) ports: Option<Vec<PortMapping>>,
    #[serde(default)]
    pub(crate) networks: Option<Vec<String>>,
    /// `name:/path` or `./host:/path[:ro]`.
    #[serde(default)]
    pub(crate) volumes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) restart: Option<String>,
    /// `service: condition` (service_started, service_healthy, service_completed_successfully).
    #[serde(default)]
    pub(crate) depends_on: Option<BTreeMap<String, String>>,
    /// The effective container environment contains these.
    #[serde(default)]
    pub(crate) env: Option<BTreeMap<String, String>>,
    /// Container paths where a write must fail at runtime.
    #[serde(default)]
    pub(crate) read_only_mounts: Option<Vec<String>>,
    /// Container paths where a write must succeed at runtime.
    #[serde(default)]
    pub(crate) writable_mounts: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Promises about one compose network.
pub struct NetworkSpec {
    #[serde(default)]
    pub(crate) driver: Option<String>,
    #[serde(default)]
    pub(crate) subnet: Option<String>,
    #[serde(default)]
    pub(crate) internal: Option<bool>,
}

/// `healthy`, `running` or `exited:<code>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum DesiredState {
    /// Its healthcheck passes.
    Healthy,
    /// It runs (no healthcheck to judge).
    Running,
    /// It exited with this code (one-shots).
    Exited(i64),
}

impl std::fmt::Display for DesiredState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DesiredState::Healthy => f.write_str("healthy"),
            DesiredState::Running => f.write_str("running"),
            DesiredState::Exited(c) => write!(f, "exited:{c}"),
        }
    }
}

impl std::str::FromStr for DesiredState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "healthy" => Ok(DesiredState::Healthy),
            "running" => Ok(DesiredState::Running),
            _ => s
                .strip_prefix("exited:")
                .and_then(|c| c.parse().ok())
                .map(DesiredState::Exited)
                .ok_or_else(|| {
                    format!("invalid state `{s}`: expected `healthy`, `running` or `exited:<code>`")
                }),
        }
    }
}

/// A documented port mapping `[ip:]host:container[/proto]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    pub(crate) host_ip: Option<String>,
    pub(crate) host: u16,
    /// The last host port of a range published for one container port (`8080-8081:80`): the
    /// shape `deploy.replicas` uses, each replica taking one port of it.
    pub(crate) host_last: Option<u16>,
    pub(crate) container: u16,
    pub(crate) protocol: String,
}

impl PortMapping {
    /// The host port, or range, as written: `8080`, `8080-8081`.
    pub(crate) fn hosts(&self) -> String {
        match self.host_last {
            Some(last) => format!("{}-{last}", self.host),
            None => self.host.to_string(),
        }
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(ip) = &self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(f, "{}:{}", self.hosts(), self.container)?;
        if self.protocol != "tcp" {
            write!(f, "/{}", self.protocol)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for PortMapping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid port mapping `{s}`: expected `[ip:]host[-last]:container[/tcp|udp]`, e.g. \"5432:5432\" or \"8080-8081:80\"")
        };
        let (ports, protocol) = match s.split_once('/') {
            Some((p, proto @ ("tcp" | "udp" | "sctp"))) => (p, proto.to_string()),
            Some(_) => return Err(bad()),
            None => (s, "tcp".to_string()),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(bad);
        // `8080-8081`: a host range for one container port.
        let hosts = |h: &str| match h.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (port(first)?, port(last)?);
                if last <= first {
                    return Err(bad());
                }
                Ok((first, Some(last)))
            }
            None => Ok((port(h)?, None)),
        };
        let (host_ip, h, c) = match parts.as_slice() {
            [h, c] => (None, h, c),
            [ip, h, c] if ip.parse::<std::net::IpAddr>().is_ok() => (Some(ip.to_string()), h, c),
            _ => return Err(bad()),
        };
        let (host, host_last) = hosts(h)?;
        Ok(PortMapping {
            host_ip,
            host,
            host_last,
            container: port(c)?,
            protocol,
        })
    }
}

from_str_serde!(
    DesiredState,
    "healthy | running | exited:<code>",
    "^(healthy|running|exited:-?[0-9]+)$"
);
from_str_serde!(
    PortMapping,
    "[ip:]host[-last]:container[/tcp|udp] (a host range for one container port is how `deploy.replicas` publish it)",
    "^([0-9.]+:)?[0-9]+(-[0-9]+)?:[0-9]+(/(tcp|udp|sctp))?$"
);
