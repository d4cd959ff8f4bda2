//! Smoke checks: http, tcp, exec, from_host and files, each judged against its `expect`.
//!
//! Traffic only goes to loopback (a published port) or to the address of a container this run
//! created — never anywhere else.

use std::time::Duration;

use super::listen::{listen, not_listening};
use super::{Ctx, Verdict};
use crate::engine::HelperSpec;
use crate::report::{snippet, tail_snippet};
use crate::suite::{text_matches, ExecCheck, Expect, FromHostCheck, HttpCheck, TcpCheck};

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FROM_HOST_LIMIT: Duration = Duration::from_secs(60);

/// A TCP connection to a service's port is accepted.
pub(super) async fn tcp(ctx: &Ctx<'_>, p: &TcpCheck) -> Verdict {
    let addr = match target(ctx, &p.service, p.port).await {
        Ok(addr) => addr,
        Err(v) => return v,
    };
    let seen = listen(&addr, ATTEMPT_TIMEOUT).await;
    match not_listening(&seen, p.port, &addr, ATTEMPT_TIMEOUT) {
        None => Verdict::pass(format!("{}:{} accepts TCP (via {addr})", p.service, p.port)),
        Some(why) => Verdict::fail(format!("`{}`: {why}", p.service)),
    }
}

/// A command run inside a service's running container.
pub(super) async fn exec(ctx: &Ctx<'_>, p: &ExecCheck, expect: &Expect) -> Verdict {
    let id = match ctx.running(&p.service).await {
        Ok(id) => id,
        Err(v) => return v,
    };
    match ctx
        .engine
        .exec(&id, &p.cmd, p.user.as_deref(), Duration::from_secs(60))
        .await
    {
        Ok(out) => expect_exec(expect, out.exit, &out.stdout, &out.stderr),
        Err(e) => Verdict::fail(e.to_string()),
    }
}

/// Files the stack must have written on the host exist.
pub(super) fn files(ctx: &Ctx<'_>, paths: &[String]) -> Verdict {
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !ctx.host_path(p).exists())
        .collect();
    if missing.is_empty() {
        Verdict::pass(format!("{} files exist", paths.len()))
    } else {
        Verdict::fail(format!(
            "missing: {missing:?} (relative to {})",
            ctx.loaded.dir.display()
        ))
    }
}

/// Runs the command in a throwaway, labelled container on the host's network with the image the
/// service's container runs (the image ID, so a rebuilt tag cannot change what is tested).
pub(super) async fn from_host(ctx: &Ctx<'_>, p: &FromHostCheck, expect: &Expect) -> Verdict {
    let (_, info) = match ctx.inspect(&p.image_of).await {
        Ok(x) => x,
        Err(v) => return v,
    };
    let Some(image) = info.image else {
        return Verdict::fail(format!("`{}` has no image in its inspect", p.image_of));
    };
    let spec = HelperSpec {
        image,
        cmd: p.cmd.clone(),
        network_mode: Some("host".into()),
        labels: ctx.labels.clone(),
        ..Default::default()
    };
    match ctx.engine.run_helper(&spec, FROM_HOST_LIMIT).await {
        Ok(out) => expect_exec(expect, out.exit, &out.stdout, &out.stderr),
        Err(e) => Verdict::fail(format!("from the host with `{}`'s image: {e}", p.image_of)),
    }
}

/// Where to reach a service's container port: its published loopback port, else the container's
/// own address on one of its networks.
async fn target(ctx: &Ctx<'_>, service: &str, port: u16) -> Result<String, Verdict> {
    let id = ctx.running(service).await?;
    let info = ctx
        .engine
        .inspect(&id)
        .await
        .map_err(|e| Verdict::fail(e.to_string()))?;
    let settings = info.network_settings.unwrap_or_default();
    let published = settings
        .ports
        .as_ref()
        .and_then(|p| p.get(&format!("{port}/tcp")).cloned().flatten())
        .and_then(|b| b.into_iter().find_map(|b| b.host_port));
    let addr = match published {
        Some(host_port) => crate::engine::published_addr(&host_port),
        None if crate::engine::remote_engine_host().is_some() => {
            return Err(Verdict::fail(format!(
                "`{service}` port {port} is not published, and container addresses of a remote engine (DOCKER_HOST) cannot be reached from here"
            )))
        }
        None => settings
            .networks
            .unwrap_or_default()
            .into_values()
            .find_map(|n| n.ip_address.filter(|ip| !ip.is_empty()))
            .map(|ip| format!("{ip}:{port}"))
            .ok_or_else(|| {
                Verdict::fail(format!(
                    "`{service}` port {port} is neither published nor reachable on a network"
                ))
            })?,
    };
    ctx.home(&addr).await?;
    Ok(addr)
}

