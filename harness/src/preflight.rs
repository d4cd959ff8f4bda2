//! The checks made before anything starts (`stackcheck validate`, and `run` before it contacts
//! the engine), with only the compose CLI: references to services, networks, volumes and profiles
//! that no compose file defines, and the static `policy` rules.

use std::time::Instant;

use crate::checks;
use crate::engine::{ComposeError, ComposeModel, CONFIG_TIMEOUT};
use crate::plan::{self, static_model, TestKind};
use crate::report::Outcome;
use crate::suite::{nearest, LoadedSuite, SuiteError};

/// Bad input that needs the compose model to see, found before anything starts (`validate`, and
/// `run` before it contacts the engine; needs only the compose CLI):
/// - compose files that compose itself rejects (`ports: ["notaport"]`, a `${VAR:?message}` the
///   environment does not set);
/// - a name the suite uses that the compose files do not define: a service under `services:` or
///   `stack.services`, the `service` of an image, a network under `networks:`, a volume under
///   `volumes:`, a service a check names (unless the suite's `services:` declares it), each with
///   its position and a "did you mean".
///
/// When compose cannot be run at all (missing, too slow), that is left to the run (exit 3). The
/// library's `run_suite` does not call this: a stack that lost a service fails `stack::config`.
pub async fn check_references(loaded: &LoadedSuite) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    if s.stack.compose.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&loaded.path).unwrap_or_default();
    let model = match static_model(loaded).await {
        Ok(model) => model,
        Err(ComposeError::Failed { tail, .. }) => {
            let why = tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(SuiteError::invalid(
                &loaded.path,
                key_position(&text, "stack", "compose"),
                format!("the compose files do not resolve (`docker compose config`): {why}"),
            ));
        }
        Err(_) => return Ok(()),
    };
    names_defined(loaded, &text, &model)?;
    checks_name_services(loaded, &model)
}

/// Every service, profile, network and volume the suite names outside its checks is one the
/// compose files define; the first that is not is the error, with a "did you mean".
fn names_defined(loaded: &LoadedSuite, text: &str, model: &ComposeModel) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    let services: Vec<&str> = model.services.keys().map(String::as_str).collect();
    let networks: Vec<&str> = model.networks.keys().map(String::as_str).collect();
    let volumes: Vec<&str> = model.volumes.keys().map(String::as_str).collect();
    // `label` names where the suite says it; `section` and `key` locate it in the text.
    let undefined =
        |label: &str, section: &str, key: &str, name: &str, what: &str, known: &[&str]| {
            let hint = nearest(name, known.iter().copied())
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            SuiteError::invalid(
                &loaded.path,
                key_position(text, section, key),
                format!(
                    "{label}: `{name}` is not a {what} of the compose files ({what}s: {}){hint}",
                    known.join(", ")
                ),
            )
        };
    let lost = |name: &&String| !model.services.contains_key(*name);
    if let Some(name) = s.services.keys().find(lost) {
        return Err(undefined(
            "services", "services", name, name, "service", &services,
        ));
    }
    if let Some(name) = s.stack.services.iter().find(lost) {
        let at = ("stack", "services");
        return Err(undefined(
            "stack.services",
            at.0,
            at.1,
            name,
            "service",
            &services,
        ));
    }
    let mut profiles: Vec<&str> = model
        .services
        .values()
        .flat_map(|m| &m.profiles)
        .map(String::as_str)
        .collect();
    profiles.sort();
    profiles.dedup();
    if let Some(name) = s
        .stack
        .profiles
        .iter()
        .find(|p| !profiles.contains(&p.as_str()))
    {
        return Err(undefined(
            "stack.profiles",
            "stack",
            "profiles",
            name,
            "profile",
            &profiles,
        ));
    }
    let image_services = s
        .images
        .iter()
        .filter_map(|(t, i)| Some((t, i.service.as_ref()?)));
    if let Some((tag, svc)) = image_services.clone().find(|(_, svc)| lost(svc)) {
        let label = format!("images.{tag}.service");
        return Err(undefined(&label, "images", tag, svc, "service", &services));
    }
    if let Some(name) = s.networks.keys().find(|n| !model.networks.contains_key(*n)) {
        return Err(undefined(
            "networks", "networks", name, name, "network", &networks,
        ));
    }
    if let Some(name) = s.volumes.iter().find(|n| !model.volumes.contains_key(*n)) {
        return Err(undefined(
            "volumes", "volumes", name, name, "volume", &volumes,
        ));
    }
    Ok(())
}

