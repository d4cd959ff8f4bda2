//! Whole-document rules that a type alone cannot express.

use std::collections::BTreeMap;

use std::path::{Component, Path, PathBuf};

use super::{Action, CheckKind, Expect, HttpCheck, LoadedSuite, Scheme, Suite, SuiteError};

const MAX_RETRIES: u32 = 10;

pub(super) fn validate(loaded: &LoadedSuite, _text: &str) -> Result<(), SuiteError> {
    let invalid = |at: Option<(u64, u64)>, msg: String| SuiteError::invalid(&loaded.path, at, msg);
    let s = &loaded.suite;
    stack_ok(s).map_err(|m| invalid(None, m))?;
    checks_ok(s).map_err(|(at, m)| invalid(Some(at), m))?;
    images_and_services_ok(s).map_err(|m| invalid(None, m))
}

/// The suite id, `stack` (compose or containers, each container well formed) and the subnets.
fn stack_ok(s: &Suite) -> Result<(), String> {
    let err = |msg: String| Err(msg);
    if !is_id(&s.id) {
        return err(format!(
            "`suite: {}` must be an id of letters, digits, `-` and `_`",
            s.id
        ));
    }
    match (s.stack.compose.is_empty(), s.stack.containers.is_empty()) {
        (true, true) => {
            return err(
                "`stack` needs `compose` (one or more compose files) or `containers`".into(),
            )
        }
        (false, false) => {
            return err("`stack` has both `compose` and `containers`: use exactly one".into())
        }
        _ => {}
    }
    for (name, c) in &s.stack.containers {
        match (&c.build, &c.image) {
            (Some(b), None) if b.tag.is_none() => {
                return err(format!(
                    "stack.containers.{name}.build: needs `tag` (the name of the built image)"
                ))
            }
            (None, None) => {
                return err(format!("stack.containers.{name}: needs `build` or `image`"))
            }
            (Some(_), Some(_)) => {
                return err(format!(
                    "stack.containers.{name}: has both `build` and `image`; use one"
                ))
            }
            _ => {}
        }
        for m in &c.mounts {
            if super::parse_mount(m, Path::new("."), Path::new(".")).is_err() {
                return err(format!("stack.containers.{name}.mounts: invalid mount `{m}`: expected `host:container[:ro|:rw]`"));
            }
        }
    }
    for (name, net) in &s.networks {
        if let Some(subnet) = &net.subnet {
            if !is_cidr(subnet) {
                return err(
                    format!("networks.{name}.subnet: `{subnet}` is not an address/prefix, e.g. 172.20.0.0/16"),
                );
            }
        }
    }
    Ok(())
}

/// Each check: a unique name, a kind and expectations that fit, bounded retries.
fn checks_ok(s: &Suite) -> Result<(), ((u64, u64), String)> {
    let err = |at: (u64, u64), msg: String| Err((at, msg));
    let mut seen: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in &s.checks {
        if let Some(first) = seen.insert(&c.name, c.at) {
            return err(
                c.at,
                format!(
                    "duplicate check name `{}` (first used at line {})",
                    c.name, first.0
                ),
            );
        }
        if let Err(m) = kind_ok(&c.kind).and_then(|()| expect_ok(&c.kind, &c.expect)) {
            return err(c.at, format!("check `{}`: {m}", c.name));
        }
        if c.retries > MAX_RETRIES {
            return err(
                c.at,
                format!(
                    "check `{}`: `retries: {}` is too many (at most {MAX_RETRIES}); a check that needs more is failing, not flaky",
                    c.name, c.retries
                ),
            );
        }
        if let Some(r) = &c.retry {
            if r.every.is_some_and(|e| e.0.is_zero()) {
                return err(
                    c.at,
                    format!("check `{}`: `retry.every` must be more than 0", c.name),
                );
            }
        }
    }
    Ok(())
}

