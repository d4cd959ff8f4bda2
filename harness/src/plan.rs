//! The stack plan: which tests a suite yields (stable names, no engine needed), and the identity of
//! one run (project name, labels) that every resource it creates carries.

use std::collections::BTreeMap;

use serde_json::json;

use crate::engine::{ComposeModel, LABEL_OWNER, LABEL_OWNER_PID, LABEL_RUN, LABEL_SUITE};
use crate::suite::{CheckKind, LoadedSuite, Rule, Suite};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImagePromise {
    Labels,
    Healthcheck,
    Entrypoint,
    Cmd,
    User,
    Exposes,
    MaxSize,
    Files,
    Base,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServicePromise {
    State,
    Image,
    Ports,
    Networks,
    Volumes,
    Restart,
    DependsOn,
    Env,
    ReadOnlyMounts,
    WritableMounts,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestKind {
    /// The compose files resolve and define every service the suite names.
    StackConfig,
    Build {
        image: String,
    },
    Image {
        image: String,
        promise: ImagePromise,
    },
    Service {
        service: String,
        promise: ServicePromise,
    },
    Network {
        name: String,
    },
    Volume {
        name: String,
    },
    Check {
        index: usize,
    },
    Policy {
        rule: Rule,
    },
    NoLeaks,
}

#[derive(Clone, Debug)]
pub struct PlannedTest {
    pub name: String,
    pub kind: TestKind,
}

fn promise_name(p: &ServicePromise) -> &'static str {
    match p {
        ServicePromise::State => "state",
        ServicePromise::Image => "image",
        ServicePromise::Ports => "ports",
        ServicePromise::Networks => "networks",
        ServicePromise::Volumes => "volumes",
        ServicePromise::Restart => "restart",
        ServicePromise::DependsOn => "depends_on",
        ServicePromise::Env => "env",
        ServicePromise::ReadOnlyMounts => "read_only_mounts",
        ServicePromise::WritableMounts => "writable_mounts",
    }
}

fn image_promise_name(p: &ImagePromise) -> &'static str {
    match p {
        ImagePromise::Labels => "labels",
        ImagePromise::Healthcheck => "healthcheck",
        ImagePromise::Entrypoint => "entrypoint",
        ImagePromise::Cmd => "cmd",
        ImagePromise::User => "user",
        ImagePromise::Exposes => "exposes",
        ImagePromise::MaxSize => "max_size",
        ImagePromise::Files => "files",
        ImagePromise::Base => "base",
    }
}

