//! Engines beyond the local socket (issue 16): the endpoint is resolved as the docker CLI resolves
//! it (`DOCKER_HOST` + `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`, `DOCKER_CONTEXT`, `currentContext`)
//! and the harness, compose, builds and probes all use it. `ci/tls-endpoint.sh` serves this
//! machine's engine over TLS with client certificates on a loopback port, as GitLab's dind does.
//! Unreachable endpoints end the run with exit 3 within 5 s, naming endpoint and cause.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{free_port, root, text};

/// An endpoint a `ci/*-endpoint.sh` script serves for this test (`start DIR PORT`); stopped
/// (`stop DIR PORT`) when dropped.
struct Served {
    script: &'static str,
    dir: tempfile::TempDir,
    port: u16,
}

impl Served {
    fn start(script: &'static str) -> Served {
        Served::start_with(script, &[])
    }

    /// `start DIR PORT` and these arguments.
    fn start_with(script: &'static str, extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let out = Command::new("bash")
            .args([script, "start"])
            .arg(dir.path())
            .arg(port.to_string())
            .args(extra)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Served { script, dir, port }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([self.script, "stop"])
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .current_dir(root())
            .output();
    }
}

/// This machine's engine over TLS with client certificates (`ci/tls-endpoint.sh`).
struct TlsEndpoint(Served);

impl TlsEndpoint {
    fn start() -> TlsEndpoint {
        TlsEndpoint(Served::start("ci/tls-endpoint.sh"))
    }

    /// Served by `socat openssl-listen`, which fails every resumed session: the docker CLI
    /// works with it (the script's own check), as a client that never resumes does.
    fn socat() -> TlsEndpoint {
        TlsEndpoint(Served::start_with("ci/tls-endpoint.sh", &["socat"]))
    }

    /// The engine variables that reach it with the client certificates.
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCKER_HOST", self.host()),
            ("DOCKER_TLS_VERIFY", "1".into()),
            (
                "DOCKER_CERT_PATH",
                self.certs("client").display().to_string(),
            ),
        ]
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.0.port)
    }

    /// `DOCKER_CERT_PATH` with the right CA (`client`) or a CA that did not sign the server's.
    fn certs(&self, which: &str) -> PathBuf {
        self.0.dir.path().join(which)
    }
}

/// `stackcheck run SUITE --json` with exactly these engine variables (the test's own are
/// removed); exit code, console and the JSON report.
fn run(suite: &str, envs: &[(&str, String)]) -> (Option<i32>, String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("r.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackcheck"));
    cmd.args(["run", suite, "--json"]).arg(&json);
    for k in [
        "DOCKER_HOST",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_CONTEXT",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .current_dir(root())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&json).unwrap_or_default();
    (out.status.code(), text(&out), report)
}

/// Item 1, 4: the features suite (builds, published ports, http, exec, isolation probes, scenarios)
/// passes with the engine reached only over TLS with client certificates, and the report names
/// that endpoint.
#[test]
fn a_whole_suite_passes_through_a_tls_endpoint() {
    let tls = TlsEndpoint::start();
    // A copy with tags and a host port of its own: it waits for no other test's run.
    let (_copy, fixtures) = common::features_copy(&["features"]);
    let suite = fixtures.join("features/suite.yaml");
    let (code, out, json) = run(suite.to_str().unwrap(), &tls.vars());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        json.contains(&format!(" at {} (DOCKER_HOST, TLS)\"", tls.host())),
        "{json}"
    );
    assert!(!json.contains("PRIVATE KEY"), "{json}");
}

/// Whatever TLS endpoint the docker CLI accepts, stackcheck accepts: one that fails session
/// resumption (`socat openssl-listen` verifying clients) serves a whole suite, compose and the
/// harness's own calls alike.
#[test]
fn a_tls_endpoint_the_docker_cli_accepts_serves_a_whole_suite() {
    let tls = TlsEndpoint::socat();
    let (code, out, json) = run("fixtures/masking/suite.yaml", &tls.vars());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        json.contains(&format!(" at {} (DOCKER_HOST, TLS)\"", tls.host())),
        "{json}"
    );
}

