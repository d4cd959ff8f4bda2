//! Secret values never leave a run: env-file values, `stack.secrets` and variables whose names
//! look secret (in the suite, in `stack.containers` and in the compose model's `environment`)
//! are replaced by `****` in every message, detail, log excerpt and progress line.

use std::sync::{Arc, RwLock};

use super::Outcome;
use super::Progress;
use crate::engine::ComposeModel;
use crate::suite::{looks_secret, url_passwords, LoadedSuite};

/// Shorter values would mask ordinary words; they are not treated as secrets.
const MIN_SECRET_LEN: usize = 5;

/// The secrets of one run. Clones share the list: values learnt later (from the compose model)
/// reach every holder.
///
/// A value that is also a word of the stack's own vocabulary — a service, network or volume name,
/// or a word of a test name (`POSTGRES_PASSWORD: postgres` beside a `postgres_data` volume) — is
/// published by every test name and cannot be hidden; it is not masked (`policy:
/// no_default_credentials` is what flags such passwords).
#[derive(Clone, Debug, Default)]
pub struct Masker {
    values: Arc<RwLock<Vec<String>>>,
    vocabulary: Arc<RwLock<Vec<String>>>,
}

/// The words of a name: runs of letters and digits.
pub fn words(name: &str) -> impl Iterator<Item = &str> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

impl Masker {
    /// A masker for these secret values.
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        let m = Masker::default();
        m.add(values);
        m
    }

    /// Adds secret values. Pure numbers (ports, counts) are never secrets: masking them would
    /// garble every report.
    pub fn add(&self, values: impl IntoIterator<Item = String>) {
        let vocabulary = self.vocabulary.read().unwrap_or_else(|e| e.into_inner());
        let mut all = self.values.write().unwrap_or_else(|e| e.into_inner());
        all.extend(values.into_iter().filter(|v| {
            v.len() >= MIN_SECRET_LEN
                && !v.chars().all(|c| c.is_ascii_digit())
                && !vocabulary.contains(v)
        }));
        // Longest first, so a secret that contains another is masked whole.
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
    }

    /// Values in the stack's vocabulary are not (or no longer) masked.
    pub fn exempt(&self, names: impl IntoIterator<Item = String>) {
        let mut vocabulary = self.vocabulary.write().unwrap_or_else(|e| e.into_inner());
        vocabulary.extend(names);
        let mut all = self.values.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|v| !vocabulary.contains(v));
    }

    /// The secrets of a suite: its env file's values, `stack.secrets` and secret-looking variables.
    pub fn for_suite(loaded: &LoadedSuite) -> Masker {
        let masker = Masker::default();
        masker.exempt(
            crate::plan::tests(&loaded.suite)
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
    pub fn add_model(&self, model: &ComposeModel, secrets: &[String]) {
        let environment = || model.services.values().flat_map(|s| &s.environment);
        self.add(
            environment()
                .filter(|(k, _)| looks_secret(k) || secrets.contains(k))
                .filter_map(|(_, v)| v.clone()),
        );
        self.add(
            environment()
                .filter_map(|(_, v)| v.as_deref())
                .flat_map(url_passwords)
                .map(str::to_string),
        );
        self.exempt(
            model
                .services
                .keys()
                .chain(model.networks.keys())
                .chain(model.volumes.keys())
                .cloned(),
        );
    }

    /// `text` with every secret value replaced by `****`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.read().unwrap_or_else(|e| e.into_inner()).iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "****");
            }
        }
        out
    }
}

/// Progress that masks every phase and work line before it reaches the real one, and names the
/// suite in each phase (suites may run at the same time).
pub struct Masked<'a> {
    /// Where the masked progress goes.
    pub inner: &'a dyn Progress,
    /// What it masks.
    pub masker: Masker,
    /// `suite: `
    pub prefix: String,
}

impl Progress for Masked<'_> {
    fn phase(&self, msg: &str) {
        let msg = self.masker.mask(msg);
        if msg.starts_with(&self.prefix) {
            self.inner.phase(&msg);
        } else {
            self.inner.phase(&format!("{}{msg}", self.prefix));
        }
    }
    fn detail(&self, msg: &str) {
        self.inner.detail(&self.masker.mask(msg));
    }
    /// Outcomes arrive masked: `Runner::record` masks each once, for the report and the console.
    fn outcome(&self, outcome: &Outcome) {
        self.inner.outcome(outcome);
    }
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
    fn masks_every_occurrence_longest_first() {
        let m = Masker::new([
            "hunter22".to_string(),
            "hunter22-extra".to_string(),
            "ab".to_string(),
            "8000".to_string(),
        ]);
        assert_eq!(
            m.mask("pw=hunter22-extra and hunter22, ab on 8000"),
            "pw=**** and ****, ab on 8000"
        );
    }

    #[test]
    fn values_added_later_reach_every_clone() {
        let m = Masker::new(["first-secret".to_string()]);
        let shared = m.clone();
        m.add(["later-secret".to_string()]);
        assert_eq!(shared.mask("first-secret later-secret"), "**** ****");
    }

    #[test]
    fn words_of_the_stack_are_not_masked() {
        let m = Masker::default();
        m.exempt(words("keeper::volume::postgres_data").map(str::to_string));
        m.add(["postgres".to_string(), "s3cr3t-pw".to_string()]);
        assert_eq!(m.mask("postgres pw s3cr3t-pw"), "postgres pw ****");
    }

    #[test]
    fn env_file_values_skip_comments() {
        let v = env_file_values("# c\nA=1234\n\nB=\"quoted value\"\n");
        assert_eq!(v, ["1234", "quoted value"]);
    }
}
