//! Ingress end to end: the native reader on `fixtures/bad_lines.ndjson`
//! (one line per rejection reason), huge lines, standard-input-like
//! readers, format sniffing, the OTLP and TRAIL fixtures, and the event
//! JSON Schema against every accepted fixture line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use rcv::runtime::event::{Event, EventKind, Outcome};
use rcv::runtime::ingress::{self, Format, Item, Options, RejectReason, Stream};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    root().join("fixtures").join(name).to_str().unwrap().to_string()
}

fn drain(stream: &mut Stream) -> Vec<Item> {
    ingress::read_all(stream).unwrap()
}

fn from_bytes(bytes: Vec<u8>, format: Format, options: Options) -> Stream {
    ingress::open_reader("-", Box::new(Cursor::new(bytes)), format, options).unwrap()
}

/// One readable line per item, for snapshots.
fn summary(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|item| match item {
            Item::Event(a) => format!(
                "event    line {:>2}  {} seq {} {}",
                a.line,
                a.event.request_id,
                a.event.seq,
                a.event.kind.as_str()
            ),
            Item::Case(c) => format!(
                "case     {}  request line {}, calls at lines {:?}, first line {}, end line {:?}",
                c.request_id,
                c.request_line,
                c.calls.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
                c.first_line,
                c.end_line
            ),
            Item::Rejected(r) => format!(
                "rejected line {:>2}  {} [{}] {}",
                r.line,
                r.request_id.as_deref().unwrap_or("-"),
                r.reason,
                r.detail
            ),
        })
        .collect()
}

#[test]
fn bad_lines_snapshot() {
    let options = Options { max_line_bytes: 400, ..Options::default() };
    let mut stream = ingress::open(&fixture("bad_lines.ndjson"), Format::Auto, options).unwrap();
    assert_eq!(stream.format(), Format::Native);
    let items = drain(&mut stream);
    let stats = stream.stats().clone();
    insta::assert_yaml_snapshot!("bad_lines_items", summary(&items));
    insta::assert_json_snapshot!("bad_lines_stats", stats);

    // Every reason the reader can decide on its own appears at least once.
    let reasons: Vec<RejectReason> =
        items.iter().filter_map(|i| if let Item::Rejected(r) = i { Some(r.reason) } else { None }).collect();
    for reason in RejectReason::ALL {
        assert!(reasons.contains(reason), "no line rejected `{reason}`");
    }
    // Every line is accounted for exactly once.
    assert_eq!(stats.lines, 24);
    assert_eq!(stats.lines, stats.accepted + stats.rejected_total() + stats.skipped_blank);
    // Every rejection names the file.
    assert!(items.iter().all(|i| !matches!(i, Item::Rejected(r) if !r.file.ends_with("bad_lines.ndjson"))));
}

#[test]
fn rejections_serialize_with_stable_names() {
    let r = ingress::Rejection {
        file: "t.ndjson".into(),
        line: 3,
        request_id: None,
        reason: RejectReason::OutOfOrderSeq,
        detail: "d".into(),
    };
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"file": "t.ndjson", "line": 3, "reason": "out_of_order_seq", "detail": "d"})
    );
    let names: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
    for (reason, name) in RejectReason::ALL.iter().zip(&names) {
        assert_eq!(serde_json::to_value(reason).unwrap(), json!(name));
    }
}

#[test]
fn a_huge_line_is_skipped_without_losing_the_next() {
    let mut data = Vec::new();
    data.extend_from_slice(br#"{"request_id":"a","seq":0,"kind":"request","risk":"low","intent":""#);
    data.extend(std::iter::repeat_n(b'x', 3 << 20));
    data.extend_from_slice(b"\"}\n");
    data.extend_from_slice(br#"{"request_id":"b","seq":0,"kind":"request","risk":"low"}"#);
    let mut stream = from_bytes(data, Format::Native, Options::default());
    let items = drain(&mut stream);
    assert!(matches!(&items[0], Item::Rejected(r) if r.reason == RejectReason::LineTooLong && r.line == 1));
    assert!(matches!(&items[1], Item::Event(a) if a.line == 2));
    assert!(matches!(&items[2], Item::Case(c) if c.request_id == "b"));
    assert_eq!(stream.stats().lines, 2);
}

#[test]
fn events_can_be_turned_off() {
    let data = b"{\"request_id\":\"a\",\"seq\":0,\"kind\":\"request\",\"risk\":\"low\"}\n".to_vec();
    let mut stream = from_bytes(data, Format::Native, Options { events: false, ..Options::default() });
    let items = drain(&mut stream);
    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], Item::Case(_)));
    assert_eq!(stream.stats().accepted, 1);
}

