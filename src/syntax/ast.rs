//! The abstract syntax tree of a `.rcv` file. Every node that a diagnostic
//! can point at carries its byte [`Span`]; nothing here is resolved yet
//! (names are plain strings, checked by `check`).

use serde::Serialize;

use crate::span::Span;

/// An identifier with the place it was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub name: Ident,
    pub version: StringLit,
    pub items: Vec<Item>,
    /// Comments, in source order, for the formatter (the checker ignores them).
    pub comments: Vec<Comment>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comment {
    /// The text after `#`, without the line break.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StringLit {
    /// The unescaped value.
    pub value: String,
    pub span: Span,
}

/// One top-level block. Blocks may repeat in the source; the checker merges
/// or rejects repeats (see `check`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Item {
    Const(ConstDecl),
    Classes(Block<ClassDecl>),
    Reasons(Block<ReasonDecl>),
    Models(Block<ModelDecl>),
    Strategies(Block<StrategyDecl>),
    Prompts(Block<PromptDecl>),
    Budget(Budget),
    Fleet(Fleet),
    Classify(Block<ClassifyRule>),
    Recover(Block<RecoverRule>),
    Accept(Block<AcceptRule>),
    Invariant(Invariant),
    Gate(Block<GateEntry>),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Const(c) => c.span,
            Item::Classes(b) => b.span,
            Item::Reasons(b) => b.span,
            Item::Models(b) => b.span,
            Item::Strategies(b) => b.span,
            Item::Prompts(b) => b.span,
            Item::Budget(b) => b.span,
            Item::Fleet(f) => f.span,
            Item::Classify(b) => b.span,
            Item::Recover(b) => b.span,
            Item::Accept(b) => b.span,
            Item::Invariant(i) => i.span,
            Item::Gate(b) => b.span,
        }
    }
}

