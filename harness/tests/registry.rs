//! Images from a real registry (issue 15): `ci/registry.sh` starts Debian's docker-registry on a
//! loopback port with htpasswd auth; the test logs in (its own `DOCKER_CONFIG`), pushes an image,
//! removes it from the engine, and a suite naming it pulls it with those credentials. Wrong
//! credentials, a missing tag, a stopped registry and `--pull never` each stop the run before
//! anything starts, saying why; the password appears in no output. Drives the real engine.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{root, text};

/// A registry of this test, with a logged-in client config; stopped when dropped.
struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let password = format!("pw-{:016x}", rand::random::<u64>());
        let out = Command::new("bash")
            .args(["ci/registry.sh", "start"])
            .arg(dir.path().join("registry"))
            .args([&port.to_string(), "tester", &password])
            .current_dir(root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let r = Registry {
            dir,
            port,
            password,
        };
        with_plugins(&r.config());
        let login = r
            .docker(&["login", &r.host(), "-u", "tester", "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(r.password.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(login.status.success(), "{}", text(&login));
        r
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The docker CLI with this test's client config (its login).
    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args).env("DOCKER_CONFIG", self.config());
        c
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// Pushes the local `python:3.9-slim` as `<registry>/sc/app:1` and removes that tag from the
    /// engine, so only a pull brings it back. Returns the reference.
    fn push_app(&self) -> String {
        self.push("python:3.9-slim", "sc/app:1")
    }

    /// Pushes the local image `local` as `<registry>/<name>` and removes that tag from the engine.
    /// Returns the reference.
    fn push(&self, local: &str, name: &str) -> String {
        let image = format!("{}/{name}", self.host());
        for args in [
            vec!["tag", local, &image],
            vec!["push", &image],
            vec!["rmi", &image],
        ] {
            let out = self.docker(&args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", text(&out));
        }
        image
    }

    /// A suite in its own folder running `image` as service `app` (with `extra` compose keys).
    fn suite(&self, image: &str, extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("docker-compose.yml"),
            format!(
                "services:\n  app:\n    image: {image}\n    command: [python3, -m, http.server, \"8000\"]\n    stop_signal: SIGINT\n{extra}"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("suite.yaml"),
            "suite: pulled\nstack:\n  compose: [docker-compose.yml]\n  ports: ephemeral\nservices:\n  app: { state: running }\n",
        )
        .unwrap();
        dir
    }

    /// `stackcheck run` with this client config; exit code and everything it wrote (console,
    /// JUnit, JSON), which must never hold the password.
    fn run(&self, suite: &Path, config: &Path, extra: &[&str]) -> (Option<i32>, String) {
        self.run_env(suite, config, extra, &[])
    }

    /// `run`, with further environment variables for stackcheck.
    fn run_env(
        &self,
        suite: &Path,
        config: &Path,
        extra: &[&str],
        envs: &[(&str, String)],
    ) -> (Option<i32>, String) {
        let out_dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackcheck"));
        cmd.arg("run")
            .arg(suite.join("suite.yaml"))
            .args(extra)
            .env("DOCKER_CONFIG", config)
            .envs(envs.iter().map(|(k, v)| (k, v)));
        common::run_with_reports(cmd, out_dir.path(), &self.password)
    }
}

/// A client config dir finds its CLI plugins (compose) inside it: link the machine's.
fn with_plugins(config: &Path) {
    std::fs::create_dir_all(config).unwrap();
    let home = std::env::var("HOME").unwrap_or_default();
    let plugins = Path::new(&home).join(".docker/cli-plugins");
    let _ = std::os::unix::fs::symlink(plugins, config.join("cli-plugins"));
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args(["ci/registry.sh", "stop"])
            .arg(self.dir.path().join("registry"))
            .current_dir(root())
            .output();
        let _ = Command::new("docker")
            .args(["rmi", &format!("{}/sc/app:1", self.host())])
            .output();
    }
}

/// Item 1, 2, 6: pulled with the CLI's credentials under the default policy (`missing`), not
/// pulled again when present, and refused under `never` when absent.
#[test]
fn an_image_in_a_registry_with_auth_is_pulled_with_the_clis_credentials() {
    let reg = Registry::start();
    let image = reg.push_app();
    let suite = reg.suite(&image, "");
    let (code, out) = reg.run(suite.path(), &reg.config(), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("pulled {image} in ")), "{out}");
    assert!(
        out.contains("(127.0.0.1:"),
        "the pulled digest is shown: {out}"
    );
    // Every report says where the image came from: JUnit, JSON and the summary.
    for said in [
        r#"<property name="image.app.source" value="pulled"/>"#.to_string(),
        r#""pulled": true"#.to_string(),
        format!("`app`: `{image}` pulled `{}/sc/app@sha256:", reg.host()),
    ] {
        assert!(out.contains(&said), "no {said}: {out}");
    }

    // Present now: `missing` does not pull again.
    let (code, out) = reg.run(suite.path(), &reg.config(), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("pulling "), "{out}");
    assert!(
        out.contains(r#"<property name="image.app.source" value="present"/>"#),
        "{out}"
    );

    // `--pull never` with the image gone: exit 3 before anything starts, saying how to get it.
    assert!(reg
        .docker(&["rmi", &image])
        .output()
        .unwrap()
        .status
        .success());
    let (code, out) = reg.run(suite.path(), &reg.config(), &["--pull", "never"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "`{image}` (run by service `app`; nothing in the stack builds it; pull policy `never`)"
        )) && out.contains("`docker compose pull app`"),
        "{out}"
    );
}

