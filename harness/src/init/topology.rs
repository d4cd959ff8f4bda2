//! Who reaches whom, for `init --observe`: where the compose file makes a relation, the promise
//! that it holds on the wire. A service that `depends_on` another reaches it by name on a port
//! that other accepted connections on; a service that shares no network with another cannot
//! reach it. Each candidate is written only when it held in two runs of it on the stack.

use std::collections::{BTreeMap, BTreeSet};

use super::look::Promise;
use super::q;
use crate::engine::{ComposeModel, ModelService};

/// The most isolation candidates tried: a large stack has many unrelated pairs, and a few say
/// what its networks are for.
const MOST_ISOLATED: usize = 8;

/// The reach and isolation checks the compose file suggests between the services that stayed up,
/// given the ports each accepted connections on (its lowest one is the target).
pub(super) fn candidates(
    model: &ComposeModel,
    up: &[String],
    accepting: &BTreeMap<String, BTreeSet<u16>>,
) -> Vec<Promise> {
    let port_of = |s: &String| accepting.get(s).and_then(|p| p.iter().next().copied());
    let mut reach = Vec::new();
    let mut isolated = Vec::new();
    for from in up {
        let Some(a) = model.services.get(from).filter(|a| on_networks(a)) else {
            continue;
        };
        for to in up.iter().filter(|to| *to != from) {
            let (Some(b), Some(port)) = (model.services.get(to), port_of(to)) else {
                continue;
            };
            if !on_networks(b) {
                continue;
            }
            let shared = networks(a).intersection(&networks(b)).count() > 0;
            if shared && a.depends_on.contains_key(to) {
                reach.push(reaches(from, to, port));
            } else if !shared {
                isolated.push(cannot_reach(from, to, port));
            }
        }
    }
    isolated.truncate(MOST_ISOLATED);
    reach.extend(isolated);
    reach
}

/// Whether the service is on compose networks (not `none`, the host's or another's namespace).
fn on_networks(s: &ModelService) -> bool {
    s.network_mode.is_none()
}

/// The compose networks a service is on (`default` when it names none).
fn networks(s: &ModelService) -> BTreeSet<String> {
    match &s.networks {
        Some(n) if !n.is_empty() => n.keys().cloned().collect(),
        _ => BTreeSet::from(["default".to_string()]),
    }
}

fn reaches(from: &str, to: &str, port: u16) -> Promise {
    let seen = format!("`{from}` depends on `{to}`; seen twice: a connection from `{from}` to {to}:{port} succeeded");
    reach(
        format!("{from} reaches {to}:{port}"),
        seen,
        from,
        to,
        port,
        "",
    )
}

fn cannot_reach(from: &str, to: &str, port: u16) -> Promise {
    let seen = format!("`{from}` and `{to}` share no network; seen twice: no connection from `{from}` to {to}:{port}");
    let name = format!("{from} cannot reach {to}:{port}");
    reach(name, seen, from, to, port, ", expect: unreachable")
}

/// A `reach` check from `from` to `to:port` (`expect`: its `, expect: …` part, if any).
fn reach(name: String, seen: String, from: &str, to: &str, port: u16, expect: &str) -> Promise {
    let target = q(&format!("{to}:{port}"));
    Promise {
        name,
        seen,
        keys: vec![format!(
            "reach: {{ from: {}, to: {target}{expect} }}",
            q(from)
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_is_reached_and_a_service_on_no_shared_network_is_not() {
        let model: ComposeModel = serde_saphyr::from_str(
            "services:\n  web: { networks: { front: null, back: null }, depends_on: { db: {} } }\n  \
             db: { networks: { back: null } }\n  proxy: { networks: { front: null } }\n  \
             tool: { network_mode: none }\n",
        )
        .unwrap();
        let up: Vec<String> = ["db", "proxy", "tool", "web"].map(String::from).to_vec();
        let accepting = BTreeMap::from([
            ("db".to_string(), BTreeSet::from([5432])),
            ("web".to_string(), BTreeSet::from([8000, 9000])),
        ]);
        let names: Vec<String> = candidates(&model, &up, &accepting)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["web reaches db:5432", "proxy cannot reach db:5432"]);
    }
}
