//! Peer comparison: the classify and recover rules of two policies
//! (policies/tool_chain.rcv and the generated 500-rule policy of `rcv gen
//! policy --rules 500`) in rcv's decision table, in hand-written Rust, in
//! CEL (`cel`), Rego (`regorus`) and Cedar (`cedar-policy`). The CEL, Rego
//! and Cedar programs are translated from the checked conditions (no rule
//! is written by hand twice); the hand-written baseline of the generated
//! policy is Rust source written by build.rs from the same conditions.
//!
//! For every input it checks that all engines pick the same classify rule
//! and the same recover rule, both from prepared inputs and end to end,
//! then times each engine two ways: on prepared inputs (each engine's own
//! input built up front) and end to end (from the NDJSON line of the failed
//! call: parse, build the input, classify, recover). A decision is one
//! classify plus one recover.
//!
//! Run from this directory: `cargo run --release`.

mod cedar_peer;
mod cel_peer;
mod hand;
mod rego_peer;
mod rules;

use std::hint::black_box;
use std::time::Instant;

use rcv::compile::{self, CompiledPolicy};
use rcv::diag::Source;
use rcv::runtime::event::{Event, EventKind, Outcome};
use rcv::runtime::facts::{fill_event, fill_state};
use rcv::runtime::ingress::native::normalize_errors;
use rcv::runtime::state::{FleetView, State};
use rcv::schema::Facts;

use rules::Rules;

/// The generated policy's hand-written baseline (build.rs).
mod wide_hand {
    use rcv::schema::{Fact, Facts};

    #[allow(dead_code)]
    fn rank(f: Fact<'_>) -> Option<f64> {
        match f {
            Fact::Str(s) => crate::rules::rank(s).map(|r| r as f64),
            _ => None,
        }
    }

    include!(concat!(env!("OUT_DIR"), "/wide_hand.rs"));
}

/// An engine evaluating one ordered rule list.
pub trait Peer {
    type Input;
    /// The engine's input for one decision, built from rcv's facts.
    fn prepare(&self, f: &Facts<'_>) -> Self::Input;
    /// The index of the first rule that holds.
    fn first(&mut self, input: &Self::Input) -> Option<usize>;
}

const WIDE_RULES: usize = 500;
const WIDE_INPUTS: usize = 1000;
/// Each sample runs whole passes over the inputs for at least this long.
const SAMPLE_SECS: f64 = 0.05;
/// At most this many seconds per measurement: slow engines get fewer samples.
const MEASURE_SECS: f64 = 2.0;
const MAX_SAMPLES: usize = 15;
const MIN_SAMPLES: usize = 5;

/// One policy and its inputs: failed calls as NDJSON lines, each with its
/// request and the request's state at that call.
struct Bench {
    title: String,
    policy: CompiledPolicy,
    lines: Vec<String>,
    calls: Vec<Event>,
    requests: Vec<Event>,
    request_of: Vec<usize>,
    states: Vec<State>,
}

type Answer = (Option<usize>, Option<usize>);

impl Bench {
    fn request(&self, i: usize) -> &Event {
        &self.requests[self.request_of[i]]
    }

    /// The prepared inputs: every fact of the call, the state and the class
    /// the table gives it.
    fn facts(&self) -> Vec<Facts<'_>> {
        (0..self.calls.len())
            .map(|i| {
                let mut f = Facts::default();
                fill_event(&mut f, &self.policy, &self.calls[i], self.request(i));
                let class = self.policy.classify(&f).and_then(|h| self.policy.source.classify.get(h.rule));
                fill_state(&mut f, &self.states[i], class.map(|c| c.class.as_str()), FleetView::default());
                f
            })
            .collect()
    }

