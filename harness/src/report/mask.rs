//! Secret values never leave a run: env-file values, `stack.secrets` and variables whose names
//! look secret are replaced by `****` in every message, detail and log excerpt.

use crate::suite::LoadedSuite;

const SECRET_NAME_PARTS: [&str; 5] = ["PASSWORD", "TOKEN", "SECRET", "KEY", "PASSWD"];
/// Shorter values would mask ordinary words; they are not treated as secrets.
const MIN_SECRET_LEN: usize = 5;

#[derive(Clone, Debug, Default)]
pub struct Masker {
    values: Vec<String>,
}

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        // Pure numbers (ports, counts) are never secrets and masking them would garble every report.
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN && !v.chars().all(|c| c.is_ascii_digit()))
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker { values }
    }

    pub fn for_suite(loaded: &LoadedSuite) -> Masker {
        let stack = &loaded.suite.stack;
        let mut values = Vec::new();
        if let Some(f) = &stack.env_file {
            if let Ok(text) = std::fs::read_to_string(loaded.dir.join(f)) {
                values.extend(env_file_values(&text));
            }
        }
        let looks_secret = |k: &str| {
            let k = k.to_ascii_uppercase();
            SECRET_NAME_PARTS.iter().any(|p| k.contains(p))
        };
        for (k, v) in &stack.env {
            if stack.secrets.contains(k) || looks_secret(k) {
                values.push(v.clone());
            }
        }
        for k in &stack.secrets {
            if let Ok(v) = std::env::var(k) {
                values.push(v);
            }
        }
        Masker::new(values)
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "****");
            }
        }
        out
    }
}

/// Values of `KEY=value` lines (comments and blanks skipped, surrounding quotes removed).
pub fn env_file_values(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
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
    fn env_file_values_skip_comments() {
        let v = env_file_values("# c\nA=1234\n\nB=\"quoted value\"\n");
        assert_eq!(v, ["1234", "quoted value"]);
    }
}
