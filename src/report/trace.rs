//! `trace.ndjson`: one line per decision, one per finished case and one per
//! rejected input line, each stamped with the policy's name, version and
//! hash. `docs/replay.md` documents the record types.

use std::io;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::runtime::decide::{ActionOut, RuleRef, Trigger};
use crate::runtime::ingress::Rejection;
#[cfg(test)]
use crate::runtime::replay::Status;
use crate::runtime::replay::{CaseResult, DecisionRecord, Source};
use crate::runtime::state::State;

use super::report::{Accumulator, PolicyStamp};

/// The derived form of a decision line, which [`Encoder::decision`] writes by hand.
#[cfg(test)]
#[derive(Serialize)]
struct DecisionLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    record: &'a DecisionRecord,
    policy: &'a RawValue,
}

/// The derived form of a case line, which [`Encoder::case`] writes by hand.
#[cfg(test)]
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
    /// `,"policy":` and the stamp, then the end of the line: the same
    /// bytes end every decision and case line.
    tail: Box<[u8]>,
}

/// What `rcv run` makes of each replayed result, on the thread that
/// replayed it: its trace lines and its counts in the report's tally.
pub struct RunRecords(pub Encoder);

impl crate::runtime::driver::Encode for RunRecords {
    type Tally = Accumulator;

    fn case(&self, result: CaseResult, out: &mut Vec<u8>, acc: &mut Accumulator) -> io::Result<()> {
        acc.add_case(&result);
        self.0.case(out, &result)
    }

    fn rejected(&self, rejection: Rejection, out: &mut Vec<u8>, acc: &mut Accumulator) -> io::Result<()> {
        acc.add_rejection(&rejection);
        self.0.rejection(out, &rejection)
    }
}

impl Encoder {
    pub fn new(policy: &PolicyStamp) -> Result<Self, serde_json::Error> {
        let stamp = serde_json::value::to_raw_value(policy)?;
        let tail = [&b",\"policy\":"[..], stamp.get().as_bytes(), b"}\n"].concat().into_boxed_slice();
        Ok(Encoder { stamp, tail })
    }