    /// From each line to the decision: parse, normalise, build the facts,
    /// classify, add the class and the state, recover.
    fn end_to_end(
        &self,
        mut classify: impl FnMut(&Facts<'_>) -> Option<usize>,
        mut recover: impl FnMut(&Facts<'_>) -> Option<usize>,
        mut out: Option<&mut Vec<Answer>>,
    ) -> usize {
        let mut sum = 0usize;
        for (i, line) in self.lines.iter().enumerate() {
            let Ok(mut e) = serde_json::from_str::<Event>(line) else { continue };
            normalize_errors(&mut e);
            let mut f = Facts::default();
            fill_event(&mut f, &self.policy, &e, self.request(i));
            let c = classify(&f);
            let class = c.and_then(|c| self.policy.source.classify.get(c)).map(|x| x.class.as_str());
            fill_state(&mut f, &self.states[i], class, FleetView::default());
            let r = recover(&f);
            sum = sum.wrapping_add(c.unwrap_or(0) + r.unwrap_or(0));
            if let Some(o) = out.as_deref_mut() {
                o.push((c, r));
            }
        }
        sum
    }
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build(name: &str, text: String) -> CompiledPolicy {
    let source = Source::new(name, text);
    let build = compile::build(&source);
    assert!(!build.has_errors(), "{name} has errors");
    build.policy.unwrap_or_else(|| panic!("{name} compiles"))
}

fn parse(line: &str) -> Option<Event> {
    let mut e: Event = serde_json::from_str(line).ok()?;
    normalize_errors(&mut e);
    Some(e)
}

/// The failed calls of the bundled fixture, attempts and resets varied so
/// that recover reaches all its rules.
fn tool_chain() -> Bench {
    let text = std::fs::read_to_string(root().join("policies/tool_chain.rcv")).expect("policies/tool_chain.rcv");
    let policy = build("policies/tool_chain.rcv", text);
    let fixture = std::fs::read_to_string(root().join("fixtures/tool_chain_failures.ndjson")).expect("the fixture");
    let events: Vec<(&str, Event)> = fixture.lines().filter_map(|l| parse(l).map(|e| (l, e))).collect();
    let requests: Vec<Event> =
        events.iter().filter(|(_, e)| e.kind == EventKind::Request).map(|(_, e)| e.clone()).collect();
    let mut b = Bench {
        title: String::new(),
        policy,
        lines: Vec::new(),
        calls: Vec::new(),
        requests,
        request_of: Vec::new(),
        states: Vec::new(),
    };
    for (line, e) in events.iter().filter(|(_, e)| e.outcome == Some(Outcome::Error)) {
        let Some(r) = b.requests.iter().position(|r| r.request_id == e.request_id) else { continue };
        let i = b.calls.len();
        b.lines.push(line.to_string());
        b.calls.push(e.clone());
        b.request_of.push(r);
        b.states.push(State { attempt: 1 + (i % 4) as u32, resets: (i % 2) as u32, ..State::default() });
    }
    b.title =
        format!("policies/tool_chain.rcv: the {} failed calls of fixtures/tool_chain_failures.ndjson", b.calls.len());
    b
}

/// Failed tool calls spread over the generated policy's classes, models,
/// risk levels, side effects and attempts, from a fixed linear congruential
/// walk, written as native NDJSON lines.
fn wide() -> Bench {
    let policy = build("wide.rcv", rcv::cli::r#gen::policy(WIDE_RULES));
    assert_eq!(policy.source.recover.len(), WIDE_RULES + 1, "build.rs and main.rs generate the same policy");
    const MODELS: [&str; 5] = ["gpt-4o", "claude-3-5-haiku", "gpt-4o-mini", "claude-3-5-sonnet", "gpt-4.1"];
    let requests: Vec<Event> = rcv::schema::RISK_LEVELS
        .iter()
        .enumerate()
        .filter_map(|(i, risk)| {
            let line = serde_json::json!({"request_id": format!("w{i}"), "seq": 1, "kind": "request", "risk": risk});
            parse(&line.to_string())
        })
        .collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: usize| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((x >> 33) as usize) % m
    };
    let mut b = Bench {
        title: String::new(),
        policy,
        lines: Vec::new(),
        calls: Vec::new(),
        requests,
        request_of: Vec::new(),
        states: Vec::new(),
    };
    for i in 0..WIDE_INPUTS {
        let class = next(17);
        let error = match (class, next(2)) {
            (16, _) => serde_json::json!({"http_status": 500, "message": "internal error"}),
            (c, 0) => serde_json::json!({"http_status": 430 + c, "message": "provider error"}),
            (c, _) => serde_json::json!({"code": format!("code_{c}"), "message": "provider error"}),
        };
        let request = next(b.requests.len());
        let line = serde_json::json!({
            "request_id": format!("w{request}"),
            "seq": 2 + i,
            "kind": "tool_call",
            "model": MODELS[next(MODELS.len())],
            "tool": {"name": "search", "side_effects": next(2) == 1},
            "attempt": 1,
            "outcome": "error",
            "error": error,
        })
        .to_string();
        let Some(e) = parse(&line) else { panic!("a generated line does not parse: {line}") };
        b.lines.push(line);
        b.calls.push(e);
        b.request_of.push(request);
        b.states.push(State { attempt: 1 + next(6) as u32, ..State::default() });
    }
    b.title = format!("generated policy (`rcv gen policy --rules {WIDE_RULES}`): {WIDE_INPUTS} generated failed calls");
    b
}

/// Nanoseconds per decision of each sample: each sample repeats `pass` for
/// at least SAMPLE_SECS.
fn sample(decisions: usize, mut pass: impl FnMut() -> usize) -> Vec<f64> {
    let mut sink = 0usize;
    let mut reps = 1usize;
    let mut once;
    loop {
        let start = Instant::now();
        for _ in 0..reps {
            sink = sink.wrapping_add(pass());
        }
        once = start.elapsed().as_secs_f64();
        if once >= SAMPLE_SECS {
            break;
        }
        reps = (reps as f64 * SAMPLE_SECS / once.max(1e-9) * 1.2).ceil().max(reps as f64 * 2.0) as usize;
    }
    let samples = ((MEASURE_SECS / once) as usize).clamp(MIN_SAMPLES, MAX_SAMPLES);
    let out = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                sink = sink.wrapping_add(pass());
            }
            start.elapsed().as_nanos() as f64 / (reps * decisions) as f64
        })
        .collect();
    black_box(sink);
    out
}

