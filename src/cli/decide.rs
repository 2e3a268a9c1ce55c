//! `rcv decide POLICY`: one decision for a live agent loop. Reads
//! `{"event": ..., "request": ..., "state": ..., "fleet": ..., "seed": ...}`
//! on stdin and prints `{"decision": ..., "state": ..., "policy": ...}`.
//! See docs/decide.md.

use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::compile::CompiledPolicy;
use crate::report::PolicyStamp;
use crate::runtime::decide::{Decision, Input, call_model, decide, needs_decision};
use crate::runtime::event::{Event, Outcome};
use crate::runtime::ingress::provider;
use crate::runtime::state::{FleetView, State};

use super::common::{Failure, exit, load_policy};

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// The policy file (.rcv).
    pub policy: PathBuf,
    /// Print the answer on one line instead of indented.
    #[arg(long)]
    pub compact: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// The call that just finished (failed, or succeeded for the accept gate).
    event: serde_json::Value,
    /// The request's `request` event (risk, intent, budget, metadata).
    #[serde(default)]
    request: Option<serde_json::Value>,
    #[serde(default)]
    state: State,
    #[serde(default)]
    fleet: FleetView,
    #[serde(default)]
    seed: u64,
}

/// One decision's input, parsed and completed: what `rcv decide` reads on
/// stdin and `rcv explain` reads from a file.
pub(super) struct LiveInput {
    pub event: Event,
    pub request: Event,
    pub state: State,
    pub fleet: FleetView,
    pub seed: u64,
}

/// Parses `{"event": ..., "request": ..., "state": ..., "fleet": ..., "seed": ...}`:
/// fills what a live caller may leave out and extracts provider errors from
/// `error.raw`. `origin` names the input in messages.
pub(super) fn live_input(value: serde_json::Value, origin: &str) -> Result<LiveInput, Failure> {
    let req: Request = serde_json::from_value(value).map_err(|e| Failure::Input(format!("{origin}: {e}")))?;
    let mut event = complete(req.event, "event")?;
    if let Some(err) = event.error.as_mut() {
        provider::normalize(err, &mut event.output);
    }
    let request = match req.request {
        Some(r) => complete(r, "request")?,
        None => complete(serde_json::json!({"kind": "request"}), "request")?,
    };
    Ok(LiveInput { event, request, state: req.state, fleet: req.fleet, seed: req.seed })
}

/// The state after a call that needs no decision: an accepted success
/// ends the step.
pub(super) fn accepted_state(policy: &CompiledPolicy, mut state: State, event: &Event) -> State {
    state.charge(event.cost_usd.unwrap_or(0.0), event.latency_ms.unwrap_or(0.0));
    if let Some(m) = call_model(policy, event) {
        state.note_model(m);
    }
    if event.outcome != Some(Outcome::Error) {
        state.attempt = 0;
        state.steps_done += 1;
    }
    state
}

#[derive(Serialize)]
struct Answer<'a> {
    /// `None` when the call succeeded and passed `accept`: carry on.
    decision: Option<Decision>,
    state: State,
    policy: &'a PolicyStamp,
}

/// Fills what a live caller may leave out: ids and kinds do not matter for
/// one decision.
fn complete(mut v: serde_json::Value, kind: &str) -> Result<Event, Failure> {
    let obj = v.as_object_mut().ok_or_else(|| Failure::Input(format!("`{kind}` must be a JSON object")))?;
    obj.entry("request_id").or_insert_with(|| "live".into());
    obj.entry("seq").or_insert_with(|| 0.into());
    obj.entry("kind").or_insert_with(|| if kind == "request" { "request" } else { "model_call" }.into());
    serde_json::from_value(v).map_err(|e| Failure::Input(format!("`{kind}`: {e}")))
}

pub fn run(args: DecideArgs) -> ExitCode {
    exit(decide_stdin(&args))
}

fn decide_stdin(args: &DecideArgs) -> Result<(), Failure> {
    let (source, policy) = load_policy(&args.policy)?;
    let mut text = String::new();
    io::stdin().read_to_string(&mut text).map_err(|e| Failure::Io(format!("cannot read stdin: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Failure::Input(format!("stdin: {e}")))?;
    let req = live_input(value, "stdin")?;
    let (event, request) = (req.event, req.request);
    let stamp = PolicyStamp::of(&policy);
    let lines = crate::span::Lines::new(&source.text);
    let answer = if needs_decision(&policy, &event, &request, &req.state) {
        let input = Input { call: &event, request: &request, fleet: req.fleet, seed: req.seed, lines: Some(&lines) };
        let (decision, state) = decide(&policy, &req.state, &input);
        Answer { decision: Some(decision), state, policy: &stamp }
    } else {
        Answer { decision: None, state: accepted_state(&policy, req.state, &event), policy: &stamp }
    };
    let out = if args.compact { serde_json::to_string(&answer) } else { serde_json::to_string_pretty(&answer) };
    println!("{}", out.map_err(|e| Failure::Io(e.to_string()))?);
    Ok(())
}
