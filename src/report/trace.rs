//! `trace.ndjson`: one line per decision, one per finished case and one per
//! rejected input line, each stamped with the policy's name, version and
//! hash. `docs/replay.md` documents the record types.

use std::io;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::runtime::decide::{ActionOut, RuleRef};
use crate::runtime::ingress::Rejection;
use crate::runtime::replay::{CaseResult, DecisionRecord, Status};
use crate::runtime::state::State;

use super::report::PolicyStamp;

/// The derived form of a decision line, which [`Encoder::decision`] writes by hand.
#[cfg(test)]
#[derive(Serialize)]
struct DecisionLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    record: &'a DecisionRecord,
    policy: &'a RawValue,
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
    policy: &'a RawValue,
}

#[derive(Serialize)]
struct RejectedLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    rejection: &'a Rejection,
    policy: &'a RawValue,
}

/// Encodes trace records into byte buffers. The policy stamp, the same on
/// every line, is encoded once. Encoding into a caller's buffer lets worker
/// threads encode cases while one thread writes them in input order.
#[derive(Debug, Clone)]
pub struct Encoder {
    stamp: Box<RawValue>,
}

impl Encoder {
    pub fn new(policy: &PolicyStamp) -> Result<Self, serde_json::Error> {
        Ok(Encoder { stamp: serde_json::value::to_raw_value(policy)? })
    }

    /// Appends the records of one case: its decisions, then the case line.
    pub fn case(&self, out: &mut Vec<u8>, case: &CaseResult) -> io::Result<()> {
        let policy = &*self.stamp;
        for record in &case.decisions {
            self.decision(out, record)?;
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
        out.push(b'\n');
        Ok(())
    }

    /// Appends one decision line: the bytes `serde_json` gives for a
    /// [`DecisionLine`], written field by field. Most of a trace is these
    /// lines, and writing the fixed keys as literals instead of escaping them
    /// each time is the larger part of the saving. Strings, integers and
    /// booleans are written directly in `serde_json`'s form, other values go
    /// through it; a test holds the whole line to the derived form.
    pub fn decision(&self, out: &mut Vec<u8>, r: &DecisionRecord) -> io::Result<()> {
        out.extend_from_slice(b"{\"type\":\"decision\",\"request_id\":");
        put_str(out, &r.request_id)?;
        out.extend_from_slice(b",\"seq\":");
        put_int(out, r.seq);
        out.extend_from_slice(b",\"line\":");
        match r.line {
            Some(l) => put_int(out, l),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"call_source\":");
        put(out, &r.call_source)?;
        out.extend_from_slice(b",\"step\":");
        put_int(out, r.step);
        let d = &r.decision;
        out.extend_from_slice(b",\"trigger\":");
        put(out, &d.trigger)?;
        out.extend_from_slice(b",\"class\":");
        put_opt_str(out, d.class.as_deref())?;
        if let Some(rule) = &d.classify_rule {
            out.extend_from_slice(b",\"classify_rule\":");
            rule_ref(out, rule)?;
        }
        out.extend_from_slice(b",\"rule\":");
        rule_ref(out, &d.rule)?;
        out.extend_from_slice(b",\"action\":");
        action(out, &d.action)?;
        out.extend_from_slice(b",\"reason\":");
        put_str(out, &d.reason)?;
        out.extend_from_slice(b",\"severity\":");
        put_str(out, d.severity.as_str())?;
        if let Some(o) = &d.overridden {
            out.extend_from_slice(b",\"overridden\":");
            put(out, o)?;
        }
        if !d.invariant_violations.is_empty() {
            out.extend_from_slice(b",\"invariant_violations\":");
            put(out, &d.invariant_violations)?;
        }
        match &r.outcome {
            None => out.extend_from_slice(b",\"outcome\":null"),
            Some(o) => {
                out.extend_from_slice(b",\"outcome\":{\"source\":");
                put(out, &o.source)?;
                out.extend_from_slice(b",\"result\":");
                put_str(out, o.result.as_str())?;
                out.extend_from_slice(b",\"key\":");
                put_str(out, &o.key)?;
                out.push(b'}');
            }
        }
        out.extend_from_slice(b",\"fleet\":{\"breaker_open\":");
        put_bool(out, r.fleet.breaker_open);
        out.extend_from_slice(b",\"retry_budget_exhausted\":");
        put_bool(out, r.fleet.retry_budget_exhausted);
        out.extend_from_slice(b"},\"state\":");
        state(out, &r.state)?;
        out.extend_from_slice(b",\"policy\":");
        out.extend_from_slice(self.stamp.get().as_bytes());
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    /// Appends the record of one rejected input line.
    pub fn rejection(&self, out: &mut Vec<u8>, rejection: &Rejection) -> io::Result<()> {
        serde_json::to_writer(&mut *out, &RejectedLine { r#type: "rejected", rejection, policy: &self.stamp })?;
        out.push(b'\n');
        Ok(())
    }
}

/// One value as `serde_json` writes it.
fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)
}

/// A string as `serde_json` writes it. It escapes only `"`, `\` and
/// control characters; a string without them (nearly every name, reason
/// and id) is copied between quotes as it is.
fn put_str(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        put(out, s)
    }
}

/// Whether any byte is a control character, `"` or `\\`: eight bytes at a
/// time (a byte is flagged when it is below 0x20 or, XORed with the quote
/// or the backslash, zero).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let x = u64::from_le_bytes(word);
        if below(x, 0x20) || below(x ^ (ONES * u64::from(b'"')), 1) || below(x ^ (ONES * u64::from(b'\\')), 1) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => put_str(out, s),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// An integer as `serde_json` writes it (both use `itoa`).
fn put_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn put_strs(out: &mut Vec<u8>, items: &[String]) -> io::Result<()> {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, s)?;
    }
    out.push(b']');
    Ok(())
}

