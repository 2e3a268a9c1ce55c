//! Table analysis: gaps, shadowed and impossible rules, termination, and
//! invariants.
//!
//! Every analysis works on boxes (conjunctions of one cell per column)
//! restricted to the values events can really carry (each column's
//! universe: declared classes only, `attempt >= 1`...). The core operation
//! is box subtraction: `A - B` yields at most one box per column `B`
//! constrains, all disjoint.
//!
//! * Reachability: the part of row `i` no earlier row takes is
//!   `row_i - row_0 - ... - row_{i-1}`. Rows that do not meet the current
//!   regions are skipped with an allocation-free test, so disjoint rules cost
//!   `O(rows^2 * columns)` cheap tests and no splitting.
//! * Gaps: `universe - every row`; skipped when a row covers the universe
//!   (an `otherwise`).
//! * Every pass stops after creating [`MAX_REGIONS`] boxes or making
//!   [`MAX_STEPS`] box tests; what it could not prove is reported with
//!   RCV409 and never guessed. A region kept after a pass stopped is a
//!   superset of the true one, so termination bounds stay sound and
//!   invariant counterexamples are re-checked by evaluating the table on the
//!   concrete example.
//!
//! A region only counts when a concrete event lies in it ([`Analyzer::witness`]):
//! several columns can read the same field (its `==` column and one column
//! per regex), and the witness picks values on which they agree (a missing
//! field is missing for all of them; a literal decides every regex). Two
//! regexes on the same field are assumed independent.

use regex::Regex;

use super::columns::{ColumnKind, Columns};
use super::cube::{Cube, Space};
use super::domain::{ABSENT_BIT, Bits, Cell, Interval, Ranges};
use super::show::{self, Val};
use super::{Row, Tables};
use crate::check::ir::{ActionIr, CheckedPolicy, DecisionIr};
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{ActionKind, Quantifier};

/// Boxes one analysis pass may create before it stops.
pub const MAX_REGIONS: usize = 20_000;
/// Box tests one analysis pass may make before it stops.
pub const MAX_STEPS: usize = 4_000_000;
/// Gap regions listed in one diagnostic.
const MAX_GAPS_SHOWN: usize = 6;

#[derive(Debug, Clone, Copy)]
struct Budget {
    regions: usize,
    steps: usize,
}

impl Budget {
    fn new() -> Self {
        Budget { regions: MAX_REGIONS, steps: MAX_STEPS }
    }

    /// Spends; `false` when the pass must stop.
    fn spend(&mut self, regions: usize, steps: usize) -> bool {
        if regions > self.regions || steps > self.steps {
            self.regions = 0;
            self.steps = 0;
            return false;
        }
        self.regions -= regions;
        self.steps -= steps;
        true
    }
}

/// What analysing a compiled policy found.
#[derive(Debug, Default)]
pub struct Findings {
    pub diagnostics: Vec<Diagnostic>,
    /// Decisions one request can take at most; `None` when unbounded.
    pub max_decisions: Option<u32>,
}

/// The reachable part of each row of one table.
#[derive(Debug, Default)]
struct Reach {
    /// Disjoint boxes per row (a superset when not `exact`).
    regions: Vec<Vec<Cube>>,
    exact: Vec<bool>,
    /// Some event satisfies the row (ignoring earlier rows).
    possible: Vec<bool>,
    /// Other rules whose rows took part of this row.
    coverers: Vec<Vec<usize>>,
    /// The row at which the pass stopped, if it did.
    stopped_at: Option<usize>,
}

/// A non-terminal row and how often it can fire in one request.
struct Nt {
    rule_span: Span,
    bound: Option<u64>,
    reset: bool,
    fallback: bool,
    /// Can fire without a class (an accepted output, an unclassified failure).
    classless: bool,
}

/// Which table a row belongs to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Classify,
    Recover,
    Accept,
}

impl Block {
    fn as_str(self) -> &'static str {
        match self {
            Block::Classify => "classify",
            Block::Recover => "recover",
            Block::Accept => "accept",
        }
    }
}

pub struct Analyzer<'a> {
    policy: &'a CheckedPolicy,
    cols: &'a Columns,
    regexes: &'a [Option<Regex>],
    /// The analysis space: unconstrained columns stand for their universe.
    space: Space,
    /// The space before `class` was narrowed to the classes `classify` assigns.
    declared: Space,
    /// Witnesses use `declared` instead of `space`.
    as_declared: std::cell::Cell<bool>,
    /// Whether a `recover` decision can see no class (not proven otherwise).
    class_may_be_absent: bool,
    /// Columns reading the same field, `==` column first.
    groups: Vec<Vec<usize>>,
    group_of: Vec<usize>,
    diags: Vec<Diagnostic>,
    incomplete: Vec<(String, Span)>,
}

