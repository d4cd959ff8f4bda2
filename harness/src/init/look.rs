//! One look at what a running stack serves, for `init --observe`: the container ports that
//! accept connections, what well-known HTTP paths answer on them, and a known server's own
//! readiness command, each as the check that would prove it again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{q, server};
use crate::engine::ComposeModel;
use crate::Stack;

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

/// Every written check polls a while: a later run may judge it before the service is ready.
const RETRY: &str = "retry: { for: 30s, every: 1s }";

/// One check seen to hold twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Promise {
    pub(super) name: String,
    /// What was seen, for the reviewer.
    pub(super) seen: String,
    /// The check's keys, one per line, after its `name`.
    pub(super) keys: Vec<String>,
}

impl Promise {
    /// The check under `checks:`, after a comment saying what was seen.
    pub(super) fn render(&self, y: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(*y, "  # {}", self.seen);
        let _ = writeln!(*y, "  - name: {}", q(&self.name));
        for key in &self.keys {
            let _ = writeln!(*y, "    {key}");
        }
    }
}

/// What one look saw: the checks it supports, and the ports each service accepted connections on.
#[derive(Default)]
pub(super) struct Look {
    pub(super) promises: Vec<Promise>,
    pub(super) accepting: BTreeMap<String, BTreeSet<u16>>,
}

impl Look {
    /// What both looks saw alike.
    pub(super) fn agreed(self, other: &Look) -> Look {
        let promises = self
            .promises
            .into_iter()
            .filter(|p| other.promises.contains(p))
            .collect();
        let accepting = self
            .accepting
            .into_iter()
            .map(|(s, ports)| {
                let again = other.accepting.get(&s).cloned().unwrap_or_default();
                (s, ports.intersection(&again).copied().collect())
            })
            .collect();
        Look {
            promises,
            accepting,
        }
    }
}

/// One look at what the running services serve: the checks it supports.
pub(super) async fn look(stack: &Stack, model: &ComposeModel, services: &[String]) -> Look {
    let mut seen = Look::default();
    let out = &mut seen.promises;
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
        ports.extend(stack.listening(service).await.unwrap_or_default());
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
            seen.accepting
                .entry(service.clone())
                .or_default()
                .insert(port);
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
    seen
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
            RETRY.into(),
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
            RETRY.into(),
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
    Some(Answer {
        status,
        media,
        title,
        json: json_fragment(&body),
    })
}

/// The top-level keys of a JSON object body whose values may identify it: strings, booleans and
/// integers, but no container id (a hostname) or hash, which the next container changes.
fn json_fragment(body: &str) -> BTreeMap<String, serde_json::Value> {
    let id_like = regex::Regex::new(r"[0-9a-fA-F]{12,}").ok();
    let stable = |v: &serde_json::Value| match v.as_str() {
        Some(s) => !id_like.as_ref().is_some_and(|re| re.is_match(s)),
        None => v.is_boolean() || v.is_i64(),
    };
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().filter(|(_, v)| stable(v)).collect(),
        _ => BTreeMap::new(),
    }
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
            RETRY.into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_id_or_a_hash_is_no_fragment() {
        let body = r#"{"name": "03d62cab3fac", "cluster_name": "docker-cluster", "build": "9d2b7c1e4f5a6b7c8d9e", "up": true, "n": 2, "t": 1.5}"#;
        let keys: Vec<String> = json_fragment(body).into_keys().collect();
        assert_eq!(keys, ["cluster_name", "n", "up"]);
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
