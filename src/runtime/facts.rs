//! Events and state -> the `Facts` the decision table reads. Every field of
//! `schema::FIELDS` is filled here, event-scoped ones from the call and its
//! request, state-scoped ones from the decision state.

use crate::compile::CompiledPolicy;
use crate::schema::{Fact, Facts, index_of};

use super::event::{Event, EventKind};
use super::state::{FleetView, State};

/// Field indices resolved once; `schema::FIELDS` is a constant table so
/// these never fail for the paths below (a test checks every one).
struct Slots {
    kind: usize,
    model: usize,
    strategy: usize,
    outcome: usize,
    tool_name: usize,
    side_effects: usize,
    response_started: usize,
    error_type: usize,
    error_code: usize,
    http_status: usize,
    error_message: usize,
    error_provider: usize,
    error_param: usize,
    error_status: usize,
    schema_valid: usize,
    confidence: usize,
    finish_reason: usize,
    refusal: usize,
    latency: usize,
    cost: usize,
    tokens_in: usize,
    tokens_out: usize,
    risk: usize,
    intent: usize,
    class: usize,
    attempt: usize,
    class_attempts: usize,
    resets: usize,
    fallbacks: usize,
    spent_cost: usize,
    spent_latency: usize,
    breaker_open: usize,
    retry_budget_exhausted: usize,
}

fn slot(path: &str) -> usize {
    // An unknown path maps past the end, where `Facts::fields` ignores writes.
    index_of(path).unwrap_or(usize::MAX)
}

static SLOTS: std::sync::LazyLock<Slots> = std::sync::LazyLock::new(|| Slots {
    kind: slot("kind"),
    model: slot("model"),
    strategy: slot("strategy"),
    outcome: slot("outcome"),
    tool_name: slot("tool.name"),
    side_effects: slot("tool.side_effects"),
    response_started: slot("response_started"),
    error_type: slot("error.type"),
    error_code: slot("error.code"),
    http_status: slot("error.http_status"),
    error_message: slot("error.message"),
    error_provider: slot("error.provider"),
    error_param: slot("error.param"),
    error_status: slot("error.status"),
    schema_valid: slot("output.schema_valid"),
    confidence: slot("output.confidence"),
    finish_reason: slot("output.finish_reason"),
    refusal: slot("output.refusal"),
    latency: slot("latency"),
    cost: slot("cost"),
    tokens_in: slot("tokens_in"),
    tokens_out: slot("tokens_out"),
    risk: slot("risk"),
    intent: slot("intent"),
    class: slot("class"),
    attempt: slot("attempt"),
    class_attempts: slot("class_attempts"),
    resets: slot("resets"),
    fallbacks: slot("fallbacks"),
    spent_cost: slot("spent.cost"),
    spent_latency: slot("spent.latency"),
    breaker_open: slot("fleet.breaker_open"),
    retry_budget_exhausted: slot("fleet.retry_budget_exhausted"),
});

fn put<'a>(facts: &mut Facts<'a>, index: usize, value: Fact<'a>) {
    if let Some(slot) = facts.fields.get_mut(index) {
        *slot = value;
    }
}

fn opt_str(v: Option<&String>) -> Fact<'_> {
    v.map_or(Fact::Absent, |s| Fact::Str(s.as_str()))
}

fn opt_num<T: Into<f64> + Copy>(v: Option<T>) -> Fact<'static> {
    v.map_or(Fact::Absent, |x| Fact::Num(x.into()))
}

fn opt_bool(v: Option<bool>) -> Fact<'static> {
    v.map_or(Fact::Absent, Fact::Bool)
}

/// The declared model name for an event's model (a declared name or a
/// provider id); `None` when the policy does not declare it.
pub fn model_name<'p>(policy: &'p CompiledPolicy, model: &str) -> Option<&'p str> {
    policy
        .source
        .models
        .iter()
        .find(|(name, info)| name.as_str() == model || info.provider_id == model)
        .map(|(name, _)| name.as_str())
}

