//! `--filter`: which planned tests a run keeps, and what of the stack they need, so a filtered run
//! builds and starts no more than that.

use super::{tests, PlannedTest, TestKind};
use crate::suite::{Action, CheckKind, Suite};

/// Whether a test's name matches a `--filter` glob: the full name (`mt5::service::db::ports`) or
/// the name without the suite (`service::db::*`); `*` also matches across `::`.
pub fn filter_matches(pattern: &str, suite: &Suite, name: &str) -> bool {
    suite.short_name_matches(pattern, name) || crate::suite::name_glob(pattern, name)
}

/// The tests of `suite` that any of `patterns` selects (all when there are none).
pub fn select(suite: &Suite, patterns: &[String]) -> Vec<PlannedTest> {
    tests(suite)
        .into_iter()
        .filter(|t| {
            patterns.is_empty() || patterns.iter().any(|p| filter_matches(p, suite, &t.name))
        })
        .collect()
}

/// The tests a run of `suite` records: those `patterns` select, and always the run's own
/// guarantee that nothing is left behind.
pub fn select_for_run(suite: &Suite, patterns: &[String]) -> Vec<PlannedTest> {
    let mut chosen = select(suite, patterns);
    if !chosen.iter().any(|t| t.kind == TestKind::NoLeaks) {
        chosen.extend(
            tests(suite)
                .into_iter()
                .filter(|t| t.kind == TestKind::NoLeaks),
        );
    }
    chosen
}

/// What a selection of tests needs from the stack, so a filtered run builds and starts no more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Images (keys of `images:`) whose build or metadata is tested.
    pub images: std::collections::BTreeSet<String>,
    /// Whether anything must run (every selected test is static otherwise).
    pub live: bool,
    /// The services the tests name; `None`: the whole stack (networks, volumes, `down_up`, file
    /// checks, or no filter at all).
    pub services: Option<std::collections::BTreeSet<String>>,
}

impl Needs {
    /// Whether the image `tag` (a key of `images:`) must be built; `needs` of no filter is `None`.
    pub fn wants_image(needs: Option<&Needs>, tag: &str) -> bool {
        needs.is_none_or(|n| n.images.contains(tag))
    }
}

/// What `tests` need from `suite`'s stack.
pub fn needs(suite: &Suite, tests: &[PlannedTest]) -> Needs {
    let mut n = Needs {
        services: Some(Default::default()),
        ..Needs::default()
    };
    let mut whole_stack = false;
    for t in tests {
        match &t.kind {
            TestKind::StackConfig | TestKind::Policy { .. } | TestKind::NoLeaks => {}
            TestKind::Build { image } | TestKind::Image { image, .. } => {
                n.images.insert(image.clone());
            }
            TestKind::Service { service, .. } => {
                n.live = true;
                if let Some(s) = n.services.as_mut() {
                    s.insert(service.clone());
                }
            }
            TestKind::Network { .. } | TestKind::Volume { .. } => {
                n.live = true;
                whole_stack = true;
            }
            TestKind::Check { index } => {
                n.live = true;
                let kind = &suite.checks[*index].kind;
                let downs = matches!(kind, CheckKind::Steps(steps)
                    if steps.iter().any(|s| matches!(s.action, Action::DownUp)));
                let named = kind.services();
                if downs || named.is_empty() {
                    whole_stack = true;
                }
                if let Some(s) = n.services.as_mut() {
                    s.extend(named);
                }
            }
        }
    }
    if whole_stack {
        n.services = None;
    }
    n
}
