//! Which values are a run's secrets: env-file values, `stack.secrets` and variables whose names
//! look secret (in the suite, in `stack.containers` and in the compose model's `environment`).
//! The rule that hides them is [`crate::mask`].

use crate::engine::ComposeModel;
use crate::mask::{words, Masker};
use crate::suite::{looks_secret, url_passwords, LoadedSuite};

/// The secrets of a suite: its env file's values, `stack.secrets` and secret-looking variables.
pub fn masker(loaded: &LoadedSuite) -> Masker {
    let masker = Masker::default();
    masker.exempt(
        super::tests(&loaded.suite)
            .iter()
            .flat_map(|t| words(&t.name).map(str::to_string).collect::<Vec<_>>()),
    );
    let stack = &loaded.suite.stack;
    let mut values = Vec::new();
    if let Some(f) = &stack.env_file {
        if let Ok(text) = std::fs::read_to_string(loaded.dir.join(f)) {
            values.extend(env_file_values(&text));
        }
    }
    let envs = std::iter::once(&stack.env).chain(stack.containers.values().map(|c| &c.env));
    for env in envs {
        for (k, v) in env {
            if stack.secrets.contains(k) || looks_secret(k) {
                values.push(v.clone());
            }
            values.extend(url_passwords(v).into_iter().map(str::to_string));
        }
    }
    for k in &stack.secrets {
        if let Ok(v) = std::env::var(k) {
            values.push(v);
        }
    }
    // Secret variables a request sends, wherever they came from (the process environment too).
    values.extend(crate::suite::request_secrets(loaded));
    masker.add(values);
    masker
}

/// Secret-looking variables of every service, as compose resolved them (so values it took from
/// the process environment too), and the password of every URL in any variable; the names of
/// its services, networks and volumes join the vocabulary.
pub fn add_model_secrets(masker: &Masker, model: &ComposeModel, secrets: &[String]) {
    let environment = || model.services.values().flat_map(|s| &s.environment);
    masker.add(
        environment()
            .filter(|(k, _)| looks_secret(k) || secrets.contains(k))
            .filter_map(|(_, v)| v.clone()),
    );
    masker.add(
        environment()
            .filter_map(|(_, v)| v.as_deref())
            .flat_map(url_passwords)
            .map(str::to_string),
    );
    masker.exempt(
        model
            .services
            .keys()
            .chain(model.networks.keys())
            .chain(model.volumes.keys())
            .cloned(),
    );
}

/// Values of `KEY=value` lines (comments and blanks skipped, surrounding quotes removed).
pub fn env_file_values(text: &str) -> Vec<String> {
    crate::suite::env_file_entries(text)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_values_skip_comments() {
        let v = env_file_values("# c\nA=1234\n\nB=\"quoted value\"\n");
        assert_eq!(v, ["1234", "quoted value"]);
    }
}
