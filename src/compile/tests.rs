//! Unit tests of lowering, evaluation, analysis and hashing, on policies
//! built by hand.

use indexmap::IndexMap;

use super::*;
use crate::check::ir::*;
use crate::schema::Fact;
use crate::syntax::ast::{Jitter, Persistence, Severity};

// ---------- builders ----------

fn sp(n: usize) -> Span {
    Span::new(n, n + 1)
}

fn base() -> CheckedPolicy {
    let mut classes = IndexMap::new();
    for (i, c) in ["timeout", "rate_limited", "auth_failed"].iter().enumerate() {
        classes.insert(c.to_string(), ClassInfo { persistence: Some(Persistence::Transient), span: sp(i) });
    }
    let mut reasons = IndexMap::new();
    reasons.insert("R".to_string(), ReasonInfo { text: "r".into(), severity: Severity::Info, span: sp(10) });
    let mut models = IndexMap::new();
    for (i, m) in ["primary", "backup"].iter().enumerate() {
        models.insert(
            m.to_string(),
            ModelInfo {
                provider_id: format!("{m}-id"),
                tier: None,
                cost_per_1k: None,
                context: None,
                span: sp(20 + i),
            },
        );
    }
    CheckedPolicy {
        name: "t".into(),
        version: "1.0.0".into(),
        consts: IndexMap::new(),
        classes,
        reasons,
        models,
        strategies: IndexMap::new(),
        prompts: IndexMap::new(),
        budget: BudgetInfo::default(),
        fleet: FleetInfo::default(),
        classify: Vec::new(),
        recover: Vec::new(),
        accept: Vec::new(),
        invariants: Vec::new(),
        gate: Vec::new(),
    }
}

fn atom(path: &str, test: Test) -> Cond {
    Cond::Atom(Atom { path: path.into(), test, span: sp(100) })
}

fn sym(path: &str, v: &str) -> Cond {
    atom(path, Test::Eq(Value::Sym(v.into())))
}

fn str_eq(path: &str, v: &str) -> Cond {
    atom(path, Test::Eq(Value::Str(v.into())))
}

fn syms(path: &str, vs: &[&str]) -> Cond {
    atom(path, Test::In(vs.iter().map(|v| Value::Sym(v.to_string())).collect()))
}

fn cmp(path: &str, op: Ord, x: f64) -> Cond {
    atom(path, Test::Cmp(op, x))
}

fn truthy(path: &str) -> Cond {
    atom(path, Test::IsTrue)
}

fn re(path: &str, p: &str) -> Cond {
    atom(path, Test::Matches(p.into()))
}

fn and(cs: Vec<Cond>) -> Cond {
    Cond::And(cs)
}

fn or(cs: Vec<Cond>) -> Cond {
    Cond::Or(cs)
}

fn not(c: Cond) -> Cond {
    Cond::Not(Box::new(c))
}

fn dec(action: ActionIr) -> DecisionIr {
    DecisionIr { action, reason: "R".into(), span: sp(200) }
}

fn retry() -> DecisionIr {
    dec(ActionIr::Retry(RetryIr { strategy: None, backoff: None, jitter: Jitter::None }))
}

fn escalate() -> DecisionIr {
    dec(ActionIr::Escalate { queue: None })
}

fn fallback(model: &str) -> DecisionIr {
    dec(ActionIr::Fallback { model: model.into(), strategy: None })
}

fn when(p: &mut CheckedPolicy, guard: Option<Cond>, d: DecisionIr) {
    let n = p.recover.len();
    p.recover.push(RecoverIr { guard, decision: d, span: sp(1000 + n * 10) });
}

fn classify(p: &mut CheckedPolicy, guard: Option<Cond>, class: &str) {
    let n = p.classify.len();
    p.classify.push(ClassifyIr { guard, class: class.into(), span: sp(500 + n * 10) });
}

fn compiled(p: CheckedPolicy) -> (CompiledPolicy, Vec<Diagnostic>) {
    let mut d = Vec::new();
    let c = compile(p, &mut d);
    (c, d)
}

fn codes(d: &[Diagnostic]) -> Vec<&'static str> {
    d.iter().map(|d| d.code.as_str()).collect()
}

fn facts<'a>(kv: &[(&str, Fact<'a>)]) -> Facts<'a> {
    let mut f = Facts::default();
    for (k, v) in kv {
        f.set(k, *v);
    }
    f
}

// ---------- lowering ----------

