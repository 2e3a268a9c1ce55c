//! `rcv explain POLICY EVENT_JSON`: why one event gets its decision. Shows
//! the classify arm that matched and every arm before it with the field
//! value that failed; the same for the recover (or accept) rules; engine
//! overrides; the delay computation; the budget left; and the decision,
//! which comes from the same `decide` step `rcv decide` runs.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::check::ir::{ActionIr, BackoffIr, RetryIr};
use crate::compile::CompiledPolicy;
use crate::compile::explain::{Block, RuleTrace, explain_block, first_match};
use crate::report::PolicyStamp;
use crate::runtime::decide::{
    Decision, Input, Trigger, accounted, backoff_delay, decide, min_f, min_opt, needs_decision,
};
use crate::runtime::event::{Event, Outcome};
use crate::runtime::facts::{fill_event, fill_state};
use crate::runtime::rng::{Purpose, stream};
use crate::runtime::state::State;
use crate::schema::Facts;
use crate::span::Lines;
use crate::syntax::ast::Jitter;

use super::common::{Failure, exit, load_policy};
use super::decide::{LiveInput, accepted_state, live_input};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The policy file (.rcv).
    pub policy: PathBuf,
    /// The event (a JSON file, or `-` for stdin): a call event, or an object
    /// `{"event": ..., "request": ..., "state": ..., "fleet": ..., "seed": ...}` as `rcv decide` reads.
    pub event: PathBuf,
    /// The request event (JSON file); replaces the input's `request`.
    #[arg(long)]
    pub request: Option<PathBuf>,
    /// The decision state so far (JSON file); replaces the input's `state`.
    #[arg(long)]
    pub state: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A rule as the explanation shows it.
#[derive(Debug, Serialize)]
struct RuleOut {
    /// 1-based rule number in its block.
    rule: usize,
    line: usize,
    /// The rule's first source line.
    source: String,
    matched: bool,
    /// Why it did not match: per table row of the rule, the first failing test.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<String>,
}

#[derive(Debug, Serialize)]
struct BlockOut {
    block: Block,
    rules: Vec<RuleOut>,
    /// The 1-based number of the rule chosen, if one matched.
    chosen: Option<usize>,
}

#[derive(Debug, Serialize)]
struct OverrideOut {
    by: String,
    why: String,
}

#[derive(Debug, Serialize)]
struct DelayOut {
    /// `exponential(250ms, 2.0, 8s)`.
    backoff: Option<String>,
    /// Retry number the backoff is computed for (1 = first retry).
    retry: u32,
    /// The formula with its numbers.
    formula: String,
    base_ms: f64,
    jitter: Jitter,
    /// The uniform draw in `[0, 1)` the jitter used, if it drew one.
    draw: Option<f64>,
    delay_ms: f64,
}

#[derive(Debug, Serialize)]
struct Left {
    used: f64,
    cap: Option<f64>,
    left: Option<f64>,
}

#[derive(Debug, Serialize)]
struct BudgetOut {
    attempts: Left,
    cost_usd: Left,
    latency_ms: Left,
}

#[derive(Debug, Serialize)]
struct Explanation<'a> {
    policy: &'a PolicyStamp,
    trigger: Trigger,
    /// `None` when the call succeeded.
    classify: Option<BlockOut>,
    class: Option<String>,
    /// The `recover` rules (failed call) or the `accept` requirements (success).
    rules: BlockOut,
    overrides: Vec<OverrideOut>,
    delay: Option<DelayOut>,
    /// What is left after this call is accounted.
    budget: BudgetOut,
    /// `None`: the call succeeded and passed `accept`.
    decision: Option<Decision>,
    state: State,
}

pub fn run(args: ExplainArgs) -> ExitCode {
    exit(explain_cmd(&args))
}

fn read_json(path: &Path, what: &str) -> Result<serde_json::Value, Failure> {
    let text = if path == Path::new("-") {
        let mut t = String::new();
        io::stdin().read_to_string(&mut t).map_err(|e| Failure::Io(format!("cannot read stdin: {e}")))?;
        t
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::Io(format!("cannot read {what} `{}`: {e}", path.display())))?
    };
    serde_json::from_str(&text).map_err(|e| Failure::Input(format!("{what} `{}`: {e}", path.display())))
}

