//! `rcv gen` (hidden): deterministic inputs for benchmarks. `gen trace`
//! writes native events shaped like `fixtures/tool_chain_failures.ndjson`
//! (requests, model and tool calls with provider errors, retries and
//! fallbacks, `end` events, increasing timestamps); `gen policy` writes a
//! wide policy with N recover rules that passes `rcv check`. The same
//! arguments always give the same bytes.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct GenArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Subcommand, Debug)]
pub enum What {
    /// A native trace on stdout
    Trace(TraceArgs),
    /// A wide policy on stdout
    Policy(PolicyArgs),
    /// Parse-only baseline: read a native trace into events and count them
    Parse(ParseArgs),
}

#[derive(Args, Debug)]
pub struct ParseArgs {
    /// A native NDJSON trace
    pub input: std::path::PathBuf,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Requests to generate
    #[arg(long, default_value_t = 1000)]
    pub cases: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Requests in flight at once (1 = each request's events are contiguous)
    #[arg(long, default_value_t = 1)]
    pub interleave: usize,
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Recover rules (besides the final `otherwise`)
    #[arg(long, default_value_t = 500)]
    pub rules: usize,
}

pub fn run(args: &GenArgs) -> ExitCode {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = match &args.what {
        What::Trace(t) => write_trace(&mut out, t.cases, t.seed, t.interleave.max(1)),
        What::Policy(p) => out.write_all(policy(p.rules).as_bytes()),
        What::Parse(p) => {
            parse_only(&p.input).and_then(|(events, bad)| writeln!(out, "{events} events, {bad} unparsed"))
        }
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not an error worth reporting.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            ExitCode::from(2)
        }
    }
}

/// The baseline `rcv run` is measured against: each line read and
/// deserialised into an event with serde_json, nothing else. Like the run,
/// it checks the line's UTF-8 once and parses it with `from_str`, the
/// fastest of serde_json's entry points (`from_slice` checks each string).
pub fn parse_only(path: &std::path::Path) -> io::Result<(u64, u64)> {
    use std::io::BufRead;
    let mut reader = io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut line = Vec::with_capacity(4096);
    let (mut events, mut bad) = (0u64, 0u64);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok((events, bad));
        }
        let parsed = std::str::from_utf8(&line).map(serde_json::from_str::<crate::runtime::event::Event>);
        match parsed {
            Ok(Ok(_)) => events += 1,
            _ => bad += 1,
        }
    }
}

/// splitmix64: small, fast and stable across platforms and versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len() as u64) as usize).copied().unwrap_or("")
    }
}

const INTENTS: &[&str] = &[
    "research_brief",
    "image_caption",
    "refund_request",
    "invoice_question",
    "travel_booking",
    "code_fix",
    "crm_update",
    "report_summary",
];
const TENANTS: &[&str] = &["acme-retail", "globex-finance", "initech", "umbrella-health", "hooli"];
const REGIONS: &[&str] = &["us-east-1", "eu-west-1", "ap-southeast-2"];
const CHANNELS: &[&str] = &["email", "chat", "api", "voice"];
const VERSIONS: &[&str] = &["2.13.4", "2.14.1", "2.14.2"];
const TOOLS: &[(&str, bool)] = &[
    ("web.search", false),
    ("web.fetch", false),
    ("kb.search", false),
    ("crm.get_contact", false),
    ("crm.update_contact", true),
    ("email.send", true),
    ("payments.refund", true),
    ("travel.search_flights", false),
    ("travel.book_flight", true),
    ("warehouse.sql_query", false),
    ("repo.read_file", false),
    ("ledger.write_entries", true),
];

