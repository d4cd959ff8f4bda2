//! The `stackcheck` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use stackcheck::attest::AttestTo;
use stackcheck::commands::VerifyRequest;
use stackcheck::error::{EXIT_INFRA, EXIT_INVALID, EXIT_OK};
use stackcheck::report::Outputs;
use stackcheck::run::{Keep, RunOptions};
use stackcheck::suite::{self, HealthMode, LoadedSuite, PortsMode, PullPolicy};

#[derive(Parser)]
#[command(
    name = "stackcheck",
    version,
    about = "Bring a container stack up, prove what its documentation promises, tear it down, write JUnit."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: `Run` carries the run's options whole, as the library takes them.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run suites: build, bring the stack up, check every promise, tear down.
    ///
    /// Exit codes: 0 all passed, 1 a check failed, 2 invalid input (nothing started),
    /// 3 engine unavailable or infrastructure error, 130 interrupted (after teardown).
    Run(RunArgs),
    /// Verify a run's evidence (`run --attest`) before a deploy: accepted only when its
    /// signature is the key's, it is an in-toto test-result statement, the gate passed, every
    /// `--image` was run, and with `--suite` the suite's files are the ones it records.
    ///
    /// Exit codes: 0 verified, 1 refused (each reason said), 2 a malformed attestation or key,
    /// 3 the engine is needed (an `--image` by name) and does not answer.
    Verify(VerifyArgs),
    /// Bring suites' stacks up (build, state promises) and leave them running for `run --reuse`.
    Up {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        /// Print every build and bring-up line.
        #[arg(short, long)]
        verbose: bool,
        /// Host ports and fixed names: as documented, or ephemeral. Overrides `stack.ports`.
        #[arg(long, value_enum)]
        ports: Option<PortsMode>,
        /// When to pull the images the stacks run. Overrides `stack.pull`.
        #[arg(long, value_enum, value_name = "MODE")]
        pull: Option<PullPolicy>,
        /// `documented` or `fast` healthchecks while it is up. Overrides `stack.health`.
        #[arg(long, value_enum, value_name = "MODE")]
        health: Option<HealthMode>,
    },
    /// Remove the stacks `stackcheck up` or `run --keep` left for these suites, and prove nothing
    /// of them remains (exit 1 if something does).
    Down {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
    },
    /// Write a starting suite from an existing compose project.
    ///
    /// Services with their state, image, ports, networks and dependencies; networks and subnets;
    /// volumes; built images with their Dockerfile metadata; every policy rule at `warn`;
    /// commented example checks. Review it against your documentation, then `stackcheck run` it.
    Init(InitArgs),
    /// Parse suites strictly and report every problem as file:line:column (exit 2 if any).
    Validate {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
    },
    /// List the test names of suites, as `run`, JUnit and `cargo nextest list` show them.
    List {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        /// Only the names `run --filter GLOB` would run. Repeatable.
        #[arg(long, value_name = "GLOB")]
        filter: Vec<String>,
    },
    /// Break the stack on purpose, one way at a time, and report which breakages the suite misses.
    ///
    /// Runs the suite on the stack as written first (it must pass), then once per mutant: a
    /// compose file added after yours (never an edit of them). Killed: a test failed; survived:
    /// every test passed. Exit codes: 0 done, 1 the suite fails as written or the score is under
    /// --min-score, 2 invalid input, 3 engine or infrastructure error, 130 interrupted.
    Mutate {
        /// The suite file.
        suite: PathBuf,
        /// Only these mutants: a kind (`env-removed`), or a mutant's id or its start
        /// (`env-removed:api`, `env-removed:api:GREETING`). Repeatable.
        #[arg(long, value_name = "KIND[:SERVICE[:PART]]")]
        only: Vec<stackcheck::mutate::MutantFilter>,
        /// Mutant runs at the same time (default: one per core, at most 4).
        #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
        jobs: Option<u16>,
        /// Host ports and fixed names of every run: ephemeral (mutants run side by side) or
        /// documented (runs take turns on them). Default: ephemeral, unless a `from_host` command
        /// of the suite names a documented host port.
        #[arg(long, value_enum)]
        ports: Option<PortsMode>,
        /// Start no mutant run after this long (e.g. `20m`); running ones finish.
        #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = duration)]
        budget: std::time::Duration,
        /// Write the verdicts as JSON (schema `stackcheck-mutate/1`: `stackcheck schema --mutate`).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write a Markdown summary here (e.g. "$GITHUB_STEP_SUMMARY").
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Write the mutant table as one self-contained HTML page here.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Exit 1 when killed / (killed + survived) is below this (0 to 1).
        #[arg(long, value_name = "SCORE")]
        min_score: Option<f64>,
        /// With --min-score: exit 1 when fewer than this share of the mutants were judged
        /// (killed or survived; invalid and not-run ones measure nothing).
        #[arg(long, value_name = "SHARE", default_value_t = 0.8)]
        min_judged: f64,
    },
    /// Print the JSON Schema of the suite format (or of `run --json` / `mutate --json` output).
    Schema {
        /// The schema of the JSON report instead.
        #[arg(long, conflicts_with = "mutate")]
        report: bool,
        /// The schema of `mutate --json` instead.
        #[arg(long)]
        mutate: bool,
    },
    /// Remove what runs left behind: resources labelled `io.stackcheck.run` whose owner process is
    /// gone from this machine (every `run` does this first, too).
    Reap {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also runs whose owner is still running (a harness on another machine, or a hung one).
        #[arg(long)]
        include_live: bool,
    },
    /// (internal) Watch the harness with this pid; once it is gone, remove what it owned.
    #[command(name = "__watch", hide = true)]
    Watch { pid: i32 },
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<LoadedSuite>, ExitCode> {
    let files = suite::discover(paths).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INVALID as u8)
    })?;
    if files.is_empty() {
        eprintln!("error: no suite files found in {paths:?}");
        return Err(ExitCode::from(EXIT_INVALID as u8));
    }
    let mut loaded = Vec::new();
    let mut bad = 0;
    for f in files {
        // A suite with `stack.variants` is one run per variant.
        match stackcheck::plan::load_runs(&f) {
            Ok(runs) => loaded.extend(runs),
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        return Err(ExitCode::from(EXIT_INVALID as u8));
    }
    Ok(loaded)
}