/// Item 1: a service's own `pull_policy` wins over the suite's and the CLI's.
#[test]
fn a_services_own_pull_policy_wins() {
    let reg = Registry::start();
    let image = reg.push_app();
    let suite = reg.suite(&image, "    pull_policy: never\n");
    let (code, out) = reg.run(suite.path(), &reg.config(), &["--pull", "always"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("pull policy `never`"), "{out}");
}

/// Item 3: wrong credentials, a tag the registry lacks, and a registry that is down each stop the
/// run at once with exit 3, naming the registry and the cause, and start nothing.
#[test]
fn pull_failures_stop_the_run_naming_registry_and_cause() {
    let reg = Registry::start();
    let image = reg.push_app();

    let wrong = tempfile::tempdir().unwrap();
    with_plugins(wrong.path());
    let auth = Command::new("bash")
        .args(["-c", "printf 'tester:not-the-password' | base64 -w0"])
        .output()
        .unwrap();
    std::fs::write(
        wrong.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            String::from_utf8_lossy(&auth.stdout).trim()
        ),
    )
    .unwrap();
    let suite = reg.suite(&image, "");
    let (code, out) = reg.run(suite.path(), wrong.path(), &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "registry {} refused access to `{image}`",
            reg.host()
        )) && out.contains(&format!("docker login {}", reg.host())),
        "{out}"
    );
    assert!(!out.contains("not-the-password"), "{out}");

    let missing = format!("{}/sc/app:no-such-tag", reg.host());
    let suite = reg.suite(&missing, "");
    let (code, out) = reg.run(suite.path(), &reg.config(), &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!("registry {} has no `{missing}`", reg.host())),
        "{out}"
    );

    let _ = Command::new("bash")
        .args(["ci/registry.sh", "stop"])
        .arg(reg.dir.path().join("registry"))
        .current_dir(root())
        .output();
    let suite = reg.suite(&image, "");
    let (code, out) = reg.run(suite.path(), &reg.config(), &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "registry {} did not answer for `{image}`",
            reg.host()
        )),
        "{out}"
    );
}

/// Item 5: a prebuilt image as the subject (`images.<ref>` with neither `service` nor `build`):
/// pulled, then its metadata and files tested as they are; a broken promise about it fails.
#[test]
fn a_prebuilt_image_is_pulled_and_tested_as_it_is() {
    let reg = Registry::start();
    let image = reg.push_app();
    let suite = reg.suite(&image, "");
    let text = std::fs::read_to_string(suite.path().join("suite.yaml")).unwrap();
    std::fs::write(
        suite.path().join("suite.yaml"),
        format!(
            "{text}images:\n  \"{image}\":\n    cmd: [python3]\n    files: {{ /usr/bin/python3: present, /usr/bin/gcc: absent }}\n    user: non-root\n"
        ),
    )
    .unwrap();
    let (code, out) = reg.run(suite.path(), &reg.config(), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("pulled {image} in ")), "{out}");
    assert!(
        !out.contains("pulled::build::"),
        "a prebuilt image has no build test: {out}"
    );
    for (test, passed) in [("cmd", true), ("files", true), ("user", false)] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("pulled::image::{image}::{test}")))
            .unwrap_or_else(|| panic!("no {test} test: {out}"));
        assert_eq!(line.starts_with("PASS"), passed, "{line}");
    }
}

