//! The `rcv` command line. Exit codes: 0 success, 1 findings (errors,
//! rejected lines, a failed gate), 2 usage or I/O error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check;
pub mod common;
pub mod compile;
pub mod decide;
pub mod diff;
pub mod explain;
pub mod fmt;
pub mod gate;
pub mod r#gen;
pub mod lsp;
pub mod run;
pub mod sweep;
pub mod test;

#[derive(Parser, Debug)]
#[command(name = "rcv", version, about = "Declarative recovery policies for AI agents", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check policy files: syntax, names, types, recovery lints, table analysis
    Check(check::CheckArgs),
    /// Rewrite policy files in the canonical layout
    Fmt(fmt::FmtArgs),
    /// Compile a policy: its decision table, hash and proven decision bound
    Compile(compile::CompileArgs),
    /// Replay traces through a policy: trace.ndjson, report.json, summary.md
    Run(run::RunArgs),
    /// Decide one failure for a live agent loop (JSON on stdin and stdout)
    Decide(decide::DecideArgs),
    /// Semantic diff of two policies: rules, regions of changed decisions, replay impact
    Diff(diff::DiffArgs),
    /// Release gate: replay baseline and candidate, recommend promote or reject
    Gate(gate::GateArgs),
    /// Run policy unit tests (*.rcvtest.yaml) and report rule coverage
    Test(test::TestArgs),
    /// Threshold sensitivity: replay once per value of a constant or budget setting
    Sweep(sweep::SweepArgs),
    /// Explain one decision: rules tested and why they failed, overrides, delay, budget
    Explain(explain::ExplainArgs),
    /// Serve the Language Server Protocol over stdio (diagnostics, hover, completion, ...)
    Lsp(lsp::LspArgs),
    /// Generate benchmark inputs: a trace or a wide policy (deterministic)
    #[command(hide = true)]
    Gen(r#gen::GenArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Compile(args) => compile::run(args),
        Command::Run(args) => run::run(args),
        Command::Decide(args) => decide::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Gate(args) => gate::run(args),
        Command::Test(args) => test::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Lsp(args) => lsp::run(args),
        Command::Gen(args) => r#gen::run(&args),
    }
}