/// Runs every analysis over the tables.
pub fn analyse(policy: &CheckedPolicy, cols: &Columns, tables: &Tables, regexes: &[Option<Regex>]) -> Findings {
    let mut a = Analyzer::new(policy, cols, regexes);
    let classify = a.reach(&tables.classify);
    a.rules(Block::Classify, &tables.classify, &classify);
    let unclassified = a.gaps(Block::Classify, &tables.classify);
    a.narrow_classes(&tables.classify, &classify, unclassified);
    let recover = a.reach(&tables.recover);
    let accept = a.reach(&tables.accept);
    a.rules(Block::Recover, &tables.recover, &recover);
    a.rules(Block::Accept, &tables.accept, &accept);
    a.gaps(Block::Recover, &tables.recover);
    let max_decisions = a.termination(tables, &recover, &accept);
    for (i, guard) in tables.invariants.iter().enumerate() {
        a.invariant(i, guard, tables, &recover, &accept);
    }
    a.report_incomplete();
    Findings { diagnostics: a.diags, max_decisions }
}

fn kinds(a: &ActionIr) -> Vec<ActionKind> {
    match a {
        ActionIr::Reset { then, .. } => {
            let mut k = vec![ActionKind::Reset];
            k.extend(kinds(then));
            k
        }
        _ => vec![a.kind()],
    }
}

fn fallback_target(a: &ActionIr) -> Option<&str> {
    match a {
        ActionIr::Fallback { model, .. } => Some(model),
        ActionIr::Reset { then, .. } => fallback_target(then),
        _ => None,
    }
}

fn kinds_text(ks: &[ActionKind]) -> String {
    ks.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" or ")
}

impl<'a> Analyzer<'a> {
    pub fn new(policy: &'a CheckedPolicy, cols: &'a Columns, regexes: &'a [Option<Regex>]) -> Self {
        let shapes: Vec<_> = cols.list.iter().map(|c| c.shape()).collect();
        let top: Vec<Cell> = cols.list.iter().map(|c| c.universe.clone()).collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut paths: Vec<&str> = Vec::new();
        let mut group_of = Vec::with_capacity(cols.len());
        for (i, c) in cols.list.iter().enumerate() {
            let g = match paths.iter().position(|p| *p == c.path) {
                Some(g) => g,
                None => {
                    paths.push(&c.path);
                    groups.push(Vec::new());
                    groups.len() - 1
                }
            };
            if let Some(members) = groups.get_mut(g) {
                if matches!(c.kind, ColumnKind::Matches { .. }) {
                    members.push(i);
                } else {
                    members.insert(0, i);
                }
            }
            group_of.push(g);
        }
        Analyzer {
            policy,
            cols,
            regexes,
            declared: Space { shapes: shapes.clone(), top: top.clone() },
            as_declared: std::cell::Cell::new(false),
            class_may_be_absent: true,
            space: Space { shapes, top },
            groups,
            group_of,
            diags: Vec::new(),
            incomplete: Vec::new(),
        }
    }

    fn universe(&self, col: usize) -> Option<&Cell> {
        if self.as_declared.get() { self.declared.top.get(col) } else { self.space.top.get(col) }
    }

    /// The cell of `col` in `cube`, or the column's universe.
    fn cell_of<'c>(&'c self, cube: &'c Cube, col: usize) -> Option<&'c Cell> {
        cube.get(col).or_else(|| self.universe(col))
    }

    // ---------- concrete events ----------

    /// Whether some event lies in `cube`. Cells are never empty within the
    /// universe, so only fields read by several columns need a witness.
    fn feasible(&self, cube: &Cube) -> bool {
        let mut checked: Vec<usize> = Vec::new();
        for c in cube.columns() {
            let Some(&g) = self.group_of.get(c) else { return false };
            let Some(group) = self.groups.get(g) else { return false };
            if group.len() < 2 || checked.contains(&g) {
                continue;
            }
            checked.push(g);
            if self.group_witness(cube, group, false).is_none() {
                return false;
            }
        }
        true
    }

    /// A concrete event in `cube`: a value for every column of every field
    /// the cube constrains, consistent across columns reading one field.
    pub fn witness(&self, cube: &Cube) -> Option<Vec<(usize, Val)>> {
        let mut seen: Vec<usize> = Vec::new();
        let mut out = Vec::new();
        for c in cube.columns() {
            let g = *self.group_of.get(c)?;
            if seen.contains(&g) {
                continue;
            }
            seen.push(g);
            out.extend(self.group_witness(cube, self.groups.get(g)?, true)?);
        }
        Some(out)
    }

