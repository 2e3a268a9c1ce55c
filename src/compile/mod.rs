//! Checked policy -> decision table: lowering, analysis (gaps, shadowed
//! rules, termination, invariants), the policy hash, and table evaluation
//! used by the runtime.
//!
//! Each rule's condition becomes one or more table rows (its disjunctive
//! normal form); a row is a conjunction of cells, one per constrained
//! column (see [`columns`] and [`domain`]). Rows keep rule order, so the
//! first matching row gives the first matching rule, exactly as written.

pub mod analysis;
pub mod columns;
pub mod cube;
pub mod diff;
pub mod domain;
mod eval;
pub mod explain;
pub mod hash;
pub mod lower;
pub mod show;
pub mod view;

use regex::Regex;
use serde::Serialize;

use crate::check::CheckedPolicy;
use crate::check::ir::Cond;
use crate::diag::{Code, Diagnostic, Source};
use crate::schema::Facts;
use crate::span::Span;
use crate::syntax::ast::{ActionKind, Quantifier};

pub use columns::{Column, ColumnKind, Columns, NumUnit};
pub use cube::Cube;
pub use domain::{Cell, Interval, Ranges};
pub use view::TableView;

/// Compiled regexes may use at most this much memory each (the limit the
/// checker validates patterns with).
const REGEX_SIZE_LIMIT: usize = 1 << 22;

/// A rule hit: `rule` indexes the checked policy's rule list of that block
/// (`classify`, `recover` or `accept`), `row` the table row that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub rule: usize,
    pub row: usize,
}

/// One table row: a box of events, the rule it stands for, and that rule's span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub rule: usize,
    pub cube: Cube,
    pub span: Span,
}

/// The decision tables of a policy. Rows are in rule order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tables {
    /// Rows -> `source.classify[rule].class`.
    pub classify: Vec<Row>,
    /// Rows -> `source.recover[rule].decision`.
    pub recover: Vec<Row>,
    /// Rows where `source.accept[rule].require` FAILS -> its decision.
    pub accept: Vec<Row>,
    /// Per invariant, the boxes where its guard holds.
    pub invariants: Vec<Vec<Cube>>,
}

#[derive(Debug, Clone, Default)]
struct Compiled {
    eval: eval::Evaluator,
    classify: eval::EvalTable,
    recover: eval::EvalTable,
    accept: eval::EvalTable,
    invariants: Vec<eval::EvalTable>,
}

/// A compiled policy: the checked declarations and rules, their decision
/// table, and the hash that every output stamps.
#[derive(Debug, Clone, Serialize)]
pub struct CompiledPolicy {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the canonical compiled form.
    pub hash: String,
    /// Declarations and rules the table rows point back into.
    pub source: CheckedPolicy,
    pub columns: Columns,
    pub tables: Tables,
    /// See [`CompiledPolicy::max_decisions`].
    max_decisions: Option<u32>,
    #[serde(skip)]
    compiled: Compiled,
}

impl CompiledPolicy {
    /// The first `classify` rule that matches.
    pub fn classify(&self, facts: &Facts<'_>) -> Option<Hit> {
        self.compiled.eval.first_match(&self.compiled.classify, facts)
    }

    /// The first `recover` rule that matches (the `class` field holds the
    /// class `classify` gave).
    pub fn recover(&self, facts: &Facts<'_>) -> Option<Hit> {
        self.compiled.eval.first_match(&self.compiled.recover, facts)
    }

    /// The first `accept` requirement that fails.
    pub fn accept(&self, facts: &Facts<'_>) -> Option<Hit> {
        self.compiled.eval.first_match(&self.compiled.accept, facts)
    }

