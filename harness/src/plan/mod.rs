//! The stack plan: which tests a suite yields (stable names, no engine needed), which of them a
//! `--filter` selects and what those need ([`select`]), and the identity of one run (project name,
//! labels, compose override) that every resource it creates carries ([`identity`]).

mod identity;
mod select;

pub use identity::{static_compose, RunIdentity};
pub use select::{filter_matches, needs, select, select_for_run, Needs};

use crate::suite::{Rule, Suite};

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
    let id = &suite.id;
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
}
