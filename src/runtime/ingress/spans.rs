//! Shared by the span adapters (OTLP, TRAIL): spans become native events,
//! one case per trace, ordered by start time across traces so that the
//! engine sees calls in trace time.
//!
//! Errors propagate up span trees, so each failure is classified once, at
//! its leaf: a failing span with no failing descendant. The leaf's error
//! goes to
//! - the leaf itself when it is a model or tool call;
//! - else its nearest enclosing call, if that call failed too (an HTTP span
//!   under a chat span); if the enclosing call succeeded, the failure was
//!   handled inside it (an SDK's own retry) and is not an event;
//! - else, with no enclosing call (an agent step that failed parsing or
//!   running the model's code), a `tool_call` event named after the span.
//!
//! Failing spans whose error is explained that way (every ancestor of a
//! leaf, calls included) produce no failure of their own.

use indexmap::IndexMap;
use serde_json::Map;

use super::native;
use super::provider;
use super::reject::{RejectReason, Rejection};
use crate::runtime::event::{ErrorInfo, Event, EventKind, Outcome, Output, Risk, Timestamp, Tool};

/// One step of a converted document, in the order the stream feeds it.
#[derive(Debug)]
pub enum Fed {
    /// One span was read.
    Span,
    /// One span was not turned into an event: not a call, no failure of its own.
    Skipped,
    /// One failing span whose error is explained by a failing descendant
    /// (or was handled inside a successful enclosing call).
    Explained,
    Event(u64, Box<Event>),
    Rejected(Rejection),
}

/// A call made from a span.
#[derive(Debug)]
pub struct CallSpan {
    /// The span's 1-based position in document order.
    pub line: u64,
    pub start_ns: i128,
    pub event: Event,
}

/// One trace: its request and its calls.
#[derive(Debug)]
pub struct TraceBuild {
    pub request_id: String,
    pub line: u64,
    pub start_ns: i128,
    pub end_ns: i128,
    pub intent: Option<String>,
    pub risk: Risk,
    pub metadata: Map<String, serde_json::Value>,
    pub calls: Vec<CallSpan>,
}

#[derive(Debug)]
struct Timed {
    time: i128,
    trace: usize,
    seq: u64,
    line: u64,
    event: Event,
}

/// The result of converting one document.
#[derive(Debug, Default)]
pub struct Converted {
    pub spans: u64,
    pub skipped: u64,
    pub explained: u64,
    pub rejections: Vec<Rejection>,
    events: Vec<Timed>,
    traces: usize,
}

/// RFC 3339 text for a nanosecond timestamp, at millisecond precision
/// (fixed width, so the texts sort like the times).
pub fn ts_text(ns: i128) -> Option<Timestamp> {
    jiff::Timestamp::from_nanosecond(ns).ok().map(|t| Timestamp::Text(format!("{t:.3}")))
}

/// A blank event of a kind for a request.
pub fn blank(request_id: &str, kind: EventKind) -> Event {
    Event {
        request_id: request_id.to_string(),
        seq: 0,
        kind,
        ts: None,
        ts_ms: None,
        intent: None,
        risk: None,
        budget: None,
        metadata: None,
        model: None,
        tool: None,
        attempt: None,
        strategy: None,
        outcome: None,
        error: None,
        output: None,
        latency_ms: None,
        cost_usd: None,
        tokens_in: None,
        tokens_out: None,
        response_started: None,
        reset: None,
        alternatives: None,
    }
}

