//! Readable forms of a compiled policy: [`TableView`] (serialised as JSON or
//! YAML) and a plain-text table.

use indexmap::IndexMap;
use serde::Serialize;

use super::columns::{ColumnKind, Columns};
use super::cube::Cube;
use super::{CompiledPolicy, Row, show};
use crate::span::{LineIndex, Span};
use crate::syntax::ast::{ActionKind, Quantifier};

/// The decision table of a compiled policy, rule by rule, with source
/// positions. Cells use the text notation of [`show::cell`].
#[derive(Debug, Clone, Serialize)]
pub struct TableView {
    pub policy: String,
    pub version: String,
    pub hash: String,
    /// `None` when a request can take unboundedly many decisions.
    pub max_decisions: Option<u32>,
    pub columns: Vec<ColumnView>,
    pub classify: Vec<RowView>,
    pub recover: Vec<RowView>,
    pub accept: Vec<RowView>,
    pub invariants: Vec<InvariantView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnView {
    /// The header used in rows: the path, or `path ~ /regex/`.
    pub name: String,
    pub path: String,
    #[serde(flatten)]
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowView {
    /// 1-based rule number within its block.
    pub rule: usize,
    pub line: usize,
    pub column: usize,
    /// Constrained columns only; every other column matches anything.
    pub when: IndexMap<String, String>,
    pub then: Then,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Then {
    Class { class: String },
    Decision { kind: ActionKind, action: String, reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct InvariantView {
    pub text: String,
    pub line: usize,
    pub column: usize,
    pub quantifier: Quantifier,
    pub actions: Vec<ActionKind>,
    /// The guard's rows: the invariant applies where any of them matches.
    pub when: Vec<IndexMap<String, String>>,
}

struct Pos<'a> {
    text: Option<(&'a str, LineIndex)>,
}

impl Pos<'_> {
    fn at(&self, span: Span) -> (usize, usize) {
        match &self.text {
            Some((t, idx)) => idx.line_col(t, span.start),
            None => (0, 0),
        }
    }
}

fn cells(cols: &Columns, cube: &Cube) -> IndexMap<String, String> {
    cube.0.iter().filter_map(|(c, cell)| cols.get(*c).map(|col| (col.name(), show::cell(col, cell)))).collect()
}

impl CompiledPolicy {
    /// The table view; `source_text` (the policy file) gives line and column
    /// numbers (zero without it).
    pub fn view(&self, source_text: Option<&str>) -> TableView {
        let pos = Pos { text: source_text.map(|t| (t, LineIndex::new(t))) };
        let cols = &self.columns;
        let row_view = |r: &Row, then: Then| {
            let (line, column) = pos.at(r.span);
            RowView { rule: r.rule + 1, line, column, when: cells(cols, &r.cube), then }
        };
        let decision = |d: &crate::check::ir::DecisionIr| Then::Decision {
            kind: d.action.kind(),
            action: show::action(&d.action),
            reason: d.reason.clone(),
        };
        let classify = self
            .tables
            .classify
            .iter()
            .filter_map(|r| {
                let rule = self.source.classify.get(r.rule)?;
                Some(row_view(r, Then::Class { class: rule.class.clone() }))
            })
            .collect();
        let recover = self
            .tables
            .recover
            .iter()
            .filter_map(|r| Some(row_view(r, decision(&self.source.recover.get(r.rule)?.decision))))
            .collect();
        let accept = self
            .tables
            .accept
            .iter()
            .filter_map(|r| Some(row_view(r, decision(&self.source.accept.get(r.rule)?.decision))))
            .collect();
        let invariants = self
            .source
            .invariants
            .iter()
            .zip(&self.tables.invariants)
            .map(|(inv, guard)| {
                let (line, column) = pos.at(inv.span);
                InvariantView {
                    text: inv.text.clone(),
                    line,
                    column,
                    quantifier: inv.quantifier,
                    actions: inv.actions.clone(),
                    when: guard.iter().map(|c| cells(cols, c)).collect(),
                }
            })
            .collect();
        TableView {
            policy: self.name.clone(),
            version: self.version.clone(),
            hash: self.hash.clone(),
            max_decisions: self.max_decisions,
            columns: cols
                .list
                .iter()
                .map(|c| ColumnView { name: c.name(), path: c.path.clone(), kind: c.kind.clone() })
                .collect(),
            classify,
            recover,
            accept,
            invariants,
        }
    }

    /// The table as aligned plain text: a header line with the policy name,
    /// version and hash, the decision bound, then one section per table with
    /// the columns it uses as headers and one line per row.
    pub fn to_text(&self, source_text: Option<&str>) -> String {
        let v = self.view(source_text);
        let mut out = format!("policy {} {} {}\n", v.policy, v.version, v.hash);
        out.push_str(&match v.max_decisions {
            Some(n) => format!("max decisions per request: {n}\n"),
            None => "max decisions per request: unbounded\n".to_string(),
        });
        let sections: [(&str, &[RowView], &str); 3] = [
            ("classify", &v.classify, "class"),
            ("recover", &v.recover, "decision"),
            ("accept (when the requirement fails)", &v.accept, "decision"),
        ];
        for (title, rows, result) in sections {
            if rows.is_empty() {
                continue;
            }
            out.push('\n');
            let rules = rows.iter().map(|r| r.rule).max().unwrap_or(0);
            out.push_str(&format!("{title}: {rules} rules, {} rows\n", rows.len()));
            let names = used_columns(&v.columns, rows.iter().map(|r| &r.when));
            let mut header: Vec<String> = vec!["rule".into(), "at".into()];
            header.extend(names.iter().cloned());
            header.push(format!("=> {result}"));
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut line = vec![r.rule.to_string(), format!("{}:{}", r.line, r.column)];
                    line.extend(names.iter().map(|n| r.when.get(n).cloned().unwrap_or_else(|| "*".into())));
                    line.push(match &r.then {
                        Then::Class { class } => format!("=> {class}"),
                        Then::Decision { action, reason, .. } => format!("=> {action}, reason {reason}"),
                    });
                    line
                })
                .collect();
            out.push_str(&align(&header, &body));
        }
        for inv in &v.invariants {
            out.push('\n');
            let q = match inv.quantifier {
                Quantifier::Never => "never",
                Quantifier::Always => "always",
            };
            let acts: Vec<&str> = inv.actions.iter().map(|a| a.as_str()).collect();
            out.push_str(&format!(
                "invariant {:?} at {}:{}: {q} {} when\n",
                inv.text,
                inv.line,
                inv.column,
                acts.join(" or ")
            ));
            let names = used_columns(&v.columns, inv.when.iter());
            let body: Vec<Vec<String>> = inv
                .when
                .iter()
                .map(|w| names.iter().map(|n| w.get(n).cloned().unwrap_or_else(|| "*".into())).collect())
                .collect();
            out.push_str(&align(&names, &body));
        }
        out
    }
}

fn used_columns<'a>(columns: &[ColumnView], rows: impl Iterator<Item = &'a IndexMap<String, String>>) -> Vec<String> {
    let used: Vec<&'a IndexMap<String, String>> = rows.collect();
    columns.iter().map(|c| c.name.clone()).filter(|n| used.iter().any(|w| w.contains_key(n))).collect()
}

/// Left-aligned columns separated by two spaces, indented by two.
fn align(header: &[String], body: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in body {
        for (i, c) in row.iter().enumerate().take(n) {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(body.iter().map(Vec::as_slice)) {
        let mut line = String::from(" ");
        for (i, c) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(c);
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(c.chars().count());
            line.extend(std::iter::repeat_n(' ', pad + 1));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
