#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The decision path allocates nothing: classify and recover on prepared
//! `Facts`, counted by a global allocator that records every allocation.

use rcv::compile::{self, CompiledPolicy};
use rcv::diag::Source;
use rcv::runtime::event::{Event, EventKind};
use rcv::runtime::facts::{fill_event, fill_state};
use rcv::runtime::state::{FleetView, State};
use rcv::schema::{Fact, Facts};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn build(name: &str, text: String) -> CompiledPolicy {
    let source = Source::new(name, text);
    compile::build(&source).policy.unwrap()
}

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

#[test]
fn classify_and_recover_allocate_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();

    // The bundled policy over every failed call of the fixture.
    let policy = build("tool_chain.rcv", std::fs::read_to_string("policies/tool_chain.rcv").unwrap());
    let text = std::fs::read_to_string("fixtures/tool_chain_failures.ndjson").unwrap();
    let events: Vec<Event> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let state = State { attempt: 1, ..State::default() };
    let mut prepared: Vec<Facts<'_>> = Vec::new();
    for e in events.iter().filter(|e| e.kind.is_call()) {
        let Some(r) = events.iter().find(|r| r.kind == EventKind::Request && r.request_id == e.request_id) else {
            continue;
        };
        let mut f = Facts::default();
        fill_event(&mut f, &policy, e, r);
        fill_state(&mut f, &state, Some("timeout"), FleetView::default());
        prepared.push(f);
    }
    assert!(prepared.len() > 100);
    // Warm up: the regex engine fills its per-thread cache on first use.
    for f in &prepared {
        std::hint::black_box((policy.classify(f), policy.recover(f), policy.accept(f)));
    }
    let before = blocks();
    let mut hits = 0usize;
    for _ in 0..3 {
        for f in &prepared {
            hits += usize::from(policy.classify(f).is_some());
            hits += usize::from(policy.recover(f).is_some());
            hits += usize::from(policy.accept(f).is_some());
        }
    }
    assert_eq!(blocks() - before, 0, "the decision path allocated");
    assert!(hits >= prepared.len() * 6, "every call is classified and recovered");

    // A wide generated policy: 500 recover rules.
    let wide = build("wide.rcv", rcv::cli::r#gen::policy(500));
    let classes = ["k0", "k3", "k7", "k15", "unknown"];
    let models = ["m0", "m1", "m2", "m3"];
    let mut inputs = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        for (j, model) in models.iter().enumerate() {
            let mut f = Facts::default();
            f.set("class", Fact::Str(class));
            f.set("model", Fact::Str(model));
            f.set("risk", Fact::Str(rcv::schema::RISK_LEVELS[(i + j) % 4]));
            f.set("tool.side_effects", Fact::Bool(j % 2 == 0));
            f.set("attempt", Fact::Num((1 + i) as f64));
            inputs.push(f);
        }
    }
    let before = blocks();
    let found = inputs.iter().filter(|f| wide.recover(f).is_some()).count();
    assert_eq!(blocks() - before, 0, "the wide policy's decision path allocated");
    assert_eq!(found, inputs.len());
}
