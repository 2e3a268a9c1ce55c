//! Semantic diff of two compiled policies: declarations, rules matched
//! between versions, and every region of events whose decision changes.
//!
//! Regions are exact: both policies' rules are lowered over one joint
//! column set (the columns of a policy holding both rule lists), each
//! table's reachable part per rule is computed by box subtraction, and the
//! pairs of an old and a new region whose decisions differ are intersected.
//! Every region listed has a concrete example event. The work is bounded
//! ([`MAX_BOXES`], [`MAX_TESTS`]); when a bound is hit the diff says so in
//! a note and lists what it found up to then. No I/O.

use regex::Regex;
use serde::Serialize;

use super::analysis::Analyzer;
use super::columns::{ColumnKind, Columns};
use super::cube::{Cube, Space};
use super::{CompiledPolicy, lower, show};
use crate::check::CheckedPolicy;
use crate::check::ir::{ActionIr, Cond, DecisionIr};
use crate::span::{Lines, Span};

/// Boxes one table's reachability may create before it stops.
pub const MAX_BOXES: usize = 20_000;
/// Box intersections tried when pairing old and new regions.
pub const MAX_TESTS: usize = 4_000_000;
/// Boxes of one region shown as conditions.
const MAX_CONDITIONS: usize = 3;

/// One side of the diff.
#[derive(Debug, Clone, Serialize)]
pub struct SideStamp {
    pub name: String,
    pub version: String,
    pub hash: String,
}

/// A declaration added, removed or changed (`section` is `consts`,
/// `classes`, `reasons`, `models`, `strategies`, `prompts`, `budget`,
/// `fleet`, `invariants`, `gate` or `policy`).
#[derive(Debug, Clone, Serialize)]
pub struct DeclChange {
    pub section: String,
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A rule of one side: its index in its block and its 1-based line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleAt {
    pub index: usize,
    pub line: usize,
    /// The rule's first source line, trimmed.
    pub text: String,
}

/// How a rule changed between versions.
#[derive(Debug, Clone, Serialize)]
pub struct RuleChange {
    /// `classify`, `recover` or `accept`.
    pub block: String,
    /// `added`, `removed`, `moved`, `guard_changed`, `decision_changed` or `changed`.
    pub change: String,
    pub old: Option<RuleAt>,
    pub new: Option<RuleAt>,
}

/// What a side decides in a region.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The rule, or `None` where no rule matches (an unclassified event, an
    /// accepted output).
    pub rule: Option<RuleAt>,
    /// The decision (or class) in policy syntax.
    pub decision: String,
}

/// A region of events whose decision changes.
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    pub block: String,
    /// Up to three boxes of the region as conditions.
    pub conditions: Vec<String>,
    /// Boxes the region is made of.
    pub boxes: usize,
    /// A concrete event in the region.
    pub example: String,
    /// What changes: `class`, `action`, `model`, `strategy`, `reason`,
    /// `delay`, `queue`, `prompt`.
    pub changes: Vec<String>,
    pub old: Outcome,
    pub new: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyDiff {
    pub old: SideStamp,
    pub new: SideStamp,
    /// The hashes differ.
    pub semantic_change: bool,
    pub declarations: Vec<DeclChange>,
    pub rules: Vec<RuleChange>,
    pub regions: Vec<Region>,
    /// Bounds hit and other caveats.
    pub notes: Vec<String>,
}

/// A rule as matching sees it: guard key, decision text, span.
type Keyed = (String, String, Span);
type SamePred = fn(&Keyed, &Keyed) -> bool;

/// One side as the diff needs it.
pub struct Side<'a> {
    pub policy: &'a CompiledPolicy,
    pub text: &'a str,
}

