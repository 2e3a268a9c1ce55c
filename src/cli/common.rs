//! What the subcommands share: loading a policy through the whole front
//! end, and turning failures into messages and exit codes.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::compile::{self, CompiledPolicy};
use crate::diag::Source;
use crate::digest::FileDigest;
use crate::report::replay_set::{InputFile, Setup};
use crate::runtime::world::{self, World};

/// The options of every command that replays traces.
#[derive(Args, Debug, Clone)]
pub struct ReplayOptions {
    /// Seed for jitter and simulated outcomes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// World model (YAML) for outcomes the recording cannot answer
    /// [default: the built-in copy of fixtures/world.yaml].
    #[arg(long)]
    pub world: Option<PathBuf>,
    /// Worker threads (output is identical for any value) [default: one per core].
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

impl ReplayOptions {
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1)
    }

    /// Loads the world model these options name.
    pub fn world(&self) -> Result<LoadedWorld, Failure> {
        let (world, digest) = load_world(self.world.as_deref())?;
        Ok(LoadedWorld { world, digest, path: self.world.as_ref().map(|p| p.display().to_string()) })
    }

    /// The replay setup for `inputs` under these options.
    pub fn setup<'a>(&self, inputs: &'a [InputFile], world: &'a LoadedWorld) -> Setup<'a> {
        Setup {
            inputs,
            world: &world.world,
            world_path: world.path.as_deref(),
            world_digest: &world.digest,
            seed: self.seed,
            jobs: self.jobs(),
        }
    }
}

/// A world model with what a report records of it.
pub struct LoadedWorld {
    pub world: World,
    /// `blake3:<hex>` of the world model's text.
    pub digest: String,
    /// `None`: the built-in world.
    pub path: Option<String>,
}

/// The world model and the digest of its text (the built-in one's when no
/// path is given).
pub fn load_world(path: Option<&Path>) -> Result<(World, String), Failure> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::Io(format!("cannot read world model `{}`: {e}", p.display())))?;
            let world =
                World::from_yaml(&text).map_err(|e| Failure::Input(format!("world model `{}`: {e}", p.display())))?;
            Ok((world, FileDigest::of(text.as_bytes())))
        }
        None => Ok((World::default(), FileDigest::of(world::BUILTIN_YAML.as_bytes()))),
    }
}

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
    let (source, build) = compile::build_bytes(path.display().to_string(), bytes);
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