#[test]
fn negation_is_pushed_to_atoms_by_de_morgan() {
    let mut p = base();
    // not (class == timeout and attempt < 3)  ==  class != timeout  or  attempt >= 3
    when(&mut p, Some(not(and(vec![sym("class", "timeout"), cmp("attempt", Ord::Lt, 3.0)]))), escalate());
    when(&mut p, None, retry());
    let (c, _) = compiled(p);
    let rows: Vec<&Row> = c.tables.recover.iter().filter(|r| r.rule == 0).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let text = c.to_text(None);
    assert!(text.contains("!{timeout}"), "{text}");
    assert!(text.contains("[3,inf) <missing>"), "{text}");
}

#[test]
fn or_on_one_field_is_one_row_and_products_multiply() {
    let mut p = base();
    when(&mut p, Some(or(vec![sym("class", "timeout"), sym("class", "rate_limited")])), retry());
    when(
        &mut p,
        Some(and(vec![
            or(vec![str_eq("error.code", "a"), str_eq("error.type", "b")]),
            or(vec![str_eq("error.code", "c"), str_eq("error.type", "d")]),
        ])),
        retry(),
    );
    let (c, _) = compiled(p);
    assert_eq!(c.tables.recover.iter().filter(|r| r.rule == 0).count(), 1);
    // (a or b) and (c or d): code==a and code==c is empty; 2 rows survive
    assert_eq!(c.tables.recover.iter().filter(|r| r.rule == 1).count(), 2);
}

#[test]
fn too_many_rows_is_an_error_not_a_blow_up() {
    let mut p = base();
    let factors: Vec<Cond> = (0..12)
        .map(|i| or(vec![str_eq(&format!("metadata.a{i}"), "x"), str_eq(&format!("metadata.b{i}"), "y")]))
        .collect();
    when(&mut p, Some(and(factors)), retry());
    when(&mut p, None, escalate());
    let (_, d) = compiled(p);
    assert_eq!(codes(&d), vec!["RCV401"]);
    assert_eq!(d[0].span(), sp(1000));
}

// ---------- evaluation ----------

#[test]
fn first_match_wins_and_absent_fields_satisfy_only_negations() {
    let mut p = base();
    p.budget.attempts = Some(4);
    when(&mut p, Some(cmp("attempt", Ord::Lt, 3.0)), retry());
    when(&mut p, Some(not(str_eq("error.code", "x"))), fallback("backup"));
    when(&mut p, None, escalate());
    let (c, d) = compiled(p);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let hit = |f: &Facts| c.recover(f).map(|h| h.rule);
    assert_eq!(hit(&facts(&[("attempt", Fact::Num(1.0))])), Some(0));
    // attempt missing: `<` is false; error.code missing: `!=` is true
    assert_eq!(hit(&facts(&[])), Some(1));
    assert_eq!(hit(&facts(&[("attempt", Fact::Num(3.0)), ("error.code", Fact::Str("y"))])), Some(1));
    assert_eq!(hit(&facts(&[("attempt", Fact::Num(3.0)), ("error.code", Fact::Str("x"))])), Some(2));
    // NaN counts as missing
    assert_eq!(hit(&facts(&[("attempt", Fact::Num(f64::NAN)), ("error.code", Fact::Str("x"))])), Some(2));
}

/// The checker only parses regexes; a pattern that parses but is too
/// large to compile is the compiler's to report.
#[test]
fn a_regex_too_large_to_compile_is_reported() {
    let mut p = base();
    classify(&mut p, Some(re("error.message", "(?i)a{1000}{1000}")), "timeout");
    let (_, d) = compiled(p);
    assert_eq!(codes(&d), vec!["RCV203"]);
    assert!(d[0].message.contains("too large"), "{}", d[0].message);
}

#[test]
fn enums_strings_regexes_metadata_and_ordered_risk() {
    let mut p = base();
    classify(&mut p, Some(and(vec![cmp("risk", Ord::Ge, 2.0), truthy("tool.side_effects")])), "auth_failed");
    classify(&mut p, Some(re("error.message", "(?i)timed? ?out")), "timeout");
    classify(&mut p, Some(str_eq("metadata.tenant", "acme")), "rate_limited");
    classify(&mut p, Some(syms("model", &["backup"])), "rate_limited");
    let (c, _) = compiled(p);
    let class = |f: &Facts| c.classify(f).map(|h| c.source.classify[h.rule].class.clone());
    let f = facts(&[("risk", Fact::Str("critical")), ("tool.side_effects", Fact::Bool(true))]);
    assert_eq!(class(&f).as_deref(), Some("auth_failed"));
    let f = facts(&[("risk", Fact::Str("medium")), ("tool.side_effects", Fact::Bool(true))]);
    assert_eq!(class(&f), None);
    let f = facts(&[("error.message", Fact::Str("Request Timed Out"))]);
    assert_eq!(class(&f).as_deref(), Some("timeout"));
    let meta: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"tenant": "acme", "n": 3}"#).unwrap();
    let f = Facts { metadata: Some(&meta), ..Facts::default() };
    assert_eq!(class(&f).as_deref(), Some("rate_limited"));
    // an undeclared model is <other>
    assert_eq!(class(&facts(&[("model", Fact::Str("gpt-9"))])), None);
    assert_eq!(class(&facts(&[("model", Fact::Str("backup"))])).as_deref(), Some("rate_limited"));
}

