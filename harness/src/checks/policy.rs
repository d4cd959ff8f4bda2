//! Static release-gate rules (`policy:`), evaluated on the compose model alone: no engine needed,
//! so `stackcheck validate` runs them too.

use std::path::Path;

use super::Verdict;
use crate::engine::ComposeModel;
use crate::mask::Masker;
use crate::suite::{looks_secret, url_passwords, DesiredState, Level, Rule, Suite};

/// Images whose published port must not listen on every interface.
const DATABASES: [&str; 9] = [
    "postgres",
    "mysql",
    "mariadb",
    "mongo",
    "redis",
    "elasticsearch",
    "cassandra",
    "couchdb",
    "influxdb",
];
const DATABASE_PORTS: [u16; 8] = [5432, 3306, 27017, 6379, 9200, 9042, 5984, 8086];
/// Values that are someone's default, wherever they come from.
const DEFAULT_SECRETS: [&str; 10] = [
    "password",
    "postgres",
    "admin",
    "changeme",
    "secret",
    "root",
    "123456",
    "user",
    "guest",
    "mysecretpassword",
];

/// `model` is interpolated; `raw` is the same files with `${VAR}` kept (compose `--no-interpolate`);
/// `masker` holds the run's secrets (`no_default_credentials` names those no report can hide).
pub fn evaluate(
    rule: Rule,
    level: Level,
    suite: &Suite,
    (model, raw): (&ComposeModel, &ComposeModel),
    masker: &Masker,
    dir: &Path,
) -> Verdict {
    // What the suite starts: services it leaves out (or behind a profile it does not enable)
    // are not the release it gates.
    let started = model.with_dependencies(crate::plan::services_up(suite, model));
    let (model, raw) = (&model.only(&started), &raw.only(&started));
    let findings = match rule {
        Rule::NoLatestTags => latest_tags(model),
        Rule::HealthcheckOnLongRunning => missing_healthchecks(suite, model, dir),
        Rule::NoDefaultCredentials => {
            let mut found = default_credentials(model, raw);
            found.extend(unmaskable(masker));
            found
        }
        Rule::DatabasesNotOnAllInterfaces => exposed_databases(model),
        Rule::ResourceLimits => missing_limits(model),
        Rule::PinnedImages => unpinned_images(model),
    };
    if findings.is_empty() {
        return Verdict::pass(format!(
            "{}: nothing found in {} services",
            rule.name(),
            model.services.len()
        ));
    }
    let msg = format!("{}: {}", rule.name(), findings.join("; "));
    match level {
        Level::Error => Verdict::fail(msg),
        Level::Warn | Level::Off => Verdict::warn(format!("warning: {msg}")),
    }
}

fn latest_tags(model: &ComposeModel) -> Vec<String> {
    model
        .services
        .iter()
        .filter_map(|(name, s)| {
            let image = s.image.as_deref()?;
            let last = image.rsplit('/').next().unwrap_or(image);
            let tag = last
                .split_once('@')
                .map(|_| "digest")
                .or_else(|| last.split_once(':').map(|(_, t)| t));
            match tag {
                None => Some(format!("`{name}` uses `{image}` (no tag means latest)")),
                Some("latest") => Some(format!("`{name}` uses `{image}`")),
                _ => None,
            }
        })
        .collect()
}

/// Images the stack pulls (it builds none of them) that a registry may move under the same name.
fn unpinned_images(model: &ComposeModel) -> Vec<String> {
    let full_version = regex::Regex::new(r"^v?\d+\.\d+\.\d+").expect("a valid pattern");
    let built: Vec<&str> = model
        .services
        .values()
        .filter(|s| s.build.is_some())
        .filter_map(|s| s.image.as_deref())
        .collect();
    model
        .services
        .iter()
        .filter(|(_, s)| s.build.is_none())
        .filter_map(|(name, s)| {
            let image = s.image.as_deref()?;
            if built.contains(&image) || image.contains("@sha256:") {
                return None;
            }
            let last = image.rsplit('/').next().unwrap_or(image);
            match last.split_once(':') {
                Some((_, tag)) if full_version.is_match(tag) => None,
                Some((_, tag)) => Some(format!(
                    "`{name}` uses `{image}`: tag `{tag}` can move (pin a digest or a full version)"
                )),
                None => Some(format!("`{name}` uses `{image}`: no tag, no digest")),
            }
        })
        .collect()
}

fn missing_healthchecks(suite: &Suite, model: &ComposeModel, dir: &Path) -> Vec<String> {
    model
        .services
        .iter()
        // One-shots are not long-running: those the suite expects to exit, and jobs behind a profile.
        .filter(|(name, _)| {
            !matches!(
                suite.services.get(*name).and_then(|s| s.state),
                Some(DesiredState::Exited(_))
            )
        })
        .filter(|(_, s)| s.profiles.is_empty())
        .filter(|(_, s)| !s.has_healthcheck(dir))
        .map(|(name, _)| format!("`{name}` has no healthcheck"))
        .collect()
}

