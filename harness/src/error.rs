//! Errors in one place: every error that crosses a module boundary, and the exit codes the CLI
//! and the conformance target map them to. Each module re-exports the errors it returns.

use std::fmt;
use std::path::{Path, PathBuf};

/// Every test passed.
pub const EXIT_OK: i32 = 0;
/// At least one check failed.
pub const EXIT_FAILED: i32 = 1;
/// A suite (or the command line) is invalid; nothing was started.
pub const EXIT_INVALID: i32 = 2;
/// No engine, or the infrastructure failed (missing base image, compose missing).
pub const EXIT_INFRA: i32 = 3;
/// Interrupted by Ctrl-C (after tearing down).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Why a suite cannot be used. Displayed as `file:line:column: message`.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The file cannot be read.
    #[error("{path}: cannot read suite: {source}")]
    Io {
        /// The suite file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file is read but is not a valid suite.
    #[error("{}", fmt_at(path, *line, *column, message))]
    Invalid {
        /// The suite file.
        path: String,
        /// 1-based line; 0 when the problem has no position (the whole file).
        line: u64,
        /// 1-based column.
        column: u64,
        /// What was expected, and what was found.
        message: String,
    },
}

fn fmt_at(path: &str, line: u64, column: u64, message: &str) -> String {
    if line == 0 {
        format!("{path}: {message}")
    } else {
        format!("{path}:{line}:{column}: {message}")
    }
}

impl SuiteError {
    /// Bad input in `path`, at `(line, column)` when known.
    pub fn invalid(path: &Path, at: Option<(u64, u64)>, message: impl fmt::Display) -> SuiteError {
        let (line, column) = at.unwrap_or((0, 0));
        SuiteError::Invalid {
            path: path.display().to_string(),
            line,
            column,
            message: message.to_string(),
        }
    }

    /// The same error, said of variant `name` (`stack.variants.<name>`).
    pub fn in_variant(self, name: impl fmt::Display) -> SuiteError {
        match self {
            SuiteError::Invalid {
                path,
                line,
                column,
                message,
            } => SuiteError::Invalid {
                path,
                line,
                column,
                message: format!("variant `{name}`: {message}"),
            },
            other => other,
        }
    }
}

/// A value inside a suite (mount, signal, text pattern) that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not `host:container[:ro|:rw]` with an absolute container path.
    #[error("invalid mount `{0}`: expected `host:container[:ro|:rw]`")]
    Mount(String),
    /// A number that names no signal.
    #[error("unknown signal {0}")]
    SignalNumber(i32),
    /// A name that names no signal.
    #[error("unknown signal `{0}` (e.g. KILL, TERM, INT)")]
    SignalName(String),
    /// A `/regex/` that does not compile.
    #[error("invalid regex {pattern}: {cause}")]
    Regex {
        /// As written, slashes included.
        pattern: String,
        /// What the regex compiler said.
        cause: String,
    },
}

/// Why no endpoint could be resolved; said before anything starts (exit 3).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// The named context has no entry in the store.
    #[error("docker context `{name}` ({from}) is not in the context store: no {path}; `docker context ls` lists those there are")]
    NoContext {
        /// The context's name.
        name: String,
        /// Who named it.
        from: String,
        /// Where its metadata should be.
        path: PathBuf,
    },
    /// The config or a context's metadata cannot be read.
    #[error("docker context `{name}`: {path}: {cause}")]
    BadContext {
        /// The context's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        cause: String,
    },
    /// TLS is asked for and a file of its material is missing.
    #[error("TLS to {host} ({from}) needs {path}, which is missing (ca.pem, cert.pem and key.pem are read from {dir})", dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default())]
    MissingTlsFile {
        /// The endpoint.
        host: String,
        /// Who chose it.
        from: String,
        /// The missing file.
        path: PathBuf,
    },
}

/// A call to the Docker API that failed or did not answer in time.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Nothing answers where the engine should be.
    #[error("no Docker engine answers at {endpoint} ({cause}); is one running there, and is it the one DOCKER_HOST or the docker context should name? (`bash ci/engine.sh` starts a local one)")]
    Unavailable {
        /// Where the engine was looked for.
        endpoint: String,
        /// What the connection said.
        cause: String,
    },
    /// The endpoint the docker CLI would use cannot be resolved (context, TLS material).
    #[error("cannot tell which Docker engine to use: {0}")]
    Endpoint(#[from] EndpointError),
    /// The engine answered with an error.
    #[error("engine call `{what}` failed: {cause}")]
    Call {
        /// The call, in words (`inspect container …`).
        what: String,
        /// The engine's answer.
        cause: String,
    },
    /// The engine did not answer within the call's bound.
    #[error("engine call `{what}` did not answer within {secs} s")]
    Timeout {
        /// The call, in words.
        what: String,
        /// The bound.
        secs: u64,
    },
}

/// A `docker compose` command that could not start, failed, or ran out of time.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ComposeError {
    /// The compose plugin could not be started.
    #[error("`docker compose` could not be started ({0}); install it with `bash ci/engine.sh`")]
    Missing(String),
    /// Compose exited with an error.
    #[error("`docker compose {what}` failed (exit {code}):\n{tail}")]
    Failed {
        /// The subcommand (`config`, `up`, …).
        what: String,
        /// Its exit code.
        code: i32,
        /// The last lines it printed.
        tail: String,
    },
    /// Compose did not finish within its bound and was stopped.
    #[error("`docker compose {what}` did not finish within {secs} s:\n{tail}")]
    Timeout {
        /// The subcommand.
        what: String,
        /// The bound.
        secs: u64,
        /// The last lines it printed.
        tail: String,
    },
}

impl ComposeError {
    /// The last lines compose printed, for failure reports.
    pub fn tail(&self) -> &str {
        match self {
            ComposeError::Missing(m) => m,
            ComposeError::Failed { tail, .. } | ComposeError::Timeout { tail, .. } => tail,
        }
    }
}

/// A `docker build` that could not start, failed, or ran out of time.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The docker CLI could not be started.
    #[error("`docker` could not be started ({0})")]
    Missing(String),
    /// The build failed.
    #[error("`docker build` of {tag} failed (exit {code})")]
    Failed {
        /// The image being built.
        tag: String,
        /// The CLI's exit code.
        code: i32,
        /// The last lines of the build log.
        tail: String,
    },
    /// The build did not finish within the suite's budget and was stopped.
    #[error("`docker build` of {tag} did not finish within {secs} s")]
    Timeout {
        /// The image being built.
        tag: String,
        /// The bound.
        secs: u64,
        /// The last lines of the build log.
        tail: String,
    },
}

impl BuildError {
    /// The last lines of the build log.
    pub fn tail(&self) -> &str {
        match self {
            BuildError::Missing(m) => m,
            BuildError::Failed { tail, .. } | BuildError::Timeout { tail, .. } => tail,
        }
    }
}

/// Why teardown could not prove what is left.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// The engine stopped answering and did not come back in time.
    #[error("cannot tear down: {0}")]
    EngineGone(EngineError),
    /// The run's resources could not be listed after removing them.
    #[error("{0}")]
    Listing(EngineError),
}
