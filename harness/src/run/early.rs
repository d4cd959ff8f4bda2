//! Tests that start during bring-up: a runtime test whose services (and, transitively, what they
//! `depends_on`) have reached their promised state runs while slower services are still coming
//! up, instead of after the whole stack.
//!
//! Only a pass can be earned early. A test runs early only when a pass is evidence on its own: a
//! promise about a service's own container, or a check that asks a ready service for an answer
//! (an HTTP answer below 400, a TCP connection, a log line). Anything whose pass could come from
//! the rest of the stack being absent (a refusal expected, text that must not appear, a command
//! whose meaning we cannot read, isolation, reachability, scenarios) waits for the whole stack, as
//! does a service nobody promises a state for. An early failure is not a verdict: the test runs
//! again once the stack is up, so the order of bring-up never turns a green stack red. An early
//! pass stands on its services staying up: when one of them does not hold its state for the run,
//! the pass is taken back and the test judged again on the stack as it is then (see
//! `runtime::taken_back`), as if it had not run early.

use std::collections::BTreeSet;

use crate::engine::ComposeModel;
use crate::plan::{PlannedTest, ServicePromise, TestKind};
use crate::suite::{CheckKind, Suite};

/// The runtime tests still waiting for their services, and the services ready so far.
pub(super) struct Early {
    waiting: Vec<(PlannedTest, BTreeSet<String>)>,
    ready: BTreeSet<String>,
}

impl Early {
    /// The tests of `tests` that may run early, each with the services it waits for.
    pub(super) fn new(suite: &Suite, model: &ComposeModel, tests: &[PlannedTest]) -> Early {
        let waiting = tests
            .iter()
            .filter_map(|t| Some((t.clone(), waits_for(suite, model, &t.kind)?)))
            .collect();
        Early {
            waiting,
            ready: BTreeSet::new(),
        }
    }

    /// `service` reached its promised state: the tests that now have all they wait for, each
    /// with the services its pass stands on.
    pub(super) fn ready(&mut self, service: &str) -> Vec<(PlannedTest, BTreeSet<String>)> {
        self.ready.insert(service.to_string());
        let (go, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, needs)| needs.is_subset(&self.ready));
        self.waiting = wait;
        go
    }
}

/// The services whose passed state a test waits for before it may run early; None when it must
/// wait for the whole stack.
fn waits_for(suite: &Suite, model: &ComposeModel, kind: &TestKind) -> Option<BTreeSet<String>> {
    let service = match kind {
        TestKind::Service { service, promise } if *promise != ServicePromise::State => {
            service.clone()
        }
        TestKind::Check { index } => {
            let check = &suite.checks[*index];
            if check.retries > 0 || !answer_is_evidence(&check.kind, &check.expect) {
                return None;
            }
            check.kind.service()?.to_string()
        }
        _ => return None,
    };
    model.services.get(&service)?;
    let needs = model.with_dependencies([service]);
    // A service without a promised state has no moment at which it is known to be ready.
    let ready_known = |s: &String| suite.services.get(s).is_some_and(|p| p.state.is_some());
    needs.iter().all(ready_known).then_some(needs)
}

/// Whether a check passing means the service it asks really answered as promised, whatever the
/// rest of the stack is doing.
fn answer_is_evidence(kind: &CheckKind, expect: &crate::suite::Expect) -> bool {
    let refusal = expect.status.is_some_and(|s| s >= 400);
    let absence = expect.body_excludes.is_some()
        || expect.stdout_excludes.is_some()
        || expect.stderr_excludes.is_some();
    match kind {
        CheckKind::Http(_) | CheckKind::Tcp(_) => !refusal && !absence,
        CheckKind::Logs(l) => l.contains.is_some() && l.excludes.is_none() && !absence,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite_and_model(yaml: &str, compose: &str) -> (Suite, ComposeModel) {
        let suite: Suite = serde_saphyr::from_str(yaml).unwrap();
        let model: ComposeModel = serde_saphyr::from_str(compose).unwrap();
        (suite, model)
    }

    #[test]
    fn only_answers_of_ready_services_run_early() {
        let (suite, model) = suite_and_model(
            r#"
suite: s
stack: { compose: [c.yml] }
services:
  api: { state: healthy }
  db: { state: healthy }
checks:
  - { name: ok, http: { service: api, port: 80 } }
  - { name: refused, http: { service: api, port: 80 }, expect: { status: 503 } }
  - { name: not-there, http: { service: api, port: 80 }, expect: { body_excludes: err } }
  - { name: cmd, exec: { service: db, cmd: [sh, -c, "! nc api 80"] } }
  - { name: tcp, tcp: { service: db, port: 5432 } }
  - { name: logs, logs: { service: api, contains: up } }
  - { name: quiet, logs: { service: api, excludes: error } }
  - { name: retried, tcp: { service: db, port: 5432 }, retries: 1 }
  - { name: cache, tcp: { service: cache, port: 6379 } }
"#,
            "services:\n  api: { depends_on: { db: {} } }\n  db: {}\n  cache: {}\n",
        );
        let waits = |index| waits_for(&suite, &model, &TestKind::Check { index });
        let set = |s: &[&str]| Some(s.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
        assert_eq!(waits(0), set(&["api", "db"]));
        assert_eq!(waits(1), None);
        assert_eq!(waits(2), None);
        assert_eq!(waits(3), None);
        assert_eq!(waits(4), set(&["db"]));
        assert_eq!(waits(5), set(&["api", "db"]));
        assert_eq!(waits(6), None);
        assert_eq!(waits(7), None);
        // `cache` has no promised state: nothing says when it is ready.
        assert_eq!(waits(8), None);
    }
}
