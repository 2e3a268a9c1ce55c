//! Table evaluation over [`Facts`]: first match, no allocation per decision.
//!
//! Each column has a precomputed reader (field index, or metadata key; enum
//! members resolved by binary search over a sorted name list; regexes
//! compiled once). A decision reads a column at most once: values are cached
//! in a fixed stack array of encoded `u64`s (a member bit index, or the bits
//! of an `f64`), filled lazily so a regex only runs when a row reaches it.

use regex::Regex;

use super::columns::{Column, ColumnKind, ColumnSource};
use super::cube::Cube;
use super::domain::{ABSENT_BIT, Cell, Interval};
use super::{Hit, Row};
use crate::schema::{Fact, Facts};

/// Columns of one table that get a cache slot; further columns are read
/// again at each test (still without allocating).
const CACHE: usize = 32;
const UNSET: u64 = u64::MAX;
/// How a missing number is encoded (NaN values from events count as missing).
const ABSENT_NUM: u64 = 0x7ff8_0000_0000_0000;

#[derive(Debug, Clone)]
enum Source {
    Field(usize),
    Metadata(String),
}

#[derive(Debug, Clone)]
enum Reader {
    /// Sorted `(member, bit)`; anything else present is `other`.
    Set {
        names: Vec<(String, u64)>,
        other: u64,
    },
    Bool,
    Num,
    Regex(Option<Regex>),
}

#[derive(Debug, Clone)]
struct ColReader {
    source: Source,
    reader: Reader,
}

