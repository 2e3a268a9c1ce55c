//! Benchmarks of the engine's stages, each beside a baseline measured in
//! the same run: compile, table evaluation against a hand-written `match`
//! of the same policy, a wide generated policy against a tree-walking
//! interpreter of its checked conditions, analysis of 1,000 rules, check
//! over 100 files, and an end-to-end replay against a parse-only pass over
//! the same bytes. docs/performance.md quotes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

// The binary's allocator (src/main.rs), so in-process figures match it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rcv::compile::{self, CompiledPolicy};
use rcv::diag::Source;
use rcv::runtime::decide::{Input, decide};
use rcv::runtime::event::{Event, Outcome, Risk};
use rcv::runtime::facts::{fill_event, fill_state};
use rcv::runtime::state::{FleetView, State};
use rcv::schema::{Fact, Facts};

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

/// The baseline for the wide policy: a tree-walking interpreter of the
/// checked conditions (`CheckedPolicy`), first match wins. Field paths are
/// resolved and regexes compiled once up front, so the comparison is of
/// evaluation strategy only: per-rule condition trees against the table.
mod walk {
    use rcv::check::ir::{Cond, Ord, Test, Value};
    use rcv::schema::{Fact, Facts, RISK_LEVELS, index_of};
    use regex::Regex;

    pub enum Node {
        True,
        Or(Vec<Node>),
        And(Vec<Node>),
        Not(Box<Node>),
        Atom { field: usize, metadata: Option<String>, test: Test, re: Option<Regex> },
    }

    pub fn resolve(c: &Cond) -> Node {
        match c {
            Cond::True => Node::True,
            Cond::Or(v) => Node::Or(v.iter().map(resolve).collect()),
            Cond::And(v) => Node::And(v.iter().map(resolve).collect()),
            Cond::Not(b) => Node::Not(Box::new(resolve(b))),
            Cond::Atom(a) => Node::Atom {
                field: index_of(&a.path).unwrap_or(usize::MAX),
                metadata: a.path.strip_prefix("metadata.").map(str::to_string),
                re: match &a.test {
                    Test::Matches(p) => Regex::new(p).ok(),
                    _ => None,
                },
                test: a.test.clone(),
            },
        }
    }

    fn eq(f: Fact<'_>, v: &Value) -> bool {
        match (f, v) {
            (Fact::Str(a), Value::Str(b) | Value::Sym(b)) => a == b,
            (Fact::Num(a), Value::Num(b)) => a == *b,
            (Fact::Bool(a), Value::Bool(b)) => a == *b,
            _ => false,
        }
    }

    fn num(f: Fact<'_>) -> Option<f64> {
        match f {
            Fact::Num(x) if !x.is_nan() => Some(x),
            Fact::Str(s) => RISK_LEVELS.iter().position(|r| *r == s).map(|i| i as f64),
            _ => None,
        }
    }

    pub fn eval(n: &Node, facts: &Facts<'_>) -> bool {
        match n {
            Node::True => true,
            Node::Or(v) => v.iter().any(|c| eval(c, facts)),
            Node::And(v) => v.iter().all(|c| eval(c, facts)),
            Node::Not(b) => !eval(b, facts),
            Node::Atom { field, metadata, test, re } => {
                let f = match metadata {
                    Some(k) => facts.metadata(k),
                    None => facts.get(*field),
                };
                match test {
                    Test::IsTrue => f == Fact::Bool(true),
                    Test::Present => f != Fact::Absent,
                    Test::Eq(v) => eq(f, v),
                    Test::In(vs) => vs.iter().any(|v| eq(f, v)),
                    Test::Cmp(op, x) => num(f).is_some_and(|y| match op {
                        Ord::Lt => y < *x,
                        Ord::Le => y <= *x,
                        Ord::Gt => y > *x,
                        Ord::Ge => y >= *x,
                    }),
                    Test::Matches(_) => match f {
                        Fact::Str(s) => re.as_ref().is_some_and(|r| r.is_match(s)),
                        _ => false,
                    },
                }
            }
        }
    }

