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
}

impl Encoder {
    pub fn new(policy: &PolicyStamp) -> Result<Self, serde_json::Error> {
        Ok(Encoder { stamp: serde_json::value::to_raw_value(policy)? })
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
        put_int(out, case.first_line);
        out.extend_from_slice(b",\"status\":");
        put_str(out, case.status.as_str())?;
        if let Some(reason) = &case.reason {
            out.extend_from_slice(b",\"reason\":");
            put_str(out, reason)?;
        }
        out.extend_from_slice(b",\"fallback_recovery\":");
        put_bool(out, case.fallback_recovery);
        out.extend_from_slice(b",\"decisions\":");
        put_int(out, case.decisions.len());
        out.extend_from_slice(b",\"calls\":");
        put_int(out, case.calls);
        out.extend_from_slice(b",\"latency_ms\":");
        put_f64(out, super::report::round(case.latency_ms));
        out.extend_from_slice(b",\"cost_usd\":");
        put_f64(out, super::report::round(case.cost_usd));
        out.extend_from_slice(b",\"simulated\":");
        put_bool(out, case.simulated);
        out.extend_from_slice(b",\"alternative\":");
        put_bool(out, case.alternative);
        out.extend_from_slice(b",\"policy\":");
        out.extend_from_slice(self.stamp.get().as_bytes());
        out.extend_from_slice(b"}\n");
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
        put_str(out, source_str(r.call_source))?;
        out.extend_from_slice(b",\"step\":");
        put_int(out, r.step);
        let d = &r.decision;
        out.extend_from_slice(b",\"trigger\":");
        put_str(out, trigger_str(d.trigger))?;
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
            out.extend_from_slice(b",\"overridden\":{\"by\":");
            put_str(out, &o.by)?;
            out.extend_from_slice(b",\"replaced\":");
            rule_ref(out, &o.replaced)?;
            out.extend_from_slice(b",\"wanted\":");
            put_str(out, o.wanted.as_str())?;
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
                put_str(out, source_str(o.source))?;
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

/// A float as `serde_json` writes it: its own formatter (`zmij`) for finite
/// values, `null` for NaN and the infinities.
fn put_f64(out: &mut Vec<u8>, x: f64) {
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

fn trigger_str(t: Trigger) -> &'static str {
    match t {
        Trigger::Error => "error",
        Trigger::Accept => "accept",
    }
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
    out.extend_from_slice(b"{\"kind\":");
    put_str(out, a.kind.as_str())?;
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
        put_str(out, scope.as_str())?;
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
        put_str(out, kind.as_str())?;
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
    put_f64(out, s.cost_usd);
    out.extend_from_slice(b",\"latency_ms\":");
    put_f64(out, s.latency_ms);
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

    /// A decision record with every optional part present, strings that
    /// need escaping and numbers that are not integers.
    fn full_record() -> DecisionRecord {
        let mut state = State::default();
        state.class_attempts.insert("rate\nlimited".into(), 2);
        state.models_tried = vec!["primary".into(), "backup\u{1}".into()];
        state.cost_usd = 0.1 + 0.2;
        state.latency_ms = f64::NAN;
        state.model = Some("primary".into());
        state.class_attempts.insert("timeout".into(), 1);
        state.strategies_tried = vec!["a\"b".into(), "c".into()];
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
            reason: reason.map(str::to_string),
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
            a.strategy = n.is_multiple_of(2).then(|| "s".to_string());
            a.model = (n % 3 == 1).then(|| "m\"".to_string());
            a.provider_model = (n % 4 == 2).then(|| "pm".to_string());
            a.reset = (n % 4 != 3).then_some(scopes[n % 3]);
            a.prompt =
                n.is_multiple_of(5).then(|| PromptRef { id: "i\\".into(), text: "t".into(), sha256: "h".into() });
            a.then = (n % 2 == 1).then_some(kinds[(n + 1) % 5]);
            a.queue = (n % 3 == 2).then(|| "q\n".to_string());
            if let Some(o) = &mut r.decision.overridden {
                o.wanted = kinds[(n + 2) % 5];
                o.replaced.index = n.is_multiple_of(2).then_some(n);
            }
            if let Some(o) = &mut r.outcome {
                o.source = sources[(n + 1) % 3];
            }
            r.state.cost_usd = x;
            r.state.latency_ms = FLOATS[(n + 5) % FLOATS.len()];
            let mut out = Vec::new();
            encoder.decision(&mut out, &r).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(derived(&encoder, &r)).unwrap(), "{r:?}");
        }
    }
}
