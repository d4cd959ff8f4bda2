//! `${VAR}` in a check's request (`http.headers`, `http.body`): a variable of the suite's
//! `stack.env`, of the process environment or of `stack.env_file`, in that order (the order in
//! which compose sees them, as the harness hands `stack.env` to compose over the process's).

use std::collections::BTreeMap;

use super::{named_secret, CheckKind, LoadedSuite, Suite};
use crate::mask::Secret;

/// Why a request template cannot be filled in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VarsError {
    /// The variable is set nowhere.
    #[error("`${{{0}}}` is set in neither `stack.env`, the environment nor the env file")]
    Unset(String),
    /// `${` is never closed.
    #[error("`${{` without its closing `}}`")]
    Unclosed,
}

/// The variables a suite's requests may use, and which of them are secret.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    env: BTreeMap<String, String>,
    file: BTreeMap<String, String>,
    secrets: Vec<String>,
}

/// A filled-in template and the secret values that went into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expanded {
    /// The text with every variable's value.
    pub text: String,
    /// The secret variables in it (to mask).
    pub secrets: Vec<Secret>,
}

impl Vars {
    /// The variables of a loaded suite (its env file read now; a missing one is an error of its own).
    pub fn of(loaded: &LoadedSuite) -> Vars {
        let stack = &loaded.suite.stack;
        let file = stack
            .env_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(loaded.dir.join(f)).ok())
            .map(|text| env_file_entries(&text).into_iter().collect())
            .unwrap_or_default();
        Vars {
            env: stack.env.clone(),
            file,
            secrets: stack.secrets.clone(),
        }
    }

    /// A variable's value and, when it is secret, as which: named so (or listed in
    /// `stack.secrets`), or unnamed but from the env file (whose values are all masked).
    fn lookup(&self, name: &str) -> Option<(String, Option<Secret>)> {
        let named = named_secret(name, &self.secrets);
        let secret = |value: &str, masked: bool| {
            masked.then(|| Secret {
                named,
                ..Secret::unnamed(name, value)
            })
        };
        if let Some(v) = self
            .env
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
        {
            let s = secret(&v, named);
            return Some((v, s));
        }
        self.file.get(name).map(|v| (v.clone(), secret(v, true)))
    }

    /// `text` with every `${VAR}` filled in (`$$` is a `$`).
    pub fn expand(&self, text: &str) -> Result<Expanded, VarsError> {
        let mut out = String::with_capacity(text.len());
        let mut secrets = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(tail) = after.strip_prefix('{') {
                let end = tail.find('}').ok_or(VarsError::Unclosed)?;
                let name = &tail[..end];
                let (value, secret) = self
                    .lookup(name)
                    .ok_or_else(|| VarsError::Unset(name.to_string()))?;
                secrets.extend(secret);
                out.push_str(&value);
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(Expanded { text: out, secrets })
    }
}

/// `NAME=value` lines of an env file (comments and blank lines skipped, quotes taken off).
pub fn env_file_entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let k = k.trim().trim_start_matches("export ").trim();
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Every request template of a check kind (a scenario's steps included), with where it is.
pub fn templates(kind: &CheckKind) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    for (at, kind) in kind.with_steps() {
        if let CheckKind::Http(h) = kind {
            let headers = h
                .headers
                .iter()
                .map(|(k, v)| (format!("http.headers.{k}"), v));
            for (key, text) in headers.chain(h.body.iter().map(|b| ("http.body".to_string(), b))) {
                out.push((format!("{at}{key}"), text.as_str()));
            }
        }
    }
    out
}

/// The secret values a suite's requests send (to be masked like any other secret).
pub fn request_secrets(loaded: &LoadedSuite) -> Vec<Secret> {
    let vars = Vars::of(loaded);
    let suite: &Suite = &loaded.suite;
    suite
        .checks
        .iter()
        .flat_map(|c| templates(&c.kind))
        .filter_map(|(_, t)| vars.expand(t).ok())
        .flat_map(|e| e.secrets)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn vars() -> Vars {
        Vars {
            env: [("REGION".to_string(), "eu-1".to_string())].into(),
            file: [
                ("API_TOKEN".to_string(), "tok-123456".to_string()),
                ("REGION".to_string(), "shadowed".to_string()),
            ]
            .into(),
            secrets: Vec::new(),
        }
    }

    #[rstest]
    #[case("Bearer ${API_TOKEN}", "Bearer tok-123456", &["tok-123456"])]
    #[case("${REGION}/x", "eu-1/x", &[])]
    #[case("cost: $$5 or $5", "cost: $5 or $5", &[])]
    #[case("plain", "plain", &[])]
    fn templates_are_filled_in(#[case] text: &str, #[case] want: &str, #[case] secrets: &[&str]) {
        let e = vars().expand(text).unwrap();
        assert_eq!(e.text, want);
        let values: Vec<&str> = e.secrets.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(values, secrets);
    }

    #[rstest]
    #[case("${SC_SURELY_UNSET_VAR}", VarsError::Unset("SC_SURELY_UNSET_VAR".into()))]
    #[case("Bearer ${API_TOKEN", VarsError::Unclosed)]
    fn bad_templates_say_why(#[case] text: &str, #[case] want: VarsError) {
        assert_eq!(vars().expand(text).unwrap_err(), want);
    }

    #[test]
    fn env_file_lines() {
        let e = env_file_entries("# c\nA=1234\n\nexport B=\"quoted value\"\n");
        assert_eq!(
            e,
            [
                ("A".to_string(), "1234".to_string()),
                ("B".to_string(), "quoted value".to_string())
            ]
        );
    }
}
