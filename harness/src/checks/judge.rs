//! What one look at a container says about its promised state: decided (passed or failed, and
//! why) or still waiting, given how long this instance has been up or down.

use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;

use super::Verdict;
use crate::engine::{ContainerStatus, Health, ObservedState};
use crate::suite::DesiredState;

/// How long a container must have been up (this instance: a restart starts it over) before its
/// `running` or `healthy` promise passes: a service that crashes seconds after starting must not
/// pass in the moment before. Measured from the first poll that saw it running.
const SETTLE: Duration = Duration::from_secs(3);
/// Restarts by the restart policy after which a service counts as crash-looping rather than
/// recovering (Docker's back-off makes 8 restarts take about 25 s plus the runs themselves).
const CRASH_LOOP: i64 = 8;
/// How long an exited container whose restart policy promises a restart is given to be started
/// again (Podman restarts from a cleanup process after the exit, not at once).
const RESTART_GRACE: Duration = Duration::from_secs(10);

pub(super) enum Judgement {
    Decided(Verdict),
    Waiting(String),
}

/// Since when one container instance has been seen running, and since when exited (a restart
/// starts a new instance).
#[derive(Default)]
pub(super) struct Uptime {
    running: Option<(String, Instant)>,
    exited: Option<(String, Instant)>,
}

impl Uptime {
    /// How long the instance `info` describes has been seen running; zero when it is not running.
    fn observe(&mut self, info: &ContainerInspectResponse, running: bool) -> Duration {
        Self::seen(&mut self.running, info, running)
    }

    /// How long the instance `info` describes has been seen exited; zero when it is not exited.
    fn exited_for(&mut self, info: &ContainerInspectResponse, exited: bool) -> Duration {
        Self::seen(&mut self.exited, info, exited)
    }

    fn seen(
        slot: &mut Option<(String, Instant)>,
        info: &ContainerInspectResponse,
        now: bool,
    ) -> Duration {
        let instance = instance_of(info);
        match slot {
            Some((seen, since)) if now && *seen == instance => since.elapsed(),
            _ if now => {
                *slot = Some((instance, Instant::now()));
                Duration::ZERO
            }
            _ => {
                *slot = None;
                Duration::ZERO
            }
        }
    }
}

/// Why a container will not run again by itself, if it will not: it exited and no restart policy
/// starts it again, or its policy has been restarting it in a crash loop.
pub(super) fn ended_for_good(service: &str, info: &ContainerInspectResponse) -> Option<String> {
    let restarts = info.restart_count.unwrap_or(0);
    let code = info.state.as_ref().and_then(|s| s.exit_code).unwrap_or(0);
    match ObservedState::of(info).status {
        ContainerStatus::Exited(code) if restart_promised(info, code).is_none() => Some(format!(
            "`{service}` exited with code {code} and no restart policy starts it again"
        )),
        ContainerStatus::Exited(_) | ContainerStatus::Restarting if restarts >= CRASH_LOOP => {
            Some(format!(
                "`{service}` is crash-looping: restarted {restarts}× by its restart policy, last exit code {code}"
            ))
        }
        _ => None,
    }
}

/// The restart policy that will start this exited container again, if any: Docker shows such a
/// container as `restarting`, Podman as `exited` until its cleanup process restarts it.
fn restart_promised(info: &ContainerInspectResponse, code: i64) -> Option<String> {
    use bollard::models::RestartPolicyNameEnum as P;
    let policy = info.host_config.as_ref()?.restart_policy.as_ref()?;
    let promised = match policy.name? {
        P::ALWAYS | P::UNLESS_STOPPED => true,
        P::ON_FAILURE => {
            let max = policy.maximum_retry_count.unwrap_or(0);
            code != 0 && (max == 0 || info.restart_count.unwrap_or(0) < max)
        }
        _ => false,
    };
    promised.then(|| policy.name.map(|n| n.to_string()).unwrap_or_default())
}

/// One run of a container: its id, when it started, how often it was restarted.
pub(super) fn instance_of(info: &ContainerInspectResponse) -> String {
    format!(
        "{}@{}#{}",
        info.id.as_deref().unwrap_or_default(),
        info.state
            .as_ref()
            .and_then(|s| s.started_at.as_deref())
            .unwrap_or_default(),
        info.restart_count.unwrap_or(0)
    )
}

