//! Boxes of the event space: a conjunction of one cell per constrained
//! column (an unconstrained column takes any value). A table row is a box;
//! the analyses subtract boxes from boxes.

use super::domain::{Cell, Shape};

/// A sparse conjunction of `(column, cell)`, sorted by column; a column
/// that is not listed is unconstrained.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Cube(pub Vec<(usize, Cell)>);

impl Cube {
    /// The box that contains every event.
    pub fn any() -> Cube {
        Cube(Vec::new())
    }

    pub fn single(col: usize, cell: Cell) -> Cube {
        Cube(vec![(col, cell)])
    }

    pub fn get(&self, col: usize) -> Option<&Cell> {
        self.0.binary_search_by_key(&col, |(c, _)| *c).ok().and_then(|i| self.0.get(i)).map(|(_, cell)| cell)
    }

    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().map(|(c, _)| *c)
    }

    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }
}

/// The space boxes live in: each column's shape and the cell an
/// unconstrained column stands for (its full domain for exact table rows,
/// its universe of real values for the analyses).
#[derive(Debug, Clone)]
pub struct Space {
    pub shapes: Vec<Shape>,
    pub top: Vec<Cell>,
}

impl Space {
    /// The exact space: an unconstrained column takes any value, absent included.
    pub fn exact(shapes: Vec<Shape>) -> Space {
        let top = shapes.iter().map(|s| s.full()).collect();
        Space { shapes, top }
    }

    fn shape(&self, col: usize) -> Shape {
        self.shapes.get(col).copied().unwrap_or(Shape::Set { members: 0 })
    }

    fn top(&self, col: usize) -> Option<&Cell> {
        self.top.get(col)
    }

    /// Whether `cell` is every value of the column (so it can be dropped).
    fn is_top(&self, col: usize, cell: &Cell) -> bool {
        self.top(col).is_some_and(|t| self.shape(col).is_subset(t, cell))
    }

    /// `cell` restricted to the space; `None` when empty.
    fn clamp(&self, col: usize, cell: &Cell) -> Option<Cell> {
        let c = match self.top(col) {
            Some(t) => self.shape(col).intersect(cell, t),
            None => cell.clone(),
        };
        (!c.is_empty()).then_some(c)
    }

    /// A box of another space (e.g. an exact table row) restricted to this
    /// one; `None` when nothing of it lies in this space.
    pub fn import(&self, cube: &Cube) -> Option<Cube> {
        let mut out = Vec::with_capacity(cube.0.len());
        for (c, cell) in &cube.0 {
            let cell = self.clamp(*c, cell)?;
            if !self.is_top(*c, &cell) {
                out.push((*c, cell));
            }
        }
        Some(Cube(out))
    }

    /// The intersection of two boxes of this space; `None` when empty.
    pub fn intersect(&self, a: &Cube, b: &Cube) -> Option<Cube> {
        let mut out = Vec::with_capacity(a.0.len() + b.0.len());
        let (mut i, mut j) = (0, 0);
        while i < a.0.len() || j < b.0.len() {
            match (a.0.get(i), b.0.get(j)) {
                (Some((ca, x)), Some((cb, y))) if ca == cb => {
                    let cell = self.shape(*ca).intersect(x, y);
                    if cell.is_empty() {
                        return None;
                    }
                    out.push((*ca, cell));
                    i += 1;
                    j += 1;
                }
                (Some((ca, x)), Some((cb, _))) if ca < cb => {
                    out.push((*ca, x.clone()));
                    i += 1;
                }
                (Some((ca, x)), None) => {
                    out.push((*ca, x.clone()));
                    i += 1;
                }
                (_, Some((cb, y))) => {
                    out.push((*cb, y.clone()));
                    j += 1;
                }
                (None, None) => break,
            }
        }
        Some(Cube(out))
    }

    /// Whether the boxes share an event (no allocation).
    pub fn intersects(&self, a: &Cube, b: &Cube) -> bool {
        let (mut i, mut j) = (0, 0);
        while let (Some((ca, x)), Some((cb, y))) = (a.0.get(i), b.0.get(j)) {
            if ca == cb {
                if !self.shape(*ca).intersects(x, y) {
                    return false;
                }
                i += 1;
                j += 1;
            } else if ca < cb {
                i += 1;
            } else {
                j += 1;
            }
        }
        true
    }

    /// Whether every event of `a` is in `b`.
    pub fn is_subset(&self, a: &Cube, b: &Cube) -> bool {
        b.0.iter().all(|(c, y)| match a.get(*c) {
            Some(x) => self.shape(*c).is_subset(x, y),
            None => self.is_top(*c, y),
        })
    }

