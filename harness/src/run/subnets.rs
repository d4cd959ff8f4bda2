//! Before bring-up, the run's fixed subnets. Every subnet the stack will create is claimed on the
//! engine first (`Engine::claim_subnet`), so two processes sharing an engine never race for one.
//! With ephemeral ports, those the run can move get a free range it claims (`plan::subnets`); those
//! it keeps as written are waited for while another stackcheck run holds them, within the suite's
//! budget, and refused at once when a network that is no run's overlaps them.

use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::runner::{Runner, Stop};
use crate::engine::ComposeModel;
use crate::plan::subnets::{choose, movable, overlaps};
use crate::plan::SubnetMoves;

/// How often a run waiting for a subnet looks again.
const POLL: Duration = Duration::from_millis(500);

/// Draws of a free range before giving up (each lost only to a concurrent claim).
const ATTEMPTS: usize = 16;

/// Where this run's fixed subnets go, once each is claimed for it.
pub(super) async fn settle(
    r: &Runner<'_>,
    model: &ComposeModel,
    labels: &std::collections::BTreeMap<String, String>,
    deadline: Instant,
) -> Result<SubnetMoves, Stop> {
    let infra = |e: crate::engine::EngineError| Stop::Infra(e.to_string());
    let (moving, kept) = if r.ephemeral {
        let text = std::fs::read_to_string(&r.loaded.path).unwrap_or_default();
        let (moving, kept) = movable(model, &text);
        (moving, kept.into_iter().map(|(s, _)| s).collect())
    } else {
        (Vec::new(), fixed_subnets(model))
    };
    let kept: Vec<Ipv4Net> = kept.iter().filter_map(|s| s.parse().ok()).collect();
    let t0 = Instant::now();
    let mut said = String::new();
    for subnet in &kept {
        loop {
            let holder = match r.engine.claim_subnet(subnet, labels).await.map_err(infra)? {
                Some(run) => format!("stackcheck run {run} holds it"),
                None => match foreign_or_running(r, subnet).await? {
                    None => break,
                    Some(network) => network,
                },
            };
            let waiting = format!("waiting for subnet {subnet}: {holder}");
            if Instant::now() >= deadline {
                return Err(Stop::Infra(format!(
                    "{waiting}, still after {} s, when the suite's budget ran out",
                    t0.elapsed().as_secs()
                )));
            }
            if said != waiting {
                r.progress.phase(&waiting);
                said = waiting;
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
    let mut moves = SubnetMoves::default();
    for from in moving {
        let used = r.engine.used_ranges().await.map_err(infra)?;
        let mut taken: Vec<Ipv4Net> = used
            .iter()
            .map(|u| u.net)
            .chain(kept.iter().copied())
            .collect();
        taken.extend(moves.0.values());
        let mut claimed = None;
        for _ in 0..ATTEMPTS {
            let Some(to) = choose(&[from], &taken).and_then(|m| m.0.get(&from).copied()) else {
                break;
            };
            match r.engine.claim_subnet(&to, labels).await.map_err(infra)? {
                None => {
                    claimed = Some(to);
                    break;
                }
                Some(_) => taken.push(to),
            }
        }
        let to = claimed.ok_or_else(|| {
            Stop::Infra(format!(
                "no free private IPv4 range is left on the engine for subnet {from}"
            ))
        })?;
        r.progress
            .detail(&format!("subnet {from} runs as {to} (ports: ephemeral)"));
        moves.0.insert(from, to);
    }
    Ok(moves)
}

/// With the claim held, what still overlaps `subnet` on the engine: a network of another run
/// (that run predates claims or is ending: wait) or one that is no run's (refused: stop).
async fn foreign_or_running(r: &Runner<'_>, subnet: &Ipv4Net) -> Result<Option<String>, Stop> {
    let used = r
        .engine
        .used_ranges()
        .await
        .map_err(|e| Stop::Infra(e.to_string()))?;
    let Some(u) = used.iter().find(|u| !u.route && overlaps(subnet, &u.net)) else {
        return Ok(None);
    };
    match &u.run {
        Some(run) => Ok(Some(format!(
            "network `{}` of stackcheck run {run} holds it",
            u.holder
        ))),
        None => Err(Stop::Infra(format!(
            "subnet {subnet} overlaps {} of network `{}`, which is not a stackcheck run's: the \
             engine would refuse the stack's network; remove that network or change the subnet",
            u.net, u.holder
        ))),
    }
}

/// Every fixed subnet of the model's own networks.
fn fixed_subnets(model: &ComposeModel) -> Vec<String> {
    let nets = model.networks.values().filter(|n| !n.external);
    nets.flat_map(|n| n.ipam.iter().flat_map(|i| &i.config))
        .filter_map(|c| c.subnet.clone())
        .collect()
}
