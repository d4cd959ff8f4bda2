//! One bring-up per suite per nextest run, shared by that suite's tests (each its own process).
//!
//! The first test of a suite to run takes a file lock, runs the whole suite (build, up, all
//! checks, teardown) and stores the outcomes in `<target>/stackcheck-conformance/<run>/<suite>.json`;
//! every other test of that suite waits on the lock and reads its own outcome from there. The run
//! key is nextest's `NEXTEST_RUN_ID` (one process per test) or, under `cargo test` (one process),
//! the process id; `<target>` is the cargo target folder the test binary was built in. Every real
//! bring-up appends the suite's name to `bring-ups` in that folder.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::Failed;

use crate::engine::Engine;
use crate::report::{Outcome, Progress, SuiteReport};
use crate::suite::{looks_secret, url_passwords, LoadedSuite};

/// The first argument that makes the test binary the watcher of the process named next.
pub(super) const WATCH: &str = "__watch";

/// Where this nextest run keeps its suites' outcomes and reports.
pub fn cache_dir() -> PathBuf {
    let key =
        std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| format!("pid-{}", std::process::id()));
    target_dir().join("stackcheck-conformance").join(key)
}

/// The cargo target folder of this test binary (`<target>/<profile>/deps/<binary>`), else the
/// system's temporary folder.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    exe.as_deref()
        .and_then(Path::parent)
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Outcomes of one suite, computed once per run key and shared by all its tests.
pub(super) fn suite_report(loaded: &LoadedSuite) -> Result<SuiteReport, String> {
    static IN_PROCESS: OnceLock<Mutex<HashMap<String, Result<SuiteReport, String>>>> =
        OnceLock::new();
    let memo = IN_PROCESS.get_or_init(Default::default);
    let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = memo.get(&loaded.suite.id) {
        return r.clone();
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock =
        File::create(dir.join(format!("{}.lock", loaded.suite.id))).map_err(|e| e.to_string())?;
    lock.lock()
        .map_err(|e| format!("cannot lock the suite cache: {e}"))?;
    let cached = dir.join(format!("{}.json", loaded.suite.id));
    let result = match std::fs::read(&cached) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("corrupt cache {}: {e}", cached.display())),
        Err(_) => {
            let report = run_once(loaded, &dir);
            if let Ok(r) = &report {
                let _ = std::fs::write(&cached, serde_json::to_vec(r).unwrap_or_default());
            }
            report.and_then(|r| attest(&dir, loaded).map(|()| r))
        }
    };
    drop(lock);
    memo.insert(loaded.suite.id.clone(), result.clone());
    result
}

/// With `STACKCHECK_ATTEST=FILE` (relative to the crate's folder, where cargo runs tests): this
/// nextest run's evidence, as `run --attest` writes it, signed with `STACKCHECK_SIGN_KEY` if set.
/// Each suite's process rewrites it, under a lock, from every suite reported so far in this run,
/// so the last one leaves it whole: one attestation per nextest run (per partition).
fn attest(dir: &Path, loaded: &LoadedSuite) -> Result<(), String> {
    let Some(path) = std::env::var_os("STACKCHECK_ATTEST").map(PathBuf::from) else {
        return Ok(());
    };
    let key = crate::attest::SigningKey::from_flag_or_env(None).map_err(|e| e.to_string())?;
    let files = crate::attest::files(std::slice::from_ref(loaded)).map_err(|e| e.to_string())?;
    let id = &loaded.suite.id;
    let sidecar = dir.join(format!("{id}.attest-files.json"));
    std::fs::write(&sidecar, serde_json::to_vec(&files).unwrap_or_default())
        .map_err(|e| format!("cannot write {}: {e}", sidecar.display()))?;
    let lock = File::create(dir.join("attest.lock")).map_err(|e| e.to_string())?;
    lock.lock()
        .map_err(|e| format!("cannot lock the attestation: {e}"))?;
    let (mut reports, mut configuration) = (Vec::new(), Vec::new());
    let mut sidecars: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".attest-files.json"))
        .collect();
    sidecars.sort();
    for sidecar in sidecars {
        let name = sidecar
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let suite = name.trim_end_matches(".attest-files.json");
        let read = |p: PathBuf| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
        let report: SuiteReport = serde_json::from_slice(&read(dir.join(format!("{suite}.json")))?)
            .map_err(|e| e.to_string())?;
        let files: Vec<crate::attest::ResourceDescriptor> =
            serde_json::from_slice(&read(sidecar)?).map_err(|e| e.to_string())?;
        reports.push(report);
        for f in files {
            if !configuration.contains(&f) {
                configuration.push(f);
            }
        }
    }
    let statement = crate::attest::statement(&reports, configuration);
    crate::attest::write(&path, &statement, key.as_ref())
        .map_err(|e| format!("cannot write the attestation to {}: {e}", path.display()))
}

