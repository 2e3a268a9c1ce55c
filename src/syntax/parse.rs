//! pest parse tree -> AST. One `parse_*` function per grammar rule; each
//! asserts the rule it was handed only through the structure it reads.
//! Syntax errors become an RCV001 diagnostic whose message names what was
//! expected in the author's words, never internal rule names.

use pest::Parser as _;
use pest::iterators::Pair;
use pest_derive::Parser;

use super::ast::*;
use crate::diag::{Code, Diagnostic};
use crate::span::Span;

#[derive(Parser)]
#[grammar = "../grammar/rcv.pest"]
struct RcvParser;

/// Parentheses, brackets and braces may nest at most this deep. Checked
/// before pest runs, so that no input can exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// Parses one policy file. On failure returns the diagnostics (one syntax
/// error, or the pre-parse checks' findings).
pub fn parse(src: &str) -> Result<Policy, Vec<Diagnostic>> {
    if src.trim().is_empty() {
        return Err(vec![
            Diagnostic::new(Code::NotText, "empty policy file", Span::new(0, src.len()), "nothing here")
                .with_help("a policy starts with `policy NAME version \"X.Y.Z\"`"),
        ]);
    }
    if let Some(pos) = src.find('\0') {
        return Err(vec![
            Diagnostic::new(Code::NotText, "the file contains a NUL byte", Span::new(pos, pos + 1), "NUL byte here")
                .with_help("policies are UTF-8 text; is this a binary file?"),
        ]);
    }
    check_nesting(src)?;
    let mut pairs = RcvParser::parse(Rule::file, src).map_err(|e| vec![syntax_error(src, e)])?;
    let file = pairs.next().ok_or_else(|| vec![internal(src, "empty parse")])?;
    let comments = collect_comments(src);
    let mut b = Builder { errors: Vec::new() };
    let policy = b.file(file, comments);
    if b.errors.is_empty() { Ok(policy) } else { Err(b.errors) }
}

fn internal(src: &str, what: &str) -> Diagnostic {
    Diagnostic::new(Code::Syntax, format!("could not read the policy ({what})"), Span::new(0, src.len().min(1)), "here")
}

/// Rejects nesting deeper than [`MAX_NESTING`] outside strings, regexes and comments.
fn check_nesting(src: &str) -> Result<(), Vec<Diagnostic>> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(vec![
                        Diagnostic::new(
                            Code::TooDeep,
                            format!("brackets nest deeper than {MAX_NESTING} levels"),
                            Span::new(i, i + 1),
                            "this one is too deep",
                        )
                        .with_help("flatten the expression: `and`/`or` chains need no extra parentheses"),
                    ]);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Comments are silent in the grammar; the formatter needs them, so they are
/// found by a scan that skips strings and regexes the same way the grammar does.
fn collect_comments(src: &str) -> Vec<Comment> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // A `/` starts a regex only after `~`; track the last significant byte.
    let mut last_sig = b'\n';
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'#' => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                let text = src.get(start + 1..i).unwrap_or("").trim_end().to_string();
                out.push(Comment { text, span: Span::new(start, i) });
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if last_sig == b'~' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'/' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            last_sig = c;
        }
        i += 1;
    }
    out
}