fn rule_ref(out: &mut Vec<u8>, r: &RuleRef) -> io::Result<()> {
    out.extend_from_slice(b"{\"block\":");
    put_str(out, &r.block)?;
    if let Some(i) = r.index {
        out.extend_from_slice(b",\"index\":");
        put_int(out, i);
    }
    if let Some(l) = r.line {
        out.extend_from_slice(b",\"line\":");
        put_int(out, l);
    }
    out.extend_from_slice(b",\"span\":{\"start\":");
    put_int(out, r.span.start);
    out.extend_from_slice(b",\"end\":");
    put_int(out, r.span.end);
    out.extend_from_slice(b"}}");
    Ok(())
}

fn action(out: &mut Vec<u8>, a: &ActionOut) -> io::Result<()> {
    fn opt<T: Serialize>(out: &mut Vec<u8>, key: &[u8], v: &Option<T>) -> io::Result<()> {
        if let Some(v) = v {
            out.extend_from_slice(key);
            put(out, v)?;
        }
        Ok(())
    }
    out.extend_from_slice(b"{\"kind\":");
    put_str(out, a.kind.as_str())?;
    opt(out, b",\"delay_ms\":", &a.delay_ms)?;
    for (key, v) in [
        (&b",\"strategy\":"[..], &a.strategy),
        (b",\"model\":", &a.model),
        (b",\"provider_model\":", &a.provider_model),
    ] {
        if let Some(v) = v {
            out.extend_from_slice(key);
            put_str(out, v)?;
        }
    }
    opt(out, b",\"reset\":", &a.reset)?;
    opt(out, b",\"prompt\":", &a.prompt)?;
    opt(out, b",\"then\":", &a.then)?;
    opt(out, b",\"queue\":", &a.queue)?;
    out.push(b'}');
    Ok(())
}

