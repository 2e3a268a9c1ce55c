//! Case assembly: events of one request share `request_id` and are ordered
//! by `seq`; requests may interleave in the file. The assembler turns the
//! event sequence into completed [`Case`]s, and tells the caller about every
//! accepted event as soon as it is accepted, so fleet-level state can follow
//! trace time.
//!
//! Rules (also in `docs/trace-format.md`):
//! - within a request, `seq` strictly increases in file order; an event with
//!   an equal `seq` is rejected `duplicate_seq`, a smaller one
//!   `out_of_order_seq`, and reading goes on;
//! - calls that arrive before their request's `request` event are held; they
//!   are accepted (and reported, in order, right after the `request` event)
//!   when it arrives, whose `seq` must then be smaller than theirs; if it
//!   never arrives they are rejected `no_request_event` when the case closes;
//! - a case closes at its `end` event, or at end of input; cases still open
//!   at end of input are emitted in order of their first line;
//! - with an idle limit of N lines ([`CaseAssembler::close_idle_after`]), a
//!   case whose last event is more than N lines back is closed as if its
//!   `end` had come, so files without `end` events replay in bounded memory;
//! - an event for a request that an `end` (or the idle limit) already closed
//!   is rejected `event_after_end` (closed ids are remembered as 64-bit
//!   hashes, so memory stays bounded by the requests in flight plus 8 bytes
//!   per closed one).

use std::collections::HashSet;
use std::hash::BuildHasher;

use indexmap::IndexMap;
use serde::Serialize;

use super::reject::{RejectReason, Rejection, Stats};
use super::stream::Item;
use crate::runtime::event::{Event, EventKind};
use crate::runtime::state::FleetView;

/// Sees every accepted event once, in acceptance order (the order
/// [`Item::Event`] reports them in), and answers for each call the fleet
/// view it was made under; the view travels with the call in its [`Case`].
/// This is how fleet state follows trace time without copying events.
pub trait Observer {
    fn observe(&mut self, event: &Event) -> FleetView;
}

/// Observes nothing: every call gets the default view.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn observe(&mut self, _: &Event) -> FleetView {
        FleetView::default()
    }
}

/// An accepted event and where it was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    /// 1-based line (span formats: span position).
    pub line: u64,
    pub event: Event,
}

/// One request with its calls, in `seq` order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub request_id: String,
    /// The `request` event.
    pub request: Box<Event>,
    pub request_line: u64,
    /// The `model_call` and `tool_call` events with their lines, in `seq`
    /// order. Events stay boxed from the reader on: moving one is a copy of
    /// several hundred bytes, moving a box is a pointer.
    pub calls: Vec<(u64, Box<Event>)>,
    /// The [`Observer`]'s view for each call, in the same order.
    #[serde(skip)]
    pub views: Vec<FleetView>,
    /// The smallest line of the case's accepted events.
    pub first_line: u64,
    /// The line of the `end` event that closed the case, if one did.
    pub end_line: Option<u64>,
}

#[derive(Debug)]
struct Pending {
    first_line: u64,
    request: Option<(u64, Box<Event>)>,
    /// Accepted calls when `request` is set, held calls otherwise.
    calls: Vec<(u64, Box<Event>)>,
    /// Views of the accepted calls (empty while calls are held).
    views: Vec<FleetView>,
    /// The largest accepted (or held) `seq` so far.
    last_seq: Option<u64>,
    /// The line of the case's latest event, for the idle limit.
    last_line: u64,
}

/// Builds cases from events in file order. See the module docs for the rules.
#[derive(Debug)]
pub struct CaseAssembler {
    file: String,
    emit_events: bool,
    /// Looked up once per event: a fast hasher (foldhash, seeded per process;
    /// the order is insertion order whatever the hasher).
    pending: IndexMap<String, Pending, foldhash::fast::RandomState>,
    closed: HashSet<u64, foldhash::fast::RandomState>,
    stats: Stats,
    /// Close cases idle for more than this many lines.
    idle_lines: Option<u64>,
    /// The next line at which idle cases are looked for.
    next_idle_check: u64,
}