/// The credential in an environment entry: the value of a secret-named key, or a URL's password.
fn credential<'a>(key: &str, value: Option<&'a str>) -> Option<&'a str> {
    let value = value?;
    let secret = if looks_secret(key) {
        Some(value)
    } else {
        url_passwords(value).into_iter().next()
    };
    secret.filter(|s| !s.is_empty())
}

fn default_credentials(model: &ComposeModel, raw: &ComposeModel) -> Vec<String> {
    let mut out = Vec::new();
    let mut reported = std::collections::BTreeSet::new();
    for (name, s) in &raw.services {
        for (key, value) in &s.environment {
            let Some(secret) = credential(key, value.as_deref()) else {
                continue;
            };
            // `${VAR:-default}`: the fallback is a literal too.
            let fallback = secret
                .split_once(":-")
                .or_else(|| secret.split_once('-'))
                .map(|(_, f)| f.trim_end_matches('}'));
            let finding = if !secret.contains('$') {
                format!("`{name}` sets {key} to a literal credential")
            } else if fallback.is_some_and(|f| !f.is_empty() && !f.contains('$')) {
                format!("`{name}` falls back to a literal credential for {key}")
            } else {
                continue;
            };
            out.push(finding);
            reported.insert((name.clone(), key.clone()));
        }
    }
    // Whatever the source, a well-known default value is a finding (values themselves are not shown).
    for (name, s) in &model.services {
        for (key, value) in &s.environment {
            let Some(secret) = credential(key, value.as_deref()) else {
                continue;
            };
            if DEFAULT_SECRETS.contains(&secret.to_ascii_lowercase().as_str())
                && reported.insert((name.clone(), key.clone()))
            {
                out.push(format!("`{name}` uses a well-known default for {key}"));
            }
        }
    }
    out
}

/// Secrets no report can hide (too short, a number, a name of the stack), said once each by
/// variable, never by value: the way CI systems refuse to mask short variables.
pub fn unmaskable(masker: &Masker) -> Vec<String> {
    masker
        .unmaskable()
        .into_iter()
        .map(|(var, why)| {
            format!("{var} cannot be masked in reports ({why}): every output prints it")
        })
        .collect()
}

fn exposed_databases(model: &ComposeModel) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in &model.services {
        let image = s.image.as_deref().unwrap_or_default().to_ascii_lowercase();
        let is_db_image = DATABASES
            .iter()
            .any(|d| image.rsplit('/').next().unwrap_or(&image).starts_with(d));
        for p in &s.ports {
            let Some(published) = p.published.as_deref() else {
                continue;
            };
            let all = matches!(
                p.host_ip.as_deref(),
                None | Some("") | Some("0.0.0.0") | Some("::")
            );
            if all && (is_db_image || DATABASE_PORTS.contains(&p.target)) {
                out.push(format!(
                    "`{name}` publishes {published}:{} on all interfaces (bind it to 127.0.0.1)",
                    p.target
                ));
            }
        }
    }
    out
}

