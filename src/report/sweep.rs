//! Threshold sensitivity: one replay per value of a named constant or a
//! budget setting, the metrics per value, and the flip points (the values
//! at which cases change outcome). Each value is substituted into the
//! policy source at the literal's span and the policy is built again, so
//! every use of a constant (folded into conditions by the checker) follows.

use std::fmt::Write as _;

use serde::Serialize;

use super::replay_set::{self, Flip, Setup};
use crate::compile::{self, CompiledPolicy};
use crate::diag::Source;
use crate::syntax::ast::{Item, LitValue, Literal};

/// At most this many values per sweep.
pub const MAX_VALUES: usize = 200;

/// `NAME=START..END/STEP`.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub name: String,
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

impl Range {
    pub fn parse(spec: &str) -> Result<Range, String> {
        let bad = || format!("`{spec}` is not `NAME=START..END/STEP` (e.g. `min_confidence=0.5..0.9/0.1`)");
        let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
        let (range, step) = rest.split_once('/').ok_or_else(bad)?;
        let (start, end) = range.split_once("..").ok_or_else(bad)?;
        let num = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(bad);
        let r = Range { name: name.trim().to_string(), start: num(start)?, end: num(end)?, step: num(step)? };
        if r.name.is_empty() {
            return Err(bad());
        }
        if r.step <= 0.0 || r.end < r.start {
            return Err(format!("`{spec}`: the step must be positive and END at least START"));
        }
        if (r.end - r.start) / r.step + 1.0 > MAX_VALUES as f64 {
            return Err(format!("`{spec}` gives more than {MAX_VALUES} values"));
        }
        Ok(r)
    }

    /// The values, rounded to nine decimals so `0.1` steps stay exact.
    pub fn values(&self) -> Vec<f64> {
        let n = ((self.end - self.start) / self.step + 1e-9).floor() as usize;
        (0..=n).map(|i| ((self.start + i as f64 * self.step) * 1e9).round() / 1e9).collect()
    }
}

/// The literal a sweep rewrites, and how to spell a value in its type.
#[derive(Debug, Clone)]
pub struct Target {
    pub literal: Literal,
}

impl Target {
    /// Finds `const NAME` or `budget.KEY` in the policy text.
    pub fn find(text: &str, name: &str) -> Result<Target, String> {
        let ast = crate::syntax::parse(text).map_err(|_| "the policy does not parse".to_string())?;
        let budget_key = name.strip_prefix("budget.");
        for item in &ast.items {
            match (item, budget_key) {
                (Item::Const(c), None) if c.name.name == name => return Ok(Target { literal: c.value.clone() }),
                (Item::Budget(b), Some(key)) => {
                    if let Some(p) = b.props.iter().find(|p| p.key.as_str() == key) {
                        return Ok(Target { literal: p.value.clone() });
                    }
                }
                _ => {}
            }
        }
        Err(match budget_key {
            Some(k) => format!("the policy's `budget` block does not set `{k}`"),
            None => format!("the policy has no constant `{name}` (use `const NAME` or `budget.KEY`)"),
        })
    }

    /// The value as a literal of the target's type; durations are in
    /// milliseconds and money in US dollars.
    pub fn spell(&self, v: f64) -> Result<String, String> {
        match self.literal.value {
            LitValue::Int(_) => {
                if v.fract() != 0.0 {
                    return Err(format!("`{}` is an integer; {v} is not", self.literal.text));
                }
                Ok(format!("{}", v as i64))
            }
            LitValue::Float(_) => {
                let s = format!("{v}");
                Ok(if s.contains('.') { s } else { format!("{s}.0") })
            }
            LitValue::Duration(_) => Ok(format!("{v}ms")),
            LitValue::Money(_) => Ok(format!("${v}")),
            LitValue::Str(_) | LitValue::Bool(_) => Err(format!(
                "`{}` is a {}; only numbers can be swept",
                self.literal.text,
                self.literal.value.type_name()
            )),
        }
    }

    /// The policy text with the value in place of the literal.
    pub fn substitute(&self, text: &str, v: f64) -> Result<String, String> {
        let spelled = self.spell(v)?;
        let r = self.literal.span.range();
        match (text.get(..r.start), text.get(r.end..)) {
            (Some(a), Some(b)) => Ok(format!("{a}{spelled}{b}")),
            _ => Err("the literal's position is outside the policy text".into()),
        }
    }
}

/// One value of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub value: f64,
    /// The policy hash at this value; `None` when it does not compile.
    pub hash: Option<String>,
    /// Why it does not compile.
    pub error: Option<String>,
    pub metrics: Vec<(String, f64)>,
}

/// Cases that change outcome between two consecutive values.
#[derive(Debug, Clone, Serialize)]
pub struct FlipPoint {
    pub from: f64,
    pub to: f64,
    pub cases: Vec<Flip>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub schema: &'static str,
    pub policy: String,
    pub name: String,
    /// The value written in the policy.
    pub current: String,
    pub seed: u64,
    pub cases: u64,
    pub points: Vec<Point>,
    pub flip_points: Vec<FlipPoint>,
}

