//! Smoke checks (`checks:`) and the steps of scenarios: what each kind of check or action says.
//!
//! A check is written as a map with exactly one kind key (`http`, `tcp`, `exec`, `from_host`,
//! `files`, `reach`, `isolated`, `logs`, `run`, `state` or `steps`); a step is the same without a name, or an action.

use schemars::JsonSchema;
use serde::Deserialize;

use std::collections::BTreeMap;

use super::{DesiredState, Dur, Expect, Retry};

/// One smoke check with its kind, expectations and retry budget.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawCheck")]
pub struct Check {
    pub(crate) name: String,
    /// Line and column of the check's name in the suite file.
    pub(crate) at: (u64, u64),
    pub(crate) kind: CheckKind,
    pub(crate) expect: Expect,
    pub(crate) retry: Option<Retry>,
    /// Re-runs after a failure; a pass on a re-run is recorded as flaky.
    pub(crate) retries: u32,
}

#[derive(Clone, Debug)]
/// What a check (or a step) proves.
pub enum CheckKind {
    /// An HTTP request to a service answers as expected.
    Http(HttpCheck),
    /// A service's port accepts TCP connections.
    Tcp(TcpCheck),
    /// A command inside a service's container.
    Exec(ExecCheck),
    /// A command run from the host's side.
    FromHost(FromHostCheck),
    /// Files (relative to the suite) that must exist.
    Files(Vec<String>),
    /// One service reaches (or cannot reach) another.
    Reach(ReachCheck),
    /// A service has no network.
    Isolated(ServiceRef),
    /// A service's log shows a line.
    Logs(LogsCheck),
    /// A one-off `docker compose run`.
    Run(RunCheck),
    /// A service reaches a state.
    State(StateCheck),
    /// Ordered checks and actions.
    Steps(Vec<Step>),
}

impl CheckKind {
    /// The service whose container a failure's diagnostics come from.
    pub fn service(&self) -> Option<&str> {
        match self {
            CheckKind::Http(p) => Some(&p.service),
            CheckKind::Tcp(p) => Some(&p.service),
            CheckKind::Exec(p) => Some(&p.service),
            CheckKind::FromHost(p) => Some(&p.image_of),
            CheckKind::Reach(p) => Some(&p.from),
            CheckKind::Isolated(p) => Some(&p.service),
            CheckKind::Logs(p) => Some(&p.service),
            CheckKind::Run(p) => Some(&p.service),
            CheckKind::State(p) => Some(&p.service),
            CheckKind::Files(_) | CheckKind::Steps(_) => None,
        }
    }

    /// This kind, or for a scenario the kind of each of its check steps, with where it is written
    /// (`""`, or `"step N: "`).
    pub fn with_steps(&self) -> Vec<(String, &CheckKind)> {
        match self {
            CheckKind::Steps(steps) => steps
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match &s.action {
                    Action::Check { kind, .. } => Some((format!("step {}: ", i + 1), &**kind)),
                    _ => None,
                })
                .collect(),
            kind => vec![(String::new(), kind)],
        }
    }

    /// Every service this check (or its steps) names.
    pub fn services(&self) -> Vec<String> {
        let mut out: Vec<String> = self.service().map(str::to_string).into_iter().collect();
        if let CheckKind::Reach(r) = self {
            if let Some((to, _)) = r.target() {
                out.push(to.to_string());
            }
        }
        if let CheckKind::Steps(steps) = self {
            for s in steps {
                match &s.action {
                    Action::Check { kind, .. } => out.extend(kind.services()),
                    Action::Restart(s) | Action::Stop(s) | Action::Start(s) => out.push(s.clone()),
                    Action::Kill(k) => out.push(k.service.clone()),
                    Action::DownUp => {}
                }
            }
        }
        out
    }
}

/// One step of a scenario: a check (same keys as in `checks:`, without a name) or an action.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawStep")]
pub struct Step {
    pub(crate) action: Action,
}

#[derive(Clone, Debug)]
/// One step of a scenario.
pub enum Action {
    /// A check, with its own expectations and retry budget.
    Check {
        /// What it proves.
        kind: Box<CheckKind>,
        /// What must hold.
        expect: Box<Expect>,
        /// How long to poll.
        retry: Option<Retry>,
    },
    /// Restart a service's container.
    Restart(String),
    /// Stop a service's container.
    Stop(String),
    /// Start a service's container again.
    Start(String),
    /// Send a signal to a service's main process.
    Kill(KillAction),
    /// `compose down` (volumes kept) then `up` again, waiting for every service's state.
    DownUp,
}

