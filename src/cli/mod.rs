//! The `rcv` command line. Exit codes: 0 success, 1 findings (errors,
//! rejected lines, a failed gate), 2 usage or I/O error.

pub mod check;
pub mod compile;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "rcv", version, about = "Declarative recovery policies for AI agents", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check policy files: syntax, names, types, recovery lints
    Check(check::CheckArgs),
    /// Compile a policy: print its decision table, hash and analysis findings
    Compile(compile::CompileArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Compile(args) => compile::run(args),
    }
}
