//! `stackcheck init --observe`: a first suite from watching the stack run. The stack comes up as
//! `run` brings it up (its labels, ephemeral ports, teardown on every exit), and each service is
//! watched for a window: whether it stays up (healthy, when it has a healthcheck) or ends for
//! good; which container ports accept connections; what a few well-known HTTP paths answer on
//! them; whether a known server's own readiness command says it is ready. An observation becomes
//! a promise only when it was seen the same twice, and each promise says what was seen. The
//! suite is then run against the stack it came from before the stack is taken down.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{q, render, server, InitRequest};
use crate::engine::{ComposeError, ComposeModel, ContainerStatus, Health, ObservedState};
use crate::report::{Progress, Status};
use crate::suite::PortsMode;
use crate::{Stack, StackError};

/// Paths asked on every port that speaks HTTP: the page, health and readiness, metrics.
const PATHS: &[&str] = &[
    "/",
    "/health",
    "/healthz",
    "/ready",
    "/readyz",
    "/status",
    "/api/health",
    "/metrics",
];

/// Between the two looks whose agreement makes a promise.
const BETWEEN_LOOKS: Duration = Duration::from_secs(2);

/// What `init --observe` was asked for.
pub struct ObserveRequest {
    /// The compose project and where the suite goes.
    pub init: InitRequest,
    /// Only these services (and what they depend on) are started and watched; empty: all.
    pub services: Vec<String>,
    /// How long each service is watched once the stack is up.
    pub window: Duration,
}

/// Why no observed suite was written.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The compose files do not resolve.
    #[error("the compose files do not resolve: {0}")]
    Compose(#[from] ComposeError),
    /// The stack could not be brought up, watched or taken down.
    #[error("{0}")]
    Stack(#[from] StackError),
    /// A file next to the suite could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// The suite `init --observe` wrote, and whether it passed on the stack it came from.
pub struct Written {
    /// The suite's text.
    pub text: String,
    /// Set when the suite did not pass on the stack it was written from: what failed.
    pub unproven: Option<String>,
}

/// What held while the stack ran: each watched service's state, and the checks seen twice.
pub struct Observed {
    pub(super) states: BTreeMap<String, Seen>,
    checks: Vec<Promise>,
}

/// One service, as watched: the state to promise (none: nothing held) and what was seen.
pub(super) struct Seen {
    pub(super) state: Option<String>,
    pub(super) note: String,
}

/// One check seen to hold twice.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Promise {
    name: String,
    /// What was seen, for the reviewer.
    seen: String,
    /// The check's keys, one per line, after its `name`.
    keys: Vec<String>,
}

/// Brings the stack up, watches it, writes what held and proves it on the stack: the suite's
/// text, for the caller to write.
pub async fn observe(
    req: &ObserveRequest,
    progress: &dyn Progress,
) -> Result<Written, ObserveError> {
    let model = super::model(&req.init).await?;
    let watching = beside(&req.init, "observing");
    write(&watching, &watch_suite(&model, req))?;
    progress.phase(&format!(
        "starting the stack to watch it ({})",
        watching.display()
    ));
    let stack = Stack::builder(&watching)
        .ports(PortsMode::Ephemeral)
        .up()
        .await;
    let _ = std::fs::remove_file(&watching);
    let stack = stack?;
    let observed = watch(&stack, &model, req, progress).await;
    let text = render(&model, &req.init, Some(&observed));
    progress.phase("running the written suite against the stack it watched");
    let unproven = prove(&stack, &req.init, &text).await?.err();
    progress.phase("taking the stack down");
    stack.down().await?;
    Ok(Written { text, unproven })
}

/// A file beside the suite's output (its relative paths then resolve the same).
fn beside(init: &InitRequest, what: &str) -> PathBuf {
    let stem = init
        .output
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "stackcheck".into());
    init.output.with_file_name(format!(".{stem}.{what}.yaml"))
}

fn write(path: &PathBuf, text: &str) -> Result<(), ObserveError> {
    std::fs::write(path, text).map_err(|error| ObserveError::Write {
        path: path.clone(),
        error,
    })
}

/// The suite the stack is started with: its compose files and no promise, so that nothing about
/// the stack is assumed before it is seen.
fn watch_suite(model: &ComposeModel, req: &ObserveRequest) -> String {
    let suite_dir = super::absolute(
        req.init
            .output
            .parent()
            .unwrap_or(std::path::Path::new(".")),
    );
    let id = req
        .init
        .name
        .clone()
        .unwrap_or_else(|| super::default_id(&req.init.compose));
    let mut y = super::render_stack(model, &req.init, &suite_dir, &id, true);
    if !req.services.is_empty() {
        let _ = writeln!(y, "  services: {}", super::list(&req.services));
    }
    y.push_str("  timeout: 5m\nservices: {}\n");
    y
}