impl Action {
    /// The step in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            Action::Check { kind, .. } => format!("{} check", kind_name(kind)),
            Action::Restart(s) => format!("restart {s}"),
            Action::Stop(s) => format!("stop {s}"),
            Action::Start(s) => format!("start {s}"),
            Action::Kill(k) => format!("kill -{} {}", k.signal, k.service),
            Action::DownUp => "down (volumes kept) and up".into(),
        }
    }
}

/// The key that names `kind` in a suite (`http`, `tcp`, …).
pub fn kind_name(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Http(_) => "http",
        CheckKind::Tcp(_) => "tcp",
        CheckKind::Exec(_) => "exec",
        CheckKind::FromHost(_) => "from_host",
        CheckKind::Files(_) => "files",
        CheckKind::Reach(_) => "reach",
        CheckKind::Isolated(_) => "isolated",
        CheckKind::Logs(_) => "logs",
        CheckKind::Run(_) => "run",
        CheckKind::State(_) => "state",
        CheckKind::Steps(_) => "steps",
    }
}

/// The check keys shared by checks and steps, as written.
macro_rules! kind_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        pub struct $name {
            $($extra)*
            #[serde(default)]
            pub(crate) http: Option<HttpCheck>,
            #[serde(default)]
            pub(crate) tcp: Option<TcpCheck>,
            #[serde(default)]
            pub(crate) exec: Option<ExecCheck>,
            /// A command run in the host's network namespace (clients of published ports).
            #[serde(default)]
            pub(crate) from_host: Option<FromHostCheck>,
            /// Files (relative to the suite) that must exist.
            #[serde(default)]
            pub(crate) files: Option<Vec<String>>,
            /// A TCP connection from one service to another (`service:port`), tried from inside the
            /// first one's network namespace.
            #[serde(default)]
            pub(crate) reach: Option<ReachCheck>,
            /// The service has no network: only loopback, no route, the harness's canaries unreachable.
            #[serde(default)]
            pub(crate) isolated: Option<ServiceRef>,
            /// The service's log shows a line (substring or `/regex/`) within a time.
            #[serde(default)]
            pub(crate) logs: Option<LogsCheck>,
            /// A one-off `docker compose run --rm <service> <args>`.
            #[serde(default)]
            pub(crate) run: Option<RunCheck>,
            /// The service reaches a state within a time.
            #[serde(default)]
            pub(crate) state: Option<StateCheck>,
            #[serde(default)]
            pub(crate) expect: Option<Expect>,
            #[serde(default)]
            pub(crate) retry: Option<Retry>,
        }

        impl $name {
            /// The check kinds present, by key (taken out of the struct).
            fn check_kinds(&mut self) -> Vec<(&'static str, CheckKind)> {
                let mut kinds = Vec::new();
                kinds.extend(self.http.take().map(|p| ("http", CheckKind::Http(p))));
                kinds.extend(self.tcp.take().map(|p| ("tcp", CheckKind::Tcp(p))));
                kinds.extend(self.exec.take().map(|p| ("exec", CheckKind::Exec(p))));
                kinds.extend(self.from_host.take().map(|p| ("from_host", CheckKind::FromHost(p))));
                kinds.extend(self.files.take().map(|p| ("files", CheckKind::Files(p))));
                kinds.extend(self.reach.take().map(|p| ("reach", CheckKind::Reach(p))));
                kinds.extend(self.isolated.take().map(|p| ("isolated", CheckKind::Isolated(p))));
                kinds.extend(self.logs.take().map(|p| ("logs", CheckKind::Logs(p))));
                kinds.extend(self.run.take().map(|p| ("run", CheckKind::Run(p))));
                kinds.extend(self.state.take().map(|p| ("state", CheckKind::State(p))));
                kinds
            }
        }
    };
}

kind_fields! {
    /// The check as written; turned into [`Check`] once exactly one kind is known to be present.
    #[derive(Clone, Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RawCheck {
        #[schemars(with = "String")]
        pub(crate) name: serde_saphyr::Spanned<String>,
        /// Ordered checks and actions; the check passes when every step does.
        #[serde(default)]
        pub(crate) steps: Option<Vec<Step>>,
        /// Run the whole check again up to N times after a failure (at most 10). A check that
        /// passes on a re-run is flaky: it passes the gate, marked as such, unless
        /// `run --no-flaky`. Unlike `retry` (polling for a condition that takes time), a re-run
        /// means the check failed once.
        #[serde(default)]
        pub(crate) retries: Option<u32>,
    }
}

