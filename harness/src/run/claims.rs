//! Before its build, what only one stack can hold at a time (fixed host ports, `container_name`s,
//! fixed network and volume names, the tags it builds: `schedule::claims_of`, `suite_builds`) is
//! claimed on the engine, so a second stackcheck process on the same engine (another CI job,
//! another test binary) waits for this run instead of colliding with it halfway through its `up`.
//! In one process, `schedule` already keeps such suites apart; this is the same rule across
//! processes. Claims are taken in one order (sorted, subnets last: `subnets::settle`), so two runs
//! never each hold what the other waits for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::runner::{Runner, Stop};
use crate::engine::{ComposeModel, Engine, Leftovers, LABEL_RUN};

/// How often a run waiting for a claim looks again.
const POLL: Duration = Duration::from_millis(500);

/// The least a run waits for another run's claims, whatever its own budget: a run of a suite
/// with a two-minute `timeout` may well wait for one with five.
const WAIT_AT_LEAST: Duration = Duration::from_secs(600);

/// Claims every fixed port and name of the stack (its subnets are `subnets::settle`'s), waiting
/// while another stackcheck run holds one, as long as the suite's budget has left or ten minutes.
/// Returns how long it waited: the run's own work gets that back, since a suite's `timeout` is
/// for its stack, not for another run's.
pub(super) async fn hold(
    r: &Runner<'_>,
    model: &ComposeModel,
    labels: &BTreeMap<String, String>,
    deadline: Instant,
) -> Result<Duration, Stop> {
    let text = std::fs::read_to_string(&r.loaded.path).unwrap_or_default();
    let mut claims = super::schedule::claims_of(model, &text, &model.name, r.settings.ephemeral);
    claims.extend(super::schedule::suite_builds(r.loaded));
    let claims: Vec<&String> = claims
        .iter()
        .filter(|c| !c.starts_with("subnet "))
        .collect();
    let t0 = Instant::now();
    if claims.is_empty() {
        return Ok(Duration::ZERO);
    }
    // Taken before the build (its tags are claims), so made from an image already there: one
    // the stack pulls, else any image no run built. Never a tag it builds: that may be another
    // run's build, which that run could then not remove.
    let pulled = model.services.values().filter(|s| s.build.is_none());
    let mut images: Vec<String> = pulled.filter_map(|s| s.image.clone()).collect();
    let plain = r.engine.plain_images().await;
    images.extend(plain.map_err(|e| Stop::Infra(e.to_string()))?);
    let own = labels.get(LABEL_RUN);
    let deadline = deadline.max(t0 + WAIT_AT_LEAST);
    let mut said = String::new();
    let mut holders = Holders::default();
    for what in claims {
        loop {
            let held = r.engine.claim(what, labels, &images).await;
            match held.map_err(|e| Stop::Infra(e.to_string()))? {
                Some(run) if Some(&run) != own => {
                    let kept = holders.look_at(r.engine, what, &run).await?;
                    let holder = format!("stackcheck run {run} holds it{kept}");
                    wait_or_stop(r.progress, &mut said, what, holder, t0, deadline).await?;
                }
                _ => break,
            }
        }
    }
    Ok(t0.elapsed())
}

/// One poll of a wait for `what` held by `holder`: says so (once per holder) and sleeps, or stops
/// the run when the budget is spent.
pub(super) async fn wait_or_stop(
    progress: &dyn crate::report::Progress,
    said: &mut String,
    what: &str,
    holder: String,
    t0: Instant,
    deadline: Instant,
) -> Result<(), Stop> {
    let waiting = format!("waiting for {what}: {holder}");
    if Instant::now() >= deadline {
        return Err(Stop::Infra(format!(
            "{waiting}, still after {} s, when the wait ran out",
            t0.elapsed().as_secs()
        )));
    }
    if *said != waiting {
        progress.phase(&waiting);
        *said = waiting;
    }
    tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    Ok(())
}

/// How many sweeps in a row that leave a stale run's leftovers as they were prove them stuck.
const STUCK_AFTER: u32 = 3;