#[test]
fn violated_invariants_checks_quantifier_and_guard() {
    let mut p = base();
    when(&mut p, None, escalate());
    p.invariants.push(InvariantIr {
        text: "no retried side effects".into(),
        quantifier: crate::syntax::ast::Quantifier::Never,
        actions: vec![ActionKind::Retry],
        guard: truthy("tool.side_effects"),
        span: sp(3000),
    });
    p.invariants.push(InvariantIr {
        text: "critical goes to humans".into(),
        quantifier: crate::syntax::ast::Quantifier::Always,
        actions: vec![ActionKind::Escalate],
        guard: sym("risk", "critical"),
        span: sp(3100),
    });
    let (c, d) = compiled(p);
    assert!(d.is_empty(), "{d:?}");
    let f = facts(&[("tool.side_effects", Fact::Bool(true)), ("risk", Fact::Str("critical"))]);
    assert_eq!(c.violated_invariants(&f, ActionKind::Retry), vec![0, 1]);
    assert_eq!(c.violated_invariants(&f, ActionKind::Escalate), Vec::<usize>::new());
    assert_eq!(c.violated_invariants(&facts(&[]), ActionKind::Retry), Vec::<usize>::new());
}

// ---------- analysis ----------

#[test]
fn recover_gap_is_reported_with_a_concrete_example() {
    let mut p = base();
    p.budget.attempts = Some(5);
    when(&mut p, Some(and(vec![sym("class", "timeout"), cmp("attempt", Ord::Lt, 3.0)])), retry());
    when(&mut p, Some(syms("class", &["auth_failed", "rate_limited"])), escalate());
    let (_, d) = compiled(p);
    assert_eq!(codes(&d), vec!["RCV402"], "{d:#?}");
    let notes = d[0].notes.join("\n");
    assert!(notes.contains("`class == timeout and attempt >= 3`"), "{notes}");
    assert!(notes.contains("e.g. `class = timeout, attempt = 3`"), "{notes}");
    assert_eq!(d[0].span(), sp(1010), "labels the last rule");
}

#[test]
fn classify_gap_is_a_warning_and_otherwise_closes_it() {
    let mut p = base();
    classify(&mut p, Some(cmp("error.http_status", Ord::Ge, 500.0)), "timeout");
    classify(&mut p, Some(atom("error.http_status", Test::Present)), "rate_limited");
    let (_, d) = compiled(p.clone());
    assert_eq!(codes(&d), vec!["RCV403"]);
    assert!(d[0].notes[0].contains("`not has error.http_status`"), "{:?}", d[0].notes);
    assert!(!d[0].is_error());
    classify(&mut p, None, "auth_failed");
    let (_, d) = compiled(p);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn shadowed_rule_names_its_coverers() {
    let mut p = base();
    p.budget.attempts = Some(4);
    when(&mut p, Some(and(vec![sym("class", "timeout"), cmp("attempt", Ord::Lt, 3.0)])), retry());
    when(&mut p, Some(and(vec![sym("class", "rate_limited"), cmp("attempt", Ord::Lt, 3.0)])), retry());
    when(&mut p, Some(sym("class", "auth_failed")), escalate());
    // covered by rules 1 and 2 together
    when(
        &mut p,
        Some(and(vec![syms("class", &["timeout", "rate_limited"]), cmp("attempt", Ord::Le, 1.0)])),
        escalate(),
    );
    when(&mut p, None, escalate());
    let (_, d) = compiled(p);
    assert_eq!(codes(&d), vec!["RCV404"], "{d:#?}");
    assert_eq!(d[0].span(), sp(1030));
    let labelled: Vec<Span> = d[0].labels.iter().skip(1).map(|l| l.span).collect();
    assert_eq!(labelled, vec![sp(1000), sp(1010)]);
    assert!(d[0].help.as_deref().unwrap_or("").contains("rules 1, 2"));
}

#[test]
fn literal_decides_a_regex_on_the_same_field() {
    let mut p = base();
    classify(&mut p, Some(re("error.code", "^rate$")), "rate_limited");
    classify(&mut p, Some(str_eq("error.code", "rate")), "timeout");
    classify(&mut p, None, "auth_failed");
    let (_, d) = compiled(p);
    // `error.code == "rate"` always matches `/^rate$/`: rule 2 never fires
    assert_eq!(codes(&d), vec!["RCV404"], "{d:#?}");
    assert_eq!(d[0].span(), sp(510));
}

#[test]
fn impossible_condition_is_reported() {
    let mut p = base();
    when(&mut p, Some(cmp("attempt", Ord::Lt, 1.0)), retry());
    when(&mut p, None, escalate());
    let (_, d) = compiled(p);
    assert_eq!(codes(&d), vec!["RCV405"]);
}

#[test]
fn unbounded_retry_is_an_error_until_something_bounds_it() {
    let mut p = base();
    when(&mut p, Some(sym("class", "timeout")), retry());
    when(&mut p, None, escalate());
    let (c, d) = compiled(p.clone());
    assert_eq!(codes(&d), vec!["RCV406"]);
    assert_eq!(d[0].span(), sp(1000));
    assert_eq!(c.max_decisions(), None);

    // an engine cap bounds it
    let mut capped = p.clone();
    capped.budget.attempts = Some(4);
    let (c, d) = compiled(capped);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c.max_decisions(), Some(4));

    // so does an attempt guard, in this row or through an earlier rule
    let mut guarded = base();
    when(&mut guarded, Some(cmp("attempt", Ord::Ge, 3.0)), escalate());
    when(&mut guarded, None, retry());
    let (c, d) = compiled(guarded);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c.max_decisions(), Some(3));

    // a cap whose decision starts another attempt does not end the request
    let mut loops = p;
    loops.budget.attempts = Some(4);
    loops.budget.exhausted = Some(fallback("backup"));
    let (_, d) = compiled(loops);
    assert_eq!(codes(&d), vec!["RCV406"]);
}

