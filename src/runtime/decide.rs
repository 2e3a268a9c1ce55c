//! The pure decision step: `decide(policy, state, input) -> (decision, state)`.
//! No I/O, no clock: the same input gives the same decision whatever the
//! thread or the order cases are processed in.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::check::ir::{ActionIr, BackoffIr, DecisionIr, RetryIr};
use crate::compile::CompiledPolicy;
use crate::schema::Facts;
use crate::span::Span;
use crate::syntax::ast::{ActionKind, Jitter, ResetScope, Severity};

use super::event::{Event, Outcome};
use super::facts::{fill_event, fill_state, model_name};
use super::rng::{Purpose, stream};
use super::state::{FleetView, Name, State};

/// The built-in reason the engine uses when a budget cap fires and the
/// policy's `budget` block names no decision of its own.
pub const BUILTIN_BUDGET_REASON: &str = "budget_exhausted";
/// The built-in reason for an event no rule covers (impossible for a policy
/// that compiled without a gap error; kept so the engine never guesses).
pub const BUILTIN_NO_RULE_REASON: &str = "no_rule_matched";

/// What one decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The call failed (`outcome: error`).
    Error,
    /// The call succeeded but its output failed an `accept` requirement.
    Accept,
}

/// Where in the policy a decision came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// `recover`, `accept`, `budget`, `fleet.breaker`, `fleet.retry_budget` or `builtin`.
    pub block: Cow<'static, str>,
    /// Index of the rule within its block (0-based), when it is a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// 1-based source line, when the policy text is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub span: Span,
}

/// The reset prompt handed to the agent, with a digest so a trace proves
/// which text was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRef {
    pub id: String,
    pub text: String,
    pub sha256: String,
}

/// A concrete action: everything the agent loop needs to carry it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOut {
    pub kind: ActionKind,
    /// Backoff before the next call, jitter applied (0 for no backoff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    /// Strategy of the next call (retry and fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Name>,
    /// Model of the next call: declared name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Name>,
    /// Its provider id, for the agent to call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_model: Option<Name>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptRef>,
    /// After a reset: `retry` or `fallback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<ActionKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<Name>,
}

impl ActionOut {
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, ActionKind::Escalate | ActionKind::Abort)
    }

    /// The key a recording or an `alternatives` entry uses for this action:
    /// `retry`, `retry:STRATEGY`, `fallback:MODEL`, `reset:SCOPE`.
    pub fn key(&self, current_strategy: Option<&str>) -> Cow<'static, str> {
        // Concatenated rather than `format!`ed, and not allocated at all for
        // the plain keys: one key per replayed decision.
        let joined = |prefix: &str, name: &str| Cow::Owned([prefix, name].concat());
        match self.kind {
            ActionKind::Reset => joined("reset:", self.reset.map_or("context", ResetScope::as_str)),
            ActionKind::Fallback => joined("fallback:", self.model.as_deref().unwrap_or("")),
            ActionKind::Retry => match self.strategy.as_deref() {
                Some(s) if Some(s) != current_strategy => joined("retry:", s),
                _ => Cow::Borrowed("retry"),
            },
            ActionKind::Escalate => Cow::Borrowed("escalate"),
            ActionKind::Abort => Cow::Borrowed("abort"),
        }
    }
}

/// An engine-enforced limit that replaced the rule's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// `budget.attempts`, `budget.cost`, ..., `fleet.breaker`, `fleet.retry_budget`.
    pub by: String,
    /// The rule whose decision was replaced.
    pub replaced: RuleRef,
    /// The action that rule wanted.
    pub wanted: ActionKind,
}

/// One decision, as the trace and `rcv decide` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub trigger: Trigger,
    /// The failure class (`None` for accept-gate failures).
    pub class: Option<Name>,
    /// The classify rule that assigned the class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classify_rule: Option<RuleRef>,
    pub rule: RuleRef,
    pub action: ActionOut,
    pub reason: Name,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<Override>,
    /// Invariants this decision breaks (empty for a policy that compiled:
    /// the analysis rejects such policies; kept as a runtime safety net).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub invariant_violations: Vec<String>,
}

