//! `policy:` — release-gate rules and their levels, as written in a suite.
//! The rules themselves are evaluated in `checks::policy` on the resolved compose model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    #[default]
    Off,
}

/// Each rule is `error` (fails the test), `warn` (passes with a note) or `off` (no test).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// No service image is `:latest` or untagged.
    #[serde(default)]
    pub no_latest_tags: Level,
    /// Every long-running service (not a one-shot `restart: "no"` job) has a healthcheck.
    #[serde(default)]
    pub healthcheck_on_long_running: Level,
    /// No default or literal credentials in the compose files (passwords must come from variables).
    #[serde(default)]
    pub no_default_credentials: Level,
    /// Database ports are not published on all interfaces.
    #[serde(default)]
    pub databases_not_on_all_interfaces: Level,
    /// Every service has memory and CPU limits.
    #[serde(default)]
    pub resource_limits: Level,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    NoLatestTags,
    HealthcheckOnLongRunning,
    NoDefaultCredentials,
    DatabasesNotOnAllInterfaces,
    ResourceLimits,
}

impl Rule {
    pub const ALL: [Rule; 5] = [
        Rule::NoLatestTags,
        Rule::HealthcheckOnLongRunning,
        Rule::NoDefaultCredentials,
        Rule::DatabasesNotOnAllInterfaces,
        Rule::ResourceLimits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::NoLatestTags => "no_latest_tags",
            Rule::HealthcheckOnLongRunning => "healthcheck_on_long_running",
            Rule::NoDefaultCredentials => "no_default_credentials",
            Rule::DatabasesNotOnAllInterfaces => "databases_not_on_all_interfaces",
            Rule::ResourceLimits => "resource_limits",
        }
    }
}

impl Policy {
    pub fn level(&self, rule: Rule) -> Level {
        match rule {
            Rule::NoLatestTags => self.no_latest_tags,
            Rule::HealthcheckOnLongRunning => self.healthcheck_on_long_running,
            Rule::NoDefaultCredentials => self.no_default_credentials,
            Rule::DatabasesNotOnAllInterfaces => self.databases_not_on_all_interfaces,
            Rule::ResourceLimits => self.resource_limits,
        }
    }

    /// Rules that yield a test, in a fixed order.
    pub fn active(&self) -> Vec<(Rule, Level)> {
        Rule::ALL
            .into_iter()
            .map(|r| (r, self.level(r)))
            .filter(|(_, l)| *l != Level::Off)
            .collect()
    }
}