#[test]
fn fallback_away_from_a_model_fires_once() {
    let mut p = base();
    when(&mut p, Some(sym("model", "primary")), fallback("backup"));
    when(&mut p, None, escalate());
    let (c, d) = compiled(p.clone());
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c.max_decisions(), Some(2));
    // a way back to `primary` makes it a loop
    when(&mut p, Some(sym("model", "backup")), fallback("primary"));
    p.recover.swap(1, 2);
    let (_, d) = compiled(p);
    assert!(codes(&d).contains(&"RCV406"), "{d:?}");
}

#[test]
fn resets_and_class_attempts_bound_their_rows() {
    let mut p = base();
    classify(&mut p, Some(str_eq("error.code", "t")), "timeout");
    classify(&mut p, Some(str_eq("error.code", "r")), "rate_limited");
    classify(&mut p, None, "auth_failed");
    let reset_then_retry = dec(ActionIr::Reset {
        scope: crate::syntax::ast::ResetScope::Context,
        prompt: None,
        then: Box::new(ActionIr::Retry(RetryIr { strategy: None, backoff: None, jitter: Jitter::None })),
    });
    when(&mut p, Some(and(vec![sym("class", "timeout"), cmp("resets", Ord::Lt, 1.0)])), reset_then_retry);
    when(&mut p, Some(and(vec![sym("class", "rate_limited"), cmp("class_attempts", Ord::Le, 2.0)])), retry());
    when(&mut p, None, escalate());
    let (c, d) = compiled(p.clone());
    assert!(d.is_empty(), "{d:?}");
    // 1 reset + 2 rate-limited retries + the final decision
    assert_eq!(c.max_decisions(), Some(4));

    // unclassified failures do not reach a rule that needs a class
    p.classify.pop();
    let (c, d) = compiled(p.clone());
    assert_eq!(c.max_decisions(), Some(4), "{d:?}");

    // but they have `class_attempts` 0: a guard on it alone bounds nothing,
    // nor does the class cap...
    let mut capped = p.clone();
    capped.recover[1].guard = Some(cmp("class_attempts", Ord::Le, 2.0));
    capped.budget.class_attempts = Some(3);
    let (c, _) = compiled(capped.clone());
    assert_eq!(c.max_decisions(), None);
    // ...but it does when every failure gets a class: 3 classes x 2
    classify(&mut capped, None, "auth_failed");
    capped.recover[1].guard = None;
    capped.recover.truncate(2);
    let (c, d) = compiled(capped);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c.max_decisions(), Some(7));
}