fn missing_limits(model: &ComposeModel) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in &model.services {
        let limits = s
            .deploy
            .as_ref()
            .and_then(|d| d.pointer("/resources/limits"));
        let memory = s.mem_limit.is_some() || limits.and_then(|l| l.get("memory")).is_some();
        let cpus = s.cpus.is_some() || limits.and_then(|l| l.get("cpus")).is_some();
        match (memory, cpus) {
            (true, true) => {}
            (false, false) => out.push(format!("`{name}` has no memory or CPU limit")),
            (false, true) => out.push(format!("`{name}` has no memory limit")),
            (true, false) => out.push(format!("`{name}` has no CPU limit")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(json: &str) -> ComposeModel {
        ComposeModel::parse(json).unwrap()
    }

    fn suite() -> Suite {
        crate::suite::load_str(
            Path::new("s.yaml"),
            "suite: s\nstack: { compose: [c.yml] }\n",
        )
        .unwrap()
        .suite
    }

    /// The voting app's shape: `stack.services: [vote, redis, db]` starts those (and what they
    /// depend on); `result` and `worker` are not the release this suite gates.
    #[test]
    fn policy_judges_only_what_the_suite_starts() {
        let m = model(
            r#"{"services":{"vote":{"image":"vote:1","depends_on":{"redis":{}}},"redis":{"image":"redis:7"},
                "db":{"image":"postgres:15"},"result":{"image":"result:1"},"worker":{"image":"worker:1"},
                "admin":{"image":"admin:1","profiles":["debug"]}}}"#,
        );
        let text = "suite: s\nstack: { compose: [c.yml], services: [vote, db] }\n";
        let narrowed = crate::suite::load_str(Path::new("s.yaml"), text)
            .unwrap()
            .suite;
        let rule = Rule::HealthcheckOnLongRunning;
        let v = evaluate(
            rule,
            Level::Warn,
            &narrowed,
            (&m, &m),
            &Masker::default(),
            Path::new("."),
        );
        for started in ["`vote`", "`redis`", "`db`"] {
            assert!(v.message.contains(started), "{}", v.message);
        }
        for left_out in ["`result`", "`worker`", "`admin`"] {
            assert!(!v.message.contains(left_out), "{}", v.message);
        }
        // Without `stack.services`, everything outside a profile it does not enable.
        let v = evaluate(
            rule,
            Level::Warn,
            &suite(),
            (&m, &m),
            &Masker::default(),
            Path::new("."),
        );
        assert!(
            v.message.contains("`worker`") && !v.message.contains("`admin`"),
            "{}",
            v.message
        );
    }

    #[test]
    fn latest_and_untagged_images_are_found() {
        let m = model(
            r#"{"services":{"a":{"image":"redis:latest"},"b":{"image":"redis"},"c":{"image":"reg:5000/redis:7"}}}"#,
        );
        let f = latest_tags(&m);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("`a`") && f[1].contains("`b`"));
    }

    #[test]
    fn images_not_pinned_by_digest_or_full_version_are_found() {
        let m = model(
            r#"{"services":{"a":{"image":"postgres:14-alpine"},"b":{"image":"redis:7.2.4"},
                "c":{"image":"reg:5000/app@sha256:abc"},"d":{"image":"traefik:v2.10.7"},
                "e":{"image":"python"},"f":{"image":"app:dev","build":{"context":"."}},
                "g":{"image":"app:dev"}}}"#,
        );
        let f = unpinned_images(&m);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].starts_with("`a` uses `postgres:14-alpine`: tag `14-alpine` can move"));
        assert!(f[1].starts_with("`e` uses `python`: no tag"));
    }

    #[test]
    fn literal_and_default_credentials_are_found_without_showing_values() {
        let raw = model(
            r#"{"services":{"a":{"environment":{"DB_PASSWORD":"hunter2xyz","URL":"postgresql://u:${P}@db/x","OK":"${P}"}},
                "b":{"environment":{"TOKEN":"${T:-letmein}"}}}}"#,
        );
        let interpolated = model(r#"{"services":{"a":{"environment":{"GF_PASSWORD":"admin"}}}}"#);
        let f = default_credentials(&interpolated, &raw);
        assert!(
            f.iter()
                .any(|x| x.contains("`a` sets DB_PASSWORD to a literal")),
            "{f:?}"
        );
        assert!(f.iter().any(|x| x.contains("`b` falls back")), "{f:?}");
        assert!(
            f.iter()
                .any(|x| x.contains("well-known default for GF_PASSWORD")),
            "{f:?}"
        );
        assert!(!f
            .iter()
            .any(|x| x.contains("hunter2") || x.contains("letmein")));
        assert_eq!(f.len(), 3, "{f:?}");
    }

    #[test]
    fn databases_on_all_interfaces() {
        let m = model(
            r#"{"services":{"db":{"image":"postgres:14","ports":[{"target":5432,"published":"5432"}]},
                "safe":{"image":"postgres:14","ports":[{"target":5432,"published":"5432","host_ip":"127.0.0.1"}]},
                "web":{"image":"nginx:1","ports":[{"target":80,"published":"80"}]}}}"#,
        );
        let f = exposed_databases(&m);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].starts_with("`db`"));
    }

    #[test]
    fn limits_and_healthchecks() {
        let m = model(
            r#"{"services":{"a":{"deploy":{"resources":{"limits":{"memory":"512M","cpus":"0.5"}}},"healthcheck":{"test":["CMD","true"]}},
                "b":{"mem_limit":"1g"},"c":{"healthcheck":{"disable":true}}}}"#,
        );
        assert_eq!(
            missing_limits(&m),
            ["`b` has no CPU limit", "`c` has no memory or CPU limit"]
        );
        assert_eq!(
            missing_healthchecks(&suite(), &m, Path::new(".")),
            ["`b` has no healthcheck", "`c` has no healthcheck"]
        );
        let v = evaluate(
            Rule::ResourceLimits,
            Level::Warn,
            &suite(),
            (&m, &m),
            &Masker::default(),
            Path::new("."),
        );
        assert!(v.passed && v.warning, "{v:?}");
        let v = evaluate(
            Rule::ResourceLimits,
            Level::Error,
            &suite(),
            (&m, &m),
            &Masker::default(),
            Path::new("."),
        );
        assert!(!v.passed);
    }
}
