//! A container's observed state, as a type: what the engine says it is doing, beside the state a
//! suite promises ([`DesiredState`]). Every judge reads this instead of comparing the engine's
//! words, so "running (healthy)" and "exited:1" are spelt in one place: [`ObservedState`]'s
//! `Display`.

use std::fmt;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};

use crate::suite::DesiredState;

/// The engine's status of a container (Docker's `State.Status`; Podman's are mapped onto these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Created and never started.
    Created,
    /// Its main process runs.
    Running,
    /// Frozen by `docker pause`.
    Paused,
    /// Exited, and its restart policy is starting it again.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited (or dead) with this code.
    Exited(i64),
    /// A status this harness has no word for, as the engine said it (`unknown` when it said none).
    Other(String),
}

/// The verdict of a container's healthcheck (none when it has no healthcheck).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Within its start period or first interval: not yet decided.
    Starting,
    /// The last `retries` checks passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

/// What one inspection of a container says it is doing.
///
/// ```
/// use stackcheck::engine::{ContainerStatus, Health, ObservedState};
/// use stackcheck::suite::DesiredState;
///
/// let seen = ObservedState { status: ContainerStatus::Running, health: Some(Health::Healthy) };
/// assert_eq!(seen.to_string(), "running (healthy)");
/// assert!(seen.satisfies(DesiredState::Healthy) && seen.satisfies(DesiredState::Running));
/// assert_eq!(ObservedState { status: ContainerStatus::Exited(1), health: None }.to_string(), "exited:1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedState {
    /// What its main process is doing.
    pub status: ContainerStatus,
    /// Its healthcheck's verdict, when it has a healthcheck.
    pub health: Option<Health>,
}

impl ObservedState {
    /// The state an inspection shows.
    pub fn of(info: &ContainerInspectResponse) -> ObservedState {
        let state = info.state.clone().unwrap_or_default();
        let code = state.exit_code.unwrap_or(0);
        let status = match state.status {
            Some(ContainerStateStatusEnum::CREATED) => ContainerStatus::Created,
            Some(ContainerStateStatusEnum::RUNNING) => ContainerStatus::Running,
            Some(ContainerStateStatusEnum::PAUSED) => ContainerStatus::Paused,
            Some(ContainerStateStatusEnum::RESTARTING) => ContainerStatus::Restarting,
            Some(ContainerStateStatusEnum::REMOVING) => ContainerStatus::Removing,
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                ContainerStatus::Exited(code)
            }
            Some(other) => ContainerStatus::Other(other.to_string()),
            None => ContainerStatus::Other("unknown".into()),
        };
        let health = match state.health.and_then(|h| h.status) {
            Some(HealthStatusEnum::STARTING) => Some(Health::Starting),
            Some(HealthStatusEnum::HEALTHY) => Some(Health::Healthy),
            Some(HealthStatusEnum::UNHEALTHY) => Some(Health::Unhealthy),
            _ => None,
        };
        ObservedState { status, health }
    }

    /// Whether this is the promised state.
    pub fn satisfies(&self, want: DesiredState) -> bool {
        match (want, &self.status) {
            (DesiredState::Healthy, ContainerStatus::Running) => {
                self.health == Some(Health::Healthy)
            }
            (DesiredState::Running, ContainerStatus::Running) => true,
            (DesiredState::Exited(want), ContainerStatus::Exited(code)) => *code == want,
            _ => false,
        }
    }

    /// It was started at some point (whatever it is now).
    pub fn was_started(&self) -> bool {
        self.status != ContainerStatus::Created
    }

    /// It ended and will not run again by itself, or its healthcheck gave up: waiting longer for
    /// another state is waiting for nothing.
    pub fn is_final(&self) -> bool {
        let unhealthy =
            self.status == ContainerStatus::Running && self.health == Some(Health::Unhealthy);
        matches!(self.status, ContainerStatus::Exited(_)) || unhealthy
    }
}

impl ContainerStatus {
    /// The engine's own word for it (`exited` for every exit code).
    pub fn word(&self) -> &str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Exited(_) => "exited",
            ContainerStatus::Other(word) => word,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

/// `running`, `running (healthy)`, `exited:1`, `created`…: the state in one word, as reports
/// and messages say it.
impl fmt::Display for ObservedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.status, self.health) {
            (ContainerStatus::Exited(code), _) => write!(f, "exited:{code}"),
            (ContainerStatus::Running, Some(h)) => write!(f, "running ({h})"),
            (status, _) => f.write_str(status.word()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn inspected(state: serde_json::Value) -> ContainerInspectResponse {
        serde_json::from_value(serde_json::json!({ "Id": "c1", "State": state })).unwrap()
    }

    #[rstest]
    #[case::created(serde_json::json!({"Status": "created"}), "created")]
    #[case::running(serde_json::json!({"Status": "running"}), "running")]
    #[case::starting(serde_json::json!({"Status": "running", "Health": {"Status": "starting"}}), "running (starting)")]
    #[case::healthy(serde_json::json!({"Status": "running", "Health": {"Status": "healthy"}}), "running (healthy)")]
    #[case::unhealthy(serde_json::json!({"Status": "running", "Health": {"Status": "unhealthy"}}), "running (unhealthy)")]
    #[case::no_healthcheck(serde_json::json!({"Status": "running", "Health": {"Status": "none"}}), "running")]
    #[case::exited(serde_json::json!({"Status": "exited", "ExitCode": 3}), "exited:3")]
    #[case::dead(serde_json::json!({"Status": "dead", "ExitCode": 137}), "exited:137")]
    #[case::restarting(serde_json::json!({"Status": "restarting", "ExitCode": 1}), "restarting")]
    #[case::paused(serde_json::json!({"Status": "paused"}), "paused")]
    #[case::no_status(serde_json::json!({}), "unknown")]
    fn an_inspection_reads_as_one_state(#[case] state: serde_json::Value, #[case] said: &str) {
        assert_eq!(ObservedState::of(&inspected(state)).to_string(), said);
    }

    #[rstest]
    #[case::healthy("running (healthy)", DesiredState::Healthy, true)]
    #[case::starting_is_not_healthy("running (starting)", DesiredState::Healthy, false)]
    #[case::healthy_is_running("running (healthy)", DesiredState::Running, true)]
    #[case::unhealthy_still_runs("running (unhealthy)", DesiredState::Running, true)]
    #[case::exit_code_matches("exited:0", DesiredState::Exited(0), true)]
    #[case::other_exit_code("exited:1", DesiredState::Exited(0), false)]
    #[case::restarting_is_not_running("restarting", DesiredState::Running, false)]
    #[case::created_is_nothing("created", DesiredState::Running, false)]
    fn satisfies_only_the_promised_state(
        #[case] seen: &str,
        #[case] want: DesiredState,
        #[case] holds: bool,
    ) {
        let state = match seen {
            "running (healthy)" => {
                serde_json::json!({"Status": "running", "Health": {"Status": "healthy"}})
            }
            "running (starting)" => {
                serde_json::json!({"Status": "running", "Health": {"Status": "starting"}})
            }
            "running (unhealthy)" => {
                serde_json::json!({"Status": "running", "Health": {"Status": "unhealthy"}})
            }
            "exited:0" => serde_json::json!({"Status": "exited", "ExitCode": 0}),
            "exited:1" => serde_json::json!({"Status": "exited", "ExitCode": 1}),
            other => serde_json::json!({"Status": other}),
        };
        let observed = ObservedState::of(&inspected(state));
        assert_eq!(observed.to_string(), seen);
        assert_eq!(observed.satisfies(want), holds, "{seen} as {want}");
    }
}
