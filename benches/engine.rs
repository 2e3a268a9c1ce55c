//! Benchmarks of the engine's stages, each beside a baseline measured in
//! the same run: compile, table evaluation against a hand-written `match`
//! of the same policy, a full decision, and an end-to-end replay against a
//! parse-only pass over the same lines. docs/performance.md quotes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rcv::compile::{self, CompiledPolicy};
use rcv::diag::Source;
use rcv::runtime::decide::{Input, decide};
use rcv::runtime::event::{Event, Outcome, Risk};
use rcv::runtime::facts::{fill_event, fill_state};
use rcv::runtime::state::{FleetView, State};
use rcv::schema::Facts;

fn policy() -> (Source, CompiledPolicy) {
    let text = std::fs::read_to_string("policies/tool_chain.rcv").unwrap();
    let source = Source::new("policies/tool_chain.rcv", text);
    let build = compile::build(&source);
    let policy = build.policy.expect("tool_chain.rcv compiles");
    (source, policy)
}

fn fixture_calls() -> Vec<(Event, Event)> {
    use rcv::runtime::event::EventKind;
    let text = std::fs::read_to_string("fixtures/tool_chain_failures.ndjson").unwrap();
    let mut events: Vec<Event> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for e in &mut events {
        if let Some(err) = e.error.as_mut() {
            rcv::runtime::ingress::provider::normalize(err, &mut e.output);
        }
    }
    let requests: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::Request).collect();
    events
        .iter()
        .filter(|e| e.outcome == Some(Outcome::Error))
        .filter_map(|e| requests.iter().find(|r| r.request_id == e.request_id).map(|r| (e.clone(), (*r).clone())))
        .collect()
}

/// The same classify and recover rules as policies/tool_chain.rcv, written
/// by hand: the baseline the table is measured against.
mod hand {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Class {
        Quota,
        RateLimited,
        Server,
        Context,
        Auth,
        Content,
        Schema,
        Timeout,
        Unknown,
    }

    pub fn classify(e: &Event) -> Class {
        let err = e.error.as_ref();
        let status = err.and_then(|x| x.http_status);
        let ty = err.and_then(|x| x.kind.as_deref());
        let code = err.and_then(|x| x.code.as_deref());
        let msg = err.and_then(|x| x.message.as_deref());
        let finish = e.output.as_ref().and_then(|o| o.finish_reason.as_deref());
        if code == Some("insufficient_quota") {
            Class::Quota
        } else if status == Some(429) || matches!(ty, Some("rate_limit_exceeded" | "rate_limit_error")) {
            Class::RateLimited
        } else if matches!(status, Some(500 | 502 | 503 | 529)) || ty == Some("overloaded_error") {
            Class::Server
        } else if code == Some("context_length_exceeded")
            || msg.is_some_and(|m| m.to_ascii_lowercase().contains("prompt is too long"))
        {
            Class::Context
        } else if matches!(status, Some(401 | 403)) || ty == Some("authentication_error") {
            Class::Auth
        } else if finish == Some("SAFETY") || code == Some("content_filter") {
            Class::Content
        } else if e.output.as_ref().and_then(|o| o.schema_valid) == Some(false) {
            Class::Schema
        } else if msg.is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("timed out") || m.contains("timeout") || m.contains("time out") || m.contains("timedout")
        }) {
            Class::Timeout
        } else {
            Class::Unknown
        }
    }

    /// Returns the index of the recover rule that matches.
    pub fn recover(
        class: Class,
        risk: Option<Risk>,
        side_effects: bool,
        attempt: u32,
        resets: u32,
        primary: bool,
    ) -> usize {
        match class {
            _ if risk >= Some(Risk::High) && side_effects => 0,
            Class::RateLimited | Class::Server | Class::Timeout if attempt < 3 => 1,
            Class::Schema if attempt < 2 => 2,
            Class::Context if resets < 1 => 3,
            Class::Content | Class::Auth | Class::Quota => 4,
            _ if primary => 5,
            _ => 6,
        }
    }
}

fn bench_compile(c: &mut Criterion) {
    let text = std::fs::read_to_string("policies/tool_chain.rcv").unwrap();
    let source = Source::new("policies/tool_chain.rcv", text);
    c.bench_function("compile/tool_chain (parse+check+compile+analyse)", |b| {
        b.iter(|| black_box(compile::build(black_box(&source))))
    });
}

fn bench_decide(c: &mut Criterion) {
    let (_, policy) = policy();
    let calls = fixture_calls();
    let state = State { attempt: 1, ..State::default() };
    let prepared: Vec<Facts<'_>> = calls
        .iter()
        .map(|(e, r)| {
            let mut f = Facts::default();
            fill_event(&mut f, &policy, e, r);
            fill_state(&mut f, &state, None, FleetView::default());
            f
        })
        .collect();
    // The baseline is only fair if it is the same policy: both must agree on every event.
    for ((e, _), f) in calls.iter().zip(&prepared) {
        let table = policy.classify(f).map(|h| policy.source.classify[h.rule].class.clone());
        let by_hand = format!("{:?}", hand::classify(e));
        let expected = match by_hand.as_str() {
            "Quota" => "quota_exhausted",
            "RateLimited" => "rate_limited",
            "Server" => "server_error",
            "Context" => "context_overflow",
            "Auth" => "auth_failed",
            "Content" => "content_filtered",
            "Schema" => "schema_violation",
            "Timeout" => "timeout",
            _ => "unknown",
        };
        assert_eq!(table.as_deref(), Some(expected), "table and hand-written baseline disagree on {e:?}");
    }
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(prepared.len() as u64));
    g.bench_function("table classify+recover, input prepared", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for f in &prepared {
                let class = policy.classify(f).map_or(0, |h| h.rule);
                let rule = policy.recover(f).map_or(0, |h| h.rule);
                n = n.wrapping_add(class + rule);
            }
            black_box(n)
        })
    });
    g.bench_function("hand-written match, same policy", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for (e, r) in &calls {
                let class = hand::classify(e);
                let side = e.tool.as_ref().is_some_and(|t| t.side_effects);
                let primary = e.model.as_deref() == Some("gpt-4o");
                n = n.wrapping_add(hand::recover(class, r.risk, side, 1, 0, primary) + class as usize);
            }
            black_box(n)
        })
    });
    g.bench_function("full decide step (facts, caps, jitter, state)", |b| {
        b.iter(|| {
            for (e, r) in &calls {
                let input = Input { call: e, request: r, fleet: FleetView::default(), seed: 0, lines: None };
                black_box(decide(&policy, &state, &input));
            }
        })
    });
    g.finish();
}

fn bench_replay(c: &mut Criterion) {
    let text = std::fs::read_to_string("fixtures/tool_chain_failures.ndjson").unwrap();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse-only: serde_json lines into Event", |b| {
        b.iter(|| {
            let n = text.lines().filter_map(|l| serde_json::from_str::<Event>(l).ok()).count();
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_compile, bench_decide, bench_replay);
criterion_main!(benches);