    /// Appends the records of one case: its decisions, then the case line.
    /// The case line is written field by field like a decision line; a test
    /// holds it to the derived [`CaseLine`].
    pub fn case(&self, out: &mut Vec<u8>, case: &CaseResult) -> io::Result<()> {
        for record in &case.decisions {
            self.decision(out, record)?;
        }
        out.extend_from_slice(b"{\"type\":\"case\",\"request_id\":");
        put_str(out, &case.request_id)?;
        out.extend_from_slice(b",\"first_line\":");
        put_u64(out, case.first_line);
        out.extend_from_slice(b",\"status\":");
        put_name(out, case.status.as_str());
        if let Some(reason) = &case.reason {
            out.extend_from_slice(b",\"reason\":");
            put_str(out, reason)?;
        }
        out.extend_from_slice(b",\"fallback_recovery\":");
        put_bool(out, case.fallback_recovery);
        out.extend_from_slice(b",\"decisions\":");
        put_usize(out, case.decisions.len());
        out.extend_from_slice(b",\"calls\":");
        put_u64(out, case.calls.into());
        out.extend_from_slice(b",\"latency_ms\":");
        put_f64(out, super::report::round(case.latency_ms));
        out.extend_from_slice(b",\"cost_usd\":");
        put_f64(out, super::report::round(case.cost_usd));
        out.extend_from_slice(b",\"simulated\":");
        put_bool(out, case.simulated);
        out.extend_from_slice(b",\"alternative\":");
        put_bool(out, case.alternative);
        out.extend_from_slice(&self.tail);
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
        put_u64(out, r.seq);
        out.extend_from_slice(b",\"line\":");
        match r.line {
            Some(l) => put_u64(out, l),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(match r.call_source {
            Source::Recorded => &b",\"call_source\":\"recorded\",\"step\":"[..],
            Source::Alternative => b",\"call_source\":\"alternative\",\"step\":",
            Source::Simulated => b",\"call_source\":\"simulated\",\"step\":",
        });
        put_u64(out, r.step.into());
        let d = &r.decision;
        out.extend_from_slice(match d.trigger {
            Trigger::Error => &b",\"trigger\":\"error\",\"class\":"[..],
            Trigger::Accept => b",\"trigger\":\"accept\",\"class\":",
        });
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
        put_name(out, d.severity.as_str());
        if let Some(o) = &d.overridden {
            out.extend_from_slice(b",\"overridden\":{\"by\":");
            put_str(out, &o.by)?;
            out.extend_from_slice(b",\"replaced\":");
            rule_ref(out, &o.replaced)?;
            out.extend_from_slice(b",\"wanted\":");
            put_name(out, o.wanted.as_str());
            out.push(b'}');
        }
        if !d.invariant_violations.is_empty() {
            out.extend_from_slice(b",\"invariant_violations\":");
            put_strs(out, &d.invariant_violations)?;
        }
        match &r.outcome {
            None => out.extend_from_slice(b",\"outcome\":null"),
            Some(o) => {
                out.extend_from_slice(b",\"outcome\":{\"source\":");
                put_name(out, source_str(o.source));
                out.extend_from_slice(b",\"result\":");
                put_name(out, o.result.as_str());
                out.extend_from_slice(b",\"key\":");
                put_str(out, &o.key)?;
                out.push(b'}');
            }
        }
        out.extend_from_slice(match (r.fleet.breaker_open, r.fleet.retry_budget_exhausted) {
            (false, false) => &b",\"fleet\":{\"breaker_open\":false,\"retry_budget_exhausted\":false},\"state\":"[..],
            (false, true) => b",\"fleet\":{\"breaker_open\":false,\"retry_budget_exhausted\":true},\"state\":",
            (true, false) => b",\"fleet\":{\"breaker_open\":true,\"retry_budget_exhausted\":false},\"state\":",
            (true, true) => b",\"fleet\":{\"breaker_open\":true,\"retry_budget_exhausted\":true},\"state\":",
        });
        state(out, &r.state)?;
        out.extend_from_slice(&self.tail);
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
/// or the backslash, zero). The last eight bytes of a longer string are
/// checked as one word overlapping the one before; a string of four to
/// seven bytes as two overlapping words of four.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let flagged =
        |x: u64| below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1);
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    let n = bytes.len();
    if n >= 8 {
        let mut chunks = bytes.chunks_exact(8);
        if chunks.any(|c| flagged(word(c))) {
            return true;
        }
        !n.is_multiple_of(8) && flagged(word(&bytes[n - 8..]))
    } else if n >= 4 {
        // Two words of four bytes, the second repeating the first's
        // bytes in its high half: a word of eight with every byte checked.
        let half = |c: &[u8]| {
            let mut w = [0u8; 4];
            w.copy_from_slice(c);
            u64::from(u32::from_le_bytes(w))
        };
        flagged(half(&bytes[..4]) | half(&bytes[n - 4..]) << 32)
    } else {
        bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
    }
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

/// An enum's serialized name, which needs no escaping (a test holds every
/// name to `serde_json`), between quotes.
fn put_name(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// An integer as `serde_json` writes it (both use `itoa`). Most integers in
/// a trace (attempts, counters, steps, lines, spans) have at most four
/// digits, which are written as a fixed-size group without a copy of
/// variable length.
fn put_u64(out: &mut Vec<u8>, n: u64) {
    let digit = |n: u64| b'0' + (n % 10) as u8;
    if n < 10 {
        out.push(digit(n));
    } else if n < 100 {
        out.extend_from_slice(&[digit(n / 10), digit(n)]);
    } else if n < 1000 {
        out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]);
    } else if n < 10_000 {
        out.extend_from_slice(&[digit(n / 1000), digit(n / 100), digit(n / 10), digit(n)]);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

fn put_usize(out: &mut Vec<u8>, n: usize) {
    put_u64(out, n as u64);
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Magnitudes below which `zmij` writes a float in fixed notation rather
/// than with an exponent (it switches at a decimal exponent of 16: `1e+16`).
/// Every integral `f64` below it converts to `i64` exactly, and its shortest
/// round-trip digits are the integer's own.
const FIXED_LIMIT: f64 = 1e16;

/// A float as `serde_json` writes it: its own formatter (`zmij`) for finite
/// values, `null` for NaN and the infinities. Integral values below
/// [`FIXED_LIMIT`] (delays, latencies and costs mostly are) come out of
/// `zmij` as the integer and `.0` (`-0.0` with its sign), which is written
/// here directly; a test holds this to `zmij` and `serde_json`.
fn put_f64(out: &mut Vec<u8>, x: f64) {
    if x.abs() < FIXED_LIMIT {
        let i = x as i64;
        if i as f64 == x {
            if x.is_sign_negative() {
                out.push(b'-');
            }
            put_u64(out, i.unsigned_abs());
            out.extend_from_slice(b".0");
            return;
        }
    }
    if x.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The serialized names of the unit enums in a trace line.
fn source_str(s: Source) -> &'static str {
    match s {
        Source::Recorded => "recorded",
        Source::Alternative => "alternative",
        Source::Simulated => "simulated",
    }
}

#[cfg(test)]
fn trigger_str(t: Trigger) -> &'static str {
    match t {
        Trigger::Error => "error",
        Trigger::Accept => "accept",
    }
}

fn put_strs(out: &mut Vec<u8>, items: &[impl AsRef<str>]) -> io::Result<()> {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, s.as_ref())?;
    }
    out.push(b']');
    Ok(())
}

fn rule_ref(out: &mut Vec<u8>, r: &RuleRef) -> io::Result<()> {
    out.extend_from_slice(b"{\"block\":");
    put_str(out, &r.block)?;
    if let Some(i) = r.index {
        out.extend_from_slice(b",\"index\":");
        put_usize(out, i);
    }
    if let Some(l) = r.line {
        out.extend_from_slice(b",\"line\":");
        put_usize(out, l);
    }
    out.extend_from_slice(b",\"span\":{\"start\":");
    put_usize(out, r.span.start);
    out.extend_from_slice(b",\"end\":");
    put_usize(out, r.span.end);
    out.extend_from_slice(b"}}");
    Ok(())
}

fn action(out: &mut Vec<u8>, a: &ActionOut) -> io::Result<()> {
    out.extend_from_slice(b"{\"kind\":");
    put_name(out, a.kind.as_str());
    if let Some(ms) = a.delay_ms {
        out.extend_from_slice(b",\"delay_ms\":");
        put_f64(out, ms);
    }
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
    if let Some(scope) = a.reset {
        out.extend_from_slice(b",\"reset\":");
        put_name(out, scope.as_str());
    }
    if let Some(p) = &a.prompt {
        out.extend_from_slice(b",\"prompt\":{\"id\":");
        put_str(out, &p.id)?;
        out.extend_from_slice(b",\"text\":");
        put_str(out, &p.text)?;
        out.extend_from_slice(b",\"sha256\":");
        put_str(out, &p.sha256)?;
        out.push(b'}');
    }
    if let Some(kind) = a.then {
        out.extend_from_slice(b",\"then\":");
        put_name(out, kind.as_str());
    }
    if let Some(q) = &a.queue {
        out.extend_from_slice(b",\"queue\":");
        put_str(out, q)?;
    }
    out.push(b'}');
    Ok(())
}

fn state(out: &mut Vec<u8>, s: &State) -> io::Result<()> {
    out.extend_from_slice(b"{\"attempt\":");
    put_u64(out, s.attempt.into());
    out.extend_from_slice(b",\"steps_done\":");
    put_u64(out, s.steps_done.into());
    out.extend_from_slice(b",\"class_attempts\":{");
    for (i, (class, n)) in s.class_attempts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, class)?;
        out.push(b':');
        put_u64(out, n.into());
    }
    out.extend_from_slice(b"},\"calls\":");
    put_u64(out, s.calls.into());
    out.extend_from_slice(b",\"cost_usd\":");
    put_f64(out, s.cost_usd);
    out.extend_from_slice(b",\"latency_ms\":");
    put_f64(out, s.latency_ms);
    out.extend_from_slice(b",\"models_tried\":");
    put_strs(out, &s.models_tried)?;
    out.extend_from_slice(b",\"strategies_tried\":");
    put_strs(out, &s.strategies_tried)?;
    out.extend_from_slice(b",\"retries\":");
    put_u64(out, s.retries.into());
    out.extend_from_slice(b",\"fallbacks\":");
    put_u64(out, s.fallbacks.into());
    out.extend_from_slice(b",\"resets\":");
    put_u64(out, s.resets.into());
    out.extend_from_slice(b",\"escalations\":");
    put_u64(out, s.escalations.into());
    out.extend_from_slice(b",\"decisions\":");
    put_u64(out, s.decisions.into());
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
    use crate::runtime::decide::{Decision, Override, PromptRef};
    use crate::runtime::event::Outcome;
    use crate::runtime::replay::ActionOutcome;
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
            for len in [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25] {
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

    /// A decision record with every optional part present, strings that
    /// need escaping and numbers that are not integers.
    fn full_record() -> DecisionRecord {
        let mut state = State::default();
        state.class_attempts.set("rate\nlimited", 2);
        state.models_tried = ["primary".into(), "backup\u{1}".into()].into();
        state.cost_usd = 0.1 + 0.2;
        state.latency_ms = f64::NAN;
        state.model = Some("primary".into());
        state.class_attempts.set("timeout", 1);
        state.strategies_tried = ["a\"b".into(), "c".into()].into();
        state.strategy = Some("s\\".into());
        DecisionRecord {
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
        }
    }

    /// Every optional part present, then every optional part absent, with
    /// strings that need escaping and numbers that are not integers.
    #[test]
    fn decision_lines_match_the_derived_form() {
        let stamp = PolicyStamp { name: "p\"q".into(), version: "1.0.0".into(), hash: "sha256:ab".into() };
        let encoder = Encoder::new(&stamp).unwrap();
        let full = full_record();
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

    fn stamp_encoder() -> Encoder {
        Encoder::new(&PolicyStamp { name: "p\"q".into(), version: "1.0.0".into(), hash: "sha256:ab".into() }).unwrap()
    }

    /// Sources, triggers, action kinds and scopes by name, every variant.
    #[test]
    fn enum_names_match_serde() {
        fn json<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap()
        }
        for s in [Source::Recorded, Source::Alternative, Source::Simulated] {
            assert_eq!(json(&s), format!("\"{}\"", source_str(s)));
        }
        for t in [Trigger::Error, Trigger::Accept] {
            assert_eq!(json(&t), format!("\"{}\"", trigger_str(t)));
        }
        for k in [ActionKind::Retry, ActionKind::Fallback, ActionKind::Reset, ActionKind::Escalate, ActionKind::Abort] {
            assert_eq!(json(&k), format!("\"{}\"", k.as_str()));
        }
        for r in [ResetScope::Context, ResetScope::Scratchpad, ResetScope::Checkpoint] {
            assert_eq!(json(&r), format!("\"{}\"", r.as_str()));
        }
        for s in [Status::Passed, Status::AutoRecovered, Status::Escalated, Status::Aborted] {
            assert_eq!(json(&s), format!("\"{}\"", s.as_str()));
        }
        for s in [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical] {
            assert_eq!(json(&s), format!("\"{}\"", s.as_str()));
        }
        for o in [Outcome::Ok, Outcome::Error] {
            assert_eq!(json(&o), format!("\"{}\"", o.as_str()));
        }
    }

    /// [`put_name`] writes names without escaping: every name it is given
    /// needs none, and it then gives `serde_json`'s bytes.
    #[test]
    fn names_need_no_escaping() {
        let names =
            [ActionKind::Retry, ActionKind::Fallback, ActionKind::Reset, ActionKind::Escalate, ActionKind::Abort]
                .map(ActionKind::as_str)
                .into_iter()
                .chain([ResetScope::Context, ResetScope::Scratchpad, ResetScope::Checkpoint].map(ResetScope::as_str))
                .chain([Status::Passed, Status::AutoRecovered, Status::Escalated, Status::Aborted].map(Status::as_str))
                .chain(
                    [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
                        .map(Severity::as_str),
                )
                .chain([Outcome::Ok, Outcome::Error].map(Outcome::as_str))
                .chain([Source::Recorded, Source::Alternative, Source::Simulated].map(source_str));
        for name in names {
            assert!(!needs_escape(name.as_bytes()), "{name}");
            let mut out = Vec::new();
            put_name(&mut out, name);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(name).unwrap());
        }
    }

    #[test]
    fn integers_match_itoa() {
        let edges = [u64::MAX, u64::MAX - 1, u64::from(u32::MAX), 99_999, 100_000, 1 << 53];
        for n in (0..100_000).chain(edges) {
            let mut out = Vec::new();
            put_u64(&mut out, n);
            assert_eq!(out, itoa::Buffer::new().format(n).as_bytes(), "{n}");
        }
    }

    fn f64_text(x: f64) -> String {
        let mut out = Vec::new();
        put_f64(&mut out, x);
        String::from_utf8(out).unwrap()
    }

    /// Integral values around the point where `zmij` switches to exponent
    /// notation, written by the fast path or not, against `zmij` itself and
    /// `serde_json`.
    #[test]
    fn integral_floats_match_zmij() {
        let check = |x: f64| {
            let got = f64_text(x);
            assert_eq!(got, zmij::Buffer::new().format_finite(x), "{x:?}");
            assert_eq!(got, serde_json::to_string(&x).unwrap(), "{x:?}");
        };
        for i in -100_000..100_000 {
            check(f64::from(i));
        }
        check(0.0);
        check(-0.0);
        assert_eq!(f64_text(-0.0), "-0.0");
        assert_eq!(f64_text(0.0), "0.0");
        assert_eq!(f64_text(154.0), "154.0");
        assert_eq!(f64_text(1e16), "1e+16");
        assert_eq!(f64_text(1e15), "1000000000000000.0");
        let mut around = vec![FIXED_LIMIT];
        for k in 0..=30 {
            around.push(10f64.powi(k));
        }
        for k in 0..=70 {
            around.push(2f64.powi(k));
        }
        for base in around {
            for step in -64i64..=64 {
                let x = f64::from_bits(base.to_bits().wrapping_add_signed(step));
                for x in [x, -x, x.trunc(), -x.trunc()] {
                    check(x);
                }
            }
            for d in [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0] {
                check(base + d);
                check(-(base + d));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_float_matches_serde_json(x in proptest::num::f64::ANY) {
            proptest::prop_assert_eq!(f64_text(x), serde_json::to_string(&x).unwrap());
        }

        #[test]
        fn integral_float_matches_serde_json(i in proptest::prelude::any::<i64>(), shift in 0u32..64) {
            let x = (i >> shift) as f64;
            proptest::prop_assert_eq!(f64_text(x), serde_json::to_string(&x).unwrap());
            let mut zmij = zmij::Buffer::new();
            proptest::prop_assert_eq!(f64_text(x), zmij.format_finite(x));
        }

        #[test]
        fn scaled_float_matches_serde_json(m in -1e6f64..1e6, e in -20i32..20) {
            let x = (m * 10f64.powi(e)).round();
            proptest::prop_assert_eq!(f64_text(x), serde_json::to_string(&x).unwrap());
        }
    }

    const FLOATS: [f64; 22] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1 + 0.2,
        1.5e-7,
        1e-7,
        123.456,
        0.000001,
        1e15,
        1e16,
        1e17,
        1e20,
        1e21,
        1e22,
        -1e21,
        9_007_199_254_740_993.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        f64::NAN,
        f64::INFINITY,
    ];

    #[test]
    fn floats_match_serde_json() {
        for x in FLOATS.into_iter().chain([f64::NEG_INFINITY, 2.5, 1234567.0, 0.3]) {
            let mut out = Vec::new();
            put_f64(&mut out, x);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&x).unwrap(), "{x:?}");
        }
    }

    fn case_result(request_id: &str, reason: Option<&str>, latency_ms: f64, cost_usd: f64) -> CaseResult {
        CaseResult {
            request_id: request_id.into(),
            first_line: 1,
            risk: None,
            status: Status::Passed,
            reason: reason.map(crate::names::Name::from),
            fallback_recovery: false,
            calls: 1,
            latency_ms,
            cost_usd,
            simulated: false,
            alternative: false,
            high_risk_side_effect: false,
            decisions: Vec::new(),
            safety: Vec::new(),
        }
    }

    fn derived_case(encoder: &Encoder, case: &CaseResult) -> Vec<u8> {
        let mut v = Vec::new();
        for record in &case.decisions {
            v.extend(derived(encoder, record));
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
            latency_ms: super::super::report::round(case.latency_ms),
            cost_usd: super::super::report::round(case.cost_usd),
            simulated: case.simulated,
            alternative: case.alternative,
            policy: &encoder.stamp,
        };
        v.extend(serde_json::to_vec(&line).unwrap());
        v.push(b'\n');
        v
    }

    /// Case lines, with and without a reason and decisions, over escaped
    /// strings, every status and flag, edge integers and edge floats.
    #[test]
    fn case_lines_match_the_derived_form() {
        let encoder = stamp_encoder();
        let ids = ["r-1", "", "q\"uote\\back\u{1}ctl\ttab", "caf\u{e9}\u{2028}\u{7f}", "eight88\n"];
        let reasons = [None, Some(""), Some("ESCALATE_HUMAN"), Some("line\nbreak \"q\"")];
        let statuses = [Status::Passed, Status::AutoRecovered, Status::Escalated, Status::Aborted];
        let mut n = 0usize;
        for (i, id) in ids.iter().enumerate() {
            for (j, reason) in reasons.iter().enumerate() {
                for (k, &latency) in FLOATS.iter().enumerate() {
                    let cost = FLOATS[(k + 7 * j + 3 * i) % FLOATS.len()];
                    let mut case = case_result(id, *reason, latency, cost);
                    n += 1;
                    case.status = statuses[n % 4];
                    case.first_line = [0, 1, 42, u64::MAX][n % 4];
                    case.calls = [0, 3, u32::MAX][n % 3];
                    case.fallback_recovery = n.is_multiple_of(2);
                    case.simulated = n.is_multiple_of(3);
                    case.alternative = n.is_multiple_of(5);
                    if n % 4 == 1 {
                        case.decisions = vec![full_record(), full_record()];
                    }
                    let mut out = Vec::new();
                    encoder.case(&mut out, &case).unwrap();
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        String::from_utf8(derived_case(&encoder, &case)).unwrap(),
                        "{case:?}"
                    );
                }
            }
        }
    }

    /// Decision lines over every source, trigger, action kind and scope,
    /// with and without each optional action part, and edge floats.
    #[test]
    fn decision_line_variants_match_the_derived_form() {
        let encoder = stamp_encoder();
        let base = full_record();
        let kinds =
            [ActionKind::Retry, ActionKind::Fallback, ActionKind::Reset, ActionKind::Escalate, ActionKind::Abort];
        let sources = [Source::Recorded, Source::Alternative, Source::Simulated];
        let scopes = [ResetScope::Context, ResetScope::Scratchpad, ResetScope::Checkpoint];
        for (n, &x) in FLOATS.iter().enumerate() {
            let mut r = base.clone();
            r.call_source = sources[n % 3];
            r.decision.trigger = if n.is_multiple_of(2) { Trigger::Error } else { Trigger::Accept };
            let a = &mut r.decision.action;
            a.kind = kinds[n % 5];
            a.delay_ms = (!n.is_multiple_of(3)).then_some(x);
            a.strategy = n.is_multiple_of(2).then(|| "s".into());
            a.model = (n % 3 == 1).then(|| "m\"".into());
            a.provider_model = (n % 4 == 2).then(|| "pm".into());
            a.reset = (n % 4 != 3).then_some(scopes[n % 3]);
            a.prompt =
                n.is_multiple_of(5).then(|| PromptRef { id: "i\\".into(), text: "t".into(), sha256: "h".into() });
            a.then = (n % 2 == 1).then_some(kinds[(n + 1) % 5]);
            a.queue = (n % 3 == 2).then(|| "q\n".into());
            if let Some(o) = &mut r.decision.overridden {
                o.wanted = kinds[(n + 2) % 5];
                o.replaced.index = n.is_multiple_of(2).then_some(n);
            }
            if let Some(o) = &mut r.outcome {
                o.source = sources[(n + 1) % 3];
            }
            r.decision.severity =
                [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical][n % 5];
            r.fleet = FleetView { breaker_open: n.is_multiple_of(2), retry_budget_exhausted: n % 4 < 2 };
            r.state.cost_usd = x;
            r.state.latency_ms = FLOATS[(n + 5) % FLOATS.len()];
            r.state.attempt = [0, 9, 10, 99, 100, 999, 1000, 9999, 10_000, u32::MAX][n % 10];
            r.seq = [0, 7, 42, 512, 4096, 65_536, u64::MAX][n % 7];
            let mut out = Vec::new();
            encoder.decision(&mut out, &r).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(derived(&encoder, &r)).unwrap(), "{r:?}");
        }
    }
}
