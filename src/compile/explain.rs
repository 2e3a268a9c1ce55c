//! Why a rule matched or did not: the decision table walked rule by rule
//! for one set of facts, with the first failing cell of every row of every
//! rule before the first match. `rcv explain` renders it.
//!
//! It tests cells with the evaluator's own test ([`CompiledPolicy::cell_holds`]),
//! so the first matching rule here is the rule table evaluation picks.

use serde::Serialize;

use super::columns::{Column, ColumnKind};
use super::{CompiledPolicy, Row, show};
use crate::schema::{Fact, Facts};
use crate::span::Span;

/// A rule block of the decision table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    Classify,
    Recover,
    /// Rows are where a requirement fails: a "match" is a failed requirement.
    Accept,
}

impl Block {
    pub fn as_str(self) -> &'static str {
        match self {
            Block::Classify => "classify",
            Block::Recover => "recover",
            Block::Accept => "accept",
        }
    }
}

/// One rule of a block, tested against the facts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrace {
    /// 0-based index of the rule in its block.
    pub index: usize,
    pub span: Span,
    pub matched: bool,
    /// For a rule that did not match: per table row of the rule, the first
    /// cell the facts fail. Empty for a rule with no rows (it can never match).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<CellFailure>,
}

/// A cell the facts fail: `column` holds `actual`, which is not in `cell`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellFailure {
    /// The column header (`error.http_status`, `error.message ~ /re/`).
    pub column: String,
    /// The field path the column reads.
    pub path: String,
    /// The cell in table notation (`{429}`, `[0,3)`, `!{high}`).
    pub cell: String,
    /// The fact value in policy notation (`400`, `"rate_limit"`, `<missing>`).
    pub actual: String,
}

impl CellFailure {
    /// One line: `error.http_status = 400, not in {429}`.
    pub fn text(&self) -> String {
        if let Some(re) = self.column.strip_prefix(&self.path).and_then(|r| r.strip_prefix(" ~ ")) {
            let wanted = if self.cell == "true" { "does not match" } else { "matches" };
            return format!("{} = {}, which {wanted} {re}", self.path, self.actual);
        }
        let bare = !self.cell.starts_with(['{', '[', '(', '!']) && !self.cell.starts_with('<');
        if bare {
            format!("{} = {}, not {}", self.column, self.actual, self.cell)
        } else {
            format!("{} = {}, not in {}", self.column, self.actual, self.cell)
        }
    }
}

/// Every rule of `block` up to and including the first that matches `facts`
/// (all of them when none matches).
pub fn explain_block(policy: &CompiledPolicy, block: Block, facts: &Facts<'_>) -> Vec<RuleTrace> {
    let (rows, spans): (&[Row], Vec<Span>) = match block {
        Block::Classify => (&policy.tables.classify, policy.source.classify.iter().map(|r| r.span).collect()),
        Block::Recover => (&policy.tables.recover, policy.source.recover.iter().map(|r| r.span).collect()),
        Block::Accept => (&policy.tables.accept, policy.source.accept.iter().map(|r| r.span).collect()),
    };
    let mut out = Vec::new();
    for (index, span) in spans.into_iter().enumerate() {
        let mut failed = Vec::new();
        let mut matched = false;
        for row in rows.iter().filter(|r| r.rule == index) {
            match first_failure(policy, row, facts) {
                Some(f) => failed.push(f),
                None => {
                    matched = true;
                    break;
                }
            }
        }
        if matched {
            failed.clear();
        }
        out.push(RuleTrace { index, span, matched, failed });
        if matched {
            break;
        }
    }
    out
}

/// The index of the first matching rule of `block`, if any.
pub fn first_match(traces: &[RuleTrace]) -> Option<usize> {
    traces.iter().find(|t| t.matched).map(|t| t.index)
}

fn first_failure(policy: &CompiledPolicy, row: &Row, facts: &Facts<'_>) -> Option<CellFailure> {
    row.cube.0.iter().find(|(col, cell)| !policy.cell_holds(*col, cell, facts)).map(|(col, cell)| {
        match policy.columns.get(*col) {
            Some(c) => CellFailure {
                column: c.name(),
                path: c.path.clone(),
                cell: show::cell(c, cell),
                actual: actual(c, facts.lookup(&c.path)),
            },
            None => {
                CellFailure { column: String::new(), path: String::new(), cell: String::new(), actual: String::new() }
            }
        }
    })
}

/// Longest string value shown before it is cut.
const MAX_SHOWN: usize = 80;

/// A fact in policy notation: bare enum members, quoted strings.
pub fn actual(col: &Column, fact: Fact<'_>) -> String {
    match fact {
        Fact::Absent => "<missing>".to_string(),
        Fact::Bool(b) => b.to_string(),
        Fact::Num(x) if x.is_nan() => "<missing>".to_string(),
        Fact::Num(x) => match col.unit() {
            Some(u) => u.show(x),
            None => format!("{x}"),
        },
        Fact::Str(s) => {
            let quoted = col.is_string() || matches!(col.kind, ColumnKind::Matches { .. });
            if !quoted {
                return s.to_string();
            }
            if s.chars().count() > MAX_SHOWN {
                let cut: String = s.chars().take(MAX_SHOWN).collect();
                format!("{:?}...", cut)
            } else {
                format!("{s:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;

    const POLICY: &str = r#"policy t version "1.0.0"
classes { rate_limited transient, bad transient, other }
reasons { R "r", E "e" severity high }
classify {
  error.http_status == 429 => rate_limited
  error.message ~ /schema/ => bad
  otherwise => other
}
recover {
  when class == rate_limited and attempt < 3 => retry, reason R
  otherwise => escalate, reason E
}
"#;

    fn policy() -> CompiledPolicy {
        let b = crate::compile::build(&Source::new("t.rcv", POLICY));
        b.policy.expect("compiles")
    }

    #[test]
    fn reports_the_failing_cell_of_each_earlier_rule() {
        let p = policy();
        let mut facts = Facts::default();
        facts.set("error.http_status", Fact::Num(400.0));
        facts.set("error.message", Fact::Str("bad request"));
        let t = explain_block(&p, Block::Classify, &facts);
        assert_eq!(t.len(), 3);
        assert_eq!(first_match(&t), Some(2));
        assert_eq!(t[0].failed[0].text(), "error.http_status = 400, not in {429}");
        assert_eq!(t[1].failed[0].text(), "error.message = \"bad request\", which does not match /schema/");
        assert_eq!(first_match(&t), p.classify(&facts).map(|h| h.rule));
    }

    #[test]
    fn stops_at_the_first_match() {
        let p = policy();
        let mut facts = Facts::default();
        facts.set("class", Fact::Str("rate_limited"));
        facts.set("attempt", Fact::Num(3.0));
        let t = explain_block(&p, Block::Recover, &facts);
        assert_eq!(t.len(), 2);
        assert!(!t[0].matched && t[1].matched);
        assert_eq!(t[0].failed[0].path, "attempt");
        assert_eq!(t[0].failed[0].actual, "3");
        assert_eq!(first_match(&t), p.recover(&facts).map(|h| h.rule));
    }
}
