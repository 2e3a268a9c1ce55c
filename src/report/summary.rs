//! `summary.md`: the operations summary for people. Everything in it is
//! drawn from the report, so it never says more than the data does.

use std::fmt::Write as _;

use crate::compile::CompiledPolicy;

use super::report::Report;

/// Classes whose retries recover fewer cases than this are called out.
const POOR_RECOVERY: f64 = 0.3;
/// ... once they have wasted at least this many retries.
const MIN_WASTED: u64 = 3;
/// A share of simulated cases above this is called out.
const SIMULATED_SHARE: f64 = 0.2;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

pub fn render(report: &Report, policy: &CompiledPolicy) -> String {
    let mut s = String::new();
    let t = &report.totals;
    let p = &report.policy;
    let _ = writeln!(s, "# Recovery summary: {} {}\n", p.name, p.version);
    let _ = writeln!(s, "- policy `{}`", p.hash);
    let _ = writeln!(
        s,
        "- seed {} · {} cases · {} decisions · {} calls",
        report.snapshot.seed, t.cases, t.decisions, t.calls
    );
    for input in &report.snapshot.inputs {
        let _ = writeln!(s, "- input `{}` ({}) `{}`", input.path, input.format, input.digest);
    }
    let world = report.snapshot.world_path.as_deref().unwrap_or("built-in (fixtures/world.yaml)");
    let _ = writeln!(s, "- world model: {world}\n");

    let _ = writeln!(s, "## Outcomes\n");
    let _ = writeln!(s, "| status | cases | share |\n|---|---:|---:|");
    let share = |n: u64| if t.cases == 0 { 0.0 } else { n as f64 / t.cases as f64 };
    for (name, n) in [
        ("passed", t.passed),
        ("auto_recovered", t.auto_recovered),
        ("  of which fallback_model_recoveries", t.fallback_model_recoveries),
        ("escalated", t.escalated),
        ("aborted", t.aborted),
    ] {
        let _ = writeln!(s, "| {name} | {n} | {} |", pct(share(n)));
    }
    let _ = writeln!(
        s,
        "\nLatency per case p50 {:.0} ms, p95 {:.0} ms · cost per case mean ${:.4}, p95 ${:.4}\n",
        report.latency_ms.p50, report.latency_ms.p95, report.cost_usd.mean, report.cost_usd.p95
    );

    let g = &report.gate;
    let _ = writeln!(s, "## Release gate: {}\n", g.verdict.to_uppercase());
    if !g.checks.is_empty() {
        let _ = writeln!(s, "| metric | bound | observed | result |\n|---|---|---:|---|");
        for c in &g.checks {
            let _ = writeln!(
                s,
                "| {} | {} {} | {} | {} |",
                c.metric,
                c.bound,
                c.threshold,
                c.observed,
                if c.pass { "pass" } else { "FAIL" }
            );
        }
        s.push('\n');
    }
    for r in &g.reasons {
        let _ = writeln!(s, "- {r}");
    }
    if !g.reasons.is_empty() {
        s.push('\n');
    }

    let _ = writeln!(s, "## Top failure classes\n");
    if report.per_class.is_empty() {
        let _ = writeln!(s, "No failures.\n");
    } else {
        let _ = writeln!(
            s,
            "| class | failures | cases | recovered | recovery rate | mean attempts | wasted retries |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (class, c) in report.per_class.iter().take(10) {
            let _ = writeln!(
                s,
                "| {class} | {} | {} | {} | {} | {:.2} | {} |",
                c.failures,
                c.cases,
                c.recovered,
                pct(c.recovery_rate),
                c.mean_attempts,
                c.wasted_retries
            );
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Remediation suggestions\n");
    let suggestions = suggestions(report, policy);
    if suggestions.is_empty() {
        let _ = writeln!(s, "None: no class, cap or input problem stood out in this run.\n");
    } else {
        for line in suggestions {
            let _ = writeln!(s, "- {line}");
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Safety\n");
    let sf = &report.safety;
    let _ = writeln!(
        s,
        "{} high-risk cases; {} had a failed side-effecting tool call, {} of them escalated.\n",
        sf.high_risk_cases, sf.high_risk_side_effect_cases, sf.high_risk_side_effect_escalated
    );
    if sf.findings.is_empty() {
        let _ = writeln!(s, "No safety findings.\n");
    } else {
        for f in &sf.findings {
            let _ = writeln!(s, "- **{}** `{}` seq {}: {}", f.kind, f.request_id, f.seq, f.detail);
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Outcome sources\n");
    let src = &report.sources;
    let _ = writeln!(
        s,
        "{} cases rest at least in part on simulated outcomes, {} used scripted alternatives.",
        src.cases_simulated, src.cases_with_alternatives
    );
    for (k, n) in &src.decisions {
        let _ = writeln!(s, "- {k}: {n} action outcomes");
    }
    s.push('\n');

    let _ = writeln!(s, "## Input\n");
    let i = &report.input;
    let _ = writeln!(
        s,
        "{} lines read: {} events accepted, {} blank, {} rejected.",
        i.lines, i.accepted_events, i.blank_lines, i.rejected
    );
    for (reason, n) in &i.rejected_by_reason {
        let _ = writeln!(s, "- {reason}: {n}");
    }
    s
}

/// Suggestions drawn from the numbers, most actionable first.
fn suggestions(report: &Report, policy: &CompiledPolicy) -> Vec<String> {
    let mut out = Vec::new();
    for f in &report.safety.findings {
        out.push(format!(
            "Safety: `{}` in request `{}` — make the rule that decided it escalate (see trace.ndjson seq {}).",
            f.kind, f.request_id, f.seq
        ));
    }
    for (class, c) in &report.per_class {
        if c.wasted_retries >= MIN_WASTED && c.recovery_rate < POOR_RECOVERY {
            let declared = policy.source.classes.get(class);
            let hint = if declared.is_some_and(|d| !d.is_permanent()) {
                " It is declared transient but behaves as permanent here."
            } else {
                ""
            };
            out.push(format!(
                "Retries of `{class}` recovered {} of {} cases and wasted {} retries: fall back or escalate sooner.{hint}",
                c.recovered, c.cases, c.wasted_retries
            ));
        }
    }
    if let Some(c) = report.per_class.get("unknown").filter(|c| c.failures > 0) {
        out.push(format!(
            "{} failures fell through to `unknown`: add `classify` rules for them (their error fields are in trace.ndjson).",
            c.failures
        ));
    }
    for (by, n) in &report.overrides {
        let what = if by.starts_with("budget") {
            "a budget cap replaced the rule's decision"
        } else {
            "fleet protection replaced a retry"
        };
        out.push(format!("`{by}` fired {n} times ({what}): check the cap against the rules' own limits."));
    }
    let t = &report.totals;
    if t.cases > 0 && report.sources.cases_simulated as f64 / t.cases as f64 > SIMULATED_SHARE {
        out.push(format!(
            "{} of {} cases rest on simulated outcomes: record `alternatives` or replay fresher traces before trusting these rates.",
            report.sources.cases_simulated, t.cases
        ));
    }
    if report.input.rejected > 0 {
        out.push(format!(
            "{} input lines were rejected: see the `rejected` records in trace.ndjson.",
            report.input.rejected
        ));
    }
    out
}