pub(super) fn judge(
    service: &str,
    want: Option<DesiredState>,
    info: &ContainerInspectResponse,
    elapsed: f32,
    uptime: &mut Uptime,
) -> Judgement {
    let seen = ObservedState::of(info);
    let (status, health) = (seen.status.word().to_string(), seen.health);
    let has_health = crate::engine::has_healthcheck(info);
    let want = desired(want, info);
    let code = info.state.as_ref().and_then(|s| s.exit_code).unwrap_or(0);
    let exited = matches!(seen.status, ContainerStatus::Exited(_));
    let running = seen.status == ContainerStatus::Running;
    let restarting = seen.status == ContainerStatus::Restarting;
    let up_for = uptime.observe(info, running);
    let down_for = uptime.exited_for(info, exited);
    let settling = format!("{status}, up {:.0?} of {SETTLE:?}", up_for);
    match want {
        DesiredState::Exited(expected) if exited => {
            if code == expected {
                Judgement::Decided(Verdict::pass(format!("`{service}` exited with code {code} after {elapsed:.1}s")))
            } else {
                Judgement::Decided(Verdict::fail(format!("`{service}` exited with code {code}, expected exited:{expected}")))
            }
        }
        DesiredState::Exited(_) => Judgement::Waiting(status),
        // Exited and about to be restarted by its policy: the engine marks it unhealthy on exit,
        // but the next start begins a new health history (stacks whose `depends_on` only waits
        // for start crash this way once, by design). Still within the budget, so keep waiting.
        _ if restarting && info.restart_count.unwrap_or(0) >= CRASH_LOOP => {
            Judgement::Decided(Verdict::fail(format!(
                "`{service}` is crash-looping: restarted {}× by its restart policy in {elapsed:.1}s, last exit code {code} (expected {want})",
                info.restart_count.unwrap_or(0)
            )))
        }
        _ if restarting => Judgement::Waiting(format!(
            "restarting after exit code {code} ({} restarts)",
            info.restart_count.unwrap_or(0)
        )),
        _ if exited => {
            let restarts = info.restart_count.unwrap_or(0);
            let exit = format!("`{service}` exited with code {code} after {elapsed:.1}s (expected {want})");
            match restart_promised(info, code) {
                Some(p) if restarts >= CRASH_LOOP => Judgement::Decided(Verdict::fail(format!(
                    "`{service}` is crash-looping: restarted {restarts}× by its restart policy `{p}` in {elapsed:.1}s, last exit code {code} (expected {want})"
                ))),
                Some(p) if down_for < RESTART_GRACE => {
                    Judgement::Waiting(format!("exited with code {code}, restart policy `{p}`"))
                }
                Some(p) => Judgement::Decided(Verdict::fail(format!(
                    "{exit}; its restart policy `{p}` did not start it again within {RESTART_GRACE:?}"
                ))),
                None => Judgement::Decided(Verdict::fail(exit)),
            }
        }
        _ if health == Some(Health::Unhealthy) => Judgement::Decided(Verdict::fail(format!(
            "`{service}` became unhealthy after {elapsed:.1}s (expected {want}); last health check: {}",
            last_health_output(info).unwrap_or_else(|| "(no output)".into())
        ))),
        DesiredState::Healthy if !has_health => Judgement::Decided(Verdict::fail(format!(
            "`{service}` has no healthcheck, so it can never be healthy (expected healthy; it is {status})"
        ))),
        DesiredState::Healthy if health == Some(Health::Healthy) && up_for >= SETTLE => {
            Judgement::Decided(Verdict::pass(format!("`{service}` healthy after {elapsed:.1}s{}", restarts(info))))
        }
        DesiredState::Healthy if health == Some(Health::Healthy) => Judgement::Waiting(format!("healthy, {settling}")),
        DesiredState::Healthy => Judgement::Waiting(format!("{status}, health {}", health.map(|h| h.to_string()).unwrap_or_default())),
        // Up for the settle window, so a container that crashes right after start is not passed.
        DesiredState::Running if running && up_for >= SETTLE => {
            Judgement::Decided(Verdict::pass(format!("`{service}` running after {elapsed:.1}s{}", restarts(info))))
        }
        DesiredState::Running if running => Judgement::Waiting(settling),
        DesiredState::Running => Judgement::Waiting(status),
    }
}