#[test]
fn invariant_violation_has_a_counterexample() {
    let mut p = base();
    p.budget.attempts = Some(3);
    when(
        &mut p,
        Some(and(vec![cmp("risk", Ord::Ge, 2.0), truthy("tool.side_effects"), sym("class", "auth_failed")])),
        escalate(),
    );
    when(&mut p, None, retry());
    p.invariants.push(InvariantIr {
        text: "no retried side effects".into(),
        quantifier: crate::syntax::ast::Quantifier::Never,
        actions: vec![ActionKind::Retry],
        guard: and(vec![cmp("risk", Ord::Ge, 2.0), truthy("tool.side_effects")]),
        span: sp(3000),
    });
    let (_, d) = compiled(p.clone());
    assert_eq!(codes(&d), vec!["RCV407"], "{d:#?}");
    assert_eq!(d[0].span(), sp(1010));
    assert_eq!(d[0].labels[1].span, sp(3000));
    let note = &d[0].notes[0];
    // the counterexample avoids rule 1: its class is not auth_failed
    assert!(note.contains("risk = high") && note.contains("tool.side_effects = true"), "{note}");
    assert!(note.contains("class = timeout"), "{note}");

    // an always-invariant broken by a retry
    let mut q = p;
    q.invariants[0].quantifier = crate::syntax::ast::Quantifier::Always;
    q.invariants[0].actions = vec![ActionKind::Escalate];
    let (_, d) = compiled(q);
    assert_eq!(codes(&d), vec!["RCV407"]);
}

#[test]
fn engine_decisions_that_may_break_an_invariant_are_warnings() {
    let mut p = base();
    p.budget.attempts = Some(3);
    p.budget.cost = Some(1.0);
    p.budget.exhausted = Some(fallback("backup"));
    when(&mut p, Some(cmp("attempt", Ord::Lt, 3.0)), retry());
    when(&mut p, None, escalate());
    p.invariants.push(InvariantIr {
        text: "pinned model when critical".into(),
        quantifier: crate::syntax::ast::Quantifier::Never,
        actions: vec![ActionKind::Fallback],
        guard: sym("risk", "critical"),
        span: sp(3000),
    });
    let (_, d) = compiled(p.clone());
    assert_eq!(codes(&d), vec!["RCV408"], "{d:#?}");
    assert!(!d[0].is_error());
    assert_eq!(d[0].labels[1].span, sp(1000), "names the rule whose retry it replaces");
    assert!(d[0].notes[0].contains("risk = critical"), "{:?}", d[0].notes);

    // critical requests never reach a non-terminal rule: no cap can fire for them
    p.recover.insert(0, RecoverIr { guard: Some(sym("risk", "critical")), decision: escalate(), span: sp(990) });
    let (_, d) = compiled(p.clone());
    assert!(d.is_empty(), "{d:#?}");

    // a breaker that falls back replaces retries while it is open
    p.recover.remove(0);
    p.budget.exhausted = None;
    p.fleet.breaker = Some(BreakerIr {
        failures: 5,
        window_ms: 30_000.0,
        cooldown_ms: 60_000.0,
        decision: fallback("backup"),
        span: sp(4000),
    });
    let (_, d) = compiled(p);
    assert_eq!(codes(&d), vec!["RCV408"], "{d:#?}");
    assert_eq!(d[0].span(), sp(4000));
}

#[test]
fn wide_policies_stop_with_a_warning() {
    let mut p = base();
    // 18 rules over distinct pairs of fields: the uncovered space splits in
    // two with every rule, past the region limit
    for i in 0..18 {
        classify(
            &mut p,
            Some(and(vec![str_eq(&format!("metadata.a{i}"), "x"), str_eq(&format!("metadata.b{i}"), "y")])),
            "timeout",
        );
    }
    let (_, d) = compiled(p);
    assert_eq!(codes(&d), vec!["RCV409"], "{d:#?}");
    assert!(d[0].message.contains("gaps in `classify`"), "{}", d[0].message);
}

/// A generated 1,000-rule policy compiles and is fully analysed.
#[test]
fn thousand_rules_compile_and_analyse() {
    let p = wide_policy(1000);
    let start = std::time::Instant::now();
    let (c, d) = compiled(p);
    let took = start.elapsed();
    assert_eq!(c.tables.recover.len(), 1251, "or-rules give two rows");
    assert!(d.iter().all(|d| d.code != Code::AnalysisIncomplete), "{d:?}");
    assert_eq!(c.max_decisions(), Some(4));
    eprintln!("1000 rules: compile + analysis in {took:?}");
}

