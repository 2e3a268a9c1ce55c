//! Event -> [`Facts`]: the event-scoped fields of `schema::FIELDS`, read
//! from a call event and its request. The engine fills the state-scoped
//! fields (`class`, `attempt`, `spent.*`, `fleet.*`...) on top.

use crate::runtime::event::Event;
use crate::schema::{Fact, Facts};

fn text(v: Option<&str>) -> Fact<'_> {
    v.map_or(Fact::Absent, Fact::Str)
}

fn num(v: Option<f64>) -> Fact<'static> {
    v.map_or(Fact::Absent, Fact::Num)
}

fn flag(v: Option<bool>) -> Fact<'static> {
    v.map_or(Fact::Absent, Fact::Bool)
}

/// The event-scoped facts of `event` (a call) within `request`.
/// `model_name` is the declared model the event's `model` resolves to;
/// without it the event's own `model` string is used.
pub fn event_facts<'a>(event: &'a Event, request: &'a Event, model_name: Option<&'a str>) -> Facts<'a> {
    let mut f = Facts::default();
    let kind = if event.kind.is_call() { Fact::Str(event.kind.as_str()) } else { Fact::Absent };
    f.set("kind", kind);
    f.set("model", text(model_name.or(event.model.as_deref())));
    f.set("strategy", text(event.strategy.as_deref()));
    f.set("outcome", event.outcome.map_or(Fact::Absent, |o| Fact::Str(o.as_str())));
    if let Some(tool) = &event.tool {
        f.set("tool.name", text(tool.name.as_deref()));
        f.set("tool.side_effects", Fact::Bool(tool.side_effects));
    }
    f.set("response_started", flag(event.response_started));
    if let Some(err) = &event.error {
        f.set("error.type", text(err.kind.as_deref()));
        f.set("error.code", text(err.code.as_deref()));
        f.set("error.http_status", err.http_status.map_or(Fact::Absent, |s| Fact::Num(s as f64)));
        f.set("error.message", text(err.message.as_deref()));
        f.set("error.provider", text(err.provider.as_deref()));
        f.set("error.param", text(err.param.as_deref()));
        f.set("error.status", text(err.status.as_deref()));
    }
    if let Some(out) = &event.output {
        f.set("output.schema_valid", flag(out.schema_valid));
        f.set("output.confidence", num(out.confidence));
        f.set("output.finish_reason", text(out.finish_reason.as_deref()));
        f.set("output.refusal", flag(out.refusal));
    }
    f.set("latency", num(event.latency_ms));
    f.set("cost", num(event.cost_usd));
    f.set("tokens_in", event.tokens_in.map_or(Fact::Absent, |t| Fact::Num(t as f64)));
    f.set("tokens_out", event.tokens_out.map_or(Fact::Absent, |t| Fact::Num(t as f64)));
    f.set("risk", request.risk.map_or(Fact::Absent, |r| Fact::Str(r.as_str())));
    f.set("intent", text(request.intent.as_deref()));
    f.metadata = request.metadata.as_ref();
    f
}
