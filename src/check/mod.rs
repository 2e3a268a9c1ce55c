//! AST -> checked policy: name resolution, typing against the event schema,
//! recovery lints. Reports every semantic problem of a file in one run.
//!
//! The passes, in order: the header and the block structure (`decls`), the
//! declarations (`decls`), the engine settings (`settings`: budget, fleet,
//! gate), the rules (`rules`, which types conditions in `cond` and decisions
//! in `decision`), and finally the lints (`lints`: unused declarations, then,
//! only on a file without errors, the recovery lints).

mod cond;
mod decision;
mod decls;
pub mod ir;
mod lints;
mod rules;
mod settings;

use indexmap::IndexMap;

use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{Ident, LitValue, Policy};

pub use ir::CheckedPolicy;
use ir::{ClassInfo, ModelInfo, PromptInfo, ReasonInfo, StrategyInfo};

/// Checks a parsed policy. Returns the checked policy when there is no
/// error (warnings allowed), and every diagnostic found.
pub fn check(policy: &Policy) -> (Option<CheckedPolicy>, Vec<Diagnostic>) {
    let mut cx = Ctx::default();
    decls::header(&mut cx, policy);
    decls::structure(&mut cx, policy);
    decls::declarations(&mut cx, policy);
    let budget = settings::budget(&mut cx, policy);
    let fleet = settings::fleet(&mut cx, policy);
    let gate = settings::gate(&mut cx, policy);
    let rules = rules::rules(&mut cx, policy);
    lints::unused(&mut cx);

    let checked = CheckedPolicy {
        name: policy.name.name.clone(),
        version: policy.version.value.clone(),
        consts: cx.consts.iter().map(|(k, c)| (k.clone(), c.info.clone())).collect(),
        classes: std::mem::take(&mut cx.classes),
        reasons: std::mem::take(&mut cx.reasons),
        models: std::mem::take(&mut cx.models),
        strategies: std::mem::take(&mut cx.strategies),
        prompts: std::mem::take(&mut cx.prompts),
        budget,
        fleet,
        classify: rules.classify,
        recover: rules.recover,
        accept: rules.accept,
        invariants: rules.invariants,
        gate,
    };
    let mut diags = cx.diags;
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    lints::recovery(&checked, cx.budget_attempts, &mut diags);
    (Some(checked), diags)
}

/// The namespaces a declared name can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Const,
    Class,
    Reason,
    Model,
    Strategy,
    Prompt,
}

impl Kind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Const => "constant",
            Kind::Class => "class",
            Kind::Reason => "reason",
            Kind::Model => "model",
            Kind::Strategy => "strategy",
            Kind::Prompt => "prompt",
        }
    }

    /// Where such a name is declared, for "declare it in ..." help.
    pub(crate) fn declare_hint(self) -> &'static str {
        match self {
            Kind::Const => "`const NAME = VALUE`",
            Kind::Class => "`classes { ... }`",
            Kind::Reason => "`reasons { NAME \"text\" }`",
            Kind::Model => "`models { NAME \"provider-id\" }`",
            Kind::Strategy => "`strategies { ... }`",
            Kind::Prompt => "`prompts { NAME \"text\" }`",
        }
    }
}

/// A declared constant: its literal (for typing) and its IR form.
#[derive(Debug, Clone)]
pub(crate) struct ConstDecl {
    pub value: LitValue,
    pub info: ir::ConstInfo,
}

/// Everything the passes share: declarations, name uses, diagnostics.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub diags: Vec<Diagnostic>,
    pub consts: IndexMap<String, ConstDecl>,
    pub classes: IndexMap<String, ClassInfo>,
    pub reasons: IndexMap<String, ReasonInfo>,
    pub models: IndexMap<String, ModelInfo>,
    pub strategies: IndexMap<String, StrategyInfo>,
    pub prompts: IndexMap<String, PromptInfo>,
    /// The span of each declared name (the identifier alone).
    pub name_spans: IndexMap<(Kind, String), Span>,
    /// The first place each declared name is used.
    pub used: IndexMap<(Kind, String), Span>,
    /// Classes a `classify` rule assigns, with the first assignment.
    pub assigned: IndexMap<String, Span>,
    /// The `attempts` setting of the budget, for the fan-out lint.
    pub budget_attempts: Option<Span>,
}