/// Diffs two policies.
pub fn diff(old: Side<'_>, new: Side<'_>) -> PolicyDiff {
    let stamp =
        |p: &CompiledPolicy| SideStamp { name: p.name.clone(), version: p.version.clone(), hash: p.hash.clone() };
    let mut out = PolicyDiff {
        old: stamp(old.policy),
        new: stamp(new.policy),
        semantic_change: old.policy.hash != new.policy.hash,
        declarations: Vec::new(),
        rules: Vec::new(),
        regions: Vec::new(),
        notes: Vec::new(),
    };
    if !out.semantic_change {
        return out;
    }
    let (o, n) = (&old.policy.source, &new.policy.source);
    out.declarations = declarations(o, n);
    let (ol, nl) = (Lines::new(old.text), Lines::new(new.text));
    let old_at = |span: Span, index: usize| rule_at(old.text, &ol, span, index);
    let new_at = |span: Span, index: usize| rule_at(new.text, &nl, span, index);

    // rules
    let keys = |rules: Vec<(Option<&Cond>, String, Span)>| -> Vec<Keyed> {
        rules.into_iter().map(|(g, d, s)| (guard_key(g), d, s)).collect()
    };
    let blocks: [(&str, Vec<Keyed>, Vec<Keyed>); 3] = [
        (
            "classify",
            keys(o.classify.iter().map(|r| (r.guard.as_ref(), r.class.clone(), r.span)).collect()),
            keys(n.classify.iter().map(|r| (r.guard.as_ref(), r.class.clone(), r.span)).collect()),
        ),
        (
            "recover",
            keys(o.recover.iter().map(|r| (r.guard.as_ref(), show::decision(&r.decision), r.span)).collect()),
            keys(n.recover.iter().map(|r| (r.guard.as_ref(), show::decision(&r.decision), r.span)).collect()),
        ),
        (
            "accept",
            keys(o.accept.iter().map(|r| (Some(&r.require), show::decision(&r.decision), r.span)).collect()),
            keys(n.accept.iter().map(|r| (Some(&r.require), show::decision(&r.decision), r.span)).collect()),
        ),
    ];
    for (block, a, b) in &blocks {
        for (change, i, j) in match_rules(a, b) {
            out.rules.push(RuleChange {
                block: block.to_string(),
                change: change.to_string(),
                old: i.and_then(|i| a.get(i).map(|r| old_at(r.2, i))),
                new: j.and_then(|j| b.get(j).map(|r| new_at(r.2, j))),
            });
        }
    }

    // regions over the joint columns
    let joint = joint_policy(o, n);
    let cols = Columns::discover(&joint);
    let regexes: Vec<Option<Regex>> = cols
        .list
        .iter()
        .map(|c| match &c.kind {
            ColumnKind::Matches { pattern } => {
                regex::RegexBuilder::new(pattern).size_limit(super::REGEX_SIZE_LIMIT).build().ok()
            }
            _ => None,
        })
        .collect();
    let exact = Space::exact(cols.list.iter().map(|c| c.shape()).collect());
    let space = Space {
        shapes: cols.list.iter().map(|c| c.shape()).collect(),
        top: cols.list.iter().map(|c| c.universe.clone()).collect(),
    };
    let analyzer = Analyzer::new(&joint, &cols, &regexes);
    let ctx = Ctx { cols: &cols, exact: &exact, space: &space, analyzer: &analyzer };

    let classify = |p: &CheckedPolicy| -> Vec<Rule> {
        let mut v: Vec<Rule> = p
            .classify
            .iter()
            .map(|r| Rule {
                cond: r.guard.clone(),
                negate: false,
                decision: RuleDecision::Class(r.class.clone()),
                span: Some(r.span),
            })
            .collect();
        v.push(Rule { cond: None, negate: false, decision: RuleDecision::Class("(no class)".into()), span: None });
        v
    };
    let recover = |p: &CheckedPolicy| -> Vec<Rule> {
        let mut v: Vec<Rule> = p
            .recover
            .iter()
            .map(|r| Rule {
                cond: r.guard.clone(),
                negate: false,
                decision: RuleDecision::Decision(r.decision.clone()),
                span: Some(r.span),
            })
            .collect();
        v.push(Rule {
            cond: None,
            negate: false,
            decision: RuleDecision::Class("(no rule: escalate, reason no_rule_matched)".into()),
            span: None,
        });
        v
    };
    let accept = |p: &CheckedPolicy| -> Vec<Rule> {
        let mut v: Vec<Rule> = p
            .accept
            .iter()
            .map(|r| Rule {
                cond: Some(r.require.clone()),
                negate: true,
                decision: RuleDecision::Decision(r.decision.clone()),
                span: Some(r.span),
            })
            .collect();
        v.push(Rule { cond: None, negate: false, decision: RuleDecision::Class("(accepted)".into()), span: None });
        v
    };
    let tables: [(&str, Vec<Rule>, Vec<Rule>); 3] =
        [("classify", classify(o), classify(n)), ("recover", recover(o), recover(n)), ("accept", accept(o), accept(n))];
    for (block, a, b) in &tables {
        let ra = ctx.reach(a, &mut out.notes, block, "old");
        let rb = ctx.reach(b, &mut out.notes, block, "new");
        let (Some(ra), Some(rb)) = (ra, rb) else { continue };
        // (old rule, new rule) -> boxes
        let mut pairs: Vec<((usize, usize), Vec<Cube>)> = Vec::new();
        let mut tests = 0usize;
        let mut stopped = false;
        'outer: for (i, ca) in &ra {
            for (j, cb) in &rb {
                let (Some(x), Some(y)) = (a.get(*i), b.get(*j)) else { continue };
                if x.decision.text() == y.decision.text() {
                    continue;
                }
                tests += 1;
                if tests > MAX_TESTS {
                    stopped = true;
                    break 'outer;
                }
                if let Some(cube) = space.intersect(ca, cb)
                    && analyzer.witness(&cube).is_some()
                {
                    match pairs.iter_mut().find(|(k, _)| *k == (*i, *j)) {
                        Some((_, v)) => v.push(cube),
                        None => pairs.push(((*i, *j), vec![cube])),
                    }
                }
            }
        }
        if stopped {
            out.notes.push(format!(
                "{block}: stopped after {MAX_TESTS} region comparisons; the regions listed are some of the changes, not all"
            ));
        }
        pairs.sort_by_key(|(k, _)| *k);
        for ((i, j), cubes) in pairs {
            let (Some(x), Some(y)) = (a.get(i), b.get(j)) else { continue };
            let example =
                cubes.iter().find_map(|c| analyzer.witness(c).map(|p| show::example(&cols, &p, c))).unwrap_or_default();
            let side = |r: &Rule, index: usize, old_side: bool| Outcome {
                rule: r.span.map(|s| if old_side { old_at(s, index) } else { new_at(s, index) }),
                decision: r.decision.text(),
            };
            out.regions.push(Region {
                block: block.to_string(),
                conditions: cubes.iter().take(MAX_CONDITIONS).map(|c| show::region(&cols, c, &space.top)).collect(),
                boxes: cubes.len(),
                example,
                changes: x.decision.changes(&y.decision),
                old: side(x, i, true),
                new: side(y, j, false),
            });
        }
    }
    if !o.budget_eq(n) {
        out.notes.push("budget caps changed: they override rule decisions at run time (see declarations)".into());
    }
    out
}

