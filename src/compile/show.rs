//! Text forms of table cells, regions, example events and decisions, used
//! by the table printers and by diagnostics.

use super::columns::{Column, ColumnKind, Columns, NumUnit};
use super::cube::Cube;
use super::domain::{ABSENT_BIT, Cell};
use crate::check::ir::{ActionIr, BackoffIr, DecisionIr};
use crate::syntax::ast::Jitter;

/// One column's value in a concrete example event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    /// A member bit of a set column (`ABSENT_BIT` for missing).
    Bit(usize),
    Num(f64),
    Missing,
}

fn num(unit: Option<NumUnit>) -> impl Fn(f64) -> String {
    move |x| unit.unwrap_or(NumUnit::Float).show(x)
}

/// A member in policy syntax: bare for enums, quoted for strings.
fn member(col: &Column, bit: usize) -> String {
    let name = col.member_name(bit);
    if bit == ABSENT_BIT || col.is_other(bit) || !col.is_string() || !matches!(col.kind, ColumnKind::Set { .. }) {
        name
    } else {
        format!("{name:?}")
    }
}

/// A table cell: `*` (any), `{a,b}`, `!{a}` (anything but), `[0,3)`;
/// `<missing>` marks whether a missing field is included.
pub fn cell(col: &Column, c: &Cell) -> String {
    let shape = col.shape();
    if shape.is_full(c) {
        return "*".to_string();
    }
    match c {
        Cell::Set(bits) => {
            let has_other = matches!(&col.kind, ColumnKind::Set { members } if bits.contains(members.len() + 1));
            if has_other {
                let all = shape.full();
                let excluded = shape.minus(&all, c);
                let names: Vec<String> = match &excluded {
                    Cell::Set(b) => b.iter().map(|i| member(col, i)).collect(),
                    Cell::Num { .. } => Vec::new(),
                };
                format!("!{{{}}}", names.join(","))
            } else {
                let names: Vec<String> = bits.iter().filter(|i| *i != ABSENT_BIT).map(|i| member(col, i)).collect();
                let mut s = if names.len() == 1 && !bits.contains(ABSENT_BIT) {
                    names.join("")
                } else {
                    let mut all = names;
                    if bits.contains(ABSENT_BIT) {
                        all.push("<missing>".to_string());
                    }
                    format!("{{{}}}", all.join(","))
                };
                if s.is_empty() {
                    s = "{}".to_string();
                }
                s
            }
        }
        Cell::Num { ranges, absent } => {
            let f = num(col.unit());
            let ivs = ranges.intervals();
            let points = if col.unit() == Some(NumUnit::Int) { ranges.integer_count() } else { None };
            let mut parts: Vec<String> = match points {
                // a few integers read best as a set: {500,502,503}
                Some(n) if n > 1 && n <= 8 && ivs.len() > 1 => {
                    let all: Vec<String> = ivs
                        .iter()
                        .flat_map(|iv| {
                            let (lo, hi) = (iv.lo as i64, iv.hi as i64);
                            (lo..=hi).map(|x| f(x as f64))
                        })
                        .collect();
                    vec![format!("{{{}}}", all.join(","))]
                }
                _ => ivs.iter().map(|iv| iv.text(&f)).collect(),
            };
            if *ranges == super::domain::Ranges::all(col.unit() == Some(NumUnit::Int)) {
                parts = vec!["<present>".to_string()];
            }
            if *absent {
                parts.push("<missing>".to_string());
            }
            if parts.is_empty() { "{}".to_string() } else { parts.join(" ") }
        }
    }
}

/// A value in an example event.
pub fn value(col: &Column, v: Val) -> String {
    match v {
        Val::Missing => "<missing>".to_string(),
        Val::Bit(b) => member(col, b),
        Val::Num(x) => num(col.unit())(x),
    }
}

