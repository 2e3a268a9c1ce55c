//! The event schema: every field path a condition may test, with its type
//! and where its value comes from. The checker types conditions against it,
//! the compiler turns each used path into a table column, and the runtime
//! reads the same paths out of trace events and decision state.
//! `docs/language.md` documents this table; a test keeps them in step.

use serde::Serialize;

/// The closed value sets a field can range over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnumKind {
    /// Declared failure classes.
    Class,
    /// Declared models (events name them by name or provider id).
    Model,
    /// Declared reasoning strategies.
    Strategy,
    /// `low < medium < high < critical`.
    Risk,
    /// `ok`, `error`.
    Outcome,
    /// `model_call`, `tool_call`.
    Kind,
}

impl EnumKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnumKind::Class => "class",
            EnumKind::Model => "model",
            EnumKind::Strategy => "strategy",
            EnumKind::Risk => "risk level",
            EnumKind::Outcome => "outcome",
            EnumKind::Kind => "event kind",
        }
    }

    /// The fixed members of the built-in enums (declared enums return `None`).
    pub fn builtin_members(self) -> Option<&'static [&'static str]> {
        match self {
            EnumKind::Risk => Some(&RISK_LEVELS),
            EnumKind::Outcome => Some(&["ok", "error"]),
            EnumKind::Kind => Some(&["model_call", "tool_call"]),
            _ => None,
        }
    }

    /// Whether `<`, `>=`... are meaningful (declaration order for risk).
    pub fn is_ordered(self) -> bool {
        self == EnumKind::Risk
    }
}

pub const RISK_LEVELS: [&str; 4] = ["low", "medium", "high", "critical"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "of")]
pub enum FieldType {
    Str,
    Int,
    Float,
    Bool,
    /// Milliseconds.
    Duration,
    /// US dollars.
    Money,
    Enum(EnumKind),
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Duration => "duration",
            FieldType::Money => "money",
            FieldType::Enum(k) => k.as_str(),
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Int | FieldType::Float | FieldType::Duration | FieldType::Money)
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read from the trace event (or its request): usable everywhere.
    Event,
    /// Computed by the engine (class, attempts, spend, fleet state):
    /// usable in `recover`, `accept` and `invariant`, not in `classify`.
    State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Field {
    pub path: &'static str,
    pub ty: FieldType,
    pub scope: Scope,
    pub doc: &'static str,
}

const fn f(path: &'static str, ty: FieldType, scope: Scope, doc: &'static str) -> Field {
    Field { path, ty, scope, doc }
}

use FieldType as T;
use Scope::{Event as E, State as S};

/// Every field, in documentation order.
pub const FIELDS: &[Field] = &[
    f("kind", T::Enum(EnumKind::Kind), E, "`model_call` or `tool_call`"),
    f("model", T::Enum(EnumKind::Model), E, "the model that served the call (declared name or provider id)"),
    f("strategy", T::Enum(EnumKind::Strategy), E, "the reasoning strategy of the call"),
    f("outcome", T::Enum(EnumKind::Outcome), E, "`ok` or `error`"),
    f("tool.name", T::Str, E, "the tool called"),
    f("tool.side_effects", T::Bool, E, "the tool changes the world (writes, payments, messages)"),
    f("response_started", T::Bool, E, "part of the response was already streamed or acted on"),
    f("error.type", T::Str, E, "provider error type (`rate_limit_error`, `invalid_request_error`...)"),
    f("error.code", T::Str, E, "provider error code (`context_length_exceeded`, `insufficient_quota`...)"),
    f("error.http_status", T::Int, E, "HTTP status of the failed call"),
    f("error.message", T::Str, E, "the error message"),
    f("error.provider", T::Str, E, "who raised it (`openai`, `anthropic`, `gemini`, `mcp`, a tool)"),
    f("error.param", T::Str, E, "the request parameter blamed (OpenAI `param`)"),
    f("error.status", T::Str, E, "provider status word (Gemini `RESOURCE_EXHAUSTED`, `UNAVAILABLE`)"),
    f("output.schema_valid", T::Bool, E, "the output (or tool arguments) passed its schema"),
    f("output.confidence", T::Float, E, "the output's confidence score, 0..1"),
    f(
        "output.finish_reason",
        T::Str,
        E,
        "why generation stopped (`stop`, `length`, `SAFETY`, `MALFORMED_FUNCTION_CALL`)",
    ),
    f("output.refusal", T::Bool, E, "the model refused"),
    f("latency", T::Duration, E, "latency of the call"),
    f("cost", T::Money, E, "cost of the call"),
    f("tokens_in", T::Int, E, "input tokens of the call"),
    f("tokens_out", T::Int, E, "output tokens of the call"),
    f("risk", T::Enum(EnumKind::Risk), E, "the request's risk level"),
    f("intent", T::Str, E, "the request's intent"),
    f("class", T::Enum(EnumKind::Class), S, "the failure class `classify` assigned"),
    f("attempt", T::Int, S, "attempt number of the failed call within the request (1 = first try)"),
    f("class_attempts", T::Int, S, "failed attempts of the request with this class, this one included"),
    f("resets", T::Int, S, "state resets so far in the request"),
    f("fallbacks", T::Int, S, "model fallbacks so far in the request"),
    f("spent.cost", T::Money, S, "cost spent by the request so far"),
    f("spent.latency", T::Duration, S, "latency spent by the request so far, backoff delays included"),
    f("fleet.breaker_open", T::Bool, S, "the circuit breaker of the call's model is open"),
    f("fleet.retry_budget_exhausted", T::Bool, S, "the fleet retry budget allows no retry now"),
];

