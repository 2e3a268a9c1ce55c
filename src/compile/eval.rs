//! Table evaluation over [`Facts`]: first match, no allocation per decision.
//!
//! Each column has a precomputed reader (field index, or metadata key; enum
//! members resolved by a search ordered by length, then bytes; regexes
//! compiled once) that encodes the column's value of an input as a `u64`
//! (a member bit index, or the bits of an `f64`).
//!
//! A table is evaluated column by column over a row index: for each column
//! the table reads, the values it can take fall into a few regions (a member
//! of a set column; a point or an open stretch between the interval ends of
//! a numeric column; missing), and per region the index holds the bitset of
//! rows whose cell accepts it (rows that do not constrain the column accept
//! every region). Evaluation keeps a bitset of candidate rows: all rows,
//! ANDed with the bitsets of the event fields the table reads (cheap reads,
//! done up front in a fixed order). Then, while the first candidate still
//! constrains a column not read yet (a regex test or a metadata key), it
//! reads that column and ANDs the region's bitset in. When the first
//! candidate has no unread column left, every one of its cells holds, and no
//! earlier row can: that row is the first match. Each column is read at most
//! once, and a regex runs only when no earlier row can match without it.
//!
//! Tables the index does not fit (more than 64 columns, or an index larger
//! than [`MAX_INDEX_WORDS`]) are evaluated row by row with a per-decision
//! value cache, with the same result.

use regex::Regex;

use super::columns::{Column, ColumnKind, ColumnSource};
use super::cube::Cube;
use super::domain::{ABSENT_BIT, Cell, Interval};
use super::{Hit, Row};
use crate::schema::{Fact, Facts};

/// Columns of one table that get a cache slot in row-by-row evaluation;
/// further columns are read again at each test (still without allocating).
const CACHE: usize = 32;
const UNSET: u64 = u64::MAX;
/// How a missing number is encoded (NaN values from events count as missing).
const ABSENT_NUM: u64 = 0x7ff8_0000_0000_0000;
/// Most columns one indexed table may read (one bit each in a `u64`).
const MAX_INDEX_COLUMNS: usize = 64;
/// Largest row index kept per table, in 64-bit words (2 MiB); larger tables
/// are evaluated row by row.
const MAX_INDEX_WORDS: usize = 1 << 18;
/// Candidate rows are tracked 64 * `CHUNK` at a time (on the stack).
const CHUNK: usize = 16;

#[derive(Debug, Clone)]
enum Source {
    Field(usize),
    Metadata(String),
}

/// The members of a set column, for lookup by name. Each name has a key of
/// its length and two 8-byte words read from its start and end, which
/// together hold every byte of a name up to 16 bytes long: a lookup builds
/// the key of the input once, binary-searches the sorted keys with integer
/// compares, and compares bytes only for longer names whose key matched.
#[derive(Debug, Clone)]
struct Members {
    keys: Box<[Key]>,
    names: Box<[Box<str>]>,
    /// Bit of each name (same order).
    bits: Box<[u64]>,
    other: u64,
}

type Key = (usize, u64, u64);

/// Bytes `at..at + N` of `b` (zeros past its end).
#[inline]
fn word<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N).and_then(|s| s.try_into().ok()).unwrap_or([0; N])
}

/// Length, then the first and last 8 bytes (overlapping; for names
/// shorter than 8 bytes the first and last 4, 2 or 1).
#[inline]
fn key(s: &str) -> Key {
    let b = s.as_bytes();
    let n = b.len();
    let (head, tail) = if n >= 8 {
        (u64::from_le_bytes(word::<8>(b, 0)), u64::from_le_bytes(word::<8>(b, n - 8)))
    } else if n >= 4 {
        (u64::from(u32::from_le_bytes(word::<4>(b, 0))), u64::from(u32::from_le_bytes(word::<4>(b, n - 4))))
    } else if n >= 2 {
        (u64::from(u16::from_le_bytes(word::<2>(b, 0))), u64::from(u16::from_le_bytes(word::<2>(b, n - 2))))
    } else {
        (b.first().map_or(0, |c| u64::from(*c)), 0)
    };
    (n, head, tail)
}