/// Runs the suite as `stackcheck run -v` would, writing its console output, JUnit, JSON and
/// summary into `dir`.
fn run_once(loaded: &LoadedSuite, dir: &Path) -> Result<SuiteReport, String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let engine = Engine::connect().await.map_err(|e| e.to_string())?;
        // Once per process: stale runs of killed processes go, and a watcher covers this one.
        static WATCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WATCHED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = crate::run::reap::reap(&engine, false, false).await;
            match std::env::current_exe() {
                Ok(exe) => crate::run::reap::spawn_watcher(&exe, &engine),
                Err(e) => eprintln!("warning: no watcher for crash cleanup ({e})"),
            }
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("bring-ups"))
            .map_err(|e| e.to_string())?;
        let _ = writeln!(log, "{}", loaded.suite.id);
        let id = &loaded.suite.id;
        let console = Recorder::create(&dir.join(format!("{id}.console")))?;
        let report = crate::run::run_suite(loaded, &engine, &console).await;
        let one = std::slice::from_ref(&report);
        let written = |path: PathBuf, r: std::io::Result<()>| {
            r.map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        let junit = dir.join(format!("{id}.xml"));
        written(junit.clone(), crate::report::write_junit(&junit, one))?;
        let json = dir.join(format!("{id}.report.json"));
        written(
            json.clone(),
            crate::report::write_json(&json, one, report.duration_ms),
        )?;
        let md = dir.join(format!("{id}.md"));
        written(md.clone(), crate::report::write_summary(&md, one))?;
        Ok(report)
    })
}

/// The watcher this binary becomes with `__watch <pid>`: once `pid` is gone, what it owned goes.
pub(super) fn watch(pid: i32) -> i32 {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return 3;
    };
    rt.block_on(async {
        match crate::run::reap::watch(pid).await {
            Ok(_) => 0,
            Err(_) => 3,
        }
    })
}

/// What `stackcheck run -v` would print (every phase, work line and outcome), into a file the
/// no-secrets test reads.
struct Recorder(Mutex<File>);

impl Recorder {
    fn create(path: &Path) -> Result<Recorder, String> {
        File::create(path)
            .map(|f| Recorder(Mutex::new(f)))
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
    }
    fn line(&self, text: &str) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{text}");
    }
}

impl Progress for Recorder {
    fn phase(&self, msg: &str) {
        self.line(&format!("· {msg}"));
    }
    fn detail(&self, msg: &str) {
        self.line(&format!("  {msg}"));
    }
    fn outcome(&self, o: &Outcome) {
        self.line(&format!(
            "{:?} {}  {}\n{}",
            o.status, o.name, o.message, o.detail
        ));
    }
}

