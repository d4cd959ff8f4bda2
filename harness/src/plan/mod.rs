//! The stack plan: which tests a suite yields (stable names, no engine needed), which of them a
//! `--filter` selects and what those need (`select`), and the identity of one run (project name,
//! labels, compose override) that every resource it creates carries (`identity`).

mod identity;
mod load;
mod secrets;
mod select;
pub mod subnets;

pub use identity::{image_of, services_up, static_compose, RunIdentity};
pub(crate) use identity::{override_key, reset_key, tagged_yaml};
pub use load::{load_file, load_runs, static_model};
pub use secrets::{add_model_secrets, masker, model_names, static_masker};
pub use select::{check_quarantine, filter_matches, needs, select, select_for_run, Needs};
pub use subnets::SubnetMoves;

use crate::suite::{Rule, Suite};

/// A promise about an image, one per key of `images.<tag>` (the test is named after the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImagePromise {
    /// The image carries these labels.
    Labels,
    /// The image has (or has no) HEALTHCHECK.
    Healthcheck,
    /// The image's ENTRYPOINT.
    Entrypoint,
    /// The image's CMD.
    Cmd,
    /// The user the image runs as.
    User,
    /// The ports the image EXPOSEs.
    Exposes,
    /// The image is no larger than a size.
    MaxSize,
    /// Files exist in the image's filesystem.
    Files,
    /// The image is built on a base image.
    Base,
    /// Variables the image's config sets.
    Env,
    /// The image's working directory.
    Workdir,
    /// The image's declared volumes.
    Volumes,
}

/// A promise about a running service, one per key of `services.<name>` (`state` always).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServicePromise {
    /// Healthy, running or exited with a code, and staying so.
    State,
    /// The image the service runs.
    Image,
    /// Published ports, as documented and accepting connections.
    Ports,
    /// The networks the service is on.
    Networks,
    /// The volumes and bind mounts the service has.
    Volumes,
    /// The restart policy.
    Restart,
    /// `depends_on` with its conditions.
    DependsOn,
    /// Variables of the container's environment.
    Env,
    /// Container paths where a write fails.
    ReadOnlyMounts,
    /// Container paths where a write succeeds.
    WritableMounts,
}

/// What one planned test proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestKind {
    /// The compose files resolve and define every service the suite names.
    StackConfig,
    /// An image (key of `images:` or a container's build tag) builds.
    Build {
        /// The image's tag.
        image: String,
    },
    /// A promise about a built or present image.
    Image {
        /// The key of `images:`.
        image: String,
        /// Which promise.
        promise: ImagePromise,
    },
    /// A promise about a service of the running stack.
    Service {
        /// The compose service (or `stack.containers` name).
        service: String,
        /// Which promise.
        promise: ServicePromise,
    },
    /// A network exists as promised.
    Network {
        /// The compose network key.
        name: String,
    },
    /// A named volume exists.
    Volume {
        /// The compose volume key.
        name: String,
    },
    /// One entry of `checks:`.
    Check {
        /// Its position in the suite's `checks`.
        index: usize,
    },
    /// A static `policy:` rule.
    Policy {
        /// Which rule.
        rule: Rule,
    },
    /// Nothing the run created is left after teardown.
    NoLeaks,
}

impl TestKind {
    /// The state test of a service (`<suite>::service::<name>::state`).
    pub fn state_of(service: &str) -> TestKind {
        TestKind::Service {
            service: service.to_string(),
            promise: ServicePromise::State,
        }
    }
}

/// One test of a suite, as every report names it.
#[derive(Clone, Debug)]
pub struct PlannedTest {
    /// `<suite>::<section>::<…>`: the same in the CLI, JUnit, JSON and `cargo nextest list`.
    pub name: String,
    /// What the test proves.
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
        ImagePromise::Env => "env",
        ImagePromise::Workdir => "workdir",
        ImagePromise::Volumes => "volumes",
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
    build_tests(suite, &mut out);
    image_tests(suite, &mut out);
    service_tests(suite, &mut out);
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

/// A build test per image the run builds: the suite's `images` (not prebuilt ones) and the
/// images of `docker run` containers.
fn build_tests(suite: &Suite, out: &mut Vec<PlannedTest>) {
    let id = &suite.id;
    // A prebuilt image (neither `service` nor `build`) is pulled or present, never built.
    let built = suite.images.iter().filter(|(_, i)| !i.is_prebuilt());
    for (image, _) in built {
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
}

/// A test per promise of each image.
fn image_tests(suite: &Suite, out: &mut Vec<PlannedTest>) {
    let id = &suite.id;
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
            (!spec.env.is_empty(), ImagePromise::Env),
            (spec.workdir.is_some(), ImagePromise::Workdir),
            (spec.volumes.is_some(), ImagePromise::Volumes),
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
}

/// A state test per named service and `docker run` container, then a test per other promise.
fn service_tests(suite: &Suite, out: &mut Vec<PlannedTest>) {
    let id = &suite.id;
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
