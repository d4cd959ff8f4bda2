//! stackcheck: bring a container stack up, prove what its documentation promises, tear it down.
//!
//! The data flows through one module per stage:
//! [`suite`] (what is promised) → [`plan`] (which tests, which project, which labels) →
//! [`engine`] (Docker and Compose) → `checks` (proving each promise) → [`report`] (the result
//! model; console, JUnit, JSON, summary).
//! [`run`] drives one suite through all stages and always tears down; [`init`] writes a first
//! suite from an existing compose project; [`validate`] is what can be known without an engine;
//! [`commands`] are the subcommands besides `run`, as the CLI prints them; [`nextest`] makes a
//! crate's suites its `cargo nextest run` tests.

#![warn(missing_docs)]

pub(crate) mod checks;
pub mod commands;
pub mod engine;
pub mod error;
pub mod init;
pub mod mutate;
pub mod nextest;
pub mod plan;
pub mod reap;
pub mod report;
pub mod run;
mod stack;
pub mod suite;
pub mod validate;

pub use stack::{Stack, StackBuilder, StackError};