    /// Indices (into `source.invariants`) of invariants that taking
    /// `action` in this situation would violate: a `never` invariant listing
    /// it, or an `always` invariant not listing it, whose guard holds.
    pub fn violated_invariants(&self, facts: &Facts<'_>, action: ActionKind) -> Vec<usize> {
        self.source
            .invariants
            .iter()
            .zip(&self.compiled.invariants)
            .enumerate()
            .filter(|(_, (inv, _))| {
                let listed = inv.actions.contains(&action);
                match inv.quantifier {
                    Quantifier::Never => listed,
                    Quantifier::Always => !listed,
                }
            })
            .filter(|(_, (_, table))| self.compiled.eval.first_match(table, facts).is_some())
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether column `col` of `facts` lies in `cell`: the same test table
    /// evaluation makes, one cell at a time.
    pub fn cell_holds(&self, col: usize, cell: &Cell, facts: &Facts<'_>) -> bool {
        self.compiled.eval.cell_holds(col, cell, facts)
    }

    /// The most decisions one request can take (retries, fallbacks and
    /// resets plus the final decision), as proven by the analysis; `None`
    /// when it is unbounded (the build then has an RCV406 error).
    pub fn max_decisions(&self) -> Option<u32> {
        self.max_decisions
    }

    /// The canonical text the hash covers.
    pub fn canonical(&self) -> String {
        hash::canonical(&self.source, &self.columns.list, &self.tables)
    }
}

/// Everything one source file produced: diagnostics of every stage, and the
/// compiled policy when there was no error.
#[derive(Debug)]
pub struct Build {
    pub policy: Option<CompiledPolicy>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Build {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Decodes file bytes and runs the whole front end. Bytes that are not
/// UTF-8 get their RCV002 diagnostic and are not compiled.
pub fn build_bytes(name: impl Into<String>, bytes: Vec<u8>) -> (Source, Build) {
    let (source, bad_text) = Source::from_bytes(name, bytes);
    let build = match bad_text {
        Some(d) => Build { policy: None, diagnostics: vec![d] },
        None => build(&source),
    };
    (source, build)
}

/// Runs the whole front end on one source: parse, check, compile, analyse.
pub fn build(source: &Source) -> Build {
    let ast = match crate::syntax::parse(&source.text) {
        Ok(ast) => ast,
        Err(diagnostics) => return Build { policy: None, diagnostics },
    };
    let (checked, mut diagnostics) = crate::check::check(&ast);
    let policy = checked.map(|source| compile(source, &mut diagnostics));
    crate::diag::sort(&mut diagnostics);
    let policy = if diagnostics.iter().any(Diagnostic::is_error) { None } else { policy };
    Build { policy, diagnostics }
}

/// Every diagnostic [`build`] reports for `source`, sorted, without the
/// evaluator and the hash that only running a policy needs (`rcv check`
/// over many files spends its time here).
pub fn diagnostics(source: &Source) -> Vec<Diagnostic> {
    let ast = match crate::syntax::parse(&source.text) {
        Ok(ast) => ast,
        Err(diagnostics) => return diagnostics,
    };
    let (checked, mut diagnostics) = crate::check::check(&ast);
    if let Some(source) = checked {
        lower_and_analyse(&source, &mut diagnostics);
    }
    crate::diag::sort(&mut diagnostics);
    diagnostics
}

fn lower_rules<'a>(
    rules: impl Iterator<Item = (Option<&'a Cond>, bool, Span)>,
    cols: &Columns,
    space: &cube::Space,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<Row>, bool) {
    let mut rows = Vec::new();
    let mut ok = true;
    for (rule, (cond, negate, span)) in rules.enumerate() {
        let lowered = match (cond, negate) {
            (Some(c), true) => lower::negated_rows(c, cols, space),
            (c, _) => lower::rows(c, cols, space),
        };
        match lowered {
            Ok(cubes) => rows.extend(cubes.into_iter().map(|cube| Row { rule, cube, span })),
            Err(lower::TooManyRows) => {
                ok = false;
                diagnostics.push(too_complex(span));
            }
        }
    }
    (rows, ok)
}

fn too_complex(span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::RuleTooComplex,
        format!("this condition expands into more than {} table rows", lower::MAX_ROWS_PER_RULE),
        span,
        "too many combinations of `or` under `and`",
    )
    .with_help("split the rule into several rules, or test one field per `or` (`x in [a, b]` is one row)")
}

/// Lowers a checked policy and runs the analyses, appending their findings.
pub fn compile(source: CheckedPolicy, diagnostics: &mut Vec<Diagnostic>) -> CompiledPolicy {
    let Lowered { cols, regexes, tables, max_decisions } = lower_and_analyse(&source, diagnostics);
    let eval = eval::Evaluator::new(&cols.list, regexes);
    let compiled = Compiled {
        classify: eval.table(&tables.classify),
        recover: eval.table(&tables.recover),
        accept: eval.table(&tables.accept),
        invariants: tables.invariants.iter().enumerate().map(|(i, g)| eval.guard(g, i)).collect(),
        eval,
    };
    let hash = hash::hash(&source, &cols.list, &tables);
    CompiledPolicy {
        name: source.name.clone(),
        version: source.version.clone(),
        hash,
        source,
        columns: cols,
        tables,
        max_decisions,
        compiled,
    }
}

/// A checked policy lowered to tables, with what the analysis found.
struct Lowered {
    cols: Columns,
    regexes: Vec<Option<Regex>>,
    tables: Tables,
    max_decisions: Option<u32>,
}

/// Columns, regexes and tables of a checked policy, and the analysis over
/// them; every problem goes to `diagnostics`.
fn lower_and_analyse(source: &CheckedPolicy, diagnostics: &mut Vec<Diagnostic>) -> Lowered {
    let cols = Columns::discover(source);
    let mut regexes_ok = true;
    let regexes: Vec<Option<Regex>> = cols
        .list
        .iter()
        .map(|c| match &c.kind {
            ColumnKind::Matches { pattern } => {
                match regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build() {
                    Ok(r) => Some(r),
                    Err(e) => {
                        regexes_ok = false;
                        let why = match e {
                            regex::Error::CompiledTooBig(_) => "the pattern is too large to compile".to_string(),
                            other => format!("the pattern cannot be compiled: {other}"),
                        };
                        diagnostics.push(
                            Diagnostic::new(Code::BadRegex, why, c.span, "this regex")
                                .with_help("use a smaller pattern (fewer or smaller repetitions)"),
                        );
                        None
                    }
                }
            }
            _ => None,
        })
        .collect();
    let space = cube::Space::exact(cols.list.iter().map(Column::shape).collect());
    let (classify, ok1) =
        lower_rules(source.classify.iter().map(|r| (r.guard.as_ref(), false, r.span)), &cols, &space, diagnostics);
    let (recover, ok2) =
        lower_rules(source.recover.iter().map(|r| (r.guard.as_ref(), false, r.span)), &cols, &space, diagnostics);
    let (accept, ok3) =
        lower_rules(source.accept.iter().map(|r| (Some(&r.require), true, r.span)), &cols, &space, diagnostics);
    let mut invariants = Vec::new();
    let mut ok4 = true;
    for inv in &source.invariants {
        match lower::rows(Some(&inv.guard), &cols, &space) {
            Ok(cubes) => invariants.push(cubes),
            Err(lower::TooManyRows) => {
                ok4 = false;
                invariants.push(Vec::new());
                diagnostics.push(too_complex(inv.span));
            }
        }
    }
    let tables = Tables { classify, recover, accept, invariants };
    let max_decisions = if ok1 && ok2 && ok3 && ok4 && regexes_ok {
        let findings = analysis::analyse(source, &cols, &tables, &regexes);
        diagnostics.extend(findings.diagnostics);
        findings.max_decisions
    } else {
        None
    };
    Lowered { cols, regexes, tables, max_decisions }
}

#[cfg(test)]
mod tests;