/// Everything one decision depends on besides the state.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The call that failed (or whose output failed `accept`).
    pub call: &'a Event,
    /// Its request event (risk, intent, budget, metadata).
    pub request: &'a Event,
    pub fleet: FleetView,
    /// The replay seed (jitter draws from it).
    pub seed: u64,
    /// The policy text, to give rule references line numbers.
    pub lines: Option<&'a crate::span::Lines<'a>>,
}

/// Whether a call needs a decision: it failed, or its output fails `accept`.
pub fn needs_decision(policy: &CompiledPolicy, call: &Event, request: &Event, state: &State) -> bool {
    if call.outcome == Some(Outcome::Error) {
        return true;
    }
    let mut facts = Facts::default();
    fill_event(&mut facts, policy, call, request);
    fill_state(&mut facts, state, None, FleetView::default());
    policy.accept(&facts).is_some()
}

/// Decides what to do about one failed call, and returns the state after
/// the decision (attempts, spend and counters advanced).
pub fn decide(policy: &CompiledPolicy, state: &State, input: &Input<'_>) -> (Decision, State) {
    let mut next = state.clone();
    let decision = decide_in_place(policy, &mut next, input);
    (decision, next)
}

/// [`decide`] advancing `state` in place: a replay keeps one state per
/// case instead of a copy per decision.
pub fn decide_in_place(policy: &CompiledPolicy, next: &mut State, input: &Input<'_>) -> Decision {
    let src = &policy.source;
    let mut facts = Facts::default();
    fill_event(&mut facts, policy, input.call, input.request);
    let failed = input.call.outcome == Some(Outcome::Error);

    // Classification reads raw event fields only.
    let (trigger, class, classify_rule) = if failed {
        match policy.classify(&facts) {
            Some(hit) => {
                let rule = src.classify.get(hit.rule);
                let class = rule.map(|r| Name::from(r.class.as_str()));
                let span = rule.map_or(Span::default(), |r| r.span);
                (Trigger::Error, class, Some(rule_ref("classify", Some(hit.rule), span, input.lines)))
            }
            None => (Trigger::Error, None, None),
        }
    } else {
        (Trigger::Accept, None, None)
    };

    // The decision accounts the call it is about: one more attempt in this
    // step, its cost and latency spent.
    account(policy, next, input.call, class.as_ref());
    let next = &mut *next;
    fill_state(&mut facts, next, class.as_deref(), input.fleet);

    let (mut rule, mut chosen): (RuleRef, Option<&DecisionIr>) = if failed {
        match policy.recover(&facts) {
            Some(hit) => {
                let r = src.recover.get(hit.rule);
                (
                    rule_ref("recover", Some(hit.rule), r.map_or(Span::default(), |r| r.span), input.lines),
                    r.map(|r| &r.decision),
                )
            }
            None => (rule_ref("builtin", None, Span::default(), None), None),
        }
    } else {
        match policy.accept(&facts) {
            Some(hit) => {
                let r = src.accept.get(hit.rule);
                (
                    rule_ref("accept", Some(hit.rule), r.map_or(Span::default(), |r| r.span), input.lines),
                    r.map(|r| &r.decision),
                )
            }
            None => (rule_ref("builtin", None, Span::default(), None), None),
        }
    };

    // Engine-enforced limits, in order: fleet protection, then budget caps.
    let mut overridden = None;
    let wanted_kind = chosen.map_or(ActionKind::Escalate, |d| d.action.kind());
    if let Some(d) = chosen
        && let Some((by, block, guard)) = fleet_override(policy, &d.action, input.fleet)
    {
        overridden = Some(Override { by: by.to_string(), replaced: rule.clone(), wanted: wanted_kind });
        rule = rule_ref(block, None, guard.span, input.lines);
        chosen = Some(guard);
    }
    let mut budget_builtin = false;
    if let Some(d) = chosen
        && let Some(by) = budget_cap(policy, &d.action, next, input.request)
    {
        overridden = Some(Override { by: by.to_string(), replaced: rule.clone(), wanted: wanted_kind });
        match &src.budget.exhausted {
            Some(ex) => {
                rule = rule_ref("budget", None, ex.span, input.lines);
                chosen = Some(ex);
            }
            None => {
                rule = rule_ref("budget", None, src.budget.span.unwrap_or_default(), input.lines);
                chosen = None;
                budget_builtin = true;
            }
        }
    }

    let (action, reason, severity) = match chosen {
        Some(d) => {
            let action = concretize(policy, &d.action, next, input);
            let severity = src.reasons.get(&d.reason).map_or(Severity::Info, |r| r.severity);
            (action, Name::from(d.reason.as_str()), severity)
        }
        None => {
            let reason = if budget_builtin { BUILTIN_BUDGET_REASON } else { BUILTIN_NO_RULE_REASON };
            (escalate_action(), Name::from(reason), Severity::High)
        }
    };

    // A reset-then-retry is both a reset and a retry for the invariants.
    let mut broken = policy.violated_invariants(&facts, action.kind);
    if let Some(then) = action.then {
        broken.extend(policy.violated_invariants(&facts, then));
        broken.sort_unstable();
        broken.dedup();
    }
    let invariant_violations =
        broken.into_iter().filter_map(|i| src.invariants.get(i).map(|inv| inv.text.clone())).collect();

    advance(next, &action);
    Decision { trigger, class, classify_rule, rule, action, reason, severity, overridden, invariant_violations }
}

