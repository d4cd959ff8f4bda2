//! Images from a real registry (issue 15): `ci/registry.sh` starts Debian's docker-registry on a
//! loopback port with htpasswd auth; the test logs in (its own `DOCKER_CONFIG`), pushes an image,
//! removes it from the engine, and a suite naming it pulls it with those credentials. Wrong
//! credentials, a missing tag, a stopped registry and `--pull never` each stop the run before
//! anything starts, saying why; the password appears in no output. Drives the real engine.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{labelled, root, text};

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
        let image = format!("{}/sc/app:1", self.host());
        for args in [
            vec!["tag", "python:3.9-slim", &image],
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
        let out_dir = tempfile::tempdir().unwrap();
        let (junit, json) = (out_dir.path().join("j.xml"), out_dir.path().join("r.json"));
        let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
            .arg("run")
            .arg(suite.join("suite.yaml"))
            .args(extra)
            .arg("--junit")
            .arg(&junit)
            .arg("--json")
            .arg(&json)
            .env("DOCKER_CONFIG", config)
            .output()
            .unwrap();
        let mut all = text(&out);
        for f in [&junit, &json] {
            all.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
        assert!(!all.contains(&self.password), "the password leaked: {all}");
        let run = all
            .split("(run ")
            .nth(1)
            .and_then(|r| r.get(..8))
            .unwrap_or_default();
        assert!(
            labelled(&format!("io.stackcheck.run={run}")).is_empty(),
            "{all}"
        );
        (out.status.code(), all)
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

    // Present now: `missing` does not pull again.
    let (code, out) = reg.run(suite.path(), &reg.config(), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("pulling "), "{out}");

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
