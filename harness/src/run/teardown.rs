//! The end of every run, whatever happened before: Ctrl-C and SIGTERM interrupt the main phase,
//! then teardown removes everything the run created and says what survived.

use std::time::Duration;

use crate::engine::{Compose, Engine, Leftovers};
pub use crate::error::TeardownError;
use crate::plan::RunIdentity;

const DOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long teardown waits for an engine that stopped answering (a restart) to come back.
const ENGINE_RETURN: Duration = Duration::from_secs(60);

/// Ctrl-C (SIGINT) or SIGTERM (what `cargo nextest` and CI runners send first): either way the
/// run stops and tears down.
pub(crate) async fn interruption() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "Ctrl-C";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

/// `down -v`, then remove anything still carrying the run's label; returns what survived.
pub async fn teardown(
    engine: &Engine,
    compose: &Compose,
    id: &RunIdentity,
) -> Result<Leftovers, TeardownError> {
    // An engine that is restarting gets a bounded chance to come back: teardown needs it.
    if engine.ping().await.is_err() {
        engine
            .wait_back(ENGINE_RETURN)
            .await
            .map_err(TeardownError::EngineGone)?;
    }
    // Anonymous volumes carry no label; note them while their containers still name them.
    let mut anonymous = Vec::new();
    if let Ok(found) = engine.labelled(&id.run_label()).await {
        for c in &found.containers {
            anonymous.extend(engine.anonymous_volumes(c).await);
        }
    }
    // Helpers (canary, probes) first: a canary still attached keeps compose from removing networks.
    let _ = engine.sweep_holding_claims(&id.run_label()).await;
    if !compose.files.is_empty() {
        // Without the override (not yet written) compose still finds the project by name.
        let mut compose = compose.clone();
        if compose.override_file.as_ref().is_some_and(|f| !f.exists()) {
            compose.override_file = None;
        }
        let _ = compose.down(DOWN_TIMEOUT).await;
    }
    let mut left = engine
        .sweep(&id.run_label())
        .await
        .map_err(TeardownError::Listing)?;
    for v in anonymous {
        if engine.volume_exists(&v).await.unwrap_or(true) && engine.remove_volume(&v).await.is_err()
        {
            left.volumes.push(format!("{v} (anonymous)"));
        }
    }
    Ok(left)
}
