//! `rcv gate --baseline OLD --candidate NEW TRACES...`: replays both
//! policies with the same seed and world, applies the thresholds and the
//! release-blocking rules, writes `gate.json` and `gate.md` into `--out`,
//! and recommends promote (exit 0) or reject (exit 1); 2 on usage or input
//! errors. A candidate that does not compile is rejected with the
//! compiler's errors as the reasons.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::compile;
use crate::diag::{Code, Diagnostic, Source};
use crate::report::atomic;
use crate::report::gate::{self, Context, GateReport, InputRef, Stamp, Threshold, ThresholdsFile};

use super::common::{Failure, ReplayOptions};
use super::diff::{Loaded, load, read_inputs, read_spec, replay};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The verdict and its reasons.
    Text,
    /// gate.json on stdout.
    Json,
}

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The policy in production: a file or `REV:path`.
    #[arg(long)]
    pub baseline: String,
    /// The policy to ship: a file or `REV:path`.
    #[arg(long)]
    pub candidate: String,
    /// Trace files to replay (native NDJSON, OTLP/JSON, TRAIL).
    #[arg(required = true)]
    pub traces: Vec<PathBuf>,
    /// Thresholds YAML `{min: {metric: value}, max: {...}}` [default: the candidate's `gate` block].
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Directory for gate.json and gate.md.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub replay: ReplayOptions,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: GateArgs) -> ExitCode {
    match execute(&args) {
        Ok(report) => {
            match args.format {
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => return super::common::exit(Err(Failure::Io(e.to_string()))),
                },
                Format::Text => {
                    println!("gate: {}", report.verdict);
                    for r in &report.reasons {
                        println!("  - {r}");
                    }
                    println!("{} {}", args.out.join("gate.json").display(), args.out.join("gate.md").display());
                }
            }
            if report.verdict == "promote" { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(f) => super::common::exit(Err(f)),
    }
}

/// The candidate: compiled, or the compiler's errors.
type Candidate = Result<(Loaded, Vec<String>), Vec<String>>;

/// The candidate with its invariant warnings, or the compiler's errors.
fn load_candidate(spec: &str) -> Result<Candidate, Failure> {
    let bytes = read_spec(spec)?;
    let (source, build) = compile::build_bytes(spec.to_string(), bytes);
    match build.policy {
        Some(policy) if !build.has_errors() => {
            let warnings = build
                .diagnostics
                .iter()
                .filter(|d| matches!(d.code, Code::InvariantViolated | Code::InvariantAtRisk))
                .map(|d| describe(d, &source))
                .collect();
            Ok(Ok((Loaded { label: spec.to_string(), source, policy }, warnings)))
        }
        _ => Ok(Err(build.diagnostics.iter().filter(|d| d.is_error()).map(|d| describe(d, &source)).collect())),
    }
}

fn describe(d: &Diagnostic, source: &Source) -> String {
    let line = d.labels.first().map(|l| crate::span::Lines::new(&source.text).line(l.span.start));
    match line {
        Some(l) => format!("{} {} (line {l})", d.code.as_str(), d.message),
        None => format!("{} {}", d.code.as_str(), d.message),
    }
}

fn execute(args: &GateArgs) -> Result<GateReport, Failure> {
    let baseline = load(&args.baseline)?;
    let candidate = load_candidate(&args.candidate)?;
    let inputs = read_inputs(&args.traces)?;
    let world = args.replay.world()?;
    let (thresholds, from): (Vec<Threshold>, String) = match &args.thresholds {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::Io(format!("cannot read thresholds `{}`: {e}", p.display())))?;
            let t = ThresholdsFile::parse(&text)
                .map_err(|e| Failure::Input(format!("thresholds `{}`: {e}", p.display())))?;
            (t, p.display().to_string())
        }
        None => match &candidate {
            Ok((c, _)) => {
                (c.policy.source.gate.iter().map(Threshold::from_gate).collect(), "candidate gate block".into())
            }
            Err(_) => (Vec::new(), "none (the candidate does not compile)".into()),
        },
    };
    let setup = args.replay.setup(&inputs, &world);
    let ctx = Context {
        seed: args.replay.seed,
        world_digest: world.digest.clone(),
        inputs: inputs.iter().map(|i| InputRef { path: i.path.clone(), digest: i.digest.clone() }).collect(),
        thresholds_from: from,
        invariant_diagnostics: candidate.as_ref().map(|(_, w)| w.clone()).unwrap_or_default(),
    };
    let stamp = |l: &Loaded| Stamp {
        name: l.policy.name.clone(),
        version: l.policy.version.clone(),
        hash: l.policy.hash.clone(),
    };
    let base_replay = replay(&baseline, setup)?;
    let base_side = gate::Side { policy: &baseline.policy.source, stamp: stamp(&baseline), replay: &base_replay };
    let report = match &candidate {
        Ok((c, _)) => {
            let cand_replay = replay(c, setup)?;
            let cand_side = gate::Side { policy: &c.policy.source, stamp: stamp(c), replay: &cand_replay };
            gate::evaluate(base_side, cand_side, &thresholds, ctx)
        }
        Err(errors) => gate::not_compiled(base_side, errors.clone(), &thresholds, ctx),
    };
    write_outputs(&args.out, &report)?;
    Ok(report)
}

fn write_outputs(out: &Path, report: &GateReport) -> Result<(), Failure> {
    std::fs::create_dir_all(out).map_err(|e| Failure::Io(format!("cannot create `{}`: {e}", out.display())))?;
    let mut json = serde_json::to_vec_pretty(report).map_err(|e| Failure::Io(e.to_string()))?;
    json.push(b'\n');
    for (name, bytes) in [("gate.json", json), ("gate.md", gate::markdown(report).into_bytes())] {
        let path = out.join(name);
        atomic::write(&path, &bytes).map_err(|e| Failure::Io(format!("cannot write `{}`: {e}", path.display())))?;
    }
    Ok(())
}
