//! The listeners isolation and egress probes aim at, all owned by the run: a canary container on
//! the stack's networks, a listener on the harness's loopback, and the egress canary outside every
//! stack network (on the gateway of the run's own canary network).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::net::TcpListener;

use super::net::{probe_cmd, NetReport, CANARY_PORT, PROBE_LIMIT};
use crate::engine::{probe_image, Engine, EngineKind, HelperSpec};

/// Listeners this run owns, which isolated targets must not reach.
pub struct Canary {
    /// `address:port` of the canary container on each stack network (network → target).
    pub on_networks: BTreeMap<String, String>,
    /// A listener on the host's loopback (reachable only from the host's own namespace).
    pub host_loopback: String,
    /// A canary on the run's own network, published on that network's gateway address: reaching it
    /// means leaving one's network through the host's forwarding, which `internal` networks forbid.
    pub egress: String,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn listener(addr: &str) -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = l.local_addr().map_err(|e| e.to_string())?.to_string();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    Ok((local, task))
}

impl Canary {
    /// Starts the canary container on `networks` (engine names) plus the host listeners.
    pub async fn start(
        engine: &Engine,
        run_id: &str,
        networks: &[String],
        labels: &BTreeMap<String, String>,
    ) -> Result<Canary, String> {
        let mut tasks = Vec::new();
        let (host_loopback, t) = listener("127.0.0.1:0").await?;
        tasks.push(t);
        let canary_net = format!("sc-{run_id}-canary");
        let gateway = engine
            .create_network(&canary_net, labels)
            .await
            .map_err(|e| e.to_string())?;
        // Podman isolates its networks from each other, published ports included, and only sets
        // up a network's bridge (its gateway address) once a container joins it: the canary
        // joins, and a listener in the engine host's own namespace takes the connections there.
        let podman = engine.kind == EngineKind::Podman;
        let spec = HelperSpec {
            image: probe_image().into(),
            cmd: probe_cmd("listen", &[CANARY_PORT.to_string()]),
            network_mode: Some(canary_net.clone()),
            labels: labels.clone(),
            publish: (!podman).then(|| (gateway.clone(), CANARY_PORT)),
            ..Default::default()
        };
        let id = engine
            .start_helper(&spec)
            .await
            .map_err(|e| format!("egress canary: {e}"))?;
        let port = if podman {
            host_listener(engine, &gateway, labels).await?
        } else {
            let info = engine.inspect(&id).await.map_err(|e| e.to_string())?;
            crate::engine::published_host_port(&info, CANARY_PORT)
                .ok_or("the egress canary got no published port")?
        };
        let egress = format!("{gateway}:{port}");
        wait_listening(engine, &canary_net, &egress, labels).await?;
        let mut on_networks = BTreeMap::new();
        if let Some((first, rest)) = networks.split_first() {
            let spec = HelperSpec {
                image: probe_image().into(),
                cmd: probe_cmd("listen", &[CANARY_PORT.to_string()]),
                network_mode: Some(first.clone()),
                networks: rest.to_vec(),
                labels: labels.clone(),
                ..Default::default()
            };
            let id = engine
                .start_helper(&spec)
                .await
                .map_err(|e| format!("canary: {e}"))?;
            let info = engine.inspect(&id).await.map_err(|e| e.to_string())?;
            for (net, ep) in info
                .network_settings
                .and_then(|n| n.networks)
                .unwrap_or_default()
            {
                if let Some(ip) = ep.ip_address.filter(|ip| !ip.is_empty()) {
                    on_networks.insert(net, format!("{ip}:{CANARY_PORT}"));
                }
            }
            for (net, addr) in &on_networks {
                wait_listening(engine, net, addr, labels).await?;
            }
        }
        Ok(Canary {
            on_networks,
            host_loopback,
            egress,
            _tasks: tasks,
        })
    }

    pub(super) fn targets(&self) -> Vec<(String, String)> {
        let mut t: Vec<(String, String)> = self
            .on_networks
            .iter()
            .map(|(n, a)| (a.clone(), format!("canary on network {n}")))
            .collect();
        t.push((
            self.host_loopback.clone(),
            "harness listener on the host's loopback".into(),
        ));
        t.push((
            self.egress.clone(),
            "egress canary outside every stack network".into(),
        ));
        t
    }
}

/// A canary in the engine host's network namespace on `address` (a port the host has free);
/// returns its port.
async fn host_listener(
    engine: &Engine,
    address: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String, String> {
    let spec = HelperSpec {
        image: probe_image().into(),
        cmd: probe_cmd("listen", &["0".into(), address.into()]),
        network_mode: Some("host".into()),
        labels: labels.clone(),
        ..Default::default()
    };
    let id = engine
        .start_helper(&spec)
        .await
        .map_err(|e| format!("egress canary: {e}"))?;
    let line = engine
        .wait_for_log(&id, Duration::from_secs(20), |l| {
            l.starts_with("listening on port ")
        })
        .await
        .map_err(|seen| {
            format!("the egress canary on {address} did not start listening within 20 s: {seen}")
        })?;
    Ok(line.trim_start_matches("listening on port ").to_string())
}

/// Waits until `addr` accepts connections from `network`, so "unreachable" never means "not yet started".
async fn wait_listening(
    engine: &Engine,
    network: &str,
    addr: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), String> {
    let probe = HelperSpec {
        image: probe_image().into(),
        cmd: probe_cmd("net", &[addr.to_string()]),
        network_mode: Some(network.to_string()),
        labels: labels.clone(),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = engine
            .run_helper(&probe, PROBE_LIMIT, &Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = serde_json::from_str::<NetReport>(out.stdout.text().trim())
            .map(|r| r.reached.values().all(|v| v == "open"))
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "the canary {addr} did not accept connections from {network} within 20 s: {}",
                out.stderr.text().trim()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
