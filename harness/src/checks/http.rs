//! `http` checks: one request (method, headers, body, over TLS when asked) to a service's port,
//! judged against `expect` (status, time, headers, body, JSON, JSONPath).
//!
//! Clients are made once per run and reused: one for plain HTTP, one per TLS setting and target
//! (a client's trust roots and name resolution are fixed when it is built).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::expect;
use super::{Ctx, Verdict};
use crate::engine::Captured;
use crate::suite::{Expect, HttpCheck, Scheme, TlsOptions, Vars};
use crate::text::snippet;

/// Budget of one request, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The run's HTTP clients, by what fixes them.
#[derive(Default)]
pub struct Clients(Mutex<HashMap<ClientKey, reqwest::Client>>);

/// Plain HTTP shares one client; HTTPS needs one per trust setting and name→address mapping.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Plain,
    Tls {
        tls: TlsOptions,
        name: String,
        addr: SocketAddr,
    },
}

impl Clients {
    fn get(&self, key: ClientKey, ctx: &Ctx<'_>) -> Result<reqwest::Client, String> {
        let mut clients = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = build(&key, ctx)?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn build(key: &ClientKey, ctx: &Ctx<'_>) -> Result<reqwest::Client, String> {
    // rustls with ring, the provider bollard's TLS uses, installed once for the process (reqwest
    // refuses to build a client without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(same_origin_redirects());
    if let ClientKey::Tls { tls, name, addr } = key {
        builder = builder.resolve(name, *addr);
        if tls.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &tls.ca {
            let path = ctx.loaded.dir.join(ca);
            let pem = std::fs::read(&path)
                .map_err(|e| format!("cannot read `tls.ca` {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!("`tls.ca` {} holds no PEM certificate: {e}", path.display())
            })?;
            if certs.is_empty() {
                return Err(format!(
                    "`tls.ca` {} holds no PEM certificate",
                    path.display()
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {}", request_error(&e)))
}

/// Redirects are followed (up to 10, as browsers and `curl -L` do) while they stay on the
/// service's own scheme, host and port: a check judges the page a user ends on, and its traffic
/// never leaves the stack. A redirect elsewhere is not followed; the check judges that answer.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = |u: &reqwest::Url| {
            (
                u.scheme().to_string(),
                u.host_str().map(str::to_string),
                u.port_or_known_default(),
            )
        };
        let first = attempt.previous().first().map(origin);
        if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else if first == Some(origin(attempt.url())) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

pub(super) async fn http(ctx: &Ctx<'_>, p: &HttpCheck, expect: &Expect) -> Verdict {
    let addr = match super::smoke::target(ctx, &p.service, p.port).await {
        Ok(a) => a,
        Err(v) => return v,
    };
    let path = if p.path.starts_with('/') {
        p.path.clone()
    } else {
        format!("/{}", p.path)
    };
    let method = p.method.to_ascii_uppercase();
    let shown = match p.scheme {
        Scheme::Http => format!("{method} {}:{}{path}", p.service, p.port),
        Scheme::Https => format!("{method} https://{}:{}{path}", p.service, p.port),
    };
    match request(ctx, p, &addr, &path, &method, expect).await {
        Ok(answer) => judge(&shown, &answer, expect),
        Err(why) => Verdict::fail(format!("{shown}: {}", unanswered(&addr, p.port, why).await)),
    }
}

/// Why a request got no answer: when nothing listens behind the address, said as the `ports`
/// and `tcp` checks say it (one cause, one wording); otherwise what the client said.
async fn unanswered(addr: &str, port: u16, why: String) -> String {
    let within = Duration::from_secs(2);
    let seen = super::listen::listen(addr, within).await;
    super::listen::not_listening(&seen, port, addr, within).unwrap_or(why)
}

/// What came back, and how long it took (sending to the last byte of the body).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Captured,
    took: Duration,
}

async fn request(
    ctx: &Ctx<'_>,
    p: &HttpCheck,
    addr: &str,
    path: &str,
    method: &str,
    expect: &Expect,
) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("`{method}` is not an HTTP method"))?;
    let (key, url) = match p.scheme {
        Scheme::Http => (ClientKey::Plain, format!("http://{addr}{path}")),
        Scheme::Https => {
            let tls = p.tls.clone().unwrap_or_default();
            // The name the certificate is checked for, resolved to where the service answers.
            let name = tls.server_name.clone().unwrap_or_else(|| p.service.clone());
            let addr = socket_addr(addr).await?;
            let url = format!("https://{name}:{}{path}", addr.port());
            (ClientKey::Tls { tls, name, addr }, url)
        }
    };
    let client = ctx.http.get(key, ctx)?;
    let vars = Vars::of(ctx.loaded);
    let mut req = client.request(method, &url);
    for (name, template) in &p.headers {
        let value = vars
            .expand(template)
            .map_err(|e| format!("headers.{name}: {e}"))?;
        req = req.header(name.as_str(), value.text);
    }
    if let Some(json) = &p.json {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json.to_string());
    }
    if let Some(body) = &p.body {
        req = req.body(vars.expand(body).map_err(|e| format!("body: {e}"))?.text);
    }
    // A response promised `within` longer than the default bound gets that long: cutting it
    // sooner would fail a promise the stack keeps.
    req = req.timeout(expect::attempt_bound(REQUEST_TIMEOUT, expect));
    let t0 = Instant::now();
    let failed = |e: reqwest::Error| format!("request to {url} failed: {}", request_error(&e));
    let mut resp = req.send().await.map_err(failed)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    // Streamed through the body patterns: a body of any size costs time, not memory.
    let mut body = Captured::watching(&expect::patterns([&expect.body, &expect.body_excludes]));
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        body.push(&chunk);
    }
    body.finish();
    Ok(Answer {
        status,
        headers,
        body,
        took: t0.elapsed(),
    })
}

/// `host:port` (a container address, loopback or a remote engine's host name) as one address.
async fn socket_addr(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

/// Status first (the rest means little on a wrong one), then time, headers and the body.
fn judge(shown: &str, a: &Answer, expect: &Expect) -> Verdict {
    let status_ok = match expect.status {
        Some(s) => a.status == s,
        None => (200..300).contains(&a.status),
    };
    if !status_ok {
        let want = expect
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "2xx".into());
        return Verdict::fail(format!(
            "{shown}: expected status {want}, got {}; body: {}",
            a.status,
            snippet(&a.body.text(), 200)
        ));
    }
    let mut judged = vec![expect::within(
        "the response",
        expect.within.map(|d| d.0),
        a.took,
    )];
    judged.push(expect::headers(&expect.headers, &a.headers));
    if let Some(p) = &expect.body {
        judged.push(expect::matches("body", p, &a.body));
    }
    if let Some(p) = &expect.body_excludes {
        judged.push(expect::excludes("body", p, &a.body));
    }
    if expect.json.is_some() || !expect.jsonpath.is_empty() {
        judged.push(json(expect, &a.body));
    }
    match judged.into_iter().find_map(Result::err) {
        Some(why) => Verdict::fail(format!("{shown}: {why}")),
        None => Verdict::pass(format!(
            "{shown} → {} in {:.0} ms",
            a.status,
            a.took.as_secs_f64() * 1000.0
        )),
    }
}

fn json(expect: &Expect, body: &Captured) -> Result<(), String> {
    if body.is_cut() {
        return Err(format!(
            "the body is {} bytes; JSON expectations read bodies of at most {} MiB",
            body.total(),
            crate::engine::output::HEAD >> 20
        ));
    }
    let body = &body.text();
    let got: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| format!("body is not JSON ({e}); body: {}", snippet(body, 200)))?;
    if let Some(want) = &expect.json {
        json_contains(&got, want, "$")
            .map_err(|path| format!("JSON differs at {path}; body: {}", snippet(body, 200)))?;
    }
    expect::jsonpath(&expect.jsonpath, &got)
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

/// The whole chain of a request error (reqwest's own message is only its outermost layer, e.g.
/// "error sending request"), with a TLS failure said in words a person can act on.
fn request_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    let mut tls = None;
    while let Some(s) = source {
        tls = tls.or_else(|| tls_error(s));
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    tls.and_then(tls_reason).unwrap_or(out)
}

/// The rustls error in a chain link: itself, or inside `io::Error`s (whose `source` skips the
/// error they wrap, so the chain alone never reaches it).
fn tls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner: &(dyn std::error::Error + 'static) =
        e.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

/// Why a server's certificate was refused, as a person would say it.
fn tls_reason(e: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = e else {
        return None;
    };
    Some(match cert {
        C::UnknownIssuer => "TLS: the server's certificate is not signed by a trusted CA (unknown issuer; `tls.ca` names the CA to trust)".into(),
        C::NotValidForName => "TLS: the server's certificate is not valid for the name asked (`tls.server_name` sets it)".into(),
        C::NotValidForNameContext { expected, presented } => format!(
            "TLS: the server's certificate is not valid for `{}` (it names {}; `tls.server_name` sets the name)",
            expected.to_str(),
            presented
                .iter()
                .map(|p| presented_name(p))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        C::Expired | C::ExpiredContext { .. } => "TLS: the server's certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "TLS: the server's certificate is not valid yet".into(),
        other => format!("TLS: the server's certificate was refused ({other:?})"),
    })
}

/// A name as rustls presents it (`DnsName("x")`), as a person writes it (`x`).
fn presented_name(p: &str) -> &str {
    p.strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .unwrap_or(p)
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

    /// A refused connection says so, not only reqwest's outer "error sending request".
    #[tokio::test]
    async fn a_request_error_names_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let err = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let msg = request_error(&err);
        assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
    }
}
