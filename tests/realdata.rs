//! Real provider error payloads and agent traces (from `../shared/realdata`
//! when present): extraction, classification by `policies/default.rcv`, and
//! the TRAIL adapter. Skips with a note when the data is absent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rcv::runtime::event::Event;
use rcv::runtime::ingress::native::{self, Parsed};
use rcv::runtime::ingress::{self};

/// `$RCV_REALDATA`, else `../shared/realdata` from the repository root (or
/// from its parent, for a checkout nested one level deeper).
fn realdata() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("RCV_REALDATA").map(PathBuf::from),
        Some(root.join("../shared/realdata")),
        Some(root.join("../../shared/realdata")),
    ];
    let found = candidates.into_iter().flatten().find(|d| d.join("error_payloads").is_dir());
    if found.is_none() {
        eprintln!("note: ../shared/realdata is absent; skipping real-data tests");
    }
    found
}

struct Payload {
    id: String,
    kind: String,
    provider: String,
    raw: serde_json::Value,
}

fn payloads(dir: &std::path::Path) -> Vec<Payload> {
    let text = std::fs::read_to_string(dir.join("error_payloads/provider_and_tool_errors.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Payload {
                id: v["id"].as_str().unwrap().to_string(),
                kind: v["kind"].as_str().unwrap_or("").to_string(),
                provider: v["provider"].as_str().unwrap_or("").to_string(),
                raw: v["raw"].clone(),
            }
        })
        .collect()
}

fn default_policy() -> rcv::compile::CompiledPolicy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/default.rcv");
    let text = std::fs::read_to_string(&path).unwrap();
    let build = rcv::compile::build(&rcv::diag::Source::new("policies/default.rcv", text.clone()));
    for d in &build.diagnostics {
        let at = d.labels.first().map(|l| &text[l.span.start..l.span.end.min(text.len())]).unwrap_or("");
        eprintln!("{} {:?}: {} [{}] {:?} {:?}", d.code.as_str(), d.level, d.message, at, d.help, d.notes);
    }
    assert!(build.diagnostics.is_empty(), "default.rcv must build without diagnostics");
    build.policy.expect("default.rcv compiles")
}

#[test]
fn default_policy_builds_clean() {
    let policy = default_policy();
    assert_eq!(policy.name, "default");
}

/// The expected class of every payload. The file's `kind` labels are hints;
/// where this table departs from them the comment says why.
const EXPECTED: &[(&str, &str)] = &[
    ("E001", "context_overflow"),
    ("E002", "context_overflow"),
    ("E003", "context_overflow"),
    ("E004", "rate_limited"),
    ("E005", "rate_limited"),
    ("E006", "rate_limited"),
    ("E007", "quota_exhausted"),
    ("E008", "quota_exhausted"),
    ("E009", "server_error"),
    // Tool-call protocol violations: the message history is broken; a reset rebuilds it.
    ("E010", "invalid_history"),
    ("E011", "invalid_history"),
    // Labelled invalid_request, but "roles must alternate" is the same history breakage.
    ("E012", "invalid_history"),
    ("E013", "context_overflow"),
    ("E014", "context_overflow"),
    ("E015", "context_overflow"),
    ("E016", "invalid_request"),
    ("E017", "auth_failed"),
    ("E018", "auth_failed"),
    ("E019", "server_error"),
    ("E020", "server_error"),
    ("E021", "server_error"),
    // Anthropic via an OpenAI-compatible proxy: 429 with a misleading `invalid_request_error` type.
    ("E022", "rate_limited"),
    // Per-minute quota (QuotaFailure quota id): transient.
    ("E023", "rate_limited"),
    // Same words, daily quota with no per-minute id: retrying is wasted.
    ("E024", "quota_exhausted"),
    ("E025", "rate_limited"),
    ("E026", "server_error"),
    ("E027", "server_error"),
    ("E028", "server_error"),
    // Auth failure delivered as 400 INVALID_ARGUMENT; only the reason says API_KEY_INVALID.
    ("E029", "auth_failed"),
    ("E030", "content_filtered"),
    ("E031", "tool_not_found"),
    // The tool's own upstream was rate limited; to the agent it is a tool failure.
    ("E032", "tool_error"),
    ("E033", "resource_not_found"),
    ("E034", "tool_not_found"),
    ("E035", "content_filtered"),
    ("E036", "content_filtered"),
    ("E037", "connection_error"),
    ("E038", "connection_error"),
    // Labelled network_retry_exhausted: a connection error whose cause was a read timeout.
    ("E039", "connection_error"),
    ("E040", "timeout"),
    ("E041", "timeout"),
    ("E042", "auth_failed"),
    // Labelled permission_error: 403 is handled with 401.
    ("E043", "auth_failed"),
    // A hallucinated function in generated code is a tool that does not exist.
    ("E044", "tool_not_found"),
    ("E045", "environment_error"),
    ("E046", "connection_error"),
    ("E047", "loop_detected"),
    ("E048", "tool_args_invalid"),
    // Labelled unsupported_input_format: the tool cannot handle this input.
    ("E049", "tool_error"),
    // Labelled content_policy_prompt: the prompt was flagged by the usage policy.
    ("E050", "content_filtered"),
    ("E051", "model_output_invalid"),
    ("E052", "resource_not_found"),
    ("E053", "resource_not_found"),
    // Labelled sandbox_policy_violation: the code needs a module the sandbox forbids.
    ("E054", "environment_error"),
    ("E055", "rate_limited"),
    ("E056", "server_error"),
];

