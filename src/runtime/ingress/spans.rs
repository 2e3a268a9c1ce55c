//! Shared by the span adapters (OTLP, TRAIL): spans become native events,
//! one case per trace, ordered by start time across traces so that the
//! engine sees calls in trace time.

use serde_json::Map;

use super::reject::Rejection;
use crate::runtime::event::{Event, EventKind, Risk, Timestamp};

/// One step of a converted document, in the order the stream feeds it.
#[derive(Debug)]
pub enum Fed {
    /// One span was read.
    Span,
    /// One span was not turned into an event (its error is explained by a
    /// failing descendant, or it is an inner span with nothing to report).
    Skipped,
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
    pub rejections: Vec<Rejection>,
    events: Vec<Timed>,
    traces: usize,
}

/// RFC 3339 text for a nanosecond timestamp.
pub fn ts_text(ns: i128) -> Option<Timestamp> {
    jiff::Timestamp::from_nanosecond(ns).ok().map(|t| Timestamp::Text(t.to_string()))
}

/// A blank event of a kind for a request.
pub fn blank(request_id: &str, kind: EventKind) -> Event {
    Event {
        request_id: request_id.to_string(),
        seq: 0,
        kind,
        ts: None,
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
        request.metadata = if t.metadata.is_empty() { None } else { Some(t.metadata) };
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
        let spans = self.spans.saturating_sub(self.skipped);
        fed.extend((0..spans).map(|_| Fed::Span));
        fed.extend((0..self.skipped).map(|_| Fed::Skipped));
        fed.extend(self.rejections.drain(..).map(Fed::Rejected));
        self.events.sort_by_key(|t| (t.time, t.trace, t.seq));
        fed.extend(self.events.into_iter().map(|t| Fed::Event(t.line, Box::new(t.event))));
        fed
    }
}
