//! Which containers are a service: with `deploy.replicas`, several, by replica number; never a
//! `compose run` one-off. A service's state is one verdict over all its replicas.

use std::collections::BTreeMap;

use bollard::models::ContainerSummary;

use super::state::Judgement;
use super::Verdict;
use crate::engine::LABEL_SERVICE;

/// Compose's labels for a replica's number and for `compose run` containers.
const LABEL_NUMBER: &str = "com.docker.compose.container-number";
const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";

/// The containers of each service, by replica number; `compose run` one-offs are not the service.
pub(super) fn replicas_of(listed: &[ContainerSummary]) -> BTreeMap<String, Vec<String>> {
    let mut by_service: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for c in listed {
        let labels = c.labels.clone().unwrap_or_default();
        if labels
            .get(LABEL_ONEOFF)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            continue;
        }
        if let (Some(svc), Some(id)) = (labels.get(LABEL_SERVICE), c.id.as_ref()) {
            let n = labels
                .get(LABEL_NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            by_service
                .entry(svc.clone())
                .or_default()
                .push((n, id.clone()));
        }
    }
    by_service
        .into_iter()
        .map(|(svc, mut ids)| {
            ids.sort();
            (svc, ids.into_iter().map(|(_, id)| id).collect())
        })
        .collect()
}

/// One verdict for a service from its replicas' judgements: the first failing replica fails it
/// (with the container to diagnose), all passing pass it, anything else is still undecided.
pub(super) fn fold_replicas<'a>(
    service: &str,
    all: Vec<(usize, &'a String, Judgement)>,
) -> (Option<Verdict>, Option<&'a String>) {
    let count = all.len();
    let mut passed = Vec::new();
    for (n, id, j) in all {
        match j {
            Judgement::Decided(v) if !v.passed => {
                let mut v = v;
                v.message = format!("replica {n} of {count}: {}", v.message);
                return (Some(v), Some(id));
            }
            Judgement::Decided(v) => passed.push(v),
            Judgement::Waiting(_) => return (None, None),
        }
    }
    match passed.first() {
        Some(first) => (
            Some(Verdict::pass(format!(
                "{} (all {count} replicas of `{service}`)",
                first.message
            ))),
            None,
        ),
        None => (None, None),
    }
}
