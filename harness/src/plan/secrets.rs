//! Which values are a run's secrets: env-file values, `stack.secrets` and variables whose names
//! look secret (in the suite, in `stack.containers` and in the compose model's `environment`),
//! and the names of the stack that no secret can hide. The rule that hides them is
//! [`crate::mask`].

use crate::engine::ComposeModel;
use crate::mask::{Masker, Secret};
use crate::suite::{named_secret, url_passwords, LoadedSuite};

/// The secrets of a suite: its env file's values, `stack.secrets` and secret-looking variables;
/// the names it gives (services, images, networks, volumes, its id) are the stack's vocabulary.
pub fn masker(loaded: &LoadedSuite) -> Masker {
    let masker = Masker::default();
    masker.exempt(suite_names(loaded));
    let stack = &loaded.suite.stack;
    let named = |k: &str| named_secret(k, &stack.secrets);
    let mut secrets = Vec::new();
    if let Some(f) = &stack.env_file {
        if let Ok(text) = std::fs::read_to_string(loaded.dir.join(f)) {
            for (k, v) in crate::suite::env_file_entries(&text) {
                secrets.push(Secret {
                    named: named(&k),
                    ..Secret::unnamed(&k, &v)
                });
            }
        }
    }
    let envs = std::iter::once(&stack.env).chain(stack.containers.values().map(|c| &c.env));
    for env in envs {
        for (k, v) in env {
            if named(k) {
                secrets.push(Secret::named(k, v));
            }
            secrets.extend(url_passwords(v).into_iter().map(|p| Secret::named(k, p)));
        }
    }
    for k in &stack.secrets {
        if let Ok(v) = std::env::var(k) {
            secrets.push(Secret::named(k, &v));
        }
    }
    // Secret variables a request sends, wherever they came from (the process environment too).
    secrets.extend(crate::suite::request_secrets(loaded));
    masker.add(secrets);
    masker
}

/// [`masker`] and the secrets and names of the suite's compose model as written (when compose
/// can resolve it): what a run masks before it has a stack, so that the test names a listing
/// prints (`cargo nextest list`) are the names the run reports.
pub async fn static_masker(loaded: &LoadedSuite) -> Masker {
    let masker = masker(loaded);
    if !loaded.suite.stack.compose.is_empty() {
        if let Ok(model) = super::static_model(loaded).await {
            add_model_secrets(&masker, &model, &loaded.suite.stack.secrets);
        }
    }
    masker
}

/// The names a suite gives: its id, its services, images, networks, volumes and containers.
fn suite_names(loaded: &LoadedSuite) -> Vec<String> {
    let suite = &loaded.suite;
    let mut names = vec![suite.id.clone()];
    names.extend(suite.named_services());
    names.extend(suite.images.keys().cloned());
    names.extend(suite.networks.keys().cloned());
    names.extend(suite.volumes.iter().cloned());
    for (name, c) in &suite.stack.containers {
        names.push(name.clone());
        names.extend(c.image.clone());
    }
    names
}

/// Secret-looking variables of every service, as compose resolved them (so values it took from
/// the process environment and from `env_file`s too), and the password of every URL in any
/// variable; the names of its services, images, networks and volumes join the vocabulary.
pub fn add_model_secrets(masker: &Masker, model: &ComposeModel, secrets: &[String]) {
    let environment = || model.services.values().flat_map(|s| &s.environment);
    let named = |k: &str| named_secret(k, secrets);
    masker.add(
        environment()
            .filter(|(k, _)| named(k))
            .filter_map(|(k, v)| Some(Secret::named(k, v.as_deref()?))),
    );
    masker.add(environment().flat_map(|(k, v)| {
        url_passwords(v.as_deref().unwrap_or_default())
            .into_iter()
            .map(|p| Secret::named(k, p))
            .collect::<Vec<_>>()
    }));
    masker.exempt(model_names(model));
}

/// The names a compose model gives: services, their images, networks and volumes.
pub fn model_names(model: &ComposeModel) -> Vec<String> {
    let images = model.services.values().filter_map(|s| s.image.clone());
    model
        .services
        .keys()
        .chain(model.networks.keys())
        .chain(model.volumes.keys())
        .cloned()
        .chain(images)
        .collect()
}
