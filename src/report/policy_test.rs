//! Policy unit tests (`*.rcvtest.yaml`, see `docs/testing.md`): parsing,
//! running against a compiled policy, rule coverage, and the human, JSON
//! and JUnit renderings. No file or terminal I/O: the caller reads files.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::replay_set::{self, InputFile, Setup};
use crate::compile::CompiledPolicy;
use crate::runtime::decide::{Decision, Input, decide, needs_decision};
use crate::runtime::event::Event;
use crate::runtime::state::{FleetView, State};
use crate::runtime::world::World;
use crate::span::{Lines, Span};

/// A test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The policy, relative to the test file.
    pub policy: String,
    /// Seed for jitter and simulated outcomes (default 0).
    #[serde(default)]
    pub seed: u64,
    pub cases: Vec<TestCase>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// One call to decide on (native event fields; `kind` defaults to
    /// `model_call`, `outcome` to `error`).
    #[serde(default)]
    pub event: Option<serde_json::Value>,
    /// Request fields (`risk`, `intent`, `budget`, `metadata`).
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    /// Engine state before the decision (`attempt`, `resets`, ...).
    #[serde(default)]
    pub state: Option<State>,
    #[serde(default)]
    pub fleet: Option<FleetView>,
    /// A whole recorded case instead of `event`: native events in order.
    #[serde(default)]
    pub events: Option<Vec<serde_json::Value>>,
    pub expect: Expect,
}

/// What a case expects; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// `retry`, `fallback`, `reset`, `escalate`, `abort`, or `none` (no decision needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Index of the matched rule within its block (`recover` or `accept`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// 1-based line of the matched rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Final status of a recorded case (`events`): `passed`,
    /// `auto_recovered`, `escalated`, `aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub field: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseOutcome {
    pub name: String,
    pub pass: bool,
    pub mismatches: Vec<Mismatch>,
    /// The rule that decided, `recover rule 1 (line 75)`, when one did.
    pub matched: Option<String>,
    /// The input could not be used (bad event fields...).
    pub error: Option<String>,
}

/// A rule of the policy and whether a test reached it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleCoverage {
    pub block: String,
    pub index: usize,
    pub line: usize,
    pub text: String,
    pub covered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileResult {
    pub file: String,
    pub policy: String,
    pub hash: String,
    pub cases: Vec<CaseOutcome>,
    pub coverage: Vec<RuleCoverage>,
}

impl FileResult {
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| !c.pass).count()
    }
}

pub fn parse(text: &str) -> Result<TestFile, String> {
    yaml_serde::from_str(text).map_err(|e| e.to_string())
}

/// Tracks which rules the cases reached.
struct Cover {
    classify: Vec<bool>,
    recover: Vec<bool>,
    accept: Vec<bool>,
}

impl Cover {
    fn note(&mut self, d: &Decision) {
        if let Some(i) = d.classify_rule.as_ref().and_then(|r| r.index)
            && let Some(c) = self.classify.get_mut(i)
        {
            *c = true;
        }
        let slot = match d.rule.block.as_ref() {
            "recover" => d.rule.index.and_then(|i| self.recover.get_mut(i)),
            "accept" => d.rule.index.and_then(|i| self.accept.get_mut(i)),
            _ => None,
        };
        if let Some(s) = slot {
            *s = true;
        }
        if let Some(o) = &d.overridden
            && o.replaced.block == "recover"
            && let Some(s) = o.replaced.index.and_then(|i| self.recover.get_mut(i))
        {
            *s = true;
        }
    }
}

fn event_of(v: Option<&serde_json::Value>, defaults: &[(&str, serde_json::Value)]) -> Result<Event, String> {
    let mut map = match v {
        Some(serde_json::Value::Object(m)) => m.clone(),
        None => serde_json::Map::new(),
        Some(_) => return Err("expected a map of event fields".into()),
    };
    for (k, d) in defaults {
        if !map.contains_key(*k) {
            map.insert((*k).to_string(), d.clone());
        }
    }
    // Events deny unknown fields; serde's message lists every field it
    // knows, of which only the unknown name helps here.
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
        let msg = e.to_string();
        match msg.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) {
            Some(field) => format!("unknown event field `{field}`"),
            None => msg,
        }
    })
}