    /// Values for one field's columns, or `None` when they cannot agree.
    /// With `all` false, only the regex columns `cube` constrains get a
    /// value (the others can take any value, so they never make the field
    /// impossible).
    fn group_witness(&self, cube: &Cube, group: &[usize], all: bool) -> Option<Vec<(usize, Val)>> {
        let first = *group.first()?;
        let base = self.cols.get(first).filter(|c| !matches!(c.kind, ColumnKind::Matches { .. })).map(|_| first);
        let regex_cols: Vec<usize> =
            group.iter().copied().filter(|c| Some(*c) != base && (all || cube.get(*c).is_some())).collect();
        let regex_bits: Vec<&Bits> = regex_cols
            .iter()
            .map(|c| match self.cell_of(cube, *c) {
                Some(Cell::Set(b)) => Some(b),
                _ => None,
            })
            .collect::<Option<_>>()?;
        // present: the base column decides the value, regexes must agree
        if let Some(b) = base {
            let cell = self.cell_of(cube, b)?;
            let col = self.cols.get(b)?;
            match (cell, &col.kind) {
                (Cell::Set(bits), ColumnKind::Set { members }) => {
                    for bit in bits.iter().filter(|x| *x != ABSENT_BIT) {
                        let literal = members.get(bit - 1);
                        let mut vals = vec![(b, Val::Bit(bit))];
                        let mut ok = true;
                        for (rc, rb) in regex_cols.iter().zip(&regex_bits) {
                            let need = match literal {
                                Some(text) => {
                                    let m = self
                                        .regexes
                                        .get(*rc)
                                        .and_then(Option::as_ref)
                                        .is_some_and(|r| r.is_match(text));
                                    Some(if m { 2 } else { 1 })
                                }
                                None => [1, 2].into_iter().find(|v| rb.contains(*v)),
                            };
                            match need {
                                Some(v) if rb.contains(v) => vals.push((*rc, Val::Bit(v))),
                                _ => ok = false,
                            }
                        }
                        if ok {
                            return Some(vals);
                        }
                    }
                }
                (Cell::Set(bits), _) => {
                    if let Some(bit) = bits.iter().find(|x| *x != ABSENT_BIT) {
                        return Some(vec![(b, Val::Bit(bit))]);
                    }
                }
                (Cell::Num { ranges, .. }, _) => {
                    if let Some(x) = pick(ranges) {
                        return Some(vec![(b, Val::Num(x))]);
                    }
                }
            }
        } else {
            let vals: Option<Vec<(usize, Val)>> = regex_cols
                .iter()
                .zip(&regex_bits)
                .map(|(rc, rb)| [1, 2].into_iter().find(|v| rb.contains(*v)).map(|v| (*rc, Val::Bit(v))))
                .collect();
            if let Some(v) = vals {
                return Some(v);
            }
        }
        // missing: every column of the field must allow it
        let base_absent = base.is_none_or(|b| self.cell_of(cube, b).is_some_and(Cell::has_absent));
        if base_absent && regex_bits.iter().all(|b| b.contains(ABSENT_BIT)) {
            let mut vals = Vec::new();
            if let Some(b) = base {
                let v = match self.cell_of(cube, b) {
                    Some(Cell::Num { .. }) => Val::Missing,
                    _ => Val::Bit(ABSENT_BIT),
                };
                vals.push((b, v));
            }
            vals.extend(regex_cols.iter().map(|c| (*c, Val::Bit(ABSENT_BIT))));
            return Some(vals);
        }
        None
    }

    /// A full event: the witness values (which cover every column of the
    /// fields they touch), and for the other fields a value from their
    /// universe (used to re-check a counterexample).
    fn complete(&self, partial: &[(usize, Val)]) -> Option<Vec<Val>> {
        let mut out: Vec<Option<Val>> = vec![None; self.cols.len()];
        for (c, v) in partial {
            *out.get_mut(*c)? = Some(*v);
        }
        for group in &self.groups {
            if group.iter().any(|c| out.get(*c).is_some_and(Option::is_some)) {
                continue;
            }
            for (c, v) in self.group_witness(&Cube::any(), group, true)? {
                *out.get_mut(c)? = Some(v);
            }
        }
        out.into_iter().collect()
    }

    fn point_in(&self, point: &[Val], cube: &Cube) -> bool {
        cube.0.iter().all(|(c, cell)| match (point.get(*c), cell) {
            (Some(Val::Bit(b)), Cell::Set(bits)) => bits.contains(*b),
            (Some(Val::Num(x)), Cell::Num { ranges, .. }) => ranges.contains(*x),
            (Some(Val::Missing), c) => c.has_absent(),
            _ => false,
        })
    }

    // ---------- reachability ----------

    fn reach(&mut self, rows: &[Row]) -> Reach {
        let mut budget = Budget::new();
        let mut r = Reach::default();
        let imported: Vec<Option<Cube>> = rows.iter().map(|row| self.space.import(&row.cube)).collect();
        for (i, start) in imported.iter().enumerate() {
            let possible = start.as_ref().is_some_and(|c| self.feasible(c));
            r.possible.push(possible);
            let mut regions: Vec<Cube> = match (start, possible) {
                (Some(c), true) => vec![c.clone()],
                _ => Vec::new(),
            };
            let mut coverers = Vec::new();
            let mut exact = r.stopped_at.is_none();
            if exact {
                for (j, earlier) in imported.iter().enumerate().take(i) {
                    if regions.is_empty() {
                        break;
                    }
                    let Some(b) = earlier else { continue };
                    if !budget.spend(0, regions.len()) {
                        exact = false;
                        break;
                    }
                    if !regions.iter().any(|x| self.space.intersects(x, b)) {
                        continue;
                    }
                    let next: Vec<Cube> = regions.iter().flat_map(|x| self.space.minus(x, b)).collect();
                    if !budget.spend(next.len(), b.0.len() * regions.len()) {
                        exact = false;
                        break;
                    }
                    let rule = rows.get(j).map_or(usize::MAX, |row| row.rule);
                    if rows.get(i).is_some_and(|row| row.rule != rule) && !coverers.contains(&rule) {
                        coverers.push(rule);
                    }
                    regions = next;
                }
                if !exact {
                    r.stopped_at = Some(i);
                    regions = start.iter().cloned().collect();
                }
            }
            regions.retain(|x| self.feasible(x));
            r.regions.push(regions);
            r.exact.push(exact);
            r.coverers.push(coverers);
        }
        r
    }

