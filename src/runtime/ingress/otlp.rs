//! OTLP/JSON trace exports -> native events, following the OpenTelemetry
//! GenAI semantic conventions. `docs/trace-format.md` has the mapping table.
//!
//! Input: one `ExportTraceServiceRequest` document (`{"resourceSpans":
//! [...]}`), or several, one per line (the collector's file exporter).
//! Spans are grouped by trace id (one case per trace) and ordered by start
//! time; see [`super::spans`] for the tree rules.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::reject::RejectReason;
use super::spans::{self, Converted, Role, SpanNode};
use crate::runtime::event::{ErrorInfo, Risk};

type Attrs = IndexMap<String, Value>;

/// Converts an OTLP/JSON document (or one document per line).
pub fn convert(file: &str, bytes: &[u8]) -> Converted {
    let mut out = Converted::default();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64;
            out.spans += 1;
            out.rejections.push(spans::span_rejection(
                file,
                line,
                None,
                RejectReason::InvalidUtf8,
                format!("invalid UTF-8 byte at offset {}", e.valid_up_to()),
            ));
            return out;
        }
    };
    let mut nodes = Vec::new();
    let mut ordinal = 0u64;
    let mut docs = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut doc_start = 0usize;
    loop {
        let line = 1 + text[..doc_start.min(text.len())].bytes().filter(|&b| b == b'\n').count() as u64;
        match docs.next() {
            None => break,
            Some(Ok(doc)) => read_doc(file, line, &doc, &mut ordinal, &mut nodes, &mut out),
            Some(Err(e)) => {
                out.spans += 1;
                out.rejections.push(spans::span_rejection(
                    file,
                    e.line() as u64,
                    None,
                    RejectReason::MalformedJson,
                    format!("{} at column {}", strip_position(&e), e.column()),
                ));
                break;
            }
        }
        doc_start = docs.byte_offset();
    }
    spans::build(file, nodes, &mut out);
    out
}

fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

fn read_doc(file: &str, line: u64, doc: &Value, ordinal: &mut u64, nodes: &mut Vec<SpanNode>, out: &mut Converted) {
    let Some(resource_spans) = doc.get("resourceSpans").and_then(Value::as_array) else {
        out.spans += 1;
        let (reason, detail) = if doc.is_object() {
            (RejectReason::MissingField, "missing field `resourceSpans`".to_string())
        } else {
            (RejectReason::NotAnObject, "expected an OTLP/JSON object with `resourceSpans`".to_string())
        };
        out.rejections.push(spans::span_rejection(file, line, None, reason, detail));
        return;
    };
    for rs in resource_spans {
        let resource = attrs(rs.get("resource").and_then(|r| r.get("attributes")));
        let scopes = rs.get("scopeSpans").or_else(|| rs.get("instrumentationLibrarySpans"));
        for ss in scopes.and_then(Value::as_array).into_iter().flatten() {
            for span in ss.get("spans").and_then(Value::as_array).into_iter().flatten() {
                *ordinal += 1;
                match read_span(*ordinal, span, &resource) {
                    Ok(node) => nodes.push(node),
                    Err((reason, trace, detail)) => {
                        out.spans += 1;
                        out.rejections.push(spans::span_rejection(file, *ordinal, trace.as_deref(), reason, detail));
                    }
                }
            }
        }
    }
}

/// An OTLP `AnyValue` as plain JSON.
pub fn any_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else { return v.clone() };
    if let Some(s) = obj.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = obj.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = obj.get("intValue") {
        return match i {
            Value::String(s) => s.trim().parse::<i64>().map_or_else(|_| i.clone(), Value::from),
            other => other.clone(),
        };
    }
    if let Some(d) = obj.get("doubleValue") {
        return match d {
            Value::String(s) => {
                s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
            }
            other => other.clone(),
        };
    }
    if let Some(a) = obj.get("arrayValue") {
        let values = a.get("values").and_then(Value::as_array).map(|vs| vs.iter().map(any_value).collect());
        return Value::Array(values.unwrap_or_default());
    }
    if let Some(kv) = obj.get("kvlistValue") {
        return Value::Object(attrs(kv.get("values")).into_iter().collect::<Map<String, Value>>());
    }
    if let Some(b) = obj.get("bytesValue") {
        return b.clone();
    }
    v.clone()
}

/// `[{"key": k, "value": AnyValue}]` as a map (later keys win).
pub fn attrs(list: Option<&Value>) -> Attrs {
    let mut out = Attrs::new();
    for kv in list.and_then(Value::as_array).into_iter().flatten() {
        if let Some(key) = kv.get("key").and_then(Value::as_str) {
            out.insert(key.to_string(), kv.get("value").map(any_value).unwrap_or(Value::Null));
        }
    }
    out
}

fn str_attr<'a>(a: &'a Attrs, key: &str) -> Option<&'a str> {
    a.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

