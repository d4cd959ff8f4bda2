//! Which containers are a service: with `deploy.replicas`, several, by replica number; never a
//! `compose run` one-off. A service's state is one verdict over all its replicas.

use std::collections::BTreeMap;

use bollard::models::ContainerSummary;

use super::judge::Judgement;
use super::Verdict;
use crate::engine::{is_oneoff, LABEL_SERVICE};

/// Compose's label for a replica's number.
const LABEL_NUMBER: &str = "com.docker.compose.container-number";

/// The containers of each service, by replica number; `compose run` one-offs are not the service.
pub(super) fn replicas_of(listed: &[ContainerSummary]) -> BTreeMap<String, Vec<String>> {
    let mut by_service: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for c in listed {
        if is_oneoff(c) {
            continue;
        }
        let labels = c.labels.clone().unwrap_or_default();
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

/// One judgement for a service from its replicas' (a single container's as it is): the first
/// failing replica fails it (with the container to diagnose), one still on its way keeps it
/// waiting, all passing pass it.
pub(super) fn fold_replicas<'a>(
    service: &str,
    all: Vec<(usize, &'a String, Judgement)>,
) -> (Judgement, Option<&'a String>) {
    let count = all.len();
    let mut passed = Vec::new();
    let mut waiting = None;
    for (n, id, j) in all {
        match j {
            Judgement::Decided(mut v) if !v.passed => {
                if count > 1 {
                    v.message = format!("replica {n} of {count}: {}", v.message);
                }
                return (Judgement::Decided(v), Some(id));
            }
            Judgement::Decided(v) => passed.push(v),
            Judgement::Waiting(now) if count > 1 => {
                waiting.get_or_insert(format!("replica {n} of {count}: {now}"));
            }
            Judgement::Waiting(now) => waiting = Some(now),
        }
    }
    match (waiting, passed.into_iter().next()) {
        (Some(now), _) => (Judgement::Waiting(now), None),
        (None, Some(first)) if count > 1 => (
            Judgement::Decided(Verdict::pass(format!(
                "{} (all {count} replicas of `{service}`)",
                first.message
            ))),
            None,
        ),
        (None, Some(only)) => (Judgement::Decided(only), None),
        (None, None) => (Judgement::Waiting("no container".into()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["c1".into(), "c2".into()]
    }

    #[test]
    fn one_container_is_judged_as_it_is_and_replicas_together() {
        let ids = ids();
        let pass = || Judgement::Decided(Verdict::pass("`w` running after 3.5s"));
        let (j, _) = fold_replicas("w", vec![(1, &ids[0], pass())]);
        assert!(matches!(j, Judgement::Decided(v) if v.message == "`w` running after 3.5s"));
        let (j, _) = fold_replicas("w", vec![(1, &ids[0], pass()), (2, &ids[1], pass())]);
        assert!(
            matches!(&j, Judgement::Decided(v) if v.message.ends_with("(all 2 replicas of `w`)"))
        );
        // One still starting keeps the service waiting, naming which.
        let waiting = Judgement::Waiting("created".into());
        let (j, _) = fold_replicas("w", vec![(1, &ids[0], pass()), (2, &ids[1], waiting)]);
        assert!(matches!(j, Judgement::Waiting(w) if w == "replica 2 of 2: created"));
        // A failing one fails it at once, named, with its container to diagnose.
        let exited = Judgement::Decided(Verdict::fail("`w` exited with code 3"));
        let waiting = Judgement::Waiting("created".into());
        let (j, id) = fold_replicas("w", vec![(1, &ids[0], waiting), (2, &ids[1], exited)]);
        assert!(
            matches!(j, Judgement::Decided(v) if v.message == "replica 2 of 2: `w` exited with code 3")
        );
        assert_eq!(id, Some(&ids[1]));
    }
}