/// Tool-side payloads are classified as `tool_call` events, the rest as `model_call`.
fn is_tool(provider: &str) -> bool {
    provider == "mcp" || provider.contains("tool")
}

fn event_for(p: &Payload) -> (Event, Event) {
    let kind = if is_tool(&p.provider) { "tool_call" } else { "model_call" };
    let mut call = serde_json::json!({
        "request_id": p.id, "seq": 1, "kind": kind, "outcome": "error",
        "error": {"raw": p.raw},
    });
    if is_tool(&p.provider) {
        call["tool"] = serde_json::json!({"name": "some_tool"});
    } else {
        call["model"] = serde_json::json!("gpt-4o");
    }
    let line = serde_json::to_string(&call).unwrap();
    let Parsed::Event(event) = native::parse_line(line.as_bytes()) else {
        panic!("{}: the native reader rejected the event", p.id)
    };
    let request: Event = serde_json::from_value(serde_json::json!({
        "request_id": p.id, "seq": 0, "kind": "request", "risk": "low"
    }))
    .unwrap();
    (*event, request)
}

fn classify(policy: &rcv::compile::CompiledPolicy, event: &Event, request: &Event) -> String {
    let mut facts = rcv::schema::Facts::default();
    rcv::runtime::facts::fill_event(&mut facts, policy, event, request);
    let hit = policy.classify(&facts).expect("default.rcv ends with otherwise");
    policy.source.classify[hit.rule].class.clone()
}