/// [`load_all`], then the references only the compose model can judge (checks naming services
/// nobody defines); exit 2 before any engine is contacted.
fn load_and_resolve(
    paths: &[PathBuf],
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<LoadedSuite>, ExitCode> {
    let loaded = load_all(paths)?;
    let mut bad = 0;
    for s in &loaded {
        if let Err(e) = runtime.block_on(stackcheck::preflight::check_references(s)) {
            eprintln!("error: {e}");
            bad += 1;
        }
    }
    if bad > 0 {
        return Err(ExitCode::from(EXIT_INVALID as u8));
    }
    Ok(loaded)
}

/// The suites with at least one test `filter` selects; a filter selecting nothing is bad input.
fn filtered(loaded: Vec<LoadedSuite>, filter: &[String]) -> Result<Vec<LoadedSuite>, ExitCode> {
    if filter.is_empty() {
        return Ok(loaded);
    }
    let kept: Vec<LoadedSuite> = loaded
        .into_iter()
        .filter(|s| !stackcheck::plan::select(&s.suite, filter).is_empty())
        .collect();
    if kept.is_empty() {
        eprintln!(
            "error: --filter {}: no test matches (names as `stackcheck list` prints them; `*` spans `::`)",
            filter.join(" --filter ")
        );
        return Err(ExitCode::from(EXIT_INVALID as u8));
    }
    Ok(kept)
}

/// `stackcheck list | head` should stop quietly, as other CLI tools do, not panic on a closed
/// stdout. Only for commands that talk to no engine: the engine's socket keeps Rust's default
/// (SIGPIPE ignored, EPIPE as an error).
fn quiet_on_closed_stdout() {
    // SAFETY: restoring the default disposition of one signal, before any thread is started.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

/// `stackcheck init`'s arguments.
/// `stackcheck run`'s arguments.
#[derive(clap::Args)]
struct RunArgs {
    /// Suite files, or folders of them (a folder's compose files, `compose.*` and
    /// `docker-compose.*`, are not suites).
    #[arg(required = true)]
    suites: Vec<PathBuf>,
    /// Write JUnit XML here (with the run's versions and images as properties).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the JSON report here (schema `stackcheck-report/1`: `stackcheck schema --report`).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a short Markdown summary here (e.g. "$GITHUB_STEP_SUMMARY").
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Write the HTML report here: one self-contained page (failures first, each suite's
    /// timeline, every test, filterable).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the run's evidence here: a DSSE envelope of an in-toto test-result statement
    /// (the images run, the suite, compose and env files by digest, every test's ending).
    #[arg(long, value_name = "FILE")]
    attest: Option<PathBuf>,
    /// Sign the evidence with this Ed25519 private key (PKCS#8 PEM, as `openssl genpkey
    /// -algorithm ed25519` writes it); else the PEM in `STACKCHECK_SIGN_KEY`, else unsigned.
    #[arg(long, value_name = "PEM", requires = "attest")]
    sign_key: Option<PathBuf>,
    /// Print every build and bring-up line (they are otherwise shown transiently).
    #[arg(short, long)]
    verbose: bool,
    /// Suites to run at the same time (default: one per core, at most 4). Suites that claim
    /// the same fixed host port, container name, subnet or volume name never overlap.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    #[command(flatten)]
    options: RunOptions,
}

/// `stackcheck verify`'s arguments.
#[derive(clap::Args)]
struct VerifyArgs {
    /// The attestation `run --attest` wrote.
    attestation: PathBuf,
    /// The Ed25519 public key (SubjectPublicKeyInfo PEM, as `openssl pkey -pubout` writes it).
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// An image the run must have run: a name the engine resolves to its image ID, or
    /// `name@sha256:<hex>` (an image ID or registry digest). Repeatable.
    #[arg(long = "image", value_name = "REF")]
    images: Vec<String>,
    /// Suite files, or folders of them: each, its compose files and env files on disk must
    /// be the ones recorded. Repeatable.
    #[arg(long, value_name = "FILE|DIR")]
    suite: Vec<PathBuf>,
    /// Refuse a run that passed with warnings (flaky, quarantined, a `warn` policy finding).
    #[arg(long)]
    strict: bool,
}

#[derive(clap::Args)]
struct InitArgs {
    /// The compose files, in `-f` order.
    #[arg(required = true)]
    compose: Vec<PathBuf>,
    /// Where to write the suite (paths in it are relative to its folder).
    #[arg(short, long, value_name = "FILE", default_value = "stackcheck.yaml")]
    output: PathBuf,
    /// The env file compose reads (also written into the suite as `stack.env_file`).
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// The suite id (default: the first compose file's folder name).
    #[arg(long, value_name = "ID")]
    name: Option<String>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
    /// Bring the stack up, watch it run, and write what held twice (states, listeners,
    /// HTTP answers, servers' readiness); the suite is proven on that stack before it is
    /// taken down.
    #[arg(long)]
    observe: bool,
    /// With --observe: only this service and what it depends on. Repeatable.
    #[arg(long = "service", value_name = "S", requires = "observe")]
    services: Vec<String>,
    /// With --observe: run `stackcheck mutate` on the written suite and print its score.
    #[arg(long, requires = "observe")]
    mutate: bool,
    /// With --observe: watch the stack `stackcheck up` left up from these compose files instead
    /// of bringing one up (and leave it up).
    #[arg(long, requires = "observe")]
    reuse: bool,
}

/// `stackcheck init`, from its arguments.
fn init(a: InitArgs) -> ExitCode {
    let req = stackcheck::init::InitRequest {
        compose: a.compose,
        env_file: a.env_file,
        output: a.output,
        name: a.name,
    };
    let observe = a.observe.then_some(stackcheck::commands::Observe {
        services: a.services,
        mutate: a.mutate,
        reuse: a.reuse,
    });
    with_runtime(stackcheck::commands::init(req, a.force, observe))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = matches!(cli.command, Command::Run(_));
    if let Err(code) = export_endpoint(run) {
        return code;
    }
    if !run {
        quiet_on_closed_stdout();
    }
    match cli.command {
        Command::Schema { report, mutate } => schema(report, mutate),
        Command::Init(args) => init(args),
        Command::Validate { suites } => validate(&suites),
        Command::List { suites, filter } => list(&suites, &filter),
        Command::Reap {
            dry_run,
            include_live,
        } => with_runtime(stackcheck::commands::reap(dry_run, include_live)),
        Command::Watch { pid } => with_runtime(async move {
            match stackcheck::run::reap::watch(pid).await {
                Ok(_) => EXIT_OK,
                Err(_) => EXIT_INFRA,
            }
        }),
        Command::Mutate {
            suite,
            only,
            jobs,
            ports,
            budget,
            json,
            markdown,
            html,
            min_score,
            min_judged,
        } => {
            let request = stackcheck::commands::MutateRequest {
                only,
                jobs: jobs.map(usize::from),
                ports,
                budget,
                json,
                markdown,
                html,
                min_score,
                min_judged,
            };
            mutate(&suite, request)
        }
        Command::Down { suites } => match load_all(&suites) {
            Ok(loaded) => with_runtime(stackcheck::commands::down(loaded)),
            Err(code) => code,
        },
        Command::Up {
            suites,
            verbose,
            ports,
            pull,
            health,
        } => {
            let options = RunOptions {
                ports,
                pull,
                health,
                keep: Some(Keep::Up),
                ..Default::default()
            };
            start_run(&suites, (Outputs::default(), None), verbose, options, None)
        }
        Command::Run(args) => run_suites(args),
        Command::Verify(args) => verify(args),
    }
}

/// `run`: the report files and the evidence checked before anything starts, then the run.
fn run_suites(a: RunArgs) -> ExitCode {
    let outputs = Outputs {
        junit: a.junit,
        json: a.json,
        summary: a.summary,
        html: a.html,
        logs_dir: a.options.logs_dir.clone(),
    };
    let attest = match AttestTo::from_flags(a.attest, a.sign_key.as_deref()) {
        Ok(attest) => attest,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID as u8);
        }
    };
    start_run(&a.suites, (outputs, attest), a.verbose, a.options, a.jobs)
}

/// `verify`: the suites named by `--suite` loaded (exit 2 if one is invalid), then the evidence.
fn verify(a: VerifyArgs) -> ExitCode {
    let suites = match a.suite.is_empty() {
        true => Vec::new(),
        false => match load_all(&a.suite) {
            Ok(l) => l,
            Err(code) => return code,
        },
    };
    with_runtime(stackcheck::commands::verify(VerifyRequest {
        attestation: a.attestation,
        key: a.key,
        images: a.images,
        suites,
        strict: a.strict,
    }))
}

/// The engine, resolved once as the docker CLI resolves it. Children get it from the connected
/// engine through their own environment; testcontainers reads only the process environment, so
/// it is put there, before any thread starts.
fn export_endpoint(run: bool) -> Result<(), ExitCode> {
    match stackcheck::engine::Endpoint::resolve() {
        Ok(endpoint) => endpoint.export_for_testcontainers(),
        // A run cannot start without knowing its engine: exit 3 before reading any suite (compose
        // would fail on the same context and be blamed for it). Other commands say it if they
        // need the engine.
        Err(e) if run => {
            eprintln!("error: cannot tell which Docker engine to use: {e}");
            return Err(ExitCode::from(EXIT_INFRA as u8));
        }
        Err(_) => {}
    }
    Ok(())
}

/// `schema`: the suite's JSON Schema, or the run report's, or `mutate --json`'s.
fn schema(report: bool, mutate: bool) -> ExitCode {
    if mutate {
        println!("{}", stackcheck::mutate::mutation_schema_json());
    } else if report {
        println!("{}", stackcheck::report::report_schema_json());
    } else {
        println!("{}", suite::schema_json());
    }
    ExitCode::from(EXIT_OK as u8)
}

/// `validate`: each suite loaded, its references resolved, its static policy judged.
fn validate(suites: &[PathBuf]) -> ExitCode {
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        return ExitCode::from(EXIT_INFRA as u8);
    };
    match load_and_resolve(suites, &runtime) {
        Ok(loaded) => {
            ExitCode::from(runtime.block_on(stackcheck::commands::validate(&loaded)) as u8)
        }
        Err(code) => code,
    }
}

