//! `policy:` — release-gate rules and their levels, as written in a suite.
//! The rules themselves are evaluated in `checks::policy` on the resolved compose model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// How a rule's findings count.
pub enum Level {
    /// A finding fails the test.
    Error,
    /// A finding passes with a warning.
    Warn,
    #[default]
    /// The rule yields no test.
    Off,
}

/// Each rule is `error` (fails the test), `warn` (passes with a note) or `off` (no test).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// No service image is `:latest` or untagged.
    #[serde(default)]
    pub(crate) no_latest_tags: Level,
    /// Every long-running service (not a one-shot `restart: "no"` job) has a healthcheck.
    #[serde(default)]
    pub(crate) healthcheck_on_long_running: Level,
    /// No default or literal credentials in the compose files (passwords must come from variables).
    #[serde(default)]
    pub(crate) no_default_credentials: Level,
    /// Database ports are not published on all interfaces.
    #[serde(default)]
    pub(crate) databases_not_on_all_interfaces: Level,
    /// Every service has memory and CPU limits.
    #[serde(default)]
    pub(crate) resource_limits: Level,
    /// Every image the stack runs but does not build is pinned: by digest (`@sha256:…`) or by a
    /// full version tag (`7.2.4`, `v1.25.3-alpine`), not a moving one (`14-alpine`, `3.9-slim`).
    #[serde(default)]
    pub(crate) pinned_images: Level,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A static rule over the compose files.
pub enum Rule {
    /// `no_latest_tags`.
    NoLatestTags,
    /// `healthcheck_on_long_running`.
    HealthcheckOnLongRunning,
    /// `no_default_credentials`.
    NoDefaultCredentials,
    /// `databases_not_on_all_interfaces`.
    DatabasesNotOnAllInterfaces,
    /// `resource_limits`.
    ResourceLimits,
    /// `pinned_images`.
    PinnedImages,
}

impl Rule {
    /// Every rule, in the order reports list them.
    pub const ALL: [Rule; 6] = [
        Rule::NoLatestTags,
        Rule::HealthcheckOnLongRunning,
        Rule::NoDefaultCredentials,
        Rule::DatabasesNotOnAllInterfaces,
        Rule::ResourceLimits,
        Rule::PinnedImages,
    ];

    /// The rule's key (and test name).
    pub fn name(self) -> &'static str {
        match self {
            Rule::NoLatestTags => "no_latest_tags",
            Rule::HealthcheckOnLongRunning => "healthcheck_on_long_running",
            Rule::NoDefaultCredentials => "no_default_credentials",
            Rule::DatabasesNotOnAllInterfaces => "databases_not_on_all_interfaces",
            Rule::ResourceLimits => "resource_limits",
            Rule::PinnedImages => "pinned_images",
        }
    }
}

impl Policy {
    /// The level the suite sets for `rule`.
    pub fn level(&self, rule: Rule) -> Level {
        match rule {
            Rule::NoLatestTags => self.no_latest_tags,
            Rule::HealthcheckOnLongRunning => self.healthcheck_on_long_running,
            Rule::NoDefaultCredentials => self.no_default_credentials,
            Rule::DatabasesNotOnAllInterfaces => self.databases_not_on_all_interfaces,
            Rule::ResourceLimits => self.resource_limits,
            Rule::PinnedImages => self.pinned_images,
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