/// The words an author sees for each grammar rule in "expected ..." messages.
pub fn rule_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::header => "`policy NAME version \"X.Y.Z\"`",
        Rule::const_decl => "`const`",
        Rule::classes => "`classes { ... }`",
        Rule::class_decl => "a class name",
        Rule::persistence => "`transient` or `permanent`",
        Rule::reasons => "`reasons { ... }`",
        Rule::reason_decl => "a reason code (`NAME \"text\"`)",
        Rule::severity => "a severity (`info`, `low`, `medium`, `high`, `critical`)",
        Rule::models => "`models { ... }`",
        Rule::model_decl => "a model (`name \"provider-id\" tier N ...`)",
        Rule::model_prop | Rule::model_key => "a model property (`tier`, `cost_per_1k`, `context`)",
        Rule::strategies => "`strategies { ... }`",
        Rule::strategy_decl => "a strategy name",
        Rule::prompts => "`prompts { ... }`",
        Rule::prompt_decl => "a prompt (`name \"text\"`)",
        Rule::budget => "`budget { ... }`",
        Rule::budget_prop | Rule::budget_key => {
            "a budget limit (`attempts`, `class_attempts`, `cost`, `latency`, `resets`, `fallbacks`)"
        }
        Rule::override_arm => "`=> ACTION, reason NAME`",
        Rule::fleet => "`fleet { ... }`",
        Rule::retry_budget => "`retry_budget`",
        Rule::breaker => "`breaker`",
        Rule::fleet_prop | Rule::fleet_key => "a fleet setting (`ratio`, `min`, `window`, `failures`, `cooldown`)",
        Rule::classify => "`classify { ... }`",
        Rule::classify_rule => "a classify rule (`CONDITION => class`)",
        Rule::recover => "`recover { ... }`",
        Rule::recover_rule => "a recover rule (`when CONDITION => ACTION, reason NAME`)",
        Rule::otherwise => "`otherwise`",
        Rule::decision => "`ACTION, reason NAME`",
        Rule::retry_action => "`retry`",
        Rule::strategy_opt => "`strategy NAME`",
        Rule::backoff_opt => "`backoff`",
        Rule::backoff_fixed | Rule::backoff_linear | Rule::backoff_exp => {
            "a backoff (`fixed(D)`, `linear(D, STEP, MAX)`, `exponential(D, FACTOR, MAX)`)"
        }
        Rule::jitter_opt => "`jitter`",
        Rule::jitter => "a jitter (`none`, `full`, `equal`)",
        Rule::fallback_action => "`fallback MODEL`",
        Rule::reset_action => "`reset`",
        Rule::reset_scope => "a reset scope (`context`, `scratchpad`, `checkpoint`)",
        Rule::escalate_action => "`escalate`",
        Rule::abort_action => "`abort`",
        Rule::accept => "`accept { ... }`",
        Rule::accept_rule => "`require CONDITION else ACTION, reason NAME`",
        Rule::invariant => "`invariant \"text\": never|always ACTIONS when CONDITION`",
        Rule::quantifier => "`never` or `always`",
        Rule::action_set | Rule::action_kind => "an action (`retry`, `fallback`, `reset`, `escalate`, `abort`)",
        Rule::gate => "`gate { ... }`",
        Rule::gate_entry => "a gate threshold (`min|max METRIC VALUE`)",
        Rule::gate_bound => "`min` or `max`",
        Rule::expr | Rule::not_expr | Rule::group | Rule::has_test => "a condition",
        Rule::or_op => "`or`",
        Rule::and_op => "`and`",
        Rule::not_kw => "`not`",
        Rule::has_kw => "`has`",
        Rule::comparison | Rule::membership | Rule::matches => "a comparison",
        Rule::cmp_op => "a comparison operator (`==`, `!=`, `<`, `<=`, `>`, `>=`)",
        Rule::in_op => "`in`",
        Rule::list => "a list `[...]`",
        Rule::set => "a set `{...}`",
        Rule::name => "a name",
        Rule::path => "a field path (`error.http_status`)",
        Rule::keyword => "a keyword",
        Rule::ident => "a name",
        Rule::boolean => "`true` or `false`",
        Rule::number => "a number",
        Rule::duration => "a duration (`250ms`, `8s`, `2m`, `1h`)",
        Rule::money => "an amount (`$0.50`)",
        Rule::string | Rule::str_inner => "a string",
        Rule::regex | Rule::regex_body => "a regex (`/pattern/flags`)",
        Rule::regex_flags => "regex flags (`i`, `m`, `s`, `x`)",
        Rule::WHITESPACE | Rule::COMMENT => "whitespace",
        Rule::item => {
            "a block (`const`, `classes`, `reasons`, `models`, `strategies`, `prompts`, `budget`, `fleet`, `classify`, `recover`, `accept`, `invariant`, `gate`)"
        }
        Rule::fleet_entry => "`retry_budget` or `breaker`",
        Rule::action => "an action (`retry`, `fallback`, `reset`, `escalate`, `abort`)",
        Rule::retry_opt => "a retry option (`strategy`, `backoff`, `jitter`)",
        Rule::backoff => "a backoff (`fixed(D)`, `linear(D, STEP, MAX)`, `exponential(D, FACTOR, MAX)`)",
        Rule::or_expr | Rule::and_expr | Rule::unary | Rule::primary => "a condition",
        Rule::operand => "a value",
        Rule::literal => "a value",
        Rule::ident_char => "a letter, digit or `_`",
    }
}