impl Ctx {
    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub(crate) fn is_declared(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Const => self.consts.contains_key(name),
            Kind::Class => self.classes.contains_key(name),
            Kind::Reason => self.reasons.contains_key(name),
            Kind::Model => self.models.contains_key(name),
            Kind::Strategy => self.strategies.contains_key(name),
            Kind::Prompt => self.prompts.contains_key(name),
        }
    }

    pub(crate) fn names(&self, kind: Kind) -> Vec<&str> {
        match kind {
            Kind::Const => self.consts.keys().map(String::as_str).collect(),
            Kind::Class => self.classes.keys().map(String::as_str).collect(),
            Kind::Reason => self.reasons.keys().map(String::as_str).collect(),
            Kind::Model => self.models.keys().map(String::as_str).collect(),
            Kind::Strategy => self.strategies.keys().map(String::as_str).collect(),
            Kind::Prompt => self.prompts.keys().map(String::as_str).collect(),
        }
    }

    /// Records a use of a declared name (the first use is kept).
    pub(crate) fn mark_used(&mut self, kind: Kind, name: &str, span: Span) {
        if !self.used.contains_key(&(kind, name.to_string())) {
            self.used.insert((kind, name.to_string()), span);
        }
    }

    /// Records a mention of `name` in every namespace that declares it; used
    /// where a name cannot be resolved (its field is unknown) so that the
    /// declaration it probably means is not reported as unused as well.
    pub(crate) fn mark_any(&mut self, name: &str, span: Span) {
        for kind in [Kind::Const, Kind::Class, Kind::Model, Kind::Strategy] {
            if self.is_declared(kind, name) {
                self.mark_used(kind, name, span);
            }
        }
    }

    /// Resolves a reference to a declared name: marks it used, or reports it
    /// as unknown with the closest declared name.
    pub(crate) fn resolve(&mut self, kind: Kind, id: &Ident) -> Option<String> {
        if self.is_declared(kind, &id.name) {
            self.mark_used(kind, &id.name, id.span);
            return Some(id.name.clone());
        }
        let d = unknown_name(kind.noun(), &id.name, id.span, &self.names(kind), Some(kind.declare_hint()));
        let d = self.note_other_kind(d, &id.name, kind.noun());
        self.push(d);
        self.mark_guess(kind, &id.name, id.span);
        None
    }

    /// Adds "`x` is a model, not a class" when the unknown name is declared
    /// in another namespace.
    pub(crate) fn note_other_kind(&self, d: Diagnostic, name: &str, wanted: &str) -> Diagnostic {
        let all = [Kind::Const, Kind::Class, Kind::Reason, Kind::Model, Kind::Strategy, Kind::Prompt];
        match all.into_iter().find(|k| k.noun() != wanted && self.is_declared(*k, name)) {
            Some(k) => d.with_note(format!("`{name}` is {}, not {}", article(k.noun()), article(wanted))),
            None => d,
        }
    }

    /// The declared name closest to an unknown `name`, if it looks like a typo.
    pub(crate) fn guess(&self, kind: Kind, name: &str) -> Option<String> {
        crate::names::closest(name, self.names(kind)).map(str::to_string)
    }

    /// Counts the name an unknown `name` probably means as used, so that a
    /// typo is not also reported as an unused declaration.
    pub(crate) fn mark_guess(&mut self, kind: Kind, name: &str, span: Span) {
        if let Some(best) = self.guess(kind, name) {
            self.mark_used(kind, &best, span);
        }
    }
}

/// An RCV101 diagnostic: `noun` `name` is not among `candidates`.
pub(crate) fn unknown_name(
    noun: &str,
    name: &str,
    span: Span,
    candidates: &[&str],
    declare_hint: Option<&str>,
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::UnknownName,
        format!("unknown {noun} `{name}`"),
        span,
        format!("no {noun} has this name"),
    );
    if let Some(best) = crate::names::closest(name, candidates.iter().copied()) {
        return d.with_help(format!("did you mean `{best}`?"));
    }
    let d = if candidates.is_empty() {
        d
    } else {
        let shown: Vec<String> = candidates.iter().take(8).map(|c| format!("`{c}`")).collect();
        let more = if candidates.len() > 8 { ", ..." } else { "" };
        d.with_help(format!("known: {}{more}", shown.join(", ")))
    };
    match declare_hint {
        Some(hint) => d.with_note(format!("declare a new one in {hint}")),
        None => d,
    }
}

