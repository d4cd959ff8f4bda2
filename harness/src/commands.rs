//! Each subcommand as the CLI prints it and with its exit code: `validate`, `init`, `reap`,
//! `down`, `mutate`, `verify`, and `run` (and `up`) once their input is checked. `main.rs` parses the
//! command line and dispatches here.

use std::time::Duration;

use crate::attest::{AttestTo, PublicKey, Verification, VerifyError};
use crate::engine::Engine;
use crate::error::{EXIT_FAILED, EXIT_INFRA, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK};
use crate::report::Status;
use crate::report::{Console, Outputs};
use crate::suite::LoadedSuite;

/// The engine, or exit 3 with how to start one (said by the error).
pub async fn connect() -> Result<Engine, i32> {
    Engine::connect().await.map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INFRA
    })
}

/// Prints each suite's test count and its static policy results (no engine needed).
pub async fn validate(loaded: &[LoadedSuite]) -> i32 {
    let mut code = EXIT_OK;
    // All suites' compose calls at once; results printed in order.
    let policies =
        futures_util::future::join_all(loaded.iter().map(crate::preflight::static_policy)).await;
    for (s, policy) in loaded.iter().zip(policies) {
        // A variant is named: one file is several suites then.
        let variant = match s.suite.id.split_once('@') {
            Some(_) => format!(" [{}]", s.suite.id),
            None => String::new(),
        };
        println!(
            "ok: {}{variant} ({} tests)",
            s.path.display(),
            crate::plan::tests(&s.suite).len()
        );
        match policy {
            Ok(outcomes) => {
                for o in outcomes {
                    let tag = match (o.status, o.warning) {
                        (Status::Failed, _) => {
                            code = code.max(EXIT_FAILED);
                            "FAIL"
                        }
                        (_, true) => "warn",
                        _ => "pass",
                    };
                    println!("  {tag} {}: {}", o.name, o.message);
                }
            }
            Err(e) => {
                eprintln!(
                    "error: {}: policy needs `docker compose config`: {e}",
                    s.path.display()
                );
                code = EXIT_INFRA;
            }
        }
    }
    code
}

/// `init --observe`: the services to start and watch (all when empty), and whether `mutate`
/// measures the written suite.
#[derive(Debug, Default)]
pub struct Observe {
    /// `--service`: only these and what they depend on.
    pub services: Vec<String>,
    /// `--mutate`: run `stackcheck mutate` on the written suite.
    pub mutate: bool,
    /// `--reuse`: watch the stack `stackcheck up` left up instead of bringing one up.
    pub reuse: bool,
}

/// How long `init --observe` watches each service once the stack is up.
const OBSERVE_WINDOW: Duration = Duration::from_secs(10);

/// `stackcheck init`: writes a starting suite (never over an existing file without `force`);
/// with `observe`, from watching the stack run.
pub async fn init(req: crate::init::InitRequest, force: bool, observe: Option<Observe>) -> i32 {
    if req.output.exists() && !force {
        eprintln!(
            "error: {} exists; pass --force to replace it, or --output another file",
            req.output.display()
        );
        return EXIT_INVALID;
    }
    if let Some(missing) = req
        .compose
        .iter()
        .chain(&req.env_file)
        .find(|f| !f.is_file())
    {
        eprintln!("error: {}: no such file", missing.display());
        return EXIT_INVALID;
    }
    let (req, text, unproven, mutate) = match observe {
        None => match crate::init::scaffold(&req).await {
            Ok(t) => (req, t, None, false),
            Err(e) => {
                eprintln!("error: the compose files do not resolve: {e}");
                return EXIT_INVALID;
            }
        },
        Some(o) => match observed(req, o).await {
            Ok(written) => written,
            Err(code) => return code,
        },
    };
    if let Err(e) = std::fs::write(&req.output, &text) {
        eprintln!("error: cannot write {}: {e}", req.output.display());
        return EXIT_INFRA;
    }
    // What it wrote must load: a suite `init` writes and `validate` rejects is a bug of ours.
    if let Err(e) = crate::plan::load_file(&req.output) {
        eprintln!("error: the written suite does not validate (please report): {e}");
        return EXIT_INFRA;
    }
    if let Some(why) = unproven {
        eprintln!(
            "wrote {}, but it fails on the stack it was written from: {why}",
            req.output.display()
        );
        return EXIT_FAILED;
    }
    eprintln!(
        "wrote {}: review it, add checks, then `stackcheck run {}`",
        req.output.display(),
        req.output.display()
    );
    if mutate {
        return mutate_written(&req.output).await;
    }
    EXIT_OK
}