fn explain_cmd(args: &ExplainArgs) -> Result<(), Failure> {
    let (source, policy) = load_policy(&args.policy)?;
    let value = read_json(&args.event, "event")?;
    let mut wrapper = match value {
        serde_json::Value::Object(o) if o.contains_key("event") => o,
        other => {
            let mut o = serde_json::Map::new();
            o.insert("event".into(), other);
            o
        }
    };
    if let Some(p) = &args.request {
        wrapper.insert("request".into(), read_json(p, "request")?);
    }
    if let Some(p) = &args.state {
        wrapper.insert("state".into(), read_json(p, "state")?);
    }
    let input = live_input(serde_json::Value::Object(wrapper), &args.event.display().to_string())?;
    let stamp = PolicyStamp::of(&policy);
    let ex = explain(&policy, &source.text, &input, &stamp);
    let out = match args.format {
        Format::Json => serde_json::to_string_pretty(&ex).map_err(|e| Failure::Io(e.to_string()))?,
        Format::Text => text(&ex),
    };
    println!("{}", out.trim_end());
    Ok(())
}

fn block_out(block: Block, traces: &[RuleTrace], src: &str, lines: &Lines<'_>) -> BlockOut {
    let rules = traces
        .iter()
        .map(|t| RuleOut {
            rule: t.index + 1,
            line: lines.line(t.span.start),
            source: src
                .get(t.span.range())
                .and_then(|s| s.lines().next())
                .map(|l| l.trim().to_string())
                .unwrap_or_default(),
            matched: t.matched,
            failed: t.failed.iter().map(|f| f.text()).collect(),
        })
        .collect();
    BlockOut { block, rules, chosen: first_match(traces).map(|i| i + 1) }
}

fn explain<'a>(policy: &CompiledPolicy, src: &str, input: &LiveInput, stamp: &'a PolicyStamp) -> Explanation<'a> {
    let lines = Lines::new(src);
    let (call, request) = (&input.event, &input.request);
    let failed = call.outcome == Some(Outcome::Error);
    let mut facts = Facts::default();
    fill_event(&mut facts, policy, call, request);
    let (classify, class) = if failed {
        let traces = explain_block(policy, Block::Classify, &facts);
        let class = first_match(&traces)
            .and_then(|i| policy.source.classify.get(i))
            .map(|r| crate::names::Name::from(r.class.as_str()));
        (Some(block_out(Block::Classify, &traces, src, &lines)), class)
    } else {
        (None, None)
    };
    let next = accounted(policy, &input.state, call, class.as_ref());
    fill_state(&mut facts, &next, class.as_deref(), input.fleet);
    let block = if failed { Block::Recover } else { Block::Accept };
    let traces = explain_block(policy, block, &facts);
    let rules = block_out(block, &traces, src, &lines);

    let decision = if needs_decision(policy, call, request, &input.state) {
        let inp = Input { call, request, fleet: input.fleet, seed: input.seed, lines: Some(&lines) };
        Some(decide(policy, &input.state, &inp))
    } else {
        None
    };
    let chosen = first_match(&traces).and_then(|i| match block {
        Block::Recover => policy.source.recover.get(i).map(|r| &r.decision.action),
        _ => policy.source.accept.get(i).map(|r| &r.decision.action),
    });
    let overrides = match &decision {
        Some((d, _)) => d
            .overridden
            .as_ref()
            .map(|o| vec![OverrideOut { by: o.by.clone(), why: override_why(policy, &o.by, &next, request) }])
            .unwrap_or_default(),
        None => Vec::new(),
    };
    // The delay of the action actually taken (an override may replace it).
    let taken = match &decision {
        Some((d, _)) if d.overridden.is_none() => chosen,
        Some((d, _)) => match d.rule.block.as_ref() {
            "fleet.breaker" => policy.source.fleet.breaker.as_ref().map(|b| &b.decision.action),
            "fleet.retry_budget" => policy.source.fleet.retry_budget.as_ref().map(|b| &b.decision.action),
            "budget" => policy.source.budget.exhausted.as_ref().map(|e| &e.action),
            _ => None,
        },
        None => None,
    };
    let delay = taken.and_then(retry_of).map(|r| delay_out(r, &next, input, call));
    let budget = budget_out(policy, &next, request);
    let (decision, state) = match decision {
        Some((d, s)) => (Some(d), s),
        None => (None, accepted_state(policy, input.state.clone(), call)),
    };
    Explanation {
        policy: stamp,
        trigger: if failed { Trigger::Error } else { Trigger::Accept },
        classify,
        class: class.as_deref().map(str::to_string),
        rules,
        overrides,
        delay,
        budget,
        decision,
        state,
    }
}

fn retry_of(action: &ActionIr) -> Option<&RetryIr> {
    match action {
        ActionIr::Retry(r) => Some(r),
        ActionIr::Reset { then, .. } => match &**then {
            ActionIr::Retry(r) => Some(r),
            _ => None,
        },
        _ => None,
    }
}

fn ms(x: f64) -> String {
    format!("{}ms", (x * 1000.0).round() / 1000.0)
}

