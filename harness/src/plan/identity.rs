//! Who one run is: its id, its compose project, and the labels and generated compose override
//! that put the run's name on everything it creates.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::SubnetMoves;
use crate::engine::{Compose, ComposeModel, LABEL_OWNER, LABEL_OWNER_PID, LABEL_RUN, LABEL_SUITE};
use crate::suite::LoadedSuite;

/// Who one run is: its id, compose project name and the labels on everything it creates.
#[derive(Clone, Debug)]
pub struct RunIdentity {
    /// Eight hex digits, unique per run.
    pub run_id: String,
    /// `sc-<suite>-<run id>`.
    pub project: String,
    /// The labels on everything the run creates.
    pub labels: BTreeMap<String, String>,
}

impl RunIdentity {
    /// A new identity for a run of this suite.
    pub fn new(loaded: &LoadedSuite) -> RunIdentity {
        let run_id = format!("{:08x}", rand::random::<u32>());
        let suite = loaded
            .suite
            .id
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let project = format!("sc-{suite}-{run_id}");
        let labels = BTreeMap::from([
            (LABEL_RUN.to_string(), run_id.clone()),
            (LABEL_SUITE.to_string(), loaded.suite.id.clone()),
            (LABEL_OWNER_PID.to_string(), std::process::id().to_string()),
            (LABEL_OWNER.to_string(), crate::engine::owner()),
        ]);
        RunIdentity {
            run_id,
            project,
            labels,
        }
    }

    /// The run's compose project: the suite's files (absolute), env file and env, and the
    /// generated `override_file` after them.
    pub fn compose(&self, loaded: &LoadedSuite, override_file: Option<PathBuf>) -> Compose {
        let abs = |p: &String| -> PathBuf {
            let joined = loaded.dir.join(p);
            std::fs::canonicalize(&joined).unwrap_or(joined)
        };
        let stack = &loaded.suite.stack;
        Compose {
            project: self.project.clone(),
            files: stack.compose.iter().map(abs).collect(),
            env_file: stack.env_file.as_ref().map(abs),
            env: stack.env.clone(),
            override_file,
            profiles: stack.profiles.clone(),
            endpoint: None,
        }
    }

    /// `key=value` filter that finds this run's resources.
    pub fn run_label(&self) -> String {
        format!("{LABEL_RUN}={}", self.run_id)
    }

    /// A compose override that puts the run's labels on every service, network, volume and built
    /// image the project creates (external ones belong to someone else and are left alone). With
    /// `ephemeral`, it also frees what only one run can hold: published ports get a free host port,
    /// `container_name`s and fixed names get `-<run id>` (the old container name stays a network
    /// alias, so the stack still finds its parts), and the fixed subnets in `moves` go to their
    /// new ranges with every fixed address in them. With `fast_health` (the suite's folder, where
    /// build contexts are read), every healthcheck polls each second (`health: fast`).
    /// YAML, since `!override` replaces a list.
    pub fn label_override(
        &self,
        model: &ComposeModel,
        ephemeral: bool,
        moves: &SubnetMoves,
        fast_health: Option<&std::path::Path>,
    ) -> String {
        let moved = model.with_moved_subnets(moves);
        let mut services = serde_json::Map::new();
        for (s, m) in &model.services {
            let mut o = json!({ "labels": self.labels });
            if let Some(h) = fast_health.and_then(|dir| m.fast_healthcheck(dir)) {
                o["healthcheck"] = h;
            }
            if m.build.is_some() {
                o["build"] = json!({ "labels": self.labels });
            }
            if ephemeral {
                self.free_fixed_names(m, &mut o);
            }
            let attached = moved.services[s].networks.iter().flatten();
            for (net, attach) in attached.filter(|(n, _)| has_moved(&moved, n)) {
                if let Some(addr) = attach.as_ref().and_then(|a| a.get("ipv4_address")) {
                    o["networks"][net]["ipv4_address"] = addr.clone();
                }
            }
            services.insert(s.clone(), o);
        }
        let renamed = |name: &Option<String>| -> Option<serde_json::Value> {
            ephemeral
                .then(|| self.unique_name(name.as_deref()?))
                .flatten()
                .map(|n| json!(n))
        };
        let networks: serde_json::Map<_, _> = model
            .networks
            .iter()
            .filter(|(_, n)| !n.external)
            .map(|(k, n)| {
                let mut o = json!({ "labels": self.labels });
                if let Some(name) = renamed(&n.name) {
                    o["name"] = name;
                }
                if has_moved(&moved, k) {
                    o["ipam"] = moved_ipam(&moved.networks[k]);
                }
                (k.clone(), o)
            })
            .collect();
        let volumes: serde_json::Map<_, _> = model
            .volumes
            .iter()
            .filter(|(_, v)| !v.external)
            .map(|(k, v)| {
                let mut o = json!({ "labels": self.labels });
                if let Some(name) = renamed(&v.name) {
                    o["name"] = name;
                }
                (k.clone(), o)
            })
            .collect();
        let doc = json!({ "services": services, "networks": networks, "volumes": volumes });
        tagged_yaml(&doc)
    }