#[test]
fn the_iterator_yields_results() {
    let data = b"{\"request_id\":\"a\",\"seq\":0,\"kind\":\"request\",\"risk\":\"low\"}\nnope\n".to_vec();
    let stream = from_bytes(data, Format::Native, Options::default());
    let items: Vec<Item> = stream.collect::<std::io::Result<_>>().unwrap();
    assert_eq!(items.len(), 3);
}

#[test]
fn sniffing() {
    assert_eq!(ingress::stream::sniff_bytes(br#"{"request_id":"x"}"#), Format::Native);
    assert_eq!(ingress::stream::sniff_bytes(b"  \n{\"resourceSpans\": []}"), Format::Otlp);
    assert_eq!(ingress::stream::sniff_bytes(br#"{"trace_id":"t","spans":[]}"#), Format::Trail);
    assert_eq!(ingress::stream::sniff_bytes(br#"[{"trace_id":"t","child_spans":[]}]"#), Format::Trail);
    assert_eq!(ingress::stream::sniff_bytes(b"\xEF\xBB\xBF{\"kind\":\"end\"}"), Format::Native);
    assert_eq!(ingress::stream::sniff_bytes(b""), Format::Native);
    assert_eq!(ingress::stream::sniff_bytes(b"garbage"), Format::Native);
    assert_eq!("otlp".parse::<Format>(), Ok(Format::Otlp));
    assert!("xml".parse::<Format>().is_err());
}

fn cases(items: &[Item]) -> Vec<&ingress::Case> {
    items.iter().filter_map(|i| if let Item::Case(c) = i { Some(&**c) } else { None }).collect()
}

/// A compact view of a case for snapshots.
fn case_view(c: &ingress::Case) -> Value {
    let calls: Vec<Value> = c
        .calls
        .iter()
        .map(|(line, e)| {
            json!({
                "span": line,
                "seq": e.seq,
                "kind": e.kind.as_str(),
                "model": e.model,
                "tool": e.tool.as_ref().and_then(|t| t.name.clone()),
                "outcome": e.outcome.map(Outcome::as_str),
                "latency_ms": e.latency_ms,
                "error": e.error.as_ref().map(|err| json!({
                    "type": err.kind, "code": err.code, "http_status": err.http_status,
                    "provider": err.provider, "message": err.message,
                })),
                "finish_reason": e.output.as_ref().and_then(|o| o.finish_reason.clone()),
                "ts": e.ts,
            })
        })
        .collect();
    json!({
        "request_id": c.request_id,
        "risk": c.request.risk.map(|r| r.as_str()),
        "intent": c.request.intent,
        "metadata": c.request.metadata,
        "calls": calls,
    })
}

#[test]
fn otlp_fixture() {
    let mut stream = ingress::open(&fixture("otlp_sample.json"), Format::Auto, Options::default()).unwrap();
    assert_eq!(stream.format(), Format::Otlp);
    let items = drain(&mut stream);
    let cs = cases(&items);
    assert_eq!(cs.len(), 3);
    assert!(items.iter().all(|i| !matches!(i, Item::Rejected(_))));
    let views: Vec<Value> = cs.iter().map(|c| case_view(c)).collect();
    insta::assert_json_snapshot!("otlp_cases", views);
    insta::assert_json_snapshot!("otlp_stats", stream.stats());
    // Events come in trace time across traces.
    let times: Vec<jiff::Timestamp> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(a) => match &a.event.ts {
                Some(rcv::runtime::event::Timestamp::Text(t)) => Some(t.parse().unwrap()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(times.len(), 12);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn otlp_one_document_per_line_and_bad_spans() {
    let span = |trace: &str, start: Value| {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": trace, "spanId": "1", "name": "chat m", "startTimeUnixNano": start, "endTimeUnixNano": "2000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "m"}}]
        }]}]}]})
    };
    let text = format!(
        "{}\n{}\n{}\n{{\"resourceSpans\": [",
        span("t1", json!("1000")),
        span("", json!("1000")),
        span("t3", json!("soon"))
    );
    let mut stream = from_bytes(text.into_bytes(), Format::Auto, Options::default());
    assert_eq!(stream.format(), Format::Otlp);
    let items = drain(&mut stream);
    let rejected: Vec<(u64, RejectReason)> =
        items.iter().filter_map(|i| if let Item::Rejected(r) = i { Some((r.line, r.reason)) } else { None }).collect();
    assert_eq!(
        rejected,
        [(2, RejectReason::MissingField), (3, RejectReason::WrongType), (4, RejectReason::MalformedJson)]
    );
    let cs = cases(&items);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].request.risk, Some(rcv::runtime::event::Risk::Low), "synthesized request defaults to low risk");
}