/// The state a decision sees: `state` with the call being decided
/// accounted (one more attempt, its cost and latency, its model, strategy
/// and class counted).
pub fn accounted(policy: &CompiledPolicy, state: &State, call: &Event, class: Option<&Name>) -> State {
    let mut next = state.clone();
    account(policy, &mut next, call, class);
    next
}

fn account(policy: &CompiledPolicy, next: &mut State, call: &Event, class: Option<&Name>) {
    next.attempt += 1;
    next.charge(call.cost_usd.unwrap_or(0.0), call.latency_ms.unwrap_or(0.0));
    if let Some(m) = call_model(policy, call) {
        set_name(&mut next.model, m);
        next.note_model(m);
    }
    if let Some(s) = &call.strategy {
        next.note_strategy(s);
    }
    if let Some(c) = class {
        // Count without copying the class name when it is already known.
        next.class_attempts.add(c);
    }
}

pub(crate) fn escalate_action() -> ActionOut {
    ActionOut {
        kind: ActionKind::Escalate,
        delay_ms: None,
        strategy: None,
        model: None,
        provider_model: None,
        reset: None,
        prompt: None,
        then: None,
        queue: None,
    }
}

fn rule_ref(block: &'static str, index: Option<usize>, span: Span, lines: Option<&crate::span::Lines<'_>>) -> RuleRef {
    let line = lines.map(|l| l.line(span.start));
    RuleRef { block: Cow::Borrowed(block), index, line, span }
}

/// Whether the action retries on the same model (plain or after a reset).
fn retries_same_model(action: &ActionIr) -> bool {
    match action {
        ActionIr::Retry(_) => true,
        ActionIr::Reset { then, .. } => matches!(**then, ActionIr::Retry(_)),
        _ => false,
    }
}

fn fleet_override<'p>(
    policy: &'p CompiledPolicy,
    action: &ActionIr,
    fleet: FleetView,
) -> Option<(&'static str, &'static str, &'p DecisionIr)> {
    if !retries_same_model(action) {
        return None;
    }
    let f = &policy.source.fleet;
    if fleet.breaker_open
        && let Some(b) = &f.breaker
    {
        return Some(("fleet.breaker", "fleet.breaker", &b.decision));
    }
    if fleet.retry_budget_exhausted
        && let Some(r) = &f.retry_budget
    {
        return Some(("fleet.retry_budget", "fleet.retry_budget", &r.decision));
    }
    None
}

/// The first budget cap a non-terminal action would break, if any. `state`
/// already counts the failure being decided.
fn budget_cap(policy: &CompiledPolicy, action: &ActionIr, state: &State, request: &Event) -> Option<&'static str> {
    if action.is_terminal() {
        return None;
    }
    let b = &policy.source.budget;
    let req = request.budget.as_ref();
    let attempts = min_opt(b.attempts, req.and_then(|r| r.attempts));
    if attempts.is_some_and(|cap| state.attempt >= cap) {
        return Some("budget.attempts");
    }
    if let Some(cap) = b.class_attempts
        && state.class_attempts.iter().any(|(_, n)| n >= cap)
    {
        return Some("budget.class_attempts");
    }
    let cost = min_f(b.cost, req.and_then(|r| r.cost_usd));
    if cost.is_some_and(|cap| state.cost_usd >= cap) {
        return Some("budget.cost");
    }
    let latency = min_f(b.latency_ms, req.and_then(|r| r.latency_ms));
    if latency.is_some_and(|cap| state.latency_ms >= cap) {
        return Some("budget.latency");
    }
    let (resets, fallbacks) = action_counts(action);
    if resets > 0 && b.resets.is_some_and(|cap| state.resets >= cap) {
        return Some("budget.resets");
    }
    if fallbacks > 0 && b.fallbacks.is_some_and(|cap| state.fallbacks >= cap) {
        return Some("budget.fallbacks");
    }
    None
}

