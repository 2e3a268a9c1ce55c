//! Replaying one case: walk its recorded calls, decide on every failure,
//! and take each action's outcome from, in order, the recorded
//! continuation (when the recording did the same thing), the failed call's
//! scripted `alternatives`, or a seeded draw from the world model. Pure:
//! the result depends only on the case, the policy, the world and the seed.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::compile::CompiledPolicy;
use crate::syntax::ast::ActionKind;

use super::decide::{Decision, Input, call_model, decide_in_place, needs_decision};
use super::event::{Event, Outcome, Risk};
use super::rng::{Purpose, stream};
use super::state::{FleetView, Name, State};
use super::world::World;

/// A request and its calls, in `seq` order, with the fleet view each call
/// saw when it was read.
#[derive(Debug, Clone, Copy)]
pub struct CaseInput<'a> {
    pub request_id: &'a str,
    pub request: &'a Event,
    /// (1-based input line, event).
    pub calls: &'a [(u64, Box<Event>)],
    /// One per call.
    pub fleet: &'a [FleetView],
}

/// Where the outcome of an action (or the call being decided) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The recording did the same thing next.
    Recorded,
    /// The failed call's scripted `alternatives`.
    Alternative,
    /// A seeded draw from the world model.
    Simulated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No failure needed a decision.
    Passed,
    /// Every step ended in an accepted success after at least one recovery action.
    AutoRecovered,
    Escalated,
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::AutoRecovered => "auto_recovered",
            Status::Escalated => "escalated",
            Status::Aborted => "aborted",
        }
    }
}

/// What happened after a non-terminal action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOutcome {
    pub source: Source,
    pub result: Outcome,
    /// The key of the action (`retry`, `fallback:backup`...).
    pub key: Cow<'static, str>,
}

/// One decision of a replay, as the trace records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub request_id: String,
    /// `seq` of the recorded call the decision is about (for a replayed
    /// call, the recorded call it stands in for).
    pub seq: u64,
    /// Input line of that call; `None` for a replayed call.
    pub line: Option<u64>,
    /// Where the call being decided came from.
    pub call_source: Source,
    pub step: u32,
    #[serde(flatten)]
    pub decision: Decision,
    /// `None` for escalate and abort.
    pub outcome: Option<ActionOutcome>,
    pub fleet: FleetView,
    pub state: State,
}

/// A safety finding: a high-risk case that did not follow escalation policy,
/// or a decision that broke an invariant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetyFinding {
    pub request_id: String,
    pub seq: u64,
    /// `high_risk_not_escalated` or `invariant_violated`.
    pub kind: String,
    pub detail: String,
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub request_id: String,
    pub first_line: u64,
    pub risk: Option<Risk>,
    pub status: Status,
    /// The reason of the final decision, for escalated and aborted cases.
    pub reason: Option<Name>,
    /// Recovered, and a model fallback was part of the recovery.
    pub fallback_recovery: bool,
    /// Calls made, recorded or replayed.
    pub calls: u32,
    pub latency_ms: f64,
    pub cost_usd: f64,
    /// Some action's outcome came from the world model.
    pub simulated: bool,
    /// Some action's outcome came from scripted alternatives.
    pub alternative: bool,
    /// Had a failed side-effecting tool call at high or critical risk.
    pub high_risk_side_effect: bool,
    pub decisions: Vec<DecisionRecord>,
    pub safety: Vec<SafetyFinding>,
}

/// A replay never takes more decisions than this for one case, whatever the
/// policy: the analysis proves a lower bound for compiled policies, this is
/// the engine's own backstop.
pub const MAX_DECISIONS_PER_CASE: usize = 1_000;

/// The call being looked at: a recorded one or a replayed stand-in.
enum Current {
    Recorded(usize),
    Replayed { event: Box<Event>, source: Source, accepted: bool },
}

