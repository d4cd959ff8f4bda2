//! Fixed subnets under `stack.ports: ephemeral`. Two runs of a stack with a fixed subnet cannot
//! share one engine (the engine refuses overlapping pools), so a run moves each fixed IPv4 subnet
//! to a free range of the same size, and every fixed address in it (`ipv4_address`, gateway,
//! `ip_range`, `aux_addresses`) to the same offset in the new range. The documented subnet stays
//! a promise proven from the compose model.
//!
//! A subnet moves only where that cannot change what the stack does: when no service names an
//! address in it anywhere else (environment, command, entrypoint, extra_hosts) and the suite names
//! none, since those the run cannot rewrite. Such a subnet stays as written and the run waits for
//! it instead. Addresses inside files a service reads are not seen: such a stack runs with
//! `ports: documented`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::Rng;

use crate::engine::{ComposeModel, ModelService};

/// Where a run puts each fixed subnet it moves: documented → this run's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetMoves(pub BTreeMap<Ipv4Net, Ipv4Net>);

/// Private ranges a moved subnet is taken from, in order of preference.
const POOLS: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// Random draws per pool before a linear scan.
const DRAWS: usize = 256;

impl SubnetMoves {
    /// The address `addr` (in a moved subnet) has in this run; unchanged outside them.
    pub fn address(&self, addr: &str) -> Option<String> {
        let ip: Ipv4Addr = addr.parse().ok()?;
        let (from, to) = self.0.iter().find(|(from, _)| from.contains(&ip))?;
        let offset = u32::from(ip) - u32::from(from.network());
        Some(Ipv4Addr::from(u32::from(to.network()) + offset).to_string())
    }

