//! Engine settings: the budget, the fleet guards and the release gate.
//! Each setting appears once, with a value of its unit and range.

use indexmap::IndexMap;

use super::decision::decision;
use super::ir::{BreakerIr, BudgetInfo, FleetInfo, GateIr, Metric, MetricUnit, RetryBudgetIr};
use super::{Ctx, article, lit_type, unknown_name};
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{BudgetKey, FleetGuardKind, FleetKey, GateBound, Item, LitValue, Literal, Policy};

fn mismatch(cx: &mut Ctx, setting: &str, wanted: &str, lit: &Literal, help: Option<String>) {
    let d = Diagnostic::new(
        Code::TypeMismatch,
        format!("`{setting}` takes {wanted}, found {} `{}`", article(&lit_type(&lit.value)), lit.text),
        lit.span,
        format!("expected {wanted}"),
    );
    cx.push(match help {
        Some(h) => d.with_help(h),
        None => d,
    });
}

fn out_of_range(cx: &mut Ctx, setting: &str, rule: &str, lit: &Literal) {
    cx.push(
        Diagnostic::new(
            Code::OutOfRange,
            format!("`{setting}` must be {rule}, found `{}`", lit.text),
            lit.span,
            "out of range",
        )
        .with_help(format!("use a value that is {rule}")),
    );
}

/// A whole number in `min..=u32::MAX`.
fn whole(cx: &mut Ctx, setting: &str, lit: &Literal, min: i64) -> Option<u32> {
    match lit.value {
        LitValue::Int(n) => {
            if n < min || n > i64::from(u32::MAX) {
                let rule = if min == 0 { "zero or more".to_string() } else { format!("at least {min}") };
                out_of_range(cx, setting, &rule, lit);
                None
            } else {
                u32::try_from(n).ok()
            }
        }
        _ => {
            mismatch(cx, setting, "a whole number", lit, None);
            None
        }
    }
}

/// A duration in ms, longer than zero.
fn duration(cx: &mut Ctx, setting: &str, lit: &Literal) -> Option<f64> {
    match lit.value {
        LitValue::Duration(ms) if ms > 0.0 => Some(ms),
        LitValue::Duration(_) => {
            out_of_range(cx, setting, "longer than zero", lit);
            None
        }
        LitValue::Int(_) | LitValue::Float(_) => {
            let help = format!("write the unit: `{}s` or `{}ms`", lit.text, lit.text);
            mismatch(cx, setting, "a duration like `30s`", lit, Some(help));
            None
        }
        _ => {
            mismatch(cx, setting, "a duration like `30s`", lit, None);
            None
        }
    }
}

/// An amount of money in USD, more than zero.
fn money(cx: &mut Ctx, setting: &str, lit: &Literal, positive: bool) -> Option<f64> {
    match lit.value {
        LitValue::Money(v) if v > 0.0 || !positive => Some(v),
        LitValue::Money(_) => {
            out_of_range(cx, setting, "more than `$0`", lit);
            None
        }
        LitValue::Int(_) | LitValue::Float(_) => {
            let help = format!("write it as an amount: `${}`", lit.text.trim_start_matches('-'));
            mismatch(cx, setting, "an amount like `$0.50`", lit, Some(help));
            None
        }
        _ => {
            mismatch(cx, setting, "an amount like `$0.50`", lit, None);
            None
        }
    }
}

/// A plain number (int or float).
fn number(cx: &mut Ctx, setting: &str, lit: &Literal, help: Option<String>) -> Option<f64> {
    match lit.value {
        LitValue::Int(n) => Some(n as f64),
        LitValue::Float(f) => Some(f),
        _ => {
            mismatch(cx, setting, "a number", lit, help);
            None
        }
    }
}

fn repeated(cx: &mut Ctx, what: String, span: Span, prev: Span) {
    cx.push(
        Diagnostic::new(Code::DuplicateSetting, what, span, "set again here")
            .with_label(prev, "first set here")
            .with_help("keep one value"),
    );
}