/// Every test of a suite, in the order they run. Names are identical in the CLI, JUnit and nextest.
pub fn tests(suite: &Suite) -> Vec<PlannedTest> {
    let id = &suite.suite;
    let mut out = vec![PlannedTest {
        name: format!("{id}::stack::config"),
        kind: TestKind::StackConfig,
    }];
    for (rule, _) in suite.policy.active() {
        out.push(PlannedTest {
            name: format!("{id}::policy::{}", rule.name()),
            kind: TestKind::Policy { rule },
        });
    }
    for image in suite.images.keys() {
        out.push(PlannedTest {
            name: format!("{id}::build::{image}"),
            kind: TestKind::Build {
                image: image.clone(),
            },
        });
    }
    // Images of `docker run` containers are built too, under their tag.
    for c in suite.stack.containers.values() {
        if let Some(tag) = c.build.as_ref().and_then(|b| b.tag.clone()) {
            if !suite.images.contains_key(&tag) {
                out.push(PlannedTest {
                    name: format!("{id}::build::{tag}"),
                    kind: TestKind::Build { image: tag },
                });
            }
        }
    }
    for (image, spec) in &suite.images {
        let promises = [
            (!spec.labels.is_empty(), ImagePromise::Labels),
            (spec.healthcheck.is_some(), ImagePromise::Healthcheck),
            (spec.entrypoint.is_some(), ImagePromise::Entrypoint),
            (spec.cmd.is_some(), ImagePromise::Cmd),
            (spec.user.is_some(), ImagePromise::User),
            (spec.exposes.is_some(), ImagePromise::Exposes),
            (spec.max_size.is_some(), ImagePromise::MaxSize),
            (!spec.files.is_empty(), ImagePromise::Files),
            (spec.base.is_some(), ImagePromise::Base),
        ];
        for (_, p) in promises.into_iter().filter(|(on, _)| *on) {
            out.push(PlannedTest {
                name: format!("{id}::image::{image}::{}", image_promise_name(&p)),
                kind: TestKind::Image {
                    image: image.clone(),
                    promise: p,
                },
            });
        }
    }
    // Every named service and every `docker run` container gets a state test (its default state
    // when none is written).
    let mut stateful: Vec<&String> = suite.services.keys().collect();
    stateful.extend(
        suite
            .stack
            .containers
            .keys()
            .filter(|c| !suite.services.contains_key(*c)),
    );
    stateful.sort();
    for service in stateful {
        out.push(service_test(id, service, ServicePromise::State));
    }
    for (service, spec) in &suite.services {
        let promises = [
            (spec.image.is_some(), ServicePromise::Image),
            (spec.ports.is_some(), ServicePromise::Ports),
            (spec.networks.is_some(), ServicePromise::Networks),
            (spec.volumes.is_some(), ServicePromise::Volumes),
            (spec.restart.is_some(), ServicePromise::Restart),
            (spec.depends_on.is_some(), ServicePromise::DependsOn),
            (spec.env.is_some(), ServicePromise::Env),
            (
                spec.read_only_mounts.is_some(),
                ServicePromise::ReadOnlyMounts,
            ),
            (
                spec.writable_mounts.is_some(),
                ServicePromise::WritableMounts,
            ),
        ];
        for (_, p) in promises.into_iter().filter(|(on, _)| *on) {
            out.push(service_test(id, service, p));
        }
    }
    for name in suite.networks.keys() {
        out.push(PlannedTest {
            name: format!("{id}::network::{name}"),
            kind: TestKind::Network { name: name.clone() },
        });
    }
    for name in &suite.volumes {
        out.push(PlannedTest {
            name: format!("{id}::volume::{name}"),
            kind: TestKind::Volume { name: name.clone() },
        });
    }
    for (index, check) in suite.checks.iter().enumerate() {
        out.push(PlannedTest {
            name: format!("{id}::checks::{}", check.name),
            kind: TestKind::Check { index },
        });
    }
    out.push(PlannedTest {
        name: format!("{id}::teardown::no-leaks"),
        kind: TestKind::NoLeaks,
    });
    out
}

fn service_test(id: &str, service: &str, p: ServicePromise) -> PlannedTest {
    PlannedTest {
        name: format!("{id}::service::{service}::{}", promise_name(&p)),
        kind: TestKind::Service {
            service: service.to_string(),
            promise: p,
        },
    }
}

/// Who one run is: its id, compose project name and the labels on everything it creates.
#[derive(Clone, Debug)]
pub struct RunIdentity {
    pub run_id: String,
    pub project: String,
    pub labels: BTreeMap<String, String>,
}