/// Error bodies of model calls, as providers and SDKs report them (the
/// JSON text of the `error` object, already escaped).
const MODEL_ERRORS: &[&str] = &[
    r#"{"type":"tokens","code":"rate_limit_exceeded","http_status":429,"message":"Rate limit reached for gpt-4o in organization org-0wAnHytkQUOrayD5UaSk4KSa on tokens per min (TPM): Limit 450000, Used 445987, Requested 6745. Please try again in 5.756s.","provider":"openai"}"#,
    r#"{"raw":"openai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o in organization org-E6jzi2Fb0NvFGRoelnQRFkwR on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 147ms.', 'type': 'requests', 'param': None, 'code': 'rate_limit_exceeded'}}"}"#,
    r#"{"type":"overloaded_error","http_status":529,"message":"Overloaded","provider":"anthropic","raw":"litellm.InternalServerError: AnthropicError - {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"}"#,
    r#"{"type":"server_error","http_status":500,"message":"The server had an error while processing your request. Sorry about that! You can retry your request, or contact us through our help center if the error persists.","provider":"openai"}"#,
    r#"{"type":"APIStatusError","http_status":502,"message":"Bad Gateway","provider":"openai","raw":"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"}"#,
    r#"{"type":"invalid_request_error","code":"context_length_exceeded","http_status":400,"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 139540 tokens (136007 in the messages, 3533 in the functions). Please reduce the length of the messages or functions.","provider":"openai"}"#,
    r#"{"raw":"openai.BadRequestError: Error code: 400 - {'error': {'message': \"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.\", 'type': None, 'param': 'prompt', 'code': 'content_filter', 'status': 400}}"}"#,
    r#"{"type":"insufficient_quota","code":"insufficient_quota","http_status":429,"message":"You exceeded your current quota, please check your plan and billing details.","provider":"openai"}"#,
    r#"{"type":"invalid_request_error","code":"invalid_api_key","http_status":401,"message":"Incorrect API key provided: sk-proj-****VC2s.","provider":"openai"}"#,
    r#"{"raw":{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 80,000 input tokens per minute."}}}"#,
];
/// How often each entry of `MODEL_ERRORS` occurs (transient errors dominate).
const MODEL_ERROR_WEIGHTS: &[u64] = &[20, 12, 14, 10, 6, 8, 3, 2, 2, 8];

const TOOL_ERRORS: &[&str] = &[
    r#"{"raw":"urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='www.example.org', port=443): Read timed out. (read timeout=15)"}"#,
    r#"{"type":"HTTPError","http_status":503,"message":"upstream connect error or disconnect/reset before headers. reset reason: connection termination","provider":"email.send"}"#,
    r#"{"type":"HTTPError","http_status":429,"message":"429 Client Error: Too Many Requests for url: https://search-api.example.net/v1/search?q=q3+freight+rates&count=10","provider":"web.search"}"#,
    r#"{"raw":"jsonschema.exceptions.ValidationError: 'query' is a required property\n\nFailed validating 'required' in schema:\n    {'type': 'object', 'required': ['query'], 'additionalProperties': False}"}"#,
    r#"{"type":"HTTPError","http_status":504,"message":"504 Server Error: Gateway Timeout for url: https://travel-api.example.com/v1/shopping/flight-offers","provider":"travel.search_flights"}"#,
    r#"{"type":"HTTPError","http_status":401,"message":"401 Client Error: Unauthorized for url: https://crm-api.example.com/crm/v3/objects/contacts/91603","provider":"crm.get_contact"}"#,
];
const TOOL_ERROR_WEIGHTS: &[u64] = &[25, 15, 15, 15, 10, 5];