fn int_attr(a: &Attrs, key: &str) -> Option<i64> {
    match a.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn nanos(v: Option<&Value>) -> Option<i128> {
    match v? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64().map(i128::from).or_else(|| n.as_f64().map(|f| f as i128)),
        _ => None,
    }
}

/// Semantic-convention provider names, shortened to the names error
/// extraction uses.
fn provider_name(p: &str) -> String {
    match p {
        "gcp.gemini" | "gcp.vertex_ai" | "gcp.gen_ai" => "gemini".into(),
        "azure.ai.openai" => "azure_openai".into(),
        other => other.to_string(),
    }
}

type SpanError = (RejectReason, Option<String>, String);

fn read_span(ordinal: u64, span: &Value, resource: &Attrs) -> Result<SpanNode, SpanError> {
    let Some(obj) = span.as_object() else {
        return Err((RejectReason::NotAnObject, None, "expected a span object".into()));
    };
    let trace_id = match obj.get("traceId") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err((RejectReason::MissingField, None, "span has no `traceId`".into()));
        }
        Some(_) => return Err((RejectReason::WrongType, None, "field `traceId` must be a string".into())),
    };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let tid = Some(trace_id.clone());
    let start = match obj.get("startTimeUnixNano") {
        None | Some(Value::Null) => {
            return Err((RejectReason::MissingField, tid, format!("span `{name}` has no `startTimeUnixNano`")));
        }
        v => nanos(v).ok_or_else(|| {
            (RejectReason::WrongType, tid.clone(), format!("span `{name}`: `startTimeUnixNano` must be an integer"))
        })?,
    };
    let end = match obj.get("endTimeUnixNano") {
        None | Some(Value::Null) => start,
        v => nanos(v).ok_or_else(|| {
            (RejectReason::WrongType, tid.clone(), format!("span `{name}`: `endTimeUnixNano` must be an integer"))
        })?,
    };
    if end < start {
        return Err((RejectReason::InvalidValue, tid, format!("span `{name}` ends before it starts")));
    }
    let a = attrs(obj.get("attributes"));
    let mut node = SpanNode::new(ordinal, trace_id, name.clone());
    node.span_id = obj.get("spanId").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    node.parent_id = obj.get("parentSpanId").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    node.start_ns = start;
    node.end_ns = end;

    let op = str_attr(&a, "gen_ai.operation.name");
    node.role = match op {
        Some("chat" | "text_completion" | "generate_content" | "embeddings") => Role::Model,
        Some("execute_tool" | "retrieval") => Role::Tool,
        Some("invoke_agent" | "create_agent" | "invoke_workflow") => Role::Agent,
        Some(_) => Role::Other,
        None if str_attr(&a, "mcp.method.name") == Some("tools/call") => Role::Tool,
        None if str_attr(&a, "gen_ai.request.model").is_some() => Role::Model,
        None => Role::Other,
    };
    node.model =
        str_attr(&a, "gen_ai.request.model").or_else(|| str_attr(&a, "gen_ai.response.model")).map(str::to_string);
    node.tool_name = str_attr(&a, "gen_ai.tool.name")
        .map(str::to_string)
        .or_else(|| name.strip_prefix("execute_tool ").map(str::to_string));
    node.tokens_in = int_attr(&a, "gen_ai.usage.input_tokens").and_then(|t| u64::try_from(t).ok());
    node.tokens_out = int_attr(&a, "gen_ai.usage.output_tokens").and_then(|t| u64::try_from(t).ok());
    if let Some(Value::Array(reasons)) = a.get("gen_ai.response.finish_reasons") {
        let texts: Vec<&str> = reasons.iter().filter_map(Value::as_str).collect();
        let pick = texts.iter().find(|r| !matches!(**r, "stop" | "end_turn" | "tool_calls" | "STOP")).or(texts.first());
        node.finish_reason = pick.map(|r| r.to_string());
    } else if let Some(r) = str_attr(&a, "gen_ai.response.finish_reasons") {
        node.finish_reason = Some(r.to_string());
    }
    // rcv extension attributes.
    node.risk = str_attr(&a, "rcv.risk").and_then(|r| serde_json::from_value::<Risk>(Value::from(r)).ok());
    node.intent = str_attr(&a, "rcv.intent")
        .or_else(|| if node.role == Role::Agent { str_attr(&a, "gen_ai.agent.name") } else { None })
        .map(str::to_string);
    node.strategy = str_attr(&a, "rcv.strategy").map(str::to_string);
    node.attempt = int_attr(&a, "rcv.attempt").and_then(|n| u32::try_from(n).ok()).filter(|&n| n >= 1);
    node.side_effects = a.get("rcv.tool.side_effects").and_then(Value::as_bool).unwrap_or(false);
    node.cost_usd = a.get("rcv.cost_usd").and_then(Value::as_f64).filter(|c| c.is_finite() && *c >= 0.0);
    if let Some(service) = str_attr(resource, "service.name") {
        node.metadata.insert("service_name".into(), service.into());
    }
    if let Some(agent) = str_attr(&a, "gen_ai.agent.name") {
        node.metadata.insert("agent".into(), agent.into());
    }
    if let Some(conv) = str_attr(&a, "gen_ai.conversation.id") {
        node.metadata.insert("conversation_id".into(), conv.into());
    }

    // Failure: error status, or an `error.type`.
    let status = obj.get("status");
    let code = status.and_then(|s| s.get("code"));
    let status_error = match code {
        Some(Value::Number(n)) => n.as_i64() == Some(2),
        Some(Value::String(s)) => matches!(s.as_str(), "STATUS_CODE_ERROR" | "ERROR" | "2"),
        _ => false,
    };
    let status_message = status.and_then(|s| s.get("message")).and_then(Value::as_str).filter(|m| !m.is_empty());
    let error_type = str_attr(&a, "error.type").filter(|t| *t != "_OTHER");
    // The last recorded exception.
    let mut exception: Option<(Option<String>, Option<String>, Option<i128>)> = None;
    for ev in obj.get("events").and_then(Value::as_array).into_iter().flatten() {
        if ev.get("name").and_then(Value::as_str) == Some("exception") {
            let ea = attrs(ev.get("attributes"));
            exception = Some((
                str_attr(&ea, "exception.type").map(str::to_string),
                str_attr(&ea, "exception.message").map(str::to_string),
                nanos(ev.get("timeUnixNano")),
            ));
        }
    }
    node.failing = status_error || error_type.is_some();
    if node.failing {
        let (ex_type, ex_message, ex_time) = exception.unwrap_or((None, None, None));
        let raw = ex_message
            .clone()
            .or_else(|| status_message.map(str::to_string))
            .or_else(|| error_type.map(str::to_string));
        let mut err = ErrorInfo {
            http_status: int_attr(&a, "http.response.status_code").or_else(|| int_attr(&a, "http.status_code")),
            provider: str_attr(&a, "gen_ai.provider.name").or_else(|| str_attr(&a, "gen_ai.system")).map(provider_name),
            raw: raw.map(Value::String),
            ..ErrorInfo::default()
        };
        // Extraction first (the provider's own type beats the exception class).
        super::provider::normalize(&mut err, &mut None);
        if err.kind.is_none() {
            err.kind = ex_type.or_else(|| error_type.map(str::to_string));
        }
        if err.message.is_none() {
            err.message = status_message.map(str::to_string);
        }
        node.error_ns = ex_time;
        node.response_started = a.get("gen_ai.response.time_to_first_chunk").map(|_| true);
        node.error = Some(err);
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_values() {
        assert_eq!(any_value(&json!({"stringValue": "x"})), json!("x"));
        assert_eq!(any_value(&json!({"intValue": "123"})), json!(123));
        assert_eq!(any_value(&json!({"intValue": 7})), json!(7));
        assert_eq!(any_value(&json!({"doubleValue": 0.5})), json!(0.5));
        assert_eq!(any_value(&json!({"boolValue": true})), json!(true));
        assert_eq!(
            any_value(&json!({"arrayValue": {"values": [{"stringValue": "stop"}, {"intValue": "2"}]}})),
            json!(["stop", 2])
        );
        assert_eq!(
            any_value(&json!({"kvlistValue": {"values": [{"key": "a", "value": {"boolValue": false}}]}})),
            json!({"a": false})
        );
    }

    #[test]
    fn status_string_enum_and_exception_event() {
        let doc = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "t1", "spanId": "s1", "name": "chat gpt-4o",
            "startTimeUnixNano": "1000000000", "endTimeUnixNano": "1500000000",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}}
            ],
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            "events": [{"name": "exception", "timeUnixNano": "1400000000", "attributes": [
                {"key": "exception.type", "value": {"stringValue": "openai.RateLimitError"}},
                {"key": "exception.message", "value": {"stringValue": "Error code: 429 - {'error': {'type': 'requests', 'code': 'rate_limit_exceeded', 'message': 'slow down'}}"}}
            ]}]
        }]}]}]});
        let c = convert("x.json", doc.to_string().as_bytes());
        assert!(c.rejections.is_empty(), "{:?}", c.rejections);
        let fed = c.into_fed();
        let events: Vec<_> =
            fed.iter().filter_map(|f| if let spans::Fed::Event(_, e) = f { Some(e) } else { None }).collect();
        assert_eq!(events.len(), 3, "request, call, end");
        let call = events[1];
        let err = call.error.as_ref().unwrap();
        assert_eq!(err.http_status, Some(429));
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(err.kind.as_deref(), Some("requests"));
        assert_eq!(err.provider.as_deref(), Some("openai"));
        assert_eq!(call.latency_ms, Some(500.0));
    }
}