#[test]
fn trail_fixture() {
    let mut stream = ingress::open(&fixture("trail_sample.json"), Format::Auto, Options::default()).unwrap();
    assert_eq!(stream.format(), Format::Trail);
    let items = drain(&mut stream);
    assert!(items.iter().all(|i| !matches!(i, Item::Rejected(_))));
    let cs = cases(&items);
    assert_eq!(cs.len(), 1);
    let c = cs[0];
    let failed: Vec<&Event> = c.calls.iter().map(|(_, e)| &**e).filter(|e| e.outcome == Some(Outcome::Error)).collect();
    assert_eq!(failed.len(), 3, "three failing leaves");
    assert_eq!(stream.stats().explained_spans, 2, "the agent run and step 3 are explained by their leaves");
    let llm = failed.iter().find(|e| e.kind == EventKind::ModelCall).unwrap();
    assert_eq!(llm.model.as_deref(), Some("anthropic/claude-3-5-sonnet"), "inherited from the earlier call");
    insta::assert_json_snapshot!("trail_case", case_view(c));
    insta::assert_json_snapshot!("trail_stats", stream.stats());
}

#[test]
fn span_documents_that_do_not_parse() {
    let mut stream = from_bytes(b"{\"trace_id\": \"t\", \"spans\": [".to_vec(), Format::Trail, Options::default());
    let items = drain(&mut stream);
    assert!(matches!(&items[..], [Item::Rejected(r)] if r.reason == RejectReason::MalformedJson));
    let mut stream = from_bytes(b"[1]".to_vec(), Format::Trail, Options::default());
    let items = drain(&mut stream);
    assert!(matches!(&items[..], [Item::Rejected(r)] if r.reason == RejectReason::NotAnObject));
    let span = json!({"trace_id": "t", "spans": [{"span_id": "a", "span_name": "x", "duration": "PT1S"},
        {"span_id": "b", "span_name": "y", "timestamp": "2025-01-01T00:00:00Z", "duration": "1 second"}]});
    let mut stream = from_bytes(span.to_string().into_bytes(), Format::Trail, Options::default());
    let reasons: Vec<RejectReason> = drain(&mut stream)
        .iter()
        .filter_map(|i| if let Item::Rejected(r) = i { Some(r.reason) } else { None })
        .collect();
    assert_eq!(reasons, [RejectReason::MissingField, RejectReason::InvalidValue]);
}

// ---------------------------------------------------------------------------
// The JSON Schema of a native event, checked lightly (no schema crate):
// required keys, known keys, enums, per-kind requirements.

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("docs/trace-event.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check_against_schema(schema: &Value, line: &Value) -> Result<(), String> {
    let obj = line.as_object().ok_or("not an object")?;
    for key in schema["required"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        if !obj.contains_key(key) {
            return Err(format!("missing `{key}`"));
        }
    }
    let props = schema["properties"].as_object().unwrap();
    for (key, value) in obj {
        let prop = props.get(key).ok_or_else(|| format!("`{key}` is not in the schema"))?;
        if let Some(options) = prop.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            return Err(format!("`{key}` = {value} is not one of {options:?}"));
        }
    }
    for rule in schema["allOf"].as_array().unwrap() {
        let kind = &rule["if"]["properties"]["kind"]["const"];
        if obj.get("kind") == Some(kind) {
            for key in rule["then"]["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap();
                if !obj.contains_key(key) {
                    return Err(format!("`{key}` is required on `{kind}` events"));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_schema_lists_every_event_field() {
    let schema = schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let mut props: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut fields = ingress::native::event_fields();
    props.sort_unstable();
    fields.sort_unstable();
    assert_eq!(props, fields);
    let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, ingress::native::REQUIRED_FIELDS);
    assert_eq!(schema["additionalProperties"], json!(false));
}

#[test]
fn every_accepted_fixture_line_matches_the_schema() {
    let schema = schema();
    let mut checked = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if let ingress::native::Parsed::Event(_) = ingress::native::parse_line(line) {
                let value: Value = serde_json::from_slice(line).unwrap();
                if let Err(e) = check_against_schema(&schema, &value) {
                    panic!("{}:{}: {e}", path.display(), i + 1);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "only {checked} lines checked");
    // And the schema rejects what the reader rejects for a missing per-kind field.
    let bad = json!({"request_id": "r", "seq": 0, "kind": "request"});
    assert!(check_against_schema(&schema, &bad).is_err());
}

#[test]
fn reads_from_a_path_that_does_not_exist() {
    let err = ingress::open(Path::new("/nonexistent/trace.ndjson").to_str().unwrap(), Format::Auto, Options::default());
    assert!(err.is_err());
}
