//! The resolved compose model (`docker compose config --format json`), reduced to what checks read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Dockerfile;

#[derive(Clone, Debug, Default, Deserialize)]
/// The compose model as compose resolves it (`docker compose config --format json`).
pub struct ComposeModel {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    /// Services by name.
    pub services: BTreeMap<String, ModelService>,
    #[serde(default)]
    pub(crate) networks: BTreeMap<String, ModelNetwork>,
    #[serde(default)]
    pub(crate) volumes: BTreeMap<String, ModelVolume>,
    /// The whole of compose's output: mutants (`stackcheck mutate`) copy the long forms they change.
    #[serde(skip)]
    pub(crate) raw: serde_json::Value,
}

#[derive(Clone, Debug, Default, Deserialize)]
/// One service of the compose model.
pub struct ModelService {
    #[serde(default)]
    pub(crate) image: Option<String>,
    #[serde(default)]
    pub(crate) build: Option<ModelBuild>,
    #[serde(default)]
    pub(crate) container_name: Option<String>,
    /// Long form once interpolated; `--no-interpolate` may keep short strings, which are skipped.
    #[serde(default, deserialize_with = "long_ports")]
    pub(crate) ports: Vec<ModelPort>,
    #[serde(default)]
    pub(crate) networks: Option<BTreeMap<String, Option<serde_json::Value>>>,
    #[serde(default)]
    pub(crate) volumes: Vec<ModelVolumeMount>,
    #[serde(default)]
    pub(crate) restart: Option<String>,
    #[serde(default)]
    pub(crate) depends_on: BTreeMap<String, ModelDependency>,
    #[serde(default)]
    pub(crate) healthcheck: Option<ModelHealthcheck>,
    /// A map once interpolated; `--no-interpolate` keeps the list form `KEY=value`.
    #[serde(default, deserialize_with = "map_or_list")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub(crate) deploy: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) mem_limit: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) cpus: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) network_mode: Option<String>,
    /// `always`, `never`, `missing`…: when compose would pull this service's image.
    #[serde(default)]
    pub(crate) pull_policy: Option<String>,
    /// Services behind a profile are started only when the suite names them.
    #[serde(default)]
    pub(crate) profiles: Vec<String>,
    /// Read only to see which addresses a service names (see `plan::subnets`).
    #[serde(default)]
    pub(crate) command: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) entrypoint: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) extra_hosts: Option<serde_json::Value>,
}

/// A service's `build:` as compose resolves it (the context absolute, the Dockerfile relative to it).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelBuild {
    #[serde(default)]
    pub(crate) context: Option<String>,
    #[serde(default)]
    pub(crate) dockerfile: Option<String>,
    /// The stage built (`build.target`); none: the last one.
    #[serde(default)]
    pub(crate) target: Option<String>,
}

impl ModelBuild {
    /// The Dockerfile this build reads; a relative context is taken from `dir`.
    pub fn dockerfile_path(&self, dir: &Path) -> PathBuf {
        dir.join(self.context.as_deref().unwrap_or("."))
            .join(self.dockerfile.as_deref().unwrap_or("Dockerfile"))
    }
}

/// A service's `healthcheck:`; only what decides whether the container has one.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelHealthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]`, `["NONE"]`; a plain string is a shell command.
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) test: Vec<String>,
    #[serde(default)]
    pub(crate) disable: bool,
    /// As compose prints it (a Go duration: `30s`, `1m30s`).
    #[serde(default)]
    pub(crate) interval: Option<String>,
    #[serde(default)]
    pub(crate) retries: Option<u64>,
}

/// A Go duration as compose prints it (`1m30s`, `500ms`, `1h`); None if it is not one.
pub fn go_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

impl ModelService {
    /// The restart policy compose gives the container: `restart:`, else the condition of
    /// `deploy.restart_policy` (`any` is `always`, `none` is `no`); None when neither is set.
    pub fn restart_policy(&self) -> Option<String> {
        if let Some(r) = self.restart.as_deref().filter(|r| !r.is_empty()) {
            return Some(r.to_string());
        }
        let deploy = self.deploy.as_ref()?;
        let condition = deploy["restart_policy"]["condition"].as_str()?;
        Some(match condition {
            "any" => "always".into(),
            "none" => "no".into(),
            other => other.to_string(),
        })
    }

