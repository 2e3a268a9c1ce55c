//! The rule blocks: `classify`, `recover`, `accept` and invariants.

use super::cond::{Site, cond};
use super::decision::decision;
use super::ir::{AcceptIr, ClassifyIr, InvariantIr, RecoverIr};
use super::{Ctx, Kind};
use crate::syntax::ast::{Item, Policy};

#[derive(Debug, Default)]
pub(crate) struct Rules {
    pub classify: Vec<ClassifyIr>,
    pub recover: Vec<RecoverIr>,
    pub accept: Vec<AcceptIr>,
    pub invariants: Vec<InvariantIr>,
}

pub(crate) fn rules(cx: &mut Ctx, policy: &Policy) -> Rules {
    let mut out = Rules::default();
    for item in &policy.items {
        match item {
            Item::Classify(b) => {
                for r in &b.entries {
                    let guard = r.guard.as_ref().map(|g| cond(cx, g, Site::Classify));
                    let resolved = cx.resolve(Kind::Class, &r.class);
                    // A typo still assigns the class it probably means, so
                    // that the class is not also reported unused.
                    if let Some(assigned) = resolved.clone().or_else(|| cx.guess(Kind::Class, &r.class.name))
                        && !cx.assigned.contains_key(&assigned)
                    {
                        cx.assigned.insert(assigned, r.class.span);
                    }
                    let class = resolved.unwrap_or_else(|| r.class.name.clone());
                    out.classify.push(ClassifyIr { guard, class, span: r.span });
                }
            }
            Item::Recover(b) => {
                for r in &b.entries {
                    let guard = r.guard.as_ref().map(|g| cond(cx, g, Site::Recover));
                    let decision = decision(cx, &r.decision);
                    out.recover.push(RecoverIr { guard, decision, span: r.span });
                }
            }
            Item::Accept(b) => {
                for r in &b.entries {
                    let require = cond(cx, &r.require, Site::Accept);
                    let decision = decision(cx, &r.decision);
                    out.accept.push(AcceptIr { require, decision, span: r.span });
                }
            }
            Item::Invariant(inv) => {
                let guard = cond(cx, &inv.guard, Site::Invariant);
                let mut actions = Vec::new();
                for (kind, _) in &inv.actions {
                    if !actions.contains(kind) {
                        actions.push(*kind);
                    }
                }
                out.invariants.push(InvariantIr {
                    text: inv.text.value.clone(),
                    quantifier: inv.quantifier,
                    actions,
                    guard,
                    span: inv.span,
                });
            }
            _ => {}
        }
    }
    out
}