/// Room for this many calls is made at a case's first call (most cases
/// have several), instead of growing the vectors from one.
const CALLS_HINT: usize = 8;

fn id_hash(id: &str) -> u64 {
    // A fixed seed: the same id always gives the same hash.
    foldhash::fast::FixedState::with_seed(0x7263_7600).hash_one(id)
}

impl CaseAssembler {
    /// `file` names the input in rejections. With `emit_events`, every
    /// accepted event is also reported as an [`Item::Event`].
    pub fn new(file: impl Into<String>, emit_events: bool) -> Self {
        CaseAssembler {
            file: file.into(),
            emit_events,
            pending: IndexMap::default(),
            closed: HashSet::default(),
            stats: Stats::default(),
            idle_lines: None,
            next_idle_check: 0,
        }
    }

    /// Closes a case once more than `lines` input lines have passed since
    /// its last event (`None`: cases stay open until `end` or end of input).
    pub fn close_idle_after(mut self, lines: Option<u64>) -> Self {
        self.idle_lines = lines.filter(|&n| n > 0);
        self
    }

    /// Closes the cases idle for longer than the limit, in order of first
    /// line. Looks every eighth of the limit, so the cost stays at one pass
    /// over the requests in flight per `limit / 8` lines.
    fn close_idle(&mut self, line: u64, out: &mut Vec<Item>) {
        let Some(limit) = self.idle_lines else { return };
        if line < self.next_idle_check {
            return;
        }
        self.next_idle_check = line + (limit / 8).max(1);
        let idle: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.last_line.saturating_add(limit) < line)
            .map(|(id, _)| id.clone())
            .collect();
        let mut closing: Vec<(String, Pending)> = Vec::with_capacity(idle.len());
        for id in idle {
            if let Some((id, p)) = self.pending.swap_remove_entry(id.as_str()) {
                self.closed.insert(id_hash(&id));
                closing.push((id, p));
            }
        }
        closing.sort_by_key(|(_, p)| p.first_line);
        for (id, p) in closing {
            self.complete(id, p, None, out);
        }
    }

    /// Counts so far (lines are counted by the reader, see [`CaseAssembler::count_line`]).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Requests in flight (open cases).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Counts one input line (or span) read.
    pub fn count_line(&mut self) {
        self.stats.lines += 1;
    }

    /// Counts one blank line.
    pub fn count_blank(&mut self) {
        self.stats.skipped_blank += 1;
    }

    /// Counts one span that is neither a call nor a failure.
    pub fn count_skipped_span(&mut self) {
        self.stats.skipped_spans += 1;
    }

    /// Counts one failing span explained by a failing descendant.
    pub fn count_explained_span(&mut self) {
        self.stats.explained_spans += 1;
    }

    /// Reports a rejection decided by a reader.
    pub fn reject(&mut self, rejection: Rejection, out: &mut Vec<Item>) {
        self.stats.reject(rejection.reason);
        out.push(Item::Rejected(rejection));
    }

    fn reject_event(&mut self, line: u64, event: &Event, reason: RejectReason, detail: String, out: &mut Vec<Item>) {
        let rejection =
            Rejection { file: self.file.clone(), line, request_id: Some(event.request_id.clone()), reason, detail };
        self.reject(rejection, out);
    }

    /// Counts and reports an accepted event; returns its observed view.
    fn accept(&mut self, line: u64, event: &Event, out: &mut Vec<Item>, obs: &mut dyn Observer) -> FleetView {
        self.stats.accepted += 1;
        if self.emit_events {
            out.push(Item::Event(Box::new(Accepted { line, event: event.clone() })));
        }
        obs.observe(event)
    }

    /// Turns [`Item::Event`] reports on or off.
    pub fn report_events(&mut self, on: bool) {
        self.emit_events = on;
    }

    /// Feeds one valid event (in file order); appends what it decides to `out`.
    pub fn push(&mut self, line: u64, event: Event, out: &mut Vec<Item>) {
        self.push_observed(line, Box::new(event), out, &mut NoObserver);
    }

    /// [`CaseAssembler::push`], telling `obs` about every event accepted.
    pub fn push_observed(&mut self, line: u64, event: Box<Event>, out: &mut Vec<Item>, obs: &mut dyn Observer) {
        self.close_idle(line, out);
        // One lookup per event; its index serves the rest of the event.
        let open = self.pending.get_index_of(event.request_id.as_str());
        // A request still open was not closed: only others need the check.
        if open.is_none() && !self.closed.is_empty() && self.closed.contains(&id_hash(&event.request_id)) {
            let detail = match self.idle_lines {
                None => format!("request `{}` was already closed by its `end` event", event.request_id),
                Some(n) => format!(
                    "request `{}` was already closed, by its `end` event or after {n} idle lines",
                    event.request_id
                ),
            };
            self.reject_event(line, &event, RejectReason::EventAfterEnd, detail, out);
            return;
        }
        match event.kind {
            EventKind::Request => self.push_request(line, open, event, out, obs),
            EventKind::ModelCall | EventKind::ToolCall => self.push_call(line, open, event, out, obs),
            EventKind::End => self.push_end(line, open, event, out, obs),
        }
    }

    /// The seq check against the last accepted event of the request.
    fn seq_error(last: Option<u64>, seq: u64) -> Option<(RejectReason, String)> {
        match last {
            Some(last) if seq == last => Some((
                RejectReason::DuplicateSeq,
                format!("`seq` {seq} is already used by an earlier event of this request"),
            )),
            Some(last) if seq < last => Some((
                RejectReason::OutOfOrderSeq,
                format!("`seq` {seq} comes after `seq` {last} of this request; seq must increase"),
            )),
            _ => None,
        }
    }

    /// The pending entry at `open`, with its index.
    fn open_entry(&mut self, open: Option<usize>) -> Option<(usize, &mut Pending)> {
        let i = open?;
        Some((i, self.pending.get_index_mut(i)?.1))
    }

    /// `open`: the index of the request's pending entry, if it has one.
    fn push_request(
        &mut self,
        line: u64,
        open: Option<usize>,
        event: Box<Event>,
        out: &mut Vec<Item>,
        obs: &mut dyn Observer,
    ) {
        let Some((i, pending)) = self.open_entry(open) else {
            self.accept(line, &event, out, obs);
            let id = event.request_id.clone();
            let pending = Pending {
                first_line: line,
                last_seq: Some(event.seq),
                last_line: line,
                request: Some((line, event)),
                calls: Vec::new(),
                views: Vec::new(),
            };
            self.pending.insert(id, pending);
            return;
        };
        if let Some((first, _)) = &pending.request {
            let detail = format!("request `{}` already has a `request` event (line {first})", event.request_id);
            self.reject_event(line, &event, RejectReason::DuplicateRequest, detail, out);
            return;
        }
        // Held calls wait for this event: its seq must come before theirs.
        if let Some((_, first_call)) = pending.calls.first() {
            let first_seq = first_call.seq;
            if event.seq >= first_seq {
                let (reason, detail) = if event.seq == first_seq {
                    (
                        RejectReason::DuplicateSeq,
                        format!("`seq` {} repeats the seq of an earlier call of this request", event.seq),
                    )
                } else {
                    (
                        RejectReason::OutOfOrderSeq,
                        format!(
                            "the `request` event has `seq` {} but an earlier call of this request has `seq` {first_seq}",
                            event.seq
                        ),
                    )
                };
                self.reject_event(line, &event, reason, detail, out);
                return;
            }
        }
        let held = std::mem::take(&mut pending.calls);
        pending.first_line = pending.first_line.min(line);
        pending.last_line = line;
        let last = held.last().map(|(_, e)| e.seq).unwrap_or(event.seq);
        pending.last_seq = Some(last.max(event.seq));
        self.accept(line, &event, out, obs);
        let mut views = Vec::with_capacity(held.capacity());
        for (l, e) in &held {
            views.push(self.accept(*l, e, out, obs));
        }
        // Accepting touches no pending entry: `i` still points at this one.
        if let Some((_, pending)) = self.pending.get_index_mut(i) {
            pending.request = Some((line, event));
            pending.calls = held;
            pending.views = views;
        }
    }

    fn push_call(
        &mut self,
        line: u64,
        open: Option<usize>,
        event: Box<Event>,
        out: &mut Vec<Item>,
        obs: &mut dyn Observer,
    ) {
        let Some((_, pending)) = open.and_then(|i| self.pending.get_index_mut(i)) else {
            // No request yet: hold the call.
            let id = event.request_id.clone();
            let mut calls = Vec::with_capacity(CALLS_HINT);
            calls.push((line, event));
            let pending = Pending {
                first_line: line,
                request: None,
                last_seq: Some(calls[0].1.seq),
                last_line: line,
                calls,
                views: Vec::new(),
            };
            self.pending.insert(id, pending);
            return;
        };
        if let Some((reason, detail)) = Self::seq_error(pending.last_seq, event.seq) {
            self.reject_event(line, &event, reason, detail, out);
            return;
        }
        pending.last_seq = Some(event.seq);
        pending.last_line = line;
        if pending.calls.capacity() == 0 {
            // Most cases have several calls: one allocation instead of a few regrowths.
            pending.calls.reserve(CALLS_HINT);
        }
        if pending.request.is_some() {
            // As `accept`, with one copy of the event (when reported) instead of two.
            self.stats.accepted += 1;
            if self.emit_events {
                out.push(Item::Event(Box::new(Accepted { line, event: (*event).clone() })));
            }
            if pending.views.capacity() == 0 {
                pending.views.reserve(pending.calls.capacity());
            }
            pending.views.push(obs.observe(&event));
        }
        pending.calls.push((line, event));
    }

    fn push_end(
        &mut self,
        line: u64,
        open: Option<usize>,
        event: Box<Event>,
        out: &mut Vec<Item>,
        obs: &mut dyn Observer,
    ) {
        let Some((i, pending)) = self.open_entry(open) else {
            let detail = format!("`end` for request `{}`, which has no `request` event", event.request_id);
            self.reject_event(line, &event, RejectReason::NoRequestEvent, detail, out);
            self.closed.insert(id_hash(&event.request_id));
            return;
        };
        if let Some((reason, detail)) = Self::seq_error(pending.last_seq, event.seq) {
            self.reject_event(line, &event, reason, detail, out);
            return;
        }
        let Some((id, pending)) = self.pending.swap_remove_index(i) else {
            return;
        };
        self.closed.insert(id_hash(&id));
        if pending.request.is_some() {
            self.accept(line, &event, out, obs);
        }
        self.complete(id, pending, Some((line, event)), out);
    }

    /// Emits a case under `id` (its pending key, which the case takes
    /// over), or rejects its held calls when it has no request.
    fn complete(&mut self, id: String, pending: Pending, end: Option<(u64, Box<Event>)>, out: &mut Vec<Item>) {
        match pending.request {
            Some((request_line, request)) => {
                self.stats.cases += 1;
                out.push(Item::Case(Box::new(Case {
                    request_id: id,
                    request,
                    request_line,
                    calls: pending.calls,
                    views: pending.views,
                    first_line: pending.first_line,
                    end_line: end.map(|(l, _)| l),
                })));
            }
            None => {
                let mut orphans = pending.calls;
                orphans.extend(end);
                for (line, event) in orphans {
                    let detail = format!("request `{}` has no `request` event", event.request_id);
                    self.reject_event(line, &event, RejectReason::NoRequestEvent, detail, out);
                }
            }
        }
    }

    /// End of input: closes every open case, in order of first line.
    pub fn finish(&mut self, out: &mut Vec<Item>) {
        let mut rest: Vec<(String, Pending)> = self.pending.drain(..).collect();
        rest.sort_by_key(|(_, p)| p.first_line);
        for (id, pending) in rest {
            self.complete(id, pending, None, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::event::EventKind;

    fn ev(id: &str, seq: u64, kind: EventKind) -> Event {
        let mut e = crate::runtime::ingress::spans::blank(id, kind);
        e.seq = seq;
        e
    }

    /// Short labels for what came out: `E1` event at line 1, `C:r@1` case, `R3:reason`.
    fn run(events: &[(u64, &str, u64, EventKind)]) -> Vec<String> {
        let mut a = CaseAssembler::new("f", true);
        let mut out = Vec::new();
        for (line, id, seq, kind) in events {
            a.push(*line, ev(id, *seq, *kind), &mut out);
        }
        a.finish(&mut out);
        out.iter()
            .map(|i| match i {
                Item::Event(acc) => format!("E{}", acc.line),
                Item::Case(c) => format!(
                    "C:{}@{}[{}]",
                    c.request_id,
                    c.first_line,
                    c.calls.iter().map(|(l, _)| l.to_string()).collect::<Vec<_>>().join(",")
                ),
                Item::Rejected(r) => format!("R{}:{}", r.line, r.reason),
            })
            .collect()
    }

    use EventKind::{End, ModelCall as M, Request as Q};

    /// Numbers the calls it sees, so a view says which observation it was.
    struct Count(u32);

    impl Observer for Count {
        fn observe(&mut self, e: &Event) -> FleetView {
            self.0 += 1;
            // Odd observation numbers open the breaker; requests and ends count too.
            FleetView { breaker_open: self.0 % 2 == 1, retry_budget_exhausted: e.kind == EventKind::ToolCall }
        }
    }

    #[test]
    fn every_accepted_event_is_observed_once_and_views_follow_their_calls() {
        let mut a = CaseAssembler::new("f", false);
        let mut obs = Count(0);
        let mut out = Vec::new();
        // A call held for its request, the request, a rejected duplicate, a tool call, the end.
        a.push_observed(1, Box::new(ev("r", 2, M)), &mut out, &mut obs);
        a.push_observed(2, Box::new(ev("r", 1, Q)), &mut out, &mut obs);
        a.push_observed(3, Box::new(ev("r", 2, M)), &mut out, &mut obs);
        a.push_observed(4, Box::new(ev("r", 3, EventKind::ToolCall)), &mut out, &mut obs);
        a.push_observed(5, Box::new(ev("r", 4, End)), &mut out, &mut obs);
        assert_eq!(obs.0, 4, "request, held call, tool call and end; the duplicate is not observed");
        let case = out.iter().find_map(|i| if let Item::Case(c) = i { Some(c) } else { None }).unwrap();
        // Observation 1 was the request, 2 the held call, 3 the tool call.
        assert_eq!(
            case.views,
            vec![
                FleetView { breaker_open: false, retry_budget_exhausted: false },
                FleetView { breaker_open: true, retry_budget_exhausted: true },
            ]
        );
        assert_eq!(case.views.len(), case.calls.len());
    }

    #[test]
    fn interleaved_requests_complete_in_order() {
        let got =
            run(&[(1, "a", 0, Q), (2, "b", 0, Q), (3, "a", 1, M), (4, "b", 1, M), (5, "b", 2, End), (6, "a", 2, M)]);
        assert_eq!(got, ["E1", "E2", "E3", "E4", "E5", "C:b@2[4]", "E6", "C:a@1[3,6]"]);
    }

    #[test]
    fn seq_rules() {
        let got = run(&[(1, "a", 0, Q), (2, "a", 2, M), (3, "a", 2, M), (4, "a", 1, M), (5, "a", 3, M)]);
        assert_eq!(got, ["E1", "E2", "R3:duplicate_seq", "R4:out_of_order_seq", "E5", "C:a@1[2,5]"]);
    }

    #[test]
    fn calls_before_their_request_are_held() {
        let got = run(&[(1, "a", 1, M), (2, "a", 2, M), (3, "a", 0, Q), (4, "a", 3, M)]);
        assert_eq!(got, ["E3", "E1", "E2", "E4", "C:a@1[1,2,4]"]);
        // A late request must come before the held calls in seq.
        let got = run(&[(1, "a", 1, M), (2, "a", 1, Q), (3, "a", 0, Q)]);
        assert_eq!(got, ["R2:duplicate_seq", "E3", "E1", "C:a@1[1]"]);
    }

    #[test]
    fn orphans_duplicates_and_late_events() {
        let got =
            run(&[(1, "x", 1, M), (2, "x", 2, M), (3, "a", 0, Q), (4, "a", 0, Q), (5, "a", 1, End), (6, "a", 2, M)]);
        assert_eq!(
            got,
            [
                "E3",
                "R4:duplicate_request",
                "E5",
                "C:a@3[]",
                "R6:event_after_end",
                "R1:no_request_event",
                "R2:no_request_event"
            ]
        );
        // An `end` without a request closes the orphans at once.
        let got = run(&[(1, "x", 1, M), (2, "x", 2, End), (3, "x", 3, M)]);
        assert_eq!(got, ["R1:no_request_event", "R2:no_request_event", "R3:event_after_end"]);
        let got = run(&[(1, "y", 1, End)]);
        assert_eq!(got, ["R1:no_request_event"]);
    }

    #[test]
    fn open_cases_flush_by_first_line_and_stats_add_up() {
        let mut a = CaseAssembler::new("f", false);
        let mut out = Vec::new();
        for (line, id) in [(1, "c"), (2, "a"), (3, "b")] {
            a.push(line, ev(id, 0, Q), &mut out);
        }
        a.push(4, ev("a", 1, End), &mut out);
        a.finish(&mut out);
        let ids: Vec<&str> =
            out.iter().filter_map(|i| if let Item::Case(c) = i { Some(c.request_id.as_str()) } else { None }).collect();
        assert_eq!(ids, ["a", "c", "b"]);
        assert_eq!(a.stats().accepted, 4);
        assert_eq!(a.stats().cases, 3);
        assert!(out.iter().all(|i| !matches!(i, Item::Event(_))), "events off");
    }

    #[test]
    fn idle_cases_close_and_late_events_are_rejected() {
        use EventKind::{ModelCall as M, Request as Q};
        let mut a = CaseAssembler::new("f", false).close_idle_after(Some(3));
        let mut out = Vec::new();
        // Requests a..f, one event each, then a late call for `a`.
        for (line, id) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            a.push(line as u64 + 1, ev(id, 1, Q), &mut out);
            assert!(a.in_flight() <= 5, "in flight {} at line {}", a.in_flight(), line + 1);
        }
        a.push(7, ev("a", 2, M), &mut out);
        a.finish(&mut out);
        let cases: Vec<&str> = out
            .iter()
            .filter_map(|i| match i {
                Item::Case(c) => Some(c.request_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(cases, ["a", "b", "c", "d", "e", "f"], "every case is emitted once, in first-line order");
        let late: Vec<&Rejection> = out
            .iter()
            .filter_map(|i| match i {
                Item::Rejected(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].reason, RejectReason::EventAfterEnd);
        assert!(late[0].detail.contains("3 idle lines"), "{}", late[0].detail);
    }

    #[test]
    fn without_a_limit_cases_wait_for_the_end_of_input() {
        let mut a = CaseAssembler::new("f", false);
        let mut out = Vec::new();
        for (line, id) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            a.push(line as u64 + 1, ev(id, 1, EventKind::Request), &mut out);
        }
        assert_eq!(a.in_flight(), 6);
        assert!(out.is_empty());
    }
}
