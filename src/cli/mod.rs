//! The `rcv` command line. Exit codes: 0 success, 1 findings (errors,
//! rejected lines, a failed gate), 2 usage or I/O error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod fmt;

#[derive(Parser, Debug)]
#[command(name = "rcv", version, about = "Declarative recovery policies for AI agents", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Rewrite policy files in the canonical layout
    Fmt(fmt::FmtArgs),
    /// Placeholder until the subcommands land.
    #[command(hide = true)]
    Version,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Fmt(args) => fmt::run(&args),
        Command::Version => {
            println!("rcv {}", crate::VERSION);
            ExitCode::SUCCESS
        }
    }
}
