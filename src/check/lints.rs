//! Warnings: unused declarations, and the recovery lints that read the
//! checked rules with a conservative analysis of which classes and models a
//! guard admits (a test of `class` or `model` narrows the set; anything the
//! analysis cannot read admits everything).

use super::ir::{ActionIr, CheckedPolicy, Cond, DecisionIr, Ord, Test, Value};
use super::{Ctx, Kind};
use crate::diag::{Code, Diagnostic};
use crate::schema::RISK_LEVELS;
use crate::span::Span;
use crate::syntax::ast::Severity;

/// Unused declarations. The first declared model is the primary, which the
/// agent calls first, and always counts as used.
pub(crate) fn unused(cx: &mut Ctx) {
    let mut found = Vec::new();
    for ((kind, name), &span) in &cx.name_spans {
        let used = cx.used.get(&(*kind, name.clone()));
        let d = match kind {
            Kind::Class => match (cx.assigned.contains_key(name), used) {
                (true, _) => None,
                (false, None) => Some(
                    Diagnostic::new(Code::Unused, format!("class `{name}` is never used"), span, "declared here")
                        .with_help("assign it in `classify`, or remove it"),
                ),
                (false, Some(&at)) => Some(
                    Diagnostic::new(
                        Code::Unused,
                        format!("class `{name}` is never assigned by `classify`"),
                        span,
                        "declared here",
                    )
                    .with_label(at, "so this test never matches it")
                    .with_help(format!("add a `classify` rule `CONDITION => {name}`")),
                ),
            },
            Kind::Model if cx.models.get_index(0).is_some_and(|(first, _)| first == name) => None,
            _ if used.is_some() => None,
            _ => {
                let help = match kind {
                    Kind::Reason => "give it in a decision (`..., reason NAME`), or remove it",
                    Kind::Model => "fall back to it, or remove it",
                    Kind::Strategy => "use it in `retry strategy NAME`, or remove it",
                    Kind::Prompt => "use it in `reset context prompt NAME`, or remove it",
                    _ => "use it, or remove it",
                };
                Some(
                    Diagnostic::new(
                        Code::Unused,
                        format!("{} `{name}` is never used", kind.noun()),
                        span,
                        "declared here",
                    )
                    .with_help(help),
                )
            }
        };
        if let Some(d) = d {
            found.push(d);
        }
    }
    cx.diags.extend(found);
}

/// A set of members (classes or models) as flags in declaration order.
type Set = Vec<bool>;

fn all(n: usize) -> Set {
    vec![true; n]
}

fn of_values(universe: &[&str], values: &[Value]) -> Set {
    universe.iter().map(|m| values.iter().any(|v| matches!(v, Value::Sym(s) if s == m))).collect()
}

fn and(a: &Set, b: &Set) -> Set {
    a.iter().zip(b).map(|(x, y)| *x && *y).collect()
}

fn or(a: &Set, b: &Set) -> Set {
    a.iter().zip(b).map(|(x, y)| *x || *y).collect()
}

fn not(a: &Set) -> Set {
    a.iter().map(|x| !x).collect()
}

/// The members of `field` for which `c` can hold (a superset).
fn admits(c: &Cond, field: &str, universe: &[&str]) -> Set {
    match c {
        Cond::True => all(universe.len()),
        Cond::Atom(a) if a.path == field => match &a.test {
            Test::Eq(v) => of_values(universe, std::slice::from_ref(v)),
            Test::In(vs) => of_values(universe, vs),
            _ => all(universe.len()),
        },
        Cond::Atom(_) => all(universe.len()),
        Cond::And(cs) => cs.iter().fold(all(universe.len()), |acc, c| and(&acc, &admits(c, field, universe))),
        Cond::Or(cs) if cs.is_empty() => all(universe.len()),
        Cond::Or(cs) => cs.iter().fold(vec![false; universe.len()], |acc, c| or(&acc, &admits(c, field, universe))),
        Cond::Not(inner) => exact(inner, field, universe).map_or_else(|| all(universe.len()), |s| not(&s)),
    }
}

/// The exact members for which `c` holds, when `c` tests nothing but `field`.
fn exact(c: &Cond, field: &str, universe: &[&str]) -> Option<Set> {
    match c {
        Cond::True => Some(all(universe.len())),
        Cond::Atom(a) if a.path == field => match &a.test {
            Test::Eq(v) => Some(of_values(universe, std::slice::from_ref(v))),
            Test::In(vs) => Some(of_values(universe, vs)),
            _ => None,
        },
        Cond::Atom(_) => None,
        Cond::And(cs) => cs.iter().try_fold(all(universe.len()), |acc, c| Some(and(&acc, &exact(c, field, universe)?))),
        Cond::Or(cs) => {
            cs.iter().try_fold(vec![false; universe.len()], |acc, c| Some(or(&acc, &exact(c, field, universe)?)))
        }
        Cond::Not(inner) => exact(inner, field, universe).map(|s| not(&s)),
    }
}

