//! stackcheck: bring a container stack up, prove what its documentation promises, tear it down.
//!
//! The modules follow the data flow, leaves first. Each uses only modules before it in this
//! order (`tests/house.rs` counts the `crate::` paths and fails on an arrow against it):
//!
//! Module order: `error` → `text` → `mask` → `suite` → `engine` → `plan` → `report` → `attest` → `checks` → `preflight` → `run` → `mutate` → `stack` → `init` → `nextest` → `commands`
//!
//! - leaves: [`error`] (every error type and the exit codes), [`text`] (clipping captured output
//!   for one-line messages), [`mask`] (the masking rule: secret values become `****`);
//! - [`suite`]: what is promised, read strictly with positions;
//! - [`engine`]: the Docker engine, Compose and the docker CLI, each call bounded;
//! - [`plan`]: the one suite loader, which tests a suite is, the run's project, labels and
//!   secrets;
//! - [`report`]: the result model and its writers (console, JUnit, JSON, Markdown summary);
//! - `checks`: proving each promise against the compose model and the live stack;
//! - [`preflight`]: what can be known before anything starts (references, static policy);
//! - [`run`]: one suite through every stage, always torn down; claims, kept stacks, reaping;
//! - entry points: [`mutate`] (how strong a suite is), [`Stack`] (the library API), [`init`] (a
//!   first suite from a compose project, or from watching its stack run), [`nextest`] (suites as
//!   `cargo nextest run` tests), [`commands`] (the subcommands as the CLI prints them).

#![warn(missing_docs)]

pub mod error;

pub mod text;

pub mod mask;

pub mod suite;

pub mod engine;

pub mod plan;

pub mod report;

pub mod attest;

pub(crate) mod checks;

pub mod preflight;

pub mod run;

pub mod mutate;

mod stack;

pub mod init;

pub mod nextest;

pub mod commands;

pub use stack::{Stack, StackBuilder, StackError};
