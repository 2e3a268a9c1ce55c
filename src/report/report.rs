//! `report.json`: the machine-readable result of a replay, for CI. Its
//! layout is versioned by `schema`; `docs/replay.md` documents every field.
//! Built by folding case results in input order, so it is byte-identical
//! for the same inputs whatever the thread count.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::check::ir::{GateIr, Metric};
use crate::compile::CompiledPolicy;
use crate::runtime::ingress::{Rejection, Stats};
use crate::runtime::replay::{CaseResult, SafetyFinding, Source, Status};
use crate::syntax::ast::GateBound;

pub const SCHEMA: &str = "rcv.report/2";

/// Name, version and hash: stamped on every output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStamp {
    pub name: String,
    pub version: String,
    pub hash: String,
}

impl PolicyStamp {
    pub fn of(policy: &CompiledPolicy) -> Self {
        PolicyStamp { name: policy.name.clone(), version: policy.version.clone(), hash: policy.hash.clone() }
    }
}

/// One input file of the run and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDigest {
    pub path: String,
    pub format: String,
    /// `blake3:<hex>` of the bytes read.
    pub digest: String,
}

/// Everything needed to rerun exactly this replay (`rcv run --replay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub policy_path: String,
    /// `blake3:<hex>` of the policy file's bytes (the policy hash ignores
    /// formatting; this one does not).
    pub policy_file_digest: String,
    pub seed: u64,
    /// `None`: the built-in copy of `fixtures/world.yaml`.
    pub world_path: Option<String>,
    /// `blake3:<hex>` of the world model file, or of the built-in world's text.
    pub world_digest: String,
    pub inputs: Vec<InputDigest>,
    pub max_line_bytes: usize,
    /// `--close-idle-lines`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_idle_lines: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub cases: u64,
    pub passed: u64,
    pub auto_recovered: u64,
    /// Auto-recovered cases whose recovery included a model fallback.
    pub fallback_model_recoveries: u64,
    pub escalated: u64,
    pub aborted: u64,
    pub decisions: u64,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rates {
    pub auto_recovered_rate: f64,
    pub escalation_rate: f64,
    pub abort_rate: f64,
    pub fallback_rate: f64,
    pub mean_attempts: f64,
    pub wasted_retry_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassStats {
    /// Decisions about a failure of this class.
    pub failures: u64,
    /// Cases with at least one failure of this class.
    pub cases: u64,
    /// Of those, cases that ended auto-recovered.
    pub recovered: u64,
    pub recovery_rate: f64,
    /// Mean calls per case, over the cases with this class.
    pub mean_attempts: f64,
    /// Retry, fallback and reset decisions for this class.
    pub retries: u64,
    /// Of those, ones in cases that did not recover.
    pub wasted_retries: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Distribution {
    pub p50: f64,
    pub p95: f64,
    pub mean: f64,
    pub max: f64,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SourceCounts {
    /// Cases whose outcome rests, at least in part, on the world model.
    pub cases_simulated: u64,
    /// Cases that used scripted alternatives.
    pub cases_with_alternatives: u64,
    /// Non-terminal decisions by where their outcome came from.
    pub decisions: IndexMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Safety {
    pub high_risk_cases: u64,
    /// Cases with a failed side-effecting tool call at high or critical risk.
    pub high_risk_side_effect_cases: u64,
    /// Of those, cases escalated as policy requires.
    pub high_risk_side_effect_escalated: u64,
    pub findings: Vec<SafetyFinding>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InputCounts {
    pub lines: u64,
    pub accepted_events: u64,
    pub blank_lines: u64,
    pub skipped_spans: u64,
    pub rejected: u64,
    pub rejected_by_reason: IndexMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    pub metric: String,
    pub bound: String,
    pub threshold: f64,
    pub observed: f64,
    pub pass: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// `promote` or `reject`.
    pub verdict: String,
    pub checks: Vec<GateCheck>,
    /// Every reason for `reject`: failed thresholds and release-blocking findings.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub rcv_version: String,
    pub policy: PolicyStamp,
    pub snapshot: Snapshot,
    pub totals: Totals,
    pub rates: Rates,
    pub sources: SourceCounts,
    pub per_class: IndexMap<String, ClassStats>,
    pub reasons: IndexMap<String, u64>,
    pub escalations_by_reason: IndexMap<String, u64>,
    pub overrides: IndexMap<String, u64>,
    pub latency_ms: Distribution,
    pub cost_usd: Distribution,
    pub safety: Safety,
    pub input: InputCounts,
    pub gate: Gate,
}

/// Folds case results (in output order) into the report's numbers.
#[derive(Debug, Default)]
pub struct Accumulator {
    totals: Totals,
    sources: SourceCounts,
    per_class: Tally<ClassStats>,
    /// Calls of the cases with each class, by the class's index in `per_class`.
    class_calls: Vec<u64>,
    reasons: Tally<u64>,
    escalations: Tally<u64>,
    overrides: Tally<u64>,
    /// Non-terminal decisions by outcome source (indexed by [`source_index`]),
    /// and the sources in the order they were first seen.
    source_decisions: [u64; 3],
    source_order: Vec<Source>,
    /// Indices in `per_class` of the classes seen in the current case.
    seen: Vec<usize>,
    latencies: Vec<f64>,
    costs: Vec<f64>,
    retries: u64,
    wasted: u64,
    safety: Safety,
    rejected: u64,
}

/// Per-decision counters: looked up several times per decision, so they
/// use a faster hasher than the default (the order is insertion order
/// either way).
type Tally<V> = IndexMap<String, V, foldhash::fast::RandomState>;

/// The index of `key`, inserted with the default value on first sight (an
/// `entry` call would copy the key every time).
fn slot_index<V: Default, S: std::hash::BuildHasher>(map: &mut IndexMap<String, V, S>, key: &str) -> usize {
    match map.get_index_of(key) {
        Some(i) => i,
        None => map.insert_full(key.to_string(), V::default()).0,
    }
}

/// The value under `key`, inserted as the default on first sight.
fn slot<'m, V: Default, S: std::hash::BuildHasher>(map: &'m mut IndexMap<String, V, S>, key: &str) -> &'m mut V {
    let i = slot_index(map, key);
    &mut map[i]
}

fn source_index(s: Source) -> usize {
    match s {
        Source::Recorded => 0,
        Source::Alternative => 1,
        Source::Simulated => 2,
    }
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Recorded => "recorded",
        Source::Alternative => "alternative",
        Source::Simulated => "simulated",
    }
}

impl Accumulator {
    /// Adds one case's counts. Runs once per case in input order, so map
    /// keys are copied only the first time they are seen.
    pub fn add_case(&mut self, case: &CaseResult) {
        let t = &mut self.totals;
        t.cases += 1;
        t.decisions += case.decisions.len() as u64;
        t.calls += u64::from(case.calls);
        match case.status {
            Status::Passed => t.passed += 1,
            Status::AutoRecovered => t.auto_recovered += 1,
            Status::Escalated => t.escalated += 1,
            Status::Aborted => t.aborted += 1,
        }
        if case.fallback_recovery {
            t.fallback_model_recoveries += 1;
        }
        if case.simulated {
            self.sources.cases_simulated += 1;
        }
        if case.alternative {
            self.sources.cases_with_alternatives += 1;
        }
        let recovered = case.status == Status::AutoRecovered;
        self.seen.clear();
        for d in &case.decisions {
            let class = d.decision.class.as_deref().unwrap_or("(accept)");
            let i = slot_index(&mut self.per_class, class);
            let stats = &mut self.per_class[i];
            stats.failures += 1;
            if !d.decision.action.is_terminal() {
                stats.retries += 1;
                self.retries += 1;
                if !recovered {
                    stats.wasted_retries += 1;
                    self.wasted += 1;
                }
            }
            if !self.seen.contains(&i) {
                self.seen.push(i);
                stats.cases += 1;
                if recovered {
                    stats.recovered += 1;
                }
                if i == self.class_calls.len() {
                    self.class_calls.push(0);
                }
                if let Some(calls) = self.class_calls.get_mut(i) {
                    *calls += u64::from(case.calls);
                }
            }
            *slot(&mut self.reasons, &d.decision.reason) += 1;
            if let Some(o) = &d.decision.overridden {
                *slot(&mut self.overrides, &o.by) += 1;
            }
            if let Some(o) = &d.outcome {
                let n = &mut self.source_decisions[source_index(o.source)];
                if *n == 0 {
                    self.source_order.push(o.source);
                }
                *n += 1;
            }
        }
        if case.status == Status::Escalated {
            *slot(&mut self.escalations, case.reason.as_deref().unwrap_or_default()) += 1;
        }
        if case.risk.is_some_and(|r| r >= crate::runtime::event::Risk::High) {
            self.safety.high_risk_cases += 1;
        }
        if case.high_risk_side_effect {
            self.safety.high_risk_side_effect_cases += 1;
            if case.status == Status::Escalated {
                self.safety.high_risk_side_effect_escalated += 1;
            }
        }
        self.safety.findings.extend(case.safety.iter().cloned());
        self.latencies.push(case.latency_ms);
        self.costs.push(case.cost_usd);
    }

    pub fn add_rejection(&mut self, _rejection: &Rejection) {
        self.rejected += 1;
    }

    /// Adds the counts of `later`, an accumulator of the cases that come
    /// right after this one's: the result is the accumulator of all of
    /// them in order (keys first seen in `later` go after this one's).
    /// Replay workers tally their own batches and the driver merges them.
    pub fn merge(&mut self, later: Accumulator) {
        // Destructured in full, so that a new field cannot be forgotten here.
        let Accumulator {
            totals,
            sources,
            per_class,
            class_calls,
            reasons,
            escalations,
            overrides,
            source_decisions,
            source_order,
            seen: _,
            latencies,
            costs,
            retries,
            wasted,
            safety,
            rejected,
        } = later;
        let Totals { cases, passed, auto_recovered, fallback_model_recoveries, escalated, aborted, decisions, calls } =
            totals;
        let t = &mut self.totals;
        t.cases += cases;
        t.passed += passed;
        t.auto_recovered += auto_recovered;
        t.fallback_model_recoveries += fallback_model_recoveries;
        t.escalated += escalated;
        t.aborted += aborted;
        t.decisions += decisions;
        t.calls += calls;
        let SourceCounts { cases_simulated, cases_with_alternatives, decisions: _ } = sources;
        self.sources.cases_simulated += cases_simulated;
        self.sources.cases_with_alternatives += cases_with_alternatives;
        for (j, (class, stats)) in per_class.into_iter().enumerate() {
            let i = slot_index(&mut self.per_class, &class);
            let ClassStats { failures, cases, recovered, recovery_rate: _, mean_attempts: _, retries, wasted_retries } =
                stats;
            let into = &mut self.per_class[i];
            into.failures += failures;
            into.cases += cases;
            into.recovered += recovered;
            into.retries += retries;
            into.wasted_retries += wasted_retries;
            if i == self.class_calls.len() {
                self.class_calls.push(0);
            }
            if let (Some(into), Some(n)) = (self.class_calls.get_mut(i), class_calls.get(j)) {
                *into += n;
            }
        }
        for (into, from) in
            [(&mut self.reasons, reasons), (&mut self.escalations, escalations), (&mut self.overrides, overrides)]
        {
            for (key, n) in from {
                *slot(into, &key) += n;
            }
        }
        for s in source_order {
            let i = source_index(s);
            if self.source_decisions[i] == 0 {
                self.source_order.push(s);
            }
            self.source_decisions[i] += source_decisions[i];
        }
        self.latencies.extend(latencies);
        self.costs.extend(costs);
        self.retries += retries;
        self.wasted += wasted;
        let Safety { high_risk_cases, high_risk_side_effect_cases, high_risk_side_effect_escalated, findings } = safety;
        self.safety.high_risk_cases += high_risk_cases;
        self.safety.high_risk_side_effect_cases += high_risk_side_effect_cases;
        self.safety.high_risk_side_effect_escalated += high_risk_side_effect_escalated;
        self.safety.findings.extend(findings);
        self.rejected += rejected;
    }

    pub fn finish(self, policy: &CompiledPolicy, snapshot: Snapshot, stats: &Stats) -> Report {
        let t = &self.totals;
        let rate = |n: u64| ratio(n, t.cases);
        let rates = Rates {
            auto_recovered_rate: rate(t.auto_recovered),
            escalation_rate: rate(t.escalated),
            abort_rate: rate(t.aborted),
            fallback_rate: rate(t.fallback_model_recoveries),
            mean_attempts: round(ratio(t.calls, t.cases)),
            wasted_retry_rate: ratio(self.wasted, self.retries),
        };
        let mut per_class: IndexMap<String, ClassStats> = self.per_class.into_iter().collect();
        for (i, s) in per_class.values_mut().enumerate() {
            s.recovery_rate = ratio(s.recovered, s.cases);
            s.mean_attempts = round(ratio(self.class_calls.get(i).copied().unwrap_or(0), s.cases));
        }
        // Most frequent first; ties keep first-seen order (stable sort).
        per_class.sort_by(|_, a, _, b| b.failures.cmp(&a.failures));
        let mut reasons: IndexMap<String, u64> = self.reasons.into_iter().collect();
        reasons.sort_by(|_, a, _, b| b.cmp(a));
        let mut escalations: IndexMap<String, u64> = self.escalations.into_iter().collect();
        escalations.sort_by(|_, a, _, b| b.cmp(a));
        let latency_ms = distribution(self.latencies);
        let cost_usd = distribution(self.costs);
        let input = InputCounts {
            lines: stats.lines,
            accepted_events: stats.accepted,
            blank_lines: stats.skipped_blank,
            skipped_spans: stats.skipped_spans,
            rejected: stats.rejected_total(),
            rejected_by_reason: stats.rejected.iter().map(|(r, n)| (r.as_str().to_string(), *n)).collect(),
        };
        let gate = gate(&policy.source.gate, &rates, &latency_ms, &cost_usd, &self.safety, t);
        let mut sources = self.sources;
        sources.decisions = self
            .source_order
            .iter()
            .map(|&s| (source_name(s).to_string(), self.source_decisions[source_index(s)]))
            .collect();
        Report {
            schema: SCHEMA.to_string(),
            rcv_version: crate::VERSION.to_string(),
            policy: PolicyStamp::of(policy),
            snapshot,
            totals: self.totals,
            rates,
            sources,
            per_class,
            reasons,
            escalations_by_reason: escalations,
            overrides: self.overrides.into_iter().collect(),
            latency_ms,
            cost_usd,
            safety: self.safety,
            input,
            gate,
        }
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { round(n as f64 / d as f64) }
}

/// Six decimals: enough for rates and dollars, and stable to print.
pub fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Nearest-rank percentiles.
fn distribution(mut xs: Vec<f64>) -> Distribution {
    if xs.is_empty() {
        return Distribution::default();
    }
    xs.sort_by(f64::total_cmp);
    let pick = |p: f64| {
        let rank = ((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
        xs.get(rank - 1).copied().unwrap_or(0.0)
    };
    let total: f64 = xs.iter().sum();
    Distribution {
        p50: round(pick(0.50)),
        p95: round(pick(0.95)),
        mean: round(total / xs.len() as f64),
        max: round(xs.last().copied().unwrap_or(0.0)),
        total: round(total),
    }
}

fn gate(
    thresholds: &[GateIr],
    rates: &Rates,
    latency: &Distribution,
    cost: &Distribution,
    safety: &Safety,
    totals: &Totals,
) -> Gate {
    let mut checks = Vec::new();
    let mut reasons = Vec::new();
    for g in thresholds {
        let observed = match g.metric {
            Metric::AutoRecoveredRate => rates.auto_recovered_rate,
            Metric::EscalationRate => rates.escalation_rate,
            Metric::AbortRate => rates.abort_rate,
            Metric::FallbackRate => rates.fallback_rate,
            Metric::P50Latency => latency.p50,
            Metric::P95Latency => latency.p95,
            Metric::CostPerRequest => cost.mean,
            Metric::MeanAttempts => rates.mean_attempts,
            Metric::WastedRetryRate => rates.wasted_retry_rate,
        };
        let pass = g.passes(observed);
        let bound = match g.bound {
            GateBound::Min => "min",
            GateBound::Max => "max",
        };
        if !pass {
            reasons.push(format!("{} {observed} breaks `{bound} {}`", g.metric.as_str(), g.value));
        }
        checks.push(GateCheck {
            metric: g.metric.as_str().to_string(),
            bound: bound.to_string(),
            threshold: g.value,
            observed,
            pass,
        });
    }
    for f in &safety.findings {
        reasons
            .push(format!("release-blocking: {} in request `{}` (seq {}): {}", f.kind, f.request_id, f.seq, f.detail));
    }
    if totals.cases == 0 {
        reasons.push("no cases were replayed".to_string());
    }
    let verdict = if reasons.is_empty() { "promote" } else { "reject" };
    Gate { verdict: verdict.to_string(), checks, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = distribution((1..=100).map(f64::from).collect());
        assert_eq!((d.p50, d.p95, d.max, d.total), (50.0, 95.0, 100.0, 5050.0));
        let one = distribution(vec![7.0]);
        assert_eq!((one.p50, one.p95), (7.0, 7.0));
        assert_eq!(distribution(Vec::new()), Distribution::default());
    }

    #[test]
    fn ratios_handle_zero_denominators() {
        assert_eq!(ratio(1, 0), 0.0);
        assert_eq!(ratio(1, 3), 0.333333);
    }
}
