//! Which engine a run talks to, resolved the way the docker CLI resolves it: `DOCKER_HOST` (with
//! `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`), else the context `DOCKER_CONTEXT` names, else
//! `currentContext` of `config.json`, else the local socket. The harness, compose, `docker build`,
//! testcontainers and the reaper must all reach the one engine: [`Endpoint::export`] hands the
//! resolved endpoint to every child as plain `DOCKER_HOST` + TLS variables.

use std::path::{Path, PathBuf};

pub use crate::error::EndpointError;

/// The engine the docker CLI uses when nothing says otherwise.
pub const LOCAL_SOCKET: &str = "unix:///var/run/docker.sock";

/// Client TLS material: a folder with `ca.pem`, `cert.pem` and `key.pem`, as `DOCKER_CERT_PATH`
/// and a context's TLS store both lay it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The folder holding the three files.
    pub dir: PathBuf,
}

/// A resolved engine endpoint. Never carries key material, only where it lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix:///…`, `tcp://host:port`, `ssh://user@host`.
    pub host: String,
    /// Where the choice came from: `DOCKER_HOST`, ``context `ci` (DOCKER_CONTEXT)``, `default`.
    pub from: String,
    /// Client certificates and the CA to verify the engine with, for `tcp://` over TLS.
    pub tls: Option<Tls>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = if self.tls.is_some() { ", TLS" } else { "" };
        write!(f, "{} ({}{tls})", self.host, self.from)
    }
}

impl Endpoint {
    /// The endpoint of this process's environment and docker config, as first resolved: after
    /// [`Endpoint::export_for_testcontainers`] the environment says `DOCKER_HOST`, but the choice (and the report)
    /// stays the context's.
    pub fn resolve() -> Result<Endpoint, EndpointError> {
        static FIRST: std::sync::OnceLock<Result<Endpoint, EndpointError>> =
            std::sync::OnceLock::new();
        FIRST
            .get_or_init(|| resolve_from(&|k| std::env::var(k).ok(), &config_dir()))
            .clone()
    }

