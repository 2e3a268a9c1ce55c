//! The bundled policy's classify and recover rules in rcv's decision table,
//! in CEL (cel-interpreter) and in Rego (regorus), on the same prepared
//! inputs: every failed call of fixtures/tool_chain_failures.ndjson. Checks
//! that all engines pick the same rule on every input, then times each (median and min..max
//! of 15 samples, nanoseconds per decision: classify + recover).
//!
//! Run from this directory: `cargo run --release`.

use std::time::Instant;

use cel_interpreter::{Context, Program, Value};
use rcv::compile::{self, CompiledPolicy};
use rcv::diag::Source;
use rcv::runtime::event::{Event, EventKind, Outcome};
use rcv::runtime::facts::{fill_event, fill_state};
use rcv::runtime::state::{FleetView, State};
use rcv::schema::{Fact, Facts, RISK_LEVELS};

const CLASSIFY: &str = r#"
error_code == "insufficient_quota" ? 0 :
(http_status == 429 || error_type in ["rate_limit_exceeded", "rate_limit_error"]) ? 1 :
(http_status in [500, 502, 503, 529] || error_type == "overloaded_error") ? 2 :
(error_code == "context_length_exceeded" || error_message.matches("(?i)prompt is too long")) ? 3 :
(http_status in [401, 403] || error_type == "authentication_error") ? 4 :
(finish_reason == "SAFETY" || error_code == "content_filter") ? 5 :
schema_valid == 0 ? 6 :
error_message.matches("(?i)timed? ?out") ? 7 : 8
"#;

const RECOVER: &str = r#"
(risk >= 2 && side_effects) ? 0 :
(class in ["rate_limited", "server_error", "timeout"] && attempt < 3) ? 1 :
(class == "schema_violation" && attempt < 2) ? 2 :
(class == "context_overflow" && resets < 1) ? 3 :
class in ["content_filtered", "auth_failed", "quota_exhausted"] ? 4 :
model == "primary" ? 5 : 6
"#;

const REGO: &str = r#"
package rcv

classify := 0 if { input.error_code == "insufficient_quota" }
else := 1 if { input.http_status == 429 }
else := 1 if { input.error_type == "rate_limit_exceeded" }
else := 1 if { input.error_type == "rate_limit_error" }
else := 2 if { input.http_status == 500 }
else := 2 if { input.http_status == 502 }
else := 2 if { input.http_status == 503 }
else := 2 if { input.http_status == 529 }
else := 2 if { input.error_type == "overloaded_error" }
else := 3 if { input.error_code == "context_length_exceeded" }
else := 3 if { regex.match("(?i)prompt is too long", input.error_message) }
else := 4 if { input.http_status == 401 }
else := 4 if { input.http_status == 403 }
else := 4 if { input.error_type == "authentication_error" }
else := 5 if { input.finish_reason == "SAFETY" }
else := 5 if { input.error_code == "content_filter" }
else := 6 if { input.schema_valid == 0 }
else := 7 if { regex.match("(?i)timed? ?out", input.error_message) }
else := 8 if { true }

recover := 0 if { input.risk >= 2; input.side_effects }
else := 1 if { input.class == "rate_limited"; input.attempt < 3 }
else := 1 if { input.class == "server_error"; input.attempt < 3 }
else := 1 if { input.class == "timeout"; input.attempt < 3 }
else := 2 if { input.class == "schema_violation"; input.attempt < 2 }
else := 3 if { input.class == "context_overflow"; input.resets < 1 }
else := 4 if { input.class == "content_filtered" }
else := 4 if { input.class == "auth_failed" }
else := 4 if { input.class == "quota_exhausted" }
else := 5 if { input.model == "primary" }
else := 6 if { true }
"#;

