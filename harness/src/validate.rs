//! What `stackcheck validate` (and `run`, before it starts anything) can tell beyond the suite's
//! own types: `quarantine:` entries naming no test, and, with only the compose CLI, references to
//! services that no compose file defines and the static `policy` rules. The compose model they
//! share is resolved once per process.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::checks;
use crate::engine::{ComposeError, ComposeModel, CONFIG_TIMEOUT};
use crate::plan::{self, TestKind};
use crate::report::{Masker, Outcome};
use crate::suite::{nearest, LoadedSuite, SuiteError};

/// Reads a suite file and checks what needs its test names too (`quarantine:` entries must name
/// tests). Every command loads suites through this.
pub fn load_file(path: &std::path::Path) -> Result<LoadedSuite, SuiteError> {
    let loaded = crate::suite::load_file(path)?;
    plan::check_quarantine(&loaded)?;
    Ok(loaded)
}

/// The compose model of a suite for the checks made before anything starts, resolved once per
/// process: `validate` and `run` both need it for both. The project name in it is arbitrary; a
/// run resolves its own model with its project.
pub async fn static_model(loaded: &LoadedSuite) -> Result<ComposeModel, ComposeError> {
    type Models = Mutex<BTreeMap<std::path::PathBuf, Result<ComposeModel, ComposeError>>>;
    static MODELS: OnceLock<Models> = OnceLock::new();
    let models = MODELS.get_or_init(Default::default);
    if let Some(m) = models
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&loaded.path)
    {
        return m.clone();
    }
    let m = plan::static_compose(loaded).config(CONFIG_TIMEOUT).await;
    models
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(loaded.path.clone(), m.clone());
    m
}

/// Bad input that needs the compose model to see, found before anything starts: a check naming a
/// service that neither the suite's `services:` nor the compose files define (a typo in the suite,
/// not a broken stack — a service the suite declares but the stack lost fails `stack::config`
/// instead). Needs only the compose CLI. When compose cannot resolve the files, that is left to
/// the run's `stack::config` test.
pub async fn check_references(loaded: &LoadedSuite) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    let unknown = |svc: &String| !s.services.contains_key(svc);
    if s.stack.compose.is_empty()
        || !s
            .checks
            .iter()
            .any(|c| c.kind.services().iter().any(unknown))
    {
        return Ok(());
    }
    let Ok(model) = static_model(loaded).await else {
        return Ok(());
    };
    for c in &s.checks {
        for svc in c.kind.services() {
            if unknown(&svc) && !model.services.contains_key(&svc) {
                let known = model.services.keys().map(String::as_str);
                let hint = nearest(&svc, known)
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                return Err(SuiteError::invalid(
                    &loaded.path,
                    Some(c.at),
                    format!(
                        "check `{}`: service `{svc}` is not defined by the compose files (services: {}){hint}",
                        c.name,
                        model.services.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The static `policy:` rules of a compose suite, without an engine. Err: compose could not
/// resolve the files.
pub async fn static_policy(loaded: &LoadedSuite) -> Result<Vec<Outcome>, ComposeError> {
    let suite = &loaded.suite;
    if suite.policy.active().is_empty() || suite.stack.compose.is_empty() {
        return Ok(Vec::new());
    }
    // Two compose processes at once: each costs a process start more than any work.
    let compose = plan::static_compose(loaded);
    let (model, raw) = tokio::join!(static_model(loaded), compose.config_raw(CONFIG_TIMEOUT));
    let (model, raw) = (model?, raw?);
    let masker = Masker::for_suite(loaded);
    masker.add_model(&model, &suite.stack.secrets);
    Ok(plan::tests(suite)
        .into_iter()
        .filter_map(|t| {
            let TestKind::Policy { rule } = t.kind else {
                return None;
            };
            let t0 = Instant::now();
            let level = suite.policy.level(rule);
            let v = checks::policy::evaluate(rule, level, suite, &model, &raw, &loaded.dir);
            let mut o = v.into_outcome(&t.name, t0);
            o.message = masker.mask(&o.message);
            Some(o)
        })
        .collect())
}