/// The services the stack started: those named (with what they depend on), else every one
/// outside a profile.
fn started(model: &ComposeModel, req: &ObserveRequest) -> Vec<String> {
    match req.services.is_empty() {
        true => model
            .services
            .iter()
            .filter(|(_, s)| s.profiles.is_empty())
            .map(|(n, _)| n.clone())
            .collect(),
        false => model
            .with_dependencies(req.services.clone())
            .into_iter()
            .collect(),
    }
}

async fn watch(
    stack: &Stack,
    model: &ComposeModel,
    req: &ObserveRequest,
    progress: &dyn Progress,
) -> Observed {
    let services = started(model, req);
    progress.phase(&format!(
        "watching {} service(s) for {} s",
        services.len(),
        req.window.as_secs()
    ));
    let states = watch_states(stack, &services, req.window).await;
    let up: Vec<String> = states
        .iter()
        .filter(|(_, s)| s.state.as_deref().is_some_and(|s| !s.starts_with("exited")))
        .map(|(n, _)| n.clone())
        .collect();
    progress.phase(&format!(
        "looking at what {} running service(s) serve",
        up.len()
    ));
    let first = look(stack, model, &up).await;
    tokio::time::sleep(BETWEEN_LOOKS).await;
    let second = look(stack, model, &up).await;
    let checks = first.into_iter().filter(|p| second.contains(p)).collect();
    Observed { states, checks }
}

/// How one service went while watched.
#[derive(Default)]
struct Track {
    first: Option<(ObservedState, i64)>,
    last: Option<(ObservedState, i64)>,
    /// Seen running at every look.
    always_running: bool,
}