/// The largest value the integer field `field` can have where `c` holds,
/// when `c` bounds it (`attempt < 3` -> 2).
fn upper(c: &Cond, field: &str) -> Option<f64> {
    match c {
        Cond::Atom(a) if a.path == field => match &a.test {
            Test::Cmp(Ord::Lt, n) => Some(n.ceil() - 1.0),
            Test::Cmp(Ord::Le, n) => Some(n.floor()),
            Test::Eq(Value::Num(n)) => Some(*n),
            Test::In(vs) => vs.iter().try_fold(f64::NEG_INFINITY, |m, v| match v {
                Value::Num(n) => Some(m.max(*n)),
                _ => None,
            }),
            _ => None,
        },
        Cond::And(cs) => cs.iter().filter_map(|c| upper(c, field)).reduce(f64::min),
        Cond::Or(cs) if !cs.is_empty() => cs.iter().try_fold(f64::NEG_INFINITY, |m, c| Some(m.max(upper(c, field)?))),
        _ => None,
    }
}

/// Whether `c` holds only at `high` risk or above.
fn requires_high_risk(c: &Cond) -> bool {
    let high = RISK_LEVELS.iter().position(|l| *l == "high").unwrap_or(2) as f64;
    match c {
        Cond::Atom(a) if a.path == "risk" => match &a.test {
            Test::Cmp(Ord::Ge, n) => *n >= high,
            Test::Cmp(Ord::Gt, n) => *n >= high - 1.0,
            Test::Eq(Value::Sym(s)) => s == "high" || s == "critical",
            Test::In(vs) => {
                !vs.is_empty() && vs.iter().all(|v| matches!(v, Value::Sym(s) if s == "high" || s == "critical"))
            }
            _ => false,
        },
        Cond::And(cs) => cs.iter().any(requires_high_risk),
        Cond::Or(cs) => !cs.is_empty() && cs.iter().all(requires_high_risk),
        _ => false,
    }
}

fn names(set: &Set, universe: &[&str]) -> Vec<String> {
    universe.iter().zip(set).filter(|(_, x)| **x).map(|(n, _)| (*n).to_string()).collect()
}

fn ticks(list: &[String]) -> String {
    let t: Vec<String> = list.iter().map(|n| format!("`{n}`")).collect();
    t.join(", ")
}

/// The action a decision ends up taking (through a reset's `then`).
fn then_of(a: &ActionIr) -> &ActionIr {
    match a {
        ActionIr::Reset { then, .. } => then,
        other => other,
    }
}

/// Whether a class name reads as a context-window overflow.
fn is_overflow_class(name: &str) -> bool {
    name.contains("context") || name.contains("overflow")
}

/// The recovery lints; run only on a policy without errors.
pub(crate) fn recovery(p: &CheckedPolicy, attempts_span: Option<Span>, diags: &mut Vec<Diagnostic>) {
    let classes: Vec<&str> = p.classes.keys().map(String::as_str).collect();
    let models: Vec<&str> = p.models.keys().map(String::as_str).collect();
    // Classes each recover rule can see: its guard's classes, minus those
    // earlier rules take whole (a guard on `class` alone, or `otherwise`).
    let mut consumed = vec![false; classes.len()];
    let mut seen: Vec<Set> = Vec::with_capacity(p.recover.len());
    for r in &p.recover {
        let guard = r.guard.as_ref().unwrap_or(&Cond::True);
        seen.push(and(&admits(guard, "class", &classes), &not(&consumed)));
        if let Some(taken) = exact(guard, "class", &classes) {
            consumed = or(&consumed, &taken);
        }
    }
    retry_permanent(p, &classes, &seen, diags);
    fallback_context(p, &classes, &models, &seen, diags);
    let cyclic = fallback_cycles(p, &models, diags);
    fan_out(p, &seen, cyclic, attempts_span, diags);
    quiet_high_risk(p, diags);
}