fn syntax_error(src: &str, err: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let span = match err.location {
        InputLocation::Pos(p) => {
            // Point at the offending token rather than a zero-width position.
            let end = src.get(p..).and_then(|rest| rest.chars().next()).map_or(p, |c| p + c.len_utf8());
            Span::new(p, end)
        }
        InputLocation::Span((s, e)) => Span::new(s, e),
    };
    if let ErrorVariant::CustomError { message } = &err.variant
        && (message.contains("stack limit") || message.contains("call limit"))
    {
        return Diagnostic::new(Code::TooDeep, "the expression nests too deeply to read", span, "too deep from here")
            .with_help("flatten the expression: long `not not ...` chains and deep groups are never needed");
    }
    let (expected, unexpected) = match &err.variant {
        ErrorVariant::ParsingError { positives, negatives } => (names(positives), names(negatives)),
        ErrorVariant::CustomError { message } => (vec![message.clone()], Vec::new()),
    };
    let found = describe_found(src, span.start);
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let mut d = Diagnostic::new(Code::Syntax, message, span, format!("found {found}"));
    if !unexpected.is_empty() {
        d = d.with_note(format!("{} is not allowed here", join_or(&unexpected)));
    }
    if let Some(help) = syntax_help(src, span.start, &expected) {
        d = d.with_help(help);
    }
    d
}

fn names(rules: &[Rule]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rules {
        let n = rule_name(r).to_string();
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn describe_found(src: &str, pos: usize) -> String {
    let rest = src.get(pos..).unwrap_or("");
    match rest.chars().next() {
        None => "end of file".to_string(),
        Some(c) if c.is_whitespace() => "a line break".to_string(),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').take(40).collect();
            format!("`{word}`")
        }
        Some(c) => format!("`{}`", c.escape_debug()),
    }
}

/// Hints for the mistakes authors make most.
fn syntax_help(src: &str, pos: usize, expected: &[String]) -> Option<String> {
    let before = src.get(..pos).unwrap_or("").trim_end();
    if expected.iter().any(|e| e.contains("reason NAME")) || before.ends_with("retry") || before.ends_with("escalate") {
        return Some("every decision names a declared reason: `=> retry, reason RETRY_TRANSIENT`".into());
    }
    if src.get(pos..).is_some_and(|r| r.starts_with('=') && !r.starts_with("==") && !r.starts_with("=>")) {
        return Some("comparisons use `==`".into());
    }
    if src.get(pos..).is_some_and(|r| r.starts_with("&&") || r.starts_with("||")) {
        return Some("conditions combine with `and` / `or`".into());
    }
    None
}

struct Builder {
    errors: Vec<Diagnostic>,
}

/// The span of a pair without the whitespace and comments pest consumed
/// after its last token (a rule ending in an optional part keeps them).
fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.start() + significant_len(s.as_str()))
}

/// Length of `text` without trailing whitespace and comments. Strings and
/// regexes never span lines, so only the last line needs lexing.
fn significant_len(text: &str) -> usize {
    let mut end = text.trim_end().len();
    loop {
        let head = text.get(..end).unwrap_or("");
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        match comment_start(head.get(line_start..).unwrap_or("")) {
            Some(c) => end = head.get(..line_start + c).unwrap_or("").trim_end().len(),
            None => return end,
        }
    }
}

/// Byte offset of a `#` comment in one line, outside strings and regexes.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut last_sig = b' ';
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'#' => return Some(i),
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += usize::from(bytes[i] == b'\\') + 1;
                }
            }
            b'/' if last_sig == b'~' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'/' {
                    i += usize::from(bytes[i] == b'\\') + 1;
                }
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            last_sig = c;
        }
        i += 1;
    }
    None
}

fn ident(p: Pair<'_, Rule>) -> Ident {
    Ident { name: p.as_str().to_string(), span: span_of(&p) }
}

impl Builder {
    fn file(&mut self, file: Pair<'_, Rule>, comments: Vec<Comment>) -> Policy {
        let span = span_of(&file);
        let mut inner = file.into_inner();
        let mut name = Ident { name: String::new(), span: Span::default() };
        let mut version = StringLit { value: String::new(), span: Span::default() };
        let mut items = Vec::new();
        for p in inner.by_ref() {
            match p.as_rule() {
                Rule::header => {
                    let mut h = p.into_inner();
                    if let Some(n) = h.next() {
                        name = ident(n);
                    }
                    if let Some(v) = h.next() {
                        version = self.string(v);
                    }
                }
                Rule::EOI => {}
                _ => {
                    if let Some(item) = self.item(p) {
                        items.push(item);
                    }
                }
            }
        }
        Policy { name, version, items, comments, span }
    }

