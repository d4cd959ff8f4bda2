//! What the answer of a check must be (`expect:`), and how long a check polls (`retry:`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::Dur;

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// What the answer of a check must be.
pub struct Expect {
    /// HTTP status (default: any 2xx).
    #[serde(default)]
    pub(crate) status: Option<u16>,
    /// Body substring, or `/regex/`.
    #[serde(default)]
    pub(crate) body: Option<String>,
    /// Substring or `/regex/` the body must not match.
    #[serde(default)]
    pub(crate) body_excludes: Option<String>,
    /// The JSON body contains these keys with these values.
    #[serde(default)]
    pub(crate) json: Option<serde_json::Value>,
    /// Response headers (name case-insensitive): exact text, or `/regex/`.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// RFC 9535 JSONPath → value: every node the path selects equals the value, or (a `/regex/`
    /// string) matches it; a path that selects nothing fails.
    #[serde(default)]
    pub(crate) jsonpath: BTreeMap<String, serde_json::Value>,
    /// Exit code of an exec or run (default 0).
    #[serde(default)]
    pub(crate) exit: Option<i64>,
    /// Substring or `/regex/` that stdout must match.
    #[serde(default)]
    pub(crate) stdout: Option<String>,
    /// Substring or `/regex/` that stdout must not match.
    #[serde(default)]
    pub(crate) stdout_excludes: Option<String>,
    #[serde(default)]
    pub(crate) stderr: Option<String>,
    /// Substring or `/regex/` that stderr must not match.
    #[serde(default)]
    pub(crate) stderr_excludes: Option<String>,
    /// The response (or the command) took at most this long.
    #[serde(default)]
    pub(crate) within: Option<Dur>,
    /// Host globs (relative to the suite; `{suite_dir}` allowed) that must match a file written
    /// during the run.
    #[serde(default)]
    pub(crate) files: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Polling: keep trying a check until it holds or the budget ends.
pub struct Retry {
    /// Keep polling until the check holds or this budget ends.
    #[serde(rename = "for")]
    pub(crate) for_: Dur,
    #[serde(default)]
    pub(crate) every: Option<Dur>,
}