/// Rules over distinct error codes, classes and attempt bounds, plus
/// regexes on the message, ending with `otherwise`.
pub(crate) fn wide_policy(n: usize) -> CheckedPolicy {
    let mut p = base();
    p.budget.attempts = Some(4);
    let classes = ["timeout", "rate_limited", "auth_failed"];
    for i in 0..n {
        let class = classes[i % 3];
        let guard = match i % 4 {
            0 => {
                and(vec![sym("class", class), str_eq("error.code", &format!("code_{i}")), cmp("attempt", Ord::Lt, 3.0)])
            }
            1 => and(vec![str_eq("error.type", &format!("type_{i}")), cmp("error.http_status", Ord::Ge, 500.0)]),
            2 => and(vec![sym("class", class), re("error.message", &format!("fail{i}"))]),
            _ => or(vec![str_eq("error.code", &format!("c_{i}")), str_eq("metadata.tenant", &format!("t{i}"))]),
        };
        let d = if i % 2 == 0 { retry() } else { escalate() };
        when(&mut p, Some(guard), d);
        classify(&mut p, Some(str_eq("error.code", &format!("k{i}"))), class);
    }
    when(&mut p, None, escalate());
    classify(&mut p, None, "timeout");
    p
}

// ---------- hash ----------

fn respan(c: &mut Cond, by: usize) {
    match c {
        Cond::And(cs) | Cond::Or(cs) => cs.iter_mut().for_each(|c| respan(c, by)),
        Cond::Not(c) => respan(c, by),
        Cond::Atom(a) => a.span = Span::new(a.span.start + by, a.span.end + by),
        Cond::True => {}
    }
}

#[test]
fn hash_ignores_spans_and_tracks_meaning() {
    let mut p = base();
    p.budget.attempts = Some(3);
    when(&mut p, Some(and(vec![sym("class", "timeout"), str_eq("error.code", "x")])), retry());
    when(&mut p, None, escalate());
    let (a, _) = compiled(p.clone());
    assert!(a.hash.starts_with("sha256:") && a.hash.len() == 7 + 64, "{}", a.hash);

    let mut moved = p.clone();
    for r in &mut moved.recover {
        r.span = Span::new(r.span.start + 7, r.span.end + 9);
        r.decision.span = Span::new(0, 0);
        if let Some(g) = &mut r.guard {
            respan(g, 13);
        }
    }
    for c in moved.classes.values_mut() {
        c.span = Span::new(99, 100);
    }
    moved.budget.span = Some(Span::new(5, 6));
    let (b, _) = compiled(moved);
    assert_eq!(a.hash, b.hash);

    let mut changed = p.clone();
    if let Some(Cond::And(cs)) = &mut changed.recover[0].guard {
        cs[1] = str_eq("error.code", "y");
    }
    let (c, _) = compiled(changed);
    assert_ne!(a.hash, c.hash);

    let mut budget = p;
    budget.budget.attempts = Some(4);
    let (d, _) = compiled(budget);
    assert_ne!(a.hash, d.hash);
}

#[test]
fn views_serialise_to_json_and_yaml() {
    let mut p = base();
    p.budget.attempts = Some(3);
    when(&mut p, Some(cmp("latency", Ord::Ge, 1500.0)), retry());
    when(&mut p, None, escalate());
    let (c, _) = compiled(p);
    let v = c.view(None);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["recover"][0]["when"]["latency"], "[1500ms,inf)");
    assert_eq!(json["recover"][0]["then"]["kind"], "retry");
    assert_eq!(json["max_decisions"], 3);
    let yaml = yaml_serde::to_string(&v).unwrap();
    assert!(yaml.contains("latency: '[1500ms,inf)'") || yaml.contains("latency: \"[1500ms,inf)\""), "{yaml}");
    // the compiled policy itself serialises (infinite bounds as text)
    let whole = serde_json::to_string(&c).unwrap();
    assert!(whole.contains("\"[1500,inf)\""), "{whole}");
}

#[test]
fn recover_sees_only_the_classes_classify_assigns() {
    let mut p = base();
    p.budget.attempts = Some(3);
    classify(&mut p, Some(cmp("error.http_status", Ord::Ge, 500.0)), "timeout");
    classify(&mut p, None, "rate_limited");
    when(&mut p, Some(sym("class", "timeout")), retry());
    when(&mut p, Some(sym("class", "rate_limited")), escalate());
    // `auth_failed` is declared but never assigned: no gap for it
    let (_, d) = compiled(p.clone());
    assert!(d.is_empty(), "{d:#?}");

    // without `otherwise`, some events get no class: recover must handle a missing class
    p.classify.pop();
    let (_, d) = compiled(p);
    // (`rate_limited` is no longer assigned: the checker reports that, not RCV405)
    assert_eq!(codes(&d), vec!["RCV403", "RCV402"], "{d:#?}");
    assert!(d[1].notes[0].contains("`not has class`"), "{:?}", d[1].notes);
}

// ---------- properties: the table is exact, the analyses are sound ----------

mod props {
    use super::*;
    use proptest::prelude::*;