struct Row {
    name: String,
    prepared: Vec<f64>,
    e2e: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{} ({}..{})", num(median(v)), num(lo), num(hi))
}

/// Three significant figures, thousands separated.
fn num(x: f64) -> String {
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{x:.digits$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{grouped}.{f}"),
        None => grouped,
    }
}

fn rate(ns: f64) -> String {
    let per_s = 1e9 / ns;
    if per_s >= 1e6 { format!("{:.2} M/s", per_s / 1e6) } else { format!("{:.1} k/s", per_s / 1e3) }
}

fn ratio(x: f64) -> String {
    if x >= 10.0 { format!("{x:.0}x") } else { format!("{x:.2}x") }
}

/// Checks one engine against the table on every input, prepared and end to
/// end; returns the disagreements.
fn agree(name: &str, expected: &[Answer], prepared: &[Answer], e2e: &[Answer]) -> usize {
    let bad = expected.iter().zip(prepared).filter(|(a, b)| a != b).count()
        + expected.iter().zip(e2e).filter(|(a, b)| a != b).count()
        + expected.len().abs_diff(prepared.len())
        + expected.len().abs_diff(e2e.len());
    println!("- {name}: {bad} disagreements on {} inputs (prepared and end to end)", expected.len());
    bad
}

fn measure_peer<C: Peer, R: Peer>(
    b: &Bench,
    facts: &[Facts<'_>],
    expected: &[Answer],
    name: String,
    mut c: C,
    mut r: R,
    disagreements: &mut usize,
) -> Row {
    let ci: Vec<C::Input> = facts.iter().map(|f| c.prepare(f)).collect();
    let ri: Vec<R::Input> = facts.iter().map(|f| r.prepare(f)).collect();
    let prepared: Vec<Answer> = ci.iter().zip(&ri).map(|(x, y)| (c.first(x), r.first(y))).collect();
    let mut e2e = Vec::new();
    b.end_to_end(
        |f| {
            let i = c.prepare(f);
            c.first(&i)
        },
        |f| {
            let i = r.prepare(f);
            r.first(&i)
        },
        Some(&mut e2e),
    );
    *disagreements += agree(&name, expected, &prepared, &e2e);
    let d = facts.len();
    let p = sample(d, || ci.iter().zip(&ri).fold(0, |n, (x, y)| n + c.first(x).unwrap_or(0) + r.first(y).unwrap_or(0)));
    let e = sample(d, || {
        b.end_to_end(
            |f| {
                let i = c.prepare(f);
                c.first(&i)
            },
            |f| {
                let i = r.prepare(f);
                r.first(&i)
            },
            None,
        )
    });
    Row { name, prepared: p, e2e: e }
}

fn run(b: &Bench, tool_chain: bool) -> usize {
    let policy = &b.policy;
    let facts = b.facts();
    let expected: Vec<Answer> =
        facts.iter().map(|f| (policy.classify(f).map(|h| h.rule), policy.recover(f).map(|h| h.rule))).collect();
    let reached: std::collections::BTreeSet<_> = expected.iter().map(|a| a.1).collect();
    println!("\n## {}\n", b.title);
    println!(
        "{} classify and {} recover rules; the inputs reach {} recover rules. Agreement with rcv's table:",
        policy.source.classify.len(),
        policy.source.recover.len(),
        reached.len()
    );
    let mut bad = 0usize;
    let classify = Rules::new(policy.source.classify.iter().map(|r| r.guard.clone()).collect());
    let recover = Rules::new(policy.source.recover.iter().map(|r| r.guard.clone()).collect());
    let d = facts.len();
    let mut rows = Vec::new();

    // rcv: the compiled table.
    let mut e2e = Vec::new();
    b.end_to_end(|f| policy.classify(f).map(|h| h.rule), |f| policy.recover(f).map(|h| h.rule), Some(&mut e2e));
    bad += agree("rcv table (end to end against prepared)", &expected, &expected, &e2e);
    rows.push(Row {
        name: "rcv decision table".to_string(),
        prepared: sample(d, || {
            facts
                .iter()
                .fold(0, |n, f| n + policy.classify(f).map_or(0, |h| h.rule) + policy.recover(f).map_or(0, |h| h.rule))
        }),
        e2e: sample(d, || {
            b.end_to_end(|f| policy.classify(f).map(|h| h.rule), |f| policy.recover(f).map(|h| h.rule), None)
        }),
    });

    // The hand-written baseline.
    if tool_chain {
        let by_hand = |i: usize, e: &Event| {
            let c = hand::classify(e);
            (c, hand::recover(c, e, b.request(i), &b.states[i]))
        };
        let prepared: Vec<Answer> =
            b.calls.iter().enumerate().map(|(i, e)| by_hand(i, e)).map(|(c, r)| (Some(c), Some(r))).collect();
        let e2e: Vec<Answer> = b
            .lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| parse(l).map(|e| by_hand(i, &e)))
            .map(|(c, r)| (Some(c), Some(r)))
            .collect();
        bad += agree("hand-written Rust", &expected, &prepared, &e2e);
        rows.push(Row {
            name: "hand-written Rust `match` (parsed events)".to_string(),
            prepared: sample(d, || {
                b.calls.iter().enumerate().fold(0, |n, (i, e)| {
                    let (c, r) = by_hand(i, e);
                    n + c + r
                })
            }),
            e2e: sample(d, || {
                b.lines.iter().enumerate().fold(0, |n, (i, l)| match parse(l) {
                    Some(e) => {
                        let (c, r) = by_hand(i, &e);
                        n + c + r
                    }
                    None => n,
                })
            }),
        });
    } else {
        let prepared: Vec<Answer> = facts.iter().map(|f| (wide_hand::classify(f), wide_hand::recover(f))).collect();
        let mut e2e = Vec::new();
        b.end_to_end(wide_hand::classify, wide_hand::recover, Some(&mut e2e));
        bad += agree("hand-written Rust (generated if-chains)", &expected, &prepared, &e2e);
        rows.push(Row {
            name: "hand-written Rust if-chains (build.rs, facts)".to_string(),
            prepared: sample(d, || {
                facts
                    .iter()
                    .fold(0, |n, f| n + wide_hand::classify(f).unwrap_or(0) + wide_hand::recover(f).unwrap_or(0))
            }),
            e2e: sample(d, || b.end_to_end(wide_hand::classify, wide_hand::recover, None)),
        });
    }

    let cel = format!("CEL (cel {})", env!("V_CEL"));
    rows.push(measure_peer(
        b,
        &facts,
        &expected,
        cel,
        cel_peer::Cel::new(&classify),
        cel_peer::Cel::new(&recover),
        &mut bad,
    ));
    let rego = format!("Rego (regorus {})", env!("V_REGORUS"));
    rows.push(measure_peer(
        b,
        &facts,
        &expected,
        rego,
        rego_peer::Rego::new(&classify),
        rego_peer::Rego::new(&recover),
        &mut bad,
    ));
    let regex_note = if classify.regexes.is_empty() && recover.regexes.is_empty() { "" } else { ", regex outside" };
    let cedar = format!("Cedar (cedar-policy {}{regex_note})", env!("V_CEDAR"));
    rows.push(measure_peer(
        b,
        &facts,
        &expected,
        cedar,
        cedar_peer::Cedar::new(&classify),
        cedar_peer::Cedar::new(&recover),
        &mut bad,
    ));

    let rcv_p = median(&rows[0].prepared);
    let rcv_e = median(&rows[0].e2e);
    println!();
    println!(
        "| engine | ns/decision, input prepared: median (min..max) | decisions/s | end to end from NDJSON: ns/decision, median (min..max) | decisions/s | samples | time / rcv (prepared, end to end) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let (p, e) = (median(&row.prepared), median(&row.e2e));
        println!(
            "| {} | {} | {} | {} | {} | {}, {} | {}, {} |",
            row.name,
            spread(&row.prepared),
            rate(p),
            spread(&row.e2e),
            rate(e),
            row.prepared.len(),
            row.e2e.len(),
            ratio(p / rcv_p),
            ratio(e / rcv_e),
        );
    }
    let hand_p = median(&rows[1].prepared);
    let hand_e = median(&rows[1].e2e);
    let fastest_p = rows[2..].iter().map(|r| median(&r.prepared)).fold(f64::INFINITY, f64::min);
    let fastest_e = rows[2..].iter().map(|r| median(&r.e2e)).fold(f64::INFINITY, f64::min);
    let parse_only = sample(d, || b.lines.iter().filter_map(|l| parse(l)).count());
    println!();
    println!(
        "Parsing alone (each line into an event, errors normalised, nothing decided): {} ns per line",
        spread(&parse_only)
    );
    println!(
        "Targets (prepared, end to end): rcv / hand-written = {}, {} (at most 4x); fastest peer / rcv = {}, {} (at least 20x)",
        ratio(rcv_p / hand_p),
        ratio(rcv_e / hand_e),
        ratio(fastest_p / rcv_p),
        ratio(fastest_e / rcv_e),
    );
    bad
}