    /// Under `health: fast`: the healthcheck keys a run's override sets so it polls every second,
    /// with as many retries as the written interval × retries allow (a slow start still has as
    /// long before it counts as unhealthy). None for a service without a healthcheck.
    pub fn fast_healthcheck(&self, dir: &Path) -> Option<serde_json::Value> {
        if !self.has_healthcheck(dir) {
            return None;
        }
        let written = self.healthcheck.as_ref();
        // Docker's defaults, for a HEALTHCHECK of the image that compose does not restate.
        let interval = written
            .and_then(|h| h.interval.as_deref())
            .and_then(go_duration)
            .unwrap_or(std::time::Duration::from_secs(30));
        let retries = written.and_then(|h| h.retries).unwrap_or(3).max(1);
        let window = (interval.as_secs_f64() * retries as f64).ceil() as u64;
        Some(serde_json::json!({ "interval": "1s", "retries": window.max(retries) }))
    }

    /// Whether the service's container will have a healthcheck: compose's own test unless
    /// disabled; with no test written, the HEALTHCHECK of the final stage of the Dockerfile it
    /// builds from (a relative build context is taken from `dir`). An image that is not built
    /// here cannot be read, so it counts as none.
    pub fn has_healthcheck(&self, dir: &Path) -> bool {
        let written = self.healthcheck.as_ref();
        if written.is_some_and(|h| h.disable || h.test.first().is_some_and(|t| t == "NONE")) {
            return false;
        }
        if written.is_some_and(|h| !h.test.is_empty()) {
            return true;
        }
        self.build
            .as_ref()
            .and_then(|b| Dockerfile::read(&b.dockerfile_path(dir), b.target.as_deref()))
            .and_then(|d| d.healthcheck)
            .unwrap_or(false)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
/// One published or exposed port, in compose's long form.
pub struct ModelPort {
    #[serde(default)]
    pub(crate) target: u16,
    #[serde(default)]
    pub(crate) published: Option<String>,
    #[serde(default)]
    pub(crate) protocol: Option<String>,
    #[serde(default)]
    pub(crate) host_ip: Option<String>,
}

impl ModelPort {
    /// `host:container[/proto]` as a suite would write it.
    pub fn mapping(&self) -> String {
        let mut s = String::new();
        if let Some(ip) = &self.host_ip {
            s.push_str(ip);
            s.push(':');
        }
        s.push_str(self.published.as_deref().unwrap_or("(unpublished)"));
        s.push(':');
        s.push_str(&self.target.to_string());
        match self.protocol.as_deref() {
            None | Some("tcp") => {}
            Some(p) => {
                s.push('/');
                s.push_str(p);
            }
        }
        s
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
/// One volume or bind mount of a service, in compose's long form.
pub struct ModelVolumeMount {
    #[serde(default)]
    pub(crate) source: Option<String>,
    #[serde(default)]
    pub(crate) target: String,
    #[serde(default)]
    pub(crate) read_only: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelDependency {
    #[serde(default)]
    pub(crate) condition: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
/// One network of the compose model.
pub struct ModelNetwork {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) driver: Option<String>,
    #[serde(default)]
    pub(crate) internal: bool,
    #[serde(default)]
    pub(crate) external: bool,
    #[serde(default)]
    pub(crate) ipam: Option<ModelIpam>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelIpam {
    #[serde(default)]
    pub(crate) config: Vec<ModelIpamConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelIpamConfig {
    #[serde(default)]
    pub(crate) subnet: Option<String>,
    #[serde(default)]
    pub(crate) ip_range: Option<String>,
    #[serde(default)]
    pub(crate) gateway: Option<String>,
    #[serde(default)]
    pub(crate) aux_addresses: BTreeMap<String, String>,
    /// The subnet the compose files document, where this run moved it (`plan::subnets`).
    #[serde(skip)]
    pub(crate) documented: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelVolume {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) external: bool,
}

fn long_ports<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ModelPort>, D::Error> {
    let items = Vec::<serde_json::Value>::deserialize(d)?;
    Ok(items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Test {
        Shell(String),
        List(Vec<String>),
    }
    Ok(match Test::deserialize(d)? {
        Test::Shell(s) => vec!["CMD-SHELL".to_string(), s],
        Test::List(l) => l,
    })
}

fn map_or_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Env {
        Map(BTreeMap<String, Option<serde_json::Value>>),
        List(Vec<String>),
    }
    // Unquoted numbers and booleans stay JSON scalars when compose does not interpolate.
    let scalar = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Ok(match Env::deserialize(d)? {
        Env::Map(m) => m.into_iter().map(|(k, v)| (k, v.map(scalar))).collect(),
        Env::List(l) => l
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (e, None),
            })
            .collect(),
    })
}

/// One compose file as written, reduced to what the raw view needs.
#[derive(Deserialize)]
struct WrittenFile {
    #[serde(default)]
    services: BTreeMap<String, WrittenService>,
    #[serde(default)]
    include: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WrittenService {
    #[serde(default, deserialize_with = "map_or_list")]
    environment: BTreeMap<String, Option<String>>,
    #[serde(default)]
    extends: Option<serde_json::Value>,
    #[serde(default)]
    env_file: Option<serde_json::Value>,
}

impl ComposeModel {
    /// The services' `environment` as written in `files` (later files override earlier keys), the
    /// view `config --no-interpolate` gives, without a compose process. `None` where only compose
    /// knows the answer: `include`, `extends`, a service `env_file`, YAML merge keys, or a file
    /// this reader cannot read — the caller asks compose then.
    pub fn written_environment(files: &[impl AsRef<std::path::Path>]) -> Option<ComposeModel> {
        let mut model = ComposeModel::default();
        for f in files {
            let text = std::fs::read_to_string(f).ok()?;
            if text.contains("<<") {
                return None;
            }
            let file: WrittenFile = serde_saphyr::from_str(&text).ok()?;
            if file.include.is_some() {
                return None;
            }
            for (name, s) in file.services {
                if s.extends.is_some() || s.env_file.is_some() {
                    return None;
                }
                model
                    .services
                    .entry(name)
                    .or_default()
                    .environment
                    .extend(s.environment);
            }
        }
        Some(model)
    }

    /// Reads `docker compose config --format json` output.
    pub fn parse(json: &str) -> Result<ComposeModel, String> {
        let raw: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("unexpected `docker compose config` output: {e}"))?;
        let mut model: ComposeModel = serde_json::from_value(raw.clone())
            .map_err(|e| format!("unexpected `docker compose config` output: {e}"))?;
        model.raw = raw;
        Ok(model)
    }

    /// Each service with the services it depends on directly (`depends_on`, which compose's model
    /// also fills from `links`, `network_mode: service:` and `volumes_from`).
    pub fn dependencies(&self) -> Dependencies {
        self.services
            .iter()
            .map(|(n, s)| (n.clone(), s.depends_on.keys().cloned().collect()))
            .collect()
    }

    /// The model with only these services (networks and volumes as they are).
    pub fn only(&self, services: &BTreeSet<String>) -> ComposeModel {
        let mut out = self.clone();
        out.services.retain(|name, _| services.contains(name));
        out
    }

    /// `services` and, transitively, every service they depend on: what `compose up` starts for
    /// them. Names the model does not define are left out.
    pub fn with_dependencies(
        &self,
        services: impl IntoIterator<Item = String>,
    ) -> BTreeSet<String> {
        let known: BTreeSet<String> = services
            .into_iter()
            .filter(|s| self.services.contains_key(s))
            .collect();
        let mut all = depended_on(&known, &self.dependencies());
        all.extend(known);
        all.retain(|s| self.services.contains_key(s));
        all
    }

    /// The engine-side name of a compose network (`<project>_<name>` unless named explicitly).
    pub fn network_name(&self, key: &str) -> String {
        self.networks
            .get(key)
            .and_then(|n| n.name.clone())
            .unwrap_or_else(|| format!("{}_{key}", self.name))
    }

    /// The engine-side name of a compose volume (`<project>_<name>` unless named explicitly).
    pub fn volume_name(&self, key: &str) -> String {
        self.volumes
            .get(key)
            .and_then(|v| v.name.clone())
            .unwrap_or_else(|| format!("{}_{key}", self.name))
    }
}

/// The services each service depends on, directly.
pub type Dependencies = BTreeMap<String, BTreeSet<String>>;

/// Every service that `services` depend on, transitively, leaving out those of `services` that
/// no other of them depends on: the one walk of the dependency graph.
pub fn depended_on(services: &BTreeSet<String>, deps: &Dependencies) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&String> = services.iter().collect();
    while let Some(s) = todo.pop() {
        for d in deps.get(s).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("restart: unless-stopped", Some("unless-stopped"))]
    #[case(
        "deploy: { restart_policy: { condition: on-failure } }",
        Some("on-failure")
    )]
    #[case("deploy: { restart_policy: { condition: any } }", Some("always"))]
    #[case("deploy: { restart_policy: { condition: none } }", Some("no"))]
    #[case(
        "restart: always\n    deploy: { restart_policy: { condition: none } }",
        Some("always")
    )]
    #[case("image: x", None)]
    fn the_restart_policy_is_restart_else_the_deploy_condition(
        #[case] service: &str,
        #[case] want: Option<&str>,
    ) {
        let model: ComposeModel =
            serde_saphyr::from_str(&format!("services:\n  s:\n    {service}\n")).unwrap();
        assert_eq!(model.services["s"].restart_policy().as_deref(), want);
    }