/// Fills the event-scoped fields from a call and its request.
pub fn fill_event<'a>(facts: &mut Facts<'a>, policy: &'a CompiledPolicy, call: &'a Event, request: &'a Event) {
    let s = &*SLOTS;
    let kind = match call.kind {
        EventKind::ModelCall => Fact::Str("model_call"),
        EventKind::ToolCall => Fact::Str("tool_call"),
        _ => Fact::Absent,
    };
    put(facts, s.kind, kind);
    let model = call.model.as_deref().map(|m| Fact::Str(model_name(policy, m).unwrap_or(m)));
    put(facts, s.model, model.unwrap_or(Fact::Absent));
    put(facts, s.strategy, opt_str(call.strategy.as_ref()));
    put(facts, s.outcome, call.outcome.map_or(Fact::Absent, |o| Fact::Str(o.as_str())));
    let tool = call.tool.as_ref();
    put(facts, s.tool_name, opt_str(tool.and_then(|t| t.name.as_ref())));
    put(facts, s.side_effects, opt_bool(tool.map(|t| t.side_effects)));
    put(facts, s.response_started, opt_bool(call.response_started));
    let err = call.error.as_ref();
    put(facts, s.error_type, opt_str(err.and_then(|e| e.kind.as_ref())));
    put(facts, s.error_code, opt_str(err.and_then(|e| e.code.as_ref())));
    put(facts, s.http_status, err.and_then(|e| e.http_status).map_or(Fact::Absent, |v| Fact::Num(v as f64)));
    put(facts, s.error_message, opt_str(err.and_then(|e| e.message.as_ref())));
    put(facts, s.error_provider, opt_str(err.and_then(|e| e.provider.as_ref())));
    put(facts, s.error_param, opt_str(err.and_then(|e| e.param.as_ref())));
    put(facts, s.error_status, opt_str(err.and_then(|e| e.status.as_ref())));
    let out = call.output.as_ref();
    put(facts, s.schema_valid, opt_bool(out.and_then(|o| o.schema_valid)));
    put(facts, s.confidence, opt_num(out.and_then(|o| o.confidence)));
    put(facts, s.finish_reason, opt_str(out.and_then(|o| o.finish_reason.as_ref())));
    put(facts, s.refusal, opt_bool(out.and_then(|o| o.refusal)));
    put(facts, s.latency, opt_num(call.latency_ms));
    put(facts, s.cost, opt_num(call.cost_usd));
    put(facts, s.tokens_in, call.tokens_in.map_or(Fact::Absent, |v| Fact::Num(v as f64)));
    put(facts, s.tokens_out, call.tokens_out.map_or(Fact::Absent, |v| Fact::Num(v as f64)));
    put(facts, s.risk, request.risk.map_or(Fact::Absent, |r| Fact::Str(r.as_str())));
    put(facts, s.intent, opt_str(request.intent.as_ref()));
    facts.metadata = request.metadata.as_deref();
}

/// Fills the state-scoped fields. `class` is `None` for accept-gate failures.
pub fn fill_state<'a>(facts: &mut Facts<'a>, state: &'a State, class: Option<&'a str>, fleet: FleetView) {
    let s = &*SLOTS;
    put(facts, s.class, class.map_or(Fact::Absent, Fact::Str));
    put(facts, s.attempt, Fact::Num(f64::from(state.attempt)));
    let class_attempts = class.map_or(0, |c| state.class_count(c));
    put(facts, s.class_attempts, Fact::Num(f64::from(class_attempts)));
    put(facts, s.resets, Fact::Num(f64::from(state.resets)));
    put(facts, s.fallbacks, Fact::Num(f64::from(state.fallbacks)));
    put(facts, s.spent_cost, Fact::Num(state.cost_usd));
    put(facts, s.spent_latency, Fact::Num(state.latency_ms));
    put(facts, s.breaker_open, Fact::Bool(fleet.breaker_open));
    put(facts, s.retry_budget_exhausted, Fact::Bool(fleet.retry_budget_exhausted));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_names_a_schema_field() {
        let s = &*SLOTS;
        let all = [
            s.kind,
            s.model,
            s.strategy,
            s.outcome,
            s.tool_name,
            s.side_effects,
            s.response_started,
            s.error_type,
            s.error_code,
            s.http_status,
            s.error_message,
            s.error_provider,
            s.error_param,
            s.error_status,
            s.schema_valid,
            s.confidence,
            s.finish_reason,
            s.refusal,
            s.latency,
            s.cost,
            s.tokens_in,
            s.tokens_out,
            s.risk,
            s.intent,
            s.class,
            s.attempt,
            s.class_attempts,
            s.resets,
            s.fallbacks,
            s.spent_cost,
            s.spent_latency,
            s.breaker_open,
            s.retry_budget_exhausted,
        ];
        assert!(all.iter().all(|&i| i < crate::schema::FIELD_COUNT));
        // Every schema field is filled by exactly one slot.
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), crate::schema::FIELD_COUNT);
    }
}