/// Whether the recording took the action `key` between two consecutive
/// calls: `reset:SCOPE` when `next` records a reset, `fallback:MODEL` when
/// the model changed, `retry:STRATEGY` when the strategy changed, `retry`
/// otherwise. Compared in place: this runs for every recorded retry.
fn recorded_action_is(policy: &CompiledPolicy, prev: &Event, next: &Event, key: &str) -> bool {
    if let Some(scope) = next.reset {
        return key.strip_prefix("reset:") == Some(scope.as_str());
    }
    fn model<'a>(policy: &'a CompiledPolicy, e: &'a Event) -> Option<&'a str> {
        call_model(policy, e).or(e.model.as_deref())
    }
    let next_model = model(policy, next);
    if next_model != model(policy, prev) {
        return key.strip_prefix("fallback:") == Some(next_model.unwrap_or_default());
    }
    match (&next.strategy, &prev.strategy) {
        (Some(n), p) if Some(n) != p.as_ref() => key.strip_prefix("retry:") == Some(n.as_str()),
        _ => key == "retry",
    }
}

/// The replayed call that stands in for `base` after `decision`: the same
/// call with the action's model, strategy and reset. Built field by field,
/// so what the action replaces, the error of a success and the recording's
/// alternatives are not copied only to be dropped.
fn stand_in(base: &Event, decision: &Decision, outcome: Outcome) -> Event {
    let action = &decision.action;
    Event {
        request_id: base.request_id.clone(),
        seq: base.seq,
        kind: base.kind,
        ts: base.ts.clone(),
        ts_ms: base.ts_ms,
        intent: base.intent.clone(),
        risk: base.risk,
        budget: base.budget.clone(),
        metadata: base.metadata.clone(),
        model: action
            .provider_model
            .as_deref()
            .or(action.model.as_deref())
            .or(base.model.as_deref())
            .map(str::to_string),
        tool: base.tool.clone(),
        attempt: base.attempt,
        strategy: action.strategy.as_deref().or(base.strategy.as_deref()).map(str::to_string),
        outcome: Some(outcome),
        error: if outcome == Outcome::Ok { None } else { base.error.clone() },
        output: base.output.clone(),
        latency_ms: base.latency_ms,
        cost_usd: base.cost_usd,
        tokens_in: base.tokens_in,
        tokens_out: base.tokens_out,
        response_started: Some(false),
        reset: action.reset,
        alternatives: None,
    }
}

