//! Replaying one set of inputs, held in memory, through a policy into a
//! [`Report`] and the per-case results: what `rcv diff --traces`, `rcv gate`
//! and `rcv sweep` run once per policy (or per value) over the same bytes,
//! seed and world, so their results compare case by case.

use std::io::{self, BufReader, Cursor};
use std::sync::Arc;

use crate::compile::CompiledPolicy;
use crate::digest::FileDigest;
use crate::runtime::driver::{self, Encode, Job, Sink};
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
    /// `blake3:<hex>` of the bytes, as `rcv run` records an input.
    pub digest: String,
}

impl InputFile {
    pub fn new(path: impl Into<String>, bytes: Vec<u8>) -> InputFile {
        let digest = FileDigest::of(&bytes);
        InputFile { path: path.into(), bytes: Arc::new(bytes), digest }
    }
}

/// Everything a replay of an input set depends on besides the policy.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub inputs: &'a [InputFile],
    pub world: &'a World,
    pub world_path: Option<&'a str>,
    pub world_digest: &'a str,
    pub seed: u64,
    pub jobs: usize,
}

/// The report and every case result, in input order.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub report: Report,
    pub cases: Vec<CaseResult>,
}

/// The report counts and every case result, in input order.
#[derive(Default)]
struct Collected {
    acc: Accumulator,
    cases: Vec<CaseResult>,
}

/// Keeps every result (nothing is encoded).
struct Collect;

impl Encode for Collect {
    type Tally = Collected;

    fn case(&self, result: CaseResult, _: &mut Vec<u8>, into: &mut Collected) -> io::Result<()> {
        into.acc.add_case(&result);
        into.cases.push(result);
        Ok(())
    }

    fn rejected(&self, rejection: Rejection, _: &mut Vec<u8>, into: &mut Collected) -> io::Result<()> {
        into.acc.add_rejection(&rejection);
        Ok(())
    }
}

impl Sink<Collected> for Collected {
    fn tally(&mut self) -> &mut Collected {
        self
    }

    fn merge(&mut self, batch: Collected) {
        self.acc.merge(batch.acc);
        self.cases.extend(batch.cases);
    }

    fn encoded(&mut self, _: &[u8]) -> io::Result<()> {
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
            digest: input.digest.clone(),
        });
        streams.push(stream);
    }
    let lines = crate::span::Lines::new(policy_text);
    let job = Job { policy, lines: Some(&lines), world: setup.world, seed: setup.seed, jobs: setup.jobs.max(1) };
    let mut sink = Collected::default();
    let stats = driver::run(&job, streams, &Collect, &mut sink)?;
    let snapshot = Snapshot {
        policy_path: policy_path.to_string(),
        policy_file_digest: FileDigest::of(policy_text.as_bytes()),
        seed: setup.seed,
        world_path: setup.world_path.map(str::to_string),
        world_digest: setup.world_digest.to_string(),
        inputs: digests,
        max_line_bytes: Options::default().max_line_bytes,
        close_idle_lines: None,
    };
    let Collected { acc, cases } = sink;
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
            before_reason: a.reason.as_deref().map(str::to_string),
            after_reason: b.reason.as_deref().map(str::to_string),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ingress::Stats;

    fn replayed(jobs: usize) -> (CompiledPolicy, Replayed) {
        let text = include_str!("../../policies/tool_chain.rcv");
        let source = crate::diag::Source::new("tool_chain.rcv", text.to_string());
        let policy = crate::compile::build(&source).policy.unwrap();
        let mut bytes = include_bytes!("../../fixtures/tool_chain_failures.ndjson").to_vec();
        bytes.extend_from_slice(include_bytes!("../../fixtures/bad_lines.ndjson"));
        let inputs = [InputFile::new("fixtures.ndjson", bytes)];
        let world = World::default();
        let setup = Setup { inputs: &inputs, world: &world, world_path: None, world_digest: "", seed: 7, jobs };
        let r = replay(&policy, "tool_chain.rcv", text, setup).unwrap();
        (policy, r)
    }

    /// Workers tally their own batches and the driver merges them: for any
    /// batch size, the merged tally must give the report of one tally.
    #[test]
    fn merged_batch_tallies_give_the_report_of_one_tally() {
        let (policy, r) = replayed(1);
        assert!(r.cases.len() > 50 && r.report.input.rejected > 0, "the fixtures give cases and rejections");
        let stats = Stats::default();
        let finish = |acc: Accumulator| serde_json::to_string(&acc.finish(&policy, r.report.snapshot.clone(), &stats));
        let mut whole = Accumulator::default();
        for (i, case) in r.cases.iter().enumerate() {
            whole.add_case(case);
            if i % 9 == 0 {
                whole.add_rejection(&rejection());
            }
        }
        let expected = finish(whole).unwrap();
        for size in [1, 2, 3, 8, 32, r.cases.len()] {
            let mut merged = Accumulator::default();
            for (k, chunk) in r.cases.chunks(size).enumerate() {
                let mut batch = Accumulator::default();
                for (j, case) in chunk.iter().enumerate() {
                    batch.add_case(case);
                    if (k * size + j) % 9 == 0 {
                        batch.add_rejection(&rejection());
                    }
                }
                merged.merge(batch);
            }
            assert_eq!(finish(merged).unwrap(), expected, "batches of {size}");
        }
    }

    #[test]
    fn replays_agree_for_any_number_of_jobs() {
        let (_, one) = replayed(1);
        for jobs in [2, 3] {
            let (_, other) = replayed(jobs);
            assert_eq!(serde_json::to_string(&other.report).unwrap(), serde_json::to_string(&one.report).unwrap());
            assert_eq!(other.cases.len(), one.cases.len());
            assert!(
                other.cases.iter().zip(&one.cases).all(|(a, b)| a.request_id == b.request_id && a.status == b.status)
            );
        }
    }

    fn rejection() -> Rejection {
        Rejection {
            file: "x".into(),
            line: 1,
            request_id: None,
            reason: crate::runtime::ingress::RejectReason::MalformedJson,
            detail: String::new(),
        }
    }
}
