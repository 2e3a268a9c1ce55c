//! `rcv explain`: snapshots of the text and JSON explanations of a few
//! fixture events, and agreement with `decide` on every failed event of the
//! bundled replay fixture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output, Stdio};

use rcv::compile::explain::{Block, explain_block, first_match};
use rcv::diag::Source;
use rcv::runtime::decide::{Input, accounted, decide};
use rcv::runtime::event::{Event, Outcome};
use rcv::runtime::facts::{fill_event, fill_state};
use rcv::runtime::state::{FleetView, State};
use rcv::schema::Facts;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const POLICY: &str = "policies/tool_chain.rcv";

fn rcv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv")).args(args).current_dir(ROOT).output().expect("rcv runs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "rcv failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn rate_limit_text() {
    let out = stdout(&rcv(&["explain", POLICY, "tests/explain/rate_limit.json"]));
    assert!(out.contains("because error.code = \"rate_limit_exceeded\", not \"insufficient_quota\""));
    insta::assert_snapshot!(out);
}

#[test]
fn high_risk_side_effect_escalates() {
    let out = stdout(&rcv(&["explain", POLICY, "tests/explain/high_risk_side_effect.json"]));
    assert!(out.contains("escalate"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn budget_override_from_state() {
    let out = stdout(&rcv(&["explain", POLICY, "tests/explain/budget_attempts.json"]));
    assert!(out.contains("overridden by budget.attempts"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn json_format() {
    let out = stdout(&rcv(&["explain", POLICY, "tests/explain/budget_attempts.json", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["overrides"][0]["by"], "budget.attempts");
    assert_eq!(v["decision"]["rule"]["block"], "budget");
    insta::assert_json_snapshot!(v);
}

#[test]
fn bare_event_with_state_flag_and_stdin() {
    let file = stdout(&rcv(&[
        "explain",
        POLICY,
        "tests/explain/bare_event.json",
        "--state",
        "tests/explain/state.json",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(v["budget"]["attempts"]["used"], 5.0);
    assert_eq!(v["overrides"][0]["by"], "budget.attempts");

    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcv"))
        .args(["explain", POLICY, "-", "--state", "tests/explain/state.json", "--format", "json"])
        .current_dir(ROOT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(std::path::Path::new(ROOT).join("tests/explain/bare_event.json")).unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let piped = stdout(&child.wait_with_output().unwrap());
    assert_eq!(piped, file);
}

#[test]
fn bad_input_is_a_usage_error() {
    let o = rcv(&["explain", POLICY, "tests/explain/missing.json"]);
    assert_eq!(o.status.code(), Some(2));
    let o = rcv(&["explain", POLICY, "Cargo.toml"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Explain's chosen classify and recover rules are decide's, on every failed
/// event of the replay fixture, with the state carried through each request.
#[test]
fn agrees_with_decide_on_every_failed_fixture_event() {
    let text = std::fs::read_to_string(std::path::Path::new(ROOT).join(POLICY)).unwrap();
    let policy = rcv::compile::build(&Source::new(POLICY, text)).policy.unwrap();
    let fixture =
        std::fs::read_to_string(std::path::Path::new(ROOT).join("fixtures/tool_chain_failures.ndjson")).unwrap();
    let mut requests: Vec<(String, Event)> = Vec::new();
    let mut states: Vec<(String, State)> = Vec::new();
    let mut checked = 0;
    for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
        let event: Event = serde_json::from_str(line).unwrap();
        if event.kind == rcv::runtime::event::EventKind::Request {
            requests.push((event.request_id.clone(), event));
            continue;
        }
        if event.outcome != Some(Outcome::Error) {
            continue;
        }
        let request = &requests.iter().rev().find(|(id, _)| *id == event.request_id).unwrap().1;
        let state = states.iter().rev().find(|(id, _)| *id == event.request_id).map(|(_, s)| s.clone());
        let state = state.unwrap_or_default();

        let mut facts = Facts::default();
        fill_event(&mut facts, &policy, &event, request);
        let classify = first_match(&explain_block(&policy, Block::Classify, &facts));
        let class =
            classify.and_then(|i| policy.source.classify.get(i)).map(|r| rcv::names::Name::from(r.class.as_str()));
        let next = accounted(&policy, &state, &event, class.as_ref());
        fill_state(&mut facts, &next, class.as_deref(), FleetView::default());
        let recover = first_match(&explain_block(&policy, Block::Recover, &facts));

        let input = Input { call: &event, request, fleet: FleetView::default(), seed: 0, lines: None };
        let (decision, after) = decide(&policy, &state, &input);
        assert_eq!(classify, decision.classify_rule.as_ref().and_then(|r| r.index), "classify, {line}");
        assert_eq!(decision.class, class);
        let decided = match &decision.overridden {
            Some(o) => o.replaced.index,
            None => decision.rule.index,
        };
        assert_eq!(recover, decided, "recover, {line}");
        states.push((event.request_id.clone(), after));
        checked += 1;
    }
    assert!(checked > 50, "only {checked} failed events");
}

#[test]
fn accepted_success_matches_decide() {
    let out = stdout(&rcv(&["explain", POLICY, "tests/explain/accepted.json", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], serde_json::Value::Null);
    assert_eq!(v["trigger"], "accept");

    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcv"))
        .args(["decide", POLICY])
        .current_dir(ROOT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read(std::path::Path::new(ROOT).join("tests/explain/accepted.json")).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let decided: serde_json::Value = serde_json::from_str(&stdout(&child.wait_with_output().unwrap())).unwrap();
    assert_eq!(v["state"], decided["state"]);
    assert_eq!(decided["decision"], serde_json::Value::Null);

    let text = stdout(&rcv(&["explain", POLICY, "tests/explain/accepted.json"]));
    insta::assert_snapshot!(text);
}
