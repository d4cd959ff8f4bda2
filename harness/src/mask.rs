//! The masking rule: secret values are replaced by `****` in messages, details, log excerpts and
//! progress lines. Which values are a run's secrets is the plan's to say (`plan::masker`); this
//! module only holds them and applies the rule.

use std::sync::{Arc, RwLock};

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
}
