//! What a stack showed while it ran: each service's command, healthcheck, restart policy and
//! shell, read from its container before the run tears down (`RunOptions::observe`; `mutate`
//! builds its mutants from what its baseline run showed).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::{Engine, Watching, LABEL_SERVICE};

/// What the unmutated stack showed of one running service: what the compose files alone do not
/// say (the image's command and healthcheck, whether it has a shell to wrap its command with).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    /// The container's entrypoint as it ran (the compose file's, else the image's).
    pub entrypoint: Vec<String>,
    /// The container's command as it ran.
    pub cmd: Vec<String>,
    /// It had a healthcheck (the compose file's or the image's).
    pub healthcheck: bool,
    /// Its restart policy's name (`no` when none).
    pub restart: String,
    /// `sh` and `sleep` run in it: an idle or exiting command can be put in its place.
    pub shell: bool,
    /// The variables its image sets (`ENV`).
    pub image_env: BTreeMap<String, String>,
}

/// Where a run leaves its services' facts (`RunOptions::observe`).
#[derive(Clone, Debug, Default)]
pub struct Observed(Arc<Mutex<BTreeMap<String, ServiceFacts>>>);

impl Observed {
    /// The facts gathered so far (empty before the run reached its teardown).
    pub fn facts(&self) -> BTreeMap<String, ServiceFacts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads every running container of `project`.
    pub async fn fill(&self, engine: &Engine, project: &str) {
        let Ok(containers) = engine.project_containers(project).await else {
            return;
        };
        let mut facts = BTreeMap::new();
        for c in containers {
            let Some(id) = c.id else { continue };
            let Ok(info) = engine.inspect(&id).await else {
                continue;
            };
            let running = info.state.as_ref().and_then(|s| s.running) == Some(true);
            let restart = Engine::restart_policy(&info);
            let config = info.config.unwrap_or_default();
            let Some(service) = config
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE))
                .cloned()
            else {
                continue;
            };
            let test = config.healthcheck.and_then(|h| h.test).unwrap_or_default();
            // An idle or exiting command is a shell script: without `sh` and `sleep` in the
            // image those mutants would fail to start for a reason no promise is about.
            let probe = ["sh", "-c", "command -v sleep"].map(String::from);
            let shell = running
                && engine
                    .exec(
                        &id,
                        &probe,
                        None,
                        Duration::from_secs(10),
                        &Watching::default(),
                    )
                    .await
                    .is_ok_and(|out| out.exit == 0);
            // The image's own variables: removing one the compose file sets to the same value
            // changes nothing (an equivalent mutant, which no suite could kill).
            let image_env = match info.image.as_deref() {
                Some(image) => engine.image(image).await.ok().flatten(),
                None => None,
            }
            .and_then(|i| i.config?.env)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
            facts.insert(
                service,
                ServiceFacts {
                    image_env,
                    entrypoint: config.entrypoint.unwrap_or_default(),
                    cmd: config.cmd.unwrap_or_default(),
                    healthcheck: !test.is_empty() && test[0] != "NONE",
                    restart,
                    shell,
                },
            );
        }
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = facts;
    }
}