/// The promised state, or the default: healthy with a healthcheck, else running.
pub(super) fn desired(want: Option<DesiredState>, info: &ContainerInspectResponse) -> DesiredState {
    want.unwrap_or(if crate::engine::has_healthcheck(info) {
        DesiredState::Healthy
    } else {
        DesiredState::Running
    })
}

/// " (restarted N× by its restart policy)" when the engine restarted it while we waited.
fn restarts(info: &ContainerInspectResponse) -> String {
    match info.restart_count.unwrap_or(0) {
        0 => String::new(),
        n => format!(" (restarted {n}× by its restart policy)"),
    }
}

fn last_health_output(info: &ContainerInspectResponse) -> Option<String> {
    let log = info.state.as_ref()?.health.as_ref()?.log.as_ref()?;
    let last = log.last()?;
    Some(format!(
        "exit {}: {}",
        last.exit_code.unwrap_or(-1),
        crate::text::snippet(last.output.as_deref().unwrap_or(""), 300)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn exited(
        policy: &str,
        max_retries: i64,
        restarts: i64,
        code: i64,
    ) -> ContainerInspectResponse {
        serde_json::from_value(serde_json::json!({
            "Id": "c1",
            "RestartCount": restarts,
            "State": {"Status": "exited", "ExitCode": code, "StartedAt": "2026-12-04T00:00:00Z"},
            "HostConfig": {"RestartPolicy": {"Name": policy, "MaximumRetryCount": max_retries}},
        }))
        .unwrap()
    }

    fn look(info: &ContainerInspectResponse, down_since: Duration) -> Judgement {
        let mut uptime = Uptime {
            running: None,
            exited: Some((instance_of(info), Instant::now() - down_since)),
        };
        judge(
            "starter",
            Some(DesiredState::Healthy),
            info,
            1.0,
            &mut uptime,
        )
    }

    fn said(j: Judgement) -> (bool, String) {
        match j {
            Judgement::Waiting(now) => (false, now),
            Judgement::Decided(v) => (true, v.message),
        }
    }

    // Podman shows a container its policy will restart as `exited` until its cleanup process
    // starts it again: judged at once, a stack that recovers by design failed there.
    #[rstest]
    #[case::unless_stopped("unless-stopped", 0, 0, 1)]
    #[case::always_even_after_success("always", 0, 3, 0)]
    #[case::on_failure_with_retries_left("on-failure", 3, 2, 1)]
    fn an_exit_the_restart_policy_will_undo_is_waited_for(
        #[case] policy: &str,
        #[case] max: i64,
        #[case] restarts: i64,
        #[case] code: i64,
    ) {
        let (decided, now) = said(look(&exited(policy, max, restarts, code), Duration::ZERO));
        assert!(!decided, "{now}");
        assert_eq!(
            now,
            format!("exited with code {code}, restart policy `{policy}`")
        );
    }

    #[rstest]
    #[case::no_policy(
        "no",
        0,
        0,
        1,
        "`starter` exited with code 1 after 1.0s (expected healthy)"
    )]
    #[case::on_failure_after_success(
        "on-failure",
        0,
        0,
        0,
        "`starter` exited with code 0 after 1.0s (expected healthy)"
    )]
    #[case::on_failure_retries_used_up(
        "on-failure",
        2,
        2,
        1,
        "`starter` exited with code 1 after 1.0s (expected healthy)"
    )]
    #[case::crash_loop("always", 0, 8, 1, "`starter` is crash-looping: restarted 8× by its restart policy `always` in 1.0s, last exit code 1 (expected healthy)")]
    fn an_exit_nothing_will_undo_fails_at_once(
        #[case] policy: &str,
        #[case] max: i64,
        #[case] restarts: i64,
        #[case] code: i64,
        #[case] message: &str,
    ) {
        let (decided, now) = said(look(&exited(policy, max, restarts, code), Duration::ZERO));
        assert!(decided, "{now}");
        assert_eq!(now, message);
    }

    #[rstest]
    #[case::no_policy(
        "no",
        0,
        0,
        0,
        Some("`starter` exited with code 0 and no restart policy starts it again")
    )]
    #[case::on_failure_after_success(
        "on-failure",
        0,
        0,
        0,
        Some("`starter` exited with code 0 and no restart policy starts it again")
    )]
    #[case::unless_stopped_will_restart("unless-stopped", 0, 0, 1, None)]
    #[case::on_failure_with_retries_left("on-failure", 3, 1, 1, None)]
    #[case::crash_loop(
        "always",
        0,
        8,
        1,
        Some("`starter` is crash-looping: restarted 8× by its restart policy, last exit code 1")
    )]
    fn an_exit_is_for_good_only_when_nothing_will_undo_it(
        #[case] policy: &str,
        #[case] max: i64,
        #[case] restarts: i64,
        #[case] code: i64,
        #[case] why: Option<&str>,
    ) {
        let info = exited(policy, max, restarts, code);
        assert_eq!(ended_for_good("starter", &info).as_deref(), why);
    }

    /// Replays a recorded bring-up: each inspection's `State` with the second it was made at,
    /// judged in order as the wait judges them; time between looks passes for the recorded uptime.
    fn replay(want: DesiredState, looks: &[(u64, serde_json::Value)]) -> Vec<(bool, String)> {
        let mut uptime = Uptime::default();
        let mut last = 0;
        looks
            .iter()
            .map(|(at, state)| {
                let passed = Duration::from_secs(at - last);
                last = *at;
                for (_, since) in uptime.running.iter_mut().chain(uptime.exited.iter_mut()) {
                    *since -= passed;
                }
                let info = serde_json::from_value(serde_json::json!({
                    "Id": "c1",
                    "State": state,
                    "Config": {"Healthcheck": {"Test": ["CMD", "true"]}},
                }))
                .unwrap();
                said(judge("db", Some(want), &info, *at as f32, &mut uptime))
            })
            .collect()
    }

    fn running(health: &str) -> serde_json::Value {
        serde_json::json!({"Status": "running", "StartedAt": "2026-12-04T00:00:00Z", "Health": {"Status": health}})
    }

    #[test]
    fn a_recorded_healthy_bring_up_passes_only_once_it_has_settled() {
        // Up since its first look as running (1 s); passes once up for SETTLE (3 s), not before.
        let seen = replay(
            DesiredState::Healthy,
            &[
                (1, running("starting")),
                (2, running("healthy")),
                (3, running("healthy")),
                (4, running("healthy")),
            ],
        );
        let waits: Vec<&str> = seen[..3]
            .iter()
            .map(|(decided, m)| {
                assert!(!decided, "{m}");
                m.as_str()
            })
            .collect();
        assert_eq!(
            waits,
            [
                "running, health starting",
                "healthy, running, up 1s of 3s",
                "healthy, running, up 2s of 3s"
            ]
        );
        assert_eq!(seen[3], (true, "`db` healthy after 4.0s".to_string()));
    }

    #[test]
    fn a_recorded_crash_after_a_pass_fails_as_unhealthy_not_as_a_wait() {
        let seen = replay(
            DesiredState::Healthy,
            &[(0, running("starting")), (3, running("unhealthy"))],
        );
        assert!(!seen[0].0);
        assert!(seen[1].0, "{:?}", seen[1]);
        assert!(
            seen[1]
                .1
                .starts_with("`db` became unhealthy after 3.0s (expected healthy)"),
            "{}",
            seen[1].1
        );
    }

    #[test]
    fn a_recorded_one_shot_passes_on_its_exit_code_and_fails_on_another() {
        let exit = |code: i64| serde_json::json!({"Status": "exited", "ExitCode": code});
        let ok = replay(
            DesiredState::Exited(0),
            &[(0, running("none")), (2, exit(0))],
        );
        assert_eq!(ok[0], (false, "running".to_string()));
        assert_eq!(
            ok[1],
            (true, "`db` exited with code 0 after 2.0s".to_string())
        );
        let bad = replay(DesiredState::Exited(0), &[(1, exit(3))]);
        assert_eq!(
            bad[0],
            (
                true,
                "`db` exited with code 3, expected exited:0".to_string()
            )
        );
    }

    #[test]
    fn a_restart_the_policy_promised_but_never_made_fails_after_the_grace() {
        let info = exited("unless-stopped", 0, 0, 1);
        let (decided, now) = said(look(&info, RESTART_GRACE + Duration::from_secs(1)));
        assert!(decided, "{now}");
        assert_eq!(
            now,
            "`starter` exited with code 1 after 1.0s (expected healthy); its restart policy `unless-stopped` did not start it again within 10s"
        );
    }
}
