//! `rcv run`: replay traces through a policy and write the trace, the
//! report and the summary; `--replay` reruns a stored report's snapshot and
//! fails loudly on any difference.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, ValueEnum};

use crate::compile::CompiledPolicy;
use crate::digest::FileDigest;
use crate::report::atomic::{self, AtomicFile};
use crate::report::report::{InputDigest, Snapshot};
use crate::report::{Accumulator, PolicyStamp, Report, summary, trace};
use crate::runtime::driver::{self, Job, Sink};
use crate::runtime::ingress::{self, Format, Options};

use super::common::{Failure, ReplayOptions, load_policy, load_world};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Sniff each input: OTLP/JSON, TRAIL span tree, else native NDJSON.
    Auto,
    Native,
    Otlp,
    Trail,
}

impl InputFormat {
    fn ingress(self) -> Format {
        match self {
            InputFormat::Auto => Format::Auto,
            InputFormat::Native => Format::Native,
            InputFormat::Otlp => Format::Otlp,
            InputFormat::Trail => Format::Trail,
        }
    }

    /// The format a report's snapshot recorded for an input.
    fn recorded(name: &str) -> InputFormat {
        match name {
            "native" => InputFormat::Native,
            "otlp" => InputFormat::Otlp,
            "trail" => InputFormat::Trail,
            _ => InputFormat::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunOutput {
    /// The outcome lines.
    Text,
    /// The report JSON on stdout.
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The policy file (.rcv).
    #[arg(required_unless_present = "replay")]
    pub policy: Option<PathBuf>,
    /// Trace files (native NDJSON, OTLP/JSON, TRAIL span trees); `-` reads stdin.
    #[arg(required_unless_present = "replay")]
    pub inputs: Vec<String>,
    /// Directory for trace.ndjson, report.json and summary.md.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub replay_options: ReplayOptions,
    #[arg(long, value_enum, default_value_t = RunOutput::Text)]
    pub format: RunOutput,
    #[arg(long = "input-format", value_enum, default_value_t = InputFormat::Auto)]
    pub input_format: InputFormat,
    /// Longest accepted input line, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
    /// Close a request whose last event is more than N lines back, as if its
    /// `end` had come: bounds memory for traces without `end` events.
    #[arg(long, value_name = "N")]
    pub close_idle_lines: Option<u64>,
    /// Rerun the snapshot stored in a report.json and compare every output.
    #[arg(long, conflicts_with_all = ["policy", "inputs", "seed", "world"])]
    pub replay: Option<PathBuf>,
}

/// Passes bytes through while hashing them, so stdin gets a digest too.
struct HashingReader<R> {
    inner: R,
    hasher: Arc<Mutex<FileDigest>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let (Ok(mut h), Some(chunk)) = (self.hasher.lock(), buf.get(..n)) {
            h.update(chunk);
        }
        Ok(n)
    }
}

struct Writer {
    trace: AtomicFile,
    acc: Accumulator,
}

impl Sink<Accumulator> for Writer {
    fn tally(&mut self) -> &mut Accumulator {
        &mut self.acc
    }

    fn merge(&mut self, batch: Accumulator) {
        self.acc.merge(batch);
    }

    fn encoded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.trace.write_all(bytes)
    }

    fn buffer(&mut self) -> Option<(&mut Vec<u8>, &mut Accumulator)> {
        Some((self.trace.buffer()?, &mut self.acc))
    }

    fn appended(&mut self) -> io::Result<()> {
        self.trace.appended()
    }
}

/// What one replay needs, resolved from arguments or from a snapshot.
struct Plan {
    policy_path: PathBuf,
    /// Each input with the format to read it as.
    inputs: Vec<(String, InputFormat)>,
    seed: u64,
    world_path: Option<PathBuf>,
    jobs: usize,
    max_line_bytes: usize,
    close_idle_lines: Option<u64>,
}

pub fn run(args: RunArgs) -> ExitCode {
    let jobs = args.replay_options.jobs();
    if let Some(report_path) = &args.replay {
        return super::common::exit(replay(report_path, jobs));
    }
    let plan = Plan {
        policy_path: args.policy.clone().unwrap_or_default(),
        inputs: args.inputs.iter().map(|i| (i.clone(), args.input_format)).collect(),
        seed: args.replay_options.seed,
        world_path: args.replay_options.world.clone(),
        jobs,
        max_line_bytes: args.max_line_bytes,
        close_idle_lines: args.close_idle_lines,
    };
    match execute(&plan, &args.out) {
        Ok(report) => {
            if args.format == RunOutput::Json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => return super::common::exit(Err(Failure::Io(e.to_string()))),
                }
            } else {
                print_lines(&report, &args.out);
            }
            if report.input.rejected > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
        }
        Err(f) => super::common::exit(Err(f)),
    }
}