pub fn replay_case(
    policy: &CompiledPolicy,
    case: CaseInput<'_>,
    world: &World,
    seed: u64,
    lines: Option<&crate::span::Lines<'_>>,
) -> CaseResult {
    let mut result = CaseResult {
        request_id: case.request_id.to_string(),
        first_line: case.calls.first().map_or(0, |c| c.0),
        risk: case.request.risk,
        status: Status::Passed,
        reason: None,
        fallback_recovery: false,
        calls: 0,
        latency_ms: 0.0,
        cost_usd: 0.0,
        simulated: false,
        alternative: false,
        high_risk_side_effect: false,
        decisions: Vec::new(),
        safety: Vec::new(),
    };
    let mut state = State::default();
    let mut recovered = false;
    let mut step_fallback = false;
    let mut step_failed = false;
    let mut origin: Option<usize> = None;
    let mut used_alternatives: Vec<Cow<'static, str>> = Vec::new();
    let mut current = match case.calls.is_empty() {
        true => None,
        false => Some(Current::Recorded(0)),
    };

    while let Some(cur) = current.take() {
        let (event, call_source, line, fleet, accepted) = match &cur {
            Current::Recorded(i) => match case.calls.get(*i) {
                Some((line, e)) => {
                    (&**e, Source::Recorded, Some(*line), case.fleet.get(*i).copied().unwrap_or_default(), false)
                }
                None => break,
            },
            Current::Replayed { event, source, accepted } => {
                let fleet = origin.and_then(|o| case.fleet.get(o)).copied().unwrap_or_default();
                (&**event, *source, None, fleet, *accepted)
            }
        };

        let ok = event.outcome != Some(Outcome::Error);
        if ok && (accepted || !needs_decision(policy, event, case.request, &state)) {
            // The step ends in an accepted success.
            state.charge(event.cost_usd.unwrap_or(0.0), event.latency_ms.unwrap_or(0.0));
            if let Some(m) = call_model(policy, event) {
                state.note_model(m);
            }
            if step_failed {
                recovered = true;
                result.fallback_recovery |= step_fallback;
            }
            state.attempt = 0;
            state.steps_done += 1;
            step_failed = false;
            step_fallback = false;
            let next = match (&cur, origin) {
                (Current::Recorded(i), _) => i + 1,
                // A replayed success skips what the recording did for the rest of this step.
                (Current::Replayed { .. }, Some(o)) => step_end(case.calls, o) + 1,
                (Current::Replayed { .. }, None) => case.calls.len(),
            };
            origin = None;
            used_alternatives.clear();
            if next < case.calls.len() {
                current = Some(Current::Recorded(next));
            }
            continue;
        }

        // A failure (or an output that fails `accept`): decide.
        step_failed = true;
        if let Current::Recorded(i) = cur
            && origin != Some(i)
        {
            origin = Some(i);
            used_alternatives.clear();
        }
        let input = Input { call: event, request: case.request, fleet, seed, lines };
        let decision = decide_in_place(policy, &mut state, &input);
        let seq = origin.and_then(|o| case.calls.get(o)).map_or(event.seq, |c| c.1.seq);
        check_safety(&mut result, case.request, event, &decision, seq);

        let mut record = DecisionRecord {
            request_id: case.request_id.to_string(),
            seq,
            line,
            call_source,
            step: state.steps_done,
            decision,
            outcome: None,
            fleet,
            state: State::default(),
        };

        if record.decision.action.is_terminal() || result.decisions.len() + 1 >= MAX_DECISIONS_PER_CASE {
            result.status =
                if record.decision.action.kind == ActionKind::Abort { Status::Aborted } else { Status::Escalated };
            result.reason = Some(record.decision.reason.clone());
            record.state = state.clone();
            result.decisions.push(record);
            break;
        }
        if matches!(record.decision.action.kind, ActionKind::Fallback)
            || record.decision.action.then == Some(ActionKind::Fallback)
        {
            step_fallback = true;
        }

        // Where the outcome of the action comes from.
        let key = record.decision.action.key(event.strategy.as_deref());
        let following = match &cur {
            Current::Recorded(i) => case
                .calls
                .get(i + 1)
                .filter(|(_, next)| !starts_step(next) && recorded_action_is(policy, event, next, &key)),
            Current::Replayed { .. } => None,
        };
        let alternative = origin
            .and_then(|o| case.calls.get(o))
            .and_then(|(_, e)| e.alternatives.as_ref())
            .and_then(|alts| alts.get(&*key))
            .filter(|_| !used_alternatives.contains(&key));
        let (next, outcome) = if let (Some(_), Current::Recorded(i)) = (following, &cur) {
            let next_event = case.calls.get(i + 1).map(|c| &c.1);
            let result = next_event.and_then(|e| e.outcome).unwrap_or(Outcome::Ok);
            (Current::Recorded(i + 1), ActionOutcome { source: Source::Recorded, result, key })
        } else if let Some(alt) = alternative {
            used_alternatives.push(key.clone());
            result.alternative = true;
            let mut e = stand_in(event, &record.decision, alt.outcome);
            e.latency_ms = alt.latency_ms.or(e.latency_ms);
            e.cost_usd = alt.cost_usd.or(e.cost_usd);
            if alt.error.is_some() {
                e.error = alt.error.clone().map(Box::new);
            }
            let accepted = alt.output.is_none();
            if alt.output.is_some() {
                e.output = alt.output.clone();
            }
            let outcome = ActionOutcome { source: Source::Alternative, result: alt.outcome, key };
            (Current::Replayed { event: Box::new(e), source: Source::Alternative, accepted }, outcome)
        } else {
            result.simulated = true;
            let prior = world.prior(record.decision.class.as_deref(), record.decision.action.kind);
            let draw = stream(seed, case.request_id, state.calls, Purpose::Simulation).unit();
            let outcome = if draw < prior.success { Outcome::Ok } else { Outcome::Error };
            let mut e = stand_in(event, &record.decision, outcome);
            e.latency_ms = Some(prior.latency_ms);
            e.cost_usd = Some(prior.cost_usd);
            // A simulated success is taken as accepted: the world model has no
            // notion of output quality (docs/replay.md).
            let outcome_rec = ActionOutcome { source: Source::Simulated, result: outcome, key };
            (Current::Replayed { event: Box::new(e), source: Source::Simulated, accepted: true }, outcome_rec)
        };
        record.outcome = Some(outcome);
        record.state = state.clone();
        result.decisions.push(record);
        current = Some(next);
    }

    if result.status == Status::Passed && recovered {
        result.status = Status::AutoRecovered;
    }
    if !matches!(result.status, Status::AutoRecovered) {
        result.fallback_recovery = false;
    }
    result.calls = state.calls;
    result.latency_ms = state.latency_ms;
    result.cost_usd = state.cost_usd;
    result
}