impl Converted {
    /// Adds one trace: a `request` event at its start, its calls by start
    /// time (`seq` 1, 2...), and an `end` event at its end.
    pub fn add_trace(&mut self, mut t: TraceBuild) {
        let trace = self.traces;
        self.traces += 1;
        t.calls.sort_by_key(|c| (c.start_ns, c.line));
        let mut request = blank(&t.request_id, EventKind::Request);
        request.ts = ts_text(t.start_ns);
        request.intent = t.intent;
        request.risk = Some(t.risk);
        request.metadata = if t.metadata.is_empty() { None } else { Some(Box::new(t.metadata)) };
        self.events.push(Timed { time: t.start_ns, trace, seq: 0, line: t.line, event: request });
        let mut seq = 0;
        let mut end_ns = t.end_ns;
        for call in t.calls {
            seq += 1;
            let mut event = call.event;
            event.seq = seq;
            event.ts = ts_text(call.start_ns);
            let call_end = call.start_ns + event.latency_ms.map_or(0, |ms| (ms * 1e6) as i128);
            end_ns = end_ns.max(call_end);
            self.events.push(Timed { time: call.start_ns, trace, seq, line: call.line, event });
        }
        let mut end = blank(&t.request_id, EventKind::End);
        end.seq = seq + 1;
        end.ts = ts_text(end_ns);
        self.events.push(Timed { time: end_ns, trace, seq: seq + 1, line: t.line, event: end });
    }

    /// The feed: span counts, rejections, then every event by time.
    pub fn into_fed(mut self) -> Vec<Fed> {
        let mut fed = Vec::with_capacity(self.events.len() + self.rejections.len() + self.spans as usize);
        let spans = self.spans.saturating_sub(self.skipped + self.explained);
        fed.extend((0..spans).map(|_| Fed::Span));
        fed.extend((0..self.skipped).map(|_| Fed::Skipped));
        fed.extend((0..self.explained).map(|_| Fed::Explained));
        fed.extend(self.rejections.drain(..).map(Fed::Rejected));
        self.events.sort_by_key(|t| (t.time, t.trace, t.seq));
        fed.extend(self.events.into_iter().map(|t| Fed::Event(t.line, Box::new(t.event))));
        fed
    }
}

/// What a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Model,
    Tool,
    /// An agent invocation: names the request when it is a trace's first.
    Agent,
    Other,
}

/// One span, read by an adapter, before the tree rules apply.
#[derive(Debug, Clone)]
pub struct SpanNode {
    /// 1-based position in document order.
    pub ordinal: u64,
    pub trace_id: String,
    pub span_id: Option<String>,
    pub parent_id: Option<String>,
    pub name: String,
    pub role: Role,
    pub start_ns: i128,
    pub end_ns: i128,
    /// The span failed (error status or a recorded exception).
    pub failing: bool,
    /// Its error, as received (`raw` set; normalised later).
    pub error: Option<ErrorInfo>,
    /// When the error happened (exception time), if known.
    pub error_ns: Option<i128>,
    pub model: Option<String>,
    pub tool_name: Option<String>,
    pub side_effects: bool,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub finish_reason: Option<String>,
    pub response_started: Option<bool>,
    pub strategy: Option<String>,
    pub attempt: Option<u32>,
    pub cost_usd: Option<f64>,
    /// `rcv.risk` / `rcv.intent` extension attributes.
    pub risk: Option<Risk>,
    pub intent: Option<String>,
    /// Free request metadata this span contributes (first span of a trace wins per key).
    pub metadata: Map<String, serde_json::Value>,
}

impl SpanNode {
    pub fn new(ordinal: u64, trace_id: String, name: String) -> Self {
        SpanNode {
            ordinal,
            trace_id,
            span_id: None,
            parent_id: None,
            name,
            role: Role::Other,
            start_ns: 0,
            end_ns: 0,
            failing: false,
            error: None,
            error_ns: None,
            model: None,
            tool_name: None,
            side_effects: false,
            tokens_in: None,
            tokens_out: None,
            finish_reason: None,
            response_started: None,
            strategy: None,
            attempt: None,
            cost_usd: None,
            risk: None,
            intent: None,
            metadata: Map::new(),
        }
    }

    fn is_call(&self) -> bool {
        matches!(self.role, Role::Model | Role::Tool)
    }
}

