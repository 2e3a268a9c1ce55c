//! Replaying one set of inputs, held in memory, through a policy into a
//! [`Report`] and the per-case results: what `rcv diff --traces`, `rcv gate`
//! and `rcv sweep` run once per policy (or per value) over the same bytes,
//! seed and world, so their results compare case by case.

use std::io::{self, BufReader, Cursor};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::compile::CompiledPolicy;
use crate::runtime::decide::hex;
use crate::runtime::driver::{self, Job, Sink};
use crate::runtime::ingress::{self, Format, Options, Rejection};
use crate::runtime::replay::{CaseResult, Status};
use crate::runtime::world::World;

use super::report::{InputDigest, Snapshot};
use super::{Accumulator, Report};

/// One input file, read once and replayed as often as needed.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: String,
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
}

impl InputFile {
    pub fn new(path: impl Into<String>, bytes: Vec<u8>) -> InputFile {
        let sha256 = hex(&Sha256::digest(&bytes));
        InputFile { path: path.into(), bytes: Arc::new(bytes), sha256 }
    }
}

/// Everything a replay of an input set depends on besides the policy.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub inputs: &'a [InputFile],
    pub world: &'a World,
    pub world_path: Option<&'a str>,
    pub world_sha256: &'a str,
    pub seed: u64,
    pub jobs: usize,
}

/// The report and every case result, in input order.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub report: Report,
    pub cases: Vec<CaseResult>,
}

struct Collect {
    acc: Accumulator,
    cases: Vec<CaseResult>,
}

impl Sink for Collect {
    fn case(&mut self, result: CaseResult) -> io::Result<()> {
        self.acc.add_case(&result);
        self.cases.push(result);
        Ok(())
    }

    fn rejected(&mut self, rejection: Rejection) -> io::Result<()> {
        self.acc.add_rejection(&rejection);
        Ok(())
    }
}

/// Replays `setup.inputs` through `policy` (whose source text is
/// `policy_text`, read from `policy_path`).
pub fn replay(policy: &CompiledPolicy, policy_path: &str, policy_text: &str, setup: Setup<'_>) -> io::Result<Replayed> {
    let mut streams = Vec::new();
    let mut digests = Vec::new();
    for input in setup.inputs {
        let reader = BufReader::new(Cursor::new(input.bytes.as_ref().clone()));
        let stream = ingress::open_reader(input.path.as_str(), Box::new(reader), Format::Auto, Options::default())?;
        digests.push(InputDigest {
            path: input.path.clone(),
            format: stream.format().as_str().to_string(),
            sha256: input.sha256.clone(),
        });
        streams.push(stream);
    }
    let lines = crate::span::Lines::new(policy_text);
    let job = Job { policy, lines: Some(&lines), world: setup.world, seed: setup.seed, jobs: setup.jobs.max(1) };
    let mut sink = Collect { acc: Accumulator::default(), cases: Vec::new() };
    let stats = driver::run(&job, streams, &driver::NoEncoding, &mut sink)?;
    let snapshot = Snapshot {
        policy_path: policy_path.to_string(),
        policy_file_sha256: hex(&Sha256::digest(policy_text.as_bytes())),
        seed: setup.seed,
        world_path: setup.world_path.map(str::to_string),
        world_sha256: setup.world_sha256.to_string(),
        inputs: digests,
        max_line_bytes: Options::default().max_line_bytes,
        close_idle_lines: None,
    };
    let Collect { acc, cases } = sink;
    Ok(Replayed { report: acc.finish(policy, snapshot, &stats), cases })
}

/// A case whose final status differs between two replays of the same inputs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Flip {
    pub request_id: String,
    pub before: Status,
    pub after: Status,
    /// The reason of the final decision on each side (escalated and aborted cases).
    pub before_reason: Option<String>,
    pub after_reason: Option<String>,
}

/// Cases that changed status, in the order of `before`; cases are matched
/// by request id and position (a request id may repeat across inputs).
pub fn flips(before: &[CaseResult], after: &[CaseResult]) -> Vec<Flip> {
    before
        .iter()
        .zip(after)
        .filter(|(a, b)| a.request_id == b.request_id && a.status != b.status)
        .map(|(a, b)| Flip {
            request_id: a.request_id.clone(),
            before: a.status,
            after: b.status,
            before_reason: a.reason.clone(),
            after_reason: b.reason.clone(),
        })
        .collect()
}

/// One metric on both sides.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricDelta {
    pub metric: String,
    pub before: f64,
    pub after: f64,
    pub delta: f64,
}

/// The headline metrics of two reports, then recovery rate per class.
pub fn metric_deltas(before: &Report, after: &Report) -> Vec<MetricDelta> {
    let mut out = Vec::new();
    let mut push = |metric: String, a: f64, b: f64| {
        out.push(MetricDelta { metric, before: a, after: b, delta: super::report::round(b - a) });
    };
    for (name, f) in METRICS {
        push(name.to_string(), f(before), f(after));
    }
    let mut classes: Vec<&String> = before.per_class.keys().collect();
    for c in after.per_class.keys() {
        if !classes.contains(&c) {
            classes.push(c);
        }
    }
    for c in classes {
        let rate = |r: &Report| r.per_class.get(c).map_or(0.0, |s| s.recovery_rate);
        push(format!("recovery_rate[{c}]"), rate(before), rate(after));
    }
    out
}

type MetricFn = fn(&Report) -> f64;

/// The report metrics compared across replays, by the names the `gate`
/// block uses.
pub const METRICS: [(&str, MetricFn); 9] = [
    ("auto_recovered_rate", |r| r.rates.auto_recovered_rate),
    ("escalation_rate", |r| r.rates.escalation_rate),
    ("abort_rate", |r| r.rates.abort_rate),
    ("fallback_rate", |r| r.rates.fallback_rate),
    ("p50_latency", |r| r.latency_ms.p50),
    ("p95_latency", |r| r.latency_ms.p95),
    ("cost_per_request", |r| r.cost_usd.mean),
    ("mean_attempts", |r| r.rates.mean_attempts),
    ("wasted_retry_rate", |r| r.rates.wasted_retry_rate),
];

/// The value of a gate metric in a report.
pub fn metric(report: &Report, name: &str) -> Option<f64> {
    METRICS.iter().find(|(n, _)| *n == name).map(|(_, f)| f(report))
}