fn rule_text(text: &str, span: Span) -> String {
    text.get(span.range()).and_then(|s| s.lines().next()).unwrap_or("").trim().to_string()
}

/// Runs every case of `file` against `policy` (whose text is `policy_text`).
pub fn run(
    file_name: &str,
    file: &TestFile,
    policy: &CompiledPolicy,
    policy_path: &str,
    policy_text: &str,
) -> FileResult {
    let lines = Lines::new(policy_text);
    let src = &policy.source;
    let mut cover = Cover {
        classify: vec![false; src.classify.len()],
        recover: vec![false; src.recover.len()],
        accept: vec![false; src.accept.len()],
    };
    let world = World::default();
    let mut cases = Vec::new();
    for (n, case) in file.cases.iter().enumerate() {
        let outcome = match &case.events {
            Some(events) => {
                run_sequence(case, events, policy, policy_path, policy_text, &world, file.seed, n, &mut cover)
            }
            None => run_single(case, policy, policy_text, &lines, file.seed, &mut cover),
        };
        cases.push(outcome);
    }
    let mut coverage = Vec::new();
    let mut push = |block: &str, covered: &[bool], spans: Vec<Span>| {
        for (i, (c, s)) in covered.iter().zip(spans).enumerate() {
            coverage.push(RuleCoverage {
                block: block.to_string(),
                index: i,
                line: lines.line(s.start),
                text: rule_text(policy_text, s),
                covered: *c,
            });
        }
    };
    push("classify", &cover.classify, src.classify.iter().map(|r| r.span).collect());
    push("recover", &cover.recover, src.recover.iter().map(|r| r.span).collect());
    push("accept", &cover.accept, src.accept.iter().map(|r| r.span).collect());
    FileResult {
        file: file_name.to_string(),
        policy: policy_path.to_string(),
        hash: policy.hash.clone(),
        cases,
        coverage,
    }
}

fn failed(name: &str, error: String) -> CaseOutcome {
    CaseOutcome { name: name.to_string(), pass: false, mismatches: Vec::new(), matched: None, error: Some(error) }
}

fn check(m: &mut Vec<Mismatch>, field: &str, expected: &Option<String>, actual: Option<&str>) {
    if let Some(e) = expected
        && Some(e.as_str()) != actual
    {
        m.push(Mismatch { field: field.into(), expected: e.clone(), actual: actual.unwrap_or("(none)").to_string() });
    }
}

fn run_single(
    case: &TestCase,
    policy: &CompiledPolicy,
    policy_text: &str,
    lines: &Lines<'_>,
    seed: u64,
    cover: &mut Cover,
) -> CaseOutcome {
    let id = serde_json::Value::String("test".into());
    let request = match event_of(
        case.request.as_ref(),
        &[("request_id", id.clone()), ("seq", 1.into()), ("kind", "request".into())],
    ) {
        Ok(e) => e,
        Err(e) => return failed(&case.name, format!("request: {e}")),
    };
    let call = match event_of(
        case.event.as_ref(),
        &[("request_id", id), ("seq", 2.into()), ("kind", "model_call".into()), ("outcome", "error".into())],
    ) {
        Ok(e) => e,
        Err(e) => return failed(&case.name, format!("event: {e}")),
    };
    let state = case.state.clone().unwrap_or_default();
    let e = &case.expect;
    let mut m = Vec::new();
    if case.expect.status.is_some() {
        return failed(&case.name, "`status` needs a recorded case (`events`)".into());
    }
    if !needs_decision(policy, &call, &request, &state) {
        check(&mut m, "action", &e.action, Some("none"));
        for (f, v) in [("class", &e.class), ("reason", &e.reason), ("model", &e.model), ("strategy", &e.strategy)] {
            check(&mut m, f, v, None);
        }
        if let Some(r) = e.rule.or(e.line) {
            m.push(Mismatch { field: "rule".into(), expected: r.to_string(), actual: "(no decision)".into() });
        }
        return CaseOutcome { name: case.name.clone(), pass: m.is_empty(), mismatches: m, matched: None, error: None };
    }
    let input =
        Input { call: &call, request: &request, fleet: case.fleet.unwrap_or_default(), seed, lines: Some(lines) };
    let (d, _) = decide(policy, &state, &input);
    cover.note(&d);
    check(&mut m, "class", &e.class, d.class.as_deref());
    check(&mut m, "action", &e.action, Some(d.action.kind.as_str()));
    check(&mut m, "reason", &e.reason, Some(&d.reason));
    check(&mut m, "model", &e.model, d.action.model.as_deref());
    check(&mut m, "strategy", &e.strategy, d.action.strategy.as_deref());
    if let Some(r) = e.rule
        && d.rule.index != Some(r)
    {
        m.push(Mismatch {
            field: "rule".into(),
            expected: r.to_string(),
            actual: d.rule.index.map_or("(none)".into(), |i| i.to_string()),
        });
    }
    if let Some(l) = e.line
        && d.rule.line != Some(l)
    {
        m.push(Mismatch {
            field: "line".into(),
            expected: l.to_string(),
            actual: d.rule.line.map_or("(none)".into(), |i| i.to_string()),
        });
    }
    let matched = Some(match (d.rule.index, d.rule.line) {
        (Some(i), Some(l)) => format!("{} rule {i} (line {l}) `{}`", d.rule.block, rule_text(policy_text, d.rule.span)),
        (Some(i), None) => format!("{} rule {i}", d.rule.block),
        _ => d.rule.block.to_string(),
    });
    CaseOutcome { name: case.name.clone(), pass: m.is_empty(), mismatches: m, matched, error: None }
}

