//! Cell values of the decision table: the set of values one column may take
//! in one row. Set-like columns (enums, strings compared with `==`/`in`,
//! booleans, regex tests) use a bitset over their members plus `ABSENT`;
//! numeric columns use a union of disjoint intervals plus an `ABSENT` flag.
//! Every operation is exact, so negation, intersection and subtraction of
//! conditions never lose or invent events.

use serde::{Serialize, Serializer};

/// Bit index of "the field is missing" in a set cell; member `i` is bit `i + 1`.
pub const ABSENT_BIT: usize = 0;

/// A growable bitset with the first 64 bits inline (no allocation for the
/// usual small domains).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bits {
    lo: u64,
    hi: Vec<u64>,
}

impl Bits {
    pub fn empty() -> Self {
        Bits::default()
    }

    /// The bits `0..n`.
    pub fn full(n: usize) -> Self {
        let mut b = Bits::empty();
        for i in 0..n {
            b.insert(i);
        }
        b
    }

    pub fn single(i: usize) -> Self {
        let mut b = Bits::empty();
        b.insert(i);
        b
    }

    pub fn insert(&mut self, i: usize) {
        if i < 64 {
            self.lo |= 1 << i;
        } else {
            let w = i / 64 - 1;
            if self.hi.len() <= w {
                self.hi.resize(w + 1, 0);
            }
            if let Some(word) = self.hi.get_mut(w) {
                *word |= 1 << (i % 64);
            }
        }
    }

    pub fn remove(&mut self, i: usize) {
        if i < 64 {
            self.lo &= !(1 << i);
        } else if let Some(word) = self.hi.get_mut(i / 64 - 1) {
            *word &= !(1 << (i % 64));
            self.trim();
        }
    }

    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        if i < 64 { self.lo >> i & 1 == 1 } else { self.hi.get(i / 64 - 1).is_some_and(|w| w >> (i % 64) & 1 == 1) }
    }

    pub fn is_empty(&self) -> bool {
        self.lo == 0 && self.hi.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.lo.count_ones() as usize + self.hi.iter().map(|w| w.count_ones() as usize).sum::<usize>()
    }

    fn trim(&mut self) {
        while self.hi.last() == Some(&0) {
            self.hi.pop();
        }
    }

    pub fn and(&self, o: &Bits) -> Bits {
        let n = self.hi.len().min(o.hi.len());
        let mut b = Bits { lo: self.lo & o.lo, hi: (0..n).map(|i| self.hi[i] & o.hi[i]).collect() };
        b.trim();
        b
    }

    pub fn or(&self, o: &Bits) -> Bits {
        let n = self.hi.len().max(o.hi.len());
        let word = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
        Bits { lo: self.lo | o.lo, hi: (0..n).map(|i| word(&self.hi, i) | word(&o.hi, i)).collect() }
    }

    /// `self` minus `o`.
    pub fn minus(&self, o: &Bits) -> Bits {
        let word = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
        let mut b =
            Bits { lo: self.lo & !o.lo, hi: (0..self.hi.len()).map(|i| self.hi[i] & !word(&o.hi, i)).collect() };
        b.trim();
        b
    }

    pub fn intersects(&self, o: &Bits) -> bool {
        self.lo & o.lo != 0 || self.hi.iter().zip(&o.hi).any(|(a, b)| a & b != 0)
    }

    pub fn is_subset(&self, o: &Bits) -> bool {
        let word = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
        self.lo & !o.lo == 0 && self.hi.iter().enumerate().all(|(i, w)| w & !word(&o.hi, i) == 0)
    }

    /// Set bits in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let words = std::iter::once(self.lo).chain(self.hi.iter().copied());
        words.enumerate().flat_map(|(wi, w)| (0..64).filter(move |b| w >> b & 1 == 1).map(move |b| wi * 64 + b))
    }

    /// The inline word, when every set bit fits in it.
    pub fn as_small(&self) -> Option<u64> {
        if self.hi.iter().all(|w| *w == 0) { Some(self.lo) } else { None }
    }

    /// All words (inline word first), for evaluation.
    pub fn words(&self) -> Vec<u64> {
        std::iter::once(self.lo).chain(self.hi.iter().copied()).collect()
    }
}