impl Members {
    fn new(members: &[String]) -> Members {
        // the first of duplicate names keeps its bit
        let mut named: Vec<(Key, &str, u64)> =
            members.iter().enumerate().map(|(i, m)| (key(m), m.as_str(), i as u64 + 1)).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)).then(a.2.cmp(&b.2)));
        named.dedup_by(|a, b| a.1 == b.1);
        Members {
            keys: named.iter().map(|n| n.0).collect(),
            names: named.iter().map(|n| n.1.into()).collect(),
            bits: named.iter().map(|n| n.2).collect(),
            other: members.len() as u64 + 1,
        }
    }

    #[inline]
    fn bit(&self, s: &str) -> u64 {
        let k = key(s);
        let mut i = self.keys.partition_point(|x| *x < k);
        while self.keys.get(i) == Some(&k) {
            if k.0 <= 16 || self.names.get(i).is_some_and(|n| n.as_bytes() == s.as_bytes()) {
                return self.bits.get(i).copied().unwrap_or(self.other);
            }
            i += 1;
        }
        self.other
    }
}

#[derive(Debug, Clone)]
enum Reader {
    /// Named members; anything else present is `other`.
    Set(Members),
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
            Reader::Set(members) => match fact {
                Fact::Absent => ABSENT_BIT as u64,
                Fact::Str(s) => members.bit(s),
                Fact::Num(_) | Fact::Bool(_) => members.other,
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

    /// How many distinct encoded values a set-like column has (`None` for
    /// numbers).
    fn set_values(&self) -> Option<usize> {
        match &self.reader {
            Reader::Set(m) => usize::try_from(m.other).ok().map(|o| o + 1),
            Reader::Bool | Reader::Regex(_) => Some(3),
            Reader::Num => None,
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

/// How a column's encoded value maps to a region of its row index.
#[derive(Debug, Clone)]
enum Regions {
    /// Set-like columns: the encoded value is the region (`0..n`).
    Direct,
    /// Numbers: the sorted distinct interval ends of the table's cells, with
    /// both infinities. Region `2i` is the point `points[i]`, region `2i + 1`
    /// the open stretch after it; the last region (`2 * points.len() - 1`)
    /// is a missing value.
    Num { points: Box<[f64]> },
}

impl Regions {
    #[inline]
    fn of(&self, v: u64) -> usize {
        match self {
            Regions::Direct => usize::try_from(v).unwrap_or(usize::MAX),
            Regions::Num { points } => {
                if v == ABSENT_NUM {
                    return 2 * points.len() - 1;
                }
                // never NaN: the reader encodes NaN as missing
                let x = f64::from_bits(v);
                let i = points.partition_point(|p| *p < x);
                if points.get(i) == Some(&x) { 2 * i } else { (2 * i).saturating_sub(1) }
            }
        }
    }
}

/// One column of a row index.
#[derive(Debug, Clone)]
struct IndexCol {
    reader: ColReader,
    /// Offset of region 0's bitset in [`Index::bits`].
    base: usize,
    regions: Regions,
    /// Number of regions.
    count: usize,
}

impl IndexCol {
    /// The region of this column's value in `facts`.
    #[inline]
    fn region(&self, facts: &Facts<'_>) -> usize {
        self.regions.of(self.reader.read(facts))
    }

    /// The row bitset of this column's value in `facts`, in a one-word index.
    #[inline]
    fn word(&self, bits: &[u64], facts: &Facts<'_>) -> u64 {
        let region = self.region(facts);
        if region < self.count { bits.get(self.base + region).copied().unwrap_or(0) } else { 0 }
    }
}

/// The column-major form of a table: per column and region, the bitset of
/// rows that accept it.
#[derive(Debug, Clone)]
struct Index {
    /// Words per row bitset.
    words: usize,
    /// Row -> rule.
    rules: Box<[usize]>,
    /// Row -> the slots (bit per slot) it constrains.
    needs: Box<[u64]>,
    /// Slots read up front, before any row is looked at: fields that are
    /// not regex tests (a fixed sequence of cheap reads; the rest are read
    /// when the first candidate needs them).
    eager: u64,
    /// Slot -> its column and regions.
    cols: Box<[IndexCol]>,
    /// Every region's row bitset, `words` words each.
    bits: Box<[u64]>,
}

impl Index {
    fn build(readers: &[ColReader], slots: &[usize], rows: &[EvalRow]) -> Option<Index> {
        if slots.len() > MAX_INDEX_COLUMNS {
            return None;
        }
        let words = rows.len().div_ceil(64);
        let mut cols = Vec::with_capacity(slots.len());
        let mut total = 0usize;
        for (slot, &col) in slots.iter().enumerate() {
            let reader = readers.get(col)?;
            let cells = rows.iter().flat_map(|r| r.checks.iter().filter(|(s, _)| *s == slot).map(|(_, c)| c));
            let (regions, count) = match reader.set_values() {
                Some(n) => {
                    if cells.into_iter().any(|c| matches!(c, Check::Num { .. })) {
                        return None;
                    }
                    (Regions::Direct, n)
                }
                None => {
                    let mut points = vec![f64::NEG_INFINITY, f64::INFINITY];
                    for c in cells {
                        let Check::Num { ranges, .. } = c else { return None };
                        points.extend(ranges.iter().flat_map(|iv| [iv.lo, iv.hi]).filter(|x| !x.is_nan()));
                    }
                    points.sort_by(f64::total_cmp);
                    points.dedup_by(|a, b| a == b);
                    let count = 2 * points.len();
                    (Regions::Num { points: points.into_boxed_slice() }, count)
                }
            };
            cols.push(IndexCol { reader: reader.clone(), base: total, regions, count });
            total = total.checked_add(count.checked_mul(words)?)?;
            if total > MAX_INDEX_WORDS {
                return None;
            }
        }
        let mut bits = vec![0u64; total];
        let mut needs = vec![0u64; rows.len()];
        for (ri, row) in rows.iter().enumerate() {
            let (w, b) = (ri / 64, 1u64 << (ri % 64));
            for (slot, ic) in cols.iter().enumerate() {
                let mut checks = row.checks.iter().filter(|(s, _)| *s == slot).map(|(_, c)| c).peekable();
                if checks.peek().is_some()
                    && let Some(n) = needs.get_mut(ri)
                {
                    *n |= 1 << slot;
                }
                let checks: Vec<&Check> = checks.collect();
                for region in 0..ic.count {
                    if checks.iter().all(|c| region_holds(c, &ic.regions, region))
                        && let Some(word) = bits.get_mut(ic.base + region * words + w)
                    {
                        *word |= b;
                    }
                }
            }
        }
        Some(Index {
            words,
            rules: rows.iter().map(|r| r.rule).collect(),
            needs: needs.into_boxed_slice(),
            eager: cols
                .iter()
                .enumerate()
                .filter(|(_, ic)| {
                    matches!(ic.reader.source, Source::Field(_)) && !matches!(ic.reader.reader, Reader::Regex(_))
                })
                .fold(0, |m, (s, _)| m | 1 << s),
            cols: cols.into_boxed_slice(),
            bits: bits.into_boxed_slice(),
        })
    }
}

/// Whether `check` accepts every value of `region`.
fn region_holds(check: &Check, regions: &Regions, region: usize) -> bool {
    match regions {
        Regions::Direct => check.holds(region as u64),
        Regions::Num { points } => {
            if region + 1 == 2 * points.len() {
                return check.holds(ABSENT_NUM);
            }
            let i = region / 2;
            let Some(&a) = points.get(i) else { return false };
            if region.is_multiple_of(2) {
                return check.holds(a.to_bits());
            }
            let Some(&b) = points.get(i + 1) else { return false };
            // every interval end is a point, so an interval either covers
            // the open stretch (a, b) or misses it
            match check {
                Check::Num { ranges, .. } => ranges.iter().any(|iv| iv.lo <= a && iv.hi >= b),
                Check::Small(_) | Check::Words(_) => false,
            }
        }
    }
}

/// One table ready for evaluation.
#[derive(Debug, Clone, Default)]
pub struct EvalTable {
    /// Slot -> column.
    slots: Vec<usize>,
    rows: Vec<EvalRow>,
    index: Option<Index>,
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
                    ColumnKind::Set { members } => Reader::Set(Members::new(members)),
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
        let rows: Vec<EvalRow> =
            rows.iter().map(|r| EvalRow { rule: r.rule, checks: checks(&r.cube, &mut slots) }).collect();
        self.finish(slots, rows)
    }

    /// Plain boxes (an invariant's guard) as a table whose rows all point at `rule`.
    pub fn guard(&self, cubes: &[Cube], rule: usize) -> EvalTable {
        let mut slots: Vec<usize> = Vec::new();
        let rows: Vec<EvalRow> = cubes.iter().map(|c| EvalRow { rule, checks: checks(c, &mut slots) }).collect();
        self.finish(slots, rows)
    }

    fn finish(&self, slots: Vec<usize>, rows: Vec<EvalRow>) -> EvalTable {
        let index = Index::build(&self.readers, &slots, &rows);
        EvalTable { slots, rows, index }
    }

    /// The first row of `table` that `facts` satisfy.
    #[inline]
    pub fn first_match(&self, table: &EvalTable, facts: &Facts<'_>) -> Option<Hit> {
        match &table.index {
            Some(index) => self.first_match_indexed(index, facts),
            None => self.first_match_rows(table, facts),
        }
    }

    /// [`Evaluator::first_match`] over the row index.
    #[inline]
    fn first_match_indexed(&self, ix: &Index, facts: &Facts<'_>) -> Option<Hit> {
        if ix.words == 1 { self.first_match_word(ix, facts) } else { self.first_match_chunks(ix, facts) }
    }

    /// Tables of at most 64 rows: the candidates are one word.
    #[inline]
    fn first_match_word(&self, ix: &Index, facts: &Facts<'_>) -> Option<Hit> {
        let mut m = u64::MAX >> (64 - ix.rules.len().min(64));
        let mut e = ix.eager;
        while e != 0 {
            let s = e.trailing_zeros() as usize;
            e &= e - 1;
            m &= ix.cols.get(s).map_or(0, |ic| ic.word(&ix.bits, facts));
        }
        let mut read = ix.eager;
        while m != 0 {
            let row = m.trailing_zeros() as usize;
            let need = ix.needs.get(row).copied().unwrap_or(0) & !read;
            if need == 0 {
                return ix.rules.get(row).map(|&rule| Hit { rule, row });
            }
            let s = need.trailing_zeros() as usize;
            read |= 1 << s;
            m &= ix.cols.get(s).map_or(0, |ic| ic.word(&ix.bits, facts));
        }
        None
    }

    /// Larger tables, [`CHUNK`] words of candidates at a time.
    fn first_match_chunks(&self, ix: &Index, facts: &Facts<'_>) -> Option<Hit> {
        // region of each slot read so far (bit set in `read`)
        let mut region = [0usize; MAX_INDEX_COLUMNS];
        let mut read = ix.eager;
        let mut e = ix.eager;
        while e != 0 {
            let s = e.trailing_zeros() as usize;
            e &= e - 1;
            if let (Some(r), Some(ic)) = (region.get_mut(s), ix.cols.get(s)) {
                *r = ic.region(facts);
            }
        }
        let mut mask = [0u64; CHUNK];
        let mut start = 0;
        while start < ix.words {
            let n = CHUNK.min(ix.words - start);
            let m = mask.get_mut(..n)?;
            m.fill(u64::MAX);
            let rows_left = ix.rules.len() - start * 64;
            if rows_left < n * 64
                && let Some(last) = m.last_mut()
            {
                *last = u64::MAX >> (64 - rows_left % 64);
            }
            let mut r = read;
            while r != 0 {
                let s = r.trailing_zeros() as usize;
                r &= r - 1;
                and_region(ix, s, region.get(s).copied().unwrap_or(0), start, m);
            }
            let mut w = 0;
            while let Some(&word) = m.get(w) {
                if word == 0 {
                    w += 1;
                    continue;
                }
                let row = (start + w) * 64 + word.trailing_zeros() as usize;
                let need = ix.needs.get(row).copied().unwrap_or(0) & !read;
                if need == 0 {
                    return ix.rules.get(row).map(|&rule| Hit { rule, row });
                }
                let s = need.trailing_zeros() as usize;
                let reg = ix.cols.get(s).map_or(usize::MAX, |ic| ic.region(facts));
                if let Some(slot) = region.get_mut(s) {
                    *slot = reg;
                }
                read |= 1 << s;
                and_region(ix, s, reg, start, m);
            }
            start += n;
        }
        None
    }

    /// [`Evaluator::first_match`] row by row.
    fn first_match_rows(&self, table: &EvalTable, facts: &Facts<'_>) -> Option<Hit> {
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

/// `mask &= ` the row bitset of `region` of slot `slot`, over the words
/// from `start`; a region outside the index accepts no row.
#[inline]
fn and_region(ix: &Index, slot: usize, region: usize, start: usize, mask: &mut [u64]) {
    let from = ix.cols.get(slot).filter(|ic| region < ic.count).map(|ic| ic.base + region * ix.words + start);
    match from.and_then(|f| ix.bits.get(f..f + mask.len())) {
        Some(bits) => mask.iter_mut().zip(bits).for_each(|(m, b)| *m &= b),
        None => mask.fill(0),
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::compile::domain::{Bits, Ranges};
    use crate::compile::{NumUnit, Row};
    use crate::schema::index_of;
    use crate::span::Span;

    /// Two long members that share their length and first and last 8 bytes.
    const LONG_A: &str = "error_code__middle_A__tail_end";
    const LONG_B: &str = "error_code__middle_B__tail_end";

    fn column(path: &str, kind: ColumnKind) -> Column {
        let source = match path.strip_prefix("metadata.") {
            Some(k) => ColumnSource::Metadata(k.to_string()),
            None => ColumnSource::Field(index_of(path).unwrap()),
        };
        Column { path: path.to_string(), kind, source, universe: Cell::Set(Bits::empty()), span: Span::default() }
    }

    fn set(path: &str, members: &[&str]) -> Column {
        column(path, ColumnKind::Set { members: members.iter().map(|m| m.to_string()).collect() })
    }

    /// Columns of every kind and source, and their regexes.
    fn columns() -> (Vec<Column>, Vec<Option<Regex>>) {
        let cols = vec![
            set("class", &["timeout", "rate_limited", "auth_failed"]),
            set("error.code", &["", "a", "b", "abcdefgh", "abcdefghi", LONG_A, LONG_B]),
            column("tool.side_effects", ColumnKind::Bool),
            column("attempt", ColumnKind::Number { unit: NumUnit::Int }),
            column("output.confidence", ColumnKind::Number { unit: NumUnit::Float }),
            column("error.message", ColumnKind::Matches { pattern: "time".into() }),
            set("metadata.tenant", &["acme", "globex"]),
        ];
        let regexes = cols
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Matches { pattern } => Some(Regex::new(pattern).unwrap()),
                _ => None,
            })
            .collect();
        (cols, regexes)
    }

    const ENDS: [f64; 7] = [f64::NEG_INFINITY, 0.0, 0.5, 1.0, 2.0, 3.0, f64::INFINITY];

    /// A random cell for column `col`, from a seed.
    fn cell(cols: &[Column], col: usize, seed: u64) -> Cell {
        match cols[col].shape() {
            crate::compile::domain::Shape::Set { members } => {
                let mut bits = Bits::empty();
                for b in 0..members + 1 {
                    if seed >> b & 1 == 1 {
                        bits.insert(b);
                    }
                }
                Cell::Set(bits)
            }
            crate::compile::domain::Shape::Num { integer } => {
                let pick = |s: u64| ENDS[(s % ENDS.len() as u64) as usize];
                let mut ivs = Vec::new();
                for k in 0..(seed % 3) {
                    let s = seed >> (8 * k + 2);
                    let (a, b) = (pick(s), pick(s >> 3));
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    ivs.push(Interval::between(
                        lo,
                        s >> 6 & 1 == 1 && lo.is_finite(),
                        hi,
                        s >> 7 & 1 == 1 && hi.is_finite(),
                    ));
                }
                Cell::Num { ranges: Ranges::from_intervals(ivs, integer), absent: seed >> 30 & 1 == 1 }
            }
        }
    }

    /// Rows from seeds: each seed picks the columns a row constrains and its cells.
    fn rows(cols: &[Column], seeds: &[u64]) -> Vec<Row> {
        seeds
            .iter()
            .enumerate()
            .map(|(i, &seed)| {
                let mut cube = Vec::new();
                let mut s = seed;
                for col in 0..cols.len() {
                    // about one column in three is constrained
                    if s % 3 == 0 {
                        cube.push((col, cell(cols, col, s.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)));
                    }
                    s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                }
                Row { rule: i / 2, cube: Cube(cube), span: Span::default() }
            })
            .collect()
    }

    fn value(v: u64, strs: &[&'static str], nums: &[f64]) -> Fact<'static> {
        match v % 8 {
            0 => Fact::Absent,
            1 => Fact::Bool(v >> 3 & 1 == 1),
            2..=4 => Fact::Str(strs[(v >> 3) as usize % strs.len()]),
            _ => Fact::Num(nums[(v >> 3) as usize % nums.len()]),
        }
    }

    const STRS: [&str; 16] = [
        "",
        "a",
        "b",
        "c",
        "abcdefgh",
        "abcdefghi",
        "abcdefgx",
        LONG_A,
        LONG_B,
        "error_code__middle_C__tail_end",
        "timeout",
        "rate_limited",
        "auth_failed",
        "request timed out",
        "acme",
        "globex",
    ];
    const NUMS: [f64; 14] =
        [0.0, -0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

    /// Both evaluations of `rows` agree on every input.
    fn agree(rows: &[Row], inputs: &[[u64; 8]]) {
        let (cols, regexes) = columns();
        let ev = Evaluator::new(&cols, regexes);
        let table = ev.table(rows);
        let ix = table.index.as_ref().expect("the table is indexed");
        let mut tenant = serde_json::Map::new();
        for input in inputs {
            let mut f = Facts::default();
            for (col, v) in cols.iter().zip(input) {
                if let ColumnSource::Field(i) = col.source {
                    f.fields[i] = value(*v, &STRS, &NUMS);
                }
            }
            tenant.clear();
            match value(input[7], &STRS, &NUMS) {
                Fact::Str(s) => drop(tenant.insert("tenant".into(), serde_json::Value::String(s.into()))),
                Fact::Bool(b) => drop(tenant.insert("tenant".into(), serde_json::Value::Bool(b))),
                Fact::Num(x) => drop(tenant.insert("tenant".into(), serde_json::json!(x))),
                Fact::Absent => {}
            }
            f.metadata = Some(&tenant);
            let by_rows = ev.first_match_rows(&table, &f);
            assert_eq!(ev.first_match_indexed(ix, &f), by_rows, "rows {rows:?}, input {f:?}");
            assert_eq!(ev.first_match(&table, &f), by_rows);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn row_index_agrees_with_the_row_loop(
            seeds in prop::collection::vec(any::<u64>(), 1..200),
            inputs in prop::collection::vec(any::<[u64; 8]>(), 1..40),
        ) {
            let (cols, _) = columns();
            agree(&rows(&cols, &seeds), &inputs);
        }
    }

    /// More rows than one chunk of candidates, and a row count that is
    /// not a multiple of 64.
    #[test]
    fn row_index_agrees_across_chunks() {
        let (cols, _) = columns();
        let mut x: u64 = 7;
        let mut next = || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            x
        };
        for n in [63, 64, 65, 64 * CHUNK, 64 * CHUNK + 1, 2 * 64 * CHUNK + 37] {
            let seeds: Vec<u64> = (0..n).map(|_| next() | 1).collect();
            let inputs: Vec<[u64; 8]> = (0..300).map(|_| std::array::from_fn(|_| next())).collect();
            agree(&rows(&cols, &seeds), &inputs);
        }
    }

    #[test]
    fn members_are_found_by_name_and_others_are_other() {
        let names: Vec<String> =
            ["", "a", "b", "abcdefgh", "abcdefghi", LONG_A, LONG_B, "a"].iter().map(|s| s.to_string()).collect();
        let m = Members::new(&names);
        for (i, n) in names.iter().enumerate().take(7) {
            assert_eq!(m.bit(n), i as u64 + 1, "{n:?}");
        }
        for other in ["c", "ab", "abcdefgx", "abcdefghj", "error_code__middle_C__tail_end", "A"] {
            assert_eq!(m.bit(other), m.other, "{other:?}");
        }
        assert_eq!(m.other, 9);
    }

    #[test]
    fn number_regions_split_at_interval_ends() {
        let r = Regions::Num { points: vec![f64::NEG_INFINITY, 1.0, 3.0, f64::INFINITY].into_boxed_slice() };
        let of = |x: f64| r.of(x.to_bits());
        assert_eq!(of(f64::NEG_INFINITY), 0);
        assert_eq!(of(-5.0), 1);
        assert_eq!(of(1.0), 2);
        assert_eq!(of(2.0), 3);
        assert_eq!(of(3.0), 4);
        assert_eq!(of(1e300), 5);
        assert_eq!(of(f64::INFINITY), 6);
        assert_eq!(r.of(ABSENT_NUM), 7);
        // minus zero is the point zero
        let z = Regions::Num { points: vec![f64::NEG_INFINITY, 0.0, f64::INFINITY].into_boxed_slice() };
        assert_eq!(z.of((-0.0f64).to_bits()), 2);
        assert_eq!(z.of(0.0f64.to_bits()), 2);
    }

    /// A table over more columns than the index tracks is evaluated row by row.
    #[test]
    fn tables_over_many_columns_fall_back_to_rows() {
        let cols: Vec<Column> = (0..70).map(|i| column(&format!("metadata.k{i}"), ColumnKind::Bool)).collect();
        let ev = Evaluator::new(&cols, vec![None; 70]);
        let rows: Vec<Row> = (0..70)
            .map(|i| Row { rule: i, cube: Cube(vec![(i, Cell::Set(Bits::single(2)))]), span: Span::default() })
            .collect();
        let table = ev.table(&rows);
        assert!(table.index.is_none());
        let mut meta = serde_json::Map::new();
        meta.insert("k42".into(), serde_json::Value::Bool(true));
        let f = Facts { metadata: Some(&meta), ..Facts::default() };
        assert_eq!(ev.first_match(&table, &f), Some(Hit { rule: 42, row: 42 }));
    }
}
