//! Exit codes shared by the CLI and the conformance target.

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
