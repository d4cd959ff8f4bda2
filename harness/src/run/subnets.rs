//! Before bring-up, the run's fixed subnets. Every subnet the stack will create is claimed on the
//! engine first (`Engine::claim_subnet`), so two processes sharing an engine never race for one.
//! With ephemeral ports, those the run can move get a free range it claims (`plan::subnets`); those
//! it keeps as written are waited for while another stackcheck run holds them, within the suite's
//! budget, and refused at once when a network that is no run's overlaps them.

use std::time::Instant;

use ipnet::Ipv4Net;

use super::claims::{wait_or_stop, Holders};
use super::runner::{Runner, Stop};
use crate::engine::{Compose, ComposeError, ComposeModel, Engine, UsedRange, LABEL_RUN};
use crate::plan::subnets::{choose, movable, overlaps};
use crate::plan::RunIdentity;
use crate::plan::SubnetMoves;

/// Draws of a free range before giving up (each lost only to a concurrent claim).
const ATTEMPTS: usize = 16;

/// Where this run's fixed subnets go, once each is claimed for it.
pub(super) async fn settle(
    r: &Runner<'_>,
    model: &ComposeModel,
    labels: &std::collections::BTreeMap<String, String>,
    deadline: Instant,
) -> Result<SubnetMoves, Stop> {
    let (moving, kept) = if r.settings.ephemeral {
        let text = std::fs::read_to_string(&r.loaded.path).unwrap_or_default();
        let (moving, kept) = movable(model, &text);
        (moving, kept.into_iter().map(|(s, _)| s).collect())
    } else {
        (Vec::new(), fixed_subnets(model))
    };
    let kept: Vec<Ipv4Net> = kept.iter().filter_map(|s| s.parse().ok()).collect();
    let images = claim_images(model);
    let mut wait = Waiting {
        t0: Instant::now(),
        said: String::new(),
        holders: Holders::default(),
        deadline,
    };
    for subnet in &kept {
        hold_kept(r, subnet, labels, &images, &mut wait).await?;
    }
    let mut moves = SubnetMoves::default();
    for from in moving {
        let to = move_to_free_range(r, from, &kept, &moves, labels, &images).await?;
        moves.0.insert(from, to);
    }
    Ok(moves)
}

/// A wait for a subnet another run or network holds: since when, what was last said, who holds.
struct Waiting {
    t0: Instant,
    said: String,
    holders: Holders,
    deadline: Instant,
}

impl Waiting {
    /// One poll of the wait for `what`, held by `holder` (see [`wait_or_stop`]).
    async fn on(
        &mut self,
        progress: &dyn crate::report::Progress,
        what: &str,
        holder: String,
    ) -> Result<(), Stop> {
        wait_or_stop(
            progress,
            &mut self.said,
            what,
            holder,
            self.t0,
            self.deadline,
        )
        .await
    }
}

/// Claims a subnet kept as written and holds it with a network of this run, waiting (within the
/// budget) while another run or a network holds it.
async fn hold_kept(
    r: &Runner<'_>,
    subnet: &Ipv4Net,
    labels: &std::collections::BTreeMap<String, String>,
    images: &[String],
    wait: &mut Waiting,
) -> Result<(), Stop> {
    let infra = |e: crate::engine::EngineError| Stop::Infra(e.to_string());
    let own = labels.get(LABEL_RUN);
    let what = format!("subnet {subnet}");
    let mut claimed = false;
    loop {
        // Once claimed, only the networks of a run that is ending may still be in the way.
        if !claimed {
            match r
                .engine
                .claim_subnet(subnet, labels, images)
                .await
                .map_err(infra)?
            {
                Some(run) if Some(&run) != own => {
                    let kept = wait.holders.look_at(r.engine, &what, &run).await?;
                    wait.on(
                        r.progress,
                        &what,
                        format!("stackcheck run {run} holds it{kept}"),
                    )
                    .await?;
                    continue;
                }
                _ => claimed = true,
            }
        }
        match foreign_or_running(r.engine, subnet, own).await? {
            None if r
                .engine
                .reserve_subnet(subnet, labels)
                .await
                .map_err(infra)? =>
            {
                break
            }
            // Taken between the look and the hold: look again.
            None => {
                let holder = "a network created as this run claimed it".to_string();
                wait.on(r.progress, &what, holder).await?
            }
            Some((network, run)) => {
                let holder = network + &wait.holders.look_at(r.engine, &what, &run).await?;
                wait.on(r.progress, &what, holder).await?
            }
        }
    }
    Ok(())
}

/// A free private range of the same size for `from`, claimed and held for this run.
async fn move_to_free_range(
    r: &Runner<'_>,
    from: Ipv4Net,
    kept: &[Ipv4Net],
    moves: &SubnetMoves,
    labels: &std::collections::BTreeMap<String, String>,
    images: &[String],
) -> Result<Ipv4Net, Stop> {
    let infra = |e: crate::engine::EngineError| Stop::Infra(e.to_string());
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
        match r
            .engine
            .claim_subnet(&to, labels, images)
            .await
            .map_err(infra)?
        {
            // A range over it (another size) may hold it without a claim of that name.
            None if r.engine.reserve_subnet(&to, labels).await.map_err(infra)? => {
                claimed = Some(to);
                break;
            }
            _ => taken.push(to),
        }
    }
    let to = claimed.ok_or_else(|| {
        Stop::Infra(format!(
            "no free private IPv4 range is left on the engine for subnet {from}"
        ))
    })?;
    r.progress
        .detail(&format!("subnet {from} runs as {to} (ports: ephemeral)"));
    Ok(to)
}

