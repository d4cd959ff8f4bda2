//! The masking rule: one rule for every writer. A secret value is replaced by `****` wherever a
//! run writes text — console lines, test names, messages, details, JUnit, JSON, the summary, the
//! logs directory — or, when it cannot be hidden without destroying the output, nowhere, and a
//! policy finding says so once. Which values are a run's secrets is the plan's to say
//! (`plan::masker`); this module holds them and applies the rule.
//!
//! ```
//! use stackcheck::mask::{Masker, Secret, Unmaskable};
//!
//! let masker = Masker::default();
//! masker.exempt(["db".to_string(), "postgres:15-alpine".to_string()]);
//! masker.add([
//!     Secret::named("SQL_PASSWORD", "hello_django"),
//!     Secret::named("POSTGRES_PASSWORD", "postgres"),
//! ]);
//! assert_eq!(masker.mask("db hello_django_dev on postgres:15-alpine"), "db ****_dev on postgres:15-alpine");
//! assert_eq!(masker.unmaskable()[0].1, Unmaskable::Common("postgres".into()));
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Shorter values would mask ordinary words: they cannot be secrets a report hides.
pub const MIN_SECRET_LEN: usize = 6;

/// A secret value and the variable it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The variable's name (`SQL_PASSWORD`).
    pub var: String,
    /// Its value.
    pub value: String,
    /// Named as a secret (a secret-looking name, or listed in `stack.secrets`): a value of it the
    /// rule cannot hide is a finding. Other env-file values are masked when they can be, silently
    /// not when they cannot (`DEBUG=1`).
    pub named: bool,
}

impl Secret {
    /// The value of a variable named as a secret.
    pub fn named(var: &str, value: &str) -> Secret {
        Secret {
            var: var.into(),
            value: value.into(),
            named: true,
        }
    }

    /// A value masked because of where it came from (an env file), not because of its name.
    pub fn unnamed(var: &str, value: &str) -> Secret {
        Secret {
            named: false,
            ..Secret::named(var, value)
        }
    }
}

/// Why a secret value is printed as it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unmaskable {
    /// Under [`MIN_SECRET_LEN`] characters.
    Short,
    /// Only digits: masking it would hide every port and count.
    Number,
    /// A word of the stack's own names (a service, an image, a network, a volume): every test
    /// name and image line prints it.
    Common(String),
}

impl std::fmt::Display for Unmaskable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmaskable::Short => write!(f, "under {MIN_SECRET_LEN} characters"),
            Unmaskable::Number => write!(f, "a number"),
            Unmaskable::Common(word) => write!(f, "the same as `{word}`, a name in the stack"),
        }
    }
}

/// The secrets of one run. Clones share them: values learnt later (from the compose model)
/// reach every holder.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    rules: Arc<RwLock<Rules>>,
}

#[derive(Debug, Default)]
struct Rules {
    /// Masked values, longest first (a secret that contains another is masked whole).
    masked: Vec<String>,
    /// Every secret added, by value, with its variables.
    secrets: Vec<Secret>,
    /// Words of the stack's own names.
    vocabulary: Vec<String>,
}

/// The words of a name: runs of letters and digits.
pub fn words(name: &str) -> impl Iterator<Item = &str> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Why `value` cannot be masked among these words, if it cannot.
pub fn unmaskable(value: &str, vocabulary: &[String]) -> Option<Unmaskable> {
    if value.chars().count() < MIN_SECRET_LEN {
        Some(Unmaskable::Short)
    } else if value.chars().all(|c| c.is_ascii_digit()) {
        Some(Unmaskable::Number)
    } else {
        vocabulary
            .iter()
            .find(|w| w.eq_ignore_ascii_case(value))
            .map(|w| Unmaskable::Common(w.clone()))
    }
}

impl Rules {
    fn rebuild(&mut self) {
        let mut masked: Vec<String> = self
            .secrets
            .iter()
            .filter(|s| unmaskable(&s.value, &self.vocabulary).is_none())
            .map(|s| s.value.clone())
            .collect();
        masked.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        masked.dedup();
        self.masked = masked;
    }
}