    /// What only one run can hold, made this run's own (`ports: ephemeral`): published ports
    /// get a free host port, a `container_name` gets `-<run id>` and keeps the old name as a
    /// network alias so the stack still finds its parts.
    fn free_fixed_names(&self, m: &crate::engine::ModelService, o: &mut serde_json::Value) {
        if m.ports.iter().any(|p| p.published.is_some()) {
            let ports: Vec<serde_json::Value> = m
                .ports
                .iter()
                .map(|p| {
                    let mut port = json!({ "target": p.target });
                    if let Some(proto) = &p.protocol {
                        port["protocol"] = json!(proto);
                    }
                    if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                        port["host_ip"] = json!(ip);
                    }
                    port
                })
                .collect();
            o[&override_key("ports")] = json!(ports);
        }
        if let Some(name) = &m.container_name {
            o["container_name"] = json!(format!("{name}-{}", self.run_id));
            if m.network_mode.is_none() {
                let nets: serde_json::Map<_, _> = m
                    .networks
                    .iter()
                    .flat_map(|n| n.keys())
                    .map(|n| (n.clone(), json!({ "aliases": [name] })))
                    .collect();
                if !nets.is_empty() {
                    o["networks"] = serde_json::Value::Object(nets);
                }
            }
        }
    }
}

/// The IPAM config of a network whose subnets moved: every range and fixed address of it, at
/// the same offset in the new range (`!override`: a later file cannot otherwise replace a list).
fn moved_ipam(network: &crate::engine::ModelNetwork) -> serde_json::Value {
    let configs = network.ipam.iter().flat_map(|i| &i.config);
    let configs: Vec<_> = configs
        .map(|c| {
            let mut v = serde_json::Map::new();
            let keys = [
                ("subnet", &c.subnet),
                ("ip_range", &c.ip_range),
                ("gateway", &c.gateway),
            ];
            for (key, val) in keys {
                if let Some(val) = val {
                    v.insert(key.into(), json!(val));
                }
            }
            if !c.aux_addresses.is_empty() {
                v.insert("aux_addresses".into(), json!(c.aux_addresses));
            }
            v
        })
        .collect();
    json!({ override_key("config"): configs })
}