/// Each service's state every second for `window`, and longer (up to 2 minutes) while a
/// healthcheck has not decided yet; what held is the state to promise.
async fn watch_states(
    stack: &Stack,
    services: &[String],
    window: Duration,
) -> BTreeMap<String, Seen> {
    let t0 = Instant::now();
    let mut tracks: BTreeMap<String, Track> = services
        .iter()
        .map(|s| {
            (
                s.clone(),
                Track {
                    always_running: true,
                    ..Track::default()
                },
            )
        })
        .collect();
    loop {
        for (service, track) in tracks.iter_mut() {
            let Ok(now) = stack.state(service).await else {
                track.always_running = false;
                continue;
            };
            track.always_running &= now.0.status == ContainerStatus::Running;
            track.first.get_or_insert(now.clone());
            track.last = Some(now);
        }
        let undecided = tracks.values().any(|t| {
            t.last
                .as_ref()
                .is_some_and(|(s, _)| s.health == Some(Health::Starting))
        });
        let elapsed = t0.elapsed();
        if elapsed >= window && (!undecided || elapsed >= Duration::from_secs(120)) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let secs = t0.elapsed().as_secs();
    tracks
        .into_iter()
        .map(|(service, t)| (service, judge(&t, secs)))
        .collect()
}

/// The state a track supports, with what was seen.
fn judge(t: &Track, secs: u64) -> Seen {
    let none = |note: String| Seen { state: None, note };
    let (Some((first, restarts_before)), Some((last, restarts_after))) = (&t.first, &t.last) else {
        return none("never seen: no container".into());
    };
    let restarts = restarts_after - restarts_before;
    if restarts > 0 {
        return none(format!(
            "restarted {restarts}× while watched ({secs} s): not promised"
        ));
    }
    match (&last.status, last.health) {
        (ContainerStatus::Exited(0), _) => Seen {
            state: Some("exited:0".into()),
            note: format!("observed: exited with code 0 and stayed so ({secs} s)"),
        },
        (ContainerStatus::Exited(code), _) => none(format!(
            "observed: exited with code {code}: a failing job or a crash? Not promised"
        )),
        (ContainerStatus::Running, Some(Health::Healthy)) if t.always_running => Seen {
            state: Some("healthy".into()),
            note: format!("observed: healthy, up without a restart for {secs} s"),
        },
        (ContainerStatus::Running, None) if t.always_running => Seen {
            state: Some("running".into()),
            note: format!("observed: running, up without a restart for {secs} s"),
        },
        (ContainerStatus::Running, Some(h)) => none(format!(
            "observed: its healthcheck said {h} after {secs} s: not promised"
        )),
        _ => none(format!(
            "observed: {first} at first, {last} after {secs} s: not promised"
        )),
    }
}

/// One look at what the running services serve: the checks it supports.
async fn look(stack: &Stack, model: &ComposeModel, services: &[String]) -> Vec<Promise> {
    let mut out = Vec::new();
    for service in services {
        let Some(s) = model.services.get(service) else {
            continue;
        };
        let known = server(s, std::path::Path::new("."));
        let published: BTreeSet<u16> = s
            .ports
            .iter()
            .filter(|p| p.published.as_deref().is_some_and(|h| !h.is_empty()))
            .map(|p| p.target)
            .collect();
        let mut ports: BTreeSet<u16> = s.ports.iter().map(|p| p.target).collect();
        ports.extend(stack.exposed(service).await.unwrap_or_default());
        ports.extend(known.as_ref().and_then(|k| k.port));
        for port in ports {
            let addrs = stack.addresses(service, port).await.unwrap_or_default();
            // Every address a check may take must accept (a check picks any of them).
            let mut accepting = !addrs.is_empty();
            for addr in &addrs {
                accepting &= accepts(addr).await;
            }
            let Some(addr) = addrs.first().filter(|_| accepting) else {
                continue;
            };
            // A published port is promised by `ports:` (a listener proven behind it).
            if !published.contains(&port) {
                out.push(tcp(service, port));
            }
            out.extend(http(service, port, addr).await);
        }
        if let Some(cmd) = known.as_ref().and_then(|k| k.ready) {
            if stack
                .exec(service, cmd.iter().copied())
                .await
                .is_ok_and(|o| o.exit == 0)
            {
                out.push(ready(service, cmd));
            }
        }
    }
    out
}

/// Whether a TCP connection to `addr` is accepted and kept open a moment (a proxy that accepts
/// and closes at once has nothing behind it).
async fn accepts(addr: &str) -> bool {
    use tokio::io::AsyncReadExt;
    let connect = tokio::net::TcpStream::connect(addr);
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
        return false;
    };
    let mut byte = [0u8; 1];
    // Closed at once (a read of 0 bytes) is no listener; data or silence is one.
    !matches!(
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn tcp(service: &str, port: u16) -> Promise {
    Promise {
        name: format!("{service} accepts TCP on {port}"),
        seen: format!("seen twice: a connection to {service}:{port} accepted"),
        keys: vec![
            format!("tcp: {{ service: {}, port: {port} }}", q(service)),
            "retry: { for: 30s, every: 1s }".into(),
        ],
    }
}

fn ready(service: &str, cmd: &[&str]) -> Promise {
    let words: Vec<String> = cmd.iter().map(|w| w.to_string()).collect();
    Promise {
        name: format!("{service} says it is ready"),
        seen: format!("seen twice: `{}` exited 0", cmd.join(" ")),
        keys: vec![
            format!(
                "exec: {{ service: {}, cmd: {} }}",
                q(service),
                super::list(&words)
            ),
            "retry: { for: 30s, every: 1s }".into(),
        ],
    }
}

/// What one HTTP path answered: the status, the media type, and a fragment that identifies the
/// page (its title, or its JSON keys with scalar values).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    media: Option<String>,
    title: Option<String>,
    json: BTreeMap<String, serde_json::Value>,
}

/// The promises of the well-known paths that answer 2xx on `addr`.
async fn http(service: &str, port: u16, addr: &str) -> Vec<Promise> {
    // reqwest's rustls takes the process's provider (the one bollard's TLS uses too).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        // A redirect is not followed: it may lead outside the stack, where no probe goes.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for path in PATHS {
        let Some(answer) = get(&client, &format!("http://{addr}{path}")).await else {
            // Not HTTP at all: no other path will be.
            if *path == "/" {
                break;
            }
            continue;
        };
        if (200..300).contains(&answer.status) {
            out.push(http_promise(service, port, path, &answer));
        }
    }
    out
}

async fn get(client: &reqwest::Client, url: &str) -> Option<Answer> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let body = response.text().await.unwrap_or_default();
    let title = regex::Regex::new(r"(?is)<title[^>]*>\s*([^<]{1,120}?)\s*</title>")
        .ok()
        .and_then(|re| re.captures(&body).map(|c| c[1].to_string()));
    let json = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(_, v)| v.is_string() || v.is_boolean() || v.is_i64())
            .collect(),
        _ => BTreeMap::new(),
    };
    Some(Answer {
        status,
        media,
        title,
        json,
    })
}

