//! TRAIL / OpenInference span trees -> native events.
//! `docs/trace-format.md` has the mapping table.
//!
//! Input: `{"trace_id": ..., "spans": [span...]}` where each span nests its
//! children in `child_spans`; also a bare span, or an array of either.
//! Span fields: `span_id`, `parent_span_id`, `span_name`, `timestamp`
//! (ISO 8601), `duration` (ISO 8601, `PT1M2.5S`), `status_code`
//! (`Ok`/`Unset`/`Error`), `status_message`, `span_attributes` (flat
//! OpenInference keys: `openinference.span.kind`, `llm.model_name`,
//! `tool.name`, `llm.token_count.*`), and `events` carrying
//! `exception.type` / `exception.message`.

use serde_json::{Map, Value};

use super::reject::RejectReason;
use super::spans::{self, Converted, Role, SpanNode};
use crate::runtime::event::{ErrorInfo, Risk};

/// Nesting deeper than this is rejected (it cannot be a real trace).
const MAX_TREE_DEPTH: usize = 256;

/// Converts a TRAIL trace document.
pub fn convert(file: &str, bytes: &[u8]) -> Converted {
    let mut out = Converted::default();
    let doc: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            out.spans += 1;
            let reason = if std::str::from_utf8(bytes).is_err() {
                RejectReason::InvalidUtf8
            } else {
                RejectReason::MalformedJson
            };
            let msg = e.to_string();
            let msg = msg.rfind(" at line ").map_or(msg.as_str(), |i| &msg[..i]).to_string();
            out.rejections.push(spans::span_rejection(
                file,
                e.line() as u64,
                None,
                reason,
                format!("{msg} at column {}", e.column()),
            ));
            return out;
        }
    };
    let mut nodes = Vec::new();
    let mut ordinal = 0u64;
    let mut reader = Reader { file, ordinal: &mut ordinal, nodes: &mut nodes, out: &mut out };
    reader.document(&doc);
    spans::build(file, nodes, &mut out);
    out
}

struct Reader<'a> {
    file: &'a str,
    ordinal: &'a mut u64,
    nodes: &'a mut Vec<SpanNode>,
    out: &'a mut Converted,
}

impl Reader<'_> {
    fn document(&mut self, doc: &Value) {
        match doc {
            Value::Array(items) => {
                for item in items {
                    self.document(item);
                }
            }
            Value::Object(map) if map.contains_key("spans") => {
                let trace = map.get("trace_id").and_then(Value::as_str).map(str::to_string);
                for span in map.get("spans").and_then(Value::as_array).into_iter().flatten() {
                    self.span(span, trace.as_deref(), None, 0);
                }
            }
            Value::Object(_) => self.span(doc, None, None, 0),
            _ => self.reject(None, RejectReason::NotAnObject, "expected a trace object with `spans`".into()),
        }
    }

    fn reject(&mut self, trace: Option<&str>, reason: RejectReason, detail: String) {
        *self.ordinal += 1;
        self.out.spans += 1;
        self.out.rejections.push(spans::span_rejection(self.file, *self.ordinal, trace, reason, detail));
    }

    fn span(&mut self, span: &Value, trace: Option<&str>, parent: Option<&str>, depth: usize) {
        let Some(obj) = span.as_object() else {
            return self.reject(trace, RejectReason::NotAnObject, "expected a span object".into());
        };
        if depth > MAX_TREE_DEPTH {
            return self.reject(trace, RejectReason::InvalidValue, format!("spans nest deeper than {MAX_TREE_DEPTH}"));
        }
        let trace_id = obj.get("trace_id").and_then(Value::as_str).filter(|t| !t.is_empty()).or(trace);
        let span_id = obj.get("span_id").and_then(Value::as_str).filter(|t| !t.is_empty());
        match (trace_id, read_span(*self.ordinal + 1, obj, trace_id, parent)) {
            (None, _) => self.reject(None, RejectReason::MissingField, "span has no `trace_id`".into()),
            (Some(t), Err((reason, detail))) => self.reject(Some(t), reason, detail),
            (Some(_), Ok(node)) => {
                *self.ordinal += 1;
                self.nodes.push(node);
            }
        }
        for child in obj.get("child_spans").and_then(Value::as_array).into_iter().flatten() {
            self.span(child, trace_id, span_id, depth + 1);
        }
    }
}

fn attr_str<'a>(a: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    a.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn attr_u64(a: &Map<String, Value>, key: &str) -> Option<u64> {
    match a.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An event's attribute map: `Attributes` (TRAIL) or `attributes`.
fn event_attrs(ev: &Value) -> Option<&Map<String, Value>> {
    ev.get("Attributes").or_else(|| ev.get("attributes")).and_then(Value::as_object)
}

