//! Decision tables of the shipped policy: text and JSON snapshots of
//! `rcv compile`, and properties of the compiled form (hash stability,
//! what the analyses find on edited versions of the policy).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use rcv::compile::{self, CompiledPolicy};
use rcv::diag::{Code, Source};
use rcv::schema::{Fact, Facts};
use rcv::syntax::ast::ActionKind;

const POLICY: &str = "policies/tool_chain.rcv";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn policy_text() -> String {
    std::fs::read_to_string(root().join(POLICY)).unwrap()
}

fn rcv_compile(format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rcv"))
        .current_dir(root())
        .args(["compile", POLICY, "--format", format, "--color", "never"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn build(text: &str) -> compile::Build {
    compile::build(&Source::new("p.rcv", text))
}

fn compiled(text: &str) -> CompiledPolicy {
    let b = build(text);
    assert!(!b.has_errors(), "{:#?}", b.diagnostics);
    b.policy.unwrap()
}

#[test]
fn text_table() {
    insta::assert_snapshot!(rcv_compile("text"));
}

#[test]
fn json_table() {
    let out = rcv_compile("json");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(v);
}

#[test]
fn yaml_table_matches_json() {
    let json: serde_json::Value = serde_json::from_str(&rcv_compile("json")).unwrap();
    let yaml: serde_json::Value = yaml_serde::from_str(&rcv_compile("yaml")).unwrap();
    assert_eq!(json, yaml);
}

#[test]
fn the_shipped_policy_is_bounded_and_keeps_its_invariant() {
    let b = build(&policy_text());
    let codes: Vec<Code> = b.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.iter().all(|c| c.as_str() < "RCV400"), "analysis findings: {:#?}", b.diagnostics);
    let p = b.policy.unwrap();
    let cap = p.source.budget.attempts.expect("the policy caps attempts");
    assert!(p.max_decisions().is_some_and(|n| n <= cap), "bounded by `attempts {cap}`");
}

/// The `accept` block as it was first written retried low-confidence
/// outputs whatever the risk, breaking the invariant on side-effecting
/// high-risk calls; the analysis must find it, with a counterexample.
#[test]
fn unguarded_accept_retry_breaks_the_invariant() {
    let text = policy_text();
    let start = text.find("accept {").unwrap();
    let end = start + text[start..].find("\n}\n").unwrap() + 3;
    let edited = format!(
        "{}accept {{\n  require output.confidence >= min_confidence else retry strategy step_by_step, reason LOW_CONFIDENCE\n}}\n{}",
        &text[..start],
        &text[end..]
    );
    let b = build(&edited);
    let violation = b.diagnostics.iter().find(|d| d.code == Code::InvariantViolated).expect("RCV407");
    let rule_at = edited.find("require output.confidence").unwrap();
    assert_eq!(violation.span().start, rule_at);
    let note = violation.notes.join(" ");
    assert!(note.contains("risk = high") && note.contains("tool.side_effects = true"), "{note}");
    // the breaker's fallback can replace that retry too
    assert!(b.diagnostics.iter().any(|d| d.code == Code::InvariantAtRisk), "{:#?}", b.diagnostics);
}

#[test]
fn hash_ignores_comments_and_layout_but_not_meaning() {
    let text = policy_text();
    let a = compiled(&text);
    let reformatted = format!("# a new comment\n\n{}", text.replace("\n  ", "\n      ").replace(" => ", "   =>   "));
    assert_eq!(compiled(&reformatted).hash, a.hash);
    let changed = text.replace("attempt < 2", "attempt < 3");
    assert_ne!(compiled(&changed).hash, a.hash);
    let reason = text.replace("\"transient provider or tool error\"", "\"transient error\"");
    assert_ne!(compiled(&reason).hash, a.hash);
}

#[test]
fn evaluation_follows_the_rules() {
    let p = compiled(&policy_text());
    let mut f = Facts::default();
    f.set("error.http_status", Fact::Num(429.0));
    let class = |f: &Facts| p.classify(f).map(|h| p.source.classify[h.rule].class.clone());
    assert_eq!(class(&f).as_deref(), Some("rate_limited"));
    f.set("error.message", Fact::Str("Prompt is too long: 210000 tokens"));
    assert_eq!(class(&f).as_deref(), Some("rate_limited"), "first match wins");
    let mut f = Facts::default();
    f.set("error.message", Fact::Str("prompt is TOO long"));
    assert_eq!(class(&f).as_deref(), Some("context_overflow"));
    assert_eq!(class(&Facts::default()).as_deref(), Some("unknown"));

    let mut f = Facts::default();
    f.set("class", Fact::Str("timeout"));
    f.set("attempt", Fact::Num(2.0));
    f.set("resets", Fact::Num(0.0));
    f.set("model", Fact::Str("primary"));
    let decision = |f: &Facts| p.recover(f).map(|h| h.rule);
    assert_eq!(decision(&f), Some(1));
    f.set("attempt", Fact::Num(3.0));
    assert_eq!(decision(&f), Some(5), "out of retries: fall back");
    f.set("risk", Fact::Str("critical"));
    f.set("tool.side_effects", Fact::Bool(true));
    assert_eq!(decision(&f), Some(0));
    assert_eq!(p.violated_invariants(&f, ActionKind::Fallback), vec![0]);
    assert!(p.violated_invariants(&f, ActionKind::Escalate).is_empty());

    let mut f = Facts::default();
    f.set("output.confidence", Fact::Num(0.5));
    assert_eq!(p.accept(&f).map(|h| h.rule), Some(1));
    f.set("output.confidence", Fact::Num(0.9));
    assert_eq!(p.accept(&f), None);
    assert_eq!(p.accept(&Facts::default()), None, "no confidence: nothing to reject");
}

#[test]
fn evaluation_throughput() {
    let p = compiled(&policy_text());
    let meta: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{"tenant": "acme"}"#).unwrap();
    let mut f = Facts { metadata: Some(&meta), ..Facts::default() };
    f.set("error.message", Fact::Str("upstream timed out after 30s"));
    f.set("class", Fact::Str("timeout"));
    f.set("attempt", Fact::Num(3.0));
    f.set("resets", Fact::Num(0.0));
    f.set("model", Fact::Str("backup"));
    f.set("output.confidence", Fact::Num(0.4));
    let n = 20_000;
    let start = std::time::Instant::now();
    let mut hits = 0usize;
    for _ in 0..n {
        hits += usize::from(p.classify(&f).is_some());
        hits += usize::from(p.recover(&f).is_some());
        hits += usize::from(p.accept(&f).is_some());
    }
    let took = start.elapsed();
    assert_eq!(hits, 3 * n);
    eprintln!("{:.0} table evaluations/s", (3 * n) as f64 / took.as_secs_f64());
}