    /// The IR's semantics, directly: a missing field satisfies no test.
    fn holds(c: &Cond, f: &Facts) -> bool {
        match c {
            Cond::True => true,
            Cond::Or(cs) => cs.iter().any(|c| holds(c, f)),
            Cond::And(cs) => cs.iter().all(|c| holds(c, f)),
            Cond::Not(c) => !holds(c, f),
            Cond::Atom(a) => atom_holds(a, f.lookup(&a.path)),
        }
    }

    fn value_eq(v: &Value, x: Fact) -> bool {
        match (v, x) {
            (Value::Str(s) | Value::Sym(s), Fact::Str(x)) => s == x,
            (Value::Num(n), Fact::Num(x)) => *n == x,
            (Value::Bool(b), Fact::Bool(x)) => *b == x,
            _ => false,
        }
    }

    fn atom_holds(a: &Atom, v: Fact) -> bool {
        let cmp = |op: Ord, n: f64, x: f64| match op {
            Ord::Lt => x < n,
            Ord::Le => x <= n,
            Ord::Gt => x > n,
            Ord::Ge => x >= n,
        };
        match (&a.test, v) {
            (_, Fact::Absent) => false,
            (Test::Present, _) => true,
            (Test::IsTrue, Fact::Bool(b)) => b,
            (Test::Eq(val), x) => value_eq(val, x),
            (Test::In(vals), x) => vals.iter().any(|val| value_eq(val, x)),
            (Test::Cmp(op, n), Fact::Num(x)) => cmp(*op, *n, x),
            (Test::Cmp(op, n), Fact::Str(level)) => {
                crate::schema::RISK_LEVELS.iter().position(|l| *l == level).is_some_and(|i| cmp(*op, *n, i as f64))
            }
            (Test::Matches(p), Fact::Str(x)) => regex::Regex::new(p).unwrap().is_match(x),
            _ => false,
        }
    }

    fn atoms() -> Vec<Cond> {
        let mut v = vec![
            sym("class", "timeout"),
            syms("class", &["timeout", "auth_failed"]),
            str_eq("error.code", "a"),
            atom("error.code", Test::In(vec![Value::Str("a".into()), Value::Str("b".into())])),
            atom("error.code", Test::Present),
            truthy("tool.side_effects"),
            atom("tool.side_effects", Test::Eq(Value::Bool(false))),
            re("error.message", "timed? ?out"),
            re("error.message", "^a"),
            cmp("risk", Ord::Ge, 2.0),
            sym("risk", "low"),
            atom("attempt", Test::Eq(Value::Num(3.0))),
            atom("attempt", Test::In(vec![Value::Num(1.0), Value::Num(4.0)])),
        ];
        for op in [Ord::Lt, Ord::Le, Ord::Gt, Ord::Ge] {
            v.push(cmp("attempt", op, 2.0));
            v.push(cmp("attempt", op, 3.5));
            v.push(cmp("output.confidence", op, 0.7));
        }
        v
    }