/// The Rego input of one prepared input: the same values as the CEL context.
fn rego_input(f: &Facts<'_>) -> regorus::Value {
    let get = |p: &str| f.lookup(p);
    let sv = match get("output.schema_valid") {
        Fact::Bool(true) => 1,
        Fact::Bool(false) => 0,
        _ => -1,
    };
    let risk = match get("risk") {
        Fact::Str(r) => RISK_LEVELS.iter().position(|l| *l == r).map_or(-1, |i| i as i64),
        _ => -1,
    };
    let json = serde_json::json!({
        "error_code": s(get("error.code")),
        "error_type": s(get("error.type")),
        "error_message": s(get("error.message")),
        "finish_reason": s(get("output.finish_reason")),
        "http_status": n(get("error.http_status")),
        "schema_valid": sv,
        "risk": risk,
        "side_effects": get("tool.side_effects") == Fact::Bool(true),
        "class": s(get("class")),
        "attempt": n(get("attempt")),
        "resets": n(get("resets")),
        "model": s(get("model")),
    });
    regorus::Value::from_json_str(&json.to_string()).expect("input converts")
}

fn rego_rule(engine: &mut regorus::Engine, input: &regorus::Value, rule: &str) -> usize {
    engine.set_input(input.clone());
    match engine.eval_rule(rule.to_string()).expect("rule evaluates") {
        regorus::Value::Number(n) => n.as_u64().expect("an index") as usize,
        other => panic!("Rego returned {other:?}"),
    }
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn policy() -> CompiledPolicy {
    let text = std::fs::read_to_string(root().join("policies/tool_chain.rcv")).expect("policy");
    let source = Source::new("policies/tool_chain.rcv", text);
    compile::build(&source).policy.expect("tool_chain.rcv compiles")
}

fn s(f: Fact<'_>) -> String {
    match f {
        Fact::Str(s) => s.to_string(),
        _ => String::new(),
    }
}

fn n(f: Fact<'_>) -> i64 {
    match f {
        Fact::Num(x) => x as i64,
        _ => 0,
    }
}

/// The CEL context of one prepared input (absent strings are "", absent
/// numbers 0, `schema_valid` -1/0/1, `risk` its level index or -1).
fn context(f: &Facts<'_>) -> Context<'static> {
    let mut c = Context::default();
    let get = |p: &str| f.lookup(p);
    c.add_variable_from_value("error_code", s(get("error.code")));
    c.add_variable_from_value("error_type", s(get("error.type")));
    c.add_variable_from_value("error_message", s(get("error.message")));
    c.add_variable_from_value("finish_reason", s(get("output.finish_reason")));
    c.add_variable_from_value("http_status", n(get("error.http_status")));
    let sv = match get("output.schema_valid") {
        Fact::Bool(true) => 1,
        Fact::Bool(false) => 0,
        _ => -1,
    };
    c.add_variable_from_value("schema_valid", sv as i64);
    let risk = match get("risk") {
        Fact::Str(r) => RISK_LEVELS.iter().position(|l| *l == r).map_or(-1, |i| i as i64),
        _ => -1,
    };
    c.add_variable_from_value("risk", risk);
    c.add_variable_from_value("side_effects", get("tool.side_effects") == Fact::Bool(true));
    c.add_variable_from_value("class", s(get("class")));
    c.add_variable_from_value("attempt", n(get("attempt")));
    c.add_variable_from_value("resets", n(get("resets")));
    c.add_variable_from_value("model", s(get("model")));
    c
}

fn int(v: Value) -> usize {
    match v {
        Value::Int(i) => i as usize,
        other => panic!("CEL returned {other:?}"),
    }
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.0} ({:.0}..{:.0})", v[v.len() / 2], v[0], v[v.len() - 1])
}

fn time(samples: usize, reps: usize, decisions: usize, mut f: impl FnMut() -> usize) -> Vec<f64> {
    let mut sink = 0usize;
    for _ in 0..reps {
        sink = sink.wrapping_add(f());
    }
    let out = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                sink = sink.wrapping_add(f());
            }
            start.elapsed().as_nanos() as f64 / (reps * decisions) as f64
        })
        .collect();
    std::hint::black_box(sink);
    out
}

