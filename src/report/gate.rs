//! The release gate: a baseline and a candidate policy replayed over the
//! same inputs, seed and world, compared against thresholds and the
//! release-blocking rules. Builds `gate.json` (schema `rcv.gate/2`) and the
//! `gate.md` section; no I/O.
//!
//! Release-blocking whatever the thresholds:
//! * a high-risk case escalated under the baseline and not under the candidate;
//! * a safety finding of the candidate (`invariant_violated`, `high_risk_not_escalated`);
//! * an invariant diagnostic of the candidate's compiler (an error rejects it outright);
//! * more decisions with a critical-severity reason under the candidate;
//! * a decision whose attempt count exceeds the candidate's `budget.attempts`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::replay_set::{self, Flip, Replayed};
use crate::check::ir::{CheckedPolicy, GateIr, Metric};
use crate::runtime::event::Risk;
use crate::runtime::replay::{CaseResult, Status};
use crate::syntax::ast::{GateBound, Severity};

pub const SCHEMA: &str = "rcv.gate/2";

/// One threshold: `min` or `max` of a metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    pub metric: String,
    pub bound: String,
    pub value: f64,
}

impl Threshold {
    pub fn from_gate(g: &GateIr) -> Threshold {
        let bound = match g.bound {
            GateBound::Min => "min",
            GateBound::Max => "max",
        };
        Threshold { metric: g.metric.as_str().to_string(), bound: bound.to_string(), value: g.value }
    }

    pub fn passes(&self, observed: f64) -> bool {
        if self.bound == "min" { observed >= self.value } else { observed <= self.value }
    }
}

/// A thresholds file: `{min: {metric: value}, max: {metric: value}}`, with
/// the metric names of the `gate` block (rates as 0..1, latencies in ms,
/// cost in USD).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsFile {
    #[serde(default)]
    pub min: indexmap::IndexMap<String, f64>,
    #[serde(default)]
    pub max: indexmap::IndexMap<String, f64>,
}