    /// Shadowed and impossible rules of one table.
    fn rules(&mut self, block: Block, rows: &[Row], reach: &Reach) {
        let spans: Vec<Span> = match block {
            Block::Classify => self.policy.classify.iter().map(|r| r.span).collect(),
            Block::Recover => self.policy.recover.iter().map(|r| r.span).collect(),
            Block::Accept => self.policy.accept.iter().map(|r| r.span).collect(),
        };
        let mut by_rule: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        for (i, r) in rows.iter().enumerate() {
            if let Some(v) = by_rule.get_mut(r.rule) {
                v.push(i);
            }
        }
        for (span, idx) in spans.iter().zip(&by_rule) {
            let any_possible = idx.iter().any(|i| reach.possible.get(*i) == Some(&true));
            // a rule that only tests classes `classify` never assigns is the
            // checker's finding (an unassigned class), not reported twice
            let only_unassigned_classes = || {
                self.as_declared.set(true);
                let possible = idx
                    .iter()
                    .filter_map(|i| rows.get(*i))
                    .any(|r| self.declared.import(&r.cube).is_some_and(|c| self.feasible(&c)));
                self.as_declared.set(false);
                possible
            };
            if !any_possible && only_unassigned_classes() {
                continue;
            }
            if !any_possible {
                let what = if block == Block::Accept { "requirement never fails" } else { "condition never holds" };
                self.diags.push(
                    Diagnostic::new(
                        Code::UnreachableRule,
                        format!("this `{}` rule can never match", block.as_str()),
                        *span,
                        format!("this {what}"),
                    )
                    .with_help(if block == Block::Accept {
                        "the requirement holds for every event; delete the rule or correct the condition"
                    } else {
                        "no event satisfies the condition; correct the comparison or delete the rule"
                    }),
                );
                continue;
            }
            let all_exact = idx.iter().all(|i| reach.exact.get(*i) == Some(&true));
            let all_covered = idx.iter().all(|i| reach.regions.get(*i).is_some_and(Vec::is_empty));
            if !(all_exact && all_covered) {
                continue;
            }
            let mut coverers: Vec<usize> = Vec::new();
            for i in idx {
                for c in reach.coverers.get(*i).into_iter().flatten() {
                    if !coverers.contains(c) {
                        coverers.push(*c);
                    }
                }
            }
            coverers.sort_unstable();
            let mut d = Diagnostic::new(
                Code::ShadowedRule,
                format!("this `{}` rule never fires", block.as_str()),
                *span,
                "every event it matches is taken by an earlier rule",
            );
            for c in &coverers {
                if let Some(s) = spans.get(*c) {
                    d = d.with_label(*s, format!("rule {} covers part of it", c + 1));
                }
            }
            let names: Vec<String> = coverers.iter().map(|c| (c + 1).to_string()).collect();
            d = d.with_help(format!(
                "first match wins: move it above rule{} {} or delete it",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ));
            self.diags.push(d);
        }
    }

    // ---------- gaps ----------

    /// After `classify` is analysed: `recover` sees only the classes some
    /// reachable `classify` rule assigns, and a missing class when some
    /// events get none. (An empty `classify` tells nothing: every declared
    /// class stays possible.)
    fn narrow_classes(&mut self, rows: &[Row], reach: &Reach, unclassified: Option<bool>) {
        self.class_may_be_absent = unclassified != Some(false);
        let Some(col) = self.cols.find("class") else { return };
        let Some(ColumnKind::Set { members }) = self.cols.get(col).map(|c| &c.kind) else { return };
        if self.policy.classify.is_empty() {
            return;
        }
        let mut bits = Bits::empty();
        for (i, row) in rows.iter().enumerate() {
            if reach.regions.get(i).is_some_and(|r| !r.is_empty()) || reach.exact.get(i) == Some(&false) {
                let class = self.policy.classify.get(row.rule).map(|r| r.class.as_str());
                if let Some(b) = members.iter().position(|m| Some(m.as_str()) == class) {
                    bits.insert(b + 1);
                }
            }
        }
        if unclassified == Some(true) {
            bits.insert(ABSENT_BIT);
            // an unclassified failure has `class_attempts` 0
            if let Some(Cell::Num { ranges, .. }) =
                self.cols.find("class_attempts").and_then(|c| self.space.top.get_mut(c))
            {
                *ranges = Ranges::from_intervals(vec![Interval::at_least(0.0, true)], true);
            }
        }
        if let Some(top) = self.space.top.get_mut(col) {
            *top = Cell::Set(bits);
        }
    }