fn main() {
    let policy = policy();
    let text = std::fs::read_to_string(root().join("fixtures/tool_chain_failures.ndjson")).expect("fixture");
    let mut events: Vec<Event> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for e in &mut events {
        rcv::runtime::ingress::native::normalize_errors(e);
    }
    let requests: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::Request).collect();
    let calls: Vec<(&Event, &Event)> = events
        .iter()
        .filter(|e| e.outcome == Some(Outcome::Error))
        .filter_map(|e| requests.iter().find(|r| r.request_id == e.request_id).map(|r| (e, *r)))
        .collect();
    // Vary the state so recover reaches its rules.
    let states: Vec<State> = (0..calls.len())
        .map(|i| State { attempt: 1 + (i % 4) as u32, resets: (i % 2) as u32, ..State::default() })
        .collect();
    let classes: Vec<Option<&str>> = calls
        .iter()
        .map(|(e, r)| {
            let mut f = Facts::default();
            fill_event(&mut f, &policy, e, r);
            policy.classify(&f).and_then(|h| policy.source.classify.get(h.rule)).map(|c| c.class.as_str())
        })
        .collect();
    let prepared: Vec<Facts<'_>> = calls
        .iter()
        .zip(&states)
        .zip(&classes)
        .map(|(((e, r), st), class)| {
            let mut f = Facts::default();
            fill_event(&mut f, &policy, e, r);
            fill_state(&mut f, st, *class, FleetView::default());
            f
        })
        .collect();
    let contexts: Vec<Context<'static>> = prepared.iter().map(context).collect();
    let classify = Program::compile(CLASSIFY).expect("CEL classify compiles");
    let recover = Program::compile(RECOVER).expect("CEL recover compiles");

    // Agreement: the same classify rule and the same recover rule on every input.
    let mut recover_rules = std::collections::BTreeSet::new();
    for (f, c) in prepared.iter().zip(&contexts) {
        let table = (policy.classify(f).map(|h| h.rule), policy.recover(f).map(|h| h.rule));
        let cel = (
            Some(int(classify.execute(c).expect("classify runs"))),
            Some(int(recover.execute(c).expect("recover runs"))),
        );
        assert_eq!(table, cel, "rcv and CEL disagree on {f:?}");
        recover_rules.insert(table.1);
    }
    let inputs: Vec<regorus::Value> = prepared.iter().map(rego_input).collect();
    let mut engine = regorus::Engine::new();
    engine.add_policy("rcv.rego".to_string(), REGO.to_string()).expect("Rego policy loads");
    for (f, i) in prepared.iter().zip(&inputs) {
        let table = (policy.classify(f).map(|h| h.rule), policy.recover(f).map(|h| h.rule));
        let rego =
            (Some(rego_rule(&mut engine, i, "data.rcv.classify")), Some(rego_rule(&mut engine, i, "data.rcv.recover")));
        assert_eq!(table, rego, "rcv and Rego disagree on {f:?}");
    }
    println!(
        "agreement: rcv table, CEL and Rego pick the same classify and recover rule on all {} inputs ({} recover rules reached)",
        prepared.len(),
        recover_rules.len()
    );

    let d = prepared.len();
    let table = time(15, 2000, d, || {
        prepared
            .iter()
            .fold(0, |n, f| n + policy.classify(f).map_or(0, |h| h.rule) + policy.recover(f).map_or(0, |h| h.rule))
    });
    let cel = time(15, 50, d, || {
        contexts.iter().fold(0, |n, c| n + classify.execute(c).map_or(0, int) + recover.execute(c).map_or(0, int))
    });
    let rego = time(15, 5, d, || {
        inputs.iter().fold(0, |n, i| {
            n + rego_rule(&mut engine, i, "data.rcv.classify") + rego_rule(&mut engine, i, "data.rcv.recover")
        })
    });
    println!("| engine | ns per decision (classify + recover), median (min..max) of 15 samples |");
    println!("|---|---|");
    println!("| rcv decision table | {} |", stats(table));
    println!("| CEL (cel-interpreter 0.10), programs compiled once, contexts prepared | {} |", stats(cel));
    println!("| Rego (regorus 0.5), policy loaded once, inputs prepared | {} |", stats(rego));
}