/// `<suite>::reports::no-secrets`: the console output, JUnit, JSON and Markdown summary of the
/// suite's run hold none of its secret values, gathered from the suite's files and the compose
/// model here rather than from the masker the run used.
pub(super) fn no_secrets(loaded: &LoadedSuite) -> Result<(), Failed> {
    let report = suite_report(loaded)?;
    let secrets = secret_values(loaded)?;
    let dir = cache_dir();
    let id = &loaded.suite.id;
    let mut texts = vec![(
        "JSON".to_string(),
        serde_json::to_string(&report).unwrap_or_default(),
    )];
    for ext in ["console", "xml", "report.json", "md"] {
        let path = dir.join(format!("{id}.{ext}"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        texts.push((path.display().to_string(), text));
    }
    let found: Vec<String> = secrets
        .iter()
        .flat_map(|s| {
            let hint: String = s.chars().take(3).collect();
            texts
                .iter()
                .filter(move |(_, text)| text.contains(s.as_str()))
                .map(move |(at, _)| format!("a secret starting {hint:?} in {at}"))
        })
        .collect();
    match found.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{} of {} secrets leaked: {}",
            found.len(),
            secrets.len(),
            found.join("; ")
        )
        .into()),
    }
}

/// Every secret value of a suite: all values of the stack's env file, suite `env` and
/// `stack.containers` values under secret-looking names or listed in `stack.secrets`, and
/// secret-looking `environment` entries of every service as `docker compose config` resolves them,
/// with the password of every URL in any `environment` value. By the format's rule a report
/// cannot hide values under 6 characters, numbers, and the names of the stack's services, images,
/// networks and volumes or a word of one; every other value is hidden everywhere, test names too.
pub fn secret_values(loaded: &LoadedSuite) -> Result<Vec<String>, String> {
    let stack = &loaded.suite.stack;
    let secret_name =
        |k: &str| looks_secret(k) || stack.secrets.iter().any(|s| s.eq_ignore_ascii_case(k));
    let mut values = Vec::new();
    let mut names: Vec<String> = loaded.suite.named_services();
    names.push(loaded.suite.id.clone());
    names.extend(loaded.suite.images.keys().cloned());
    if let Some(f) = &stack.env_file {
        let path = loaded.dir.join(f);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        values.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string()),
        );
    }
    for env in std::iter::once(&stack.env).chain(stack.containers.values().map(|c| &c.env)) {
        values.extend(
            env.iter()
                .filter(|(k, _)| secret_name(k))
                .map(|(_, v)| v.clone()),
        );
    }
    if !stack.compose.is_empty() {
        let model = compose_config(loaded)?;
        for part in ["services", "networks", "volumes"] {
            names.extend(
                model[part]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys().cloned()),
            );
        }
        let services = model["services"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values());
        for s in services {
            names.extend(s["image"].as_str().map(str::to_string));
            for (k, v) in s["environment"].as_object().into_iter().flatten() {
                let v = v.as_str().unwrap_or_default();
                if secret_name(k) {
                    values.push(v.to_string());
                }
                values.extend(url_passwords(v).into_iter().map(str::to_string));
            }
        }
    }
    let words: Vec<String> = names
        .iter()
        .flat_map(|n| {
            n.split(|c: char| !c.is_ascii_alphanumeric())
                .chain([n.as_str()])
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
        })
        .collect();
    values.retain(|v| {
        v.chars().count() >= 6
            && !v.chars().all(|c| c.is_ascii_digit())
            && !words.contains(&v.to_ascii_lowercase())
    });
    values.sort();
    values.dedup();
    Ok(values)
}

/// `docker compose config --format json` of the suite's stack, with its env file and env.
fn compose_config(loaded: &LoadedSuite) -> Result<serde_json::Value, String> {
    let stack = &loaded.suite.stack;
    let mut cmd = std::process::Command::new("docker");
    cmd.arg("compose");
    for f in &stack.compose {
        cmd.arg("-f").arg(loaded.dir.join(f));
    }
    if let Some(f) = &stack.env_file {
        cmd.arg("--env-file").arg(loaded.dir.join(f));
    }
    let out = cmd
        .args(["config", "--format", "json"])
        .envs(&stack.env)
        .output()
        .map_err(|e| format!("cannot run docker compose config: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("docker compose config: {e}"))
}