    /// A CIDR (`subnet`, `ip_range`) inside a moved subnet, at the same offset and size.
    pub fn cidr(&self, cidr: &str) -> Option<String> {
        let net: Ipv4Net = cidr.parse().ok()?;
        let moved: Ipv4Addr = self.address(&net.network().to_string())?.parse().ok()?;
        Some(Ipv4Net::new(moved, net.prefix_len()).ok()?.to_string())
    }

    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The fixed IPv4 subnets of the model's own networks, split into those a run may move and those
/// it must keep (with why).
pub fn movable(model: &ComposeModel, suite_text: &str) -> (Vec<Ipv4Net>, Vec<(String, String)>) {
    let (mut moves, mut keeps) = (Vec::new(), Vec::new());
    for n in model.networks.values().filter(|n| !n.external) {
        for subnet in n
            .ipam
            .iter()
            .flat_map(|i| &i.config)
            .filter_map(|c| c.subnet.as_deref())
        {
            let Ok(net) = subnet.parse::<Ipv4Net>() else {
                keeps.push((subnet.to_string(), "not an IPv4 subnet".to_string()));
                continue;
            };
            let by_service = model.services.iter().find_map(|(name, s)| {
                let a = address_in(&service_texts(s), &net)?;
                Some(format!("service `{name}` names {a} outside `ipv4_address`"))
            });
            let by_suite = || {
                Some(format!(
                    "the suite names {}",
                    address_in(&[suite_text.to_string()], &net)?
                ))
            };
            match by_service.or_else(by_suite) {
                Some(why) => keeps.push((subnet.to_string(), why)),
                None => moves.push(net),
            }
        }
    }
    (moves, keeps)
}

/// Where a service may name an address that a run does not rewrite.
fn service_texts(s: &ModelService) -> Vec<String> {
    let mut texts: Vec<String> = s.environment.values().flatten().cloned().collect();
    for v in [&s.command, &s.entrypoint, &s.extra_hosts]
        .into_iter()
        .flatten()
    {
        texts.push(v.to_string());
    }
    texts
}

/// The first IPv4 address in `net` that `texts` name.
fn address_in(texts: &[String], net: &Ipv4Net) -> Option<Ipv4Addr> {
    // A CIDR (`subnet: 172.29.0.0/24`) names the range, not an address in it.
    let re = regex::Regex::new(r"\b((?:\d{1,3}\.){3}\d{1,3})\b(/\d)?").expect("a valid pattern");
    texts
        .iter()
        .flat_map(|t| {
            re.captures_iter(t)
                .filter(|c| c.get(2).is_none())
                .map(|c| c[1].to_string())
                .collect::<Vec<_>>()
        })
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        .find(|a| net.contains(a))
}

/// A free range of the same size for each subnet in `moving`: private, overlapping nothing in
/// `taken` (the engine's networks, the host's routes) nor each other. Drawn at random so two
/// processes choosing at once rarely draw the same; `None` when the private ranges are full.
pub fn choose(moving: &[Ipv4Net], taken: &[Ipv4Net]) -> Option<SubnetMoves> {
    let mut rng = rand::rng();
    let mut busy: Vec<Ipv4Net> = taken.iter().chain(moving).copied().collect();
    let mut out = BTreeMap::new();
    for net in moving {
        let free = |c: &Ipv4Net, busy: &[Ipv4Net]| !busy.iter().any(|b| overlaps(b, c));
        let mut found = None;
        for pool in POOLS
            .iter()
            .map(|p| p.parse::<Ipv4Net>().expect("a valid pool"))
        {
            if net.prefix_len() < pool.prefix_len() {
                continue;
            }
            let count = 1u64 << (net.prefix_len() - pool.prefix_len());
            let nth = |i: u64| {
                let base = u32::from(pool.network()) as u64 + (i << (32 - net.prefix_len()));
                Ipv4Net::new(Ipv4Addr::from(base as u32), net.prefix_len()).expect("a valid prefix")
            };
            found = (0..DRAWS)
                .map(|_| nth(rng.random_range(0..count)))
                .find(|c| free(c, &busy))
                .or_else(|| (0..count.min(1 << 16)).map(nth).find(|c| free(c, &busy)));
            if found.is_some() {
                break;
            }
        }
        let to = found?;
        busy.push(to);
        out.insert(*net, to);
    }
    Some(SubnetMoves(out))
}

/// Whether two ranges share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl ComposeModel {
    /// This model with `moves` applied to its networks' IPAM (each moved config remembers the
    /// documented subnet) and its services' `ipv4_address`es.
    pub fn with_moved_subnets(&self, moves: &SubnetMoves) -> ComposeModel {
        let mut m = self.clone();
        for c in m
            .networks
            .values_mut()
            .flat_map(|n| n.ipam.iter_mut().flat_map(|i| &mut i.config))
        {
            let Some(moved) = c.subnet.as_deref().and_then(|s| moves.cidr(s)) else {
                continue;
            };
            c.documented = c.subnet.replace(moved);
            c.ip_range = c
                .ip_range
                .as_deref()
                .map(|r| moves.cidr(r).unwrap_or(r.to_string()));
            c.gateway = c
                .gateway
                .as_deref()
                .map(|g| moves.address(g).unwrap_or(g.to_string()));
            for a in c.aux_addresses.values_mut() {
                *a = moves.address(a).unwrap_or(a.clone());
            }
        }
        for s in m.services.values_mut() {
            for attach in s.networks.iter_mut().flat_map(|n| n.values_mut()).flatten() {
                let addr = attach.get("ipv4_address").and_then(|a| a.as_str());
                if let Some(moved) = addr.and_then(|a| moves.address(a)) {
                    attach["ipv4_address"] = serde_json::json!(moved);
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> ComposeModel {
        serde_json::from_value(json!({
            "services": {
                "db": { "networks": { "back": { "ipv4_address": "172.29.0.10" } } },
                "app": { "environment": { "DB": "db:5432" }, "networks": { "back": null, "pinned": null } },
                "old": { "environment": { "PEER": "172.29.1.10" }, "networks": { "pinned": null } }
            },
            "networks": {
                "back": { "ipam": { "config": [{ "subnet": "172.29.0.0/24", "gateway": "172.29.0.1",
                                                 "ip_range": "172.29.0.128/25",
                                                 "aux_addresses": { "router": "172.29.0.2" } }] } },
                "pinned": { "ipam": { "config": [{ "subnet": "172.29.1.0/24" }] } },
                "v6": { "ipam": { "config": [{ "subnet": "fd00:1::/64" }] } },
                "theirs": { "external": true, "ipam": { "config": [{ "subnet": "172.30.0.0/16" }] } }
            }
        }))
        .unwrap()
    }

    #[test]
    fn subnets_move_unless_a_service_names_an_address_in_them() {
        let (moves, keeps) = movable(&model(), "networks: { back: { subnet: 172.29.0.0/24 } }");
        assert_eq!(moves, ["172.29.0.0/24".parse::<Ipv4Net>().unwrap()]);
        let (moves, keeps_for_suite) = movable(&model(), "cmd: [ping, 172.29.0.10]");
        assert!(moves.is_empty());
        assert_eq!(
            keeps_for_suite[0],
            ("172.29.0.0/24".into(), "the suite names 172.29.0.10".into())
        );
        assert_eq!(
            keeps,
            [
                (
                    "172.29.1.0/24".into(),
                    "service `old` names 172.29.1.10 outside `ipv4_address`".into()
                ),
                ("fd00:1::/64".into(), "not an IPv4 subnet".into()),
            ]
        );
    }

    #[test]
    fn a_moved_subnet_is_free_the_same_size_and_keeps_every_offset() {
        let back: Ipv4Net = "172.29.0.0/24".parse().unwrap();
        let taken: Vec<Ipv4Net> = vec![
            "10.0.0.0/9".parse().unwrap(),
            "172.17.0.0/16".parse().unwrap(),
        ];
        for _ in 0..50 {
            let moves = choose(&[back], &taken).unwrap();
            let to = moves.0[&back];
            assert_eq!(to.prefix_len(), 24);
            assert!(
                !taken.iter().chain([&back]).any(|t| overlaps(t, &to)),
                "{to}"
            );
            let m = model().with_moved_subnets(&moves);
            let c = &m.networks["back"].ipam.as_ref().unwrap().config[0];
            let at = |host: u32| Ipv4Addr::from(u32::from(to.network()) + host).to_string();
            assert_eq!(c.documented.as_deref(), Some("172.29.0.0/24"));
            assert_eq!(c.subnet.as_deref(), Some(to.to_string().as_str()));
            assert_eq!(c.gateway.as_deref(), Some(at(1).as_str()));
            assert_eq!(c.ip_range.clone().unwrap(), format!("{}/25", at(128)));
            assert_eq!(c.aux_addresses["router"], at(2));
            let db = m.services["db"].networks.as_ref().unwrap()["back"]
                .clone()
                .unwrap();
            assert_eq!(db["ipv4_address"], json!(at(10)));
            let pinned = &m.networks["pinned"].ipam.as_ref().unwrap().config[0];
            assert_eq!(
                (pinned.subnet.as_deref(), pinned.documented.as_deref()),
                (Some("172.29.1.0/24"), None)
            );
        }
    }

    #[test]
    fn a_wide_subnet_falls_back_to_the_next_pool_and_a_full_space_is_none() {
        let wide: Ipv4Net = "10.0.0.0/12".parse().unwrap();
        let all_ten: Vec<Ipv4Net> = vec!["10.0.0.0/8".parse().unwrap()];
        let moves = choose(&[wide], &all_ten).unwrap();
        assert_eq!(moves.0[&wide], "172.16.0.0/12".parse::<Ipv4Net>().unwrap());
        let everything: Vec<Ipv4Net> = POOLS.iter().map(|p| p.parse().unwrap()).collect();
        assert_eq!(
            choose(&["172.29.0.0/24".parse().unwrap()], &everything),
            None
        );
    }
}