/// An example event restricted to the fields of `cube` (and the fields
/// the example needs), e.g. `class = auth_failed, attempt = 3`.
pub fn example(cols: &Columns, point: &[(usize, Val)], cube: &Cube) -> String {
    let mut paths: Vec<&str> = Vec::new();
    for c in cube.columns() {
        if let Some(col) = cols.get(c)
            && !paths.contains(&col.path.as_str())
        {
            paths.push(&col.path);
        }
    }
    if paths.is_empty() {
        return "any event".to_string();
    }
    let mut out = Vec::new();
    for path in paths {
        let mut base: Option<String> = None;
        let mut matching = Vec::new();
        let mut not_matching = Vec::new();
        let mut missing = false;
        for (c, v) in point {
            let Some(col) = cols.get(*c) else { continue };
            if col.path != path {
                continue;
            }
            match (&col.kind, v) {
                (_, Val::Missing) | (_, Val::Bit(ABSENT_BIT)) => missing = true,
                (ColumnKind::Matches { pattern }, Val::Bit(b)) => {
                    if cube.get(*c).is_some() {
                        if *b == 2 { matching.push(pattern.clone()) } else { not_matching.push(pattern.clone()) }
                    }
                }
                _ => base = Some(value(col, *v)),
            }
        }
        let text = if missing {
            "<missing>".to_string()
        } else if matching.is_empty() && not_matching.is_empty() {
            base.unwrap_or_else(|| "<other>".to_string())
        } else if let Some(b) = base.filter(|b| b != "<other>") {
            b
        } else {
            let mut parts: Vec<String> = matching.iter().map(|p| format!("matching /{p}/")).collect();
            parts.extend(not_matching.iter().map(|p| format!("not matching /{p}/")));
            format!("<text {}>", parts.join(", "))
        };
        out.push(format!("{path} = {text}"));
    }
    out.join(", ")
}

/// A region of the event space as a policy condition an author could
/// paste into a rule: `class == timeout and attempt >= 3`. `universe` gives
/// each column's possible values, so bounds that always hold are left out.
pub fn region(cols: &Columns, cube: &Cube, universe: &[Cell]) -> String {
    let parts: Vec<String> = cube
        .0
        .iter()
        .filter_map(|(c, cell)| {
            let col = cols.get(*c)?;
            condition(col, cell, universe.get(*c))
        })
        .collect();
    if parts.is_empty() { "any event".to_string() } else { parts.join(" and ") }
}

/// Members listed in a region condition before the rest is summarised.
const MAX_LISTED: usize = 8;

fn list(col: &Column, bits: impl Iterator<Item = usize>) -> (usize, String) {
    let mut names: Vec<String> = bits.map(|b| member(col, b)).collect();
    let n = names.len();
    if n > MAX_LISTED + 1 {
        names.truncate(MAX_LISTED);
        names.push(format!("... {} more", n - MAX_LISTED));
    }
    (n, names.join(", "))
}

