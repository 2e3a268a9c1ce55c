//! `trace.ndjson`: one line per decision, one per finished case and one per
//! rejected input line, each stamped with the policy's name, version and
//! hash. `docs/replay.md` documents the record types.

use std::io::{self, Write};

use serde::Serialize;

use crate::runtime::ingress::Rejection;
use crate::runtime::replay::{CaseResult, DecisionRecord, Status};

use super::report::PolicyStamp;

#[derive(Serialize)]
struct DecisionLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    record: &'a DecisionRecord,
    policy: &'a PolicyStamp,
}

#[derive(Serialize)]
struct CaseLine<'a> {
    r#type: &'static str,
    request_id: &'a str,
    first_line: u64,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    fallback_recovery: bool,
    decisions: usize,
    calls: u32,
    latency_ms: f64,
    cost_usd: f64,
    simulated: bool,
    alternative: bool,
    policy: &'a PolicyStamp,
}

#[derive(Serialize)]
struct RejectedLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    rejection: &'a Rejection,
    policy: &'a PolicyStamp,
}

/// Writes the trace records of one case: its decisions, then the case line.
pub fn write_case(out: &mut impl Write, case: &CaseResult, policy: &PolicyStamp) -> io::Result<()> {
    for record in &case.decisions {
        serde_json::to_writer(&mut *out, &DecisionLine { r#type: "decision", record, policy })?;
        out.write_all(b"\n")?;
    }
    let line = CaseLine {
        r#type: "case",
        request_id: &case.request_id,
        first_line: case.first_line,
        status: case.status,
        reason: case.reason.as_deref(),
        fallback_recovery: case.fallback_recovery,
        decisions: case.decisions.len(),
        calls: case.calls,
        latency_ms: super::report::round(case.latency_ms),
        cost_usd: super::report::round(case.cost_usd),
        simulated: case.simulated,
        alternative: case.alternative,
        policy,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

pub fn write_rejection(out: &mut impl Write, rejection: &Rejection, policy: &PolicyStamp) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &RejectedLine { r#type: "rejected", rejection, policy })?;
    out.write_all(b"\n")
}
