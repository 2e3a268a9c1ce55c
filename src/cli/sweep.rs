//! `rcv sweep POLICY --set NAME=START..END/STEP TRACES...`: one replay per
//! value of a constant or a budget setting; prints the metrics per value
//! and the flip points. Exit 0, or 2 on usage and input errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::report::sweep::{self, Range};

use super::common::{Failure, ReplayOptions};
use super::diff::{load, read_inputs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A markdown table and the flip points.
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The policy file (or `REV:path`).
    pub policy: String,
    /// `NAME=START..END/STEP`: a `const` name or `budget.KEY` (`budget.attempts`,
    /// `budget.cost` in dollars, `budget.latency` in ms...).
    #[arg(long = "set", value_name = "NAME=START..END/STEP")]
    pub set: String,
    /// Trace files to replay.
    #[arg(required = true)]
    pub traces: Vec<PathBuf>,
    #[command(flatten)]
    pub replay: ReplayOptions,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn execute(args: &SweepArgs) -> Result<(), Failure> {
    let range = Range::parse(&args.set).map_err(Failure::Input)?;
    let loaded = load(&args.policy)?;
    let inputs = read_inputs(&args.traces)?;
    let world = args.replay.world()?;
    let setup = args.replay.setup(&inputs, &world);
    let s = sweep::run(&loaded.label, &loaded.source.text, &range, setup).map_err(Failure::Input)?;
    match args.format {
        Format::Text => print!("{}", sweep::text(&s)),
        Format::Json => {
            let j = serde_json::to_string_pretty(&s).map_err(|e| Failure::Io(e.to_string()))?;
            println!("{j}");
        }
    }
    Ok(())
}

pub fn run(args: SweepArgs) -> ExitCode {
    super::common::exit(execute(&args))
}