impl Masker {
    /// A masker for these secrets.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Masker {
        let m = Masker::default();
        m.add(secrets);
        m
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rules> {
        self.rules.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds secrets (an empty value is none).
    pub fn add(&self, secrets: impl IntoIterator<Item = Secret>) {
        let mut rules = self.write();
        for s in secrets.into_iter().filter(|s| !s.value.is_empty()) {
            if !rules.secrets.contains(&s) {
                rules.secrets.push(s);
            }
        }
        rules.rebuild();
    }

    /// Names of the stack (services, images, networks, volumes): a secret equal to one of them
    /// or to one of their words cannot be hidden.
    pub fn exempt(&self, names: impl IntoIterator<Item = String>) {
        let mut rules = self.write();
        for name in names {
            let all = std::iter::once(name.as_str()).chain(words(&name));
            let new: Vec<String> = all
                .filter(|w| !rules.vocabulary.iter().any(|v| v == w))
                .map(str::to_string)
                .collect();
            rules.vocabulary.extend(new);
        }
        rules.rebuild();
    }

    /// `text` with every secret value replaced by `****`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.read().masked {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "****");
            }
        }
        out
    }

    /// Variables named as secrets whose value no output hides, with why: each said once, as a
    /// policy finding.
    pub fn unmaskable(&self) -> Vec<(String, Unmaskable)> {
        let rules = self.read();
        let mut out: BTreeMap<String, Unmaskable> = BTreeMap::new();
        for s in rules.secrets.iter().filter(|s| s.named) {
            if let Some(why) = unmaskable(&s.value, &rules.vocabulary) {
                out.entry(s.var.clone()).or_insert(why);
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::named("PW", v)).collect()
    }

    #[test]
    fn masks_every_occurrence_longest_first() {
        let m = Masker::new(named(&["hunter22", "hunter22-extra", "abcde", "800000"]));
        assert_eq!(
            m.mask("pw=hunter22-extra and hunter22, abcde on 800000"),
            "pw=**** and ****, abcde on 800000"
        );
    }

    #[test]
    fn values_added_later_reach_every_clone() {
        let m = Masker::new(named(&["first-secret"]));
        let shared = m.clone();
        m.add(named(&["later-secret"]));
        assert_eq!(shared.mask("first-secret later-secret"), "**** ****");
    }

    #[test]
    fn a_secret_inside_another_value_is_masked_there_too() {
        let m = Masker::new([Secret::unnamed("SQL_PASSWORD", "hello_django")]);
        assert_eq!(
            m.mask("db hello_django_dev::checks::user hello_django"),
            "db ****_dev::checks::user ****"
        );
    }

    #[test]
    fn names_of_the_stack_are_never_masked_and_their_secrets_are_findings() {
        let m = Masker::default();
        m.add([
            Secret::named("POSTGRES_PASSWORD", "postgres"),
            Secret::named("SHORT_TOKEN", "abc"),
            Secret::named("PIN_PASSWORD", "12345678"),
            Secret::unnamed("DEBUG", "1"),
            Secret::named("API_TOKEN", "s3cr3t-pw"),
        ]);
        // Learnt after the secrets: what was masked before is no longer masked anywhere.
        m.exempt([
            "postgres:15-alpine".to_string(),
            "postgres_data".to_string(),
        ]);
        assert_eq!(
            m.mask("postgres:15-alpine pw s3cr3t-pw abc"),
            "postgres:15-alpine pw **** abc"
        );
        assert_eq!(
            m.unmaskable(),
            [
                ("PIN_PASSWORD".to_string(), Unmaskable::Number),
                (
                    "POSTGRES_PASSWORD".to_string(),
                    Unmaskable::Common("postgres".into())
                ),
                ("SHORT_TOKEN".to_string(), Unmaskable::Short),
            ]
        );
        assert_eq!(
            Unmaskable::Common("postgres".into()).to_string(),
            "the same as `postgres`, a name in the stack"
        );
    }
}