fn weighted(rng: &mut Rng, weights: &[u64]) -> usize {
    let total: u64 = weights.iter().sum();
    let mut x = rng.below(total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    0
}

/// One generated request: its lines without timestamps, each with the
/// delay (ms) since the previous line of the same request.
struct CaseGen {
    lines: Vec<(u64, String)>,
    next: usize,
}

fn case_lines(rng: &mut Rng, index: u64) -> Vec<(u64, String)> {
    let id = format!("run_{:012x}", rng.next() & 0xffff_ffff_ffff ^ index);
    let mut lines: Vec<(u64, String)> = Vec::with_capacity(16);
    let risk = match rng.below(100) {
        0..60 => "low",
        60..85 => "medium",
        85..96 => "high",
        _ => "critical",
    };
    let budget = match rng.below(10) {
        0 => r#","budget":{"attempts":3}"#,
        1 => r#","budget":{"cost_usd":0.03}"#,
        2 => r#","budget":{"latency_ms":20000}"#,
        _ => "",
    };
    let mut seq = 1u64;
    lines.push((
        rng.below(4000),
        format!(
            r#"{{"request_id":"{id}","seq":{seq},"kind":"request",TS,"intent":"{}","risk":"{risk}"{budget},"metadata":{{"tenant":"{}","region":"{}","channel":"{}","agent_version":"{}"}}}}"#,
            rng.pick(INTENTS),
            rng.pick(TENANTS),
            rng.pick(REGIONS),
            rng.pick(CHANNELS),
            rng.pick(VERSIONS),
        ),
    ));
    let steps = 1 + rng.below(6);
    for _ in 0..steps {
        let tool = rng.chance(45).then(|| TOOLS.get(rng.below(TOOLS.len() as u64) as usize).copied()).flatten();
        let mut model = "gpt-4o";
        let mut attempt = 1u32;
        loop {
            seq += 1;
            let failed = rng.chance(if attempt == 1 { 22 } else { 35 });
            let latency = 150 + rng.below(if failed { 4000 } else { 9000 });
            let mut line = format!(r#"{{"request_id":"{id}","seq":{seq},"#);
            match tool {
                Some((name, side)) => {
                    let _ = write!(line, r#""kind":"tool_call",TS,"tool":{{"name":"{name}","side_effects":{side}}},"#);
                }
                None => {
                    let strategy = if attempt > 2 { "step_by_step" } else { "direct" };
                    let _ = write!(line, r#""kind":"model_call",TS,"model":"{model}","#);
                    let _ = write!(line, r#""attempt":{attempt},"strategy":"{strategy}","#);
                }
            }
            if tool.is_some() {
                let _ = write!(line, r#""attempt":{attempt},"#);
            }
            if failed {
                let error = match tool {
                    Some(_) => TOOL_ERRORS.get(weighted(rng, TOOL_ERROR_WEIGHTS)),
                    None => MODEL_ERRORS.get(weighted(rng, MODEL_ERROR_WEIGHTS)),
                };
                let _ = write!(
                    line,
                    r#""outcome":"error","error":{},"latency_ms":{latency},"cost_usd":0.0}}"#,
                    error.copied().unwrap_or("{}")
                );
            } else if tool.is_some() {
                let _ = write!(
                    line,
                    r#""outcome":"ok","output":{{"schema_valid":true}},"latency_ms":{latency},"cost_usd":0.005}}"#
                );
            } else {
                let confidence = 0.55 + rng.below(45) as f64 / 100.0;
                let tokens_in = 500 + rng.below(6000);
                let tokens_out = 50 + rng.below(900);
                let cost = (tokens_in * 5 + tokens_out * 15) as f64 / 1_000_000.0;
                let finish = if rng.chance(40) { "tool_calls" } else { "stop" };
                let _ = write!(
                    line,
                    r#""outcome":"ok","output":{{"schema_valid":true,"confidence":{confidence:.2},"finish_reason":"{finish}"}},"latency_ms":{latency},"cost_usd":{cost:.6},"tokens_in":{tokens_in},"tokens_out":{tokens_out}}}"#
                );
            }
            lines.push((200 + rng.below(3000) + latency, line));
            if !failed || attempt >= 4 {
                break;
            }
            attempt += 1;
            if attempt == 3 && tool.is_none() && rng.chance(60) {
                model = "claude-3-5-haiku";
            }
        }
    }
    seq += 1;
    lines.push((50 + rng.below(400), format!(r#"{{"request_id":"{id}","seq":{seq},"kind":"end",TS}}"#)));
    lines
}

pub fn write_trace(out: &mut dyn Write, cases: u64, seed: u64, interleave: usize) -> io::Result<()> {
    let mut rng = Rng(seed ^ 0x5eed_0000_0000_0001);
    // 2025-03-11T09:00:00Z
    let mut clock: i64 = 1_741_683_600_000;
    let mut started = 0u64;
    let mut active: Vec<CaseGen> = Vec::with_capacity(interleave);
    let mut buf = String::with_capacity(1024);
    loop {
        while active.len() < interleave && started < cases {
            active.push(CaseGen { lines: case_lines(&mut rng, started), next: 0 });
            started += 1;
        }
        if active.is_empty() {
            return Ok(());
        }
        let i = rng.below(active.len() as u64) as usize;
        let in_flight = active.len().max(1) as u64;
        let Some(case) = active.get_mut(i) else { return Ok(()) };
        if let Some((delay, line)) = case.lines.get(case.next) {
            // Concurrent requests share the clock: spread the delay.
            clock += (*delay / in_flight).max(1) as i64;
            let ts = jiff::Timestamp::from_millisecond(clock).map_or_else(|_| clock.to_string(), |t| format!("{t:.3}"));
            buf.clear();
            if let Some((head, tail)) = line.split_once("TS") {
                let _ = write!(buf, "{head}\"ts\":\"{ts}\"{tail}");
            }
            buf.push('\n');
            out.write_all(buf.as_bytes())?;
            case.next += 1;
        }
        if case.next >= case.lines.len() {
            active.swap_remove(i);
        }
    }
}

/// A valid wide policy: `rules` recover rules over class, attempts, model,
/// risk and `tool.side_effects`, each with its own reason.
pub fn policy(rules: usize) -> String {
    const CLASSES: usize = 16;
    const RISKS: &[&str] = &["low", "medium", "high", "critical"];
    const MODELS: &[(&str, &str)] =
        &[("m0", "gpt-4o"), ("m1", "claude-3-5-haiku"), ("m2", "gpt-4o-mini"), ("m3", "claude-3-5-sonnet")];
    let mut p = String::with_capacity(200 + rules * 160);
    p.push_str("# Generated by `rcv gen policy`: a wide policy for benchmarks.\n");
    p.push_str("policy generated_wide version \"1.0.0\"\n\nclasses {\n");
    for c in 0..CLASSES {
        let _ = writeln!(p, "  k{c} {}", if c % 4 == 3 { "permanent" } else { "transient" });
    }
    // Rule i varies the class fastest, then the model, the risk and side
    // effects; each further layer allows one more attempt, so no rule is
    // shadowed by an earlier one. Permanent classes are never retried and
    // fallbacks only go to a later model, so the policy checks clean.
    let per_layer = CLASSES * MODELS.len() * RISKS.len() * 2;
    let mut conds = Vec::with_capacity(rules);
    let mut actions = Vec::with_capacity(rules);
    for i in 0..rules {
        let class = i % CLASSES;
        let model = (i / CLASSES) % MODELS.len();
        let risk = RISKS.get((i / (CLASSES * MODELS.len())) % RISKS.len()).copied().unwrap_or("low");
        let side = if (i / (CLASSES * MODELS.len() * RISKS.len())).is_multiple_of(2) { "" } else { "not " };
        let attempts = 2 + i / per_layer;
        conds.push(format!(
            "class == k{class} and model == m{model} and risk == {risk} and {side}tool.side_effects and attempt < {attempts}"
        ));
        let permanent = class % 4 == 3;
        let action = match i % 5 {
            _ if permanent && (i.is_multiple_of(2) || model + 1 == MODELS.len()) => {
                format!("escalate queue \"q{}\"", i % 7)
            }
            _ if permanent => format!("fallback m{} strategy s0", model + 1),
            0 | 1 => format!("retry backoff exponential({}ms, 2.0, 8s) jitter full", 100 + i % 400),
            2 => "retry strategy s1".to_string(),
            3 if model + 1 < MODELS.len() => format!("fallback m{} strategy s0", model + 1),
            3 => "retry".to_string(),
            _ => format!("escalate queue \"q{}\"", i % 7),
        };
        actions.push(action);
    }
    p.push_str("  unknown\n}\n\nreasons {\n");
    for (r, action) in actions.iter().enumerate() {
        let severity = if action.starts_with("escalate") { " severity high" } else { "" };
        let _ = writeln!(p, "  R{r} \"generated rule {r}\"{severity}");
    }
    p.push_str("  GIVE_UP \"no generated rule applies\" severity high\n");
    p.push_str("  BUDGET \"budget exhausted\" severity medium\n}\n\nmodels {\n");
    for (i, (name, id)) in MODELS.iter().enumerate() {
        let _ = writeln!(p, "  {name} \"{id}\" tier {} cost_per_1k 0.00{}", i + 1, i + 1);
    }
    p.push_str("}\n\nstrategies {\n  s0 \"think first\"\n  s1 \"repair the arguments\"\n}\n\n");
    p.push_str("budget {\n  attempts 6\n  cost $1.00\n  => escalate queue \"budget\", reason BUDGET\n}\n\n");
    p.push_str("classify {\n");
    for c in 0..CLASSES {
        let _ = writeln!(p, "  error.http_status == {} or error.code == \"code_{c}\" => k{c}", 430 + c);
    }
    p.push_str("  otherwise => unknown\n}\n\nrecover {\n");
    for (i, (cond, action)) in conds.iter().zip(&actions).enumerate() {
        let _ = writeln!(p, "  when {cond} => {action}, reason R{i}");
    }
    p.push_str("  otherwise => escalate, reason GIVE_UP\n}\n");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_is_deterministic_and_ordered() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_trace(&mut a, 50, 7, 4).unwrap();
        write_trace(&mut b, 50, 7, 4).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let mut last = String::new();
        let mut ends = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["ts"].as_str().unwrap().to_string();
            assert!(ts > last, "timestamps increase: {ts} after {last}");
            last = ts;
            let e: crate::runtime::event::Event = serde_json::from_str(line).unwrap();
            ends += usize::from(e.kind == crate::runtime::event::EventKind::End);
        }
        assert_eq!(ends, 50);
    }

    #[test]
    fn generated_policy_compiles_without_errors() {
        let text = policy(300);
        let source = crate::diag::Source::new("gen.rcv", text);
        let build = crate::compile::build(&source);
        let errors: Vec<_> = build
            .diagnostics
            .iter()
            .filter(|d| d.level == crate::diag::Level::Error)
            .map(|d| d.message.clone())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        let policy = build.policy.unwrap();
        assert_eq!(policy.source.recover.len(), 301);
    }
}
