//! Decisions: the action's names (strategy, model, prompt) and the reason
//! resolve; backoffs take arguments of the right kind and order.

use super::ir::{ActionIr, BackoffIr, DecisionIr, RetryIr};
use super::{Ctx, Kind, article, lit_type};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{
    Action, Backoff, BackoffKind, Decision, Fallback, Jitter, LitValue, Literal, Retry, ThenAction,
};

pub(crate) fn decision(cx: &mut Ctx, d: &Decision) -> DecisionIr {
    let reason = cx.resolve(Kind::Reason, &d.reason).unwrap_or_else(|| d.reason.name.clone());
    let action = action(cx, &d.action);
    DecisionIr { action, reason, span: d.span }
}

fn action(cx: &mut Ctx, a: &Action) -> ActionIr {
    match a {
        Action::Retry(r) => ActionIr::Retry(retry(cx, r)),
        Action::Fallback(f) => fallback(cx, f),
        Action::Reset(r) => {
            let prompt = r.prompt.as_ref().and_then(|p| cx.resolve(Kind::Prompt, p));
            let then = match r.then.as_ref() {
                ThenAction::Retry(rt) => ActionIr::Retry(retry(cx, rt)),
                ThenAction::Fallback(f) => fallback(cx, f),
            };
            ActionIr::Reset { scope: r.scope, prompt, then: Box::new(then) }
        }
        Action::Escalate { queue, .. } => ActionIr::Escalate { queue: queue.as_ref().map(|q| q.value.clone()) },
        Action::Abort { .. } => ActionIr::Abort,
    }
}

fn fallback(cx: &mut Ctx, f: &Fallback) -> ActionIr {
    let model = cx.resolve(Kind::Model, &f.model).unwrap_or_else(|| f.model.name.clone());
    let strategy = f.strategy.as_ref().and_then(|s| cx.resolve(Kind::Strategy, s));
    ActionIr::Fallback { model, strategy }
}

fn retry(cx: &mut Ctx, r: &Retry) -> RetryIr {
    let strategy = r.strategy.as_ref().and_then(|s| cx.resolve(Kind::Strategy, s));
    let backoff = r.backoff.as_ref().and_then(|b| backoff(cx, b));
    if let Some((jitter, span)) = r.jitter
        && r.backoff.is_none()
        && jitter != Jitter::None
    {
        cx.push(
            Diagnostic::new(
                Code::JitterWithoutBackoff,
                format!("`jitter {}` without a backoff does nothing", jitter.as_str()),
                span,
                "no delay to jitter",
            )
            .with_help("add a backoff before it (`backoff exponential(250ms, 2.0, 8s) jitter full`) or remove it"),
        );
    }
    RetryIr { strategy, backoff, jitter: r.jitter.map_or(Jitter::None, |j| j.0) }
}

fn backoff_name(kind: &BackoffKind) -> &'static str {
    match kind {
        BackoffKind::Fixed => "fixed",
        BackoffKind::Linear => "linear",
        BackoffKind::Exponential => "exponential",
    }
}

/// A backoff argument that must be a duration, in ms.
fn duration_arg(cx: &mut Ctx, func: &str, what: &str, lit: Option<&Literal>) -> Option<f64> {
    let lit = lit?;
    match &lit.value {
        LitValue::Duration(ms) => Some(*ms),
        other => {
            let mut d = Diagnostic::new(
                Code::BadBackoff,
                format!(
                    "the {what} of `{func}` must be a duration, found {} `{}`",
                    article(&lit_type(other)),
                    lit.text
                ),
                lit.span,
                "expected a duration like `250ms`",
            );
            if matches!(other, LitValue::Int(_) | LitValue::Float(_)) {
                let n = &lit.text;
                d = d.with_help(format!("write the unit: `{n}ms` or `{n}s`"));
            }
            cx.push(d);
            None
        }
    }
}

fn check_max(cx: &mut Ctx, func: &str, initial: (f64, &Literal), max: (f64, &Literal)) -> bool {
    if max.0 < initial.0 {
        cx.push(
            Diagnostic::new(
                Code::BadBackoff,
                format!(
                    "the maximum delay `{}` of `{func}` is below its initial delay `{}`",
                    max.1.text, initial.1.text
                ),
                max.1.span,
                "maximum here",
            )
            .with_label(initial.1.span, "initial delay here")
            .with_help(format!(
                "the arguments are `{func}(INITIAL, {}, MAX)`",
                if func == "linear" { "STEP" } else { "FACTOR" }
            )),
        );
        return false;
    }
    true
}

fn backoff(cx: &mut Ctx, b: &Backoff) -> Option<BackoffIr> {
    let func = backoff_name(&b.kind);
    let arg = |i: usize| b.args.get(i);
    match b.kind {
        BackoffKind::Fixed => {
            let delay_ms = duration_arg(cx, func, "delay", arg(0))?;
            Some(BackoffIr::Fixed { delay_ms })
        }
        BackoffKind::Linear => {
            let initial = duration_arg(cx, func, "initial delay", arg(0));
            let step = duration_arg(cx, func, "step", arg(1));
            let max = duration_arg(cx, func, "maximum delay", arg(2));
            let (initial_ms, step_ms, max_ms) = (initial?, step?, max?);
            check_max(cx, func, (initial_ms, arg(0)?), (max_ms, arg(2)?)).then_some(BackoffIr::Linear {
                initial_ms,
                step_ms,
                max_ms,
            })
        }
        BackoffKind::Exponential => {
            let initial = duration_arg(cx, func, "initial delay", arg(0));
            let factor = factor_arg(cx, arg(1));
            let max = duration_arg(cx, func, "maximum delay", arg(2));
            let (initial_ms, factor, max_ms) = (initial?, factor?, max?);
            check_max(cx, func, (initial_ms, arg(0)?), (max_ms, arg(2)?)).then_some(BackoffIr::Exponential {
                initial_ms,
                factor,
                max_ms,
            })
        }
    }
}

fn factor_arg(cx: &mut Ctx, lit: Option<&Literal>) -> Option<f64> {
    let lit = lit?;
    let value = match &lit.value {
        LitValue::Int(n) => *n as f64,
        LitValue::Float(f) => *f,
        other => {
            cx.push(
                Diagnostic::new(
                    Code::BadBackoff,
                    format!(
                        "the factor of `exponential` must be a plain number, found {} `{}`",
                        article(&lit_type(other)),
                        lit.text
                    ),
                    lit.span,
                    "expected a number like `2.0`",
                )
                .with_help("the arguments are `exponential(INITIAL, FACTOR, MAX)`, e.g. `exponential(250ms, 2.0, 8s)`"),
            );
            return None;
        }
    };
    if value < 1.0 {
        cx.push(
            Diagnostic::new(
                Code::BadBackoff,
                format!("the factor of `exponential` must be at least 1, found `{}`", lit.text),
                lit.span,
                "delays would shrink",
            )
            .with_help("use a factor of 1 or more, e.g. `2.0`"),
        );
        return None;
    }
    Some(value)
}