/// A `keyword { ... }` block: `span` covers the keyword through `}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block<T> {
    pub entries: Vec<T>,
    /// The span of the block keyword alone, for "declared here" labels.
    pub keyword: Span,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstDecl {
    pub name: Ident,
    pub value: Literal,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Persistence {
    Transient,
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassDecl {
    pub name: Ident,
    pub persistence: Option<(Persistence, Span)>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonDecl {
    pub name: Ident,
    pub text: StringLit,
    pub severity: Option<(Severity, Span)>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKey {
    Tier,
    CostPer1k,
    Context,
}

impl ModelKey {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKey::Tier => "tier",
            ModelKey::CostPer1k => "cost_per_1k",
            ModelKey::Context => "context",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProp {
    pub key: ModelKey,
    pub key_span: Span,
    pub value: f64,
    /// The number as written, so the formatter does not reformat `0.0050`.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDecl {
    pub name: Ident,
    /// The provider's model id, as events report it (`"gpt-4o"`).
    pub provider_id: StringLit,
    pub props: Vec<ModelProp>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyDecl {
    pub name: Ident,
    /// Optional instruction text handed to the agent with the strategy.
    pub text: Option<StringLit>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptDecl {
    pub name: Ident,
    pub text: StringLit,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKey {
    Attempts,
    ClassAttempts,
    Cost,
    Latency,
    Resets,
    Fallbacks,
}

impl BudgetKey {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKey::Attempts => "attempts",
            BudgetKey::ClassAttempts => "class_attempts",
            BudgetKey::Cost => "cost",
            BudgetKey::Latency => "latency",
            BudgetKey::Resets => "resets",
            BudgetKey::Fallbacks => "fallbacks",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetProp {
    pub key: BudgetKey,
    pub key_span: Span,
    pub value: Literal,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    pub props: Vec<BudgetProp>,
    /// What the engine decides when a cap is hit.
    pub exhausted: Option<Decision>,
    pub keyword: Span,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetKey {
    Ratio,
    Min,
    Window,
    Failures,
    Cooldown,
}

impl FleetKey {
    pub fn as_str(self) -> &'static str {
        match self {
            FleetKey::Ratio => "ratio",
            FleetKey::Min => "min",
            FleetKey::Window => "window",
            FleetKey::Failures => "failures",
            FleetKey::Cooldown => "cooldown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetProp {
    pub key: FleetKey,
    pub key_span: Span,
    pub value: Literal,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetGuardKind {
    /// Retries allowed as a share of recent calls (token-bucket style).
    RetryBudget,
    /// Per-model circuit breaker.
    Breaker,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetGuard {
    pub kind: FleetGuardKind,
    pub props: Vec<FleetProp>,
    pub decision: Decision,
    pub keyword: Span,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    pub guards: Vec<FleetGuard>,
    pub keyword: Span,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifyRule {
    /// `None` for `otherwise`.
    pub guard: Option<Expr>,
    pub class: Ident,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoverRule {
    /// `None` for `otherwise`.
    pub guard: Option<Expr>,
    pub decision: Decision,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AcceptRule {
    pub require: Expr,
    pub decision: Decision,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantifier {
    Never,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Retry,
    Fallback,
    Reset,
    Escalate,
    Abort,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Retry => "retry",
            ActionKind::Fallback => "fallback",
            ActionKind::Reset => "reset",
            ActionKind::Escalate => "escalate",
            ActionKind::Abort => "abort",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invariant {
    pub text: StringLit,
    pub quantifier: Quantifier,
    pub actions: Vec<(ActionKind, Span)>,
    pub guard: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateBound {
    Min,
    Max,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateEntry {
    pub bound: GateBound,
    pub metric: Ident,
    pub value: Literal,
    pub span: Span,
}

/// An action plus its mandatory reason code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub reason: Ident,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Action {
    Retry(Retry),
    Fallback(Fallback),
    Reset(Reset),
    Escalate { queue: Option<StringLit>, span: Span },
    Abort { span: Span },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Retry(_) => ActionKind::Retry,
            Action::Fallback(_) => ActionKind::Fallback,
            Action::Reset(_) => ActionKind::Reset,
            Action::Escalate { .. } => ActionKind::Escalate,
            Action::Abort { .. } => ActionKind::Abort,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Action::Retry(r) => r.span,
            Action::Fallback(f) => f.span,
            Action::Reset(r) => r.span,
            Action::Escalate { span, .. } | Action::Abort { span } => *span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    pub strategy: Option<Ident>,
    pub backoff: Option<Backoff>,
    pub jitter: Option<(Jitter, Span)>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum BackoffKind {
    /// `fixed(delay)`
    Fixed,
    /// `linear(initial, step, max)`
    Linear,
    /// `exponential(initial, factor, max)`
    Exponential,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backoff {
    pub kind: BackoffKind,
    pub args: Vec<Literal>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    None,
    Full,
    Equal,
}

impl Jitter {
    pub fn as_str(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    pub model: Ident,
    pub strategy: Option<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetScope {
    Context,
    Scratchpad,
    Checkpoint,
}

impl ResetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetScope::Context => "context",
            ResetScope::Scratchpad => "scratchpad",
            ResetScope::Checkpoint => "checkpoint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ThenAction {
    Retry(Retry),
    Fallback(Fallback),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reset {
    pub scope: ResetScope,
    pub prompt: Option<Ident>,
    pub then: Box<ThenAction>,
    pub span: Span,
}

// ---------- expressions ----------

/// A dotted field path such as `error.http_status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Path {
    /// The segments joined with `.`.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expr {
    Or(Vec<Expr>, Span),
    And(Vec<Expr>, Span),
    Not(Box<Expr>, Span),
    /// A parenthesised expression, kept so the formatter can keep the parentheses.
    Group(Box<Expr>, Span),
    /// `path` alone: the boolean field is true.
    Truthy(Path),
    /// `has path`: the field is present in the event.
    Has(Path, Span),
    Compare {
        path: Path,
        op: CmpOp,
        op_span: Span,
        rhs: Operand,
        span: Span,
    },
    /// `path in [..]` / `path in {..}` / `path not in ..`.
    In {
        path: Path,
        negated: bool,
        items: Vec<Operand>,
        /// `true` when written with braces.
        braces: bool,
        span: Span,
    },
    Match {
        path: Path,
        regex: RegexLit,
        span: Span,
    },
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Or(_, s) | Expr::And(_, s) | Expr::Not(_, s) | Expr::Group(_, s) | Expr::Has(_, s) => *s,
            Expr::Truthy(p) => p.span,
            Expr::Compare { span, .. } | Expr::In { span, .. } | Expr::Match { span, .. } => *span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegexLit {
    /// The pattern between the slashes, as written.
    pub pattern: String,
    pub flags: String,
    pub span: Span,
}

/// The right-hand side of a comparison or a member of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Operand {
    Lit(Literal),
    /// A bare name: a class, model, strategy, risk level or constant.
    Name(Ident),
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Lit(l) => l.span,
            Operand::Name(i) => i.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Literal {
    pub value: LitValue,
    /// The literal as written (numbers keep their spelling in `rcv fmt`).
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LitValue {
    Int(i64),
    Float(f64),
    /// Milliseconds.
    Duration(f64),
    /// US dollars.
    Money(f64),
    Str(String),
    Bool(bool),
}

impl LitValue {
    /// The literal's type, in the words diagnostics use.
    pub fn type_name(&self) -> &'static str {
        match self {
            LitValue::Int(_) => "int",
            LitValue::Float(_) => "float",
            LitValue::Duration(_) => "duration",
            LitValue::Money(_) => "money",
            LitValue::Str(_) => "string",
            LitValue::Bool(_) => "bool",
        }
    }
}