#[allow(clippy::too_many_arguments)]
fn run_sequence(
    case: &TestCase,
    events: &[serde_json::Value],
    policy: &CompiledPolicy,
    policy_path: &str,
    policy_text: &str,
    world: &World,
    seed: u64,
    n: usize,
    cover: &mut Cover,
) -> CaseOutcome {
    let mut bytes = Vec::new();
    for e in events {
        match serde_json::to_vec(e) {
            Ok(b) => bytes.extend(b),
            Err(err) => return failed(&case.name, err.to_string()),
        }
        bytes.push(b'\n');
    }
    let inputs = [InputFile::new(format!("case {n}"), bytes)];
    let setup = Setup { inputs: &inputs, world, world_path: None, world_digest: "", seed, jobs: 1 };
    let r = match replay_set::replay(policy, policy_path, policy_text, setup) {
        Ok(r) => r,
        Err(e) => return failed(&case.name, e.to_string()),
    };
    if r.report.input.rejected > 0 {
        let why: Vec<String> = r.report.input.rejected_by_reason.keys().cloned().collect();
        return failed(&case.name, format!("events rejected: {}", why.join(", ")));
    }
    let Some(result) = r.cases.first() else {
        return failed(&case.name, "the events make no complete case (a `request` and an `end` are needed)".into());
    };
    for d in &result.decisions {
        cover.note(&d.decision);
    }
    let e = &case.expect;
    let mut m = Vec::new();
    check(&mut m, "status", &e.status, Some(result.status.as_str()));
    let last = result.decisions.last().map(|d| &d.decision);
    check(&mut m, "class", &e.class, last.and_then(|d| d.class.as_deref()));
    check(&mut m, "action", &e.action, last.map(|d| d.action.kind.as_str()));
    check(&mut m, "reason", &e.reason, last.map(|d| &*d.reason));
    let matched = last.map(|d| match (d.rule.index, d.rule.line) {
        (Some(i), Some(l)) => {
            format!("last decision: {} rule {i} (line {l}) `{}`", d.rule.block, rule_text(policy_text, d.rule.span))
        }
        _ => format!("last decision: {}", d.rule.block),
    });
    CaseOutcome { name: case.name.clone(), pass: m.is_empty(), mismatches: m, matched, error: None }
}

/// Covered and total rules over files.
pub fn coverage_totals(files: &[FileResult]) -> (usize, usize) {
    let all = files.iter().flat_map(|f| &f.coverage);
    let total = all.clone().count();
    (all.filter(|c| c.covered).count(), total)
}

pub fn percent(covered: usize, total: usize) -> f64 {
    if total == 0 { 100.0 } else { (covered as f64 * 1000.0 / total as f64).round() / 10.0 }
}

