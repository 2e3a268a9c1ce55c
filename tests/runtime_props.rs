//! Properties of the replay engine over generated cases: attempts never
//! exceed the policy's caps, a high-risk side effect is never retried,
//! fallen back or reset under a policy whose invariant forbids it, and a
//! replay is a pure function of its inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rcv::compile::{self, CompiledPolicy};
use rcv::diag::Source;
use rcv::runtime::event::{ErrorInfo, Event, EventKind, Outcome, Output, Risk, Tool};
use rcv::runtime::replay::{CaseInput, replay_case};
use rcv::runtime::state::FleetView;
use rcv::runtime::world::World;
use rcv::syntax::ast::ActionKind;

fn tool_chain() -> CompiledPolicy {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/tool_chain.rcv")).unwrap();
    let build = compile::build(&Source::new("tool_chain.rcv", text));
    build.policy.unwrap_or_else(|| panic!("tool_chain.rcv does not compile: {:?}", build.diagnostics))
}

/// A provider error of one of the shapes the policy classifies.
fn error_strategy() -> impl Strategy<Value = ErrorInfo> {
    prop_oneof![
        Just((Some(429), Some("rate_limit_error"), None, "rate limited")),
        Just((Some(529), Some("overloaded_error"), None, "Overloaded")),
        Just((Some(500), Some("server_error"), None, "The server had an error")),
        Just((Some(400), Some("invalid_request_error"), Some("context_length_exceeded"), "maximum context length")),
        Just((Some(429), Some("insufficient_quota"), Some("insufficient_quota"), "You exceeded your current quota")),
        Just((Some(401), Some("authentication_error"), None, "invalid x-api-key")),
        Just((None, Some("ReadTimeout"), None, "Read timed out. (read timeout=10)")),
        Just((None, Some("ValueError"), None, "something odd happened")),
    ]
    .prop_map(|(status, ty, code, msg)| ErrorInfo {
        kind: ty.map(str::to_string),
        code: code.map(str::to_string),
        http_status: status,
        message: Some(msg.to_string()),
        ..ErrorInfo::default()
    })
}

#[derive(Debug, Clone)]
struct GenCall {
    fails: bool,
    error: ErrorInfo,
    tool: bool,
    side_effects: bool,
    fallback_model: bool,
    schema_invalid: bool,
    confidence: Option<f64>,
}

fn call_strategy() -> impl Strategy<Value = GenCall> {
    (
        any::<bool>(),
        error_strategy(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0.0f64..1.0),
    )
        .prop_map(|(fails, error, tool, side_effects, fallback_model, schema_invalid, confidence)| GenCall {
            fails,
            error,
            tool,
            side_effects,
            fallback_model,
            schema_invalid,
            confidence,
        })
}

fn build_case(id: &str, risk: Risk, calls: &[GenCall]) -> (Event, Vec<(u64, Box<Event>)>) {
    let request = Event {
        request_id: id.to_string(),
        seq: 0,
        kind: EventKind::Request,
        risk: Some(risk),
        ..serde_json::from_str(r#"{"request_id":"x","seq":0,"kind":"request"}"#).unwrap()
    };
    let events = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut e = request.clone();
            e.seq = i as u64 + 1;
            e.risk = None;
            e.kind = if c.tool { EventKind::ToolCall } else { EventKind::ModelCall };
            e.tool = c.tool.then(|| Tool { name: Some("charge_card".into()), side_effects: c.side_effects });
            e.model = Some(if c.fallback_model { "claude-3-5-haiku" } else { "gpt-4o" }.to_string());
            e.outcome = Some(if c.fails { Outcome::Error } else { Outcome::Ok });
            e.error = c.fails.then(|| Box::new(c.error.clone()));
            e.output = Some(Output {
                schema_valid: Some(!c.schema_invalid || c.fails),
                confidence: c.confidence,
                ..Output::default()
            });
            e.latency_ms = Some(500.0);
            e.cost_usd = Some(0.001);
            (i as u64 + 2, Box::new(e))
        })
        .collect();
    (request, events)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn caps_and_high_risk_escalation_hold(
        risk in prop_oneof![Just(Risk::Low), Just(Risk::Medium), Just(Risk::High), Just(Risk::Critical)],
        calls in proptest::collection::vec(call_strategy(), 1..8),
        seed in any::<u64>(),
    ) {
        let policy = tool_chain();
        let cap = policy.source.budget.attempts.expect("tool_chain caps attempts");
        let (request, events) = build_case("r", risk, &calls);
        let fleet = vec![FleetView::default(); events.len()];
        let input = CaseInput { request_id: "r", request: &request, calls: &events, fleet: &fleet };
        let world = World::default();
        let result = replay_case(&policy, input, &world, seed, None);

        for d in &result.decisions {
            // A decision is made after an attempt; the attempt counter never passes the cap
            // with a non-terminal action still pending.
            prop_assert!(d.state.attempt <= cap, "attempt {} over cap {cap}", d.state.attempt);
            if !d.decision.action.is_terminal() {
                prop_assert!(d.state.attempt < cap, "non-terminal action at attempt {} with cap {cap}", d.state.attempt);
            }
            prop_assert!(d.decision.invariant_violations.is_empty(), "{:?}", d.decision.invariant_violations);
        }
        prop_assert!(result.safety.is_empty(), "{:?}", result.safety);
        // High-risk side-effecting failures are escalated, never retried.
        for d in &result.decisions {
            let call = events.iter().find(|(_, e)| e.seq == d.seq).map(|(_, e)| e);
            let side = call.and_then(|e| e.tool.as_ref()).is_some_and(|t| t.side_effects);
            let failed = call.is_some_and(|e| e.outcome == Some(Outcome::Error));
            if risk >= Risk::High && side && failed && d.call_source == rcv::runtime::replay::Source::Recorded {
                prop_assert_eq!(d.decision.action.kind, ActionKind::Escalate);
            }
        }
        // Pure: the same inputs give the same result.
        let again = replay_case(&policy, input, &world, seed, None);
        prop_assert_eq!(&result, &again);
    }
}