fn print_lines(report: &Report, out: &Path) {
    let t = &report.totals;
    println!("[auto_recovered] {}/{}", t.auto_recovered, t.cases);
    println!("[fallback_model_recoveries] {}", t.fallback_model_recoveries);
    println!("[escalated] {}", t.escalated);
    if t.aborted > 0 {
        println!("[aborted] {}", t.aborted);
    }
    println!("[passed] {}", t.passed);
    if report.input.rejected > 0 {
        println!("[rejected] {} input lines (see the `rejected` records in the trace)", report.input.rejected);
    }
    let p = &report.policy;
    let o = |f: &str| out.join(f).display().to_string();
    println!(
        "policy {} {} {} · seed {} · {} cases · {} {} {}",
        p.name,
        p.version,
        p.hash,
        report.snapshot.seed,
        t.cases,
        o("trace.ndjson"),
        o("report.json"),
        o("summary.md")
    );
    if report.gate.verdict != "promote" {
        println!("gate: {} ({} reasons, see summary.md)", report.gate.verdict, report.gate.reasons.len());
    } else {
        println!("gate: promote");
    }
}

fn execute(plan: &Plan, out: &Path) -> Result<Report, Failure> {
    let (source, policy) = load_policy(&plan.policy_path)?;
    let policy_file_digest = FileDigest::of(source.text.as_bytes());
    let (world, world_digest) = load_world(plan.world_path.as_deref())?;
    fs::create_dir_all(out).map_err(|e| Failure::Io(format!("cannot create `{}`: {e}", out.display())))?;

    let mut streams = Vec::new();
    let mut hashers = Vec::new();
    let mut formats = Vec::new();
    let options =
        Options { max_line_bytes: plan.max_line_bytes, close_idle_lines: plan.close_idle_lines, ..Options::default() };
    for (input, format) in &plan.inputs {
        let hasher = Arc::new(Mutex::new(FileDigest::new()));
        let reader: Box<dyn Read + Send> = if input == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(fs::File::open(input).map_err(|e| Failure::Io(format!("cannot read `{input}`: {e}")))?)
        };
        let reader = BufReader::with_capacity(1 << 16, HashingReader { inner: reader, hasher: hasher.clone() });
        let stream = ingress::open_reader(input.as_str(), Box::new(reader), format.ingress(), options.clone())
            .map_err(|e| Failure::Io(format!("cannot read `{input}`: {e}")))?;
        formats.push(stream.format().as_str().to_string());
        streams.push(stream);
        hashers.push(hasher);
    }

    let stamp = PolicyStamp::of(&policy);
    let trace_path = out.join("trace.ndjson");
    let trace = AtomicFile::create_large(&trace_path)
        .map_err(|e| Failure::Io(format!("cannot write `{}`: {e}", trace_path.display())))?;
    let encoder = trace::RunRecords(trace::Encoder::new(&stamp).map_err(|e| Failure::Io(e.to_string()))?);
    let mut writer = Writer { trace, acc: Accumulator::default() };
    let lines = crate::span::Lines::new(&source.text);
    let job = Job { policy: &policy, lines: Some(&lines), world: &world, seed: plan.seed, jobs: plan.jobs };
    let stats = driver::run(&job, streams, &encoder, &mut writer).map_err(|e| Failure::Io(e.to_string()))?;

    let inputs = plan
        .inputs
        .iter()
        .zip(&hashers)
        .zip(formats)
        .map(|(((path, _), h), format)| InputDigest {
            path: path.clone(),
            format,
            digest: h.lock().map(|h| h.tagged()).unwrap_or_default(),
        })
        .collect();
    let snapshot = Snapshot {
        policy_path: plan.policy_path.display().to_string(),
        policy_file_digest,
        seed: plan.seed,
        world_path: plan.world_path.as_ref().map(|p| p.display().to_string()),
        world_digest,
        inputs,
        max_line_bytes: plan.max_line_bytes,
        close_idle_lines: plan.close_idle_lines,
    };
    let Writer { trace, acc, .. } = writer;
    trace.commit().map_err(|e| Failure::Io(format!("cannot write `{}`: {e}", trace_path.display())))?;
    let report = acc.finish(&policy, snapshot, &stats);
    let mut json = serde_json::to_vec_pretty(&report).map_err(|e| Failure::Io(e.to_string()))?;
    json.push(b'\n');
    write_out(&out.join("report.json"), &json)?;
    write_out(&out.join("summary.md"), summary::render(&report, &policy).as_bytes())?;
    Ok(report)
}