/// Free-form string fields under `metadata.` (from the request event).
pub const METADATA_PREFIX: &str = "metadata.";

/// Looks up a field path. `metadata.<key>` is always a string field.
pub fn lookup(path: &str) -> Option<Field> {
    if let Some(key) = path.strip_prefix(METADATA_PREFIX)
        && !key.is_empty()
    {
        return Some(Field { path: "metadata.*", ty: FieldType::Str, scope: Scope::Event, doc: "request metadata" });
    }
    FIELDS.iter().find(|f| f.path == path).copied()
}

/// The closest known paths to `path`, best first (for "did you mean").
pub fn suggest(path: &str) -> Option<&'static str> {
    crate::names::closest(path, FIELDS.iter().map(|f| f.path))
}

/// Number of fields in [`FIELDS`].
pub const FIELD_COUNT: usize = FIELDS.len();

/// Index of a field path in [`FIELDS`] (metadata paths have none).
pub fn index_of(path: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.path == path)
}

/// One value of one field, as the runtime hands it to the decision table.
/// Enum fields carry their member name (`"high"`, the declared model name).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Fact<'a> {
    #[default]
    Absent,
    Str(&'a str),
    Num(f64),
    Bool(bool),
}

/// Every field's value for one decision: the "prepared input" of the table.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub fields: [Fact<'a>; FIELD_COUNT],
    /// The request's free metadata, for `metadata.<key>` paths.
    pub metadata: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl Default for Facts<'_> {
    fn default() -> Self {
        Facts { fields: [Fact::Absent; FIELD_COUNT], metadata: None }
    }
}

impl<'a> Facts<'a> {
    /// Sets a field by path; unknown paths are ignored (tests use this).
    pub fn set(&mut self, path: &str, value: Fact<'a>) {
        if let Some(slot) = index_of(path).and_then(|i| self.fields.get_mut(i)) {
            *slot = value;
        }
    }

    /// The value of a field by index.
    pub fn get(&self, index: usize) -> Fact<'a> {
        self.fields.get(index).copied().unwrap_or_default()
    }

    /// The value of a `metadata.<key>` path.
    pub fn metadata(&self, key: &str) -> Fact<'a> {
        match self.metadata.and_then(|m| m.get(key)) {
            Some(serde_json::Value::String(s)) => Fact::Str(s),
            Some(serde_json::Value::Bool(b)) => Fact::Bool(*b),
            Some(serde_json::Value::Number(n)) => n.as_f64().map_or(Fact::Absent, Fact::Num),
            _ => Fact::Absent,
        }
    }

    /// The value of any path (slower than [`Facts::get`]; for explanations).
    pub fn lookup(&self, path: &str) -> Fact<'a> {
        match path.strip_prefix(METADATA_PREFIX) {
            Some(key) => self.metadata(key),
            None => index_of(path).map_or(Fact::Absent, |i| self.get(i)),
        }
    }
}