    /// The environment that makes the docker CLI, compose and testcontainers reach this engine:
    /// `DOCKER_HOST` (+ `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), and no `DOCKER_CONTEXT`, so a
    /// child never reads the context store again. `None`: the variable is removed.
    pub fn vars(&self) -> [(&'static str, Option<std::ffi::OsString>); 4] {
        let tls = self.tls.as_ref();
        [
            ("DOCKER_HOST", Some(self.host.clone().into())),
            ("DOCKER_CONTEXT", None),
            ("DOCKER_TLS_VERIFY", tls.map(|_| "1".into())),
            ("DOCKER_CERT_PATH", tls.map(|t| t.dir.clone().into())),
        ]
    }

    /// Hands this endpoint to a child through its own environment ([`Endpoint::vars`]).
    ///
    /// ```
    /// let endpoint = stackcheck::engine::Endpoint {
    ///     host: "tcp://builder:2376".into(),
    ///     from: "DOCKER_HOST".into(),
    ///     tls: None,
    /// };
    /// let mut cmd = std::process::Command::new("docker");
    /// endpoint.apply(&mut cmd);
    /// let host = cmd.get_envs().find(|(k, _)| *k == "DOCKER_HOST").and_then(|(_, v)| v);
    /// assert_eq!(host, Some(std::ffi::OsStr::new("tcp://builder:2376")));
    /// ```
    pub fn apply(&self, cmd: &mut std::process::Command) {
        for (key, value) in self.vars() {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
    }

    /// Puts this endpoint in the process environment, for testcontainers alone: it reads the
    /// engine from the process environment and takes no other. Every child process gets it
    /// through its own environment instead ([`Endpoint::apply`]). Call before any thread starts.
    pub fn export_for_testcontainers(&self) {
        for (key, value) in self.vars() {
            match value {
                Some(v) => std::env::set_var(key, v),
                None => std::env::remove_var(key),
            }
        }
    }
}

/// A client for `endpoint` (requests time out after bollard's default 2 minutes).
pub(super) fn client(endpoint: &Endpoint) -> Result<bollard::Docker, String> {
    if let Some(rest) = endpoint.host.strip_prefix("ssh://") {
        // bollard hands ssh `host:port` as one host name (it keeps `user@`): say so, rather than
        // fail later with "Could not resolve hostname".
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            return Err(format!(
                "a port in an ssh:// endpoint is not supported yet; set it in your ssh config (`Host {}` with `Port …`) and use ssh://{}",
                host.rsplit_once(':').map_or(host, |(h, _)| h),
                authority.rsplit_once(':').map_or(authority, |(a, _)| a)
            ));
        }
    }
    match &endpoint.tls {
        Some(tls) => tls_client(&endpoint.host, tls),
        None => plain_client(&endpoint.host).map_err(|e| e.to_string()),
    }
}

/// Requests time out after this many seconds (bollard's default).
const TIMEOUT: u64 = 120;

/// A client over TLS as the docker CLI makes one: the engine verified against `ca.pem` alone, the
/// client's `cert.pem` and `key.pem` offered, and no session resumed. Go's client never resumes
/// a session, so servers the docker CLI works with may fail every resumed one (`socat
/// openssl-listen` with client verification does); a fresh handshake per connection is what
/// they have been tested with.
fn tls_client(host: &str, tls: &Tls) -> Result<bollard::Docker, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file = |name: &str| tls.dir.join(name);
    let unreadable = |name: &str, e: &dyn std::fmt::Display| {
        format!("cannot read {}: {e}", file(name).display())
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(file("ca.pem")).map_err(|e| unreadable("ca.pem", &e))?
    {
        let cert = cert.map_err(|e| unreadable("ca.pem", &e))?;
        roots.add(cert).map_err(|e| unreadable("ca.pem", &e))?;
    }
    let chain = CertificateDer::pem_file_iter(file("cert.pem"))
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable("cert.pem", &e))?;
    let key =
        PrivateKeyDer::from_pem_file(file("key.pem")).map_err(|e| unreadable("key.pem", &e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| unreadable("cert.pem and key.pem", &e))?;
    config.resumption = rustls::client::Resumption::disabled();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnector::from((http, config));
    // One connection per request, as bollard's own clients do (a connection an exec or an
    // attach took over is never handed back).
    let client = std::sync::Arc::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(https),
    );
    let addr = host.replacen("tcp://", "https://", 1);
    let transport = move |request: bollard::BollardRequest| {
        let client = client.clone();
        async move {
            client
                .request(request)
                .await
                .map_err(bollard::errors::Error::from)
        }
    };
    bollard::Docker::connect_with_custom_transport(
        transport,
        Some(addr),
        TIMEOUT,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| e.to_string())
}

/// A client for an endpoint without TLS: the local socket, ssh, or plain `tcp://`.
fn plain_client(host: &str) -> Result<bollard::Docker, bollard::errors::Error> {
    use bollard::{Docker, API_DEFAULT_VERSION};
    if host.starts_with("unix://") {
        Docker::connect_with_unix(host, TIMEOUT, API_DEFAULT_VERSION)
    } else if host.starts_with("ssh://") {
        // The system's ssh (its config, agent and known_hosts) runs `docker system dial-stdio`
        // on the far side, as the docker CLI does.
        Docker::connect_with_ssh(host, TIMEOUT, API_DEFAULT_VERSION, None)
    } else {
        Docker::connect_with_host(host)
    }
}

/// What a failed connection says, down to its root cause: hyper's own words ("client error
/// (Connect)") name no reason; the certificate or the refusal is at the bottom of the chain.
pub(super) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut said = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Wrappers often repeat their source's words; say each once.
        let more = s.to_string();
        if !said.contains(&more) {
            said = format!("{said}: {more}");
        }
        source = s.source();
    }
    said
}

/// `DOCKER_CONFIG`, else `~/.docker`.
fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"),
    }
}

