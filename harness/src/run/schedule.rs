//! Several suites at once on one engine. Each suite claims what only one stack can hold at a time
//! — fixed host ports, `container_name`s, fixed subnets, fixed network and volume names — read
//! from its compose model; suites run concurrently, up to `jobs` at a time, only when their claims
//! are disjoint. Others wait for the suite holding their claim, in the order given.

use std::collections::BTreeSet;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{run_suite_with, RunOptions};
use crate::engine::{ComposeModel, Engine};
use crate::report::{Progress, SuiteReport};
use crate::suite::LoadedSuite;

/// Suites at once when `--jobs` is not given: one per core, at most 4 (each stack is a dozen
/// processes on a small machine).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// What of the engine a stack holds exclusively, from its compose model under a throwaway
/// project name (names compose derives from the project are per run and never clash). With
/// ephemeral ports, only the tags it builds and the fixed subnets a run cannot move remain:
/// ports, names and the other subnets are made unique per run.
pub fn claims_of(
    model: &ComposeModel,
    suite_text: &str,
    project: &str,
    ephemeral: bool,
) -> BTreeSet<String> {
    let own = |name: &str| ephemeral || name.starts_with(project);
    let mut out = BTreeSet::new();
    for s in model.services.values().filter(|_| !ephemeral) {
        for p in &s.ports {
            if let Some(published) = p
                .published
                .as_deref()
                .filter(|p| !p.is_empty() && *p != "0")
            {
                let proto = p.protocol.as_deref().unwrap_or("tcp");
                out.insert(format!("host port {published}/{proto}"));
            }
        }
        if let Some(c) = &s.container_name {
            out.insert(format!("container name {c}"));
        }
    }
    // The tag a stack builds is one per engine whatever the ports mode: a second run's build
    // would move it, and that run's teardown remove it, under the first run's image tests and
    // its `down`/`up` steps.
    for s in model.services.values().filter(|s| s.build.is_some()) {
        if let Some(image) = &s.image {
            out.insert(format!("image {image}"));
        }
    }
    // With ephemeral ports, a run moves the subnets it can to free ranges of its own.
    let moving: Vec<String> = if ephemeral {
        crate::plan::subnets::movable(model, suite_text)
            .0
            .iter()
            .map(|n| n.to_string())
            .collect()
    } else {
        Vec::new()
    };
    for n in model.networks.values().filter(|n| !n.external) {
        for c in n.ipam.iter().flat_map(|i| &i.config) {
            if let Some(subnet) = c.subnet.as_ref().filter(|s| !moving.contains(s)) {
                out.insert(format!("subnet {subnet}"));
            }
        }
        if let Some(name) = n.name.as_deref().filter(|n| !own(n)) {
            out.insert(format!("network {name}"));
        }
    }
    for v in model.volumes.values().filter(|v| !v.external) {
        if let Some(name) = v.name.as_deref().filter(|n| !own(n)) {
            out.insert(format!("volume {name}"));
        }
    }
    out
}

/// The tags the suite's own `images` build (`docker build`, outside compose): like the tags
/// compose builds, one per engine, and removed by the run's teardown.
pub fn suite_builds(loaded: &LoadedSuite) -> impl Iterator<Item = String> + '_ {
    let images = loaded.suite.images.iter();
    images
        .filter(|(_, spec)| spec.build.is_some())
        .map(|(tag, _)| format!("image {tag}"))
}

/// The claims of one suite (none when compose cannot resolve its files: its run will say why),
/// from the static model the pre-flight checks already resolved (its project is a throwaway).
pub async fn claims(loaded: &LoadedSuite, ephemeral: bool) -> BTreeSet<String> {
    if loaded.suite.stack.compose.is_empty() {
        return BTreeSet::new();
    }
    match crate::plan::static_model(loaded).await {
        Ok(model) => {
            let text = std::fs::read_to_string(&loaded.path).unwrap_or_default();
            let mut out = claims_of(&model, &text, &model.name, ephemeral);
            out.extend(suite_builds(loaded));
            out
        }
        Err(_) => BTreeSet::new(),
    }
}