pub(crate) fn budget(cx: &mut Ctx, policy: &Policy) -> BudgetInfo {
    let mut info = BudgetInfo::default();
    for item in &policy.items {
        let Item::Budget(b) = item else { continue };
        info.span = Some(b.span);
        let mut seen: IndexMap<&'static str, Span> = IndexMap::new();
        for p in &b.props {
            let key = p.key.as_str();
            if let Some(&prev) = seen.get(key) {
                repeated(cx, format!("`{key}` is set twice in `budget`"), p.span, prev);
                continue;
            }
            seen.insert(key, p.span);
            match p.key {
                BudgetKey::Attempts => {
                    info.attempts = whole(cx, key, &p.value, 1);
                    cx.budget_attempts = Some(p.span);
                }
                BudgetKey::ClassAttempts => info.class_attempts = whole(cx, key, &p.value, 1),
                BudgetKey::Resets => info.resets = whole(cx, key, &p.value, 1),
                BudgetKey::Fallbacks => info.fallbacks = whole(cx, key, &p.value, 1),
                BudgetKey::Cost => info.cost = money(cx, key, &p.value, true),
                BudgetKey::Latency => info.latency_ms = duration(cx, key, &p.value),
            }
        }
        info.exhausted = b.exhausted.as_ref().map(|d| decision(cx, d));
        if !b.props.is_empty() && b.exhausted.is_none() {
            cx.push(
                Diagnostic::new(
                    Code::BudgetWithoutDecision,
                    "the budget does not say what happens when it is exhausted",
                    b.keyword,
                    "no `=> ...` decision",
                )
                .with_note("the engine then escalates with the built-in reason `budget_exhausted`")
                .with_help("end the block with a decision, e.g. `=> escalate queue \"budget\", reason OUT_OF_BUDGET`"),
            );
        }
    }
    info
}

fn guard_name(kind: FleetGuardKind) -> &'static str {
    match kind {
        FleetGuardKind::RetryBudget => "retry_budget",
        FleetGuardKind::Breaker => "breaker",
    }
}

fn guard_keys(kind: FleetGuardKind) -> [FleetKey; 3] {
    match kind {
        FleetGuardKind::RetryBudget => [FleetKey::Ratio, FleetKey::Min, FleetKey::Window],
        FleetGuardKind::Breaker => [FleetKey::Failures, FleetKey::Window, FleetKey::Cooldown],
    }
}

fn example(key: FleetKey) -> &'static str {
    match key {
        FleetKey::Ratio => "ratio 0.2",
        FleetKey::Min => "min 10",
        FleetKey::Window => "window 60s",
        FleetKey::Failures => "failures 5",
        FleetKey::Cooldown => "cooldown 60s",
    }
}

pub(crate) fn fleet(cx: &mut Ctx, policy: &Policy) -> FleetInfo {
    let mut info = FleetInfo::default();
    let mut seen_guards: IndexMap<&'static str, Span> = IndexMap::new();
    for item in &policy.items {
        let Item::Fleet(f) = item else { continue };
        for g in &f.guards {
            let name = guard_name(g.kind);
            if let Some(&prev) = seen_guards.get(name) {
                repeated(cx, format!("`{name}` is set twice in `fleet`"), g.keyword, prev);
            } else {
                seen_guards.insert(name, g.keyword);
            }
            let allowed = guard_keys(g.kind);
            let mut values: IndexMap<&'static str, f64> = IndexMap::new();
            let mut seen: IndexMap<&'static str, Span> = IndexMap::new();
            for p in &g.props {
                let key = p.key.as_str();
                if !allowed.contains(&p.key) {
                    let list: Vec<String> = allowed.iter().map(|k| format!("`{}`", k.as_str())).collect();
                    cx.push(
                        Diagnostic::new(
                            Code::MisplacedSetting,
                            format!("`{key}` is not a `{name}` setting"),
                            p.key_span,
                            format!("not allowed in `{name}`"),
                        )
                        .with_help(format!("`{name}` takes {}, {} and {}", list[0], list[1], list[2])),
                    );
                    continue;
                }
                if let Some(&prev) = seen.get(key) {
                    repeated(cx, format!("`{key}` is set twice in `{name}`"), p.span, prev);
                    continue;
                }
                seen.insert(key, p.span);
                let v = match p.key {
                    FleetKey::Ratio => number(cx, key, &p.value, None).and_then(|r| {
                        if r > 0.0 && r <= 1.0 {
                            Some(r)
                        } else {
                            out_of_range(cx, key, "more than 0 and at most 1", &p.value);
                            None
                        }
                    }),
                    FleetKey::Min => whole(cx, key, &p.value, 0).map(f64::from),
                    FleetKey::Failures => whole(cx, key, &p.value, 1).map(f64::from),
                    FleetKey::Window | FleetKey::Cooldown => duration(cx, key, &p.value),
                };
                if let Some(v) = v {
                    values.insert(key, v);
                }
            }
            let missing: Vec<FleetKey> = allowed.into_iter().filter(|k| !seen.contains_key(k.as_str())).collect();
            for k in &missing {
                cx.push(
                    Diagnostic::new(
                        Code::MissingSetting,
                        format!("`{name}` is missing `{}`", k.as_str()),
                        g.keyword,
                        format!("needs `{}`", k.as_str()),
                    )
                    .with_help(format!("add it, e.g. `{}`", example(*k))),
                );
            }
            let decision = decision(cx, &g.decision);
            let get = |k: FleetKey| values.get(k.as_str()).copied();
            match g.kind {
                FleetGuardKind::RetryBudget => {
                    if let (Some(ratio), Some(min), Some(window_ms)) =
                        (get(FleetKey::Ratio), get(FleetKey::Min), get(FleetKey::Window))
                    {
                        info.retry_budget =
                            Some(RetryBudgetIr { ratio, min: min as u32, window_ms, decision, span: g.span });
                    }
                }
                FleetGuardKind::Breaker => {
                    if let (Some(failures), Some(window_ms), Some(cooldown_ms)) =
                        (get(FleetKey::Failures), get(FleetKey::Window), get(FleetKey::Cooldown))
                    {
                        info.breaker = Some(BreakerIr {
                            failures: failures as u32,
                            window_ms,
                            cooldown_ms,
                            decision,
                            span: g.span,
                        });
                    }
                }
            }
        }
    }
    info
}