/// `list`: the test names `run` would run, one a line.
fn list(suites: &[PathBuf], filter: &[String]) -> ExitCode {
    match load_all(suites).and_then(|l| filtered(l, filter)) {
        Ok(loaded) => {
            for s in &loaded {
                for t in stackcheck::plan::select(&s.suite, filter) {
                    println!("{}", t.name);
                }
            }
            ExitCode::from(EXIT_OK as u8)
        }
        Err(code) => code,
    }
}

/// `mutate`: the suite loaded and resolved (exit 2 before anything starts), then the mutants.
fn mutate(suite: &std::path::Path, request: stackcheck::commands::MutateRequest) -> ExitCode {
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        return ExitCode::from(EXIT_INFRA as u8);
    };
    let loaded = match load_and_resolve(&[suite.to_path_buf()], &runtime) {
        Ok(l) => l,
        Err(code) => return code,
    };
    ExitCode::from(runtime.block_on(stackcheck::commands::mutate(loaded, request)) as u8)
}

/// `run` and `up`: every suite loaded and resolved, report paths checked (exit 2 before anything
/// starts), then the run.
fn start_run(
    suites: &[PathBuf],
    (outputs, attest): (Outputs, Option<AttestTo>),
    verbose: bool,
    options: stackcheck::run::RunOptions,
    jobs: Option<u16>,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INFRA as u8);
        }
    };
    let loaded = match load_and_resolve(suites, &runtime).and_then(|l| filtered(l, &options.filter))
    {
        Ok(l) => l,
        Err(code) => return code,
    };
    let keeping = options.keep.is_some() || options.reuse;
    if let Some(s) = loaded
        .iter()
        .find(|s| keeping && s.suite.stack.compose.is_empty())
    {
        eprintln!(
            "error: {}: `up`, `--keep` and `--reuse` work on compose stacks; this suite runs `stack.containers`",
            s.path.display()
        );
        return ExitCode::from(EXIT_INVALID as u8);
    }
    let jobs = jobs
        .map(usize::from)
        .unwrap_or_else(stackcheck::run::default_jobs);
    if let Err(e) = outputs.check() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_INVALID as u8);
    }
    ExitCode::from(runtime.block_on(stackcheck::commands::run(
        loaded,
        (outputs, attest),
        verbose,
        options,
        jobs,
    )) as u8)
}

/// A duration as suites write them (`90s`, `20m`).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    stackcheck::suite::Dur::parse(text).map(|d| d.0)
}

fn with_runtime(work: impl std::future::Future<Output = i32>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => ExitCode::from(rt.block_on(work) as u8),
        Err(_) => ExitCode::from(EXIT_INFRA as u8),
    }
}