    /// Index of the first rule whose guard holds (`None` guard: `otherwise`).
    pub fn first(rules: &[Option<Node>], facts: &Facts<'_>) -> Option<usize> {
        rules.iter().position(|g| g.as_ref().is_none_or(|n| eval(n, facts)))
    }
}

fn wide(rules: usize) -> CompiledPolicy {
    let source = Source::new("wide.rcv", rcv::cli::r#gen::policy(rules));
    let build = compile::build(&source);
    assert!(!build.has_errors(), "generated policy has errors");
    build.policy.expect("generated policy compiles")
}

const CLASSES: [&str; 17] =
    ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14", "k15", "unknown"];
const MODELS: [&str; 5] = ["m0", "m1", "m2", "m3", "gpt-4.1"];

/// Prepared inputs spread over the wide policy's rules: every class, model,
/// risk, side effect and attempt count, from a fixed linear congruential walk.
fn wide_facts(n: usize) -> Vec<Facts<'static>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: usize| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((x >> 33) as usize) % m
    };
    (0..n)
        .map(|_| {
            let mut f = Facts::default();
            f.set("class", Fact::Str(CLASSES[next(CLASSES.len())]));
            f.set("model", Fact::Str(MODELS[next(MODELS.len())]));
            f.set("risk", Fact::Str(rcv::schema::RISK_LEVELS[next(4)]));
            f.set("tool.side_effects", Fact::Bool(next(2) == 1));
            f.set("attempt", Fact::Num((1 + next(6)) as f64));
            f.set("resets", Fact::Num(0.0));
            f.set("fallbacks", Fact::Num(next(2) as f64));
            f
        })
        .collect()
}

fn bench_wide(c: &mut Criterion) {
    let policy = wide(500);
    let facts = wide_facts(1000);
    let guards: Vec<Option<walk::Node>> =
        policy.source.recover.iter().map(|r| r.guard.as_ref().map(walk::resolve)).collect();
    // Same policy, same answers: the baseline must agree with the table on every input.
    let mut spread = std::collections::BTreeSet::new();
    for f in &facts {
        let table = policy.recover(f).map(|h| h.rule);
        assert_eq!(table, walk::first(&guards, f), "table and interpreter disagree");
        spread.insert(table);
    }
    assert!(spread.len() > 100, "inputs reach many rules ({})", spread.len());
    let mut g = c.benchmark_group("wide500");
    g.throughput(Throughput::Elements(facts.len() as u64));
    g.bench_function("table recover, 500 rules", |b| {
        b.iter(|| facts.iter().fold(0usize, |n, f| n.wrapping_add(policy.recover(f).map_or(0, |h| h.rule))))
    });
    g.bench_function("tree-walking interpreter of the checked conditions, 500 rules", |b| {
        b.iter(|| facts.iter().fold(0usize, |n, f| n.wrapping_add(walk::first(&guards, f).unwrap_or(0))))
    });
    g.finish();

    // The interpreter against the table on the bundled policy too.
    let (_, tool) = policy_pair();
    let calls = fixture_calls();
    let state = State { attempt: 1, ..State::default() };
    let classes: Vec<Option<String>> = calls
        .iter()
        .map(|(e, r)| {
            let mut f = Facts::default();
            fill_event(&mut f, &tool, e, r);
            tool.classify(&f).map(|h| tool.source.classify[h.rule].class.clone())
        })
        .collect();
    let prepared: Vec<Facts<'_>> = calls
        .iter()
        .zip(&classes)
        .map(|((e, r), class)| {
            let mut f = Facts::default();
            fill_event(&mut f, &tool, e, r);
            fill_state(&mut f, &state, class.as_deref(), FleetView::default());
            f
        })
        .collect();
    let cg: Vec<Option<walk::Node>> =
        tool.source.classify.iter().map(|r| r.guard.as_ref().map(walk::resolve)).collect();
    let rg: Vec<Option<walk::Node>> = tool.source.recover.iter().map(|r| r.guard.as_ref().map(walk::resolve)).collect();
    for f in &prepared {
        assert_eq!(tool.classify(f).map(|h| h.rule), walk::first(&cg, f));
        assert_eq!(tool.recover(f).map(|h| h.rule), walk::first(&rg, f));
    }
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(prepared.len() as u64));
    g.bench_function("tree-walking interpreter classify+recover, input prepared", |b| {
        b.iter(|| {
            prepared.iter().fold(0usize, |n, f| {
                n.wrapping_add(walk::first(&cg, f).unwrap_or(0) + walk::first(&rg, f).unwrap_or(0))
            })
        })
    });
    g.finish();
}

