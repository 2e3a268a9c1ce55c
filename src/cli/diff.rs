//! `rcv diff OLD NEW [--traces FILE...]`: the semantic diff of two policies
//! (declarations, rules, regions of events whose decision changes) and,
//! with traces, the cases whose outcome flips and the metric deltas.
//! OLD and NEW may be `REV:path` for a git revision. Exit 0 when nothing
//! changed in meaning, 1 when something did, 2 on errors.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::compile::diff::{self, PolicyDiff, RuleAt};
use crate::compile::{self, CompiledPolicy};
use crate::diag::Source;
use crate::report::replay_set::{self, Flip, InputFile, MetricDelta, Replayed, Setup};

use super::common::{Failure, ReplayOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown-friendly text.
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The old policy: a file, or `REV:path` for a git revision.
    pub old: String,
    /// The new policy: a file, or `REV:path` for a git revision.
    pub new: String,
    /// Replay these traces through both policies and report the impact.
    #[arg(long, num_args = 1..)]
    pub traces: Vec<PathBuf>,
    /// Seed, world and threads, the same for both sides.
    #[command(flatten)]
    pub replay: ReplayOptions,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A loaded policy and where it came from.
pub struct Loaded {
    pub label: String,
    pub source: Source,
    pub policy: CompiledPolicy,
}

/// Reads a policy from a file or, for `REV:path` when no such file exists,
/// from `git show REV:path`; builds it and prints its diagnostics on error.
pub fn load(spec: &str) -> Result<Loaded, Failure> {
    let bytes = read_spec(spec)?;
    let (source, build) = compile::build_bytes(spec.to_string(), bytes);
    match build.policy {
        Some(policy) if !build.has_errors() => Ok(Loaded { label: spec.to_string(), source, policy }),
        _ => {
            let color = std::io::stderr().is_terminal();
            eprint!("{}", crate::diag::render::human(&build.diagnostics, &source, color));
            Err(Failure::Policy)
        }
    }
}

/// The bytes of a policy file, or of `REV:path` through `git show` when no
/// such file exists.
pub fn read_spec(spec: &str) -> Result<Vec<u8>, Failure> {
    match std::fs::read(spec) {
        Ok(b) => Ok(b),
        Err(e) => match spec.split_once(':') {
            Some((rev, path)) if !rev.is_empty() && !path.is_empty() => git_show(rev, path),
            _ => Err(Failure::Io(format!("cannot read policy `{spec}`: {e}"))),
        },
    }
}

fn git_show(rev: &str, path: &str) -> Result<Vec<u8>, Failure> {
    let out = Command::new("git")
        .arg("show")
        .arg(format!("{rev}:{path}"))
        .output()
        .map_err(|e| Failure::Io(format!("cannot run `git show {rev}:{path}`: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Failure::Io(format!("`git show {rev}:{path}` failed: {msg}")));
    }
    Ok(out.stdout)
}

/// Reads every trace file into memory.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<InputFile>, Failure> {
    paths
        .iter()
        .map(|p| {
            let bytes =
                std::fs::read(p).map_err(|e| Failure::Io(format!("cannot read trace `{}`: {e}", p.display())))?;
            Ok(InputFile::new(p.display().to_string(), bytes))
        })
        .collect()
}

/// Replays a loaded policy over a prepared setup.
pub fn replay(l: &Loaded, setup: Setup<'_>) -> Result<Replayed, Failure> {
    replay_set::replay(&l.policy, &l.label, &l.source.text, setup).map_err(|e| Failure::Io(e.to_string()))
}

#[derive(Debug, Serialize)]
struct Impact {
    cases: u64,
    seed: u64,
    flips: Vec<Flip>,
    metrics: Vec<MetricDelta>,
}

#[derive(Debug, Serialize)]
struct Output {
    schema: &'static str,
    #[serde(flatten)]
    diff: PolicyDiff,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<Impact>,
}

pub fn run(args: DiffArgs) -> ExitCode {
    match execute(&args) {
        Ok(changed) => ExitCode::from(u8::from(changed)),
        Err(f) => super::common::exit(Err(f)),
    }
}

fn execute(args: &DiffArgs) -> Result<bool, Failure> {
    let old = load(&args.old)?;
    let new = load(&args.new)?;
    let d = diff::diff(
        diff::Side { policy: &old.policy, text: &old.source.text },
        diff::Side { policy: &new.policy, text: &new.source.text },
    );
    let impact = if args.traces.is_empty() {
        None
    } else {
        let inputs = read_inputs(&args.traces)?;
        let world = args.replay.world()?;
        let setup = args.replay.setup(&inputs, &world);
        let a = replay(&old, setup)?;
        let b = replay(&new, setup)?;
        Some(Impact {
            cases: a.report.totals.cases,
            seed: args.replay.seed,
            flips: replay_set::flips(&a.cases, &b.cases),
            metrics: replay_set::metric_deltas(&a.report, &b.report),
        })
    };
    let changed = d.semantic_change;
    let out = Output { schema: "rcv.diff/1", diff: d, replay: impact };
    match args.format {
        Format::Json => {
            let s = serde_json::to_string_pretty(&out).map_err(|e| Failure::Io(e.to_string()))?;
            println!("{s}");
        }
        Format::Text => print!("{}", render(&out, &old.label, &new.label)),
    }
    Ok(changed)
}

fn at(r: &Option<RuleAt>) -> String {
    match r {
        Some(r) => format!("rule {} (line {}) `{}`", r.index, r.line, r.text),
        None => "no rule".to_string(),
    }
}

fn render(out: &Output, old_label: &str, new_label: &str) -> String {
    let d = &out.diff;
    let mut s = String::new();
    let _ = writeln!(s, "## rcv diff: {} {} -> {} {}\n", d.old.name, d.old.version, d.new.name, d.new.version);
    let _ = writeln!(s, "- old: `{old_label}` {}", d.old.hash);
    let _ = writeln!(s, "- new: `{new_label}` {}", d.new.hash);
    if !d.semantic_change {
        let _ = writeln!(s, "\nno semantic change (same hash)");
    } else {
        if !d.declarations.is_empty() {
            let _ = writeln!(s, "\n### Declarations\n");
            for c in &d.declarations {
                let v = |x: &Option<String>| x.as_deref().map_or("-".to_string(), |t| format!("`{t}`"));
                let _ = match c.change.as_str() {
                    "changed" => writeln!(s, "- {} `{}` changed: {} -> {}", c.section, c.name, v(&c.old), v(&c.new)),
                    "added" => writeln!(s, "- {} `{}` added: {}", c.section, c.name, v(&c.new)),
                    other => writeln!(s, "- {} `{}` {other}: was {}", c.section, c.name, v(&c.old)),
                };
            }
        }
        if !d.rules.is_empty() {
            let _ = writeln!(s, "\n### Rules\n");
            for r in &d.rules {
                let what = r.change.replace('_', " ");
                let _ = match (&r.old, &r.new) {
                    (Some(_), Some(_)) => writeln!(s, "- {} {what}: {} -> {}", r.block, at(&r.old), at(&r.new)),
                    (Some(_), None) => writeln!(s, "- {} {what}: {}", r.block, at(&r.old)),
                    _ => writeln!(s, "- {} {what}: {}", r.block, at(&r.new)),
                };
            }
        }
        let _ = writeln!(s, "\n### Decision changes: {} regions\n", d.regions.len());
        if d.regions.is_empty() {
            let _ = writeln!(s, "no event is decided differently by the rules");
        }
        for (i, r) in d.regions.iter().enumerate() {
            let _ = writeln!(s, "{}. **{}**: {} changes", i + 1, r.block, r.changes.join(", "));
            for c in &r.conditions {
                let _ = writeln!(s, "   - where `{c}`");
            }
            if r.boxes > r.conditions.len() {
                let _ = writeln!(s, "   - and {} more boxes", r.boxes - r.conditions.len());
            }
            let _ = writeln!(s, "   - example: `{}`", r.example);
            let _ = writeln!(s, "   - old: `{}` by {}", r.old.decision, at(&r.old.rule));
            let _ = writeln!(s, "   - new: `{}` by {}", r.new.decision, at(&r.new.rule));
        }
    }
    for n in &d.notes {
        let _ = writeln!(s, "\nnote: {n}");
    }
    if let Some(imp) = &out.replay {
        let _ = writeln!(s, "\n### Replay impact: {} cases, seed {}\n", imp.cases, imp.seed);
        let _ = writeln!(s, "| metric | old | new | delta |\n|---|---:|---:|---:|");
        for m in &imp.metrics {
            let _ = writeln!(s, "| {} | {} | {} | {:+} |", m.metric, m.before, m.after, m.delta);
        }
        let _ = writeln!(s, "\n{} cases change outcome", imp.flips.len());
        for f in &imp.flips {
            let why = |r: &Option<String>| r.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            let _ = writeln!(
                s,
                "- `{}`: {}{} -> {}{}",
                f.request_id,
                f.before.as_str(),
                why(&f.before_reason),
                f.after.as_str(),
                why(&f.after_reason)
            );
        }
    }
    s
}