impl RunIdentity {
    pub fn new(loaded: &LoadedSuite) -> RunIdentity {
        let run_id = format!("{:08x}", rand::random::<u32>());
        let suite = loaded
            .suite
            .suite
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let project = format!("sc-{suite}-{run_id}");
        let labels = BTreeMap::from([
            (LABEL_RUN.to_string(), run_id.clone()),
            (LABEL_SUITE.to_string(), loaded.suite.suite.clone()),
            (LABEL_OWNER_PID.to_string(), std::process::id().to_string()),
            (LABEL_OWNER.to_string(), crate::engine::owner()),
        ]);
        RunIdentity {
            run_id,
            project,
            labels,
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
    /// alias, so the stack still finds its parts). YAML, since `!override` replaces a list.
    pub fn label_override(&self, model: &ComposeModel, ephemeral: bool) -> String {
        let mut services = serde_json::Map::new();
        for (s, m) in &model.services {
            let mut o = json!({ "labels": self.labels });
            if m.build.is_some() {
                o["build"] = json!({ "labels": self.labels });
            }
            if ephemeral {
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
                    o[OVERRIDE_PORTS] = json!(ports);
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
        // JSON is YAML; the one YAML-only part is the `!override` tag that replaces (instead of
        // extends) a service's port list. A JSON string can never contain the unescaped key.
        doc.to_string()
            .replace(&format!("\"{OVERRIDE_PORTS}\":"), "\"ports\":!override ")
    }
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
    pub fn ephemeral_names(&self, model: &ComposeModel) -> ComposeModel {
        let mut m = model.clone();
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

/// Placeholder key for a port list that replaces the compose file's (see `label_override`).
const OVERRIDE_PORTS: &str = "x-stackcheck-ports-override";

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names_follow_the_format() {
        let text = "suite: mt5\nstack: { compose: [c.yml] }\nservices:\n  db: { ports: [\"5432:5432\"] }\nnetworks: { mt5-net: {} }\nvolumes: [pg]\nchecks:\n  - name: api up\n    tcp: { service: db, port: 5432 }\n";
        let loaded = crate::suite::load_str(Path::new("s.yaml"), text).unwrap();
        let names: Vec<String> = tests(&loaded.suite).into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "mt5::stack::config",
                "mt5::service::db::state",
                "mt5::service::db::ports",
                "mt5::network::mt5-net",
                "mt5::volume::pg",
                "mt5::checks::api up",
                "mt5::teardown::no-leaks"
            ]
        );
    }

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
        let text = id.label_override(&model, true);
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
        let documented = id.label_override(&model, false);
        assert!(
            !documented.contains("!override") && !documented.contains("-r1\""),
            "{documented}"
        );
        let live = id.ephemeral_names(&model);
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

/// Whether a test's name matches a `--filter` glob: the full name (`mt5::service::db::ports`) or
/// the name without the suite (`service::db::*`); `*` also matches across `::`.
pub fn filter_matches(pattern: &str, suite: &Suite, name: &str) -> bool {
    suite.short_name_matches(pattern, name) || crate::suite::name_glob(pattern, name)
}

/// The tests of `suite` that any of `patterns` selects (all when there are none).
pub fn select(suite: &Suite, patterns: &[String]) -> Vec<PlannedTest> {
    tests(suite)
        .into_iter()
        .filter(|t| {
            patterns.is_empty() || patterns.iter().any(|p| filter_matches(p, suite, &t.name))
        })
        .collect()
}

/// What a selection of tests needs from the stack, so a filtered run builds and starts no more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Images (keys of `images:`) whose build or metadata is tested.
    pub images: std::collections::BTreeSet<String>,
    /// Whether anything must run (every selected test is static otherwise).
    pub live: bool,
    /// The services the tests name; `None`: the whole stack (networks, volumes, `down_up`, file
    /// checks, or no filter at all).
    pub services: Option<std::collections::BTreeSet<String>>,
}

impl Needs {
    /// Whether the image `tag` (a key of `images:`) must be built; `needs` of no filter is `None`.
    pub fn wants_image(needs: Option<&Needs>, tag: &str) -> bool {
        needs.is_none_or(|n| n.images.contains(tag))
    }
}

pub fn needs(suite: &Suite, tests: &[PlannedTest]) -> Needs {
    let mut n = Needs {
        services: Some(Default::default()),
        ..Needs::default()
    };
    let mut whole_stack = false;
    for t in tests {
        match &t.kind {
            TestKind::StackConfig | TestKind::Policy { .. } | TestKind::NoLeaks => {}
            TestKind::Build { image } | TestKind::Image { image, .. } => {
                n.images.insert(image.clone());
            }
            TestKind::Service { service, .. } => {
                n.live = true;
                if let Some(s) = n.services.as_mut() {
                    s.insert(service.clone());
                }
            }
            TestKind::Network { .. } | TestKind::Volume { .. } => {
                n.live = true;
                whole_stack = true;
            }
            TestKind::Check { index } => {
                n.live = true;
                let kind = &suite.checks[*index].kind;
                let downs = matches!(kind, CheckKind::Steps(steps)
                    if steps.iter().any(|s| matches!(s.action, crate::suite::Action::DownUp)));
                let named = kind.services();
                if downs || named.is_empty() {
                    whole_stack = true;
                }
                if let Some(s) = n.services.as_mut() {
                    s.extend(named);
                }
            }
        }
    }
    if whole_stack {
        n.services = None;
    }
    n
}