fn condition(col: &Column, c: &Cell, universe: Option<&Cell>) -> Option<String> {
    let p = &col.path;
    let absent = c.has_absent();
    let or_missing = |s: String| if absent { format!("({s} or not has {p})") } else { s };
    match (&col.kind, c) {
        (ColumnKind::Set { members }, Cell::Set(bits)) => {
            let other = members.len() + 1;
            let present: Vec<usize> = bits.iter().filter(|b| *b != ABSENT_BIT).collect();
            if present.is_empty() {
                return Some(format!("not has {p}"));
            }
            if bits.contains(other) {
                let possible: Vec<usize> = match universe {
                    Some(Cell::Set(u)) => u.iter().filter(|b| *b != ABSENT_BIT && *b != other).collect(),
                    _ => (1..other).collect(),
                };
                let (n, excluded) = list(col, possible.into_iter().filter(|b| !bits.contains(*b)));
                let test = match n {
                    0 => None,
                    1 => Some(format!("{p} != {excluded}")),
                    _ => Some(format!("{p} not in {{{excluded}}}")),
                };
                // `!=` and `not in` hold on a missing field
                match (test, absent) {
                    (Some(t), true) => Some(t),
                    (Some(t), false) => Some(format!("has {p} and {t}")),
                    (None, _) => Some(format!("has {p}")),
                }
            } else {
                let (n, names) = list(col, present.into_iter());
                let test = if n == 1 { format!("{p} == {names}") } else { format!("{p} in {{{names}}}") };
                Some(or_missing(test))
            }
        }
        (ColumnKind::Bool | ColumnKind::Matches { .. }, Cell::Set(bits)) => {
            let (t, f) = (bits.contains(2), bits.contains(1));
            let pos = match &col.kind {
                ColumnKind::Matches { pattern } => format!("{p} ~ /{pattern}/"),
                _ => p.clone(),
            };
            Some(match (t, f, absent) {
                (true, false, false) => pos,
                (false, true, false) => match &col.kind {
                    ColumnKind::Matches { .. } => format!("has {p} and not {pos}"),
                    _ => format!("{p} == false"),
                },
                (true, false, true) => format!("({pos} or not has {p})"),
                (false, true, true) => format!("not {pos}"),
                (true, true, false) => format!("has {p}"),
                (false, false, _) => format!("not has {p}"),
                (true, true, true) => return None,
            })
        }
        (ColumnKind::Number { unit }, Cell::Num { ranges, .. }) => {
            let f = num(Some(*unit));
            let floor = match universe {
                Some(Cell::Num { ranges: u, .. }) => u.intervals().first().copied(),
                _ => None,
            };
            let ceil = match universe {
                Some(Cell::Num { ranges: u, .. }) => u.intervals().last().copied(),
                _ => None,
            };
            let tests: Vec<String> = ranges
                .intervals()
                .iter()
                .map(|iv| {
                    if iv.lo == iv.hi {
                        return format!("{p} == {}", f(iv.lo));
                    }
                    let mut t = Vec::new();
                    let lo_implied = floor.is_some_and(|u| u.lo == iv.lo && u.lo_closed == iv.lo_closed);
                    if iv.lo.is_finite() && !lo_implied {
                        t.push(format!("{p} {} {}", if iv.lo_closed { ">=" } else { ">" }, f(iv.lo)));
                    }
                    let hi_implied = ceil.is_some_and(|u| u.hi == iv.hi && u.hi_closed == iv.hi_closed);
                    if iv.hi.is_finite() && !hi_implied {
                        t.push(format!("{p} {} {}", if iv.hi_closed { "<=" } else { "<" }, f(iv.hi)));
                    }
                    t.join(" and ")
                })
                .collect();
            let several = tests.len() + usize::from(absent) > 1;
            let tests: Vec<String> = tests
                .into_iter()
                .map(|t| match t.as_str() {
                    "" => format!("has {p}"),
                    _ if several && t.contains(" and ") => format!("({t})"),
                    _ => t,
                })
                .collect();
            Some(match tests.len() {
                0 => format!("not has {p}"),
                1 if !absent => tests.join(""),
                _ => {
                    let mut all = tests;
                    if absent {
                        all.push(format!("not has {p}"));
                    }
                    format!("({})", all.join(" or "))
                }
            })
        }
        _ => None,
    }
}

/// A decision in policy syntax: `retry backoff exponential(250ms, 2, 8000ms) jitter full, reason X`.
pub fn decision(d: &DecisionIr) -> String {
    format!("{}, reason {}", action(&d.action), d.reason)
}

pub fn action(a: &ActionIr) -> String {
    match a {
        ActionIr::Retry(r) => {
            let mut s = "retry".to_string();
            if let Some(st) = &r.strategy {
                s.push_str(&format!(" strategy {st}"));
            }
            if let Some(b) = &r.backoff {
                let ms = |x: f64| format!("{x}ms");
                s.push_str(&match b {
                    BackoffIr::Fixed { delay_ms } => format!(" backoff fixed({})", ms(*delay_ms)),
                    BackoffIr::Linear { initial_ms, step_ms, max_ms } => {
                        format!(" backoff linear({}, {}, {})", ms(*initial_ms), ms(*step_ms), ms(*max_ms))
                    }
                    BackoffIr::Exponential { initial_ms, factor, max_ms } => {
                        format!(" backoff exponential({}, {factor}, {})", ms(*initial_ms), ms(*max_ms))
                    }
                });
            }
            if r.jitter != Jitter::None {
                s.push_str(&format!(" jitter {}", r.jitter.as_str()));
            }
            s
        }
        ActionIr::Fallback { model, strategy } => match strategy {
            Some(st) => format!("fallback {model} strategy {st}"),
            None => format!("fallback {model}"),
        },
        ActionIr::Reset { scope, prompt, then } => {
            let p = prompt.as_ref().map(|p| format!(" prompt {p}")).unwrap_or_default();
            format!("reset {}{p} then {}", scope.as_str(), action(then))
        }
        ActionIr::Escalate { queue } => match queue {
            Some(q) => format!("escalate queue {q:?}"),
            None => "escalate".to_string(),
        },
        ActionIr::Abort => "abort".to_string(),
    }
}