/// The runs a wait is for, when they will not end by themselves. A stack kept up on purpose ends
/// with its `down`: the wait says so. A run whose harness is gone (killed with its watcher, or
/// whose last sweep met a resource it could not remove) never releases its claims: they go only
/// once the rest of the run is gone (`Engine::sweep`). So a waiting run sweeps such a holder
/// itself, as the stale sweep at its start does, and when what the holder left survives its sweeps
/// unchanged (a network another container is still attached to, an endpoint the engine lost),
/// stops at once naming it, instead of waiting ten minutes for a release that cannot come.
#[derive(Default)]
pub(super) struct Holders {
    /// Per stale run: its leftovers after the last sweep, and how many sweeps in a row left them.
    swept: BTreeMap<String, (Leftovers, u32)>,
}

impl Holders {
    /// Looks at `run`, which holds `what`. A run kept up on purpose is waited for, and the wait
    /// says how to free it (the returned note, else empty): nothing else will. A run whose owner
    /// is gone is swept; an error once its leftovers are stuck.
    pub(super) async fn look_at(
        &mut self,
        engine: &Engine,
        what: &str,
        run: &str,
    ) -> Result<String, Stop> {
        let infra = |e: crate::engine::EngineError| Stop::Infra(e.to_string());
        let runs = super::reap::runs(engine).await.map_err(infra)?;
        let Some(holder) = runs.iter().find(|h| h.run == run) else {
            return Ok(String::new());
        };
        if let Some(k) = holder.kept.as_ref().filter(|k| k.on_purpose()) {
            return Ok(format!(
                ", kept up on purpose by {} (suite `{}`): `stackcheck down` with that suite, or \
                 `stackcheck reap --include-live`, frees it",
                k.left_up_by(),
                k.suite
            ));
        }
        if holder.owner_alive {
            return Ok(String::new());
        }
        let left = engine
            .sweep(&format!("{LABEL_RUN}={run}"))
            .await
            .map_err(infra)?;
        let (before, times) = self.swept.entry(run.to_string()).or_default();
        *times = if *before == left { *times + 1 } else { 1 };
        *before = left;
        let stuck = is_stuck(before, *times);
        if !stuck {
            return Ok(String::new());
        }
        let owner = holder.owner_pid.map_or("its harness".to_string(), |p| {
            format!("its harness (pid {p})")
        });
        // Stuck leftovers hold no container but its claims, which the message words on its own.
        let rest = Leftovers {
            containers: Vec::new(),
            ..before.clone()
        };
        Err(Stop::Infra(format!(
            "{what}: stackcheck run {run} holds it, {owner} is gone, and {STUCK_AFTER} sweeps in \
             a row could not remove what it left: {}; its claims go with the last of it. Free \
             it by hand (`docker network inspect` names what still uses a network), then run \
             `stackcheck reap`",
            rest.describe()
        )))
    }
}

/// Whether leftovers that `times` sweeps in a row left alike are stuck: containers (other than
/// claims) would mean something is still creating them, a `docker compose up` the dead harness
/// started, and the sweeps go on until the wait runs out.
fn is_stuck(left: &Leftovers, times: u32) -> bool {
    let busy = left.containers.iter().any(|c| !crate::engine::is_claim(c));
    let nothing_but_claims = left.networks.is_empty() && left.volumes.is_empty();
    times >= STUCK_AFTER && !busy && !nothing_but_claims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(containers: &[&str], networks: &[&str]) -> Leftovers {
        Leftovers {
            containers: containers.iter().map(|c| c.to_string()).collect(),
            networks: networks.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn leftovers_are_stuck_only_when_alike_long_enough_and_nothing_is_still_creating_them() {
        let net = left(&["stackcheck-claim-host_port_80_tcp"], &["sc-x_default"]);
        assert!(!is_stuck(&net, STUCK_AFTER - 1));
        assert!(is_stuck(&net, STUCK_AFTER));
        let creating = left(
            &["sc-x-web-1", "stackcheck-claim-host_port_80_tcp"],
            &["sc-x_default"],
        );
        assert!(!is_stuck(&creating, STUCK_AFTER + 5));
        let released = left(&["stackcheck-claim-host_port_80_tcp"], &[]);
        assert!(!is_stuck(&released, STUCK_AFTER + 5));
    }
}