    fn item(&mut self, p: Pair<'_, Rule>) -> Option<Item> {
        let span = span_of(&p);
        let keyword = keyword_span(&p);
        Some(match p.as_rule() {
            Rule::const_decl => {
                let mut it = p.into_inner();
                let name = ident(it.next()?);
                let value = self.literal(it.next()?)?;
                Item::Const(ConstDecl { name, value, span })
            }
            Rule::classes => Item::Classes(Block {
                entries: p.into_inner().filter_map(|d| self.class_decl(d)).collect(),
                keyword,
                span,
            }),
            Rule::reasons => Item::Reasons(Block {
                entries: p.into_inner().filter_map(|d| self.reason_decl(d)).collect(),
                keyword,
                span,
            }),
            Rule::models => Item::Models(Block {
                entries: p.into_inner().filter_map(|d| self.model_decl(d)).collect(),
                keyword,
                span,
            }),
            Rule::strategies => Item::Strategies(Block {
                entries: p
                    .into_inner()
                    .filter_map(|d| {
                        let span = span_of(&d);
                        let mut it = d.into_inner();
                        let name = ident(it.next()?);
                        let text = it.next().map(|s| self.string(s));
                        Some(StrategyDecl { name, text, span })
                    })
                    .collect(),
                keyword,
                span,
            }),
            Rule::prompts => Item::Prompts(Block {
                entries: p
                    .into_inner()
                    .filter_map(|d| {
                        let span = span_of(&d);
                        let mut it = d.into_inner();
                        let name = ident(it.next()?);
                        let text = self.string(it.next()?);
                        Some(PromptDecl { name, text, span })
                    })
                    .collect(),
                keyword,
                span,
            }),
            Rule::budget => {
                let mut props = Vec::new();
                let mut exhausted = None;
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::budget_prop => {
                            let pspan = span_of(&c);
                            let mut it = c.into_inner();
                            let k = it.next()?;
                            let key = match k.as_str() {
                                "attempts" => BudgetKey::Attempts,
                                "class_attempts" => BudgetKey::ClassAttempts,
                                "cost" => BudgetKey::Cost,
                                "latency" => BudgetKey::Latency,
                                "resets" => BudgetKey::Resets,
                                _ => BudgetKey::Fallbacks,
                            };
                            let value = self.literal(it.next()?)?;
                            props.push(BudgetProp { key, key_span: span_of(&k), value, span: pspan });
                        }
                        Rule::override_arm => exhausted = self.override_arm(c),
                        _ => {}
                    }
                }
                Item::Budget(Budget { props, exhausted, keyword, span })
            }
            Rule::fleet => Item::Fleet(Fleet {
                guards: p.into_inner().filter_map(|g| self.fleet_guard(g)).collect(),
                keyword,
                span,
            }),
            Rule::classify => Item::Classify(Block {
                entries: p.into_inner().filter_map(|r| self.classify_rule(r)).collect(),
                keyword,
                span,
            }),
            Rule::recover => Item::Recover(Block {
                entries: p.into_inner().filter_map(|r| self.recover_rule(r)).collect(),
                keyword,
                span,
            }),
            Rule::accept => Item::Accept(Block {
                entries: p
                    .into_inner()
                    .filter_map(|r| {
                        let span = span_of(&r);
                        let mut it = r.into_inner();
                        let require = self.expr(it.next()?)?;
                        let decision = self.decision(it.next()?)?;
                        Some(AcceptRule { require, decision, span })
                    })
                    .collect(),
                keyword,
                span,
            }),
            Rule::invariant => {
                let mut it = p.into_inner();
                let text = self.string(it.next()?);
                let quantifier = if it.next()?.as_str() == "never" { Quantifier::Never } else { Quantifier::Always };
                let actions = it
                    .next()?
                    .into_inner()
                    .map(|k| {
                        let kind = match k.as_str() {
                            "retry" => ActionKind::Retry,
                            "fallback" => ActionKind::Fallback,
                            "reset" => ActionKind::Reset,
                            "escalate" => ActionKind::Escalate,
                            _ => ActionKind::Abort,
                        };
                        (kind, span_of(&k))
                    })
                    .collect();
                let guard = self.expr(it.next()?)?;
                Item::Invariant(Invariant { text, quantifier, actions, guard, span })
            }
            Rule::gate => Item::Gate(Block {
                entries: p
                    .into_inner()
                    .filter_map(|e| {
                        let span = span_of(&e);
                        let mut it = e.into_inner();
                        let bound = if it.next()?.as_str() == "min" { GateBound::Min } else { GateBound::Max };
                        let metric = ident(it.next()?);
                        let value = self.literal(it.next()?)?;
                        Some(GateEntry { bound, metric, value, span })
                    })
                    .collect(),
                keyword,
                span,
            }),
            _ => return None,
        })
    }

    fn class_decl(&mut self, d: Pair<'_, Rule>) -> Option<ClassDecl> {
        let span = span_of(&d);
        let mut it = d.into_inner();
        let name = ident(it.next()?);
        let persistence = it.next().map(|p| {
            let v = if p.as_str() == "transient" { Persistence::Transient } else { Persistence::Permanent };
            (v, span_of(&p))
        });
        Some(ClassDecl { name, persistence, span })
    }

    fn reason_decl(&mut self, d: Pair<'_, Rule>) -> Option<ReasonDecl> {
        let span = span_of(&d);
        let mut it = d.into_inner();
        let name = ident(it.next()?);
        let text = self.string(it.next()?);
        let severity = it.next().map(|s| {
            let v = match s.as_str() {
                "info" => Severity::Info,
                "low" => Severity::Low,
                "medium" => Severity::Medium,
                "high" => Severity::High,
                _ => Severity::Critical,
            };
            (v, span_of(&s))
        });
        Some(ReasonDecl { name, text, severity, span })
    }

    fn model_decl(&mut self, d: Pair<'_, Rule>) -> Option<ModelDecl> {
        let span = span_of(&d);
        let mut it = d.into_inner();
        let name = ident(it.next()?);
        let provider_id = self.string(it.next()?);
        let mut props = Vec::new();
        for prop in it {
            let pspan = span_of(&prop);
            let mut pi = prop.into_inner();
            let k = pi.next()?;
            let key = match k.as_str() {
                "tier" => ModelKey::Tier,
                "cost_per_1k" => ModelKey::CostPer1k,
                _ => ModelKey::Context,
            };
            let v = pi.next()?;
            let text = v.as_str().to_string();
            let value = match text.parse::<f64>() {
                Ok(x) if x.is_finite() => x,
                _ => {
                    self.bad_literal(span_of(&v), "this number is out of range");
                    0.0
                }
            };
            props.push(ModelProp { key, key_span: span_of(&k), value, text, span: pspan });
        }
        Some(ModelDecl { name, provider_id, props, span })
    }

    fn fleet_guard(&mut self, g: Pair<'_, Rule>) -> Option<FleetGuard> {
        let span = span_of(&g);
        let keyword = keyword_span(&g);
        let kind = if g.as_rule() == Rule::breaker { FleetGuardKind::Breaker } else { FleetGuardKind::RetryBudget };
        let mut props = Vec::new();
        let mut decision = None;
        for c in g.into_inner() {
            match c.as_rule() {
                Rule::fleet_prop => {
                    let pspan = span_of(&c);
                    let mut it = c.into_inner();
                    let k = it.next()?;
                    let key = match k.as_str() {
                        "ratio" => FleetKey::Ratio,
                        "min" => FleetKey::Min,
                        "window" => FleetKey::Window,
                        "failures" => FleetKey::Failures,
                        _ => FleetKey::Cooldown,
                    };
                    let value = self.literal(it.next()?)?;
                    props.push(FleetProp { key, key_span: span_of(&k), value, span: pspan });
                }
                Rule::override_arm => decision = self.override_arm(c),
                _ => {}
            }
        }
        Some(FleetGuard { kind, props, decision: decision?, keyword, span })
    }

    fn override_arm(&mut self, p: Pair<'_, Rule>) -> Option<Decision> {
        let d = p.into_inner().next()?;
        self.decision(d)
    }

    fn classify_rule(&mut self, r: Pair<'_, Rule>) -> Option<ClassifyRule> {
        let span = span_of(&r);
        let mut it = r.into_inner();
        let first = it.next()?;
        let guard = if first.as_rule() == Rule::otherwise { None } else { Some(self.expr(first)?) };
        let class = ident(it.next()?);
        Some(ClassifyRule { guard, class, span })
    }

    fn recover_rule(&mut self, r: Pair<'_, Rule>) -> Option<RecoverRule> {
        let span = span_of(&r);
        let mut it = r.into_inner();
        let first = it.next()?;
        let guard = if first.as_rule() == Rule::otherwise { None } else { Some(self.expr(first)?) };
        let decision = self.decision(it.next()?)?;
        Some(RecoverRule { guard, decision, span })
    }

    fn decision(&mut self, d: Pair<'_, Rule>) -> Option<Decision> {
        let span = span_of(&d);
        let mut it = d.into_inner();
        let action = self.action(it.next()?)?;
        let reason = ident(it.next()?);
        Some(Decision { action, reason, span })
    }

    fn action(&mut self, a: Pair<'_, Rule>) -> Option<Action> {
        let span = span_of(&a);
        Some(match a.as_rule() {
            Rule::retry_action => Action::Retry(self.retry(a)?),
            Rule::fallback_action => Action::Fallback(self.fallback(a)?),
            Rule::reset_action => {
                let mut it = a.into_inner();
                let scope = match it.next()?.as_str() {
                    "context" => ResetScope::Context,
                    "scratchpad" => ResetScope::Scratchpad,
                    _ => ResetScope::Checkpoint,
                };
                let mut prompt = None;
                let mut then = None;
                for c in it {
                    match c.as_rule() {
                        Rule::ident => prompt = Some(ident(c)),
                        Rule::retry_action => then = Some(ThenAction::Retry(self.retry(c)?)),
                        Rule::fallback_action => then = Some(ThenAction::Fallback(self.fallback(c)?)),
                        _ => {}
                    }
                }
                Action::Reset(Reset { scope, prompt, then: Box::new(then?), span })
            }
            Rule::escalate_action => Action::Escalate { queue: a.into_inner().next().map(|q| self.string(q)), span },
            _ => Action::Abort { span },
        })
    }

    fn retry(&mut self, a: Pair<'_, Rule>) -> Option<Retry> {
        let span = span_of(&a);
        let mut r = Retry { strategy: None, backoff: None, jitter: None, span };
        for opt in a.into_inner() {
            match opt.as_rule() {
                Rule::strategy_opt => r.strategy = opt.into_inner().next().map(ident),
                Rule::backoff_opt => {
                    let b = opt.into_inner().next()?;
                    let bspan = span_of(&b);
                    let kind = match b.as_rule() {
                        Rule::backoff_fixed => BackoffKind::Fixed,
                        Rule::backoff_linear => BackoffKind::Linear,
                        _ => BackoffKind::Exponential,
                    };
                    let args = b.into_inner().filter_map(|l| self.literal(l)).collect();
                    r.backoff = Some(Backoff { kind, args, span: bspan });
                }
                Rule::jitter_opt => {
                    let j = opt.into_inner().next()?;
                    let v = match j.as_str() {
                        "none" => Jitter::None,
                        "full" => Jitter::Full,
                        _ => Jitter::Equal,
                    };
                    r.jitter = Some((v, span_of(&j)));
                }
                _ => {}
            }
        }
        Some(r)
    }

    fn fallback(&mut self, a: Pair<'_, Rule>) -> Option<Fallback> {
        let span = span_of(&a);
        let mut it = a.into_inner();
        let model = ident(it.next()?);
        let strategy = it.next().and_then(|s| s.into_inner().next()).map(ident);
        Some(Fallback { model, strategy, span })
    }

    fn expr(&mut self, p: Pair<'_, Rule>) -> Option<Expr> {
        let span = span_of(&p);
        match p.as_rule() {
            Rule::expr => {
                // expr = or-chain of and-chains; operators are explicit pairs.
                let mut ors: Vec<Expr> = Vec::new();
                let mut ands: Vec<Expr> = Vec::new();
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::and_op => {}
                        Rule::or_op => ors.push(fold_and(std::mem::take(&mut ands))?),
                        _ => ands.push(self.expr(c)?),
                    }
                }
                ors.push(fold_and(ands)?);
                if ors.len() == 1 { ors.pop() } else { Some(Expr::Or(ors, span)) }
            }
            Rule::not_expr => Some(Expr::Not(Box::new(self.expr(p.into_inner().nth(1)?)?), span)),
            Rule::group => Some(Expr::Group(Box::new(self.expr(p.into_inner().next()?)?), span)),
            Rule::has_test => Some(Expr::Has(path(p.into_inner().nth(1)?), span)),
            Rule::path => Some(Expr::Truthy(path(p))),
            Rule::comparison => {
                let mut it = p.into_inner();
                let lhs = path(it.next()?);
                let op_pair = it.next()?;
                let op = match op_pair.as_str() {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<=" => CmpOp::Le,
                    ">=" => CmpOp::Ge,
                    "<" => CmpOp::Lt,
                    _ => CmpOp::Gt,
                };
                let rhs = self.operand(it.next()?)?;
                Some(Expr::Compare { path: lhs, op, op_span: span_of(&op_pair), rhs, span })
            }
            Rule::membership => {
                let mut it = p.into_inner();
                let lhs = path(it.next()?);
                let negated = it.next()?.as_str().starts_with("not");
                let coll = it.next()?;
                let braces = coll.as_rule() == Rule::set;
                let items = coll.into_inner().filter_map(|o| self.operand(o)).collect();
                Some(Expr::In { path: lhs, negated, items, braces, span })
            }
            Rule::matches => {
                let mut it = p.into_inner();
                let lhs = path(it.next()?);
                let re = it.next()?;
                let rspan = span_of(&re);
                let mut ri = re.into_inner();
                let pattern = ri.next()?.as_str().to_string();
                let flags = ri.next().map(|f| f.as_str().to_string()).unwrap_or_default();
                Some(Expr::Match { path: lhs, regex: RegexLit { pattern, flags, span: rspan }, span })
            }
            _ => None,
        }
    }

    fn operand(&mut self, o: Pair<'_, Rule>) -> Option<Operand> {
        if o.as_rule() == Rule::name {
            Some(Operand::Name(ident(o.into_inner().next()?)))
        } else {
            Some(Operand::Lit(self.literal(o)?))
        }
    }

    fn string(&mut self, p: Pair<'_, Rule>) -> StringLit {
        let span = span_of(&p);
        let raw = p.into_inner().next().map_or("", |i| i.as_str());
        let mut value = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => {}
                }
            } else {
                value.push(c);
            }
        }
        StringLit { value, span }
    }

    fn bad_literal(&mut self, span: Span, label: &str) {
        self.errors.push(
            Diagnostic::new(Code::BadLiteral, "invalid literal", span, label)
                .with_help("integers must fit in 64 bits and numbers must be finite"),
        );
    }

    fn literal(&mut self, p: Pair<'_, Rule>) -> Option<Literal> {
        let span = span_of(&p);
        let text = p.as_str().to_string();
        let value = match p.as_rule() {
            Rule::string => LitValue::Str(self.string(p).value),
            Rule::boolean => LitValue::Bool(text == "true"),
            Rule::money => match text.trim_start_matches('$').parse::<f64>() {
                Ok(v) if v.is_finite() => LitValue::Money(v),
                _ => {
                    self.bad_literal(span, "this amount is out of range");
                    return None;
                }
            },
            Rule::duration => {
                let (num, unit) = split_unit(&text);
                let factor = match unit {
                    "ms" => 1.0,
                    "s" => 1_000.0,
                    "m" => 60_000.0,
                    _ => 3_600_000.0,
                };
                match num.parse::<f64>() {
                    Ok(v) if (v * factor).is_finite() => LitValue::Duration(v * factor),
                    _ => {
                        self.bad_literal(span, "this duration is out of range");
                        return None;
                    }
                }
            }
            Rule::number => {
                if text.contains('.') {
                    match text.parse::<f64>() {
                        Ok(v) if v.is_finite() => LitValue::Float(v),
                        _ => {
                            self.bad_literal(span, "this number is out of range");
                            return None;
                        }
                    }
                } else {
                    match text.parse::<i64>() {
                        Ok(v) => LitValue::Int(v),
                        Err(_) => {
                            self.bad_literal(span, "this integer does not fit in 64 bits");
                            return None;
                        }
                    }
                }
            }
            _ => return None,
        };
        Some(Literal { value, text, span })
    }
}