/// With the claim held, what still overlaps `subnet` on the engine: a network of another run
/// (that run predates claims, is ending, or took a default pool over it: wait) or one that is no
/// run's (refused: stop). A run's comes with that run's id.
async fn foreign_or_running(
    engine: &Engine,
    subnet: &Ipv4Net,
    own: Option<&String>,
) -> Result<Option<(String, String)>, Stop> {
    let used = engine
        .used_ranges()
        .await
        .map_err(|e| Stop::Infra(e.to_string()))?;
    let other = |u: &&UsedRange| !u.route && u.run.as_ref() != own && overlaps(subnet, &u.net);
    let Some(u) = used.iter().find(other) else {
        return Ok(None);
    };
    match &u.run {
        Some(run) => Ok(Some((
            format!("network `{}` of stackcheck run {run} holds it", u.holder),
            run.clone(),
        ))),
        None => Err(Stop::Infra(format!(
            "subnet {subnet} overlaps {} of network `{}`, which is not a stackcheck run's: the \
             engine would refuse the stack's network; remove that network or change the subnet",
            u.net, u.holder
        ))),
    }
}

/// The fixed subnets the stack's networks have in this run: as written, or where they moved.
pub(super) fn run_subnets(model: &ComposeModel, moves: &SubnetMoves) -> Vec<Ipv4Net> {
    let nets = fixed_subnets(model)
        .into_iter()
        .filter_map(|s| s.parse().ok());
    nets.map(|n: Ipv4Net| moves.0.get(&n).copied().unwrap_or(n))
        .collect()
}

/// After `up` failed because a network took one of `ours` once the run released it (the engine
/// rotates its default pools through 172.17–31/16): waits, within the budget, until no other
/// run's network overlaps them. `Err` says what still holds one.
pub(super) async fn wait_clear(
    engine: &Engine,
    progress: &dyn crate::report::Progress,
    ours: &[Ipv4Net],
    own: Option<&String>,
    deadline: Instant,
) -> Result<(), String> {
    let (mut said, t0) = (String::new(), Instant::now());
    let mut holders = Holders::default();
    for subnet in ours {
        while let Some((holder, run)) = foreign_or_running(engine, subnet, own)
            .await
            .map_err(|stop| stop.to_string())?
        {
            let what = format!("subnet {subnet}");
            let kept = holders.look_at(engine, &what, &run).await;
            let holder = holder + &kept.map_err(|stop| stop.to_string())?;
            wait_or_stop(progress, &mut said, &what, holder, t0, deadline)
                .await
                .map_err(|stop| stop.to_string())?;
        }
    }
    Ok(())
}

/// Images to make a claim from: the stack's own, those it does not build first (compose names a
/// build without `image:` `<project>-<service>`).
fn claim_images(model: &ComposeModel) -> Vec<String> {
    let named = |(name, s): (&String, &crate::engine::ModelService)| {
        s.image
            .clone()
            .unwrap_or_else(|| format!("{}-{name}", model.name))
    };
    let (built, pulled): (Vec<_>, Vec<_>) =
        model.services.iter().partition(|(_, s)| s.build.is_some());
    pulled.into_iter().chain(built).map(named).collect()
}

/// Every fixed subnet of the model's own networks.
fn fixed_subnets(model: &ComposeModel) -> Vec<String> {
    let nets = model.networks.values().filter(|n| !n.external);
    nets.flat_map(|n| n.ipam.iter().flat_map(|i| &i.config))
        .filter_map(|c| c.subnet.clone())
        .collect()
}

/// `docker compose up` of the selected services. The subnets were held until now; released, one
/// may still be taken before compose creates its network (the engine then creates no container):
/// wait for it and start again, three times at most.
pub(super) async fn up(
    engine: &crate::engine::Engine,
    progress: &dyn crate::report::Progress,
    compose: &Compose,
    id: &RunIdentity,
    selected: &[String],
    subnets: &[ipnet::Ipv4Net],
    deadline: Instant,
) -> Result<(), ComposeError> {
    let own = id.labels.get(LABEL_RUN);
    if let Err(e) = engine.release_subnets(&id.run_id).await {
        progress.detail(&format!("could not release held subnets: {e}"));
    }
    let mut tries = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match compose
            .up(selected, remaining, |l| progress.detail(l))
            .await
        {
            Err(ComposeError::Failed { what, code, tail })
                if tries < 3 && tail.contains("Pool overlaps with other one") =>
            {
                tries += 1;
                progress.phase("a network took a subnet of the stack as it started");
                if let Err(why) = wait_clear(engine, progress, subnets, own, deadline).await {
                    let tail = format!("{tail}\n{why}");
                    return Err(ComposeError::Failed { what, code, tail });
                }
            }
            other => return other,
        }
    }
}