/// One interval of the real line; infinite ends are always open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub lo_closed: bool,
    pub hi: f64,
    pub hi_closed: bool,
}

impl Interval {
    pub const ALL: Interval = Interval { lo: f64::NEG_INFINITY, lo_closed: false, hi: f64::INFINITY, hi_closed: false };

    pub fn point(x: f64) -> Interval {
        Interval { lo: x, lo_closed: true, hi: x, hi_closed: true }
    }

    pub fn at_least(x: f64, closed: bool) -> Interval {
        Interval { lo: x, lo_closed: closed, ..Interval::ALL }
    }

    pub fn at_most(x: f64, closed: bool) -> Interval {
        Interval { hi: x, hi_closed: closed, ..Interval::ALL }
    }

    pub fn between(lo: f64, lo_closed: bool, hi: f64, hi_closed: bool) -> Interval {
        Interval { lo, lo_closed, hi, hi_closed }
    }

    #[inline]
    pub fn contains(&self, x: f64) -> bool {
        (if self.lo_closed { x >= self.lo } else { x > self.lo })
            && (if self.hi_closed { x <= self.hi } else { x < self.hi })
    }

    /// Whether `o` lies inside `self`.
    fn covers(&self, o: &Interval) -> bool {
        let lo_ok = self.lo < o.lo || (self.lo == o.lo && (self.lo_closed || !o.lo_closed));
        let hi_ok = self.hi > o.hi || (self.hi == o.hi && (self.hi_closed || !o.hi_closed));
        lo_ok && hi_ok
    }

    fn is_empty(&self) -> bool {
        self.lo > self.hi || (self.lo == self.hi && !(self.lo_closed && self.hi_closed))
    }

    /// The integers of the interval as a closed interval (empty when none).
    fn to_integers(self) -> Interval {
        let lo = if self.lo.is_finite() {
            if self.lo_closed { self.lo.ceil() } else { self.lo.floor() + 1.0 }
        } else {
            self.lo
        };
        let hi = if self.hi.is_finite() {
            if self.hi_closed { self.hi.floor() } else { self.hi.ceil() - 1.0 }
        } else {
            self.hi
        };
        Interval { lo, lo_closed: lo.is_finite(), hi, hi_closed: hi.is_finite() }
    }

    fn intersect(&self, o: &Interval) -> Interval {
        let (lo, lo_closed) = match self.lo.partial_cmp(&o.lo) {
            Some(std::cmp::Ordering::Greater) => (self.lo, self.lo_closed),
            Some(std::cmp::Ordering::Less) => (o.lo, o.lo_closed),
            _ => (self.lo, self.lo_closed && o.lo_closed),
        };
        let (hi, hi_closed) = match self.hi.partial_cmp(&o.hi) {
            Some(std::cmp::Ordering::Less) => (self.hi, self.hi_closed),
            Some(std::cmp::Ordering::Greater) => (o.hi, o.hi_closed),
            _ => (self.hi, self.hi_closed && o.hi_closed),
        };
        Interval { lo, lo_closed, hi, hi_closed }
    }

    /// Interval notation: `[1,3)`, `(-inf,0.7)`, `{3}` for a point.
    pub fn text(&self, fmt: &dyn Fn(f64) -> String) -> String {
        if self.lo == self.hi && self.lo_closed && self.hi_closed {
            return format!("{{{}}}", fmt(self.lo));
        }
        let lo = if self.lo.is_finite() { fmt(self.lo) } else { "-inf".to_string() };
        let hi = if self.hi.is_finite() { fmt(self.hi) } else { "inf".to_string() };
        format!("{}{lo},{hi}{}", if self.lo_closed { '[' } else { '(' }, if self.hi_closed { ']' } else { ')' })
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text(&|x| format!("{x}")))
    }
}

/// A normalised union of disjoint, non-touching intervals in increasing order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Ranges(Vec<Interval>);

impl Ranges {
    pub fn empty() -> Self {
        Ranges(Vec::new())
    }

    pub fn all(integer: bool) -> Self {
        Ranges::from_intervals(vec![Interval::ALL], integer)
    }