/// The human report.
pub fn human(files: &[FileResult]) -> String {
    let mut s = String::new();
    for f in files {
        let _ = writeln!(s, "{} ({} {})", f.file, f.policy, f.hash);
        for c in &f.cases {
            let _ = writeln!(s, "  {} {}", if c.pass { "ok  " } else { "FAIL" }, c.name);
            if let Some(e) = &c.error {
                let _ = writeln!(s, "       error: {e}");
            }
            for m in &c.mismatches {
                let _ = writeln!(s, "       {}: expected `{}`, got `{}`", m.field, m.expected, m.actual);
            }
            if !c.pass
                && let Some(r) = &c.matched
            {
                let _ = writeln!(s, "       matched: {r}");
            }
        }
        let covered = f.coverage.iter().filter(|c| c.covered).count();
        let _ =
            writeln!(s, "  coverage: {covered}/{} rules ({}%)", f.coverage.len(), percent(covered, f.coverage.len()));
        for c in f.coverage.iter().filter(|c| !c.covered) {
            let _ = writeln!(s, "    not exercised: {} rule {} (line {}) `{}`", c.block, c.index, c.line, c.text);
        }
    }
    let passed: usize = files.iter().map(|f| f.cases.len() - f.failed()).sum();
    let failed: usize = files.iter().map(FileResult::failed).sum();
    let (covered, total) = coverage_totals(files);
    let _ = writeln!(
        s,
        "{passed} passed, {failed} failed · coverage {covered}/{total} rules ({}%)",
        percent(covered, total)
    );
    s
}

#[derive(Serialize)]
struct JsonOut<'a> {
    schema: &'static str,
    files: &'a [FileResult],
    passed: usize,
    failed: usize,
    coverage: IndexMap<&'static str, f64>,
}

pub fn json(files: &[FileResult]) -> String {
    let (covered, total) = coverage_totals(files);
    let mut coverage = IndexMap::new();
    coverage.insert("covered", covered as f64);
    coverage.insert("total", total as f64);
    coverage.insert("percent", percent(covered, total));
    let out = JsonOut {
        schema: "rcv.test/1",
        files,
        passed: files.iter().map(|f| f.cases.len() - f.failed()).sum(),
        failed: files.iter().map(FileResult::failed).sum(),
        coverage,
    };
    serde_json::to_string_pretty(&out).unwrap_or_default()
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one test suite per file, one test case per case.
pub fn junit(files: &[FileResult]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let tests: usize = files.iter().map(|f| f.cases.len()).sum();
    let failures: usize = files.iter().map(FileResult::failed).sum();
    let _ = writeln!(s, "<testsuites name=\"rcv test\" tests=\"{tests}\" failures=\"{failures}\">");
    for f in files {
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">",
            xml(&f.file),
            f.cases.len(),
            f.failed()
        );
        for c in &f.cases {
            let _ = write!(s, "    <testcase classname=\"{}\" name=\"{}\"", xml(&f.file), xml(&c.name));
            if c.pass {
                let _ = writeln!(s, "/>");
                continue;
            }
            let mut detail: Vec<String> = c
                .mismatches
                .iter()
                .map(|m| format!("{}: expected `{}`, got `{}`", m.field, m.expected, m.actual))
                .collect();
            if let Some(e) = &c.error {
                detail.insert(0, format!("error: {e}"));
            }
            if let Some(r) = &c.matched {
                detail.push(format!("matched: {r}"));
            }
            let message = detail.first().cloned().unwrap_or_default();
            let _ = writeln!(s, ">");
            let _ = writeln!(s, "      <failure message=\"{}\">{}</failure>", xml(&message), xml(&detail.join("\n")));
            let _ = writeln!(s, "    </testcase>");
        }
        let _ = writeln!(s, "  </testsuite>");
    }
    s.push_str("</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_drops_control_characters() {
        assert_eq!(xml("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn unknown_expectation_fields_are_rejected() {
        let e = parse("policy: x.rcv\ncases:\n  - name: a\n    expect: {colour: red}\n");
        assert!(e.is_err());
    }

    #[test]
    fn percent_rounds_to_one_decimal() {
        assert_eq!(percent(2, 3), 66.7);
        assert_eq!(percent(0, 0), 100.0);
    }
}