pub fn min_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

pub fn min_f(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// (resets, fallbacks) an action performs.
fn action_counts(action: &ActionIr) -> (u32, u32) {
    match action {
        ActionIr::Fallback { .. } => (0, 1),
        ActionIr::Reset { then, .. } => (1, action_counts(then).1),
        _ => (0, 0),
    }
}

/// Turns a policy action into a concrete one: delay computed and jitter
/// drawn, model and prompt resolved.
fn concretize(policy: &CompiledPolicy, action: &ActionIr, state: &State, input: &Input<'_>) -> ActionOut {
    let src = &policy.source;
    let mut out = escalate_action();
    out.kind = action.kind();
    match action {
        ActionIr::Retry(r) => retry_into(&mut out, policy, r, state, input),
        ActionIr::Fallback { model, strategy } => fallback_into(&mut out, policy, model, strategy.as_deref()),
        ActionIr::Reset { scope, prompt, then } => {
            out.reset = Some(*scope);
            out.prompt = prompt.as_ref().and_then(|p| {
                src.prompts.get(p).map(|info| PromptRef {
                    id: p.clone(),
                    text: info.text.clone(),
                    sha256: info.sha256.clone(),
                })
            });
            out.then = Some(then.kind());
            match &**then {
                ActionIr::Retry(r) => retry_into(&mut out, policy, r, state, input),
                ActionIr::Fallback { model, strategy } => fallback_into(&mut out, policy, model, strategy.as_deref()),
                _ => {}
            }
        }
        ActionIr::Escalate { queue } => out.queue = queue.as_deref().map(Name::from),
        ActionIr::Abort => {}
    }
    out
}

fn retry_into(out: &mut ActionOut, policy: &CompiledPolicy, r: &RetryIr, state: &State, input: &Input<'_>) {
    out.strategy = r.strategy.as_deref().map(Name::from);
    let current = input.call.model.as_deref();
    out.model = state.model.clone().or_else(|| current.map(Name::from));
    // The provider id to call: the declared model's, or the call's own.
    out.provider_model = out
        .model
        .as_deref()
        .and_then(|m| policy.source.models.get(m))
        .map(|m| Name::from(m.provider_id.as_str()))
        .or_else(|| current.map(Name::from));
    out.delay_ms = Some(r.backoff.as_ref().map_or(0.0, |b| {
        let base = backoff_delay(b, state.attempt.max(1));
        apply_jitter(base, r.jitter, input.seed, &input.call.request_id, state.attempt)
    }));
}

fn fallback_into(out: &mut ActionOut, policy: &CompiledPolicy, model: &str, strategy: Option<&str>) {
    out.model = Some(model.into());
    out.provider_model = policy.source.models.get(model).map(|m| m.provider_id.as_str().into());
    out.strategy = strategy.map(Name::from);
    out.delay_ms = Some(0.0);
}

/// The delay before retry number `n` (1 = the first retry), before jitter.
pub fn backoff_delay(b: &BackoffIr, n: u32) -> f64 {
    let k = f64::from(n.saturating_sub(1));
    match *b {
        BackoffIr::Fixed { delay_ms } => delay_ms,
        BackoffIr::Linear { initial_ms, step_ms, max_ms } => (initial_ms + step_ms * k).min(max_ms),
        BackoffIr::Exponential { initial_ms, factor, max_ms } => (initial_ms * factor.powf(k)).min(max_ms),
    }
}

/// Jitter drawn from the stream of (seed, request, attempt): the same for a
/// request whatever else is replayed beside it.
pub fn apply_jitter(base: f64, jitter: Jitter, seed: u64, request_id: &str, attempt: u32) -> f64 {
    let u = || stream(seed, request_id, attempt, Purpose::Jitter).unit();
    let d = match jitter {
        Jitter::None => base,
        Jitter::Full => base * u(),
        Jitter::Equal => base / 2.0 + base / 2.0 * u(),
    };
    // Whole milliseconds keep traces readable and byte-stable.
    d.round()
}

/// Advances the counters for the action taken.
fn advance(state: &mut State, action: &ActionOut) {
    state.decisions += 1;
    match action.kind {
        ActionKind::Retry => state.retries += 1,
        ActionKind::Fallback => state.fallbacks += 1,
        ActionKind::Reset => {
            state.resets += 1;
            if action.then == Some(ActionKind::Fallback) {
                state.fallbacks += 1;
            } else {
                state.retries += 1;
            }
        }
        ActionKind::Escalate => state.escalations += 1,
        ActionKind::Abort => {}
    }
    if let Some(d) = action.delay_ms {
        state.latency_ms += d;
    }
    if !action.is_terminal() {
        if let Some(m) = &action.model {
            set_name(&mut state.model, m);
            state.note_model(m);
        }
        if let Some(s) = &action.strategy {
            set_name(&mut state.strategy, s);
            state.note_strategy(s);
        }
    }
}

/// Sets a model or strategy slot of the state, keeping the name it holds
/// when it is the same: most decisions name the model or strategy the slot
/// already holds.
fn set_name(slot: &mut Option<Name>, name: &str) {
    if slot.as_deref() != Some(name) {
        *slot = Some(name.into());
    }
}

/// The declared model name of a call, if declared.
pub fn call_model<'p>(policy: &'p CompiledPolicy, call: &Event) -> Option<&'p str> {
    call.model.as_deref().and_then(|m| model_name(policy, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_keys_name_what_a_recording_or_alternative_would() {
        let mut a = escalate_action();
        assert_eq!(a.key(None), "escalate");
        a.kind = ActionKind::Abort;
        assert_eq!(a.key(None), "abort");
        a.kind = ActionKind::Retry;
        assert_eq!(a.key(None), "retry");
        a.strategy = Some("repair_args".into());
        assert_eq!(a.key(None), "retry:repair_args");
        // Retrying with the strategy already in use is a plain retry.
        assert_eq!(a.key(Some("repair_args")), "retry");
        a.kind = ActionKind::Fallback;
        assert_eq!(a.key(None), "fallback:");
        a.model = Some("backup".into());
        assert_eq!(a.key(None), "fallback:backup");
        a.kind = ActionKind::Reset;
        assert_eq!(a.key(None), "reset:context");
        a.reset = Some(ResetScope::Checkpoint);
        assert_eq!(a.key(None), "reset:checkpoint");
    }

    #[test]
    fn exponential_backoff_grows_and_caps() {
        let b = BackoffIr::Exponential { initial_ms: 250.0, factor: 2.0, max_ms: 8000.0 };
        let d: Vec<f64> = (1..=8).map(|n| backoff_delay(&b, n)).collect();
        assert_eq!(d, vec![250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 8000.0, 8000.0]);
    }

    #[test]
    fn linear_and_fixed_backoff() {
        let l = BackoffIr::Linear { initial_ms: 100.0, step_ms: 50.0, max_ms: 180.0 };
        assert_eq!([1, 2, 3].map(|n| backoff_delay(&l, n)), [100.0, 150.0, 180.0]);
        assert_eq!(backoff_delay(&BackoffIr::Fixed { delay_ms: 42.0 }, 9), 42.0);
    }

    #[test]
    fn jitter_is_bounded_and_reproducible() {
        for attempt in 1..50 {
            let full = apply_jitter(1000.0, Jitter::Full, 7, "req-1", attempt);
            assert!((0.0..=1000.0).contains(&full));
            assert_eq!(full, apply_jitter(1000.0, Jitter::Full, 7, "req-1", attempt));
            let equal = apply_jitter(1000.0, Jitter::Equal, 7, "req-1", attempt);
            assert!((500.0..=1000.0).contains(&equal));
        }
        assert_eq!(apply_jitter(1000.0, Jitter::None, 7, "r", 1), 1000.0);
        // Different requests draw from different streams.
        let a: Vec<f64> = (1..20).map(|n| apply_jitter(1000.0, Jitter::Full, 0, "a", n)).collect();
        let b: Vec<f64> = (1..20).map(|n| apply_jitter(1000.0, Jitter::Full, 0, "b", n)).collect();
        assert_ne!(a, b);
    }
}