    /// Reports the events no rule of `block` matches. `Some(found)` when
    /// the pass finished, `None` when it stopped or did not run.
    fn gaps(&mut self, block: Block, rows: &[Row]) -> Option<bool> {
        let rules = match block {
            Block::Classify => self.policy.classify.len(),
            Block::Recover => self.policy.recover.len(),
            Block::Accept => 0,
        };
        // a missing or empty block is the checker's business
        if rules == 0 {
            return None;
        }
        let imported: Vec<Cube> = rows.iter().filter_map(|r| self.space.import(&r.cube)).collect();
        if imported.iter().any(Cube::is_any) {
            return Some(false);
        }
        let mut budget = Budget::new();
        let mut regions = vec![Cube::any()];
        for (n, b) in imported.iter().enumerate() {
            if regions.is_empty() {
                break;
            }
            if !budget.spend(0, regions.len()) {
                self.stop(format!("gaps in `{}`", block.as_str()), rows, n);
                return None;
            }
            if !regions.iter().any(|x| self.space.intersects(x, b)) {
                continue;
            }
            let next: Vec<Cube> = regions.iter().flat_map(|x| self.space.minus(x, b)).collect();
            if !budget.spend(next.len(), b.0.len() * regions.len()) {
                self.stop(format!("gaps in `{}`", block.as_str()), rows, n);
                return None;
            }
            regions = next;
        }
        regions.retain(|x| self.feasible(x));
        if regions.is_empty() {
            return Some(false);
        }
        if regions.len() <= 200 {
            self.space.simplify(&mut regions);
        }
        let (code, what) = match block {
            Block::Classify => (Code::ClassifyGap, "no `classify` rule matches some events"),
            _ => (Code::RecoverGap, "no `recover` rule matches some events"),
        };
        let span = match block {
            Block::Classify => self.policy.classify.last().map(|r| r.span),
            _ => self.policy.recover.last().map(|r| r.span),
        };
        let mut d = Diagnostic::new(code, what, span.unwrap_or_default(), "events can fall through this last rule");
        for region in regions.iter().take(MAX_GAPS_SHOWN) {
            let cond = show::region(self.cols, region, &self.space.top);
            let ex = self.witness(region).map(|p| show::example(self.cols, &p, region)).unwrap_or_default();
            d = d.with_note(format!("not matched: `{cond}`, e.g. `{ex}`"));
        }
        if regions.len() > MAX_GAPS_SHOWN {
            d = d.with_note(format!("and {} more regions", regions.len() - MAX_GAPS_SHOWN));
        }
        d = d.with_help(match block {
            Block::Classify => "add rules for these events or end the block with `otherwise => CLASS`",
            _ => "add rules for these events or end the block with `otherwise => DECISION`",
        });
        self.diags.push(d);
        Some(true)
    }

    fn stop(&mut self, what: String, rows: &[Row], at: usize) {
        let span = rows.get(at).map_or(Span::default(), |r| r.span);
        self.incomplete.push((what, span));
    }

    fn report_incomplete(&mut self) {
        let Some((_, span)) = self.incomplete.first().cloned() else { return };
        let what: Vec<String> = self.incomplete.iter().map(|(w, _)| w.clone()).collect();
        self.diags.push(
            Diagnostic::new(
                Code::AnalysisIncomplete,
                format!("the analysis stopped before proving {}", what.join(", ")),
                span,
                "stopped here",
            )
            .with_note(format!(
                "each pass stops after {MAX_REGIONS} regions; findings reported are correct, missing ones are not proven absent"
            ))
            .with_help("split rules that test many fields at once, or split the policy"),
        );
    }

    // ---------- termination ----------

    /// Values `col` takes over `regions` (`None`: the column does not exist).
    fn values(&self, regions: &[Cube], col: Option<usize>) -> Option<Cell> {
        let c = col?;
        let shape = *self.space.shapes.get(c)?;
        let mut acc = shape.empty();
        for r in regions {
            acc = shape.union(&acc, self.cell_of(r, c)?);
        }
        Some(acc)
    }

    fn count_ints(cell: Option<&Cell>) -> Option<u64> {
        match cell? {
            Cell::Num { ranges, .. } => ranges.integer_count(),
            Cell::Set(_) => None,
        }
    }