fn build(text: &str, name: &str) -> Result<CompiledPolicy, String> {
    let source = Source::new(name, text);
    let b = compile::build(&source);
    match b.policy {
        Some(p) if !b.has_errors() => Ok(p),
        _ => {
            let errs: Vec<String> = b
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| format!("{} {}", d.code.as_str(), d.message))
                .collect();
            Err(errs.join("; "))
        }
    }
}

/// Runs the sweep over `setup` (the policy text is `text`, read from `path`).
pub fn run(path: &str, text: &str, range: &Range, setup: Setup<'_>) -> Result<Sweep, String> {
    let target = Target::find(text, &range.name)?;
    let mut points = Vec::new();
    let mut flip_points = Vec::new();
    let mut prev: Option<(f64, Vec<crate::runtime::replay::CaseResult>)> = None;
    let mut cases = 0;
    for v in range.values() {
        let substituted = target.substitute(text, v)?;
        let policy = match build(&substituted, path) {
            Ok(p) => p,
            Err(e) => {
                points.push(Point { value: v, hash: None, error: Some(e), metrics: Vec::new() });
                continue;
            }
        };
        let r = replay_set::replay(&policy, path, &substituted, setup).map_err(|e| e.to_string())?;
        cases = r.report.totals.cases;
        let metrics = replay_set::METRICS.iter().map(|(n, f)| (n.to_string(), f(&r.report))).collect();
        points.push(Point { value: v, hash: Some(policy.hash.clone()), error: None, metrics });
        if let Some((from, before)) = &prev {
            let flips = replay_set::flips(before, &r.cases);
            if !flips.is_empty() {
                flip_points.push(FlipPoint { from: *from, to: v, cases: flips });
            }
        }
        prev = Some((v, r.cases));
    }
    Ok(Sweep {
        schema: "rcv.sweep/1",
        policy: path.to_string(),
        name: range.name.clone(),
        current: target.literal.text.clone(),
        seed: setup.seed,
        cases,
        points,
        flip_points,
    })
}

/// Metrics shown in the text table.
const SHOWN: [&str; 5] = ["auto_recovered_rate", "escalation_rate", "p95_latency", "cost_per_request", "mean_attempts"];

pub fn text(s: &Sweep) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sweep `{}` (now `{}`) in {} · {} cases · seed {}\n",
        s.name, s.current, s.policy, s.cases, s.seed
    );
    let _ = writeln!(out, "| {} | {} |", s.name, SHOWN.join(" | "));
    let _ = writeln!(out, "|---:|{}", "---:|".repeat(SHOWN.len()));
    for p in &s.points {
        match &p.error {
            Some(e) => {
                let _ = writeln!(out, "| {} | does not compile: {e} |", p.value);
            }
            None => {
                let vals: Vec<String> = SHOWN
                    .iter()
                    .map(|m| p.metrics.iter().find(|(n, _)| n == m).map_or("-".into(), |(_, v)| v.to_string()))
                    .collect();
                let _ = writeln!(out, "| {} | {} |", p.value, vals.join(" | "));
            }
        }
    }
    if s.flip_points.is_empty() {
        let _ = writeln!(out, "\nno flip points: every case has the same outcome at every value (a plateau)");
    } else {
        let total: usize = s.flip_points.iter().map(|f| f.cases.len()).sum();
        let _ = writeln!(out, "\nflip points: {} ({total} case changes)", s.flip_points.len());
        for f in &s.flip_points {
            let _ = writeln!(out, "- {} -> {}: {} cases", f.from, f.to, f.cases.len());
            for c in &f.cases {
                let _ = writeln!(out, "  - `{}`: {} -> {}", c.request_id, c.before.as_str(), c.after.as_str());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_step_exactly() {
        let r = Range::parse("min_confidence=0.5..0.9/0.1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.values(), vec![0.5, 0.6, 0.7, 0.8, 0.9]);
        assert_eq!(Range::parse("x=1..3/1").map(|r| r.values()), Ok(vec![1.0, 2.0, 3.0]));
        assert!(Range::parse("x=3..1/1").is_err());
        assert!(Range::parse("x=1..3/0").is_err());
        assert!(Range::parse("x=1..3").is_err());
        assert!(Range::parse("x=0..1000/1").is_err());
    }

    #[test]
    fn substitution_keeps_the_literal_type() {
        let text = "policy p version \"1.0.0\"\nconst a = 3\nconst b = 0.7\nbudget {\n  latency 30s\n  cost $0.50\n}\n";
        let a = Target::find(text, "a").unwrap_or_else(|e| panic!("{e}"));
        assert!(a.substitute(text, 4.0).unwrap_or_default().contains("const a = 4\n"));
        assert!(a.spell(2.5).is_err());
        let b = Target::find(text, "b").unwrap_or_else(|e| panic!("{e}"));
        assert!(b.substitute(text, 1.0).unwrap_or_default().contains("const b = 1.0\n"));
        let l = Target::find(text, "budget.latency").unwrap_or_else(|e| panic!("{e}"));
        assert!(l.substitute(text, 20000.0).unwrap_or_default().contains("latency 20000ms"));
        let c = Target::find(text, "budget.cost").unwrap_or_else(|e| panic!("{e}"));
        assert!(c.substitute(text, 0.25).unwrap_or_default().contains("cost $0.25"));
        assert!(Target::find(text, "nope").is_err());
        assert!(Target::find(text, "budget.attempts").is_err());
    }
}