#[test]
fn every_payload_is_extracted_and_classified() {
    let Some(dir) = realdata() else { return };
    let policy = default_policy();
    let all = payloads(&dir);
    assert_eq!(all.len(), 56, "the payload file has 56 entries");
    assert_eq!(EXPECTED.len(), all.len());
    let mut wrong = Vec::new();
    for p in &all {
        let (event, request) = event_for(p);
        let err = event.error.as_ref().unwrap();
        let finish = event.output.as_ref().and_then(|o| o.finish_reason.as_ref());
        assert!(
            err.kind.is_some()
                || err.code.is_some()
                || err.status.is_some()
                || err.message.is_some()
                || finish.is_some(),
            "{}: nothing extracted",
            p.id
        );
        let expected = EXPECTED.iter().find(|(id, _)| *id == p.id).map(|(_, c)| *c).unwrap();
        let got = classify(&policy, &event, &request);
        if got != expected {
            wrong.push(format!("{} ({}): expected {expected}, got {got}; error {:?}", p.id, p.kind, err));
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

struct Ingested {
    cases: Vec<ingress::Case>,
    rejections: Vec<ingress::Rejection>,
    stats: ingress::Stats,
    format: ingress::Format,
}

fn ingest(path: &std::path::Path) -> Ingested {
    let mut stream = ingress::open(path.to_str().unwrap(), ingress::Format::Auto, ingress::Options::default()).unwrap();
    let mut cases = Vec::new();
    let mut rejections = Vec::new();
    for item in &mut stream {
        match item.unwrap() {
            ingress::Item::Case(c) => cases.push(*c),
            ingress::Item::Rejected(r) => rejections.push(r),
            ingress::Item::Event(_) => {}
        }
    }
    Ingested { cases, rejections, stats: stream.stats().clone(), format: stream.format() }
}

fn failures(case: &ingress::Case) -> Vec<&Event> {
    case.calls.iter().map(|(_, e)| &**e).filter(|e| e.outcome == Some(rcv::runtime::event::Outcome::Error)).collect()
}

#[test]
fn trail_gaia_trace() {
    let Some(dir) = realdata() else { return };
    let policy = default_policy();
    let got = ingest(&dir.join("trail/gaia_d67a8ae8_trace.json"));
    assert_eq!(got.format, ingress::Format::Trail);
    assert!(got.rejections.is_empty(), "{:?}", got.rejections);
    assert_eq!(got.cases.len(), 1);
    let case = &got.cases[0];
    assert_eq!(case.request_id, "d67a8ae853c0b8ed0e55f7fafe4e2f64");
    // 5 model calls, the final-answer tool, and the failed step.
    let models = case.calls.iter().filter(|(_, e)| e.kind == rcv::runtime::event::EventKind::ModelCall).count();
    assert_eq!(models, 5);
    assert_eq!(case.calls.len(), 7);
    let failed = failures(case);
    assert_eq!(failed.len(), 1, "one failing leaf: the step whose model output did not parse");
    let step = failed[0];
    assert_eq!(step.tool.as_ref().and_then(|t| t.name.as_deref()), Some("Step 1"));
    assert_eq!(step.error.as_ref().and_then(|e| e.kind.as_deref()), Some("smolagents.utils.AgentParsingError"));
    assert_eq!(classify(&policy, step, &case.request), "model_output_invalid");
    assert_eq!(got.stats.explained_spans, 0);
    // Calls are in time order; the failed step comes after its own model call.
    let times: Vec<&str> = case
        .calls
        .iter()
        .filter_map(|(_, e)| match &e.ts {
            Some(rcv::runtime::event::Timestamp::Text(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn trail_swe_rate_limit_trace() {
    let Some(dir) = realdata() else { return };
    let policy = default_policy();
    let got = ingest(&dir.join("trail/swe_da17836a_ratelimit_trimmed.json"));
    assert_eq!(got.format, ingress::Format::Trail);
    assert!(got.rejections.is_empty(), "{:?}", got.rejections);
    assert_eq!(got.cases.len(), 1);
    let case = &got.cases[0];
    let failed = failures(case);
    assert_eq!(failed.len(), 2, "two failing leaves: the code-execution step and the rate-limited model call");
    // Three failing ancestors (the root, the agent run, step 7) are explained by the leaves.
    assert_eq!(got.stats.explained_spans, 3);
    let llm = failed.iter().find(|e| e.kind == rcv::runtime::event::EventKind::ModelCall).unwrap();
    let err = llm.error.as_ref().unwrap();
    assert_eq!(err.kind.as_deref(), Some("rate_limit_error"));
    assert_eq!(err.provider.as_deref(), Some("anthropic"));
    // The failed span has no model name: it inherits the trace's model.
    assert_eq!(llm.model.as_deref(), Some("anthropic/claude-3-7-sonnet-latest"));
    assert_eq!(classify(&policy, llm, &case.request), "rate_limited");
    let step = failed.iter().find(|e| e.kind == rcv::runtime::event::EventKind::ToolCall).unwrap();
    assert_eq!(step.tool.as_ref().and_then(|t| t.name.as_deref()), Some("Step 6"));
    assert_eq!(classify(&policy, step, &case.request), "tool_error");
    // The rate-limited call is the last call of the case.
    assert_eq!(case.calls.last().map(|(_, e)| e.kind), Some(rcv::runtime::event::EventKind::ModelCall));
    assert!(failed.iter().all(|e| e.outcome == Some(rcv::runtime::event::Outcome::Error)));
}
