//! rcv: declarative recovery policies for AI agents.
//!
//! The pipeline runs one way (see `docs/architecture.md`):
//! `syntax` (parse) -> `check` (names, types, lints) -> `compile` (decision
//! table, analysis, hash) -> `runtime` (ingress, interpreter, replay) ->
//! `report` (trace, report, summary) -> `cli`.

pub mod check;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod digest;
pub mod ide;
pub mod names;
pub mod report;
pub mod runtime;
pub mod schema;
pub mod span;
pub mod syntax;

/// The version stamped into reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