fn write_out(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    atomic::write(path, bytes).map_err(|e| Failure::Io(format!("cannot write `{}`: {e}", path.display())))
}

/// Reruns a stored snapshot into a scratch directory beside the report and
/// compares: inputs, policy and world must hash the same, and the new
/// trace and report must be byte-identical to the stored ones.
fn replay(report_path: &Path, jobs: usize) -> Result<(), Failure> {
    let text = fs::read_to_string(report_path)
        .map_err(|e| Failure::Io(format!("cannot read `{}`: {e}", report_path.display())))?;
    let not_a_report =
        |e: serde_json::Error| Failure::Input(format!("`{}` is not an rcv report: {e}", report_path.display()));
    // The layout is read only once its schema is known to be this one, so an
    // older report gets a message that says so, not a missing field.
    let head: SchemaOnly = serde_json::from_str(&text).map_err(not_a_report)?;
    if head.schema != crate::report::report::SCHEMA {
        return Err(Failure::Input(format!(
            "`{}` has schema `{}`, and this rcv replays `{}`: run `rcv run` again for a new report",
            report_path.display(),
            head.schema,
            crate::report::report::SCHEMA
        )));
    }
    let stored: Report = serde_json::from_str(&text).map_err(not_a_report)?;
    let snap = &stored.snapshot;
    let mut problems = Vec::new();
    let policy_path = PathBuf::from(&snap.policy_path);
    check_digest(&mut problems, "policy file", &snap.policy_path, &snap.policy_file_digest);
    if let Ok((_, policy)) = load_policy(&policy_path) {
        check_hash(&mut problems, &policy, &stored.policy.hash);
    }
    for input in &snap.inputs {
        if input.path == "-" {
            problems.push("an input was read from stdin and cannot be replayed".to_string());
            continue;
        }
        check_digest(&mut problems, "input", &input.path, &input.digest);
    }
    if let Some(w) = &snap.world_path {
        check_digest(&mut problems, "world model", w, &snap.world_digest);
    }
    if !problems.is_empty() {
        return Err(Failure::Mismatch(problems));
    }

    let dir = report_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let scratch = dir.join(format!(".replay-{}", std::process::id()));
    let plan = Plan {
        policy_path,
        inputs: snap.inputs.iter().map(|i| (i.path.clone(), InputFormat::recorded(&i.format))).collect(),
        seed: snap.seed,
        world_path: snap.world_path.as_ref().map(PathBuf::from),
        jobs,
        max_line_bytes: snap.max_line_bytes,
        close_idle_lines: snap.close_idle_lines,
    };
    let result = execute(&plan, &scratch);
    let compared = result.map(|_| {
        ["trace.ndjson", "report.json", "summary.md"]
            .iter()
            .filter_map(|name| {
                let old = fs::read(dir.join(name));
                let new = fs::read(scratch.join(name));
                match (old, new) {
                    (Ok(a), Ok(b)) if a == b => None,
                    (Ok(a), Ok(b)) => Some(format!("{name} differs from the stored one{}", first_difference(&a, &b))),
                    (Err(e), _) => Some(format!("stored {name}: {e}")),
                    (_, Err(e)) => Some(format!("rerun {name}: {e}")),
                }
            })
            .collect::<Vec<_>>()
    });
    let _ = fs::remove_dir_all(&scratch);
    let diffs = compared?;
    if diffs.is_empty() {
        let mut out = io::stdout().lock();
        let _ = writeln!(
            out,
            "replay identical: policy {} {} {} · seed {} · {} inputs · trace.ndjson, report.json and summary.md match",
            stored.policy.name,
            stored.policy.version,
            stored.policy.hash,
            snap.seed,
            snap.inputs.len()
        );
        Ok(())
    } else {
        Err(Failure::Mismatch(diffs))
    }
}

#[derive(serde::Deserialize)]
struct SchemaOnly {
    schema: String,
}

/// Notes a file that no longer has the digest the snapshot recorded, or
/// cannot be read.
fn check_digest(problems: &mut Vec<String>, what: &str, path: &str, stored: &str) {
    match FileDigest::of_file(Path::new(path)) {
        Ok(h) if h == stored => {}
        Ok(h) => problems.push(format!("{what} `{path}` changed: {h}, report has {stored}")),
        Err(e) => problems.push(format!("{what} `{path}`: {e}")),
    }
}

fn check_hash(problems: &mut Vec<String>, policy: &CompiledPolicy, stored: &str) {
    if policy.hash != stored {
        problems.push(format!("policy hash changed: {} now, report has {stored}", policy.hash));
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let line = a.iter().zip(b).take_while(|(x, y)| x == y).filter(|(x, _)| **x == b'\n').count() + 1;
    format!(" (first difference on line {line})")
}