fn resolve_from(
    env: &dyn Fn(&str) -> Option<String>,
    config: &Path,
) -> Result<Endpoint, EndpointError> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    // The CLI's order: DOCKER_HOST wins over any context.
    if let Some(host) = set("DOCKER_HOST") {
        let from = "DOCKER_HOST".to_string();
        let tls = match set("DOCKER_TLS_VERIFY") {
            Some(_) => Some(tls_in(
                set("DOCKER_CERT_PATH").map_or_else(|| config.to_path_buf(), PathBuf::from),
                &host,
                &from,
            )?),
            None => None,
        };
        return Ok(Endpoint { host, from, tls });
    }
    let (name, from) = match set("DOCKER_CONTEXT") {
        Some(n) => (n, "DOCKER_CONTEXT"),
        None => match current_context(config)? {
            Some(n) => (n, "currentContext of config.json"),
            None => ("default".into(), "default"),
        },
    };
    if name == "default" {
        return Ok(Endpoint {
            host: LOCAL_SOCKET.into(),
            from: "default".into(),
            tls: None,
        });
    }
    context(config, &name, from)
}

fn current_context(config: &Path) -> Result<Option<String>, EndpointError> {
    let path = config.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EndpointError::BadContext {
            name: "(current)".into(),
            path: path.clone(),
            cause: e.to_string(),
        })?;
    Ok(v["currentContext"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from))
}

/// A context from the store: `contexts/meta/<sha256 of name>/meta.json` holds its docker
/// endpoint; `contexts/tls/<sha256>/docker/` its TLS material, when it has any.
fn context(config: &Path, name: &str, from: &str) -> Result<Endpoint, EndpointError> {
    let id = context_id(name);
    let meta = config.join("contexts/meta").join(&id).join("meta.json");
    let text = std::fs::read_to_string(&meta).map_err(|_| EndpointError::NoContext {
        name: name.into(),
        from: from.into(),
        path: meta.clone(),
    })?;
    let bad = |cause: String| EndpointError::BadContext {
        name: name.into(),
        path: meta.clone(),
        cause,
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let host = v["Endpoints"]["docker"]["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no docker endpoint (Endpoints.docker.Host)".into()))?
        .to_string();
    let from = format!("context `{name}` from {from}");
    let dir = config.join("contexts/tls").join(&id).join("docker");
    let tls = match dir.is_dir() {
        true => Some(tls_in(dir, &host, &from)?),
        false => None,
    };
    Ok(Endpoint { host, from, tls })
}

/// A context's folder name in the store: the hex SHA-256 of its name.
fn context_id(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn tls_in(dir: PathBuf, host: &str, from: &str) -> Result<Tls, EndpointError> {
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        let path = dir.join(f);
        if !path.is_file() {
            return Err(EndpointError::MissingTlsFile {
                host: host.into(),
                from: from.into(),
                path,
            });
        }
    }
    Ok(Tls { dir })
}

/// The host of a remote engine (`DOCKER_HOST=tcp://builder:2376`, `ssh://ci@builder`): where its
/// published ports are. `None` for a local engine (unix socket, or a TCP one on loopback), whose
/// published ports are on this machine's loopback.
/// An `ssh://` alias is looked up in the ssh config, as ssh itself will (`ssh -G`).
pub(super) fn remote_host(endpoint: &Endpoint) -> Option<String> {
    let host = remote_host_of(Some(&endpoint.host))?;
    match endpoint.host.starts_with("ssh://") {
        true => {
            let real = ssh_hostname(&host).unwrap_or(host);
            remote_host_of(Some(&format!("ssh://{real}")))
        }
        false => Some(host),
    }
}

/// The address ssh connects to for `alias` (`hostname` of `ssh -G`).
fn ssh_hostname(alias: &str) -> Option<String> {
    let out = std::process::Command::new("ssh")
        .args(["-G", alias])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("hostname ").map(str::to_string))
}

fn remote_host_of(docker_host: Option<&str>) -> Option<String> {
    let rest = docker_host?.split_once("://").map(|(scheme, rest)| {
        matches!(scheme, "tcp" | "ssh" | "http" | "https").then_some(rest)
    })??;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!host.is_empty() && !loopback).then(|| host.to_string())
}