/// A `docker-credential-<name>` program in a folder put first on PATH: answers `get` for `host`
/// with `secret` (exit 0), or fails saying `fails_with`.
fn credential_helper(bin: &Path, name: &str, host: &str, secret: &str, fails_with: Option<&str>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin).unwrap();
    let body = match fails_with {
        // Reads the server first, as real helpers do: one that exits unread makes the harness's
        // write fail, which is "could not be run", not this failure.
        Some(said) => format!("read -r server; echo '{said}' >&2; exit 1"),
        None => format!(
            "[ \"$1\" = get ] || exit 1\nread -r server\n[ \"$server\" = '{host}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"tester\",\"Secret\":\"{secret}\"}}' \"$server\""
        ),
    };
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A client config dir holding only `config` (no login of its own).
fn client_config(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    with_plugins(dir.path());
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

/// Item 2: credentials from credential helpers, found as the docker CLI finds them: a registry's
/// own `credHelpers` entry, else `credsStore`. A helper that fails or is not installed stops the
/// run naming it, and the secret it hands out appears nowhere.
#[test]
fn credentials_come_from_the_clis_credential_helpers() {
    let reg = Registry::start();
    let image = reg.push_app();
    let suite = reg.suite(&image, "");
    let helpers = tempfile::tempdir().unwrap();
    let bin = helpers.path().join("bin");
    credential_helper(&bin, "sc-store", &reg.host(), &reg.password, None);
    credential_helper(
        &bin,
        "sc-locked",
        &reg.host(),
        "",
        Some("the keychain is locked"),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let host = reg.host();
    for (config, pulls) in [
        (
            format!(r#"{{"credHelpers":{{"{host}":"sc-store"}}}}"#),
            true,
        ),
        (r#"{"credsStore":"sc-store"}"#.to_string(), true),
        // A registry's own helper wins over the store, as in the CLI.
        (
            format!(r#"{{"credsStore":"sc-locked","credHelpers":{{"{host}":"sc-store"}}}}"#),
            true,
        ),
        (r#"{"credsStore":"sc-locked"}"#.to_string(), false),
        (
            format!(r#"{{"credHelpers":{{"{host}":"sc-not-installed"}}}}"#),
            false,
        ),
    ] {
        let _ = reg.docker(&["rmi", &image]).output();
        let dir = client_config(&config);
        let (code, out) = reg.run_env(suite.path(), dir.path(), &[], &[("PATH", path.clone())]);
        if pulls {
            assert_eq!(code, Some(0), "{config}: {out}");
            assert!(
                out.contains(&format!("pulled {image} in ")),
                "{config}: {out}"
            );
            continue;
        }
        assert_eq!(code, Some(3), "{config}: {out}");
        let why = if config.contains("sc-locked") {
            "credential helper `docker-credential-sc-locked` failed: the keychain is locked"
        } else {
            "could not be run; is its `docker-credential-…` program on PATH?"
        };
        assert!(
            out.contains(&format!(
                "cannot get the docker CLI's credentials for registry {host} (to pull `{image}`)"
            )) && out.contains(why),
            "{config}: {out}"
        );
    }
}

/// Item 3: a registry that accepts connections and never answers ends the run within the suite's
/// budget (`stack.timeout`), naming the registry, with nothing started.
#[test]
fn a_registry_that_never_answers_is_bounded_by_the_budget() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    // Accepts and holds every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept() {
            held.push(s);
        }
    });
    let reg = Registry::start();
    let image = format!("{host}/sc/app:1");
    let suite = reg.suite(&image, "");
    let file = suite.path().join("suite.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "  ports: ephemeral\n",
            "  ports: ephemeral\n  timeout: 15s\n",
        ),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let (code, out) = reg.run(suite.path(), &reg.config(), &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!("registry {host} did not answer for `{image}`")),
        "{out}"
    );
    // The bound is the budget, not the engine's own (much longer) patience.
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(120),
        "{:?}: {out}",
        t0.elapsed()
    );
}

/// Item 1: the probe image, named by `STACKCHECK_PROBE_IMAGE`, is pulled like the stack's images
/// (same credentials) when a check first needs it; one the registry lacks fails that check,
/// naming the registry.
#[test]
fn the_probe_image_is_pulled_with_the_same_credentials() {
    let reg = Registry::start();
    let probe = reg.push("stackcheck/probe:1", "sc/probe:1");
    let image = reg.push_app();
    let suite = reg.suite(&image, "    network_mode: none\n");
    let file = suite.path().join("suite.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{yaml}checks:\n  - name: cut off\n    isolated: {{ service: app }}\n"),
    )
    .unwrap();
    let (code, out) = reg.run_env(
        suite.path(),
        &reg.config(),
        &[],
        &[("STACKCHECK_PROBE_IMAGE", probe.clone())],
    );
    let _ = reg.docker(&["rmi", &probe]).output();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("pulling {probe} (probe image)")),
        "{out}"
    );
    assert!(out.contains(&format!("pulled {probe} in ")), "{out}");

    let absent = format!("{}/sc/probe:absent", reg.host());
    let (code, out) = reg.run_env(
        suite.path(),
        &reg.config(),
        &[],
        &[("STACKCHECK_PROBE_IMAGE", absent.clone())],
    );
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("pulled::checks::cut off"))
        .unwrap_or_else(|| panic!("no isolation check: {out}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        out.contains(&format!("registry {} has no `{absent}`", reg.host())),
        "{out}"
    );
}