fn retry_permanent(p: &CheckedPolicy, classes: &[&str], seen: &[Set], diags: &mut Vec<Diagnostic>) {
    let permanent: Set = classes.iter().map(|c| p.classes.get(*c).is_some_and(|i| i.is_permanent())).collect();
    for (r, admitted) in p.recover.iter().zip(seen) {
        if !matches!(then_of(&r.decision.action), ActionIr::Retry(_)) {
            continue;
        }
        let hit = names(&and(admitted, &permanent), classes);
        let Some(first) = hit.first() else { continue };
        let mut d = Diagnostic::new(
            Code::RetryPermanent,
            format!(
                "this retry can apply to the permanent {} {}",
                if hit.len() == 1 { "class" } else { "classes" },
                ticks(&hit)
            ),
            r.decision.span,
            "retries a failure that will repeat",
        );
        if let Some(info) = p.classes.get(first) {
            d = d.with_label(info.span, "declared `permanent` here");
        }
        let help = if r.guard.is_some() {
            format!("exclude it from the guard (`class != {first}`), or handle it in an earlier rule")
        } else {
            format!("handle {} in an earlier rule with `escalate` or `fallback`", ticks(&hit))
        };
        diags.push(d.with_help(help));
    }
}

fn fallback_context(p: &CheckedPolicy, classes: &[&str], models: &[&str], seen: &[Set], diags: &mut Vec<Diagnostic>) {
    let overflow: Set = classes.iter().map(|c| is_overflow_class(c)).collect();
    for (r, admitted) in p.recover.iter().zip(seen) {
        let ActionIr::Fallback { model: target, .. } = &r.decision.action else { continue };
        let hit = names(&and(admitted, &overflow), classes);
        let Some(class) = hit.first() else { continue };
        let Some(target_ctx) = p.models.get(target).and_then(|m| m.context) else { continue };
        let guard = r.guard.as_ref().unwrap_or(&Cond::True);
        let from = admits(guard, "model", models);
        let constrained = from.iter().any(|x| !x);
        let source = models
            .iter()
            .zip(&from)
            .filter(|(m, x)| **x && **m != target.as_str())
            .filter_map(|(m, _)| p.models.get(*m).and_then(|i| i.context).map(|c| (*m, c)))
            .max_by_key(|(_, c)| *c);
        let Some((source, source_ctx)) = source else { continue };
        if target_ctx >= source_ctx {
            continue;
        }
        let mut d = Diagnostic::new(
            Code::FallbackShrinksContext,
            format!("on `{class}` this falls back to `{target}`, whose context window is smaller than `{source}`'s"),
            r.decision.span,
            format!("`{target}` has {target_ctx} tokens, `{source}` {source_ctx}"),
        );
        if !constrained {
            d = d.with_note("the rule does not test `model`, so it can apply to the largest declared model");
        }
        if let Some(info) = p.models.get(target) {
            d = d.with_label(info.span, format!("`{target}` declared here"));
        }
        diags.push(d.with_help(format!(
            "an input that overflowed {source_ctx} tokens overflows {target_ctx}; fall back to a larger model or `reset context` first"
        )));
    }
}

/// Fallback edges `from -> to` with the decision that takes them.
fn fallback_edges(p: &CheckedPolicy, models: &[&str]) -> Vec<(usize, usize, Span)> {
    let mut edges = Vec::new();
    let mut add = |guard: Option<&Cond>, d: &DecisionIr| {
        let ActionIr::Fallback { model: target, .. } = then_of(&d.action) else { return };
        let Some(to) = models.iter().position(|m| m == target) else { return };
        if guard.and_then(|g| upper(g, "fallbacks")).is_some() {
            return;
        }
        let from = guard.map_or_else(|| all(models.len()), |g| admits(g, "model", models));
        let unconstrained = from.iter().all(|x| *x);
        for (i, admitted) in from.iter().enumerate() {
            if *admitted && !(unconstrained && i == to) {
                edges.push((i, to, d.span));
            }
        }
    };
    for r in &p.recover {
        add(r.guard.as_ref(), &r.decision);
    }
    for a in &p.accept {
        // The decision applies where the requirement fails.
        add(None, &a.decision);
    }
    if let Some(b) = &p.fleet.breaker {
        add(None, &b.decision);
    }
    if let Some(b) = &p.fleet.retry_budget {
        add(None, &b.decision);
    }
    if let Some(d) = &p.budget.exhausted {
        add(None, d);
    }
    edges
}