pub(crate) fn gate(cx: &mut Ctx, policy: &Policy) -> Vec<GateIr> {
    let mut out: Vec<GateIr> = Vec::new();
    let mut seen: IndexMap<(bool, Metric), Span> = IndexMap::new();
    for item in &policy.items {
        let Item::Gate(b) = item else { continue };
        for e in &b.entries {
            let Some(metric) = Metric::from_name(&e.metric.name) else {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
                cx.push(unknown_name("metric", &e.metric.name, e.metric.span, &names, None));
                continue;
            };
            let is_min = e.bound == GateBound::Min;
            let bound = if is_min { "min" } else { "max" };
            if let Some(&prev) = seen.get(&(is_min, metric)) {
                repeated(cx, format!("`{bound} {}` is set twice in `gate`", metric.as_str()), e.span, prev);
                continue;
            }
            seen.insert((is_min, metric), e.span);
            let name = metric.as_str();
            let value = match metric.unit() {
                MetricUnit::Rate => {
                    let help = Some("rates are fractions: `0.7` for 70%".to_string());
                    number(cx, name, &e.value, help.clone()).and_then(|v| {
                        if (0.0..=1.0).contains(&v) {
                            Some(v)
                        } else {
                            cx.push(
                                Diagnostic::new(
                                    Code::OutOfRange,
                                    format!("`{name}` is a rate between 0 and 1, found `{}`", e.value.text),
                                    e.value.span,
                                    "out of range",
                                )
                                .with_help("rates are fractions: `0.7` for 70%"),
                            );
                            None
                        }
                    })
                }
                MetricUnit::Duration => match e.value.value {
                    LitValue::Duration(ms) => Some(ms),
                    LitValue::Int(_) | LitValue::Float(_) => {
                        let help = format!("write the unit: `{}s` or `{}ms`", e.value.text, e.value.text);
                        mismatch(cx, name, "a duration like `20s`", &e.value, Some(help));
                        None
                    }
                    _ => {
                        mismatch(cx, name, "a duration like `20s`", &e.value, None);
                        None
                    }
                },
                MetricUnit::Money => money(cx, name, &e.value, false),
                MetricUnit::Number => number(cx, name, &e.value, None).and_then(|v| {
                    if v >= 0.0 {
                        Some(v)
                    } else {
                        out_of_range(cx, name, "zero or more", &e.value);
                        None
                    }
                }),
            };
            if let Some(value) = value {
                out.push(GateIr { bound: e.bound, metric, value, span: e.span });
            }
        }
    }
    for lo in out.iter().filter(|g| g.bound == GateBound::Min) {
        if let Some(hi) = out.iter().find(|g| g.bound == GateBound::Max && g.metric == lo.metric && g.value < lo.value)
        {
            cx.push(
                Diagnostic::new(
                    Code::GateContradiction,
                    format!("`{}` has a minimum above its maximum", lo.metric.as_str()),
                    lo.span,
                    "this minimum",
                )
                .with_label(hi.span, "is above this maximum")
                .with_help("no run can pass this gate; correct one of the bounds"),
            );
        }
    }
    out
}