fn delay_out(r: &RetryIr, state: &State, input: &LiveInput, call: &Event) -> DelayOut {
    let n = state.attempt.max(1);
    let k = n.saturating_sub(1);
    let (backoff, formula, base) = match &r.backoff {
        None => (None, "no backoff".to_string(), 0.0),
        Some(b) => {
            let base = backoff_delay(b, n);
            let (name, formula) = match *b {
                BackoffIr::Fixed { delay_ms } => (format!("fixed({})", ms(delay_ms)), ms(delay_ms)),
                BackoffIr::Linear { initial_ms, step_ms, max_ms } => (
                    format!("linear({}, {}, {})", ms(initial_ms), ms(step_ms), ms(max_ms)),
                    format!("min({} + {} × {k}, {}) = {}", ms(initial_ms), ms(step_ms), ms(max_ms), ms(base)),
                ),
                BackoffIr::Exponential { initial_ms, factor, max_ms } => (
                    format!("exponential({}, {factor}, {})", ms(initial_ms), ms(max_ms)),
                    format!("min({} × {factor}^{k}, {}) = {}", ms(initial_ms), ms(max_ms), ms(base)),
                ),
            };
            (Some(name), formula, base)
        }
    };
    let draw = match (r.backoff.is_some(), r.jitter) {
        (true, Jitter::Full | Jitter::Equal) => {
            Some(stream(input.seed, &call.request_id, state.attempt, Purpose::Jitter).unit())
        }
        _ => None,
    };
    let delay_ms = r.backoff.as_ref().map_or(0.0, |_| {
        crate::runtime::decide::apply_jitter(base, r.jitter, input.seed, &call.request_id, state.attempt)
    });
    DelayOut { backoff, retry: n, formula, base_ms: base, jitter: r.jitter, draw, delay_ms }
}

fn left(used: f64, cap: Option<f64>) -> Left {
    Left { used, cap, left: cap.map(|c| (c - used).max(0.0)) }
}

fn budget_out(policy: &CompiledPolicy, state: &State, request: &Event) -> BudgetOut {
    let b = &policy.source.budget;
    let req = request.budget.as_ref();
    let attempts = min_opt(b.attempts, req.and_then(|r| r.attempts)).map(f64::from);
    BudgetOut {
        attempts: left(f64::from(state.attempt), attempts),
        cost_usd: left(state.cost_usd, min_f(b.cost, req.and_then(|r| r.cost_usd))),
        latency_ms: left(state.latency_ms, min_f(b.latency_ms, req.and_then(|r| r.latency_ms))),
    }
}

fn override_why(policy: &CompiledPolicy, by: &str, state: &State, request: &Event) -> String {
    let b = &policy.source.budget;
    let req = request.budget.as_ref();
    let show = |x: Option<f64>| x.map_or_else(|| "none".to_string(), |v| format!("{v}"));
    match by {
        "fleet.breaker" => "the circuit breaker of the call's model is open".to_string(),
        "fleet.retry_budget" => "the fleet retry budget allows no retry now".to_string(),
        "budget.attempts" => format!(
            "attempt {} reached the cap of {} attempts",
            state.attempt,
            show(min_opt(b.attempts, req.and_then(|r| r.attempts)).map(f64::from))
        ),
        "budget.class_attempts" => {
            let worst = state.class_attempts.iter().max_by_key(|&(_, n)| n);
            match worst {
                Some((c, n)) => {
                    format!("class `{c}` failed {n} times, the cap is {}", show(b.class_attempts.map(f64::from)))
                }
                None => "a class reached its attempt cap".to_string(),
            }
        }
        "budget.cost" => {
            format!("spent ${} of a ${} cap", state.cost_usd, show(min_f(b.cost, req.and_then(|r| r.cost_usd))))
        }
        "budget.latency" => format!(
            "spent {} of a {} cap",
            ms(state.latency_ms),
            min_f(b.latency_ms, req.and_then(|r| r.latency_ms)).map_or_else(|| "none".to_string(), ms)
        ),
        "budget.resets" => format!("{} resets done, the cap is {}", state.resets, show(b.resets.map(f64::from))),
        "budget.fallbacks" => {
            format!("{} fallbacks done, the cap is {}", state.fallbacks, show(b.fallbacks.map(f64::from)))
        }
        other => format!("`{other}` fired"),
    }
}