fn main() {
    let show = std::env::args().any(|a| a == "--show-programs");
    let benches = [(tool_chain(), true), (wide(), false)];
    if show {
        for (b, _) in &benches {
            let classify = Rules::new(b.policy.source.classify.iter().map(|r| r.guard.clone()).collect());
            let recover = Rules::new(b.policy.source.recover.iter().map(|r| r.guard.clone()).collect());
            for (what, rules) in [("classify", &classify), ("recover", &recover)] {
                println!("# {} {what}\n## CEL", b.title);
                for t in cel_peer::Cel::new(rules).text {
                    println!("{t}");
                }
                println!("## Rego\n{}## Cedar", rego_peer::Rego::new(rules).text);
                for t in cedar_peer::Cedar::new(rules).text {
                    println!("{t}");
                }
            }
        }
        return;
    }
    println!(
        "Peer comparison: one decision is one classify plus one recover. Prepared: each engine's input built up front \
         (rcv: facts; hand-written: parsed events or facts; CEL: a context; Rego: an input value; Cedar: a request). \
         End to end: from the failed call's NDJSON line: parse into an event, build the input, classify, recover."
    );
    let mut bad = 0;
    for (b, tool_chain) in &benches {
        bad += run(b, *tool_chain);
    }
    println!("\nDisagreements in all: {bad}");
    if bad > 0 {
        std::process::exit(1);
    }
}