/// `images` (a service or a build, a readable size) and `services` within `stack.services`.
fn images_and_services_ok(s: &Suite) -> Result<(), String> {
    let err = |msg: String| Err(msg);
    for (tag, image) in &s.images {
        if image.service.is_some() && image.build.is_some() {
            return err(format!(
                "images.{tag}: has both `service` and `build`; use one"
            ));
        }
        if let Some(size) = &image.max_size {
            if super::parse_size(size).is_none() {
                return err(format!(
                    "images.{tag}.max_size: invalid size `{size}` (e.g. 900MiB, 1GB)"
                ));
            }
        }
    }
    if !s.stack.services.is_empty() {
        for name in s.services.keys() {
            if !s.stack.services.contains(name) {
                return err(format!(
                    "services.{name}: not in `stack.services` {:?}, so it would never start",
                    s.stack.services
                ));
            }
        }
    }
    Ok(())
}

/// Files the stack needs must exist before anything starts (paths are relative to the suite).
/// Separate from [`validate`], which judges the text alone.
pub(super) fn files_exist(loaded: &LoadedSuite) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    let named = s.stack.compose.iter().map(|f| ("stack.compose", f));
    for (key, file) in named.chain(s.stack.env_file.iter().map(|f| ("stack.env_file", f))) {
        if !loaded.dir.join(file).is_file() {
            return Err(SuiteError::invalid(
                &loaded.path,
                None,
                format!(
                    "{key}: `{file}` does not exist (looked in {})",
                    loaded.dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Every request's `${VAR}` is set and every `http.tls.ca` file exists, before anything starts:
/// an unset token would otherwise be sent as an empty one and fail as a 401 far from its cause.
pub(super) fn requests_resolve(loaded: &LoadedSuite) -> Result<(), SuiteError> {
    let vars = super::Vars::of(loaded);
    for c in &loaded.suite.checks {
        let err = |msg: String| {
            Err(SuiteError::invalid(
                &loaded.path,
                Some(c.at),
                format!("check `{}`: {msg}", c.name),
            ))
        };
        for (key, template) in super::templates(&c.kind) {
            if let Err(e) = vars.expand(template) {
                return err(format!("{key}: {e}"));
            }
        }
        for (key, ca) in tls_cas(&c.kind) {
            if !loaded.dir.join(ca).is_file() {
                return err(format!(
                    "{key}: `{ca}` does not exist (looked in {})",
                    loaded.dir.display()
                ));
            }
        }
    }
    Ok(())
}

/// The `http.tls.ca` files of a check kind (a scenario's steps included).
fn tls_cas(kind: &CheckKind) -> Vec<(String, &str)> {
    kind.with_steps()
        .into_iter()
        .filter_map(|(at, kind)| match kind {
            CheckKind::Http(h) => h
                .tls
                .as_ref()?
                .ca
                .as_deref()
                .map(|ca| (format!("{at}http.tls.ca"), ca)),
            _ => None,
        })
        .collect()
}

/// Where `{suite_dir}` paths may lead: the repository the suite lives in (the nearest folder
/// above it holding `.git`), else the suite's own folder. Suites may reach their fixtures beside
/// them (`{suite_dir}/../fixtures/…`), never the rest of the machine.
pub fn suite_boundary(suite_dir: &Path) -> PathBuf {
    let dir = suite_dir
        .canonicalize()
        .unwrap_or_else(|_| suite_dir.to_path_buf());
    dir.ancestors()
        .find(|a| a.join(".git").exists())
        .unwrap_or(&dir)
        .to_path_buf()
}

/// `path` with `.` and `..` resolved lexically (the target may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `{suite_dir}` placeholders (and relative host paths) in mounts and `expect.files` must stay
/// inside [`suite_boundary`]; `{tmp}` paths inside the run's temp folder.
pub(super) fn placeholders_stay_inside(loaded: &LoadedSuite) -> Result<(), SuiteError> {
    let s = &loaded.suite;
    let dir = loaded
        .dir
        .canonicalize()
        .unwrap_or_else(|_| loaded.dir.clone());
    let boundary = suite_boundary(&loaded.dir);
    let tmp = Path::new("/stackcheck-tmp");
    let inside = |key: &str, text: &str, host: &str| -> Result<(), SuiteError> {
        let replaced = host
            .replace("{suite_dir}", &dir.to_string_lossy())
            .replace("{tmp}", &tmp.to_string_lossy());
        let path = Path::new(&replaced);
        let (path, root) = if host.starts_with("{tmp}") {
            (normalize(path), tmp.to_path_buf())
        } else if host.contains("{suite_dir}") || path.is_relative() {
            (normalize(&dir.join(path)), boundary.clone())
        } else {
            return Ok(()); // an absolute path written out: the author's explicit choice
        };
        if path.starts_with(&root) {
            return Ok(());
        }
        Err(SuiteError::invalid(
            &loaded.path,
            None,
            format!(
                "{key}: `{text}` leads to {} outside {} (placeholders may not leave the suite's repository or the run's temp folder)",
                path.display(),
                if root == tmp { "{tmp}".to_string() } else { root.display().to_string() }
            ),
        ))
    };
    for (name, c) in &s.stack.containers {
        for m in &c.mounts {
            let host = m.split(':').next().unwrap_or_default();
            inside(&format!("stack.containers.{name}.mounts"), m, host)?;
        }
    }
    let mut expects: Vec<(&str, &Expect)> = s
        .checks
        .iter()
        .map(|c| (c.name.as_str(), &c.expect))
        .collect();
    for c in &s.checks {
        if let CheckKind::Steps(steps) = &c.kind {
            for step in steps {
                if let Action::Check { expect, .. } = &step.action {
                    expects.push((c.name.as_str(), expect));
                }
            }
        }
    }
    for (check, expect) in expects {
        for f in expect.files.iter().flatten() {
            inside(&format!("check `{check}`: expect.files"), f, f)?;
        }
    }
    Ok(())
}

fn kind_ok(kind: &CheckKind) -> Result<(), String> {
    match kind {
        CheckKind::Exec(e) if e.cmd.is_empty() => Err("`exec.cmd` must not be empty".into()),
        CheckKind::FromHost(e) if e.cmd.is_empty() => {
            Err("`from_host.cmd` must not be empty".into())
        }
        CheckKind::Reach(r) if r.target().is_none() => Err(format!(
            "`reach.to: {}` must be `service:port`, e.g. \"db:5432\"",
            r.to
        )),
        CheckKind::Logs(l) if l.contains.is_none() && l.excludes.is_none() => {
            Err("`logs` needs `contains`, `excludes` or both".into())
        }
        CheckKind::Logs(l) => {
            for (key, p) in [
                ("logs.contains", &l.contains),
                ("logs.excludes", &l.excludes),
            ] {
                match p.as_deref() {
                    Some("") => return Err(format!("`{key}` must not be empty")),
                    Some(p) => pattern_ok(key, p)?,
                    None => {}
                }
            }
            Ok(())
        }
        CheckKind::Http(h) => http_ok(h),
        CheckKind::Steps(steps) => {
            for (i, step) in steps.iter().enumerate() {
                if let Action::Check { kind, expect, .. } = &step.action {
                    if matches!(**kind, CheckKind::Steps(_)) {
                        return Err(format!("step {}: steps cannot nest", i + 1));
                    }
                    kind_ok(kind)
                        .and_then(|()| expect_ok(kind, expect))
                        .map_err(|m| format!("step {}: {m}", i + 1))?;
                }
                if let Action::Kill(k) = &step.action {
                    super::signal_number(&k.signal).map_err(|m| format!("step {}: {m}", i + 1))?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn http_ok(h: &HttpCheck) -> Result<(), String> {
    if !HTTP_METHODS.contains(&h.method.as_str()) {
        return Err(format!(
            "`http.method: {}` is not one of {}",
            h.method,
            HTTP_METHODS.join(", ")
        ));
    }
    if let Some(tls) = &h.tls {
        if h.scheme != Scheme::Https {
            return Err("`http.tls` needs `scheme: https`".into());
        }
        if tls.insecure && tls.ca.is_some() {
            return Err(
                "`http.tls`: `ca` and `insecure: true` contradict each other; use one".into(),
            );
        }
    }
    if h.json.is_some() && h.body.is_some() {
        return Err("`http.json` and `http.body` are both request bodies; use one".into());
    }
    for name in h.headers.keys() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("`http.headers`: `{name}` is not a header name"));
        }
    }
    Ok(())
}

const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// A `/regex/` must compile now, not fail on the first response.
fn pattern_ok(key: &str, pattern: &str) -> Result<(), String> {
    super::text_matches(pattern, "")
        .map(drop)
        .map_err(|e| format!("`{key}`: {e}"))
}

/// The `expect` keys each kind of check judges. Any other key would be silently ignored: a
/// promise that looks checked and is not.
fn judged_keys(kind: &CheckKind) -> &'static [&'static str] {
    match kind {
        CheckKind::Http(_) => &[
            "status",
            "body",
            "body_excludes",
            "json",
            "headers",
            "jsonpath",
            "within",
        ],
        CheckKind::Exec(_) | CheckKind::FromHost(_) => &[
            "exit",
            "stdout",
            "stdout_excludes",
            "stderr",
            "stderr_excludes",
            "within",
        ],
        CheckKind::Run(_) => &["exit", "stdout", "stdout_excludes", "within", "files"],
        _ => &[],
    }
}

fn expect_ok(kind: &CheckKind, e: &Expect) -> Result<(), String> {
    let given = [
        ("status", e.status.is_some()),
        ("body", e.body.is_some()),
        ("body_excludes", e.body_excludes.is_some()),
        ("json", e.json.is_some()),
        ("headers", !e.headers.is_empty()),
        ("jsonpath", !e.jsonpath.is_empty()),
        ("exit", e.exit.is_some()),
        ("stdout", e.stdout.is_some()),
        ("stdout_excludes", e.stdout_excludes.is_some()),
        ("stderr", e.stderr.is_some()),
        ("stderr_excludes", e.stderr_excludes.is_some()),
        ("within", e.within.is_some()),
        ("files", e.files.is_some()),
    ];
    let judged = judged_keys(kind);
    if let Some((key, _)) = given.iter().find(|(k, set)| *set && !judged.contains(k)) {
        let name = super::kind_name(kind);
        let what = if judged.is_empty() {
            format!("`{name}` checks judge no `expect`")
        } else {
            format!("`{name}` checks judge {}", judged.join(", "))
        };
        let hint = if name == "run" && key.starts_with("stderr") {
            " (`run` keeps only stdout)"
        } else {
            ""
        };
        return Err(format!("`expect.{key}` would be ignored: {what}{hint}"));
    }
    for (key, p) in [
        ("expect.body", &e.body),
        ("expect.body_excludes", &e.body_excludes),
        ("expect.stdout", &e.stdout),
        ("expect.stdout_excludes", &e.stdout_excludes),
        ("expect.stderr", &e.stderr),
        ("expect.stderr_excludes", &e.stderr_excludes),
    ] {
        if let Some(p) = p {
            pattern_ok(key, p)?;
        }
    }
    for (name, p) in &e.headers {
        pattern_ok(&format!("expect.headers.{name}"), p)?;
    }
    for (path, want) in &e.jsonpath {
        serde_json_path::JsonPath::parse(path)
            .map_err(|err| format!("`expect.jsonpath`: `{path}` is not an RFC 9535 path: {err}"))?;
        if let Some(p) = want.as_str() {
            pattern_ok(&format!("expect.jsonpath.{path}"), p)?;
        }
    }
    if e.within.is_some_and(|d| d.0.is_zero()) {
        return Err("`expect.within` must be more than 0".into());
    }
    Ok(())
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let max = match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 32,
        Ok(std::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[rstest::rstest]
    #[case("172.20.0.0/16", true)]
    #[case("10.0.0.0/8", true)]
    #[case("fd00::/64", true)]
    #[case("172.20.0.0/33", false)]
    #[case("172.20.0.0", false)]
    #[case("172.20.0/16", false)]
    #[case("fd00::/129", false)]
    #[case("net/16", false)]
    fn subnets_are_address_and_prefix(#[case] text: &str, #[case] ok: bool) {
        assert_eq!(super::is_cidr(text), ok, "{text}");
    }

    fn err(text: &str) -> String {
        crate::suite::load_str(Path::new("s.yaml"), text)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str = "suite: s\nstack: { compose: [c.yml] }\n";

    #[test]
    fn every_check_kind_and_step_parses() {
        let text = format!(
            "{HEAD}checks:\n  - name: a\n    reach: {{ from: web, to: \"db:5432\", expect: unreachable }}\n  - name: b\n    isolated: {{ service: l3 }}\n  - name: c\n    logs: {{ service: api, contains: ready, within: 5s }}\n  - name: d\n    run: {{ service: ops, args: [x] }}\n    expect: {{ exit: 0, files: [\"r/*.md\"] }}\n  - name: e\n    steps:\n      - restart: db\n      - kill: {{ service: db }}\n      - state: {{ service: db, is: healthy, within: 9s }}\n      - down_up: true\n      - exec: {{ service: db, cmd: [true] }}\n        expect: {{ exit: 0 }}\n"
        );
        let loaded = crate::suite::load_str(Path::new("s.yaml"), &text).unwrap();
        assert_eq!(loaded.suite.checks.len(), 5);
        let crate::suite::CheckKind::Steps(steps) = &loaded.suite.checks[4].kind else {
            panic!()
        };
        assert_eq!(steps.len(), 5);
        assert_eq!(steps[1].action.describe(), "kill -KILL db");
    }

    #[test]
    fn bad_checks_and_steps_say_where_and_what() {
        let e = err(&format!(
            "{HEAD}checks:\n  - name: a\n    reach: {{ from: web, to: db }}\n"
        ));
        assert!(
            e.contains("s.yaml:4:") && e.contains("must be `service:port`"),
            "{e}"
        );
        let e = err(&format!("{HEAD}checks:\n  - name: a\n    steps:\n      - restart: db\n        expect: {{ exit: 0 }}\n"));
        assert!(e.contains("`expect` and `retry` belong to checks"), "{e}");
        let e = err(&format!(
            "{HEAD}checks:\n  - name: a\n    steps:\n      - restart: db\n        stop: db\n"
        ));
        assert!(
            e.contains("exactly one of") && e.contains("found restart, stop"),
            "{e}"
        );
        let e = err(&format!("{HEAD}checks:\n  - name: a\n    steps:\n      - kill: {{ service: db, signal: NOPE }}\n"));
        assert!(e.contains("unknown signal `NOPE`"), "{e}");
        let e = err(&format!("{HEAD}policy: {{ no_latest_tags: sometimes }}\n"));
        assert!(e.contains("s.yaml:3:"), "{e}");
    }

    #[test]
    fn a_stack_is_compose_or_containers() {
        let e = err("suite: s\nstack: { compose: [c.yml], containers: { l3: { image: x } } }\n");
        assert!(e.contains("use exactly one"), "{e}");
        let e = err("suite: s\nstack: { containers: { l3: { build: { context: . } } } }\n");
        assert!(e.contains("needs `tag`"), "{e}");
        let e =
            err("suite: s\nstack: { containers: { l3: { image: x, mounts: [\"/a:/b:rx\"] } } }\n");
        assert!(e.contains("invalid mount `/a:/b:rx`"), "{e}");
    }
}
