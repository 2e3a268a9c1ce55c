//! What the subcommands share: loading a policy through the whole front
//! end, and turning failures into messages and exit codes.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;

use crate::compile::{self, CompiledPolicy};
use crate::diag::Source;

/// Why a command could not do its job.
#[derive(Debug)]
pub enum Failure {
    /// The policy has errors (already printed).
    Policy,
    /// A file could not be read or written.
    Io(String),
    /// An input is not what the command expects.
    Input(String),
    /// A replay did not reproduce its snapshot.
    Mismatch(Vec<String>),
}

/// Reads, parses, checks and compiles a policy; prints its diagnostics to
/// stderr when it has errors.
pub fn load_policy(path: &Path) -> Result<(Source, CompiledPolicy), Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| Failure::Io(format!("cannot read policy `{}`: {e}", path.display())))?;
    let (source, bad_text) = Source::from_bytes(path.display().to_string(), bytes);
    let build = match bad_text {
        Some(d) => compile::Build { policy: None, diagnostics: vec![d] },
        None => compile::build(&source),
    };
    match build.policy {
        Some(policy) if !build.has_errors() => Ok((source, policy)),
        _ => {
            let color = std::io::stderr().is_terminal();
            eprint!("{}", crate::diag::render::human(&build.diagnostics, &source, color));
            Err(Failure::Policy)
        }
    }
}

/// Prints a failure and maps it to the documented exit code: 1 for a
/// replay mismatch, 2 for usage, input and I/O problems.
pub fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Policy) => {
            eprintln!("error: the policy has errors; nothing was run");
            ExitCode::from(2)
        }
        Err(Failure::Io(m)) | Err(Failure::Input(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Mismatch(problems)) => {
            eprintln!("error: replay does not match its snapshot:");
            for p in problems {
                eprintln!("  - {p}");
            }
            ExitCode::from(1)
        }
    }
}