/// Model names that mean "not recorded".
fn known_model(m: &Option<String>) -> Option<&str> {
    m.as_deref().map(str::trim).filter(|m| !m.is_empty() && *m != "unknown")
}

/// Applies the tree rules to the spans of a document and builds its cases.
pub fn build(file: &str, nodes: Vec<SpanNode>, out: &mut Converted) {
    out.spans += nodes.len() as u64;
    // Group by trace, in order of first appearance.
    let mut traces: IndexMap<String, Vec<SpanNode>> = IndexMap::new();
    for n in nodes {
        traces.entry(n.trace_id.clone()).or_default().push(n);
    }
    for (trace_id, spans) in traces {
        build_trace(file, trace_id, spans, out);
    }
}

fn build_trace(file: &str, trace_id: String, spans: Vec<SpanNode>, out: &mut Converted) {
    let n = spans.len();
    // Parent links by span id (a missing parent makes a root).
    let index: IndexMap<&str, usize> =
        spans.iter().enumerate().filter_map(|(i, s)| s.span_id.as_deref().map(|id| (id, i))).collect();
    let parent: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| s.parent_id.as_deref().and_then(|p| index.get(p).copied()).filter(|&p| p != i))
        .collect();
    // Walks up from a span, guarded against cycles.
    let ancestors = |mut i: usize| {
        let mut chain = Vec::new();
        while let Some(p) = parent.get(i).copied().flatten() {
            if chain.len() > n {
                break;
            }
            chain.push(p);
            i = p;
        }
        chain
    };
    // Failing spans with a failing descendant are explained.
    let mut has_failing_descendant = vec![false; n];
    for (i, s) in spans.iter().enumerate() {
        if s.failing {
            for a in ancestors(i) {
                has_failing_descendant[a] = true;
            }
        }
    }
    // Leaf failures -> the span that carries them.
    // `carrier[c] = Some(leaf)`: call span c fails with leaf's error.
    let mut carrier: Vec<Option<usize>> = vec![None; n];
    let mut synthesized: Vec<usize> = Vec::new();
    let mut explained = 0u64;
    for (i, s) in spans.iter().enumerate() {
        if !s.failing || has_failing_descendant[i] {
            continue;
        }
        if s.is_call() {
            carrier[i] = Some(i);
            continue;
        }
        match ancestors(i).into_iter().find(|&a| spans[a].is_call()) {
            Some(call) if spans[call].failing => {
                // The later leaf wins when several explain one call.
                let later = carrier[call].is_none_or(|prev| spans[prev].end_ns <= s.end_ns);
                if later {
                    carrier[call] = Some(i);
                }
            }
            // Handled inside a call that succeeded: counted as explained below.
            Some(_) => {}
            None => synthesized.push(i),
        }
    }

    // Risk, intent, metadata: the first span that says wins.
    let root = (0..n).find(|&i| parent[i].is_none()).unwrap_or(0);
    let agent = (0..n).filter(|&i| spans[i].role == Role::Agent).min_by_key(|&i| (spans[i].start_ns, i));
    let risk = spans.iter().find_map(|s| s.risk).unwrap_or(Risk::Low);
    let intent = spans
        .iter()
        .find_map(|s| s.intent.clone())
        .or_else(|| agent.map(|a| spans[a].name.clone()))
        .or_else(|| spans.get(root).filter(|s| !s.is_call()).map(|s| s.name.clone()));
    let mut metadata = Map::new();
    metadata.insert("trace_id".into(), trace_id.clone().into());
    if let Some(r) = spans.get(root) {
        metadata.insert("root_span".into(), r.name.clone().into());
    }
    for s in &spans {
        for (k, v) in &s.metadata {
            metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let start_ns = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end_ns = spans.iter().map(|s| s.end_ns.max(s.start_ns)).max().unwrap_or(start_ns);
    let line = spans.get(agent.unwrap_or(root)).map_or(1, |s| s.ordinal);

    // Models: a model call that did not record its model inherits the one
    // of the trace's latest earlier model call that did (else any).
    let mut by_start: Vec<usize> = (0..n).collect();
    by_start.sort_by_key(|&i| (spans[i].start_ns, spans[i].ordinal));
    let mut last_model: Option<String> = None;
    let mut inherited: Vec<Option<String>> = vec![None; n];
    for &i in &by_start {
        if spans[i].role != Role::Model {
            continue;
        }
        match known_model(&spans[i].model) {
            Some(m) => last_model = Some(m.to_string()),
            None => inherited[i] = last_model.clone(),
        }
    }
    let any_model = by_start.iter().find_map(|&i| known_model(&spans[i].model).map(str::to_string));

    let mut is_synthesized = vec![false; n];
    for &i in &synthesized {
        is_synthesized[i] = true;
    }
    let mut calls = Vec::new();
    let mut rejections = Vec::new();
    for i in 0..n {
        let s = &spans[i];
        if !s.is_call() {
            if !s.failing {
                out.skipped += 1;
            } else if !is_synthesized[i] {
                explained += 1;
            }
            continue;
        }
        if s.failing && carrier[i].is_none() {
            // A failing call explained by a failing call below it.
            explained += 1;
            continue;
        }
        let mut event =
            blank(&trace_id, if s.role == Role::Model { EventKind::ModelCall } else { EventKind::ToolCall });
        if s.role == Role::Model {
            let model = known_model(&s.model)
                .map(str::to_string)
                .or_else(|| inherited[i].clone())
                .or_else(|| any_model.clone())
                .unwrap_or_else(|| "unknown".to_string());
            event.model = Some(model);
        } else {
            let name = s.tool_name.clone().unwrap_or_else(|| s.name.clone());
            event.tool = Some(Tool { name: Some(name), side_effects: s.side_effects });
        }
        fill_call(&mut event, s);
        let leaf = carrier[i].and_then(|l| spans.get(l));
        match leaf {
            Some(leaf) => {
                event.outcome = Some(Outcome::Error);
                event.error =
                    Some(Box::new(error_of(leaf, (leaf.ordinal != s.ordinal).then_some(s), &mut event.output)));
            }
            None => event.outcome = Some(Outcome::Ok),
        }
        push_call(file, s, s.start_ns, event, &mut calls, &mut rejections);
    }
    for &i in &synthesized {
        let s = &spans[i];
        let mut event = blank(&trace_id, EventKind::ToolCall);
        event.tool = Some(Tool { name: Some(s.name.clone()), side_effects: s.side_effects });
        fill_call(&mut event, s);
        event.outcome = Some(Outcome::Error);
        event.error = Some(Box::new(error_of(s, None, &mut event.output)));
        // The step failed after its inner calls: place it at its error.
        let at = s.error_ns.unwrap_or(s.end_ns).max(s.start_ns);
        push_call(file, s, at, event, &mut calls, &mut rejections);
    }
    out.explained += explained;
    out.rejections.extend(rejections);
    out.add_trace(TraceBuild { request_id: trace_id, line, start_ns, end_ns, intent, risk, metadata, calls });
}

fn fill_call(event: &mut Event, s: &SpanNode) {
    event.latency_ms = Some(((s.end_ns - s.start_ns).max(0)) as f64 / 1e6);
    event.tokens_in = s.tokens_in;
    event.tokens_out = s.tokens_out;
    event.strategy = s.strategy.clone();
    event.attempt = s.attempt;
    event.cost_usd = s.cost_usd;
    if s.finish_reason.is_some() {
        event.output = Some(Output { finish_reason: s.finish_reason.clone(), ..Output::default() });
    }
    event.response_started = s.response_started;
}

/// The leaf's error, normalised, with gaps filled from the carrying call's.
fn error_of(leaf: &SpanNode, call: Option<&SpanNode>, output: &mut Option<Output>) -> ErrorInfo {
    let mut err = leaf.error.clone().unwrap_or_default();
    provider::normalize(&mut err, output);
    if let Some(c) = call.and_then(|c| c.error.clone()) {
        let mut own = c;
        provider::normalize(&mut own, &mut None);
        let fill = |slot: &mut Option<String>, v: Option<String>| {
            if slot.is_none() {
                *slot = v;
            }
        };
        fill(&mut err.kind, own.kind);
        fill(&mut err.code, own.code);
        fill(&mut err.message, own.message);
        fill(&mut err.provider, own.provider);
        fill(&mut err.status, own.status);
        if err.http_status.is_none() {
            err.http_status = own.http_status;
        }
    }
    if err.message.is_none() && err.kind.is_none() && err.raw.is_none() {
        err.message = Some(format!("span `{}` failed", leaf.name));
    }
    err
}

fn push_call(
    file: &str,
    s: &SpanNode,
    at: i128,
    event: Event,
    calls: &mut Vec<CallSpan>,
    rejections: &mut Vec<Rejection>,
) {
    match native::validate(&event) {
        Ok(_) => calls.push(CallSpan { line: s.ordinal, start_ns: at, event }),
        Err((reason, detail)) => rejections.push(Rejection {
            file: file.to_string(),
            line: s.ordinal,
            request_id: Some(event.request_id.clone()),
            reason,
            detail: format!("span `{}`: {detail}", s.name),
        }),
    }
}

/// A rejection for a span that cannot be read.
pub fn span_rejection(
    file: &str,
    ordinal: u64,
    trace_id: Option<&str>,
    reason: RejectReason,
    detail: String,
) -> Rejection {
    Rejection { file: file.to_string(), line: ordinal, request_id: trace_id.map(str::to_string), reason, detail }
}

/// Parses an ISO 8601 duration (`PT1.5S`, `PT1M21.559115S`, `P1DT2H`) into
/// nanoseconds.
pub fn iso_duration_ns(text: &str) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let body = t.strip_prefix('P').or_else(|| t.strip_prefix('p'))?;
    let mut total: f64 = 0.0;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in body.chars() {
        match c {
            'T' | 't' => {
                if !num.is_empty() {
                    return None;
                }
                in_time = true;
            }
            '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
            _ => {
                let v: f64 = num.parse().ok()?;
                num.clear();
                let secs = match (c.to_ascii_uppercase(), in_time) {
                    ('W', false) => 7.0 * 86_400.0,
                    ('D', false) => 86_400.0,
                    ('H', true) => 3_600.0,
                    ('M', true) => 60.0,
                    ('S', true) => 1.0,
                    _ => return None,
                };
                total += v * secs;
                any = true;
            }
        }
    }
    if !num.is_empty() || !any || !total.is_finite() {
        return None;
    }
    let ns = (total * 1e9).round() as i128;
    Some(if neg { -ns } else { ns })
}

/// Parses an RFC 3339 timestamp, or one without an offset (taken as UTC).
pub fn timestamp_ns(text: &str) -> Option<i128> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Some(ts.as_nanosecond());
    }
    let civil: jiff::civil::DateTime = t.parse().ok()?;
    civil.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp().as_nanosecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(iso_duration_ns("PT1.234S"), Some(1_234_000_000));
        assert_eq!(iso_duration_ns("PT1M21.559115S"), Some(81_559_115_000));
        assert_eq!(iso_duration_ns("P1DT1H"), Some(90_000_000_000_000));
        assert_eq!(iso_duration_ns("PT0S"), Some(0));
        for bad in ["", "P", "PT", "1S", "PT1", "PT1X", "P1S", "PTS"] {
            assert_eq!(iso_duration_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_ns("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(timestamp_ns("1970-01-01T00:00:01.5"), Some(1_500_000_000));
        assert_eq!(timestamp_ns("yesterday"), None);
    }
}