/// "an int", "a duration"... for messages.
pub(crate) fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// A literal's type, in the words messages use.
pub(crate) fn lit_type(v: &LitValue) -> String {
    match v {
        LitValue::Money(_) => "amount of money".to_string(),
        other => other.type_name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_src(src: &str) -> (Option<CheckedPolicy>, Vec<Diagnostic>) {
        let policy = crate::syntax::parse(src).expect("parses");
        check(&policy)
    }

    #[test]
    fn tool_chain_checks_without_errors() {
        let src = std::fs::read_to_string("policies/tool_chain.rcv").expect("read");
        let (checked, diags) = check_src(&src);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
        let checked = checked.expect("checked");
        assert_eq!(checked.models.get_index_of("primary"), Some(0));
        assert_eq!(checked.budget.attempts, Some(5));
        assert_eq!(checked.budget.latency_ms, Some(30_000.0));
        assert!(checked.fleet.breaker.is_some() && checked.fleet.retry_budget.is_some());
        assert_eq!(checked.classify.len(), 9);
        assert!(checked.classify.last().is_some_and(|r| r.guard.is_none() && r.class == "unknown"));
        let first = checked.recover.first().and_then(|r| r.guard.as_ref());
        let Some(ir::Cond::And(parts)) = first else { panic!("{first:?}") };
        assert!(matches!(&parts[0], ir::Cond::Atom(a) if a.test == ir::Test::Cmp(ir::Ord::Ge, 2.0)));
        // The bundled policy is clean under `--deny warnings`.
        assert!(diags.is_empty(), "{diags:#?}");
    }

    #[test]
    fn every_problem_is_reported_in_one_run() {
        let src = r#"policy P version "1"
classes { a transient, a }
classify { clas == a => b }
recover { otherwise => retry backoff fixed(3), reason R }
gate { max nope 1 }
"#;
        let (checked, diags) = check_src(src);
        assert!(checked.is_none());
        let mut codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
        codes.sort();
        assert_eq!(
            codes,
            vec!["RCV101", "RCV101", "RCV101", "RCV102", "RCV105", "RCV106", "RCV107", "RCV108", "RCV205"],
            "{diags:#?}"
        );
    }

    /// The words and values of a policy, to swap for one another.
    const VOCAB: &[&str] = &[
        "timeout",
        "primary",
        "backup",
        "high",
        "low",
        "critical",
        "class",
        "model",
        "risk",
        "attempt",
        "resets",
        "fallbacks",
        "error.code",
        "error.http_status",
        "latency",
        "cost",
        "tool.side_effects",
        "output.confidence",
        "\"gpt-4o\"",
        "\"x\"",
        "3",
        "0",
        "-1",
        "2.5",
        "250ms",
        "0s",
        "$0.05",
        "$0",
        "true",
        "false",
        "summarize",
        "direct",
        "step_by_step",
        "RETRY_TRANSIENT",
        "unknown",
        "min_confidence",
        "max_transient",
        "ratio",
        "window",
        "cooldown",
        "failures",
        "min",
        "attempts",
        "quota_exhausted",
        "context_overflow",
        "strategy",
        "nope",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Swapping words of a real policy for other words or values gives
        /// policies that parse but are wrong in every way the checker knows;
        /// it reports them without panicking, and only error-free ones pass.
        #[test]
        fn checking_swapped_words_never_panics(picks in proptest::collection::vec((0usize..2000, 0usize..VOCAB.len()), 1..6)) {
            let src = std::fs::read_to_string("policies/tool_chain.rcv").expect("read");
            let words = regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_.]*|\$?[0-9][0-9.]*[a-z]*|\x22[^\x22\n]*\x22").expect("regex");
            let spans: Vec<(usize, usize)> = words.find_iter(&src).map(|m| (m.start(), m.end())).collect();
            let mut edited = src.clone();
            let mut chosen: Vec<(usize, usize, &str)> =
                picks.iter().map(|(i, w)| { let (a, b) = spans[i % spans.len()]; (a, b, VOCAB[*w]) }).collect();
            chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
            chosen.dedup_by_key(|c| c.0);
            for (a, b, w) in chosen {
                edited.replace_range(a..b, w);
            }
            if let Ok(policy) = crate::syntax::parse(&edited) {
                let (checked, diags) = check(&policy);
                proptest::prop_assert_eq!(checked.is_some(), !diags.iter().any(Diagnostic::is_error));
                let source = crate::diag::Source::new("p.rcv", edited.clone());
                let _ = crate::diag::render::human(&diags, &source, false);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Any edit of a real policy that still parses checks without panicking.
        #[test]
        fn checking_never_panics(cut in 0usize..4000, len in 0usize..40, insert in r"[ a-z_0-9<>=!.{}\[\],$\n\x22]{0,12}") {
            let src = std::fs::read_to_string("policies/tool_chain.rcv").expect("read");
            let start = cut.min(src.len());
            let end = (start + len).min(src.len());
            if src.is_char_boundary(start) && src.is_char_boundary(end) {
                let edited = format!("{}{insert}{}", &src[..start], &src[end..]);
                if let Ok(policy) = crate::syntax::parse(&edited) {
                    let (checked, diags) = check(&policy);
                    proptest::prop_assert_eq!(checked.is_some(), !diags.iter().any(Diagnostic::is_error));
                    let source = crate::diag::Source::new("p.rcv", edited.clone());
                    let _ = crate::diag::render::human(&diags, &source, false);
                }
            }
        }
    }
}