/// `init --observe`: the request back, the suite, what failed on its own stack, and `--mutate`.
async fn observed(
    init: crate::init::InitRequest,
    o: Observe,
) -> Result<(crate::init::InitRequest, String, Option<String>, bool), i32> {
    let req = crate::init::ObserveRequest {
        init,
        services: o.services,
        window: OBSERVE_WINDOW,
        reuse: o.reuse,
    };
    let console = Console::new(false);
    match crate::init::observe(&req, &console).await {
        Ok(w) => {
            if w.unproven.is_none() {
                eprintln!("the written suite passes on the stack it was written from");
            }
            Ok((req.init, w.text, w.unproven, o.mutate))
        }
        Err(e @ crate::init::ObserveError::Compose(_)) => {
            eprintln!("error: {e}");
            Err(EXIT_INVALID)
        }
        Err(e @ crate::init::ObserveError::Stack(crate::StackError::Interrupted(_))) => {
            eprintln!("error: {e}");
            Err(EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(EXIT_INFRA)
        }
    }
}

/// `init --observe --mutate`: how strong the suite just written is.
async fn mutate_written(path: &std::path::Path) -> i32 {
    let loaded = match crate::plan::load_runs(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INFRA;
        }
    };
    let req = MutateRequest {
        only: Vec::new(),
        jobs: None,
        ports: None,
        budget: Duration::from_secs(30 * 60),
        json: None,
        markdown: None,
        html: None,
        min_score: None,
        min_judged: 0.8,
    };
    mutate(loaded, req).await
}

/// What `stackcheck mutate` was asked.
#[derive(Debug)]
pub struct MutateRequest {
    /// Only the mutants these select (all when empty).
    pub only: Vec<crate::mutate::MutantFilter>,
    /// Mutant runs at the same time (default: one per core, at most 4).
    pub jobs: Option<usize>,
    /// Ports of every run (`--ports`; unset: as `mutate` decides).
    pub ports: Option<crate::suite::PortsMode>,
    /// No mutant starts after this.
    pub budget: Duration,
    /// Write the JSON report here.
    pub json: Option<std::path::PathBuf>,
    /// Write the Markdown summary here.
    pub markdown: Option<std::path::PathBuf>,
    /// Write the HTML page here.
    pub html: Option<std::path::PathBuf>,
    /// Exit 1 under this score.
    pub min_score: Option<f64>,
    /// With `min_score`: exit 1 when fewer than this share of the mutants were judged.
    pub min_judged: f64,
}

/// `stackcheck mutate`: the baseline, every mutant, then the table and the files asked for.
pub async fn mutate(loaded: Vec<LoadedSuite>, req: MutateRequest) -> i32 {
    let suite = match loaded.as_slice() {
        [one] if !one.suite.stack.compose.is_empty() => one,
        [one] => {
            eprintln!(
                "error: {}: mutate works on compose stacks; this suite runs `stack.containers`",
                one.path.display()
            );
            return EXIT_INVALID;
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|s| s.suite.id.as_str()).collect();
            eprintln!(
                "error: mutate takes one suite run; this file is {} ({}): give the variant its own file",
                many.len(),
                ids.join(", ")
            );
            return EXIT_INVALID;
        }
    };
    let shares = [
        ("--min-score", req.min_score),
        ("--min-judged", Some(req.min_judged)),
    ];
    for (flag, s) in shares {
        if let Some(s) = s.filter(|s| !(0.0..=1.0).contains(s)) {
            eprintln!("error: {flag} {s}: expected a number from 0 to 1");
            return EXIT_INVALID;
        }
    }
    for f in req.json.iter().chain(&req.markdown).chain(&req.html) {
        let parent = f.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) {
            eprintln!("error: {}: its folder does not exist", f.display());
            return EXIT_INVALID;
        }
    }
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    if let Err(e) = crate::run::reap::reap(&engine, false, false).await {
        eprintln!("warning: could not look for stale runs: {e}");
    }
    match std::env::current_exe() {
        Ok(exe) => crate::run::reap::spawn_watcher(&exe, &engine),
        Err(e) => eprintln!("warning: no watcher for crash cleanup ({e})"),
    }
    let options = crate::mutate::MutateOptions {
        only: req.only,
        jobs: req.jobs.unwrap_or_else(crate::run::default_jobs),
        budget: req.budget,
        ports: req.ports,
    };
    let console = Console::new(false);
    let line = |l: &str| eprintln!("{l}");
    let report = match crate::mutate::mutate(suite, &engine, &options, &console, &line).await {
        Ok(r) => r,
        Err(e @ crate::mutate::MutateError::BaselineFailed(_)) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
        Err(e @ crate::mutate::MutateError::Interrupted) => {
            eprintln!("{e}");
            return EXIT_INTERRUPTED;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INFRA;
        }
    };
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    let files = [
        (req.json.as_ref(), json),
        (req.markdown.as_ref(), report.markdown()),
        (req.html.as_ref(), report.html()),
    ];
    for (path, text) in files {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text) {
                eprintln!("error: cannot write {}: {e}", p.display());
                return EXIT_INFRA;
            }
        }
    }
    if report.interrupted {
        return EXIT_INTERRUPTED;
    }
    match req.min_score.map(|min| report.gate(min, req.min_judged)) {
        Some(Err(why)) => {
            eprintln!("{why}");
            EXIT_FAILED
        }
        _ => EXIT_OK,
    }
}