/// Reports each fallback cycle once; returns whether there is one.
fn fallback_cycles(p: &CheckedPolicy, models: &[&str], diags: &mut Vec<Diagnostic>) -> bool {
    let n = models.len();
    let edges = fallback_edges(p, models);
    let mut adj = vec![vec![None::<Span>; n]; n];
    for &(a, b, span) in &edges {
        if let Some(slot) = adj.get_mut(a).and_then(|row| row.get_mut(b)) {
            slot.get_or_insert(span);
        }
    }
    let mut reach: Vec<Vec<bool>> = adj.iter().map(|row| row.iter().map(Option::is_some).collect()).collect();
    // Transitive closure (Warshall): models are few.
    for k in 0..n {
        let via = reach[k].clone();
        for row in reach.iter_mut() {
            if row[k] {
                for (cell, through) in row.iter_mut().zip(&via) {
                    *cell |= *through;
                }
            }
        }
    }
    let mut reported = vec![false; n];
    let mut any = false;
    for start in 0..n {
        if reported[start] || !reach[start][start] {
            continue;
        }
        any = true;
        let in_scc: Vec<bool> = (0..n).map(|j| reach[start][j] && reach[j][start]).collect();
        for (j, inside) in in_scc.iter().enumerate() {
            if *inside {
                reported[j] = true;
            }
        }
        // The shortest cycle through `start`, by breadth-first search.
        let mut prev = vec![None::<usize>; n];
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        while let Some(u) = queue.pop_front() {
            if adj[u][start].is_some() {
                closing = Some(u);
                break;
            }
            for v in 0..n {
                if adj[u][v].is_some() && in_scc[v] && v != start && prev[v].is_none() {
                    prev[v] = Some(u);
                    queue.push_back(v);
                }
            }
        }
        let Some(last) = closing else { continue };
        let mut path = vec![last];
        while let Some(&u) = path.last() {
            match prev[u] {
                Some(q) if u != start => path.push(q),
                _ => break,
            }
        }
        path.reverse();
        path.push(start);
        let shown: Vec<&str> = path.iter().filter_map(|i| models.get(*i).copied()).collect();
        let mut labels: Vec<(Span, String)> = Vec::new();
        for w in path.windows(2) {
            if let (Some(Some(span)), Some(a), Some(b)) = (adj[w[0]].get(w[1]), models.get(w[0]), models.get(w[1]))
                && !labels.iter().any(|(s, _)| s == span)
            {
                labels.push((*span, format!("`{a}` -> `{b}`")));
            }
        }
        let Some((first_span, first_label)) = labels.first().cloned() else { continue };
        let mut d = Diagnostic::new(
            Code::FallbackCycle,
            format!("fallbacks can cycle: {}", shown.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(" -> ")),
            first_span,
            first_label,
        );
        for (span, label) in labels.into_iter().skip(1) {
            d = d.with_label(span, label);
        }
        d = match p.budget.fallbacks {
            Some(cap) => d.with_note(format!("only `budget.fallbacks {cap}` ends it")),
            None => d.with_note("only the budget ends it"),
        };
        diags.push(d.with_help("end the chain with `escalate`, or guard a fallback with `fallbacks < N`"));
    }
    any
}

/// The worst case of calls the rules allow for one request, against
/// `budget.attempts`.
fn fan_out(p: &CheckedPolicy, seen: &[Set], cyclic: bool, attempts_span: Option<Span>, diags: &mut Vec<Diagnostic>) {
    let Some(cap) = p.budget.attempts else { return };
    let Some(span) = attempts_span.or(p.budget.span) else { return };
    let mut global_retries = 0.0f64;
    let mut class_retries = 0.0f64;
    let mut resets: Option<f64> = Some(0.0);
    let mut targets: Vec<&str> = Vec::new();
    for (r, admitted) in p.recover.iter().zip(seen) {
        let guard = r.guard.as_ref().unwrap_or(&Cond::True);
        match &r.decision.action {
            ActionIr::Retry(_) => {
                if let Some(m) = upper(guard, "attempt") {
                    global_retries = global_retries.max(m.max(0.0));
                } else if let Some(m) = upper(guard, "class_attempts") {
                    let n = admitted.iter().filter(|x| **x).count() as f64;
                    class_retries += m.max(0.0) * n;
                } else {
                    // Unbounded retries: only the budget ends them; the
                    // termination analysis reports that, not this lint.
                    return;
                }
            }
            ActionIr::Reset { .. } => {
                let bound = upper(guard, "resets").map(|m| m.max(-1.0) + 1.0);
                resets = match (resets, bound.or(p.budget.resets.map(f64::from))) {
                    (Some(total), Some(b)) => Some(total.max(b)),
                    _ => None,
                };
            }
            ActionIr::Fallback { model, .. } if !targets.contains(&model.as_str()) => {
                targets.push(model);
            }
            _ => {}
        }
    }
    let Some(resets) = resets.map(|r| p.budget.resets.map_or(r, |cap| r.min(f64::from(cap)))) else { return };
    let mut fallbacks = targets.len() as f64;
    if cyclic {
        match p.budget.fallbacks {
            Some(cap) => fallbacks = f64::from(cap),
            None => return,
        }
    }
    if let Some(cap) = p.budget.fallbacks {
        fallbacks = fallbacks.min(f64::from(cap));
    }
    let retries = global_retries + class_retries;
    let worst = 1.0 + retries + resets + fallbacks;
    if worst <= f64::from(cap) {
        return;
    }
    let plural = |n: f64, one: &str, many: &str| format!("{n} {}", if n == 1.0 { one } else { many });
    let mut terms = vec!["1 first call".to_string()];
    for (n, one, many) in
        [(retries, "retry", "retries"), (resets, "reset", "resets"), (fallbacks, "fallback", "fallbacks")]
    {
        if n > 0.0 {
            terms.push(plural(n, one, many));
        }
    }
    diags.push(
        Diagnostic::new(
            Code::FanOutOverBudget,
            format!("the rules allow up to {worst} calls per request, more than `attempts {cap}`"),
            span,
            format!("allows {cap} attempts"),
        )
        .with_note(format!("worst case: {}", terms.join(" + ")))
        .with_help(format!(
            "raise `attempts` to {worst}, or tighten the `attempt <` guards; otherwise the budget decision ends these requests"
        )),
    );
}

