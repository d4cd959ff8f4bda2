//! The one suite loader every command uses: the suite's own rules, then what needs its test names
//! (`quarantine:` entries must name tests); and the compose model the checks made before anything
//! starts share, resolved once per process.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use crate::engine::{ComposeError, ComposeModel, CONFIG_TIMEOUT};
use crate::suite::{LoadedSuite, SuiteError};

/// Reads a suite file and checks what needs its test names too (`quarantine:` entries must name
/// tests). Every command loads suites through this.
pub fn load_file(path: &std::path::Path) -> Result<LoadedSuite, SuiteError> {
    let loaded = crate::suite::read_file(path)?;
    super::check_quarantine(&loaded)?;
    Ok(loaded)
}

/// [`load_file`], then the suites a run of it is: one per `stack.variants` entry
/// (`<suite>@<variant>`), or the suite itself.
pub fn load_runs(path: &std::path::Path) -> Result<Vec<LoadedSuite>, SuiteError> {
    load_file(path)?.runs()
}

/// The compose model of a suite for the checks made before anything starts, resolved once per
/// process: `validate` and `run` both need it for both. The project name in it is arbitrary; a
/// run resolves its own model with its project.
pub async fn static_model(loaded: &LoadedSuite) -> Result<ComposeModel, ComposeError> {
    // By file and id: the variants of one file are different stacks.
    type Key = (std::path::PathBuf, String);
    type Models = Mutex<BTreeMap<Key, Result<ComposeModel, ComposeError>>>;
    static MODELS: OnceLock<Models> = OnceLock::new();
    let models = MODELS.get_or_init(Default::default);
    if let Some(m) = models
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(loaded.path.clone(), loaded.suite.id.clone()))
    {
        return m.clone();
    }
    let m = super::static_compose(loaded)
        .config_static(true, CONFIG_TIMEOUT)
        .await;
    models
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((loaded.path.clone(), loaded.suite.id.clone()), m.clone());
    m
}