pub(super) async fn http(ctx: &Ctx<'_>, p: &HttpCheck, expect: &Expect) -> Verdict {
    let addr = match target(ctx, &p.service, p.port).await {
        Ok(a) => a,
        Err(v) => return v,
    };
    let url = format!(
        "http://{addr}{}",
        if p.path.starts_with('/') {
            p.path.clone()
        } else {
            format!("/{}", p.path)
        }
    );
    let method = p.method.to_ascii_uppercase();
    let shown = format!("{method} {}:{}{}", p.service, p.port, p.path);
    let method = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return Verdict::fail(format!("{shown}: `{method}` is not an HTTP method")),
    };
    let client = match ctx.http() {
        Ok(c) => c,
        Err(e) => return Verdict::fail(format!("{shown}: {e}")),
    };
    let res = async {
        let resp = client.request(method, &url).send().await?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    };
    let (status, body) = match res.await {
        Ok(r) => r,
        Err(e) => {
            return Verdict::fail(format!(
                "{shown}: request to {url} failed: {}",
                request_error(&e)
            ))
        }
    };
    let status_ok = match expect.status {
        Some(s) => status == s,
        None => (200..300).contains(&status),
    };
    if !status_ok {
        let want = expect
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "2xx".into());
        return Verdict::fail(format!(
            "{shown}: expected status {want}, got {status}; body: {}",
            snippet(&body, 200)
        ));
    }
    if let Some(pattern) = &expect.body {
        match text_matches(pattern, &body) {
            Ok(true) => {}
            Ok(false) => {
                return Verdict::fail(format!(
                    "{shown}: body does not match {pattern}; body: {}",
                    snippet(&body, 200)
                ))
            }
            Err(e) => return Verdict::fail(e),
        }
    }
    if let Some(want) = &expect.json {
        let got: serde_json::Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => {
                return Verdict::fail(format!(
                    "{shown}: body is not JSON ({e}); body: {}",
                    snippet(&body, 200)
                ))
            }
        };
        if let Err(path) = json_contains(&got, want, "$") {
            return Verdict::fail(format!(
                "{shown}: JSON differs at {path}; body: {}",
                snippet(&body, 200)
            ));
        }
    }
    Verdict::pass(format!("{shown} → {status}"))
}

/// `got` contains `want`: every key of every object in `want`, with equal scalars.
fn json_contains(
    got: &serde_json::Value,
    want: &serde_json::Value,
    path: &str,
) -> Result<(), String> {
    use serde_json::Value;
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => json_contains(gv, wv, &p)?,
                    None => return Err(format!("{p} (missing, expected {wv})")),
                }
            }
            Ok(())
        }
        (g, w) if g == w => Ok(()),
        (g, w) => Err(format!("{path} (expected {w}, got {g})")),
    }
}

fn expect_exec(expect: &Expect, exit: i64, stdout: &str, stderr: &str) -> Verdict {
    let want_exit = expect.exit.unwrap_or(0);
    if exit != want_exit {
        let said = if stdout.trim().is_empty() {
            String::new()
        } else {
            format!("; stdout: {}", tail_snippet(stdout, 200))
        };
        return Verdict::fail(format!(
            "exit code {exit}, expected {want_exit}{said}; stderr: {}",
            tail_snippet(stderr, 300)
        ))
        .with_detail(format!(
            "--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ));
    }
    for (stream, pattern, text) in [
        ("stdout", &expect.stdout, stdout),
        ("stderr", &expect.stderr, stderr),
    ] {
        if let Some(pattern) = pattern {
            match text_matches(pattern, text) {
                Ok(true) => {}
                Ok(false) => {
                    return Verdict::fail(format!(
                        "{stream} does not match {pattern}; {stream}: {}",
                        snippet(text, 300)
                    ))
                }
                Err(e) => return Verdict::fail(e),
            }
        }
    }
    Verdict::pass(format!("exit {exit}; stdout: {}", snippet(stdout, 80)))
}

/// An HTTP client for a run's checks. Redirects are followed (up to 10, as browsers and
/// `curl -L` do): a check judges the page a user ends on. TLS is rustls with the ring provider,
/// as bollard's, installed once for the process (reqwest refuses to build a client without one).
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// The whole chain of a request error (reqwest's own message is only its outermost layer, e.g.
/// "error sending request").
fn request_error(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_subset() {
        let got = json!({"status": "ok", "db": "ok", "n": 1});
        assert!(json_contains(&got, &json!({"status": "ok"}), "$").is_ok());
        let e = json_contains(&got, &json!({"status": "down"}), "$").unwrap_err();
        assert_eq!(e, "$.status (expected \"down\", got \"ok\")");
        assert!(json_contains(&got, &json!({"redis": "ok"}), "$")
            .unwrap_err()
            .contains("missing"));
    }

    #[test]
    fn exec_expectations() {
        let e = Expect {
            stdout: Some("/^PONG$/".into()),
            ..Default::default()
        };
        assert!(expect_exec(&e, 0, "PONG\n", "").passed);
        assert!(!expect_exec(&e, 0, "NO\n", "").passed);
        assert!(!expect_exec(&e, 1, "PONG\n", "boom").passed);
    }

    /// A refused connection says so, not only reqwest's outer "error sending request".
    #[tokio::test]
    async fn a_request_error_names_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = super::http_client()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let msg = super::request_error(&err);
        assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
    }
}