fn read_span(
    ordinal: u64,
    obj: &Map<String, Value>,
    trace_id: Option<&str>,
    parent: Option<&str>,
) -> Result<SpanNode, (RejectReason, String)> {
    let name = obj.get("span_name").or_else(|| obj.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let start = match obj.get("timestamp").or_else(|| obj.get("start_time")) {
        Some(Value::String(t)) => spans::timestamp_ns(t).ok_or_else(|| {
            (RejectReason::InvalidValue, format!("span `{name}`: `timestamp` is not an ISO 8601 time: `{t}`"))
        })?,
        Some(Value::Null) | None => {
            return Err((RejectReason::MissingField, format!("span `{name}` has no `timestamp`")));
        }
        Some(_) => return Err((RejectReason::WrongType, format!("span `{name}`: `timestamp` must be a string"))),
    };
    let duration = match obj.get("duration") {
        Some(Value::String(d)) => spans::iso_duration_ns(d).filter(|ns| *ns >= 0).ok_or_else(|| {
            (RejectReason::InvalidValue, format!("span `{name}`: `duration` is not an ISO 8601 duration: `{d}`"))
        })?,
        Some(Value::Null) | None => 0,
        Some(_) => return Err((RejectReason::WrongType, format!("span `{name}`: `duration` must be a string"))),
    };
    let empty = Map::new();
    let a = obj.get("span_attributes").and_then(Value::as_object).unwrap_or(&empty);
    let mut node = SpanNode::new(ordinal, trace_id.unwrap_or("").to_string(), name.clone());
    node.span_id = obj.get("span_id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    node.parent_id =
        obj.get("parent_span_id").and_then(Value::as_str).filter(|s| !s.is_empty()).or(parent).map(str::to_string);
    node.start_ns = start;
    node.end_ns = start + duration;
    node.role = match attr_str(a, "openinference.span.kind").map(str::to_ascii_uppercase).as_deref() {
        Some("LLM" | "EMBEDDING") => Role::Model,
        Some("TOOL" | "RETRIEVER") => Role::Tool,
        Some("AGENT") => Role::Agent,
        _ => Role::Other,
    };
    node.model = attr_str(a, "llm.model_name").map(str::to_string);
    node.tool_name = attr_str(a, "tool.name").map(str::to_string);
    node.tokens_in = attr_u64(a, "llm.token_count.prompt");
    node.tokens_out = attr_u64(a, "llm.token_count.completion");
    node.risk = attr_str(a, "rcv.risk").and_then(|r| serde_json::from_value::<Risk>(Value::from(r)).ok());
    node.intent = attr_str(a, "rcv.intent").map(str::to_string);
    node.strategy = attr_str(a, "rcv.strategy").map(str::to_string);
    node.side_effects = matches!(a.get("rcv.tool.side_effects"), Some(Value::Bool(true)))
        || attr_str(a, "rcv.tool.side_effects") == Some("true");
    if let Some(service) = obj.get("service_name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        node.metadata.insert("service_name".into(), service.into());
    }

    // Failure: `Error` status, or an exception recorded on an unset status.
    let status = obj.get("status_code").and_then(Value::as_str).unwrap_or("Unset");
    let status_message = obj.get("status_message").and_then(Value::as_str).filter(|m| !m.trim().is_empty());
    let mut exception: Option<(Option<String>, Option<String>, Option<i128>)> = None;
    for ev in obj.get("events").and_then(Value::as_array).into_iter().flatten() {
        let ev_name = ev.get("Name").or_else(|| ev.get("name")).and_then(Value::as_str);
        let Some(ea) = event_attrs(ev) else { continue };
        if ev_name == Some("exception") || ea.contains_key("exception.message") || ea.contains_key("exception.type") {
            let time = ev
                .get("Timestamp")
                .or_else(|| ev.get("timestamp"))
                .and_then(Value::as_str)
                .and_then(spans::timestamp_ns);
            exception = Some((
                attr_str(ea, "exception.type").map(str::to_string),
                attr_str(ea, "exception.message").map(str::to_string),
                time,
            ));
        }
    }
    node.failing =
        status.eq_ignore_ascii_case("error") || (status.eq_ignore_ascii_case("unset") && exception.is_some());
    if node.failing {
        let (ex_type, ex_message, ex_time) = exception.unwrap_or((None, None, None));
        let raw = ex_message.or_else(|| status_message.map(str::to_string));
        let mut err = ErrorInfo {
            provider: attr_str(a, "llm.provider").or_else(|| attr_str(a, "llm.system")).map(str::to_string),
            raw: raw.map(Value::String),
            ..ErrorInfo::default()
        };
        super::provider::normalize(&mut err, &mut None);
        if err.kind.is_none() {
            err.kind = ex_type;
        }
        node.error_ns = ex_time;
        node.error = Some(err);
    }
    Ok(node)
}
