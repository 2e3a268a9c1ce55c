//! The checked policy: every name resolved, every condition typed against
//! the event schema, every literal converted to its unit. The checker
//! builds it only for a file without errors; the compiler lowers it to the
//! decision table and may trust it (no unknown names, no type errors).

use indexmap::IndexMap;
use serde::Serialize;

use crate::span::Span;
use crate::syntax::ast::{ActionKind, GateBound, Jitter, Persistence, Quantifier, ResetScope, Severity};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckedPolicy {
    pub name: String,
    pub version: String,
    pub consts: IndexMap<String, ConstInfo>,
    pub classes: IndexMap<String, ClassInfo>,
    pub reasons: IndexMap<String, ReasonInfo>,
    pub models: IndexMap<String, ModelInfo>,
    pub strategies: IndexMap<String, StrategyInfo>,
    pub prompts: IndexMap<String, PromptInfo>,
    pub budget: BudgetInfo,
    pub fleet: FleetInfo,
    pub classify: Vec<ClassifyIr>,
    pub recover: Vec<RecoverIr>,
    pub accept: Vec<AcceptIr>,
    pub invariants: Vec<InvariantIr>,
    pub gate: Vec<GateIr>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstInfo {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassInfo {
    /// `None` when the declaration says neither `transient` nor `permanent`.
    pub persistence: Option<Persistence>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonInfo {
    pub text: String,
    /// `info` when not written.
    pub severity: Severity,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub provider_id: String,
    pub tier: Option<u32>,
    pub cost_per_1k: Option<f64>,
    /// Context window in tokens.
    pub context: Option<u64>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyInfo {
    pub text: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptInfo {
    pub text: String,
    pub span: Span,
    /// `sha256:` and the text's digest, quoted by every reset that sends
    /// the prompt. Derived from `text`, so left out of the policy hash.
    #[serde(skip)]
    pub sha256: String,
}

impl PromptInfo {
    pub fn new(text: String, span: Span) -> PromptInfo {
        let sha256 = crate::digest::sha256_tagged(text.as_bytes());
        PromptInfo { text, span, sha256 }
    }
}

/// Engine-enforced caps; `None` means no cap of that kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BudgetInfo {
    pub attempts: Option<u32>,
    pub class_attempts: Option<u32>,
    /// US dollars.
    pub cost: Option<f64>,
    /// Milliseconds.
    pub latency_ms: Option<f64>,
    pub resets: Option<u32>,
    pub fallbacks: Option<u32>,
    /// What the engine decides when a cap is hit. The checker warns when a
    /// cap exists without it; the engine then escalates with the built-in
    /// reason `budget_exhausted`.
    pub exhausted: Option<DecisionIr>,
    pub span: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FleetInfo {
    pub retry_budget: Option<RetryBudgetIr>,
    pub breaker: Option<BreakerIr>,
}

/// Retries are allowed while retries in the window stay under
/// `max(min, ratio * calls in the window)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryBudgetIr {
    pub ratio: f64,
    pub min: u32,
    pub window_ms: f64,
    pub decision: DecisionIr,
    pub span: Span,
}

/// A model's breaker opens after `failures` failures within `window_ms` and
/// stays open for `cooldown_ms`; while open, retries on it take `decision`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerIr {
    pub failures: u32,
    pub window_ms: f64,
    pub cooldown_ms: f64,
    pub decision: DecisionIr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifyIr {
    /// `None` for `otherwise`.
    pub guard: Option<Cond>,
    pub class: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoverIr {
    /// `None` for `otherwise`.
    pub guard: Option<Cond>,
    pub decision: DecisionIr,
    pub span: Span,
}

/// `require COND else DECISION`: the decision applies where `require` is false.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AcceptIr {
    pub require: Cond,
    pub decision: DecisionIr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvariantIr {
    pub text: String,
    pub quantifier: Quantifier,
    pub actions: Vec<ActionKind>,
    pub guard: Cond,
    pub span: Span,
}

/// Release-gate metrics a `gate` block may bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    AutoRecoveredRate,
    EscalationRate,
    AbortRate,
    FallbackRate,
    P50Latency,
    P95Latency,
    CostPerRequest,
    MeanAttempts,
    WastedRetryRate,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::AutoRecoveredRate,
        Metric::EscalationRate,
        Metric::AbortRate,
        Metric::FallbackRate,
        Metric::P50Latency,
        Metric::P95Latency,
        Metric::CostPerRequest,
        Metric::MeanAttempts,
        Metric::WastedRetryRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::AutoRecoveredRate => "auto_recovered_rate",
            Metric::EscalationRate => "escalation_rate",
            Metric::AbortRate => "abort_rate",
            Metric::FallbackRate => "fallback_rate",
            Metric::P50Latency => "p50_latency",
            Metric::P95Latency => "p95_latency",
            Metric::CostPerRequest => "cost_per_request",
            Metric::MeanAttempts => "mean_attempts",
            Metric::WastedRetryRate => "wasted_retry_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The unit its threshold is written in: rates are plain numbers 0..1.
    pub fn unit(self) -> MetricUnit {
        match self {
            Metric::P50Latency | Metric::P95Latency => MetricUnit::Duration,
            Metric::CostPerRequest => MetricUnit::Money,
            Metric::MeanAttempts => MetricUnit::Number,
            _ => MetricUnit::Rate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricUnit {
    Rate,
    Duration,
    Money,
    Number,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateIr {
    pub bound: GateBound,
    pub metric: Metric,
    /// Rates as 0..1, durations in ms, money in USD.
    pub value: f64,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionIr {
    pub action: ActionIr,
    pub reason: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ActionIr {
    Retry(RetryIr),
    Fallback { model: String, strategy: Option<String> },
    Reset { scope: ResetScope, prompt: Option<String>, then: Box<ActionIr> },
    Escalate { queue: Option<String> },
    Abort,
}

impl ActionIr {
    pub fn kind(&self) -> ActionKind {
        match self {
            ActionIr::Retry(_) => ActionKind::Retry,
            ActionIr::Fallback { .. } => ActionKind::Fallback,
            ActionIr::Reset { .. } => ActionKind::Reset,
            ActionIr::Escalate { .. } => ActionKind::Escalate,
            ActionIr::Abort => ActionKind::Abort,
        }
    }

    /// Escalate and abort end the case; the others try again.
    pub fn is_terminal(&self) -> bool {
        matches!(self, ActionIr::Escalate { .. } | ActionIr::Abort)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryIr {
    pub strategy: Option<String>,
    /// `None`: retry at once.
    pub backoff: Option<BackoffIr>,
    pub jitter: Jitter,
}

/// Delay before attempt `n` (n = 1 for the first retry), before jitter:
/// fixed: `initial`; linear: `initial + step * (n-1)`; exponential:
/// `initial * factor^(n-1)`; linear and exponential are capped at `max`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BackoffIr {
    Fixed { delay_ms: f64 },
    Linear { initial_ms: f64, step_ms: f64, max_ms: f64 },
    Exponential { initial_ms: f64, factor: f64, max_ms: f64 },
}

/// A typed condition. `True` stands for `otherwise`-like guards and for
/// conditions folded to constants.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    True,
    Or(Vec<Cond>),
    And(Vec<Cond>),
    Not(Box<Cond>),
    Atom(Atom),
}

/// One test of one field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Atom {
    /// A path of `schema::FIELDS`, or `metadata.<key>`.
    pub path: String,
    pub test: Test,
    pub span: Span,
}

/// A missing field satisfies no test (`==`, `<`, `in`, `~`, truthiness are
/// false on it); `!=` and `not in` are written as `Not` of the positive test,
/// so they are true on a missing field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// The bool field is true.
    IsTrue,
    /// The field is present.
    Present,
    Eq(Value),
    /// Numeric (or ordered enum, as its index) comparison: `field OP value`.
    /// Only `Lt`, `Le`, `Gt`, `Ge`.
    Cmp(Ord, f64),
    In(Vec<Value>),
    /// A regex over a string field (flags folded into the pattern as `(?i)`...).
    Matches(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ord {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A typed value. Enum members (classes, models, risk levels...) are `Sym`;
/// durations are ms and money USD, both as `Num`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    Sym(String),
}

impl ReasonInfo {
    pub fn is_critical(&self) -> bool {
        self.severity == Severity::Critical
    }
}

impl ClassInfo {
    pub fn is_permanent(&self) -> bool {
        self.persistence == Some(Persistence::Permanent)
    }
}

impl GateIr {
    pub fn passes(&self, observed: f64) -> bool {
        match self.bound {
            GateBound::Min => observed >= self.value,
            GateBound::Max => observed <= self.value,
        }
    }
}
