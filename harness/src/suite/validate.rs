//! Whole-document rules that a type alone cannot express.

use std::collections::BTreeMap;

use super::{CheckKind, LoadedSuite, SuiteError};

pub(super) fn validate(loaded: &LoadedSuite, _text: &str) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    let err = |at: Option<(u64, u64)>, msg: String| Err(SuiteError::invalid(&loaded.path, at, msg));

    if !is_id(&s.suite) {
        return err(None, format!("`suite: {}` must be an id of letters, digits, `-` and `_`", s.suite));
    }
    if s.stack.compose.is_empty() {
        return err(None, "`stack.compose` needs at least one compose file".into());
    }
    let mut seen: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in &s.checks {
        if let Some(first) = seen.insert(&c.name, c.at) {
            return err(Some(c.at), format!("duplicate check name `{}` (first used at line {})", c.name, first.0));
        }
        if let CheckKind::Exec(e) = &c.kind {
            if e.cmd.is_empty() {
                return err(Some(c.at), format!("check `{}`: `exec.cmd` must not be empty", c.name));
            }
        }
        if let Some(r) = &c.retry {
            if r.every.is_some_and(|e| e.0.is_zero()) {
                return err(Some(c.at), format!("check `{}`: `retry.every` must be more than 0", c.name));
            }
        }
    }
    for (tag, image) in &s.images {
        if image.service.is_none() {
            return err(None, format!("images.{tag}: needs `service` (the compose service that builds it)"));
        }
        if let Some(size) = &image.max_size {
            if crate::checks::parse_size(size).is_none() {
                return err(None, format!("images.{tag}.max_size: invalid size `{size}` (e.g. 900MiB, 1GB)"));
            }
        }
    }
    if !s.stack.services.is_empty() {
        for name in s.services.keys() {
            if !s.stack.services.contains(name) {
                return err(None, format!("services.{name}: not in `stack.services` {:?}, so it would never start", s.stack.services));
            }
        }
    }
    Ok(())
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
