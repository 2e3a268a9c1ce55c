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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FIELDS, Scope};

    #[test]
    fn agrees_with_the_engine_on_every_event_field() {
        let source = crate::diag::Source::new("default.rcv", include_str!("../../../policies/default.rcv"));
        let policy = crate::compile::build(&source).policy.expect("default.rcv compiles");
        let lines = [
            r#"{"request_id":"r","seq":0,"kind":"request","risk":"high","intent":"refund","metadata":{"tenant":"acme"}}"#,
            r#"{"request_id":"r","seq":1,"kind":"model_call","model":"gpt-4o","strategy":"direct","outcome":"error","error":{"type":"t","code":"c","http_status":429,"message":"m","provider":"p","param":"x","status":"S"},"output":{"schema_valid":false,"confidence":0.5,"finish_reason":"length","refusal":false},"latency_ms":12,"cost_usd":0.01,"tokens_in":3,"tokens_out":4,"response_started":true}"#,
            r#"{"request_id":"r","seq":2,"kind":"tool_call","tool":{"name":"pay","side_effects":true},"outcome":"ok"}"#,
        ];
        let events: Vec<Event> = lines
            .iter()
            .map(|l| match crate::runtime::ingress::native::parse_line(l.as_bytes()) {
                crate::runtime::ingress::native::Parsed::Event(e) => *e,
                other => panic!("{other:?}"),
            })
            .collect();
        let request = &events[0];
        for call in &events[1..] {
            let model = call.model.as_deref().and_then(|m| crate::runtime::facts::model_name(&policy, m));
            let mine = event_facts(call, request, model);
            let mut theirs = Facts::default();
            crate::runtime::facts::fill_event(&mut theirs, &policy, call, request);
            for (i, field) in FIELDS.iter().enumerate() {
                if field.scope == Scope::Event {
                    assert_eq!(mine.get(i), theirs.get(i), "{}", field.path);
                }
            }
            assert_eq!(mine.metadata("tenant"), Fact::Str("acme"));
        }
        // The declared name, not the provider id, when the policy declares it.
        let model = events[1].model.as_deref().and_then(|m| crate::runtime::facts::model_name(&policy, m));
        assert_eq!(event_facts(&events[1], request, model).lookup("model"), Fact::Str("primary"));
    }
}
