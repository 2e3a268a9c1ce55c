//! The classify and recover rules of policies/tool_chain.rcv written by
//! hand in Rust, over the parsed events and the request state: the
//! baseline rcv's table is held to. Both answers are rule indices, like
//! the table's.

use rcv::runtime::event::{Event, Risk};
use rcv::runtime::state::State;

/// Case-insensitive (ASCII) substring test, without allocating.
fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The classify rule (0..=8) of a failed call.
pub fn classify(e: &Event) -> usize {
    let err = e.error.as_ref();
    let status = err.and_then(|x| x.http_status);
    let ty = err.and_then(|x| x.kind.as_deref());
    let code = err.and_then(|x| x.code.as_deref());
    let msg = err.and_then(|x| x.message.as_deref());
    let finish = e.output.as_ref().and_then(|o| o.finish_reason.as_deref());
    if code == Some("insufficient_quota") {
        0
    } else if status == Some(429) || matches!(ty, Some("rate_limit_exceeded" | "rate_limit_error")) {
        1
    } else if matches!(status, Some(500 | 502 | 503 | 529)) || ty == Some("overloaded_error") {
        2
    } else if code == Some("context_length_exceeded") || msg.is_some_and(|m| contains_ci(m, "prompt is too long")) {
        3
    } else if matches!(status, Some(401 | 403)) || ty == Some("authentication_error") {
        4
    } else if finish == Some("SAFETY") || code == Some("content_filter") {
        5
    } else if e.output.as_ref().and_then(|o| o.schema_valid) == Some(false) {
        6
    } else if msg.is_some_and(|m| ["timed out", "timeout", "time out", "timedout"].iter().any(|n| contains_ci(m, n))) {
        7
    } else {
        8
    }
}

/// The recover rule (0..=6) for a classify rule, the call, its request and
/// the state.
pub fn recover(class: usize, call: &Event, request: &Event, state: &State) -> usize {
    let side_effects = call.tool.as_ref().is_some_and(|t| t.side_effects);
    let primary = matches!(call.model.as_deref(), Some("gpt-4o" | "primary"));
    match class {
        _ if request.risk >= Some(Risk::High) && side_effects => 0,
        // rate_limited, server_error, timeout
        1 | 2 | 7 if state.attempt < 3 => 1,
        // schema_violation
        6 if state.attempt < 2 => 2,
        // context_overflow
        3 if state.resets < 1 => 3,
        // content_filtered, auth_failed, quota_exhausted
        5 | 4 | 0 => 4,
        _ if primary => 5,
        _ => 6,
    }
}