/// What a reap could not remove, said right under the run it belongs to.
fn say_survivors(r: &crate::run::reap::RunResources) {
    if !r.survived.is_empty() {
        eprintln!(
            "  but not all of it: {} could not be removed (`docker network inspect` names what \
             still uses a network)",
            r.survived.describe()
        );
    }
}

/// `stackcheck reap`: removes (or lists) what earlier runs left.
pub async fn reap(dry_run: bool, include_live: bool) -> i32 {
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    match crate::run::reap::reap(&engine, include_live, dry_run).await {
        Ok(found) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            for r in &found {
                println!("{verb} {}", r.describe());
                say_survivors(r);
            }
            if found.is_empty() {
                println!("nothing to reap");
            }
            match found.iter().any(|r| !r.survived.is_empty()) {
                true => EXIT_INFRA,
                false => EXIT_OK,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_INFRA
        }
    }
}

/// Removes the kept stacks of these suites; exit 1 if anything of them survives.
pub async fn down(loaded: Vec<LoadedSuite>) -> i32 {
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let mut code = EXIT_OK;
    for s in &loaded {
        let stacks = match crate::run::kept(&engine, Some(&s.suite.id)).await {
            Ok(k) => k,
            Err(e) => {
                eprintln!(
                    "error: {}: cannot look for kept stacks: {e}",
                    s.path.display()
                );
                return EXIT_INFRA;
            }
        };
        if stacks.is_empty() {
            println!("{}: no kept stack", s.suite.id);
        }
        for k in stacks {
            match crate::run::down(&engine, s, &k).await {
                Ok(left) if left.is_empty() => println!(
                    "{}: removed project {} (run {}): nothing labelled io.stackcheck.run={} remains",
                    s.suite.id, k.project, k.run_id, k.run_id
                ),
                Ok(left) => {
                    println!(
                        "{}: project {} (run {}): left behind: {}",
                        s.suite.id,
                        k.project,
                        k.run_id,
                        left.describe()
                    );
                    code = code.max(EXIT_FAILED);
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", s.suite.id);
                    code = EXIT_INFRA;
                }
            }
        }
    }
    code
}

/// `stackcheck run` and `up`: stale runs reaped, the watcher started, every suite run, the
/// summary and report files written; the exit code.
pub async fn run(
    loaded: Vec<LoadedSuite>,
    (outputs, attest): (Outputs, Option<AttestTo>),
    verbose: bool,
    options: crate::run::RunOptions,
    jobs: usize,
) -> i32 {
    let engine = match crate::commands::connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    match crate::run::reap::reap(&engine, false, false).await {
        Ok(stale) => {
            for r in stale {
                eprintln!("removed a stale {}", r.describe());
                say_survivors(&r);
            }
        }
        Err(e) => eprintln!("warning: could not look for stale runs: {e}"),
    }
    match std::env::current_exe() {
        Ok(exe) => crate::run::reap::spawn_watcher(&exe, &engine),
        Err(e) => eprintln!("warning: no watcher for crash cleanup ({e})"),
    }
    if options.keep == Some(crate::run::Keep::Up) {
        for s in &loaded {
            match crate::run::kept(&engine, Some(&s.suite.id)).await {
                Ok(k) if !k.is_empty() => {
                    eprintln!(
                        "error: a stack of suite `{}` is already up (project {}, run {}): check it with `stackcheck run {} --reuse`, or `stackcheck down {}` first",
                        s.suite.id,
                        k[0].project,
                        k[0].run_id,
                        s.path.display(),
                        s.path.display()
                    );
                    return EXIT_INFRA;
                }
                Ok(_) => {}
                Err(e) => eprintln!("warning: could not look for kept stacks: {e}"),
            }
        }
    }
    if options.reuse {
        let mut bad = false;
        for s in &loaded {
            if let Err(why) = crate::run::reusable(&engine, s).await {
                eprintln!("error: --reuse: {why}");
                bad = true;
            }
        }
        if bad {
            return EXIT_INFRA;
        }
    }
    let started = std::time::Instant::now();
    let console = Console::new(verbose);
    let reports = crate::run::run_all(&loaded, &engine, &console, &options, jobs).await;
    console.summary(&reports);
    if !outputs.write(&reports, started.elapsed().as_millis() as u64) {
        return EXIT_INFRA;
    }
    // A failed or interrupted run still leaves its evidence, saying so.
    if let Some(attest) = &attest {
        match attest.write(&loaded, &reports) {
            Ok(said) => eprintln!("{said}"),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INFRA;
            }
        }
    }
    if reports.iter().any(|r| r.interrupted) {
        EXIT_INTERRUPTED
    } else if reports.iter().any(|r| r.infra_error.is_some()) {
        EXIT_INFRA
    } else if reports.iter().any(|r| r.failed() > 0) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// What `stackcheck verify` is asked.