fn quiet_high_risk(p: &CheckedPolicy, diags: &mut Vec<Diagnostic>) {
    for r in &p.recover {
        let Some(guard) = &r.guard else { continue };
        if !r.decision.action.is_terminal() || !requires_high_risk(guard) {
            continue;
        }
        let Some(reason) = p.reasons.get(&r.decision.reason) else { continue };
        if reason.severity != Severity::Info {
            continue;
        }
        diags.push(
            Diagnostic::new(
                Code::QuietHighRisk,
                format!(
                    "a high-risk `{}` gives reason `{}` of severity `info`",
                    r.decision.action.kind().as_str(),
                    r.decision.reason
                ),
                r.decision.span,
                "fires only at high risk",
            )
            .with_label(reason.span, "declared without a severity, so `info`")
            .with_help(format!("give the reason a severity: `{} \"...\" severity critical`", r.decision.reason)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ir::Atom;

    fn class_is(names: &[&str]) -> Cond {
        let values = names.iter().map(|n| Value::Sym((*n).to_string())).collect();
        Cond::Atom(Atom { path: "class".into(), test: Test::In(values), span: Span::default() })
    }

    fn attempt_lt(n: f64) -> Cond {
        Cond::Atom(Atom { path: "attempt".into(), test: Test::Cmp(Ord::Lt, n), span: Span::default() })
    }

    #[test]
    fn admits_narrows_on_class_tests() {
        let u = ["a", "b", "c"];
        assert_eq!(admits(&class_is(&["a"]), "class", &u), vec![true, false, false]);
        let neg = Cond::Not(Box::new(class_is(&["a"])));
        assert_eq!(admits(&neg, "class", &u), vec![false, true, true]);
        let mixed = Cond::And(vec![class_is(&["a", "b"]), attempt_lt(3.0)]);
        assert_eq!(admits(&mixed, "class", &u), vec![true, true, false]);
        assert_eq!(exact(&mixed, "class", &u), None);
        // Not of a mixed condition could hold for any class.
        assert_eq!(admits(&Cond::Not(Box::new(mixed)), "class", &u), vec![true, true, true]);
    }

    #[test]
    fn upper_bounds_from_guards() {
        assert_eq!(upper(&attempt_lt(3.0), "attempt"), Some(2.0));
        let both = Cond::And(vec![class_is(&["a"]), attempt_lt(5.0), attempt_lt(3.0)]);
        assert_eq!(upper(&both, "attempt"), Some(2.0));
        let either = Cond::Or(vec![class_is(&["a"]), attempt_lt(3.0)]);
        assert_eq!(upper(&either, "attempt"), None);
    }

    #[test]
    fn high_risk_guards() {
        let ge = |n| Cond::Atom(Atom { path: "risk".into(), test: Test::Cmp(Ord::Ge, n), span: Span::default() });
        assert!(requires_high_risk(&ge(2.0)));
        assert!(!requires_high_risk(&ge(1.0)));
        assert!(requires_high_risk(&Cond::And(vec![ge(3.0), attempt_lt(2.0)])));
        assert!(!requires_high_risk(&Cond::Or(vec![ge(3.0), attempt_lt(2.0)])));
    }
}
