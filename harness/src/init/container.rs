//! What `init --observe` promises about how a container was made: the variables compose gives
//! it, seen in it with the same value, as `env:` (a variable named as a secret, or whose value
//! holds one, a password in a URL or another variable's secret, is only named, never written);
//! and the mounts it has read-only, as `read_only_mounts:` (a write there must fail).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::observe::Seen;
use super::q;
use crate::engine::ComposeModel;

/// The values of every variable named as a secret in any service, and the passwords in any
/// URL: no written promise may contain one.
pub(super) fn secret_values(model: &ComposeModel) -> Vec<String> {
    let mut out = Vec::new();
    for s in model.services.values() {
        for (k, v) in &s.environment {
            let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            if crate::suite::named_secret(k, &[]) {
                out.push(v.to_string());
            }
            out.extend(crate::suite::url_passwords(v).into_iter().map(String::from));
        }
    }
    out
}

/// The variables compose sets for `service` that its container has with the same value, as
/// `env:` promises; those that are or contain a secret are only named.
pub(super) fn environment(
    model: &ComposeModel,
    service: &str,
    got: &BTreeMap<String, String>,
    secrets: &[String],
) -> (BTreeMap<String, String>, Vec<String>) {
    let (mut env, mut secret) = (BTreeMap::new(), Vec::new());
    let Some(s) = model.services.get(service) else {
        return (env, secret);
    };
    for (k, v) in &s.environment {
        let Some(v) = v
            .as_deref()
            .filter(|v| got.get(k).map(String::as_str) == Some(*v))
        else {
            continue;
        };
        if crate::suite::named_secret(k, &[]) || secrets.iter().any(|x| v.contains(x.as_str())) {
            secret.push(k.clone());
        } else {
            env.insert(k.clone(), v.to_string());
        }
    }
    (env, secret)
}

impl Seen {
    /// The `env:` promise (with what was seen) for a service whose state is promised.
    pub(super) fn render_env(&self, y: &mut String) {
        self.render_read_only(y);
        if self.env.is_empty() {
            if !self.secret_env.is_empty() {
                let _ = writeln!(
                    *y,
                    "    # seen in its container: compose gives it secrets not written: {}",
                    self.secret_env.join(", ")
                );
            }
            return;
        }
        let mut seen = "seen in its container: the variables compose gives it".to_string();
        if !self.secret_env.is_empty() {
            let _ = write!(
                seen,
                " (secrets not written: {})",
                self.secret_env.join(", ")
            );
        }
        let pairs: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), q(v)))
            .collect();
        let _ = writeln!(*y, "    # {seen}\n    env: {{ {} }}", pairs.join(", "));
    }

    /// The `read_only_mounts:` promise, for the mounts seen read-only in its container.
    pub(super) fn render_read_only(&self, y: &mut String) {
        if self.read_only.is_empty() {
            return;
        }
        let _ = writeln!(
            *y,
            "    # seen in its container: mounted read-only\n    read_only_mounts: {}",
            super::list(&self.read_only)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_or_a_value_holding_one_is_named_never_written() {
        let model: ComposeModel = serde_saphyr::from_str(
            "services:\n  db: { environment: { POSTGRES_PASSWORD: pg-secret-1, POSTGRES_DB: app } }\n  \
             web: { environment: { DATABASE_URL: \"postgres://app:pg-secret-1@db/app\", MODE: prod, GONE: x } }\n",
        )
        .unwrap();
        let secrets = secret_values(&model);
        let got = BTreeMap::from([
            (
                "DATABASE_URL".to_string(),
                "postgres://app:pg-secret-1@db/app".to_string(),
            ),
            ("MODE".to_string(), "prod".to_string()),
        ]);
        let (env, secret) = environment(&model, "web", &got, &secrets);
        // GONE is not in the container as compose gives it: not promised.
        assert_eq!(
            env,
            BTreeMap::from([("MODE".to_string(), "prod".to_string())])
        );
        assert_eq!(secret, ["DATABASE_URL"]);
    }
}