#[derive(Debug)]
pub struct VerifyRequest {
    /// The attestation `run --attest` wrote.
    pub attestation: std::path::PathBuf,
    /// The public key (SubjectPublicKeyInfo PEM).
    pub key: std::path::PathBuf,
    /// Images the run must have run (names the engine resolves, or `…@sha256:<hex>`).
    pub images: Vec<String>,
    /// The suites whose files on disk must be the ones recorded (none: not checked).
    pub suites: Vec<LoadedSuite>,
    /// Refuse a pass with warnings.
    pub strict: bool,
}

/// `stackcheck verify`: 0 verified, 1 refused with each reason, 2 malformed input, 3 no engine to
/// resolve an image name.
pub async fn verify(req: VerifyRequest) -> i32 {
    let invalid = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        EXIT_INVALID
    };
    let shown = req.key.display().to_string();
    let key = match std::fs::read_to_string(&req.key) {
        Ok(text) => PublicKey::from_pem(&text, &shown),
        Err(e) => return invalid(&format!("{shown}: {e}")),
    };
    let mut verification = match key {
        Ok(k) => Verification::new(k).strict(req.strict),
        Err(e) => return invalid(&e),
    };
    let json = match std::fs::read(&req.attestation) {
        Ok(j) => j,
        Err(e) => return invalid(&format!("{}: {e}", req.attestation.display())),
    };
    let mut refused = Vec::new();
    let mut engine = None;
    for image in &req.images {
        let digest = match crate::attest::given_digest(image) {
            Some(hex) => Ok(Some(hex.to_string())),
            None => {
                // The engine is asked only for a name, once.
                if engine.is_none() {
                    match connect().await {
                        Ok(e) => engine = Some(e),
                        Err(code) => return code,
                    }
                }
                match &engine {
                    Some(e) => crate::attest::image_digest(e, image).await,
                    None => Ok(None),
                }
            }
        };
        match digest {
            Ok(Some(d)) => verification = verification.image(image, &d),
            Ok(None) => refused.push(format!(
                "image `{image}` is not on the engine, so nothing binds it to the run"
            )),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INFRA;
            }
        }
    }
    if !req.suites.is_empty() {
        match crate::attest::files(&req.suites) {
            Ok(f) => verification = verification.files(f),
            Err(e) => return invalid(&e),
        }
    }
    match verification.verify(&json) {
        Ok(s) if refused.is_empty() => {
            println!(
                "verified: {} — result {}, {} tests passed, {} warned, {} images attested",
                req.attestation.display(),
                s.predicate.result,
                s.predicate.passed_tests.len(),
                s.predicate.warned_tests.len(),
                s.subject.len()
            );
            EXIT_OK
        }
        Ok(_) => say_refused(&req, &refused),
        Err(VerifyError::Refused(why)) => {
            refused.extend(why.iter().map(|r| r.to_string()));
            say_refused(&req, &refused)
        }
        Err(e @ VerifyError::Malformed(_)) => {
            invalid(&format!("{}: {e}", req.attestation.display()))
        }
    }
}

fn say_refused(req: &VerifyRequest, refused: &[String]) -> i32 {
    eprintln!("refused: {}", req.attestation.display());
    for r in refused {
        eprintln!("  - {r}");
    }
    EXIT_FAILED
}