    pub fn from_intervals(mut ivs: Vec<Interval>, integer: bool) -> Self {
        if integer {
            for iv in &mut ivs {
                *iv = iv.to_integers();
            }
        }
        ivs.retain(|iv| !iv.is_empty());
        ivs.sort_by(|a, b| {
            a.lo.total_cmp(&b.lo).then_with(|| b.lo_closed.cmp(&a.lo_closed)) // closed start first
        });
        let mut out: Vec<Interval> = Vec::with_capacity(ivs.len());
        for iv in ivs {
            if let Some(last) = out.last_mut() {
                let touches = if integer {
                    iv.lo <= last.hi + 1.0
                } else {
                    iv.lo < last.hi || (iv.lo == last.hi && (iv.lo_closed || last.hi_closed))
                };
                if touches {
                    if iv.hi > last.hi || (iv.hi == last.hi && iv.hi_closed) {
                        last.hi = iv.hi;
                        last.hi_closed = iv.hi_closed;
                    }
                    continue;
                }
            }
            out.push(iv);
        }
        Ranges(out)
    }

    pub fn intervals(&self) -> &[Interval] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    pub fn contains(&self, x: f64) -> bool {
        self.0.iter().any(|iv| iv.contains(x))
    }

    pub fn intersect(&self, o: &Ranges, integer: bool) -> Ranges {
        if self.0.len() == 1 && o.0.len() == 1 {
            return Ranges::from_intervals(vec![self.0[0].intersect(&o.0[0])], integer);
        }
        let mut out = Vec::new();
        for a in &self.0 {
            for b in &o.0 {
                let i = a.intersect(b);
                if !i.is_empty() {
                    out.push(i);
                }
            }
        }
        Ranges::from_intervals(out, integer)
    }

    pub fn union(&self, o: &Ranges, integer: bool) -> Ranges {
        Ranges::from_intervals(self.0.iter().chain(&o.0).copied().collect(), integer)
    }

    pub fn complement(&self, integer: bool) -> Ranges {
        let mut out = Vec::new();
        let mut lo = f64::NEG_INFINITY;
        let mut lo_closed = false;
        for iv in &self.0 {
            out.push(Interval { lo, lo_closed, hi: iv.lo, hi_closed: !iv.lo_closed && iv.lo.is_finite() });
            lo = iv.hi;
            lo_closed = !iv.hi_closed && iv.hi.is_finite();
        }
        out.push(Interval { lo, lo_closed, hi: f64::INFINITY, hi_closed: false });
        Ranges::from_intervals(out, integer)
    }

    pub fn minus(&self, o: &Ranges, integer: bool) -> Ranges {
        self.intersect(&o.complement(integer), integer)
    }

    pub fn intersects(&self, o: &Ranges, integer: bool) -> bool {
        self.0.iter().any(|a| o.0.iter().any(|b| !normalised(a.intersect(b), integer).is_empty()))
    }

    /// Both sides are normalised, so an interval lies in the union exactly
    /// when it lies in one interval of it.
    pub fn is_subset(&self, o: &Ranges, _integer: bool) -> bool {
        self.0.iter().all(|a| o.0.iter().any(|b| b.covers(a)))
    }

    /// Number of integers in the set, `None` when infinite.
    pub fn integer_count(&self) -> Option<u64> {
        let mut n: u64 = 0;
        for iv in &self.0 {
            let iv = iv.to_integers();
            if !iv.lo.is_finite() || !iv.hi.is_finite() {
                return None;
            }
            if iv.hi >= iv.lo {
                n = n.saturating_add(((iv.hi - iv.lo) as u64).saturating_add(1));
            }
        }
        Some(n)
    }

    /// The least upper bound, `None` when unbounded or empty.
    pub fn max(&self) -> Option<f64> {
        self.0.last().map(|iv| iv.hi).filter(|h| h.is_finite())
    }
}

fn normalised(iv: Interval, integer: bool) -> Interval {
    if integer { iv.to_integers() } else { iv }
}