trait BudgetEq {
    fn budget_eq(&self, other: &Self) -> bool;
}

impl BudgetEq for CheckedPolicy {
    fn budget_eq(&self, other: &Self) -> bool {
        stripped(&self.budget) == stripped(&other.budget) && stripped(&self.fleet) == stripped(&other.fleet)
    }
}

#[derive(Clone)]
enum RuleDecision {
    Class(String),
    Decision(DecisionIr),
}

impl RuleDecision {
    fn text(&self) -> String {
        match self {
            RuleDecision::Class(c) => c.clone(),
            RuleDecision::Decision(d) => show::decision(d),
        }
    }

    fn changes(&self, other: &RuleDecision) -> Vec<String> {
        match (self, other) {
            (RuleDecision::Decision(a), RuleDecision::Decision(b)) => {
                let fa = facets(&a.action);
                let fb = facets(&b.action);
                let mut out = Vec::new();
                for (name, x, y) in [
                    ("action", &Some(fa.kind.clone()), &Some(fb.kind.clone())),
                    ("model", &fa.model, &fb.model),
                    ("strategy", &fa.strategy, &fb.strategy),
                    ("delay", &fa.delay, &fb.delay),
                    ("queue", &fa.queue, &fb.queue),
                    ("prompt", &fa.prompt, &fb.prompt),
                ] {
                    if x != y {
                        out.push(name.to_string());
                    }
                }
                if a.reason != b.reason {
                    out.push("reason".to_string());
                }
                out
            }
            (RuleDecision::Class(_), RuleDecision::Class(_)) => vec!["class".to_string()],
            _ => vec!["action".to_string()],
        }
    }
}

#[derive(Default)]
struct Facets {
    kind: String,
    model: Option<String>,
    strategy: Option<String>,
    delay: Option<String>,
    queue: Option<String>,
    prompt: Option<String>,
}