fn text(ex: &Explanation<'_>) -> String {
    let mut out = format!("policy {} {} {}\n", ex.policy.name, ex.policy.version, ex.policy.hash);
    let section = |b: &BlockOut, title: String, out: &mut String| {
        out.push_str(&format!("\n{title}\n"));
        for r in &b.rules {
            let verdict = match (r.matched, b.block) {
                (true, Block::Accept) => "requirement fails: chosen",
                (true, _) => "matched: chosen",
                (false, Block::Accept) => "requirement holds",
                (false, Block::Classify) => "no match",
                (false, _) => "skipped",
            };
            out.push_str(&format!(
                "  {} rule {} (line {}): {}\n",
                if r.matched { "=>" } else { "  " },
                r.rule,
                r.line,
                verdict
            ));
            out.push_str(&format!("       {}\n", r.source));
            if !r.matched && r.failed.is_empty() {
                out.push_str("       (this rule can never match)\n");
            }
            for f in &r.failed {
                out.push_str(&format!("       because {f}\n"));
            }
        }
        if b.chosen.is_none() {
            out.push_str(if b.block == Block::Accept { "  every requirement holds\n" } else { "  no rule matched\n" });
        }
    };
    if let Some(c) = &ex.classify {
        section(c, "classify".to_string(), &mut out);
    }
    let title = match (ex.rules.block, &ex.class) {
        (Block::Accept, _) => "accept (the call succeeded)".to_string(),
        (_, Some(c)) => format!("recover (class {c}, attempt {})", ex.budget.attempts.used),
        (_, None) => format!("recover (no class, attempt {})", ex.budget.attempts.used),
    };
    section(&ex.rules, title, &mut out);
    out.push_str("\nengine\n");
    if ex.overrides.is_empty() {
        out.push_str("  no override: fleet protection and budget caps let the rule's decision stand\n");
    }
    for o in &ex.overrides {
        out.push_str(&format!("  overridden by {}: {}\n", o.by, o.why));
    }
    if let Some(d) = &ex.delay {
        out.push_str("\ndelay\n");
        match &d.backoff {
            Some(b) => out.push_str(&format!("  backoff {b} for retry {}: {}\n", d.retry, d.formula)),
            None => out.push_str("  no backoff\n"),
        }
        match (d.jitter, d.draw) {
            (Jitter::Full, Some(u)) => {
                out.push_str(&format!("  jitter full: {} × u, u = {u:.4} -> {}\n", ms(d.base_ms), ms(d.delay_ms)))
            }
            (Jitter::Equal, Some(u)) => out.push_str(&format!(
                "  jitter equal: {} / 2 + {} / 2 × u, u = {u:.4} -> {}\n",
                ms(d.base_ms),
                ms(d.base_ms),
                ms(d.delay_ms)
            )),
            _ => out.push_str(&format!("  no jitter -> {}\n", ms(d.delay_ms))),
        }
    }
    out.push_str("\nbudget after this call\n");
    let line = |name: &str, l: &Left, f: &dyn Fn(f64) -> String| match (l.cap, l.left) {
        (Some(c), Some(left)) => format!("  {name}: {} used of {}, {} left\n", f(l.used), f(c), f(left)),
        _ => format!("  {name}: {} used, no cap\n", f(l.used)),
    };
    out.push_str(&line("attempts", &ex.budget.attempts, &|x| format!("{x}")));
    out.push_str(&line("cost", &ex.budget.cost_usd, &|x| format!("${}", (x * 1e6).round() / 1e6)));
    out.push_str(&line("latency", &ex.budget.latency_ms, &ms));
    out.push_str("\ndecision\n");
    match &ex.decision {
        None => out.push_str("  none: the call succeeded and passed every accept requirement\n"),
        Some(d) => {
            let a = &d.action;
            let mut parts = vec![a.kind.as_str().to_string()];
            if let Some(x) = a.delay_ms.filter(|x| *x > 0.0) {
                parts.push(format!("after {}", ms(x)));
            }
            if let Some(m) = &a.model {
                match &a.provider_model {
                    Some(p) if p != m => parts.push(format!("model {m} ({p})")),
                    _ => parts.push(format!("model {m}")),
                }
            }
            if let Some(s) = &a.strategy {
                parts.push(format!("strategy {s}"));
            }
            if let Some(r) = a.reset {
                parts.push(format!("reset {}", r.as_str()));
            }
            if let Some(p) = &a.prompt {
                parts.push(format!("prompt {}", p.id));
            }
            if let Some(t) = a.then {
                parts.push(format!("then {}", t.as_str()));
            }
            if let Some(q) = &a.queue {
                parts.push(format!("queue {q:?}"));
            }
            out.push_str(&format!("  {}\n", parts.join(", ")));
            out.push_str(&format!("  reason {} (severity {})\n", d.reason, d.severity.as_str()));
            let at = d.rule.line.map_or_else(String::new, |l| format!(" (line {l})"));
            match d.rule.index {
                Some(i) => out.push_str(&format!("  from {} rule {}{at}\n", d.rule.block, i + 1)),
                None => out.push_str(&format!("  from {}{at}\n", d.rule.block)),
            }
            for v in &d.invariant_violations {
                out.push_str(&format!("  breaks invariant {v:?}\n"));
            }
        }
    }
    out
}