kind_fields! {
    /// A step as written: one check key, or one action key.
    #[derive(Clone, Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RawStep {
        #[serde(default)]
        pub(crate) restart: Option<String>,
        #[serde(default)]
        pub(crate) stop: Option<String>,
        #[serde(default)]
        pub(crate) start: Option<String>,
        #[serde(default)]
        pub(crate) kill: Option<KillAction>,
        /// `true`: `compose down` keeping volumes, then `up` again.
        #[serde(default)]
        pub(crate) down_up: Option<bool>,
    }
}

fn exactly_one<T>(
    mut found: Vec<(&'static str, T)>,
    what: &str,
    allowed: &str,
) -> Result<T, String> {
    if found.len() == 1 {
        if let Some((_, k)) = found.pop() {
            return Ok(k);
        }
    }
    let names: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
    Err(format!(
        "{what} must have exactly one of {allowed} (found {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    ))
}

const CHECK_KEYS: &str =
    "`http`, `tcp`, `exec`, `from_host`, `files`, `reach`, `isolated`, `logs`, `run`, `state`, `steps`";
const STEP_KEYS: &str =
    "`http`, `tcp`, `exec`, `from_host`, `files`, `reach`, `isolated`, `logs`, `run`, `state`, `restart`, `stop`, `start`, `kill`, `down_up`";

impl TryFrom<RawCheck> for Check {
    type Error = String;
    fn try_from(mut raw: RawCheck) -> Result<Check, String> {
        let name = raw.name.value.trim().to_string();
        if name.is_empty() {
            return Err("check `name` must not be empty".into());
        }
        let mut kinds = raw.check_kinds();
        if let Some(steps) = raw.steps {
            if steps.is_empty() {
                return Err(format!("check `{name}`: `steps` must not be empty"));
            }
            kinds.push(("steps", CheckKind::Steps(steps)));
        }
        let kind = exactly_one(kinds, &format!("check `{name}`"), CHECK_KEYS)?;
        let at = (raw.name.referenced.line(), raw.name.referenced.column());
        Ok(Check {
            name,
            at,
            kind,
            expect: raw.expect.unwrap_or_default(),
            retry: raw.retry,
            retries: raw.retries.unwrap_or(0),
        })
    }
}

impl TryFrom<RawStep> for Step {
    type Error = String;
    fn try_from(mut raw: RawStep) -> Result<Step, String> {
        let mut found: Vec<(&'static str, Action)> = Vec::new();
        let kinds = raw.check_kinds();
        let (expect, retry) = (raw.expect, raw.retry);
        let is_check = !kinds.is_empty();
        for (k, kind) in kinds {
            found.push((
                k,
                Action::Check {
                    kind: Box::new(kind),
                    expect: Box::new(expect.clone().unwrap_or_default()),
                    retry: retry.clone(),
                },
            ));
        }
        found.extend(raw.restart.map(|s| ("restart", Action::Restart(s))));
        found.extend(raw.stop.map(|s| ("stop", Action::Stop(s))));
        found.extend(raw.start.map(|s| ("start", Action::Start(s))));
        found.extend(raw.kill.map(|k| ("kill", Action::Kill(k))));
        match raw.down_up {
            Some(true) => found.push(("down_up", Action::DownUp)),
            Some(false) => {
                return Err(
                    "`down_up: false` does nothing; remove the step or write `down_up: true`"
                        .into(),
                )
            }
            None => {}
        }
        let action = exactly_one(found, "a step", STEP_KEYS)?;
        if !is_check && (expect.is_some() || retry.is_some()) {
            return Err(format!(
                "step `{}` is an action: `expect` and `retry` belong to checks",
                action.describe()
            ));
        }
        Ok(Step { action })
    }
}

macro_rules! schema_as {
    ($t:ty, $raw:ty, $name:literal) => {
        impl JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                <$raw>::json_schema(generator)
            }
        }
    };
}
schema_as!(Check, RawCheck, "Check");
schema_as!(Step, RawStep, "Step");

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// An HTTP request to a service's port.
pub struct HttpCheck {
    pub(crate) service: String,
    pub(crate) port: u16,
    #[serde(default = "default_path")]
    pub(crate) path: String,
    #[serde(default = "default_method")]
    pub(crate) method: String,
    /// `http` (default) or `https`.
    #[serde(default)]
    pub(crate) scheme: Scheme,
    /// How an `https` server's certificate is verified (default: the system's CAs, for the
    /// service's name).
    #[serde(default)]
    pub(crate) tls: Option<TlsOptions>,
    /// Request headers. `${VAR}` takes a variable from the suite's `stack.env`, the process
    /// environment or `stack.env_file` (in that order, as compose); a secret one is masked.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Request body as JSON (sets `Content-Type: application/json`).
    #[serde(default)]
    pub(crate) json: Option<serde_json::Value>,
    /// Request body as raw text (`${VAR}` as in headers).
    #[serde(default)]
    pub(crate) body: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// The scheme of an HTTP check's URL.
pub enum Scheme {
    #[default]
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Verification of an `https` server's certificate.
pub struct TlsOptions {
    /// PEM file (relative to the suite) of the CA that must have signed the server's
    /// certificate; the only CA trusted.
    #[serde(default)]
    pub(crate) ca: Option<String>,
    /// `true`: no verification at all (a self-signed development certificate).
    #[serde(default)]
    pub(crate) insecure: bool,
    /// The name the certificate must be valid for (default: the service's name, as the stack's
    /// own containers reach it; e.g. `localhost` for a certificate made for the host).
    #[serde(default)]
    pub(crate) server_name: Option<String>,
}

fn default_path() -> String {
    "/".into()
}
fn default_method() -> String {
    "GET".into()
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A TCP connection to a service's port.
pub struct TcpCheck {
    pub(crate) service: String,
    pub(crate) port: u16,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A command run in a service's running container.
pub struct ExecCheck {
    pub(crate) service: String,
    pub(crate) cmd: Vec<String>,
    #[serde(default)]
    pub(crate) user: Option<String>,
}

/// A command run from the host's side, as a tool on the developer's machine would: a throwaway
/// container with the host's network namespace (so `localhost:<published port>` is the stack as
/// the host sees it), using the image of a service of the stack for its tools. It should only
/// talk to loopback.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FromHostCheck {
    /// The service whose image provides the command.
    pub(crate) image_of: String,
    pub(crate) cmd: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A service, by name.
pub struct ServiceRef {
    pub(crate) service: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// Whether a connection must succeed.
pub enum Reachability {
    #[default]
    /// The connection succeeds.
    Reachable,
    /// The connection is refused or times out.
    Unreachable,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A TCP connection from one service to another, from inside the first.
pub struct ReachCheck {
    pub(crate) from: String,
    /// `service:port`.
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) expect: Reachability,
}

impl ReachCheck {
    /// `(service, port)` of `to`, when well formed.
    pub fn target(&self) -> Option<(&str, u16)> {
        let (s, p) = self.to.rsplit_once(':')?;
        Some((s, p.parse().ok().filter(|p| *p > 0)?)).filter(|(s, _)| !s.is_empty())
    }
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A line a service's log must show, or must not have shown.
pub struct LogsCheck {
    pub(crate) service: String,
    /// Substring or `/regex/` a line must match (waited for, up to `within`).
    #[serde(default)]
    pub(crate) contains: Option<String>,
    /// Substring or `/regex/` no line of the whole log so far may match (after `contains`, when
    /// both are given).
    #[serde(default)]
    pub(crate) excludes: Option<String>,
    /// How long to watch the log for `contains` (default 30s).
    #[serde(default)]
    pub(crate) within: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A one-off container of a service (`docker compose run --rm`).
pub struct RunCheck {
    pub(crate) service: String,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// Budget for the one-off container (default 2m).
    #[serde(default)]
    pub(crate) timeout: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A state a service must reach.
pub struct StateCheck {
    pub(crate) service: String,
    pub(crate) is: DesiredState,
    /// How long to wait for it (default 30s).
    #[serde(default)]
    pub(crate) within: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A signal sent to a service's main process.
pub struct KillAction {
    pub(crate) service: String,
    /// Signal name such as `KILL`, `TERM`, `SIGINT` (default KILL). Delivered to the container's
    /// main process as a crash would be, so restart policies apply.
    #[serde(default = "default_signal")]
    pub(crate) signal: String,
}

fn default_signal() -> String {
    "KILL".into()
}
