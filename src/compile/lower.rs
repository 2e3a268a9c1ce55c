//! Conditions -> table rows. A condition is put in disjunctive normal form
//! with negations pushed down to the atoms (De Morgan); negating an atom is
//! exact because an atom is a set of its column's values (absent included:
//! `x == 1` is false on a missing `x`, so `not x == 1` holds on it).

use super::columns::Columns;
use super::cube::{Cube, Space};
use crate::check::ir::Cond;

/// At most this many rows per rule; a condition that expands further is
/// rejected with RCV401 instead of growing the table without bound.
pub const MAX_ROWS_PER_RULE: usize = 512;

/// Products larger than this are refused before simplification (which is
/// quadratic in the list length).
const MAX_PRODUCT: usize = 2 * MAX_ROWS_PER_RULE;

/// The condition expands into more rows than [`MAX_ROWS_PER_RULE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRows;

/// The rows of a condition: disjoint or not, their union is exactly the set
/// of events on which the condition holds. An empty list never matches; a
/// list holding the unconstrained box always matches.
pub fn rows(cond: Option<&Cond>, cols: &Columns, space: &Space) -> Result<Vec<Cube>, TooManyRows> {
    match cond {
        None => Ok(vec![Cube::any()]),
        Some(c) => dnf(c, false, cols, space),
    }
}

/// The rows where `cond` does NOT hold (for `require ... else`).
pub fn negated_rows(cond: &Cond, cols: &Columns, space: &Space) -> Result<Vec<Cube>, TooManyRows> {
    dnf(cond, true, cols, space)
}

fn dnf(c: &Cond, neg: bool, cols: &Columns, space: &Space) -> Result<Vec<Cube>, TooManyRows> {
    let out = match c {
        Cond::True => {
            if neg {
                Vec::new()
            } else {
                vec![Cube::any()]
            }
        }
        Cond::Not(inner) => dnf(inner, !neg, cols, space)?,
        Cond::Atom(a) => match cols.atom(a) {
            Some((col, cell)) => {
                let cell = if neg { cols.shape(col).complement(&cell) } else { cell };
                space.import(&Cube::single(col, cell)).into_iter().collect()
            }
            None => Vec::new(),
        },
        Cond::And(cs) | Cond::Or(cs) => {
            let conjunction = matches!(c, Cond::And(_)) != neg;
            if conjunction {
                let mut acc = vec![Cube::any()];
                for child in cs {
                    let d = dnf(child, neg, cols, space)?;
                    if acc.len().saturating_mul(d.len()) > MAX_PRODUCT {
                        return Err(TooManyRows);
                    }
                    let mut next = Vec::with_capacity(acc.len() * d.len());
                    for a in &acc {
                        for b in &d {
                            if let Some(x) = space.intersect(a, b) {
                                next.push(x);
                            }
                        }
                    }
                    space.simplify(&mut next);
                    if next.len() > MAX_ROWS_PER_RULE {
                        return Err(TooManyRows);
                    }
                    acc = next;
                    if acc.is_empty() {
                        break;
                    }
                }
                acc
            } else {
                let mut acc = Vec::new();
                for child in cs {
                    acc.extend(dnf(child, neg, cols, space)?);
                    if acc.len() > MAX_PRODUCT {
                        return Err(TooManyRows);
                    }
                }
                acc
            }
        }
    };
    let mut out = out;
    space.simplify(&mut out);
    if out.len() > MAX_ROWS_PER_RULE {
        return Err(TooManyRows);
    }
    Ok(out)
}