/// Every service a check names is defined by the compose files (or declared under `services:`).
fn checks_name_services(loaded: &LoadedSuite, model: &ComposeModel) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    let services: Vec<&str> = model.services.keys().map(String::as_str).collect();
    let unknown = |svc: &String| !s.services.contains_key(svc) && !model.services.contains_key(svc);
    for c in &s.checks {
        if let Some(svc) = c.kind.services().iter().find(|s| unknown(s)) {
            let hint = nearest(svc, services.iter().copied())
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(SuiteError::invalid(
                &loaded.path,
                Some(c.at),
                format!(
                    "check `{}`: service `{svc}` is not defined by the compose files (services: {}){hint}",
                    c.name,
                    services.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Where `key` is written in the top-level `section` of a suite's text (1-based line and column):
/// as a key (`key:` in block or flow style) or a list entry (`- key`, `[key, …]`). None when it
/// cannot be found (then the error names the file only).
fn key_position(text: &str, section: &str, key: &str) -> Option<(u64, u64)> {
    let quoted = format!(r#"(?:{k}|"{k}"|'{k}')"#, k = regex::escape(key));
    // On the section's own line (flow style), anywhere; below it, only at its children's indent.
    let flow = regex::Regex::new(&format!(r"[\s{{\[,]{quoted}\s*(?::|,|\]|\}})")).ok()?;
    let child = regex::Regex::new(&format!(r"^(?:-\s+)?{quoted}\s*(?::|$)")).ok()?;
    let mut inside = false;
    let mut indent = None;
    for (i, line) in text.lines().enumerate() {
        let at = |col: usize| Some((i as u64 + 1, col as u64 + 1));
        if !line.is_empty() && !line.starts_with([' ', '\t', '-', '#']) {
            inside = line.starts_with(&format!("{section}:"));
            indent = None;
            if inside {
                let rest = &line[section.len() + 1..];
                if let Some(m) = flow.find(rest) {
                    return at(section.len() + 2 + m.start());
                }
            }
            continue;
        }
        let trimmed = line.trim_start();
        if !inside || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = line.len() - trimmed.len();
        if *indent.get_or_insert(depth) != depth {
            continue;
        }
        if child.is_match(trimmed) {
            let dash = trimmed.len() - trimmed.trim_start_matches(['-', ' ']).len();
            return at(depth + dash);
        }
    }
    None
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
    let (model, raw) = tokio::join!(
        static_model(loaded),
        compose.config_static(false, CONFIG_TIMEOUT)
    );
    let (model, raw) = (model?, raw?);
    let masker = plan::masker(loaded);
    plan::add_model_secrets(&masker, &model, &suite.stack.secrets);
    Ok(plan::tests(suite)
        .into_iter()
        .filter_map(|t| {
            let TestKind::Policy { rule } = t.kind else {
                return None;
            };
            let t0 = Instant::now();
            let level = suite.policy.level(rule);
            let models = (&model, &raw);
            let v = checks::policy::evaluate(rule, level, suite, models, &masker, &loaded.dir);
            let mut o = v.into_outcome(&t.name, t0);
            o.mask_with(&masker);
            Some(o)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::key_position;

    #[test]
    fn keys_are_found_where_written() {
        let text = "suite: x\nstack:\n  compose: [c.yml]\nservices:\n  db: { state: healthy }\n  \"web-1\":\n    state: running\nnetworks: { back: {}, front: {} }\nvolumes:\n  - pgdata\n";
        assert_eq!(key_position(text, "services", "db"), Some((5, 3)));
        assert_eq!(key_position(text, "services", "web-1"), Some((6, 3)));
        assert_eq!(key_position(text, "networks", "front"), Some((8, 23)));
        assert_eq!(key_position(text, "volumes", "pgdata"), Some((10, 5)));
        assert_eq!(key_position(text, "stack", "compose"), Some((3, 3)));
        assert_eq!(key_position(text, "services", "nope"), None);
        assert_eq!(
            key_position(text, "services", "state"),
            None,
            "not a key of the section"
        );
    }
}