/// Runs `suites`, up to `jobs` at once where their claims allow; reports come back in the order
/// given. Ctrl-C, or a failure under `--fail-fast`, stops new suites from starting.
pub async fn run_all(
    suites: &[LoadedSuite],
    engine: &Engine,
    progress: &dyn Progress,
    options: &RunOptions,
    jobs: usize,
) -> Vec<SuiteReport> {
    let mut claimed: Vec<BTreeSet<String>> = Vec::new();
    for s in suites {
        claimed.push(claims(s, options.ephemeral(s)).await);
    }
    let mut pending: Vec<usize> = (0..suites.len()).collect();
    let mut running: Vec<usize> = Vec::new();
    let mut reports: Vec<Option<SuiteReport>> = vec![None; suites.len()];
    let mut in_flight = FuturesUnordered::new();
    let mut stop = false;
    loop {
        while !stop && running.len() < jobs.max(1) {
            let free = pending
                .iter()
                .position(|&i| running.iter().all(|&j| claimed[i].is_disjoint(&claimed[j])));
            let Some(at) = free else { break };
            let i = pending.remove(at);
            running.push(i);
            in_flight.push(async move {
                (
                    i,
                    run_suite_with(&suites[i], engine, progress, options).await,
                )
            });
        }
        let Some((i, report)) = in_flight.next().await else {
            break;
        };
        running.retain(|&j| j != i);
        stop |= report.interrupted || (options.fail_fast && report.failed() > 0);
        reports[i] = Some(report);
    }
    reports.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(json: serde_json::Value) -> ComposeModel {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn fixed_ports_names_and_subnets_are_claims_project_names_are_not() {
        let m = model(serde_json::json!({
            "name": "sc-x-1",
            "services": {
                "db": { "ports": [{ "target": 5432, "published": "5432", "protocol": "tcp" }],
                        "container_name": "mt5-db" },
                "api": { "ports": [{ "target": 8000 }] }
            },
            "networks": {
                "net": { "name": "sc-x-1_net", "ipam": { "config": [{ "subnet": "172.28.0.0/16" }] } },
                "ext": { "name": "shared", "external": true }
            },
            "volumes": {
                "data": { "name": "sc-x-1_data" },
                "fixed": { "name": "peak_trade_mlflow" }
            }
        }));
        let got: Vec<String> = claims_of(&m, "", "sc-x-1", false).into_iter().collect();
        assert_eq!(
            got,
            [
                "container name mt5-db",
                "host port 5432/tcp",
                "subnet 172.28.0.0/16",
                "volume peak_trade_mlflow"
            ]
        );
        // With ephemeral ports a subnet moves unless something names an address in it.
        let ephemeral: Vec<String> = claims_of(&m, "", "sc-x-1", true).into_iter().collect();
        assert_eq!(ephemeral, Vec::<String>::new());
        let pinned = "checks: [{ tcp: { host: 172.28.0.5 } }]";
        let ephemeral: Vec<String> = claims_of(&m, pinned, "sc-x-1", true).into_iter().collect();
        assert_eq!(ephemeral, ["subnet 172.28.0.0/16"]);
    }

    #[test]
    fn a_tag_the_suites_own_images_build_is_a_claim() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/features/suite.yaml");
        let loaded = crate::plan::load_file(&path).unwrap();
        let got: Vec<String> = suite_builds(&loaded).collect();
        // `features-api:1.0` is built by compose (a `service:` image), so claims_of has it.
        assert_eq!(got, ["image features-scratch:1.0"]);
    }

    #[test]
    fn a_tag_the_stack_builds_is_a_claim_in_either_ports_mode() {
        let m = model(serde_json::json!({
            "name": "sc-x-1",
            "services": {
                "api": { "image": "features-api:1.0", "build": { "context": "." } },
                "db": { "image": "postgres:15-alpine" },
                "worker": { "build": { "context": "." } }
            }
        }));
        for ephemeral in [false, true] {
            let got: Vec<String> = claims_of(&m, "", "sc-x-1", ephemeral).into_iter().collect();
            assert_eq!(got, ["image features-api:1.0"], "ephemeral: {ephemeral}");
        }
    }
}