/// The values one column may take in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Bit 0: the field is missing; bit `i + 1`: member `i` of the column.
    Set(Bits),
    Num {
        ranges: Ranges,
        absent: bool,
    },
}

/// The shape of a column's values, enough to negate a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `members` values (the last may be "other"), plus absent.
    Set {
        members: usize,
    },
    Num {
        integer: bool,
    },
}

impl Shape {
    /// Every value, absent included.
    pub fn full(self) -> Cell {
        match self {
            Shape::Set { members } => Cell::Set(Bits::full(members + 1)),
            Shape::Num { integer } => Cell::Num { ranges: Ranges::all(integer), absent: true },
        }
    }

    /// Every present value.
    pub fn present(self) -> Cell {
        let mut c = self.full();
        match &mut c {
            Cell::Set(b) => b.remove(ABSENT_BIT),
            Cell::Num { absent, .. } => *absent = false,
        }
        c
    }

    pub fn absent_only(self) -> Cell {
        match self {
            Shape::Set { .. } => Cell::Set(Bits::single(ABSENT_BIT)),
            Shape::Num { .. } => Cell::Num { ranges: Ranges::empty(), absent: true },
        }
    }

    pub fn empty(self) -> Cell {
        match self {
            Shape::Set { .. } => Cell::Set(Bits::empty()),
            Shape::Num { .. } => Cell::Num { ranges: Ranges::empty(), absent: false },
        }
    }

    fn integer(self) -> bool {
        matches!(self, Shape::Num { integer: true })
    }

    pub fn complement(self, c: &Cell) -> Cell {
        match (self, c) {
            (Shape::Set { members }, Cell::Set(b)) => Cell::Set(Bits::full(members + 1).minus(b)),
            (_, Cell::Num { ranges, absent }) => {
                Cell::Num { ranges: ranges.complement(self.integer()), absent: !*absent }
            }
            (Shape::Num { .. }, Cell::Set(_)) => self.empty(),
        }
    }

    pub fn intersect(self, a: &Cell, b: &Cell) -> Cell {
        match (a, b) {
            (Cell::Set(x), Cell::Set(y)) => Cell::Set(x.and(y)),
            (Cell::Num { ranges: r1, absent: a1 }, Cell::Num { ranges: r2, absent: a2 }) => {
                Cell::Num { ranges: r1.intersect(r2, self.integer()), absent: *a1 && *a2 }
            }
            _ => self.empty(),
        }
    }

    pub fn union(self, a: &Cell, b: &Cell) -> Cell {
        match (a, b) {
            (Cell::Set(x), Cell::Set(y)) => Cell::Set(x.or(y)),
            (Cell::Num { ranges: r1, absent: a1 }, Cell::Num { ranges: r2, absent: a2 }) => {
                Cell::Num { ranges: r1.union(r2, self.integer()), absent: *a1 || *a2 }
            }
            _ => a.clone(),
        }
    }

    pub fn minus(self, a: &Cell, b: &Cell) -> Cell {
        match (a, b) {
            (Cell::Set(x), Cell::Set(y)) => Cell::Set(x.minus(y)),
            (Cell::Num { ranges: r1, absent: a1 }, Cell::Num { ranges: r2, absent: a2 }) => {
                Cell::Num { ranges: r1.minus(r2, self.integer()), absent: *a1 && !*a2 }
            }
            _ => a.clone(),
        }
    }

    pub fn intersects(self, a: &Cell, b: &Cell) -> bool {
        match (a, b) {
            (Cell::Set(x), Cell::Set(y)) => x.intersects(y),
            (Cell::Num { ranges: r1, absent: a1 }, Cell::Num { ranges: r2, absent: a2 }) => {
                (*a1 && *a2) || r1.intersects(r2, self.integer())
            }
            _ => false,
        }
    }

    pub fn is_subset(self, a: &Cell, b: &Cell) -> bool {
        match (a, b) {
            (Cell::Set(x), Cell::Set(y)) => x.is_subset(y),
            (Cell::Num { ranges: r1, absent: a1 }, Cell::Num { ranges: r2, absent: a2 }) => {
                (!*a1 || *a2) && r1.is_subset(r2, self.integer())
            }
            _ => a.is_empty(),
        }
    }