fn state(out: &mut Vec<u8>, s: &State) -> io::Result<()> {
    out.extend_from_slice(b"{\"attempt\":");
    put_int(out, s.attempt);
    out.extend_from_slice(b",\"steps_done\":");
    put_int(out, s.steps_done);
    out.extend_from_slice(b",\"class_attempts\":");
    out.push(b'{');
    for (i, (class, n)) in s.class_attempts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, class)?;
        out.push(b':');
        put_int(out, *n);
    }
    out.push(b'}');
    out.extend_from_slice(b",\"calls\":");
    put_int(out, s.calls);
    out.extend_from_slice(b",\"cost_usd\":");
    put(out, &s.cost_usd)?;
    out.extend_from_slice(b",\"latency_ms\":");
    put(out, &s.latency_ms)?;
    out.extend_from_slice(b",\"models_tried\":");
    put_strs(out, &s.models_tried)?;
    out.extend_from_slice(b",\"strategies_tried\":");
    put_strs(out, &s.strategies_tried)?;
    out.extend_from_slice(b",\"retries\":");
    put_int(out, s.retries);
    out.extend_from_slice(b",\"fallbacks\":");
    put_int(out, s.fallbacks);
    out.extend_from_slice(b",\"resets\":");
    put_int(out, s.resets);
    out.extend_from_slice(b",\"escalations\":");
    put_int(out, s.escalations);
    out.extend_from_slice(b",\"decisions\":");
    put_int(out, s.decisions);
    out.extend_from_slice(b",\"model\":");
    put_opt_str(out, s.model.as_deref())?;
    out.extend_from_slice(b",\"strategy\":");
    put_opt_str(out, s.strategy.as_deref())?;
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::decide::{Decision, Override, PromptRef, Trigger};
    use crate::runtime::event::Outcome;
    use crate::runtime::replay::{ActionOutcome, Source};
    use crate::runtime::state::FleetView;
    use crate::span::Span;
    use crate::syntax::ast::{ActionKind, ResetScope, Severity};

    fn derived(encoder: &Encoder, record: &DecisionRecord) -> Vec<u8> {
        let mut v = serde_json::to_vec(&DecisionLine { r#type: "decision", record, policy: &encoder.stamp }).unwrap();
        v.push(b'\n');
        v
    }

    fn rule(block: &str, index: Option<usize>, line: Option<usize>) -> RuleRef {
        RuleRef { block: block.to_string().into(), index, line, span: Span::new(3, 9) }
    }

    #[test]
    fn needs_escape_flags_exactly_what_serde_json_escapes() {
        for b in 0..=255u8 {
            for len in [1, 7, 8, 9, 16, 17] {
                for at in [0, len / 2, len - 1] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let want = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&bytes), want, "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape(b""));
        assert!(!needs_escape("caf\u{e9} \u{7f}\u{2028} ok".as_bytes()));
    }

    /// Every optional part present, then every optional part absent, with
    /// strings that need escaping and numbers that are not integers.
    #[test]
    fn decision_lines_match_the_derived_form() {
        let stamp = PolicyStamp { name: "p\"q".into(), version: "1.0.0".into(), hash: "sha256:ab".into() };
        let encoder = Encoder::new(&stamp).unwrap();
        let mut state = State::default();
        state.class_attempts.insert("rate\nlimited".into(), 2);
        state.models_tried = vec!["primary".into(), "backup\u{1}".into()];
        state.cost_usd = 0.1 + 0.2;
        state.latency_ms = f64::NAN;
        state.model = Some("primary".into());
        state.class_attempts.insert("timeout".into(), 1);
        state.strategies_tried = vec!["a\"b".into(), "c".into()];
        state.strategy = Some("s\\".into());
        let full = DecisionRecord {
            request_id: "r\\1\u{7f}é".into(),
            seq: u64::MAX,
            line: Some(7),
            call_source: Source::Simulated,
            step: 3,
            decision: Decision {
                trigger: Trigger::Accept,
                class: Some("timeout".into()),
                classify_rule: Some(rule("classify", Some(1), Some(12))),
                rule: rule("recover", None, None),
                action: ActionOut {
                    kind: ActionKind::Reset,
                    delay_ms: Some(1.5e-7),
                    strategy: Some("step\"by\tstep".into()),
                    model: Some("backup".into()),
                    provider_model: Some("gpt-4o".into()),
                    reset: Some(ResetScope::Scratchpad),
                    prompt: Some(PromptRef { id: "p".into(), text: "line\n\t\"x\"".into(), sha256: "00".into() }),
                    then: Some(ActionKind::Fallback),
                    queue: Some("ops".into()),
                },
                reason: "RESET_\u{2028}".into(),
                severity: Severity::Critical,
                overridden: Some(Override {
                    by: "budget.attempts".into(),
                    replaced: rule("recover", Some(0), Some(3)),
                    wanted: ActionKind::Retry,
                }),
                invariant_violations: vec!["a".into(), "b\"".into()],
            },
            outcome: Some(ActionOutcome {
                source: Source::Alternative,
                result: Outcome::Error,
                key: "reset:scratchpad".into(),
            }),
            fleet: FleetView { breaker_open: true, retry_budget_exhausted: false },
            state,
        };
        let mut out = Vec::new();
        encoder.decision(&mut out, &full).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(derived(&encoder, &full)).unwrap());

        let bare = DecisionRecord {
            line: None,
            decision: Decision {
                class: None,
                classify_rule: None,
                action: crate::runtime::decide::escalate_action(),
                overridden: None,
                invariant_violations: Vec::new(),
                ..full.decision.clone()
            },
            outcome: None,
            state: State::default(),
            ..full.clone()
        };
        let mut out = Vec::new();
        encoder.decision(&mut out, &bare).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(derived(&encoder, &bare)).unwrap());
    }
}