impl ThresholdsFile {
    pub fn parse(text: &str) -> Result<Vec<Threshold>, String> {
        let f: ThresholdsFile = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (bound, map) in [("min", &f.min), ("max", &f.max)] {
            for (metric, value) in map {
                if Metric::from_name(metric).is_none() {
                    let known: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
                    return Err(format!("unknown metric `{metric}` (known: {})", known.join(", ")));
                }
                out.push(Threshold { metric: metric.clone(), bound: bound.to_string(), value: *value });
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stamp {
    pub name: String,
    pub version: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputRef {
    pub path: String,
    /// `blake3:<hex>` of the input's bytes.
    pub digest: String,
}

/// One metric on both sides, with its threshold when one applies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    pub metric: String,
    pub baseline: f64,
    /// `None` when the candidate was not replayed (it does not compile).
    pub candidate: Option<f64>,
    pub thresholds: Vec<Threshold>,
    pub pass: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counts {
    pub cases: u64,
    pub critical_decisions_baseline: u64,
    pub critical_decisions_candidate: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    pub schema: String,
    /// `promote` or `reject`.
    pub verdict: String,
    /// Every reason for `reject`.
    pub reasons: Vec<String>,
    pub baseline: Stamp,
    /// `None` when the candidate does not compile.
    pub candidate: Option<Stamp>,
    pub seed: u64,
    pub world_digest: String,
    pub inputs: Vec<InputRef>,
    /// Where the thresholds came from: `candidate gate block`, a file, or `none`.
    pub thresholds_from: String,
    pub metrics: Vec<MetricRow>,
    pub counts: Option<Counts>,
    /// Cases whose outcome differs, baseline -> candidate.
    pub flips: Vec<Flip>,
}

/// What the gate compares.
pub struct Side<'a> {
    pub policy: &'a CheckedPolicy,
    pub stamp: Stamp,
    pub replay: &'a Replayed,
}

/// Common fields of every gate report.
pub struct Context {
    pub seed: u64,
    pub world_digest: String,
    pub inputs: Vec<InputRef>,
    pub thresholds_from: String,
    /// The candidate's compiler diagnostics about invariants (warnings such
    /// as an engine limit that may violate one), each release-blocking.
    pub invariant_diagnostics: Vec<String>,
}

/// Decisions whose reason has critical severity (as the deciding policy declares it).
pub fn critical_decisions(cases: &[CaseResult]) -> u64 {
    cases.iter().flat_map(|c| &c.decisions).filter(|d| d.decision.severity == Severity::Critical).count() as u64
}

/// Decisions taken at an attempt count above `cap` (the engine enforces the
/// cap, so this is a safety net for the engine itself).
pub fn cap_breaches(cap: Option<u32>, cases: &[CaseResult]) -> Vec<String> {
    let Some(cap) = cap else { return Vec::new() };
    cases
        .iter()
        .filter_map(|c| {
            let worst = c.decisions.iter().map(|d| d.state.attempt).max()?;
            (worst > cap).then(|| {
                format!(
                    "release-blocking: request `{}` reached attempt {worst}, above `budget.attempts {cap}`",
                    c.request_id
                )
            })
        })
        .collect()
}

/// High-risk cases escalated under the baseline but not under the candidate.
pub fn lost_escalations(baseline: &[CaseResult], candidate: &[CaseResult]) -> Vec<String> {
    baseline
        .iter()
        .zip(candidate)
        .filter(|(a, b)| {
            a.request_id == b.request_id
                && a.risk.is_some_and(|r| r >= Risk::High)
                && a.status == Status::Escalated
                && b.status != Status::Escalated
        })
        .map(|(a, b)| {
            format!(
                "release-blocking: high-risk request `{}` loses its escalation: escalated ({}) -> {}",
                a.request_id,
                a.reason.as_deref().unwrap_or("-"),
                b.status.as_str()
            )
        })
        .collect()
}

fn metric_rows(baseline: &Replayed, candidate: Option<&Replayed>, thresholds: &[Threshold]) -> Vec<MetricRow> {
    replay_set::METRICS
        .iter()
        .map(|(name, f)| {
            let ts: Vec<Threshold> = thresholds.iter().filter(|t| t.metric == *name).cloned().collect();
            let cand = candidate.map(|c| f(&c.report));
            let pass = cand.is_none_or(|v| ts.iter().all(|t| t.passes(v)));
            MetricRow { metric: name.to_string(), baseline: f(&baseline.report), candidate: cand, thresholds: ts, pass }
        })
        .collect()
}

/// The gate over two replays.
pub fn evaluate(baseline: Side<'_>, candidate: Side<'_>, thresholds: &[Threshold], ctx: Context) -> GateReport {
    let mut reasons = Vec::new();
    let metrics = metric_rows(baseline.replay, Some(candidate.replay), thresholds);
    for m in &metrics {
        for t in &m.thresholds {
            if let Some(v) = m.candidate
                && !t.passes(v)
            {
                reasons.push(format!("{} {v} breaks `{} {}`", m.metric, t.bound, t.value));
            }
        }
    }
    let (bc, cc) = (&baseline.replay.cases, &candidate.replay.cases);
    reasons.extend(lost_escalations(bc, cc));
    for d in &ctx.invariant_diagnostics {
        reasons.push(format!("release-blocking: the candidate's compiler reports {d}"));
    }
    for f in &candidate.replay.report.safety.findings {
        reasons
            .push(format!("release-blocking: {} in request `{}` (seq {}): {}", f.kind, f.request_id, f.seq, f.detail));
    }
    let crit_b = critical_decisions(bc);
    let crit_c = critical_decisions(cc);
    if crit_c > crit_b {
        reasons.push(format!(
            "release-blocking: decisions with a critical-severity reason rise from {crit_b} to {crit_c}"
        ));
    }
    reasons.extend(cap_breaches(candidate.policy.budget.attempts, cc));
    if candidate.replay.report.totals.cases == 0 {
        reasons.push("no cases were replayed".to_string());
    }
    let verdict = if reasons.is_empty() { "promote" } else { "reject" };
    GateReport {
        schema: SCHEMA.to_string(),
        verdict: verdict.to_string(),
        reasons,
        baseline: baseline.stamp,
        candidate: Some(candidate.stamp),
        seed: ctx.seed,
        world_digest: ctx.world_digest,
        inputs: ctx.inputs,
        thresholds_from: ctx.thresholds_from,
        metrics,
        counts: Some(Counts {
            cases: candidate.replay.report.totals.cases,
            critical_decisions_baseline: crit_b,
            critical_decisions_candidate: crit_c,
        }),
        flips: replay_set::flips(bc, cc),
    }
}

/// The gate when the candidate does not compile: reject, with the
/// compiler's errors as the reasons.
pub fn not_compiled(baseline: Side<'_>, errors: Vec<String>, thresholds: &[Threshold], ctx: Context) -> GateReport {
    let reasons =
        errors.into_iter().map(|e| format!("release-blocking: the candidate does not compile: {e}")).collect();
    GateReport {
        schema: SCHEMA.to_string(),
        verdict: "reject".to_string(),
        reasons,
        baseline: baseline.stamp,
        candidate: None,
        seed: ctx.seed,
        world_digest: ctx.world_digest,
        inputs: ctx.inputs,
        thresholds_from: ctx.thresholds_from,
        metrics: metric_rows(baseline.replay, None, thresholds),
        counts: None,
        flips: Vec::new(),
    }
}

/// `gate.md`: the section for the operations summary or a PR comment.
pub fn markdown(g: &GateReport) -> String {
    let mut s = String::new();
    let verdict = if g.verdict == "promote" { "PROMOTE" } else { "REJECT" };
    let _ = writeln!(s, "## Release gate: {verdict}\n");
    let _ = writeln!(s, "- baseline: {} {} `{}`", g.baseline.name, g.baseline.version, g.baseline.hash);
    match &g.candidate {
        Some(c) => {
            let _ = writeln!(s, "- candidate: {} {} `{}`", c.name, c.version, c.hash);
        }
        None => {
            let _ = writeln!(s, "- candidate: does not compile");
        }
    }
    let _ = writeln!(s, "- seed {} · {} inputs · thresholds: {}", g.seed, g.inputs.len(), g.thresholds_from);
    if let Some(c) = &g.counts {
        let _ = writeln!(
            s,
            "- {} cases · critical-severity decisions {} -> {}",
            c.cases, c.critical_decisions_baseline, c.critical_decisions_candidate
        );
    }
    if !g.reasons.is_empty() {
        let _ = writeln!(s, "\n### Reasons\n");
        for r in &g.reasons {
            let _ = writeln!(s, "- {r}");
        }
    }
    let _ = writeln!(s, "\n### Metrics\n");
    let _ = writeln!(s, "| metric | baseline | candidate | threshold | |\n|---|---:|---:|---|---|");
    for m in &g.metrics {
        let cand = m.candidate.map_or("-".to_string(), |v| v.to_string());
        let th: Vec<String> = m.thresholds.iter().map(|t| format!("{} {}", t.bound, t.value)).collect();
        let mark = if m.thresholds.is_empty() || m.candidate.is_none() {
            ""
        } else if m.pass {
            "ok"
        } else {
            "FAIL"
        };
        let _ = writeln!(s, "| {} | {} | {cand} | {} | {mark} |", m.metric, m.baseline, th.join(", "));
    }
    if !g.flips.is_empty() {
        let _ = writeln!(s, "\n### Cases that change outcome ({})\n", g.flips.len());
        for f in &g.flips {
            let _ = writeln!(s, "- `{}`: {} -> {}", f.request_id, f.before.as_str(), f.after.as_str());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::decide::Decision;
    use crate::runtime::replay::{DecisionRecord, Source};
    use crate::runtime::state::State;

    fn case(id: &str, attempts: &[u32]) -> CaseResult {
        let decision: Decision = serde_json::from_value(serde_json::json!({
            "trigger": "error", "class": "timeout", "action": {"kind": "retry"}, "reason": "RETRY", "severity": "info",
            "rule": {"block": "recover", "index": 0, "span": {"start": 0, "end": 1}},
            "invariant_violations": []
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let decisions = attempts
            .iter()
            .map(|a| DecisionRecord {
                request_id: id.into(),
                seq: 1,
                line: Some(1),
                call_source: Source::Recorded,
                step: 0,
                decision: decision.clone(),
                outcome: None,
                fleet: Default::default(),
                state: State { attempt: *a, ..State::default() },
            })
            .collect();
        CaseResult {
            request_id: id.into(),
            first_line: 1,
            risk: Some(Risk::High),
            status: Status::Escalated,
            reason: Some("HIGH_RISK".into()),
            fallback_recovery: false,
            calls: 1,
            latency_ms: 0.0,
            cost_usd: 0.0,
            simulated: false,
            alternative: false,
            high_risk_side_effect: false,
            decisions,
            safety: Vec::new(),
        }
    }

    #[test]
    fn cap_breach_is_found_in_a_constructed_case() {
        let cases = [case("ok", &[1, 2, 3]), case("over", &[1, 4])];
        let found = cap_breaches(Some(3), &cases);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("`over` reached attempt 4"), "{found:?}");
        assert!(cap_breaches(None, &cases).is_empty());
        assert!(cap_breaches(Some(4), &cases).is_empty());
    }

    #[test]
    fn lost_escalation_only_for_high_risk() {
        let a = [case("r1", &[1])];
        let mut b = a.clone();
        b[0].status = Status::AutoRecovered;
        assert_eq!(lost_escalations(&a, &b).len(), 1);
        let mut low = a.clone();
        low[0].risk = Some(Risk::Low);
        assert!(lost_escalations(&low, &b).is_empty());
    }

    #[test]
    fn thresholds_file_parses_and_rejects_unknown_metrics() {
        let t = ThresholdsFile::parse("min: {auto_recovered_rate: 0.5}\nmax: {p95_latency: 20000}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.len(), 2);
        assert!(t[0].passes(0.5) && !t[0].passes(0.4));
        assert!(t[1].passes(20000.0) && !t[1].passes(20001.0));
        assert!(ThresholdsFile::parse("min: {speed: 1}").is_err());
    }
}