    pub fn is_full(self, c: &Cell) -> bool {
        self.is_subset(&self.full(), c)
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        match self {
            Cell::Set(bits) => {
                m.serialize_entry("bits", &bits.iter().collect::<Vec<_>>())?;
            }
            Cell::Num { ranges, absent } => {
                m.serialize_entry("ranges", ranges)?;
                m.serialize_entry("absent", absent)?;
            }
        }
        m.end()
    }
}

impl Cell {
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Set(b) => b.is_empty(),
            Cell::Num { ranges, absent } => ranges.is_empty() && !absent,
        }
    }

    pub fn has_absent(&self) -> bool {
        match self {
            Cell::Set(b) => b.contains(ABSENT_BIT),
            Cell::Num { absent, .. } => *absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(r: &Ranges) -> String {
        r.intervals().iter().map(|iv| iv.text(&|x| format!("{x}"))).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn bits_beyond_one_word() {
        let mut b = Bits::empty();
        b.insert(3);
        b.insert(70);
        b.insert(130);
        assert!(b.contains(70) && b.contains(130) && b.contains(3) && !b.contains(4));
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![3, 70, 130]);
        let full = Bits::full(131);
        assert_eq!(full.minus(&b).len(), 128);
        assert!(b.is_subset(&full) && !full.is_subset(&b));
        b.remove(130);
        assert_eq!(b.as_small(), None);
        b.remove(70);
        assert_eq!(b.as_small(), Some(8));
    }

    #[test]
    fn integer_ranges_normalise_to_closed_integers() {
        let r = Ranges::from_intervals(vec![Interval::at_most(3.0, false)], true);
        assert_eq!(txt(&r), "(-inf,2]");
        let r = Ranges::from_intervals(vec![Interval::at_least(2.5, false)], true);
        assert_eq!(txt(&r), "[3,inf)");
        // [1,2] and [3,5] touch on the integers
        let r = Ranges::from_intervals(
            vec![Interval::between(1.0, true, 2.0, true), Interval::between(3.0, true, 5.0, true)],
            true,
        );
        assert_eq!(txt(&r), "[1,5]");
        assert_eq!(r.integer_count(), Some(5));
        let empty = Ranges::from_intervals(vec![Interval::between(1.2, true, 1.8, true)], true);
        assert!(empty.is_empty());
        let huge = Ranges::from_intervals(vec![Interval::between(0.0, true, 1e300, true)], true);
        assert_eq!(huge.integer_count(), Some(u64::MAX));
    }

    #[test]
    fn real_complement_is_exact_at_the_ends() {
        let r = Ranges::from_intervals(vec![Interval::at_least(0.7, true)], false);
        let c = r.complement(false);
        assert_eq!(txt(&c), "(-inf,0.7)");
        assert!(!c.contains(0.7) && c.contains(0.6999));
        assert_eq!(c.complement(false), r);
        // (a,b) and (b,c) do not merge: b is missing
        let r = Ranges::from_intervals(
            vec![Interval::between(0.0, false, 1.0, false), Interval::between(1.0, false, 2.0, false)],
            false,
        );
        assert_eq!(r.intervals().len(), 2);
        assert!(!r.contains(1.0));
        let c = r.complement(false);
        assert_eq!(txt(&c), "(-inf,0] {1} [2,inf)");
    }

    #[test]
    fn cells_negate_absent_too() {
        let shape = Shape::Set { members: 3 };
        let eq = Cell::Set(Bits::single(2));
        let ne = shape.complement(&eq);
        assert!(ne.has_absent(), "`!=` holds on a missing field");
        assert!(shape.is_full(&shape.union(&eq, &ne)));
        assert!(shape.intersect(&eq, &ne).is_empty());
        let num = Shape::Num { integer: true };
        let lt = Cell::Num { ranges: Ranges::from_intervals(vec![Interval::at_most(3.0, false)], true), absent: false };
        let not_lt = num.complement(&lt);
        assert!(not_lt.has_absent());
        assert!(num.is_subset(&num.minus(&num.full(), &lt), &not_lt));
        assert!(!num.intersects(&lt, &not_lt));
    }
}