fn http_promise(service: &str, port: u16, path: &str, a: &Answer) -> Promise {
    let mut expect = vec![format!("status: {}", a.status)];
    let mut seen = vec![a.status.to_string()];
    if let Some(media) = &a.media {
        expect.push(format!(
            "headers: {{ content-type: {} }}",
            q(&format!("/^{}/", regex::escape(media)))
        ));
        seen.push(media.clone());
    }
    if let Some(title) = &a.title {
        expect.push(format!("body: {}", q(&format!("<title>{title}</title>"))));
        seen.push(format!("title {title:?}"));
    }
    if !a.json.is_empty() {
        let json = serde_json::to_string(&a.json).unwrap_or_default();
        expect.push(format!("json: {json}"));
        seen.push(json);
    }
    Promise {
        name: format!("{service} answers GET {path} on {port}"),
        seen: format!("seen twice: {}", seen.join(", ")),
        keys: vec![
            format!(
                "http: {{ service: {}, port: {port}, path: {} }}",
                q(service),
                q(path)
            ),
            format!("expect: {{ {} }}", expect.join(", ")),
            "retry: { for: 30s, every: 1s }".into(),
        ],
    }
}

impl Observed {
    /// `checks:`, one per promise that held twice, each saying what was seen.
    pub(super) fn render_checks(&self, y: &mut String) {
        if self.checks.is_empty() {
            let _ = writeln!(
                *y,
                "\n# Nothing the stack serves held twice while it was watched."
            );
            return;
        }
        let _ = writeln!(
            *y,
            "\n# What the stack served, seen the same twice while it ran.\nchecks:"
        );
        for p in &self.checks {
            let _ = writeln!(*y, "  # {}", p.seen);
            let _ = writeln!(*y, "  - name: {}", q(&p.name));
            for key in &p.keys {
                let _ = writeln!(*y, "    {key}");
            }
        }
    }
}

/// Runs the written suite against the stack it was written from: Err(what failed) inside.
async fn prove(
    stack: &Stack,
    init: &InitRequest,
    text: &str,
) -> Result<Result<(), String>, ObserveError> {
    let path = beside(init, "observed");
    write(&path, text)?;
    let loaded = crate::plan::load_file(&path);
    let _ = std::fs::remove_file(&path);
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => return Ok(Err(format!("it does not load (please report): {e}"))),
    };
    let report = stack.check_with(&loaded).await;
    let failed: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| format!("{}: {}", o.name, o.message))
        .collect();
    Ok(match (report.infra_error, failed.is_empty()) {
        (Some(e), _) => Err(e),
        (None, true) => Ok(()),
        (None, false) => Err(failed.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: ContainerStatus, health: Option<Health>) -> (ObservedState, i64) {
        (ObservedState { status, health }, 0)
    }

    #[test]
    fn only_what_held_is_promised() {
        let track = |first, last, always_running| Track {
            first: Some(first),
            last: Some(last),
            always_running,
        };
        let running = || state(ContainerStatus::Running, None);
        let exited = |c| state(ContainerStatus::Exited(c), None);
        assert_eq!(
            judge(&track(running(), running(), true), 15)
                .state
                .as_deref(),
            Some("running")
        );
        assert_eq!(
            judge(&track(running(), exited(0), false), 15)
                .state
                .as_deref(),
            Some("exited:0")
        );
        assert_eq!(judge(&track(running(), exited(3), false), 15).state, None);
        // Running again at the end, but not at every look: a crash the restart hid.
        assert_eq!(judge(&track(running(), running(), false), 15).state, None);
        let healthy = state(ContainerStatus::Running, Some(Health::Healthy));
        assert_eq!(
            judge(&track(running(), healthy, true), 15).state.as_deref(),
            Some("healthy")
        );
        let restarted = Track {
            first: Some(running()),
            last: Some((running().0, 2)),
            always_running: true,
        };
        assert!(judge(&restarted, 15).note.contains("restarted 2×"));
    }

    #[test]
    fn an_answer_becomes_a_check_with_what_identifies_it() {
        let a = Answer {
            status: 200,
            media: Some("application/json".into()),
            title: None,
            json: [("status".to_string(), serde_json::json!("ok"))].into(),
        };
        let p = http_promise("web", 8000, "/health", &a);
        assert_eq!(p.name, "web answers GET /health on 8000");
        assert_eq!(
            p.keys[1],
            r#"expect: { status: 200, headers: { content-type: "/^application/json/" }, json: {"status":"ok"} }"#
        );
    }
}