fn facets(a: &ActionIr) -> Facets {
    match a {
        ActionIr::Retry(r) => Facets {
            kind: "retry".into(),
            strategy: r.strategy.clone(),
            delay: Some(format!("{}|{}", r.backoff.as_ref().map(stripped).unwrap_or_default(), r.jitter.as_str())),
            ..Facets::default()
        },
        ActionIr::Fallback { model, strategy } => Facets {
            kind: "fallback".into(),
            model: Some(model.clone()),
            strategy: strategy.clone(),
            ..Facets::default()
        },
        ActionIr::Reset { scope, prompt, then } => {
            let inner = facets(then);
            Facets { kind: format!("reset {} then {}", scope.as_str(), inner.kind), prompt: prompt.clone(), ..inner }
        }
        ActionIr::Escalate { queue } => Facets { kind: "escalate".into(), queue: queue.clone(), ..Facets::default() },
        ActionIr::Abort => Facets { kind: "abort".into(), ..Facets::default() },
    }
}

struct Rule {
    cond: Option<Cond>,
    negate: bool,
    decision: RuleDecision,
    /// `None` for the implicit last row (no rule matched).
    span: Option<Span>,
}

struct Ctx<'a> {
    cols: &'a Columns,
    exact: &'a Space,
    space: &'a Space,
    analyzer: &'a Analyzer<'a>,
}

impl Ctx<'_> {
    /// The reachable boxes of each rule, first match wins; `None` when a
    /// bound was hit (a note says so).
    fn reach(&self, rules: &[Rule], notes: &mut Vec<String>, block: &str, side: &str) -> Option<Vec<(usize, Cube)>> {
        let mut rows: Vec<(usize, Cube)> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let lowered = match (&r.cond, r.negate) {
                (Some(c), true) => lower::negated_rows(c, self.cols, self.exact),
                (c, _) => lower::rows(c.as_ref(), self.cols, self.exact),
            };
            match lowered {
                Ok(cubes) => rows.extend(cubes.iter().filter_map(|c| self.space.import(c)).map(|c| (i, c))),
                Err(lower::TooManyRows) => {
                    notes.push(format!("{block}: a rule of the {side} policy has too many rows to compare"));
                    return None;
                }
            }
        }
        let mut out: Vec<(usize, Cube)> = Vec::new();
        let mut boxes = 0usize;
        for (k, (rule, cube)) in rows.iter().enumerate() {
            let mut parts = vec![cube.clone()];
            for (_, earlier) in rows.iter().take(k) {
                let mut next = Vec::new();
                for p in &parts {
                    next.extend(self.space.minus(p, earlier));
                }
                parts = next;
                boxes += parts.len();
                if boxes > MAX_BOXES {
                    notes.push(format!(
                        "{block}: the {side} policy's table splits into more than {MAX_BOXES} boxes; its regions were not compared"
                    ));
                    return None;
                }
                if parts.is_empty() {
                    break;
                }
            }
            out.extend(parts.into_iter().filter(|p| self.analyzer.witness(p).is_some()).map(|p| (*rule, p)));
        }
        Some(out)
    }
}