    fn cond() -> impl Strategy<Value = Cond> {
        let leaf = prop::sample::select(atoms());
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(Cond::And),
                prop::collection::vec(inner.clone(), 1..4).prop_map(Cond::Or),
                inner.prop_map(|c| Cond::Not(Box::new(c))),
            ]
        })
    }

    /// Values drawn from what the policy mentions, neighbours, and missing.
    /// `universe` keeps to what events carry (a class, an attempt >= 1,
    /// a confidence in 0..1).
    fn facts(universe: bool) -> impl Strategy<Value = Vec<(&'static str, Fact<'static>)>> {
        let opt = |xs: Vec<Fact<'static>>, missing: bool| {
            let mut xs = xs;
            if missing {
                xs.push(Fact::Absent);
            }
            prop::sample::select(xs)
        };
        let s = Fact::Str;
        (
            opt(vec![s("timeout"), s("rate_limited"), s("auth_failed")], !universe),
            opt((if universe { 1..6 } else { 0..6 }).map(|n| Fact::Num(n as f64)).collect(), !universe),
            opt(vec![s("a"), s("b"), s("zzz")], true),
            opt(vec![Fact::Num(0.0), Fact::Num(0.5), Fact::Num(0.7), Fact::Num(0.9), Fact::Num(1.0)], true),
            opt(vec![Fact::Bool(true), Fact::Bool(false)], true),
            opt(vec![s("request timed out"), s("a timeout"), s("abc"), s("other")], true),
            opt(vec![s("low"), s("medium"), s("high"), s("critical")], true),
        )
            .prop_map(|(class, attempt, code, conf, side, msg, risk)| {
                vec![
                    ("class", class),
                    ("attempt", attempt),
                    ("error.code", code),
                    ("output.confidence", conf),
                    ("tool.side_effects", side),
                    ("error.message", msg),
                    ("risk", risk),
                ]
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn table_agrees_with_the_condition(c in cond(), kv in facts(false)) {
            let mut p = base();
            p.budget.attempts = Some(3);
            classify(&mut p, Some(c.clone()), "timeout");
            p.accept.push(AcceptIr { require: c.clone(), decision: escalate(), span: sp(2000) });
            let (compiled, _) = compiled(p);
            let f = facts_of(&kv);
            let expected = holds(&c, &f);
            prop_assert_eq!(compiled.classify(&f).is_some(), expected);
            prop_assert_eq!(compiled.accept(&f).is_some(), !expected, "accept fires where the requirement fails");
        }

        #[test]
        fn analyses_are_sound(guards in prop::collection::vec((cond(), any::<bool>()), 1..5),
                              with_otherwise in any::<bool>(), inv in cond(),
                              events in prop::collection::vec(facts(true), 40)) {
            let mut p = base();
            p.budget.attempts = Some(3);
            for (g, retries) in &guards {
                when(&mut p, Some(g.clone()), if *retries { retry() } else { escalate() });
            }
            if with_otherwise {
                when(&mut p, None, escalate());
            }
            p.invariants.push(InvariantIr {
                text: "i".into(),
                quantifier: crate::syntax::ast::Quantifier::Never,
                actions: vec![ActionKind::Retry],
                guard: inv.clone(),
                span: sp(3000),
            });
            let (compiled, d) = compiled(p);
            let gap = d.iter().any(|d| d.code == Code::RecoverGap);
            let violated = d.iter().any(|d| d.code == Code::InvariantViolated);
            let incomplete = d.iter().any(|d| d.code == Code::AnalysisIncomplete);
            let never: Vec<usize> = d
                .iter()
                .filter(|d| matches!(d.code, Code::ShadowedRule | Code::UnreachableRule))
                .filter_map(|d| compiled.source.recover.iter().position(|r| r.span == d.span()))
                .collect();
            for kv in &events {
                let f = facts_of(kv);
                let hit = compiled.recover(&f);
                if !gap && !incomplete {
                    prop_assert!(hit.is_some(), "no gap reported, yet {kv:?} matches no rule; {d:#?}");
                }
                if let Some(h) = hit {
                    prop_assert!(!never.contains(&h.rule), "rule {} reported as never firing fires on {kv:?}", h.rule + 1);
                    let retries = compiled.source.recover[h.rule].decision.action.kind() == ActionKind::Retry;
                    if retries && holds(&inv, &f) && !incomplete {
                        prop_assert!(violated, "rule {} retries on {kv:?} where the invariant forbids it; {d:#?}", h.rule + 1);
                    }
                }
            }
        }
    }

    fn facts_of<'a>(kv: &[(&str, Fact<'a>)]) -> Facts<'a> {
        let mut f = Facts::default();
        for (k, v) in kv {
            f.set(k, *v);
        }
        f
    }
}

#[test]
fn compiled_policies_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledPolicy>();
}

/// Without `otherwise`, the gap passes of a wide policy run into their
/// bounds and stop with RCV409 instead of running long.
#[test]
fn thousand_rules_without_otherwise_stay_bounded() {
    let mut p = wide_policy(1000);
    p.recover.pop();
    p.classify.pop();
    let start = std::time::Instant::now();
    let (_, d) = compiled(p);
    let took = start.elapsed();
    assert!(d.iter().any(|d| d.code == Code::AnalysisIncomplete || d.code == Code::RecoverGap), "{d:?}");
    eprintln!("1000 rules without otherwise: {took:?}; {:?}", codes(&d));
    let note = d.iter().find(|d| d.code == Code::ClassifyGap).map(|d| d.notes.join("\n")).unwrap_or_default();
    assert!(note.contains("\"k7\", ... 992 more}"), "long lists are summarised: {note}");
}

/// `diagnostics` (what `rcv check` runs) reports exactly what `build` does,
/// on every diagnostic fixture and both bundled policies.
#[test]
fn diagnostics_alone_match_a_full_build() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("tests/diagnostics"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rcv"))
        .collect();
    files.extend([root.join("policies/tool_chain.rcv"), root.join("policies/default.rcv")]);
    assert!(files.len() > 30);
    for path in files {
        let (source, _) = Source::from_bytes(path.display().to_string(), std::fs::read(&path).unwrap());
        let full = build(&source).diagnostics;
        let alone = diagnostics(&source);
        assert_eq!(format!("{alone:?}"), format!("{full:?}"), "{}", path.display());
    }
}