    #[test]
    fn a_service_comes_with_everything_it_depends_on_transitively() {
        let model = ComposeModel::parse(
            r#"{"services": {"web": {"depends_on": {"api": {}}}, "api": {"depends_on": {"db": {}}}, "db": {}, "cache": {}}}"#,
        )
        .unwrap();
        let names = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            model.with_dependencies(names(&["web"])),
            names(&["api", "db", "web"])
        );
        assert_eq!(
            model.with_dependencies(names(&["cache", "nope"])),
            names(&["cache"])
        );
        let deps = model.dependencies();
        assert_eq!(depended_on(&names(&["web"]), &deps), names(&["api", "db"]));
    }
    use std::time::Duration;

    #[rstest]
    #[case("30s", 30_000)]
    #[case("1m30s", 90_000)]
    #[case("500ms", 500)]
    #[case("1h", 3_600_000)]
    fn go_durations_as_compose_prints_them(#[case] text: &str, #[case] ms: u64) {
        assert_eq!(go_duration(text), Some(Duration::from_millis(ms)));
    }

    #[rstest]
    fn not_go_durations(#[values("", "30", "5 weeks", "s")] text: &str) {
        assert_eq!(go_duration(text), None, "{text}");
    }

    #[test]
    fn fast_health_keeps_the_written_budget_and_leaves_services_without_a_healthcheck() {
        let model: ComposeModel = serde_json::from_value(serde_json::json!({
            "services": {
                "slow": { "healthcheck": { "test": ["CMD", "true"], "interval": "30s", "retries": 3 } },
                "quick": { "healthcheck": { "test": ["CMD", "true"], "interval": "500ms", "retries": 5 } },
                "defaults": { "healthcheck": { "test": ["CMD-SHELL", "true"] } },
                "off": { "healthcheck": { "disable": true } },
                "none": {}
            }
        }))
        .unwrap();
        let fast = |s: &str| model.services[s].fast_healthcheck(Path::new("."));
        assert_eq!(
            fast("slow"),
            Some(serde_json::json!({ "interval": "1s", "retries": 90 }))
        );
        // Never fewer retries than written.
        assert_eq!(
            fast("quick"),
            Some(serde_json::json!({ "interval": "1s", "retries": 5 }))
        );
        // Docker's defaults: 30 s × 3.
        assert_eq!(
            fast("defaults"),
            Some(serde_json::json!({ "interval": "1s", "retries": 90 }))
        );
        assert_eq!(fast("off"), None);
        assert_eq!(fast("none"), None);
    }
}