    /// `a` minus `b` as disjoint boxes (`[a]` when they do not meet).
    pub fn minus(&self, a: &Cube, b: &Cube) -> Vec<Cube> {
        if !self.intersects(a, b) {
            return vec![a.clone()];
        }
        let mut out = Vec::new();
        let mut rest = a.clone();
        for (c, y) in &b.0 {
            let shape = self.shape(*c);
            let x = match rest.get(*c) {
                Some(x) => x.clone(),
                None => match self.top(*c) {
                    Some(t) => t.clone(),
                    None => shape.full(),
                },
            };
            let outside = shape.minus(&x, y);
            if !outside.is_empty() {
                let mut piece = rest.clone();
                set(&mut piece, *c, outside);
                out.push(piece);
            }
            let inside = shape.intersect(&x, y);
            if self.is_top(*c, &inside) {
                unset(&mut rest, *c);
            } else {
                set(&mut rest, *c, inside);
            }
        }
        out
    }

    /// Merges two boxes into one when they differ in exactly one column
    /// (or one contains the other); `None` otherwise.
    pub fn merge(&self, a: &Cube, b: &Cube) -> Option<Cube> {
        if self.is_subset(a, b) {
            return Some(b.clone());
        }
        if self.is_subset(b, a) {
            return Some(a.clone());
        }
        if a.0.len() != b.0.len() {
            return None;
        }
        let mut diff = None;
        for ((ca, x), (cb, y)) in a.0.iter().zip(&b.0) {
            if ca != cb {
                return None;
            }
            if x != y {
                if diff.is_some() {
                    return None;
                }
                diff = Some(*ca);
            }
        }
        let c = diff?;
        let (x, y) = (a.get(c)?, b.get(c)?);
        let u = self.shape(c).union(x, y);
        let mut m = a.clone();
        if self.is_top(c, &u) {
            unset(&mut m, c);
        } else {
            set(&mut m, c, u);
        }
        Some(m)
    }

    /// Removes boxes contained in others and merges neighbours, keeping the
    /// union the same. Quadratic: only for the small lists of one rule or
    /// one report.
    pub fn simplify(&self, cubes: &mut Vec<Cube>) {
        let mut changed = true;
        let mut passes = 0;
        while changed && passes < 8 {
            changed = false;
            passes += 1;
            let mut i = 0;
            while i < cubes.len() {
                let mut j = i + 1;
                while j < cubes.len() {
                    if let Some(m) = self.merge(&cubes[i], &cubes[j]) {
                        cubes[i] = m;
                        cubes.remove(j);
                        changed = true;
                    } else {
                        j += 1;
                    }
                }
                i += 1;
            }
        }
    }
}

fn set(cube: &mut Cube, col: usize, cell: Cell) {
    match cube.0.binary_search_by_key(&col, |(c, _)| *c) {
        Ok(i) => {
            if let Some(slot) = cube.0.get_mut(i) {
                slot.1 = cell;
            }
        }
        Err(i) => cube.0.insert(i, (col, cell)),
    }
}

fn unset(cube: &mut Cube, col: usize) {
    if let Ok(i) = cube.0.binary_search_by_key(&col, |(c, _)| *c) {
        cube.0.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::super::domain::{Bits, Interval, Ranges};
    use super::*;

    fn space() -> Space {
        Space::exact(vec![Shape::Set { members: 3 }, Shape::Num { integer: true }])
    }

    fn set_cell(bits: &[usize]) -> Cell {
        let mut b = Bits::empty();
        bits.iter().for_each(|i| b.insert(*i));
        Cell::Set(b)
    }

    fn lt(x: f64) -> Cell {
        Cell::Num { ranges: Ranges::from_intervals(vec![Interval::at_most(x, false)], true), absent: false }
    }

    #[test]
    fn minus_gives_disjoint_pieces_covering_the_difference() {
        let s = space();
        let a = Cube::any();
        let b = Cube(vec![(0, set_cell(&[1])), (1, lt(3.0))]);
        let pieces = s.minus(&a, &b);
        assert_eq!(pieces.len(), 2);
        for p in &pieces {
            assert!(!s.intersects(p, &b));
        }
        assert!(!s.intersects(&pieces[0], &pieces[1]));
        // the pieces plus b give back everything
        let mut all = pieces.clone();
        all.push(b.clone());
        s.simplify(&mut all);
        assert_eq!(all, vec![Cube::any()]);
    }

    #[test]
    fn subset_and_merge() {
        let s = space();
        let a = Cube(vec![(0, set_cell(&[1]))]);
        let b = Cube(vec![(0, set_cell(&[2]))]);
        let m = s.merge(&a, &b).unwrap();
        assert_eq!(m, Cube(vec![(0, set_cell(&[1, 2]))]));
        assert!(s.is_subset(&a, &m));
        assert!(!s.is_subset(&m, &a));
        let c = Cube(vec![(0, set_cell(&[1])), (1, lt(2.0))]);
        assert!(s.is_subset(&c, &a));
        assert_eq!(s.merge(&c, &a), Some(a.clone()));
        // [0,1,2,3] = everything: merging drops the column
        let rest = Cube(vec![(0, set_cell(&[0, 3]))]);
        assert_eq!(s.merge(&m, &rest), Some(Cube::any()));
    }
}