fn policy_pair() -> (Source, CompiledPolicy) {
    policy()
}

fn bench_analysis(c: &mut Criterion) {
    let source = Source::new("wide1000.rcv", rcv::cli::r#gen::policy(1000));
    let mut g = c.benchmark_group("analysis");
    g.sample_size(20);
    g.bench_function("compile+analyse 1000 rules (parse, check, table, gaps, shadowing, termination)", |b| {
        b.iter(|| black_box(compile::build(black_box(&source))))
    });
    // 100 policy files: the bundled policies and generated ones of 5..104 rules.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for p in ["policies/tool_chain.rcv", "policies/default.rcv"] {
        files.push((p.to_string(), std::fs::read(p).unwrap()));
    }
    for i in 0..98 {
        files.push((format!("gen{i}.rcv"), rcv::cli::r#gen::policy(5 + i).into_bytes()));
    }
    g.bench_function("check 100 files (sequential)", |b| {
        b.iter(|| files.iter().map(|(n, bytes)| rcv::cli::check::diagnose(n, bytes.clone()).1.len()).sum::<usize>())
    });
    g.finish();
}

/// Takes the report counts as `rcv run` does, and counts the bytes of
/// encoded trace records it is handed instead of writing them.
#[derive(Default)]
struct NullSink {
    acc: rcv::report::Accumulator,
    bytes: usize,
}

impl rcv::runtime::driver::Sink<rcv::report::Accumulator> for NullSink {
    fn tally(&mut self) -> &mut rcv::report::Accumulator {
        &mut self.acc
    }
    fn merge(&mut self, batch: rcv::report::Accumulator) {
        self.acc.merge(batch);
    }
    fn encoded(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.bytes += bytes.len();
        Ok(())
    }
}

fn bench_end_to_end(c: &mut Criterion) {
    use rcv::runtime::driver::{Job, run};
    use rcv::runtime::ingress::{Format, Options, open_reader};
    let (source, policy) = policy();
    let world = rcv::runtime::world::World::default();
    let lines = rcv::span::Lines::new(&source.text);
    let mut bytes = Vec::new();
    rcv::cli::r#gen::write_trace(&mut bytes, 2000, 1, 1).unwrap();
    let mut g = c.benchmark_group("end_to_end");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse-only: serde_json lines into Event (generated trace, 2000 cases)", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(&bytes).unwrap();
            black_box(text.lines().filter_map(|l| serde_json::from_str::<Event>(l).ok()).count())
        })
    });
    let encoder = rcv::report::trace::RunRecords(
        rcv::report::trace::Encoder::new(&rcv::report::PolicyStamp::of(&policy)).unwrap(),
    );
    for jobs in [1, 2] {
        g.bench_function(format!("replay and encode the trace in memory (as rcv run), --jobs {jobs}"), |b| {
            b.iter(|| {
                let reader: Box<dyn std::io::BufRead + Send> = Box::new(std::io::Cursor::new(bytes.clone()));
                let stream = open_reader("gen", reader, Format::Native, Options::default()).unwrap();
                let job = Job { policy: &policy, lines: Some(&lines), world: &world, seed: 0, jobs };
                let mut sink = NullSink::default();
                run(&job, vec![stream], &encoder, &mut sink).unwrap();
                black_box(sink.bytes)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_compile, bench_decide, bench_wide, bench_analysis, bench_end_to_end, bench_replay);
criterion_main!(benches);