/// A policy holding both sides' declarations and rules, so
/// `Columns::discover` sees every column and literal of either.
fn joint_policy(o: &CheckedPolicy, n: &CheckedPolicy) -> CheckedPolicy {
    let mut j = o.clone();
    for (k, v) in &n.classes {
        j.classes.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &n.models {
        j.models.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &n.strategies {
        j.strategies.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &n.reasons {
        j.reasons.entry(k.clone()).or_insert_with(|| v.clone());
    }
    j.classify.extend(n.classify.iter().cloned());
    j.recover.extend(n.recover.iter().cloned());
    j.accept.extend(n.accept.iter().cloned());
    j.invariants.extend(n.invariants.iter().cloned());
    j
}

fn rule_at(text: &str, lines: &Lines<'_>, span: Span, index: usize) -> RuleAt {
    let first = text.get(span.range()).and_then(|s| s.lines().next()).unwrap_or("").trim().to_string();
    RuleAt { index, line: lines.line(span.start), text: first }
}

/// JSON with every `span` key removed: equal for equal meaning.
fn stripped<T: Serialize>(v: &T) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("span");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    strip(&mut value);
    value.to_string()
}

fn guard_key(g: Option<&Cond>) -> String {
    match g {
        Some(c) => stripped(c),
        None => "otherwise".to_string(),
    }
}

/// Pairs rules of two versions: same guard and decision (reported as
/// `moved` when out of order), then same decision (`guard_changed`), same
/// guard (`decision_changed`), same position (`changed`); the rest are
/// `added` or `removed`. Unchanged rules in order are not listed.
fn match_rules(a: &[Keyed], b: &[Keyed]) -> Vec<(&'static str, Option<usize>, Option<usize>)> {
    let mut old_of: Vec<Option<usize>> = vec![None; b.len()];
    let mut used = vec![false; a.len()];
    let mut kind: Vec<&'static str> = vec![""; b.len()];
    let passes: [(&'static str, SamePred); 3] = [
        ("same", |x, y| x.0 == y.0 && x.1 == y.1),
        ("guard_changed", |x, y| x.1 == y.1),
        ("decision_changed", |x, y| x.0 == y.0),
    ];
    for (name, eq) in passes {
        for (j, y) in b.iter().enumerate() {
            if old_of.get(j).is_some_and(Option::is_some) {
                continue;
            }
            if let Some(i) = a.iter().enumerate().position(|(i, x)| !used.get(i).copied().unwrap_or(true) && eq(x, y)) {
                used[i] = true;
                old_of[j] = Some(i);
                kind[j] = name;
            }
        }
    }
    for j in 0..b.len() {
        if old_of[j].is_none() && j < a.len() && !used[j] {
            used[j] = true;
            old_of[j] = Some(j);
            kind[j] = "changed";
        }
    }
    // exact matches outside the longest in-order chain moved
    let same: Vec<(usize, usize)> =
        (0..b.len()).filter(|j| kind[*j] == "same").filter_map(|j| old_of[j].map(|i| (j, i))).collect();
    let keep = longest_increasing(&same.iter().map(|(_, i)| *i).collect::<Vec<_>>());
    for (k, (j, _)) in same.iter().enumerate() {
        if !keep.contains(&k) {
            kind[*j] = "moved";
        }
    }
    let mut out = Vec::new();
    for (i, u) in used.iter().enumerate() {
        if !u {
            out.push(("removed", Some(i), None));
        }
    }
    for j in 0..b.len() {
        match (kind[j], old_of[j]) {
            ("same", _) => {}
            (k, Some(i)) => out.push((k, Some(i), Some(j))),
            (_, None) => out.push(("added", None, Some(j))),
        }
    }
    out
}

/// Positions of one longest strictly increasing subsequence.
fn longest_increasing(xs: &[usize]) -> Vec<usize> {
    let n = xs.len();
    let mut len = vec![1usize; n];
    let mut prev: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        for k in 0..i {
            if xs[k] < xs[i] && len[k] + 1 > len[i] {
                len[i] = len[k] + 1;
                prev[i] = Some(k);
            }
        }
    }
    let mut best = (0..n).max_by_key(|i| (len[*i], std::cmp::Reverse(*i)));
    let mut out = Vec::new();
    while let Some(i) = best {
        out.push(i);
        best = prev[i];
    }
    out.reverse();
    out
}

fn declarations(o: &CheckedPolicy, n: &CheckedPolicy) -> Vec<DeclChange> {
    let mut out = Vec::new();
    let mut one = |section: &str, name: &str, a: Option<String>, b: Option<String>| {
        let change = match (&a, &b) {
            (Some(x), Some(y)) if x == y => return,
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "removed",
            (None, Some(_)) => "added",
            (None, None) => return,
        };
        out.push(DeclChange { section: section.into(), name: name.into(), change: change.into(), old: a, new: b });
    };
    one("policy", "name", Some(o.name.clone()), Some(n.name.clone()));
    one("policy", "version", Some(o.version.clone()), Some(n.version.clone()));
    macro_rules! section {
        ($field:ident) => {
            for (k, v) in &o.$field {
                one(stringify!($field), k, Some(stripped(v)), n.$field.get(k).map(stripped));
            }
            for (k, v) in &n.$field {
                if !o.$field.contains_key(k) {
                    one(stringify!($field), k, None, Some(stripped(v)));
                }
            }
        };
    }
    let value = |v: &crate::check::ir::Value| match v {
        crate::check::ir::Value::Str(x) => format!("{x:?}"),
        crate::check::ir::Value::Num(x) => format!("{x}"),
        crate::check::ir::Value::Bool(x) => format!("{x}"),
        crate::check::ir::Value::Sym(x) => x.clone(),
    };
    for (k, v) in &o.consts {
        one("consts", k, Some(value(&v.value)), n.consts.get(k).map(|c| value(&c.value)));
    }
    for (k, v) in &n.consts {
        if !o.consts.contains_key(k) {
            one("consts", k, None, Some(value(&v.value)));
        }
    }
    section!(classes);
    section!(reasons);
    section!(models);
    section!(strategies);
    section!(prompts);
    one("budget", "budget", Some(stripped(&o.budget)), Some(stripped(&n.budget)));
    one("fleet", "fleet", Some(stripped(&o.fleet)), Some(stripped(&n.fleet)));
    for inv in &o.invariants {
        let other = n.invariants.iter().find(|x| x.text == inv.text);
        one("invariants", &inv.text, Some(stripped(inv)), other.map(stripped));
    }
    for inv in &n.invariants {
        if !o.invariants.iter().any(|x| x.text == inv.text) {
            one("invariants", &inv.text, None, Some(stripped(inv)));
        }
    }
    one("gate", "gate", Some(stripped(&o.gate)), Some(stripped(&n.gate)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;

    fn build(text: &str) -> CompiledPolicy {
        let b = super::super::build(&Source::new("t.rcv", text));
        b.policy.unwrap_or_else(|| panic!("{:?}", b.diagnostics))
    }

    const BASE: &str = r#"policy p version "1.0.0"
classes { rate_limited transient, unknown }
reasons { RETRY "retry" ESC "escalate" severity high }
classify {
  error.http_status == 429 => rate_limited
  otherwise => unknown
}
recover {
  when class == rate_limited and attempt < 3 => retry, reason RETRY
  otherwise => escalate, reason ESC
}
"#;

    #[test]
    fn reformat_is_no_semantic_change() {
        let a = build(BASE);
        let reformatted = BASE.replace("recover {", "# a comment\nrecover {").replace(" => retry", "   =>   retry");
        let b = build(&reformatted);
        let d = diff(Side { policy: &a, text: BASE }, Side { policy: &b, text: &reformatted });
        assert!(!d.semantic_change);
        assert!(d.regions.is_empty() && d.rules.is_empty() && d.declarations.is_empty());
    }

    #[test]
    fn threshold_change_gives_one_region_with_example() {
        let a = build(BASE);
        let text = BASE.replace("attempt < 3", "attempt < 5");
        let b = build(&text);
        let d = diff(Side { policy: &a, text: BASE }, Side { policy: &b, text: &text });
        assert!(d.semantic_change);
        assert_eq!(d.rules.len(), 1);
        assert_eq!(d.rules[0].change, "guard_changed");
        assert_eq!(d.regions.len(), 1, "{:?}", d.regions);
        let r = &d.regions[0];
        assert_eq!(r.block, "recover");
        assert!(r.example.contains("attempt = 3") || r.example.contains("attempt = 4"), "{}", r.example);
        assert!(r.changes.contains(&"action".to_string()));
        assert_eq!(r.old.rule.as_ref().map(|x| x.index), Some(1));
        assert_eq!(r.new.rule.as_ref().map(|x| x.index), Some(0));
    }

    #[test]
    fn reordering_is_reported_as_moved() {
        let text = BASE.replace(
            "  error.http_status == 429 => rate_limited\n  otherwise",
            "  error.http_status == 429 => rate_limited\n  error.http_status == 500 => unknown\n  otherwise",
        );
        let a = build(&text);
        let swapped = text.replace(
            "  error.http_status == 429 => rate_limited\n  error.http_status == 500 => unknown\n",
            "  error.http_status == 500 => unknown\n  error.http_status == 429 => rate_limited\n",
        );
        let b = build(&swapped);
        let d = diff(Side { policy: &a, text: &text }, Side { policy: &b, text: &swapped });
        assert!(d.semantic_change);
        assert_eq!(d.rules.iter().filter(|r| r.change == "moved").count(), 1, "{:?}", d.rules);
        // disjoint guards: reordering changes no decision
        assert!(d.regions.is_empty(), "{:?}", d.regions);
    }

    #[test]
    fn longest_increasing_keeps_order() {
        assert_eq!(longest_increasing(&[0, 2, 1, 3]).len(), 3);
        assert!(longest_increasing(&[]).is_empty());
    }
}
