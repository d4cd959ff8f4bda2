//! Test-name globs: `--filter` (which planned tests a run keeps, and what of the stack they need,
//! so a filtered run builds and starts no more than that) and `quarantine:` (which must name tests).

use super::{tests, PlannedTest, TestKind};
use crate::suite::{nearest, Action, CheckKind, LoadedSuite, Suite, SuiteError};

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

/// Every `quarantine:` entry names at least one test of the suite (a typo would quarantine
/// nothing, silently).
pub fn check_quarantine(loaded: &LoadedSuite) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    let names: Vec<String> = tests(s).into_iter().map(|t| t.name).collect();
    for q in &s.quarantine {
        let hits = names.iter().any(|n| s.short_name_matches(&q.value, n));
        if !hits {
            let at = Some((q.referenced.line(), q.referenced.column()));
            let shorts = names
                .iter()
                .map(|n| n.split_once("::").map_or(n.as_str(), |(_, r)| r));
            let hint = nearest(&q.value, shorts)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(SuiteError::invalid(
                &loaded.path,
                at,
                format!(
                    "quarantine: `{}` names no test of this suite (names as `stackcheck list` prints them, without `{}::`){hint}",
                    q.value, s.id
                ),
            ));
        }
    }
    Ok(())
}