/// A client config dir with `docker context create NAME` for the TLS endpoint, made by the
/// docker CLI itself (its store layout is the contract), and compose linked in.
fn context_store(tls: &TlsEndpoint, name: &str, current: bool) -> tempfile::TempDir {
    let config = tempfile::tempdir().unwrap();
    let home = std::env::var("HOME").unwrap_or_default();
    let _ = std::os::unix::fs::symlink(
        Path::new(&home).join(".docker/cli-plugins"),
        config.path().join("cli-plugins"),
    );
    let certs = tls.certs("client");
    let docker = format!(
        "host={},ca={},cert={},key={}",
        tls.host(),
        certs.join("ca.pem").display(),
        certs.join("cert.pem").display(),
        certs.join("key.pem").display()
    );
    let mut args = vec!["context", "create", name, "--docker", &docker];
    let out = Command::new("docker")
        .args(&args)
        .env("DOCKER_CONFIG", config.path())
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    if current {
        args = vec!["context", "use", name];
        let out = Command::new("docker")
            .args(&args)
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    config
}

/// Item 1: a docker context (named by `DOCKER_CONTEXT`, or the current one of `config.json`) with
/// its TLS material from the context store reaches the engine for the harness and for compose.
#[test]
fn a_docker_context_with_tls_is_followed_by_the_harness_and_compose() {
    let tls = TlsEndpoint::start();
    for (current, from) in [
        (false, "context `sc-tls` from DOCKER_CONTEXT, TLS"),
        (
            true,
            "context `sc-tls` from currentContext of config.json, TLS",
        ),
    ] {
        let config = context_store(&tls, "sc-tls", current);
        let mut envs = vec![("DOCKER_CONFIG", config.path().display().to_string())];
        if !current {
            envs.push(("DOCKER_CONTEXT", "sc-tls".into()));
        }
        let (code, out, json) = run("fixtures/parallel/suite.yaml", &envs);
        assert_eq!(code, Some(0), "{from}: {out}");
        assert!(
            json.contains(&format!(" at {} ({from})\"", tls.host())),
            "{json}"
        );
    }
}

/// Item 2: a wrong CA, a missing client certificate, a refused and a silent endpoint, and a
/// context that does not exist: exit 3 within 5 s of the engine check (before anything can
/// start), naming endpoint and cause.
#[test]
fn unreachable_endpoints_end_the_run_within_5_s_naming_endpoint_and_cause() {
    let tls = TlsEndpoint::start();
    let no_cert = tempfile::tempdir().unwrap();
    std::fs::copy(
        tls.certs("client").join("ca.pem"),
        no_cert.path().join("ca.pem"),
    )
    .unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = format!("tcp://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept() {
            held.push(s);
        }
    });
    let refused = format!("tcp://127.0.0.1:{}", free_port());
    let tls_env = |dir: PathBuf| {
        vec![
            ("DOCKER_HOST", tls.host()),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            ("DOCKER_CERT_PATH", dir.display().to_string()),
        ]
    };
    let empty = tempfile::tempdir().unwrap();
    let home = std::env::var("HOME").unwrap_or_default();
    let _ = std::os::unix::fs::symlink(
        Path::new(&home).join(".docker/cli-plugins"),
        empty.path().join("cli-plugins"),
    );
    let cases: Vec<(Vec<(&str, String)>, String)> = vec![
        (
            tls_env(tls.certs("wrong-ca")),
            format!(
                "no Docker engine answers at {} (DOCKER_HOST, TLS) (",
                tls.host()
            ),
        ),
        (
            tls_env(no_cert.path().to_path_buf()),
            format!(
                "TLS to {} (DOCKER_HOST) needs {}, which is missing",
                tls.host(),
                no_cert.path().join("cert.pem").display()
            ),
        ),
        (
            vec![("DOCKER_HOST", refused.clone())],
            format!("no Docker engine answers at {refused} (DOCKER_HOST) ("),
        ),
        (
            vec![("DOCKER_HOST", silent_host.clone())],
            format!(
                "no Docker engine answers at {silent_host} (DOCKER_HOST) (no answer within 5 s)"
            ),
        ),
        (
            vec![
                ("DOCKER_CONFIG", empty.path().display().to_string()),
                ("DOCKER_CONTEXT", "nowhere".into()),
            ],
            "docker context `nowhere` (DOCKER_CONTEXT) is not in the context store".into(),
        ),
    ];
    for (envs, said) in cases {
        let t0 = Instant::now();
        let (code, out, _) = run("fixtures/parallel/suite.yaml", &envs);
        assert_eq!(code, Some(3), "{envs:?}: {out}");
        assert!(out.contains(&said), "{envs:?}: want {said}\n{out}");
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{envs:?}: {:?}",
            t0.elapsed()
        );
    }
    // The wrong CA is named as the cause, in the TLS library's words.
    let (_, out, _) = run(
        "fixtures/parallel/suite.yaml",
        &tls_env(tls.certs("wrong-ca")),
    );
    assert!(
        out.to_lowercase().contains("certificate") || out.contains("UnknownIssuer"),
        "{out}"
    );
}