    /// The most decisions one request can take, or `None` (and RCV406) when
    /// some non-terminal rule can fire without bound.
    ///
    /// Model (the engine's): every decision follows a failed call or an
    /// output `accept` rejects; a non-terminal decision (retry, fallback,
    /// reset) starts the next attempt, so the non-terminal decisions of one
    /// request have distinct `attempt` values. A reset adds one to `resets`,
    /// a fallback (also after a reset) one to `fallbacks`; after a fallback,
    /// calls use the fallback model; `class_attempts` counts the failures of
    /// the current class and is 0 without one (accepted outputs,
    /// unclassified failures). Bounds, over each row's reachable region:
    ///
    /// * all non-terminal rows: the number of distinct `attempt` values;
    /// * per row: its `attempt` values; for resets and fallbacks also its
    ///   `resets` / `fallbacks` values; for a row that needs a class, its
    ///   classes times its `class_attempts` values; a fallback to a model
    ///   outside the row's `model` values fires once when no action anywhere
    ///   switches back into them;
    /// * engine caps, when their decision ends the request: `attempts N`
    ///   (N - 1 non-terminal decisions), `resets` / `fallbacks` (on those
    ///   rows), `class_attempts C` ((C - 1) per class, when every
    ///   non-terminal decision has a class).
    ///
    /// The result is the least bound plus the final terminal decision.
    fn termination(&mut self, tables: &Tables, recover: &Reach, accept: &Reach) -> Option<u32> {
        let budget = &self.policy.budget;
        let caps_apply = budget.exhausted.as_ref().is_none_or(|d| d.action.is_terminal());
        let attempt = self.cols.find("attempt");
        let resets = self.cols.find("resets");
        let fallbacks = self.cols.find("fallbacks");
        let class_attempts = self.cols.find("class_attempts");
        let class = self.cols.find("class");
        let model = self.cols.find("model");
        let n_classes = self.policy.classes.len() as u64;

        // every model some action can switch to
        let mut targets: Vec<&str> = Vec::new();
        let mut decisions: Vec<&DecisionIr> = Vec::new();
        decisions.extend(self.policy.recover.iter().map(|r| &r.decision));
        decisions.extend(self.policy.accept.iter().map(|r| &r.decision));
        decisions.extend(budget.exhausted.iter());
        decisions.extend(self.policy.fleet.retry_budget.iter().map(|f| &f.decision));
        decisions.extend(self.policy.fleet.breaker.iter().map(|f| &f.decision));
        for d in decisions {
            if let Some(t) = fallback_target(&d.action) {
                targets.push(t);
            }
        }

        let mut nts: Vec<Nt> = Vec::new();
        let mut attempts_union: Option<Ranges> = Some(Ranges::empty());
        let policy = self.policy;
        let sources: [(&[Row], &Reach, bool); 2] = [(&tables.recover, recover, false), (&tables.accept, accept, true)];
        for (rows, reach, is_accept) in sources {
            for (i, row) in rows.iter().enumerate() {
                let decision = if is_accept {
                    policy.accept.get(row.rule).map(|r| &r.decision)
                } else {
                    policy.recover.get(row.rule).map(|r| &r.decision)
                };
                let Some(d) = decision else { continue };
                if d.action.is_terminal() {
                    continue;
                }
                let regions = reach.regions.get(i).map_or(&[][..], Vec::as_slice);
                if regions.is_empty() {
                    continue;
                }
                let ks = kinds(&d.action);
                let is_reset = ks.contains(&ActionKind::Reset);
                let is_fallback = ks.contains(&ActionKind::Fallback);
                let att = self.values(regions, attempt);
                attempts_union = match (attempts_union.take(), &att) {
                    (Some(u), Some(Cell::Num { ranges, .. })) => Some(u.union(ranges, true)),
                    _ => None,
                };
                let mut bound = Self::count_ints(att.as_ref());
                let mut tighten = |b: Option<u64>| {
                    if let Some(b) = b {
                        bound = Some(bound.map_or(b, |x| x.min(b)));
                    }
                };
                if is_reset {
                    tighten(Self::count_ints(self.values(regions, resets).as_ref()));
                }
                if is_fallback {
                    tighten(Self::count_ints(self.values(regions, fallbacks).as_ref()));
                }
                // `class_attempts` counts failures of the row's class (this one
                // included); on an accepted output or an unclassified failure
                // it stays 0, so it bounds only rows that need a class
                let class_cell = self.values(regions, class);
                let classless = is_accept
                    || match &class_cell {
                        Some(Cell::Set(b)) => b.contains(ABSENT_BIT),
                        _ => self.class_may_be_absent,
                    };
                if !classless {
                    let classes = match &class_cell {
                        Some(Cell::Set(b)) => b.iter().filter(|x| *x != ABSENT_BIT).count() as u64,
                        _ => n_classes,
                    };
                    let per_class = match self.values(regions, class_attempts) {
                        Some(Cell::Num { ranges, .. }) => ranges
                            .intersect(&Ranges::from_intervals(vec![Interval::at_least(1.0, true)], true), true)
                            .integer_count(),
                        _ => None,
                    };
                    tighten(per_class.map(|a| a.saturating_mul(classes)));
                }
                if let (Some(target), Some(Cell::Set(models))) =
                    (fallback_target(&d.action), self.values(regions, model))
                {
                    let col = model.and_then(|m| self.cols.get(m));
                    let bit_of = |name: &str| match col.map(|c| &c.kind) {
                        Some(ColumnKind::Set { members }) => members.iter().position(|m| m == name).map(|i| i + 1),
                        _ => None,
                    };
                    let leaves = bit_of(target).is_some_and(|b| !models.contains(b));
                    let never_back = targets.iter().all(|t| bit_of(t).is_some_and(|b| !models.contains(b)));
                    if leaves && never_back {
                        tighten(Some(1));
                    }
                }
                nts.push(Nt {
                    rule_span: row.span,
                    bound,
                    reset: is_reset,
                    fallback: is_fallback && !is_reset,
                    classless,
                });
            }
        }

        let sum = |pick: &dyn Fn(&Nt) -> bool| -> Option<u64> {
            nts.iter().filter(|n| pick(n)).try_fold(0u64, |acc, n| n.bound.map(|b| acc.saturating_add(b)))
        };
        let cap = |c: Option<u32>| if caps_apply { c.map(u64::from) } else { None };
        let min_opt = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) => x,
            (None, y) => y,
        };
        let retries = sum(&|n| !n.reset && !n.fallback);
        let resets_total = min_opt(sum(&|n| n.reset), cap(budget.resets));
        let fallbacks_total = min_opt(sum(&|n| n.fallback), cap(budget.fallbacks));
        let by_rows = match (retries, resets_total, fallbacks_total) {
            (Some(a), Some(b), Some(c)) => Some(a.saturating_add(b).saturating_add(c)),
            _ => None,
        };
        let by_attempts = attempts_union.and_then(|u| u.integer_count());
        let by_cap = cap(budget.attempts).map(|b| b.saturating_sub(1));
        // the class cap fires once some class reaches it, so each class takes
        // at most `cap - 1` non-terminal decisions; decisions without a class
        // escape it
        let possible_classes = match class.and_then(|c| self.space.top.get(c)) {
            Some(Cell::Set(b)) => b.iter().filter(|x| *x != ABSENT_BIT).count() as u64,
            _ => n_classes,
        };
        let by_class_cap = cap(budget.class_attempts)
            .filter(|_| nts.iter().all(|n| !n.classless))
            .map(|c| c.saturating_sub(1).saturating_mul(possible_classes));
        let non_terminal = [by_rows, by_attempts, by_cap, by_class_cap].into_iter().flatten().min();
        match non_terminal {
            Some(d) => Some(u32::try_from(d.saturating_add(1)).unwrap_or(u32::MAX)),
            None => {
                let unbounded: Vec<Span> = {
                    let mut v: Vec<Span> = Vec::new();
                    for n in nts.iter().filter(|n| n.bound.is_none()) {
                        if !v.contains(&n.rule_span) {
                            v.push(n.rule_span);
                        }
                    }
                    v
                };
                let first = unbounded.first().copied().unwrap_or_default();
                let mut d = Diagnostic::new(
                    Code::UnboundedRetry,
                    "the policy can retry forever",
                    first,
                    "this rule can fire on every attempt",
                );
                for s in unbounded.iter().skip(1) {
                    d = d.with_label(*s, "this one too");
                }
                if let (Some(dec), Some(_)) = (&budget.exhausted, budget.attempts)
                    && !dec.action.is_terminal()
                {
                    d = d.with_label(dec.span, "the budget decision does not end the request").with_note(format!(
                        "when a cap is hit the engine takes `{}`, which starts another attempt",
                        show::action(&dec.action)
                    ));
                }
                self.diags.push(
                    d.with_help("add `attempt < N` to the rule's condition, or `attempts N` to the `budget` block"),
                );
                None
            }
        }
    }

    // ---------- invariants ----------

    fn invariant(&mut self, idx: usize, guard: &[Cube], tables: &Tables, recover: &Reach, accept: &Reach) {
        let Some(inv) = self.policy.invariants.get(idx) else { return };
        let g: Vec<Cube> = guard.iter().filter_map(|c| self.space.import(c)).filter(|c| self.feasible(c)).collect();
        if g.is_empty() {
            return;
        }
        let breaks = |ks: &[ActionKind]| match inv.quantifier {
            Quantifier::Never => ks.iter().any(|k| inv.actions.contains(k)),
            Quantifier::Always => !ks.iter().any(|k| inv.actions.contains(k)),
        };
        let acts = kinds_text(&inv.actions);
        let tables_and_rules: [(Block, &[Row], &Reach); 2] =
            [(Block::Recover, &tables.recover, recover), (Block::Accept, &tables.accept, accept)];
        let mut retry_regions: Vec<(Cube, Span)> = Vec::new();
        let mut non_terminal: Vec<(Cube, Span)> = Vec::new();
        for (block, rows, reach) in tables_and_rules {
            let mut reported: Vec<usize> = Vec::new();
            let mut steps = 0usize;
            for (i, row) in rows.iter().enumerate() {
                let decision = match block {
                    Block::Accept => self.policy.accept.get(row.rule).map(|r| &r.decision),
                    _ => self.policy.recover.get(row.rule).map(|r| &r.decision),
                };
                let Some(decision) = decision else { continue };
                let ks = kinds(&decision.action);
                let regions = reach.regions.get(i).map_or(&[][..], Vec::as_slice);
                if ks.contains(&ActionKind::Retry) {
                    retry_regions.extend(regions.iter().map(|r| (r.clone(), row.span)));
                }
                if !decision.action.is_terminal() {
                    non_terminal.extend(regions.iter().map(|r| (r.clone(), row.span)));
                }
                if !breaks(&ks) || reported.contains(&row.rule) {
                    continue;
                }
                let exact = reach.exact.get(i) == Some(&true);
                let mut found = None;
                'search: for r in regions {
                    for gc in &g {
                        steps += 1;
                        if steps > MAX_STEPS {
                            self.incomplete.push((format!("invariant `{}`", inv.text), inv.span));
                            break 'search;
                        }
                        let Some(x) = self.space.intersect(r, gc) else { continue };
                        let Some(p) = self.witness(&x) else { continue };
                        if exact || self.first_row_at(rows, &p) == Some(i) {
                            found = Some((x, p));
                            break 'search;
                        }
                    }
                }
                let Some((x, p)) = found else { continue };
                reported.push(row.rule);
                let verb = show::action(&decision.action);
                let (label, inv_label) = match inv.quantifier {
                    Quantifier::Never => (format!("this rule can `{verb}` here"), format!("forbids `{acts}` here")),
                    Quantifier::Always => (format!("this rule takes `{verb}` here"), format!("requires `{acts}` here")),
                };
                self.diags.push(
                    Diagnostic::new(
                        Code::InvariantViolated,
                        format!("invariant `{}` can be violated", inv.text),
                        row.span,
                        label,
                    )
                    .with_label(inv.span, inv_label)
                    .with_note(format!("for example: `{}`", show::example(self.cols, &p, &x)))
                    .with_help(format!(
                        "handle these events in an earlier `{}` rule with an allowed action, or narrow this rule",
                        block.as_str()
                    )),
                );
            }
        }
        self.engine_decisions(inv, &g, &non_terminal, &retry_regions, &breaks, &acts);
    }

    /// The first row of `rows` the event satisfies.
    fn first_row_at(&self, rows: &[Row], partial: &[(usize, Val)]) -> Option<usize> {
        let point = self.complete(partial)?;
        rows.iter().position(|r| self.point_in(&point, &r.cube))
    }

    /// The first region (and its rule) that meets a guard box and `extra`,
    /// with an example event there.
    fn meeting(&self, regions: &[(Cube, Span)], g: &[Cube], extra: &Cube) -> Option<(String, Span)> {
        for (r, span) in regions {
            for gc in g {
                let Some(x) = self.space.intersect(r, gc).and_then(|x| self.space.intersect(&x, extra)) else {
                    continue;
                };
                if let Some(p) = self.witness(&x) {
                    return Some((show::example(self.cols, &p, &x), *span));
                }
            }
        }
        None
    }

    /// Budget and fleet decisions taken by the engine itself, in place of a
    /// rule's decision: the budget decision replaces a non-terminal decision
    /// when a cap is hit, a fleet decision replaces a retry on the same model
    /// while the fleet state holds.
    fn engine_decisions(
        &mut self,
        inv: &crate::check::ir::InvariantIr,
        g: &[Cube],
        non_terminal: &[(Cube, Span)],
        retry_regions: &[(Cube, Span)],
        breaks: &dyn Fn(&[ActionKind]) -> bool,
        acts: &str,
    ) {
        let budget = &self.policy.budget;
        let has_cap = budget.attempts.is_some()
            || budget.class_attempts.is_some()
            || budget.cost.is_some()
            || budget.latency_ms.is_some()
            || budget.resets.is_some()
            || budget.fallbacks.is_some();
        if has_cap {
            let (ks, text, span) = match &budget.exhausted {
                Some(d) => (kinds(&d.action), show::action(&d.action), d.span),
                None => (vec![ActionKind::Escalate], "escalate".to_string(), budget.span.unwrap_or(inv.span)),
            };
            if breaks(&ks)
                && let Some((ex, rule)) = self.meeting(non_terminal, g, &Cube::any())
            {
                self.diags.push(
                    Diagnostic::new(
                        Code::InvariantAtRisk,
                        format!("the budget decision can violate invariant `{}`", inv.text),
                        span,
                        format!("the engine takes `{text}` when a cap is hit"),
                    )
                    .with_label(rule, "in place of this rule's decision")
                    .with_label(inv.span, format!("{} `{acts}` here", verb(inv.quantifier)))
                    .with_note(format!("for example on `{ex}` once a cap is reached"))
                    .with_help("make the budget decision one the invariant allows"),
                );
            }
        }
        let fleet = [
            (self.policy.fleet.retry_budget.as_ref().map(|f| (&f.decision, f.span)), "fleet.retry_budget_exhausted"),
            (self.policy.fleet.breaker.as_ref().map(|f| (&f.decision, f.span)), "fleet.breaker_open"),
        ];
        for (entry, state) in fleet {
            let Some((decision, span)) = entry else { continue };
            if !breaks(&kinds(&decision.action)) {
                continue;
            }
            let state_cube = match self.cols.find(state) {
                Some(c) => Cube::single(c, Cell::Set(Bits::single(2))),
                None => Cube::any(),
            };
            let Some((ex, rule)) = self.meeting(retry_regions, g, &state_cube) else { continue };
            self.diags.push(
                Diagnostic::new(
                    Code::InvariantAtRisk,
                    format!("a fleet decision can violate invariant `{}`", inv.text),
                    span,
                    format!("the engine takes `{}` instead of a retry", show::action(&decision.action)),
                )
                .with_label(rule, "in place of this rule's retry")
                .with_label(inv.span, format!("{} `{acts}` here", verb(inv.quantifier)))
                .with_note(format!("for example on `{ex}`"))
                .with_help("make the fleet decision one the invariant allows, or stop retrying these events"),
            );
        }
    }
}

fn verb(q: Quantifier) -> &'static str {
    match q {
        Quantifier::Never => "forbids",
        Quantifier::Always => "requires",
    }
}

/// A readable number inside `ranges`: a closed end, else a midpoint or a
/// neighbour of an open end.
fn pick(ranges: &Ranges) -> Option<f64> {
    let iv = ranges.intervals().first()?;
    let x = if iv.lo.is_finite() && iv.lo_closed {
        iv.lo
    } else if iv.hi.is_finite() && iv.hi_closed {
        if iv.lo < 0.0 && iv.hi >= 0.0 { 0.0 } else { iv.hi }
    } else if iv.lo.is_finite() && iv.hi.is_finite() {
        (iv.lo + iv.hi) / 2.0
    } else if iv.lo.is_finite() {
        iv.lo + 1.0
    } else if iv.hi.is_finite() {
        if iv.hi > 0.0 { 0.0 } else { iv.hi - 1.0 }
    } else {
        0.0
    };
    Some(x)
}
