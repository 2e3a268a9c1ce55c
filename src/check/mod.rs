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
    lints::recovery(&checked, &mut diags);
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
        self.push(d);
        None
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
    let d = Diagnostic::new(Code::UnknownName, format!("unknown {noun} `{name}`"), span, format!("no {noun} has this name"));
    match crate::names::closest(name, candidates.iter().copied()) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None if candidates.is_empty() => match declare_hint {
            Some(hint) => d.with_help(format!("declare it in {hint}")),
            None => d,
        },
        None => {
            let shown: Vec<String> = candidates.iter().take(8).map(|c| format!("`{c}`")).collect();
            let more = if candidates.len() > 8 { ", ..." } else { "" };
            let d = d.with_note(format!("known: {}{more}", shown.join(", ")));
            match declare_hint {
                Some(hint) => d.with_help(format!("use one of these, or declare it in {hint}")),
                None => d,
            }
        }
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