/// Index of the recorded call that ended the step containing call `from`:
/// the first success at or after it, or the call before the next one that
/// starts a new step (`attempt: 1`), or the last call.
fn step_end(calls: &[(u64, Box<Event>)], from: usize) -> usize {
    let mut last = from;
    for (i, (_, e)) in calls.iter().enumerate().skip(from) {
        if i > from && starts_step(e) {
            return last;
        }
        if e.outcome != Some(Outcome::Error) {
            return i;
        }
        last = i;
    }
    last
}

/// A recorded call with `attempt: 1` starts a new step: it is not the
/// continuation of the call before it.
fn starts_step(e: &Event) -> bool {
    e.attempt == Some(1)
}

fn check_safety(result: &mut CaseResult, request: &Event, call: &Event, decision: &Decision, seq: u64) {
    let high_risk = request.risk.is_some_and(|r| r >= Risk::High);
    let side_effects = call.tool.as_ref().is_some_and(|t| t.side_effects);
    if high_risk && side_effects && call.outcome == Some(Outcome::Error) {
        result.high_risk_side_effect = true;
        if decision.action.kind != ActionKind::Escalate {
            result.safety.push(SafetyFinding {
                request_id: result.request_id.clone(),
                seq,
                kind: "high_risk_not_escalated".into(),
                detail: format!(
                    "failed side-effecting call at {} risk got `{}` (reason {})",
                    request.risk.map_or("?", Risk::as_str),
                    decision.action.kind.as_str(),
                    decision.reason
                ),
            });
        }
    }
    for inv in &decision.invariant_violations {
        result.safety.push(SafetyFinding {
            request_id: result.request_id.clone(),
            seq,
            kind: "invariant_violated".into(),
            detail: format!("`{}` broke invariant \"{inv}\"", decision.action.kind.as_str()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::ResetScope;

    fn policy() -> CompiledPolicy {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/tool_chain.rcv")).unwrap();
        crate::compile::build(&crate::diag::Source::new("tool_chain.rcv", text)).policy.unwrap()
    }

    fn call(model: &str, strategy: Option<&str>, reset: Option<ResetScope>) -> Event {
        let mut e: Event = serde_json::from_str(r#"{"request_id":"r","seq":1,"kind":"model_call"}"#).unwrap();
        e.model = Some(model.into());
        e.strategy = strategy.map(str::to_string);
        e.reset = reset;
        e
    }

    #[test]
    fn recorded_action_matches_the_key_of_what_the_recording_did() {
        let p = policy();
        let plain = call("gpt-4o", None, None);
        // Same model, same strategy: a plain retry.
        assert!(recorded_action_is(&p, &plain, &call("gpt-4o", None, None), "retry"));
        assert!(!recorded_action_is(&p, &plain, &call("gpt-4o", None, None), "retry:repair_args"));
        // A new strategy.
        let repaired = call("gpt-4o", Some("repair_args"), None);
        assert!(recorded_action_is(&p, &plain, &repaired, "retry:repair_args"));
        assert!(!recorded_action_is(&p, &plain, &repaired, "retry"));
        assert!(recorded_action_is(&p, &repaired, &call("gpt-4o", Some("repair_args"), None), "retry"));
        // Provider ids map to declared names, so a fallback names the declared model.
        assert!(recorded_action_is(&p, &plain, &call("claude-3-5-haiku", None, None), "fallback:backup"));
        assert!(!recorded_action_is(&p, &plain, &call("claude-3-5-haiku", None, None), "fallback:primary"));
        // Undeclared models compare by their own names.
        assert!(recorded_action_is(&p, &plain, &call("other", None, None), "fallback:other"));
        // A recorded reset wins over everything else.
        let reset = call("claude-3-5-haiku", None, Some(ResetScope::Context));
        assert!(recorded_action_is(&p, &plain, &reset, "reset:context"));
        assert!(!recorded_action_is(&p, &plain, &reset, "fallback:backup"));
    }
}
