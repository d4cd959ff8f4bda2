//! Fixed subnets on the engine: the address space already in use where a run's networks will live
//! (the engine's networks, whoever made them, and, for a local engine, this host's routes), and
//! the networks that hold a run's subnets until compose creates its own. Which subnets move where
//! is `plan::subnets`'s to say; `run::subnets` drives both (a subnet's claim is one of the
//! engine's claims, `claims.rs`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::{ListNetworksOptions, ListNetworksOptionsBuilder};
use ipnet::Ipv4Net;

use super::{bounded, label_filter, Engine, EngineError, CALL_TIMEOUT, LABEL_RUN};

/// One IPv4 range in use.
#[derive(Clone, Debug)]
pub struct UsedRange {
    /// The range.
    pub net: Ipv4Net,
    /// Who holds it: an engine network's name, or `host route via <iface>`.
    pub holder: String,
    /// The stackcheck run whose network it is (such a holder goes away when that run ends).
    pub run: Option<String>,
    /// A host route, not an engine network (the engine does not refuse a subnet over one).
    pub route: bool,
}

impl Engine {
    /// Every IPv4 range the engine's networks hold, and (for a local engine) the host's routes,
    /// which a bridge must not shadow.
    pub async fn used_ranges(&self) -> Result<Vec<UsedRange>, EngineError> {
        let networks = bounded(
            "list networks",
            CALL_TIMEOUT,
            self.docker.list_networks(None::<ListNetworksOptions>),
        )
        .await?;
        let mut out = Vec::new();
        for n in networks {
            let run = n.labels.as_ref().and_then(|l| l.get(LABEL_RUN)).cloned();
            let configs = n.ipam.and_then(|i| i.config).unwrap_or_default();
            for net in configs.into_iter().filter_map(|c| c.subnet?.parse().ok()) {
                out.push(UsedRange {
                    net,
                    holder: n.name.clone().unwrap_or_default(),
                    run: run.clone(),
                    route: false,
                });
            }
        }
        if self.remote_host.is_none() {
            let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
            out.extend(host_routes(&table));
        }
        Ok(out)
    }
}

impl Engine {
    /// Holds `subnet` in the engine's address space until `release_subnets`: a labelled network
    /// with that subnet. A claim only keeps other runs off; the engine's default pools (which
    /// rotate through 172.17–31/16 and 192.168/20 as networks come and go) would still hand the
    /// range, or one over it, to any project creating a network between this run's look and its
    /// `up`. `Ok(false)`: a network already overlaps it.
    pub async fn reserve_subnet(
        &self,
        subnet: &Ipv4Net,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, EngineError> {
        let req = NetworkCreateRequest {
            name: format!("{HOLD_PREFIX}{}", subnet.to_string().replace('/', "_")),
            internal: Some(true),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let made = bounded(
            format!("reserve subnet {subnet}"),
            CALL_TIMEOUT,
            self.docker.create_network(req),
        )
        .await;
        match made {
            Ok(_) => Ok(true),
            Err(EngineError::Call { cause, .. }) if cause.contains("overlaps") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Frees the subnets run `run` reserved, for compose to create the stack's networks in them.
    pub async fn release_subnets(&self, run: &str) -> Result<(), EngineError> {
        let opts = ListNetworksOptionsBuilder::default()
            .filters(&label_filter(&format!("{LABEL_RUN}={run}")))
            .build();
        let networks = bounded(
            "list networks",
            CALL_TIMEOUT,
            self.docker.list_networks(Some(opts)),
        )
        .await?;
        for n in networks {
            let name = n.name.unwrap_or_default();
            if name.starts_with(HOLD_PREFIX) {
                self.remove_network(&name).await?;
            }
        }
        Ok(())
    }
}

/// Names of the networks that reserve a run's subnets until its `up`.
const HOLD_PREFIX: &str = "stackcheck-hold-";

/// The non-default routes of `/proc/net/route` (little-endian hex destination and mask).
fn host_routes(table: &str) -> Vec<UsedRange> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // The kernel prints the network-order word as a native integer.
            let addr = |s: &str| {
                u32::from_str_radix(s, 16)
                    .ok()
                    .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
            };
            let net = Ipv4Net::with_netmask(addr(f.get(1)?)?, addr(f.get(7)?)?).ok()?;
            (net.prefix_len() > 0).then(|| UsedRange {
                net,
                holder: format!("host route via {}", f[0]),
                run: None,
                route: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_routes_are_read_from_the_kernel_table_without_the_default_route() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes: Vec<String> = host_routes(table)
            .iter()
            .map(|r| format!("{} {}", r.net, r.holder))
            .collect();
        assert_eq!(
            routes,
            [
                "172.17.0.0/16 host route via docker0",
                "192.0.2.0/24 host route via eth0"
            ]
        );
    }
}