/// The host port the engine published a container's TCP `port` on, if any.
pub fn published_host_port(
    info: &bollard::models::ContainerInspectResponse,
    port: u16,
) -> Option<String> {
    let bindings = info.network_settings.as_ref()?.ports.as_ref()?;
    let bound = bindings.get(&format!("{port}/tcp")).cloned().flatten()?;
    bound.into_iter().find_map(|b| b.host_port)
}

impl super::Engine {
    /// `host:port` of a port this engine published, as seen from this machine: its loopback for
    /// a local engine, the engine's host for a remote one.
    pub fn published_addr(&self, host_port: &str) -> String {
        match self.remote_host.as_deref() {
            Some(host) if host.contains(':') => format!("[{host}]:{host_port}"),
            Some(host) => format!("{host}:{host_port}"),
            None => format!("127.0.0.1:{host_port}"),
        }
    }

    /// The host of a remote engine, where its published ports are; `None` for a local one.
    pub fn remote_host(&self) -> Option<&str> {
        self.remote_host.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn store(dir: &Path, name: &str, host: &str, tls: bool) {
        let id = context_id(name);
        let meta = dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
        )
        .unwrap();
        if tls {
            let t = dir.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&t).unwrap();
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(t.join(f), "x").unwrap();
            }
        }
    }

    #[test]
    fn the_endpoint_is_chosen_in_the_clis_order() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        store(c, "ci", "tcp://10.0.0.9:2376", true);
        store(c, "plain", "tcp://10.0.0.8:2375", false);
        std::fs::write(c.join("config.json"), r#"{"currentContext":"plain"}"#).unwrap();

        let e = resolve_from(&env(&[]), c).unwrap();
        assert_eq!(e.host, "tcp://10.0.0.8:2375");
        assert_eq!(e.tls, None);
        assert_eq!(e.from, "context `plain` from currentContext of config.json");

        let e = resolve_from(&env(&[("DOCKER_CONTEXT", "ci")]), c).unwrap();
        assert_eq!(e.host, "tcp://10.0.0.9:2376");
        assert!(e.tls.unwrap().dir.ends_with("docker"));

        // DOCKER_HOST wins over any context, as in the CLI.
        let e = resolve_from(
            &env(&[("DOCKER_CONTEXT", "ci"), ("DOCKER_HOST", "tcp://h:1")]),
            c,
        )
        .unwrap();
        assert_eq!((e.host.as_str(), e.tls), ("tcp://h:1", None));

        let e = resolve_from(&env(&[("DOCKER_CONTEXT", "default")]), c).unwrap();
        assert_eq!(e.host, LOCAL_SOCKET);
    }

    #[test]
    fn what_cannot_be_resolved_is_said_with_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        let e = resolve_from(&env(&[("DOCKER_CONTEXT", "gone")]), c).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("docker context `gone` (DOCKER_CONTEXT) is not in the context store"),
            "{e}"
        );
        let e = resolve_from(
            &env(&[
                ("DOCKER_HOST", "tcp://h:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", c.to_str().unwrap()),
            ]),
            c,
        )
        .unwrap_err();
        assert_eq!(
            e,
            EndpointError::MissingTlsFile {
                host: "tcp://h:2376".into(),
                from: "DOCKER_HOST".into(),
                path: c.join("ca.pem"),
            }
        );
    }
}

#[cfg(test)]
mod remote_tests {
    use super::remote_host_of;

    #[rstest::rstest]
    #[case(None, None)]
    #[case(Some("unix:///var/run/docker.sock"), None)]
    #[case(Some("tcp://127.0.0.1:2375"), None)]
    #[case(Some("tcp://localhost:2375"), None)]
    #[case(Some("npipe:////./pipe/docker_engine"), None)]
    #[case(Some("tcp://docker:2375"), Some("docker"))]
    #[case(Some("ssh://ci@builder.internal:2222"), Some("builder.internal"))]
    #[case(Some("tcp://10.1.2.3:2376"), Some("10.1.2.3"))]
    #[case(Some("tcp://[fd00::5]:2376"), Some("fd00::5"))]
    fn remote_engines_are_told_from_local_ones(
        #[case] docker_host: Option<&str>,
        #[case] host: Option<&str>,
    ) {
        assert_eq!(remote_host_of(docker_host).as_deref(), host);
    }
}