/// This machine's engine over SSH (`ci/ssh-endpoint.sh`): sshd on a loopback port and the ssh
/// client alias `sc-ssh-PORT`, removed with it.
struct SshEndpoint(Served);

impl SshEndpoint {
    fn start() -> SshEndpoint {
        SshEndpoint(Served::start("ci/ssh-endpoint.sh"))
    }

    fn host(&self) -> String {
        format!("ssh://sc-ssh-{}", self.0.port)
    }

    /// Waits, at most `limit`, until nothing accepts on sshd's port any more.
    fn wait_until_refused(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while std::net::TcpStream::connect(("127.0.0.1", self.0.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "sshd on port {} still accepted {limit:?} after its SIGTERM",
                self.0.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Item 1, 4: `DOCKER_HOST=ssh://alias` (the ssh client's own config: key, port, known host) runs
/// the features suite through `docker system dial-stdio` for the harness and compose alike, and
/// published ports are looked for where ssh connects (`ssh -G`), not at the alias.
#[test]
fn a_whole_suite_passes_through_an_ssh_endpoint() {
    let ssh = SshEndpoint::start();
    // A copy with tags and a host port of its own: it waits for no other test's run.
    let (_copy, fixtures) = common::features_copy(&["features"]);
    let suite = fixtures.join("features/suite.yaml");
    let (code, out, json) = run(suite.to_str().unwrap(), &[("DOCKER_HOST", ssh.host())]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        json.contains(&format!(" at {} (DOCKER_HOST)\"", ssh.host())),
        "{json}"
    );
}

/// Item 2: an SSH endpoint whose sshd is gone ends the run with exit 3 within 5 s, naming it and
/// ssh's words; a port in the URL, which the engine client cannot pass on yet, is said as such.
#[test]
fn an_ssh_endpoint_that_refuses_ends_the_run_naming_it() {
    let ssh = SshEndpoint::start();
    let pid = std::fs::read_to_string(ssh.0.dir.path().join("sshd.pid")).unwrap();
    assert!(Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap()
        .success());
    // SIGTERM is handled when sshd is next scheduled: until then it still accepts, and the child
    // it forks for that connection serves the run's first calls. Refusing is what this test is
    // about, so it starts once the port refuses.
    ssh.wait_until_refused(Duration::from_secs(20));
    let t0 = Instant::now();
    let (code, out, _) = run(
        "fixtures/parallel/suite.yaml",
        &[("DOCKER_HOST", ssh.host())],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "no Docker engine answers at {} (DOCKER_HOST) (",
            ssh.host()
        )) && out.contains("Connection refused"),
        "{out}"
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());

    let (code, out, _) = run(
        "fixtures/parallel/suite.yaml",
        &[("DOCKER_HOST", "ssh://ci@builder:2222".into())],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("a port in an ssh:// endpoint is not supported yet; set it in your ssh config (`Host builder` with `Port …`) and use ssh://ci@builder"),
        "{out}"
    );
}
