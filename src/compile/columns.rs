//! Table columns: one per distinct field path a condition tests, plus one
//! boolean column per distinct regex on a string field. Each column knows
//! its value domain, the values events can really carry (its universe, used
//! only by the analyses), and how one atom of a condition constrains it.

use std::collections::HashMap;

use indexmap::{IndexMap, IndexSet};
use serde::Serialize;

use super::domain::{ABSENT_BIT, Bits, Cell, Interval, Ranges, Shape};
use crate::check::ir::{Atom, CheckedPolicy, Cond, Ord, Test, Value};
use crate::schema::{self, EnumKind, FieldType, Scope};
use crate::span::Span;

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnSource {
    /// Index into [`schema::FIELDS`].
    Field(usize),
    /// A `metadata.<key>` path.
    Metadata(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ColumnKind {
    /// An enum or a string compared with `==`/`in`: the members, then an
    /// implicit `<other>` member for every value not listed.
    Set {
        members: Vec<String>,
    },
    /// `false`, `true`.
    Bool,
    Number {
        unit: NumUnit,
    },
    /// Whether the field matches `pattern`: `false`, `true`.
    Matches {
        pattern: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumUnit {
    Int,
    Float,
    /// Milliseconds.
    Duration,
    /// US dollars.
    Money,
}

impl NumUnit {
    /// A value in policy syntax: `3`, `0.7`, `250ms`, `$0.05`.
    pub fn show(self, x: f64) -> String {
        match self {
            NumUnit::Int | NumUnit::Float => format!("{x}"),
            NumUnit::Duration => format!("{x}ms"),
            NumUnit::Money => format!("${x}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// The field path (`error.code`, `metadata.tenant`); for a regex column
    /// the path of the field it reads.
    pub path: String,
    #[serde(flatten)]
    pub kind: ColumnKind,
    #[serde(skip)]
    pub source: ColumnSource,
    /// The values events can carry (absent included when the field can be
    /// missing); analyses never look outside it.
    #[serde(skip)]
    pub universe: Cell,
    /// Where the column is first used.
    #[serde(skip)]
    pub span: Span,
}

impl Column {
    pub fn shape(&self) -> Shape {
        match &self.kind {
            ColumnKind::Set { members } => Shape::Set { members: members.len() + 1 },
            ColumnKind::Bool | ColumnKind::Matches { .. } => Shape::Set { members: 2 },
            ColumnKind::Number { unit } => Shape::Num { integer: *unit == NumUnit::Int },
        }
    }

    /// The header of the column in tables: the path, or `path ~ /re/`.
    pub fn name(&self) -> String {
        match &self.kind {
            ColumnKind::Matches { pattern } => format!("{} ~ /{}/", self.path, pattern),
            _ => self.path.clone(),
        }
    }

    /// Display name of the member at bit `bit` of a set cell.
    pub fn member_name(&self, bit: usize) -> String {
        if bit == ABSENT_BIT {
            return "<missing>".to_string();
        }
        match &self.kind {
            ColumnKind::Set { members } => members.get(bit - 1).cloned().unwrap_or_else(|| "<other>".to_string()),
            ColumnKind::Bool | ColumnKind::Matches { .. } => (if bit == 2 { "true" } else { "false" }).to_string(),
            ColumnKind::Number { .. } => String::new(),
        }
    }

    /// Whether the member at `bit` of a set column is the implicit `<other>`.
    pub fn is_other(&self, bit: usize) -> bool {
        matches!(&self.kind, ColumnKind::Set { members } if bit == members.len() + 1)
    }

    pub fn unit(&self) -> Option<NumUnit> {
        match &self.kind {
            ColumnKind::Number { unit } => Some(*unit),
            _ => None,
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self.field_type(), Some(FieldType::Str))
    }

    pub fn field_type(&self) -> Option<FieldType> {
        schema::lookup(&self.path).map(|f| f.ty)
    }
}

/// What identifies a column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Path(String),
    Regex(String, String),
}

/// The columns of one policy, in order of first use.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Columns {
    pub list: Vec<Column>,
    #[serde(skip)]
    index: IndexMap<Key, usize>,
    /// Per column, member name -> bit (set columns only).
    #[serde(skip)]
    bits: Vec<HashMap<String, usize>>,
}

impl Columns {
    /// Every column the policy's conditions use, with string domains made
    /// of the literals the policy mentions.
    pub fn discover(policy: &CheckedPolicy) -> Columns {
        let mut atoms: Vec<&Atom> = Vec::new();
        let conds = policy
            .classify
            .iter()
            .filter_map(|r| r.guard.as_ref())
            .chain(policy.recover.iter().filter_map(|r| r.guard.as_ref()))
            .chain(policy.accept.iter().map(|r| &r.require))
            .chain(policy.invariants.iter().map(|i| &i.guard));
        for c in conds {
            collect_atoms(c, &mut atoms);
        }
        let mut cols = Columns::default();
        // string literals per path, in order of first mention
        let mut literals: IndexMap<String, IndexSet<String>> = IndexMap::new();
        let mut spans: Vec<Span> = Vec::new();
        for a in &atoms {
            let key = match &a.test {
                Test::Matches(p) => Key::Regex(a.path.clone(), p.clone()),
                _ => Key::Path(a.path.clone()),
            };
            if !cols.index.contains_key(&key) {
                cols.index.insert(key, usize::MAX);
                spans.push(a.span);
            }
            let values: &[Value] = match &a.test {
                Test::Eq(v) => std::slice::from_ref(v),
                Test::In(vs) => vs,
                _ => &[],
            };
            let lits = literals.entry(a.path.clone()).or_default();
            for v in values {
                if let Value::Str(s) | Value::Sym(s) = v
                    && !lits.contains(s)
                {
                    lits.insert(s.clone());
                }
            }
        }
        let keys: Vec<Key> = cols.index.keys().cloned().collect();
        for (i, key) in keys.into_iter().enumerate() {
            let mut col = match &key {
                Key::Path(p) => {
                    let lits: Vec<String> = literals.get(p).map(|l| l.iter().cloned().collect()).unwrap_or_default();
                    make_column(policy, p, None, &lits)
                }
                Key::Regex(p, pat) => make_column(policy, p, Some(pat), &[]),
            };
            col.span = spans.get(i).copied().unwrap_or_default();
            let bits = match &col.kind {
                ColumnKind::Set { members } => members.iter().enumerate().map(|(i, m)| (m.clone(), i + 1)).collect(),
                _ => HashMap::new(),
            };
            cols.bits.push(bits);
            cols.list.push(col);
            cols.index.insert(key, i);
        }
        cols
    }

    /// The `==` column of a field path, if a condition uses it.
    pub fn find(&self, path: &str) -> Option<usize> {
        self.index.get(&Key::Path(path.to_string())).copied()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Column> {
        self.list.get(i)
    }

    pub fn shape(&self, i: usize) -> Shape {
        self.list.get(i).map_or(Shape::Set { members: 0 }, Column::shape)
    }

    /// The column an atom tests and the cell of values that satisfy it.
    pub fn atom(&self, atom: &Atom) -> Option<(usize, Cell)> {
        let key = match &atom.test {
            Test::Matches(p) => Key::Regex(atom.path.clone(), p.clone()),
            _ => Key::Path(atom.path.clone()),
        };
        let ci = *self.index.get(&key)?;
        let col = self.list.get(ci)?;
        Some((ci, atom_cell(col, self.bits.get(ci), &atom.test)))
    }
}

fn collect_atoms<'a>(c: &'a Cond, out: &mut Vec<&'a Atom>) {
    match c {
        Cond::True => {}
        Cond::Or(cs) | Cond::And(cs) => cs.iter().for_each(|c| collect_atoms(c, out)),
        Cond::Not(c) => collect_atoms(c, out),
        Cond::Atom(a) => out.push(a),
    }
}

fn make_column(policy: &CheckedPolicy, path: &str, regex: Option<&String>, literals: &[String]) -> Column {
    let field = schema::lookup(path);
    let ty = field.map_or(FieldType::Str, |f| f.ty);
    let always_present = field.is_some_and(|f| f.scope == Scope::State) || path == "kind";
    let source = match path.strip_prefix(schema::METADATA_PREFIX) {
        Some(key) => ColumnSource::Metadata(key.to_string()),
        None => ColumnSource::Field(schema::index_of(path).unwrap_or(usize::MAX)),
    };
    if let Some(pattern) = regex {
        return Column {
            path: path.to_string(),
            kind: ColumnKind::Matches { pattern: pattern.clone() },
            source,
            universe: Shape::Set { members: 2 }.full(),
            span: Span::default(),
        };
    }
    let (kind, universe) = match ty {
        FieldType::Enum(k) => {
            let members: Vec<String> = match k {
                EnumKind::Class => policy.classes.keys().cloned().collect(),
                EnumKind::Model => policy.models.keys().cloned().collect(),
                EnumKind::Strategy => policy.strategies.keys().cloned().collect(),
                _ => k.builtin_members().unwrap_or(&[]).iter().map(|s| s.to_string()).collect(),
            };
            // events only carry declared classes, risk levels, outcomes and kinds;
            // models and strategies may be ones the policy does not declare
            let other = matches!(k, EnumKind::Model | EnumKind::Strategy);
            let mut u = Bits::full(members.len() + 1);
            if !other {
                u.remove(members.len() + 1);
            }
            if always_present {
                u.remove(ABSENT_BIT);
            }
            (ColumnKind::Set { members }, Cell::Set(u))
        }
        FieldType::Str => {
            let mut u = Bits::full(literals.len() + 2);
            if always_present {
                u.remove(ABSENT_BIT);
            }
            (ColumnKind::Set { members: literals.to_vec() }, Cell::Set(u))
        }
        FieldType::Bool => {
            let mut u = Bits::full(3);
            if always_present {
                u.remove(ABSENT_BIT);
            }
            (ColumnKind::Bool, Cell::Set(u))
        }
        FieldType::Int | FieldType::Float | FieldType::Duration | FieldType::Money => {
            let unit = match ty {
                FieldType::Int => NumUnit::Int,
                FieldType::Duration => NumUnit::Duration,
                FieldType::Money => NumUnit::Money,
                _ => NumUnit::Float,
            };
            let integer = unit == NumUnit::Int;
            let iv = match path {
                "attempt" | "class_attempts" => Interval::at_least(1.0, true),
                "output.confidence" => Interval::between(0.0, true, 1.0, true),
                "error.http_status" => Interval::ALL,
                _ if matches!(unit, NumUnit::Duration | NumUnit::Money) || integer => Interval::at_least(0.0, true),
                _ => Interval::ALL,
            };
            (
                ColumnKind::Number { unit },
                Cell::Num { ranges: Ranges::from_intervals(vec![iv], integer), absent: !always_present },
            )
        }
    };
    Column { path: path.to_string(), kind, source, universe, span: Span::default() }
}

fn value_bit(col: &Column, bits: Option<&HashMap<String, usize>>, v: &Value) -> Option<usize> {
    match (&col.kind, v) {
        (ColumnKind::Set { .. }, Value::Str(s) | Value::Sym(s)) => bits?.get(s).copied(),
        (ColumnKind::Bool, Value::Bool(b)) => Some(if *b { 2 } else { 1 }),
        _ => None,
    }
}

fn cmp_interval(op: Ord, x: f64) -> Interval {
    match op {
        Ord::Lt => Interval::at_most(x, false),
        Ord::Le => Interval::at_most(x, true),
        Ord::Gt => Interval::at_least(x, false),
        Ord::Ge => Interval::at_least(x, true),
    }
}

/// The exact set of column values on which `test` holds.
fn atom_cell(col: &Column, lookup: Option<&HashMap<String, usize>>, test: &Test) -> Cell {
    let shape = col.shape();
    match (&col.kind, test) {
        (_, Test::Present) => shape.present(),
        (ColumnKind::Matches { .. }, _) | (ColumnKind::Bool, Test::IsTrue) => Cell::Set(Bits::single(2)),
        (ColumnKind::Set { .. } | ColumnKind::Bool, Test::Eq(v)) => {
            value_bit(col, lookup, v).map_or(shape.empty(), |b| Cell::Set(Bits::single(b)))
        }
        (ColumnKind::Set { .. } | ColumnKind::Bool, Test::In(vs)) => {
            let mut bits = Bits::empty();
            for b in vs.iter().filter_map(|v| value_bit(col, lookup, v)) {
                bits.insert(b);
            }
            Cell::Set(bits)
        }
        (ColumnKind::Set { members }, Test::Cmp(op, x)) => {
            // an ordered enum compared by member index
            let iv = cmp_interval(*op, *x);
            let mut bits = Bits::empty();
            for i in (0..members.len()).filter(|i| iv.contains(*i as f64)) {
                bits.insert(i + 1);
            }
            Cell::Set(bits)
        }
        (ColumnKind::Number { unit }, t) => {
            let integer = *unit == NumUnit::Int;
            let ivs = match t {
                Test::Eq(Value::Num(x)) => vec![Interval::point(*x)],
                Test::In(vs) => vs
                    .iter()
                    .filter_map(|v| if let Value::Num(x) = v { Some(Interval::point(*x)) } else { None })
                    .collect(),
                Test::Cmp(op, x) => vec![cmp_interval(*op, *x)],
                _ => Vec::new(),
            };
            Cell::Num { ranges: Ranges::from_intervals(ivs, integer), absent: false }
        }
        // a truthiness test of a non-boolean field, or a number compared to
        // a non-number: the checker rejects these, and nothing satisfies them
        _ => shape.empty(),
    }
}
