//! The checks stage: proving each promise against the compose model and the live stack.
//!
//! Every check yields a [`Verdict`] with a one-line message (what was expected, what was seen)
//! and, on failure, a detail block (health-check output, log lines) for reports. Which module
//! proves which kind of check is decided here, in [`check_kind`]: service promises
//! (`service`, `state`), images (`image`), networks and volumes (`topology`), smoke checks
//! (`smoke`), network isolation and reach through helper containers (`net`), behaviour over time
//! (`scenario`), the static rules (`policy`), and where probes may connect (`home`).

mod canary;
mod expect;
mod home;
mod http;
mod image;
mod judge;
mod listen;
mod net;
pub mod policy;
mod replicas;
mod scenario;
mod service;
mod smoke;
pub mod state;
mod topology;

pub use image::check_image;
pub use service::check_service;
pub use smoke::names_a_documented_port;
pub use topology::{check_config, check_network, check_volume};

mod ctx;
mod verdict;

pub use ctx::Ctx;
pub use http::Clients as HttpClients;
pub use verdict::{with_retry, Verdict};

use std::time::Duration;

use crate::suite::{Check, CheckKind, Expect, Retry};

/// How often a check with `retry: { for }` and no `every` tries again.
const DEFAULT_EVERY: Duration = Duration::from_millis(500);

/// Proves one entry of the suite's `checks:`.
pub async fn check(ctx: &Ctx<'_>, check: &Check) -> Verdict {
    check_kind(ctx, &check.kind, &check.expect, check.retry.as_ref()).await
}

/// Runs one check kind (a check, or a step of a scenario) with its expectations and retry budget;
/// a failure carries the diagnostics (health-check log, last log lines) of the service it is about.
pub(crate) async fn check_kind(
    ctx: &Ctx<'_>,
    kind: &CheckKind,
    expect: &Expect,
    retry: Option<&Retry>,
) -> Verdict {
    let budget = retry.map(|r| (r.for_.0, r.every.map(|e| e.0).unwrap_or(DEFAULT_EVERY)));
    let waits_on = needs_running(kind);
    let verdict = with_retry(
        budget,
        || attempt(ctx, kind, expect),
        || ended_for_good(ctx, &waits_on),
    )
    .await;
    if verdict.passed || !verdict.detail.is_empty() {
        return verdict;
    }
    match kind.service() {
        Some(s) => {
            let d = ctx.diagnostics(s).await;
            verdict.with_detail(d)
        }
        None => verdict,
    }
}

/// The services whose running container a check kind answers from: when one of them has ended
/// for good, no later try can pass. (`state` may want one ended, `isolated` and `run` start
/// their own, `from_host` runs only its image, and a scenario's steps stop and start services.)
fn needs_running(kind: &CheckKind) -> Vec<String> {
    match kind {
        CheckKind::Http(_)
        | CheckKind::Tcp(_)
        | CheckKind::Exec(_)
        | CheckKind::Reach(_)
        | CheckKind::Logs(_) => kind.services(),
        _ => Vec::new(),
    }
}

/// Why one of `services` will not run again by itself, if one will not (see
/// [`judge::ended_for_good`]): a terminal cause ends a retry at once.
async fn ended_for_good(ctx: &Ctx<'_>, services: &[String]) -> Option<String> {
    for service in services {
        let Ok(id) = ctx.container(service) else {
            continue;
        };
        if let Ok(info) = ctx.engine.inspect(&id).await {
            if let Some(why) = judge::ended_for_good(service, &info) {
                return Some(why);
            }
        }
    }
    None
}

/// One try of a check kind, by the module that proves it.
async fn attempt(ctx: &Ctx<'_>, kind: &CheckKind, expect: &Expect) -> Verdict {
    match kind {
        CheckKind::Http(p) => http::http(ctx, p, expect).await,
        CheckKind::Tcp(p) => smoke::tcp(ctx, p).await,
        CheckKind::Exec(p) => smoke::exec(ctx, p, expect).await,
        CheckKind::FromHost(p) => smoke::from_host(ctx, p, expect).await,
        CheckKind::Files(paths) => smoke::files(ctx, paths),
        CheckKind::Reach(p) => net::check_reach(ctx, p).await,
        CheckKind::Isolated(p) => net::check_isolated(ctx, &p.service).await,
        CheckKind::Logs(p) => scenario::check_logs(ctx, p).await,
        CheckKind::Run(p) => scenario::check_run(ctx, p, expect).await,
        CheckKind::State(p) => scenario::check_state(ctx, p).await,
        CheckKind::Steps(steps) => scenario::check_steps(ctx, steps).await,
    }
}
