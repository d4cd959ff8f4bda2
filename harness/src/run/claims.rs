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
use crate::engine::{ComposeModel, LABEL_RUN};

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
    let mut claims = super::schedule::claims_of(model, &text, &model.name, r.ephemeral);
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
    for what in claims {
        loop {
            let held = r.engine.claim(what, labels, &images).await;
            match held.map_err(|e| Stop::Infra(e.to_string()))? {
                Some(run) if Some(&run) != own => {
                    let holder = format!("stackcheck run {run} holds it");
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
