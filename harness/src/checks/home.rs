//! Probes stay home: every address a probe connects to is loopback, a service of this stack
//! (resolved by the stack's own DNS), or an address of a container or network this run created.
//! With a remote engine (`DOCKER_HOST`), its host takes loopback's place for published ports.
//! Anything else is refused before a packet is sent, and every target a run probed is kept in
//! its report.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::engine::RunAddresses;

/// Why `target` (`host:port`) may be probed, or why not.
pub fn classify(
    target: &str,
    services: &BTreeSet<String>,
    run: &RunAddresses,
) -> Result<String, String> {
    let host = target
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(target)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if run.engine_host.as_deref() == Some(host) {
        return Ok(format!("{host}, the engine's host (DOCKER_HOST)"));
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok("loopback".into()),
        Ok(ip) => {
            if let Some(c) = run.containers.get(&ip) {
                Ok(format!("container {c} of this run"))
            } else if let Some(n) = run.gateways.get(&ip) {
                Ok(format!("gateway of network {n} of this run"))
            } else {
                Err(format!(
                    "refusing to probe {target}: {ip} is neither loopback nor an address of a container or network this run created"
                ))
            }
        }
        Err(_) if host == "localhost" => Ok("loopback".into()),
        Err(_) if services.contains(host) => Ok(format!("service {host} of this stack")),
        Err(_) => Err(format!(
            "refusing to probe {target}: `{host}` is not a service of this stack"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> (BTreeSet<String>, RunAddresses) {
        let services = BTreeSet::from(["db".to_string(), "api".to_string()]);
        let mut run = RunAddresses::default();
        run.containers
            .insert("172.28.0.3".parse().unwrap(), "sc-mt5-1-db-1".into());
        run.gateways
            .insert("172.30.0.1".parse().unwrap(), "sc-1-canary".into());
        (services, run)
    }

    #[test]
    fn home_is_loopback_our_services_and_our_addresses() {
        let (services, run) = run();
        for t in [
            "127.0.0.1:8080",
            "127.0.0.53:53",
            "[::1]:80",
            "localhost:9092",
            "db:5432",
            "172.28.0.3:5432",
            "172.30.0.1:40123",
        ] {
            assert!(classify(t, &services, &run).is_ok(), "{t}");
        }
        // Only with a remote engine, its host is where published ports are.
        let (services, mut run) = (services, run);
        assert!(classify("builder:8000", &services, &run).is_err());
        run.engine_host = Some("builder".into());
        assert!(classify("builder:8000", &services, &run).is_ok());
    }

    #[test]
    fn everything_else_is_refused() {
        let (services, run) = run();
        for t in [
            "8.8.8.8:53",
            "10.0.0.1:22",
            "192.168.1.1:80",
            // The default bridge's gateway and a neighbour on our subnet are not ours.
            "172.17.0.1:2375",
            "172.28.0.99:5432",
            "example.com:443",
            "host.docker.internal:8000",
            "cache:6379",
        ] {
            let e = classify(t, &services, &run).unwrap_err();
            assert!(e.starts_with("refusing to probe"), "{t}: {e}");
        }
    }
}
