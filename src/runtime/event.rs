//! The native trace event (one NDJSON line). `docs/trace-format.md` and
//! `docs/trace-event.schema.json` document it; every ingress adapter
//! produces these.

use serde::{Deserialize, Serialize};

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Opens a case: intent, risk, budget, metadata.
    Request,
    ModelCall,
    ToolCall,
    /// Closes a case early, so its memory can be released before the file ends.
    End,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Request => "request",
            EventKind::ModelCall => "model_call",
            EventKind::ToolCall => "tool_call",
            EventKind::End => "end",
        }
    }

    pub fn is_call(self) -> bool {
        matches!(self, EventKind::ModelCall | EventKind::ToolCall)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Ok,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

/// Event time: epoch milliseconds or an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Timestamp {
    Millis(f64),
    Text(String),
}

/// Reads a number or a string directly, instead of the derived untagged
/// form, which buffers the value and builds an error for the failed first
/// variant on every string timestamp. Accepts and rejects the same inputs
/// with the same message.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, Visitor};
        const MISMATCH: &str = "data did not match any variant of untagged enum Timestamp";
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 string")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Ok(Timestamp::Millis(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp::Millis(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp::Millis(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Ok(Timestamp::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Timestamp, E> {
                Ok(Timestamp::Text(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Timestamp, E> {
                Err(E::custom(MISMATCH))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Timestamp, E> {
                Err(E::custom(MISMATCH))
            }
            fn visit_none<E: de::Error>(self) -> Result<Timestamp, E> {
                Err(E::custom(MISMATCH))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Timestamp, E> {
                Err(E::custom(MISMATCH))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
                Err(de::Error::custom(MISMATCH))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
                Err(de::Error::custom(MISMATCH))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: Option<String>,
    #[serde(default)]
    pub side_effects: bool,
}

/// A provider or tool error, normalised. `raw` keeps what was received;
/// ingress fills the other fields from it when they are missing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Provider status word (Gemini `RESOURCE_EXHAUSTED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The provider's error as received: JSON, or text that may embed JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<bool>,
}

/// Per-request caps that tighten the policy's `budget` for one case.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// The scripted outcome of an action the recording did not take
/// (`alternatives` on a failed call), for what-if replays.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// One native trace event. Which fields are required depends on `kind`;
/// `ingress::native` validates that and rejects with a reason code.
/// Closed objects deny unknown keys, so one typed parse both reads a line
/// and proves it has no unknown field; the slow path then names the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub request_id: String,
    pub seq: u64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
    /// `ts` in epoch milliseconds, when the reader already worked it out
    /// (the native reader does, on its parser threads). Not part of the
    /// format; a cache that equals `ts` read as milliseconds when set.
    #[serde(skip)]
    pub ts_ms: Option<f64>,

    // request
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RequestBudget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Box<serde_json::Map<String, serde_json::Value>>>,

    // calls
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Boxed, as are `alternatives` and `metadata`: events are moved from
    /// reader to case to replay, and these large parts are often absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<ErrorInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_started: Option<bool>,
    /// On a call: the agent reset this part of its state before making it
    /// (how a recording shows that a reset happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<crate::syntax::ast::ResetScope>,
    /// Keys: `retry`, `retry:STRATEGY`, `fallback:MODEL`, `reset:SCOPE`
    /// (see `docs/replay.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Box<indexmap::IndexMap<String, Alternative>>>,
}