fn split_unit(text: &str) -> (&str, &str) {
    let idx = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    (text.get(..idx).unwrap_or(""), text.get(idx..).unwrap_or(""))
}

fn fold_and(mut ands: Vec<Expr>) -> Option<Expr> {
    if ands.len() == 1 {
        return ands.pop();
    }
    let first = ands.first()?.span();
    let last = ands.last()?.span();
    Some(Expr::And(ands, first.join(last)))
}

fn path(p: Pair<'_, Rule>) -> Path {
    Path { text: p.as_str().to_string(), span: span_of(&p) }
}

/// The span of a block's leading keyword (the first word of the pair).
fn keyword_span(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    let text = s.as_str();
    let len = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    Span::new(s.start(), s.start() + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
policy p version "1.0.0"
classes { timeout transient, unknown }
reasons { R "r" severity critical }
classify {
  error.http_status in [500, 502] or error.message ~ /timed? ?out/i => timeout
  otherwise => unknown
}
recover {
  when class == timeout and attempt < 3 => retry backoff exponential(250ms, 2.0, 8s) jitter full, reason R
  otherwise => escalate queue "oncall", reason R
}
"#;

    #[test]
    fn parses_a_small_policy() {
        let p = parse(SMALL).expect("parses");
        assert_eq!(p.name.name, "p");
        assert_eq!(p.version.value, "1.0.0");
        assert_eq!(p.items.len(), 4);
        let Some(Item::Recover(rec)) = p.items.get(3) else { panic!("no recover block") };
        let Some(rule) = rec.entries.first() else { panic!("no rule") };
        assert!(matches!(rule.guard, Some(Expr::And(..))));
        let Action::Retry(r) = &rule.decision.action else { panic!("not a retry") };
        assert_eq!(r.jitter.map(|j| j.0), Some(Jitter::Full));
        let b = r.backoff.as_ref().expect("backoff");
        assert_eq!(b.args.first().map(|l| l.value.clone()), Some(LitValue::Duration(250.0)));
    }

    #[test]
    fn or_binds_looser_than_and() {
        let src = "policy p version \"1\"\nclassify { a and b or c => x }";
        let p = parse(src).expect("parses");
        let Some(Item::Classify(c)) = p.items.first() else { panic!("no classify") };
        let guard = c.entries.first().and_then(|r| r.guard.clone()).expect("guard");
        let Expr::Or(arms, _) = guard else { panic!("top is not `or`") };
        assert!(matches!(arms.first(), Some(Expr::And(..))));
    }

    #[test]
    fn syntax_errors_use_author_words() {
        let err = parse("policy p version \"1\"\nrecover { when class == timeout => retry }").expect_err("fails");
        let d = err.first().expect("one diagnostic");
        assert_eq!(d.code, Code::Syntax);
        assert!(!d.message.contains("_action"), "internal rule name leaked: {}", d.message);
        assert!(d.message.contains("expected"), "{}", d.message);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let src =
            format!("policy p version \"1\"\nclassify {{ {}a{} => x }}", "(".repeat(100_000), ")".repeat(100_000));
        let err = parse(&src).expect_err("too deep");
        assert_eq!(err.first().map(|d| d.code), Some(Code::TooDeep));
    }

    #[test]
    fn empty_and_nul_inputs_are_diagnosed() {
        assert_eq!(parse("").expect_err("empty").first().map(|d| d.code), Some(Code::NotText));
        assert_eq!(parse("policy\0").expect_err("nul").first().map(|d| d.code), Some(Code::NotText));
    }

    #[test]
    fn comments_are_collected_but_not_inside_strings_or_regexes() {
        let src = "policy p version \"1#\" # head\nclassify { m ~ /a#b/ => x } # tail\n";
        let p = parse(src).expect("parses");
        let texts: Vec<_> = p.comments.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec![" head", " tail"]);
    }

    #[test]
    fn spans_stop_at_the_last_token() {
        let src = "policy p version \"1\"\nclasses {\n  a transient   # why\n  b\n}\n";
        let p = parse(src).expect("parses");
        let Some(Item::Classes(b)) = p.items.first() else { panic!("no classes") };
        let a = b.entries.first().expect("a");
        assert_eq!(&src[a.span.range()], "a transient");
        assert_eq!(significant_len("x \"#\" # c\n  "), 5);
        assert_eq!(significant_len("m ~ /a#b/  # c"), 9);
    }

    #[test]
    fn deep_not_chains_are_too_deep_not_a_crash() {
        let src = format!("policy p version \"1\"\nclassify {{ {}a => x }}", "not ".repeat(100_000));
        let err = parse(&src).expect_err("too deep");
        let d = err.first().expect("diagnostic");
        assert!(matches!(d.code, Code::TooDeep | Code::Syntax), "{d:?}");
        assert!(!d.message.contains("stack limit"), "{}", d.message);
    }

    #[test]
    fn integer_overflow_is_a_literal_error() {
        let err = parse("policy p version \"1\"\nconst x = 99999999999999999999").expect_err("overflow");
        assert_eq!(err.first().map(|d| d.code), Some(Code::BadLiteral));
    }
}

#[cfg(test)]
mod bundled {
    #[test]
    fn bundled_policies_parse() {
        for entry in std::fs::read_dir("policies").expect("policies/") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "rcv") {
                continue;
            }
            let src = std::fs::read_to_string(&path).expect("read");
            if let Err(e) = super::parse(&src) {
                panic!("{}: {e:?}", path.display());
            }
        }
    }
}
