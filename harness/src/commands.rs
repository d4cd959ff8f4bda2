//! The subcommands besides `run`, each as the CLI prints it and with its exit code: `validate`,
//! `init`, `reap` and `down`. `main.rs` parses the command line and dispatches here.

use std::time::Duration;

use crate::engine::Engine;
use crate::error::{EXIT_FAILED, EXIT_INFRA, EXIT_INVALID, EXIT_OK};
use crate::report::Status;
use crate::suite::LoadedSuite;

/// The engine, or exit 3 with how to start one (said by the error).
pub async fn connect() -> Result<Engine, i32> {
    Engine::connect(Duration::from_secs(5)).await.map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INFRA
    })
}

/// Prints each suite's test count and its static policy results (no engine needed).
pub async fn validate(loaded: &[LoadedSuite]) -> i32 {
    let mut code = EXIT_OK;
    // All suites' compose calls at once; results printed in order.
    let policies =
        futures_util::future::join_all(loaded.iter().map(crate::validate::static_policy)).await;
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

/// `stackcheck init`: writes a starting suite (never over an existing file without `force`).
pub async fn init(req: crate::init::InitRequest, force: bool) -> i32 {
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
    let text = match crate::init::scaffold(&req).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: the compose files do not resolve: {e}");
            return EXIT_INVALID;
        }
    };
    if let Err(e) = std::fs::write(&req.output, &text) {
        eprintln!("error: cannot write {}: {e}", req.output.display());
        return EXIT_INFRA;
    }
    // What it wrote must load: a suite `init` writes and `validate` rejects is a bug of ours.
    if let Err(e) = crate::validate::load_file(&req.output) {
        eprintln!("error: the written suite does not validate (please report): {e}");
        return EXIT_INFRA;
    }
    eprintln!(
        "wrote {}: review it, add checks, then `stackcheck run {}`",
        req.output.display(),
        req.output.display()
    );
    EXIT_OK
}

/// `stackcheck reap`: removes (or lists) what earlier runs left.
pub async fn reap(dry_run: bool, include_live: bool) -> i32 {
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    match crate::reap::reap(&engine, include_live, dry_run).await {
        Ok(found) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            for r in &found {
                println!("{verb} {}", r.describe());
            }
            if found.is_empty() {
                println!("nothing to reap");
            }
            EXIT_OK
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