/// A compose file from JSON with keys made by [`override_key`] and [`reset_key`]. JSON is YAML;
/// the YAML-only parts are the tags: `!override` replaces (instead of extends) a list or map,
/// `!reset` removes a key. A JSON string can never contain the unescaped key.
pub(crate) fn tagged_yaml(doc: &serde_json::Value) -> String {
    let text = doc.to_string();
    let over =
        regex::Regex::new(&format!(r#""{OVERRIDE_PREFIX}([^"]+)":"#)).expect("a valid pattern");
    let text = over.replace_all(&text, r#""$1":!override "#);
    let reset =
        regex::Regex::new(&format!(r#""{RESET_PREFIX}([^"]+)":null"#)).expect("a valid pattern");
    reset.replace_all(&text, r#""$1":!reset null"#).into_owned()
}

/// Whether network `key` of a model with moved subnets has one (a moved config remembers the
/// documented subnet).
fn has_moved(moved: &ComposeModel, key: &str) -> bool {
    let configs = moved
        .networks
        .get(key)
        .into_iter()
        .flat_map(|n| n.ipam.iter().flat_map(|i| &i.config));
    configs.into_iter().any(|c| c.documented.is_some())
}

/// Placeholder for a key whose list or map replaces the compose files' ([`tagged_yaml`]).
pub(crate) fn override_key(key: &str) -> String {
    format!("{OVERRIDE_PREFIX}{key}")
}

/// Placeholder for a key the compose files set and the generated file removes ([`tagged_yaml`]).
pub(crate) fn reset_key(key: &str) -> String {
    format!("{RESET_PREFIX}{key}")
}

/// A suite's compose project as written, for reading its model before any run (no override,
/// a throwaway project name).
pub fn static_compose(loaded: &LoadedSuite) -> Compose {
    RunIdentity::new(loaded).compose(loaded, None)
}

impl RunIdentity {
    /// A fixed network/volume name made unique to this run; None when compose already derives it
    /// from the (per-run) project.
    fn unique_name(&self, name: &str) -> Option<String> {
        (!name.starts_with(&self.project)).then(|| format!("{name}-{}", self.run_id))
    }

    /// The model as the engine will name things under the ephemeral override (fixed network,
    /// volume and container names with the run id), for runtime checks. Ports stay as documented:
    /// the `ports` promise compares against them.
    /// Subnets in `moves` are where this run put them (each remembering the documented one).
    pub fn ephemeral_names(&self, model: &ComposeModel, moves: &SubnetMoves) -> ComposeModel {
        let mut m = model.with_moved_subnets(moves);
        for n in m.networks.values_mut().filter(|n| !n.external) {
            if let Some(u) = n.name.as_deref().and_then(|x| self.unique_name(x)) {
                n.name = Some(u);
            }
        }
        for v in m.volumes.values_mut().filter(|v| !v.external) {
            if let Some(u) = v.name.as_deref().and_then(|x| self.unique_name(x)) {
                v.name = Some(u);
            }
        }
        for s in m.services.values_mut() {
            if let Some(c) = &s.container_name {
                s.container_name = Some(format!("{c}-{}", self.run_id));
            }
        }
        m
    }
}

const OVERRIDE_PREFIX: &str = "x-stackcheck-override-";
const RESET_PREFIX: &str = "x-stackcheck-reset-";

/// The image an `images.<key>` promise is about: with `service:`, the image compose builds (or
/// runs) for that service in this run's project (its `image:`, else `<project>-<service>`, as
/// compose names a build without one; its `target` stage is what is built); otherwise the key
/// itself, a tag. With `service:` the key is only the promise's name.
///
/// ```
/// use stackcheck::engine::ComposeModel;
/// let model = ComposeModel::parse(r#"{"name": "sc-shop-1a2b", "services": {"vote": {"build": {"context": "."}}}}"#).unwrap();
/// let loaded = stackcheck::suite::load_str(
///     std::path::Path::new("s.yaml"),
///     "suite: s\nstack: { compose: [c.yml] }\nimages:\n  vote: { service: vote }\n  redis:7: {}\n",
/// ).unwrap();
/// let image = |key: &str| stackcheck::plan::image_of(key, &loaded.suite.images[key], &model);
/// assert_eq!(image("vote"), "sc-shop-1a2b-vote");
/// assert_eq!(image("redis:7"), "redis:7");
/// ```
pub fn image_of(key: &str, spec: &crate::suite::ImageSpec, model: &ComposeModel) -> String {
    let service = spec
        .service
        .as_ref()
        .and_then(|s| Some((s, model.services.get(s)?)));
    match service {
        Some((name, m)) => m
            .image
            .clone()
            .unwrap_or_else(|| format!("{}-{name}", model.name)),
        None => key.to_string(),
    }
}

/// The services a run of `suite` names to `up` (compose starts what they depend on too): its
/// `stack.services`, else every service outside a profile or in one of `stack.profiles`. Names
/// the compose files do not define are left out.
pub fn services_up(suite: &crate::suite::Suite, model: &ComposeModel) -> Vec<String> {
    let stack = &suite.stack;
    let enabled = |m: &crate::engine::ModelService| {
        m.profiles.is_empty() || m.profiles.iter().any(|p| stack.profiles.contains(p))
    };
    match stack.services.is_empty() {
        true => model
            .services
            .iter()
            .filter(|(_, m)| enabled(m))
            .map(|(k, _)| k.clone())
            .collect(),
        false => stack
            .services
            .iter()
            .filter(|s| model.services.contains_key(*s))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn the_ephemeral_override_frees_ports_and_fixed_names() {
        let model: ComposeModel = serde_json::from_value(json!({
            "name": "sc-p-1",
            "services": {
                "web": { "container_name": "parallel-web", "networks": { "default": null },
                         "ports": [{ "target": 80, "published": "18090", "host_ip": "127.0.0.1", "protocol": "tcp" }] },
                "client": {}
            },
            "networks": { "default": { "name": "sc-p-1_default" } },
            "volumes": { "pages": { "name": "parallel_pages" } }
        }))
        .unwrap();
        let loaded = crate::suite::load_str(
            Path::new("s.yaml"),
            "suite: p\nstack: { compose: [c.yml] }\n",
        )
        .unwrap();
        let mut id = RunIdentity::new(&loaded);
        id.project = "sc-p-1".into();
        id.run_id = "r1".into();
        let text = id.label_override(&model, true, &SubnetMoves::default(), None);
        assert!(
            text.contains(
                r#""ports":!override [{"host_ip":"127.0.0.1","protocol":"tcp","target":80}]"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""container_name":"parallel-web-r1""#),
            "{text}"
        );
        assert!(text.contains(r#""aliases":["parallel-web"]"#), "{text}");
        assert!(text.contains(r#""name":"parallel_pages-r1""#), "{text}");
        assert!(!text.contains("sc-p-1_default-r1"), "{text}");
        let documented = id.label_override(&model, false, &SubnetMoves::default(), None);
        assert!(
            !documented.contains("!override") && !documented.contains("-r1\""),
            "{documented}"
        );
        let live = id.ephemeral_names(&model, &SubnetMoves::default());
        assert_eq!(live.volume_name("pages"), "parallel_pages-r1");
        assert_eq!(live.network_name("default"), "sc-p-1_default");
    }

    #[test]
    fn run_identity_is_unique_and_labelled() {
        let loaded = crate::suite::load_str(
            Path::new("s.yaml"),
            "suite: My_Suite\nstack: { compose: [c.yml] }\n",
        )
        .unwrap();
        let (a, b) = (RunIdentity::new(&loaded), RunIdentity::new(&loaded));
        assert_ne!(a.project, b.project);
        assert!(a.project.starts_with("sc-mysuite-"));
        assert_eq!(a.labels[LABEL_SUITE], "My_Suite");
    }
}