impl ColReader {
    #[inline]
    fn fact<'a>(&self, facts: &Facts<'a>) -> Fact<'a> {
        match &self.source {
            Source::Field(i) => facts.get(*i),
            Source::Metadata(k) => facts.metadata(k),
        }
    }

    /// The encoded value of this column in `facts`.
    #[inline]
    fn read(&self, facts: &Facts<'_>) -> u64 {
        let fact = self.fact(facts);
        match &self.reader {
            Reader::Set { names, other } => match fact {
                Fact::Absent => ABSENT_BIT as u64,
                Fact::Str(s) => match names.binary_search_by(|(n, _)| n.as_str().cmp(s)) {
                    Ok(i) => names.get(i).map_or(*other, |(_, b)| *b),
                    Err(_) => *other,
                },
                Fact::Num(_) | Fact::Bool(_) => *other,
            },
            Reader::Bool => match fact {
                Fact::Bool(b) => 1 + u64::from(b),
                _ => ABSENT_BIT as u64,
            },
            Reader::Num => match fact {
                Fact::Num(x) if !x.is_nan() => x.to_bits(),
                _ => ABSENT_NUM,
            },
            Reader::Regex(re) => match fact {
                Fact::Str(s) => 1 + u64::from(re.as_ref().is_some_and(|r| r.is_match(s))),
                Fact::Absent => ABSENT_BIT as u64,
                Fact::Num(_) | Fact::Bool(_) => 1,
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Check {
    Small(u64),
    Words(Box<[u64]>),
    Num { ranges: Box<[Interval]>, absent: bool },
}

impl Check {
    #[inline]
    fn holds(&self, v: u64) -> bool {
        match self {
            Check::Small(bits) => v < 64 && bits >> v & 1 == 1,
            Check::Words(words) => {
                let v = v as usize;
                words.get(v / 64).is_some_and(|w| w >> (v % 64) & 1 == 1)
            }
            Check::Num { ranges, absent } => {
                if v == ABSENT_NUM {
                    *absent
                } else {
                    let x = f64::from_bits(v);
                    ranges.iter().any(|iv| iv.contains(x))
                }
            }
        }
    }

    fn of(cell: &Cell) -> Check {
        match cell {
            Cell::Set(bits) => match bits.as_small() {
                Some(w) => Check::Small(w),
                None => Check::Words(bits.words().into_boxed_slice()),
            },
            Cell::Num { ranges, absent } => {
                Check::Num { ranges: ranges.intervals().to_vec().into_boxed_slice(), absent: *absent }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct EvalRow {
    rule: usize,
    /// `(slot, check)`
    checks: Box<[(usize, Check)]>,
}

/// One table ready for evaluation.
#[derive(Debug, Clone, Default)]
pub struct EvalTable {
    /// Slot -> column.
    slots: Vec<usize>,
    rows: Vec<EvalRow>,
}

/// Everything evaluation needs, built once per compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    readers: Vec<ColReader>,
}

impl Evaluator {
    /// Readers for `columns`; `regexes[i]` is the compiled pattern of column
    /// `i` when it is a regex column.
    pub fn new(columns: &[Column], mut regexes: Vec<Option<Regex>>) -> Evaluator {
        let readers = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let source = match &c.source {
                    ColumnSource::Field(i) => Source::Field(*i),
                    ColumnSource::Metadata(k) => Source::Metadata(k.clone()),
                };
                let reader = match &c.kind {
                    ColumnKind::Set { members } => {
                        let mut names: Vec<(String, u64)> =
                            members.iter().enumerate().map(|(i, m)| (m.clone(), i as u64 + 1)).collect();
                        names.sort();
                        names.dedup_by(|a, b| a.0 == b.0);
                        Reader::Set { names, other: members.len() as u64 + 1 }
                    }
                    ColumnKind::Bool => Reader::Bool,
                    ColumnKind::Number { .. } => Reader::Num,
                    ColumnKind::Matches { .. } => Reader::Regex(regexes.get_mut(i).and_then(Option::take)),
                };
                ColReader { source, reader }
            })
            .collect();
        Evaluator { readers }
    }

    pub fn table(&self, rows: &[Row]) -> EvalTable {
        let mut slots: Vec<usize> = Vec::new();
        let rows = rows.iter().map(|r| EvalRow { rule: r.rule, checks: checks(&r.cube, &mut slots) }).collect();
        EvalTable { slots, rows }
    }

    /// Plain boxes (an invariant's guard) as a table whose rows all point at `rule`.
    pub fn guard(&self, cubes: &[Cube], rule: usize) -> EvalTable {
        let mut slots: Vec<usize> = Vec::new();
        let rows = cubes.iter().map(|c| EvalRow { rule, checks: checks(c, &mut slots) }).collect();
        EvalTable { slots, rows }
    }

    /// The first row of `table` that `facts` satisfy.
    #[inline]
    pub fn first_match(&self, table: &EvalTable, facts: &Facts<'_>) -> Option<Hit> {
        let mut cache = [UNSET; CACHE];
        'rows: for (ri, row) in table.rows.iter().enumerate() {
            for (slot, check) in row.checks.iter() {
                let v = match cache.get_mut(*slot) {
                    Some(c) => {
                        if *c == UNSET {
                            *c = self.read_slot(table, *slot, facts);
                        }
                        *c
                    }
                    None => self.read_slot(table, *slot, facts),
                };
                if !check.holds(v) {
                    continue 'rows;
                }
            }
            return Some(Hit { rule: row.rule, row: ri });
        }
        None
    }

    /// Whether column `col` of `facts` lies in `cell` (the test one table
    /// cell makes; explanations use it cell by cell).
    pub fn cell_holds(&self, col: usize, cell: &super::domain::Cell, facts: &Facts<'_>) -> bool {
        self.readers.get(col).is_some_and(|r| Check::of(cell).holds(r.read(facts)))
    }

    #[inline]
    fn read_slot(&self, table: &EvalTable, slot: usize, facts: &Facts<'_>) -> u64 {
        match table.slots.get(slot).and_then(|c| self.readers.get(*c)) {
            Some(r) => r.read(facts),
            None => UNSET,
        }
    }
}

fn checks(cube: &Cube, slots: &mut Vec<usize>) -> Box<[(usize, Check)]> {
    cube.0
        .iter()
        .map(|(col, cell)| {
            let slot = match slots.iter().position(|c| c == col) {
                Some(s) => s,
                None => {
                    slots.push(*col);
                    slots.len() - 1
                }
            };
            (slot, Check::of(cell))
        })
        .collect()
}
