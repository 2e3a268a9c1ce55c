//! The `rcv` command line. Exit codes: 0 success, 1 findings (errors,
//! rejected lines, a failed gate), 2 usage or I/O error.

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
    /// Compile a policy: print its decision table, hash and analysis findings
    Compile(compile::CompileArgs),
    /// Placeholder until the subcommands land.
    #[command(hide = true)]
    Version,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compile(args) => compile::run(args),
        Command::Version => {
            println!("rcv {}", crate::VERSION);
            ExitCode::SUCCESS
        }
    }
}
