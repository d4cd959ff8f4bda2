//! `stack.variants`: one suite over variants of its stack. Each variant is a suite of its own,
//! `<suite>@<variant>`, made before anything else sees it: its compose files are the suite's with
//! the variant's appended, its env file the variant's (if it names one), its env the suite's with
//! the variant's merged over it. Test names, labels, projects, claims and reports follow from the
//! id, so every later stage treats a variant as the suite it is.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::{LoadedSuite, SuiteError};

/// How one variant differs from the stack as written; `{}` is the stack as written.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Compose files appended to `stack.compose` (relative to the suite).
    #[serde(default)]
    pub(crate) compose: Vec<String>,
    /// Replaces `stack.env_file`.
    #[serde(default)]
    pub(crate) env_file: Option<String>,
    /// Merged over `stack.env`.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
}

/// A variant's name: what follows `@` in its test names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VariantName(pub String);

impl<'de> Deserialize<'de> for VariantName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if ok {
            Ok(VariantName(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "variant name `{s}`: expected letters, digits, `_`, `-` or `.` (at most 40); it becomes part of every test name"
            )))
        }
    }
}

impl JsonSchema for VariantName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VariantName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[A-Za-z0-9_.-]{1,40}$" })
    }
}

impl fmt::Display for VariantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl LoadedSuite {
    /// The suites a run of this one is: itself without variants, else one per variant
    /// (`<suite>@<variant>`), each with its files checked.
    pub fn runs(&self) -> Result<Vec<LoadedSuite>, SuiteError> {
        let variants = &self.suite.stack.variants;
        if variants.is_empty() {
            return Ok(vec![self.clone()]);
        }
        let mut out = Vec::new();
        for (name, v) in variants {
            let mut run = self.clone();
            let stack = &mut run.suite.stack;
            stack.variants.clear();
            stack.compose.extend(v.compose.iter().cloned());
            if v.env_file.is_some() {
                stack.env_file = v.env_file.clone();
            }
            stack
                .env
                .extend(v.env.iter().map(|(k, val)| (k.clone(), val.clone())));
            run.suite.id = format!("{}@{name}", self.suite.id);
            super::rules::files_exist(&run).map_err(|e| e.in_variant(name))?;
            out.push(run);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn each_variant_appends_compose_replaces_env_file_and_merges_env() {
        let loaded = crate::suite::load_str(
            Path::new("s.yaml"),
            "suite: db\nstack:\n  compose: [c.yml]\n  env_file: base.env\n  env: { A: '1', B: '2' }\n  variants:\n    pg14: {}\n    pg15: { compose: [pg15.yml], env_file: pg15.env, env: { B: '3' } }\n",
        )
        .unwrap();
        // Files are not there: expansion says which variant names the missing one.
        let err = loaded.runs().unwrap_err().to_string();
        assert!(
            err.contains("variant `pg14`") && err.contains("c.yml"),
            "{err}"
        );
        let mut loaded = loaded;
        loaded.dir = std::env::temp_dir().join(format!("sc-variants-{}", std::process::id()));
        std::fs::create_dir_all(&loaded.dir).unwrap();
        for f in ["c.yml", "base.env", "pg15.yml", "pg15.env"] {
            std::fs::write(loaded.dir.join(f), "").unwrap();
        }
        let runs = loaded.runs().unwrap();
        let _ = std::fs::remove_dir_all(&loaded.dir);
        let ids: Vec<&str> = runs.iter().map(|r| r.suite.id.as_str()).collect();
        assert_eq!(ids, ["db@pg14", "db@pg15"]);
        let (a, b) = (&runs[0].suite.stack, &runs[1].suite.stack);
        assert_eq!(a.compose, ["c.yml"]);
        assert_eq!(a.env_file.as_deref(), Some("base.env"));
        assert_eq!(b.compose, ["c.yml", "pg15.yml"]);
        assert_eq!(b.env_file.as_deref(), Some("pg15.env"));
        assert_eq!(b.env["A"], "1");
        assert_eq!(b.env["B"], "3");
        assert!(runs.iter().all(|r| r.suite.stack.variants.is_empty()));
    }
}
