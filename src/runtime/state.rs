//! The decision state of one request: what the engine has counted so far.
//! It is serialisable because `rcv decide` takes it in and hands it back:
//! an agent loop keeps it between calls.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use crate::names::Name;

/// Per-request state. All counters start at zero for a new request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct State {
    /// Attempts made in the current step so far (a step is a call and its
    /// retries or fallbacks, up to its first accepted success).
    pub attempt: u32,
    /// Steps completed successfully.
    pub steps_done: u32,
    /// Failures per class in this request. Looked up on every decision and
    /// copied into every decision record, so hashed with foldhash (the
    /// order, which output follows, is insertion order either way).
    pub class_attempts: IndexMap<Name, u32, foldhash::fast::FixedState>,
    /// Calls made by the request (recorded or replayed).
    pub calls: u32,
    pub cost_usd: f64,
    /// Latency spent, backoff delays included.
    pub latency_ms: f64,
    /// Declared model names tried, in first-use order.
    pub models_tried: Vec<Name>,
    /// Strategies tried, in first-use order.
    pub strategies_tried: Vec<Name>,
    pub retries: u32,
    pub fallbacks: u32,
    pub resets: u32,
    pub escalations: u32,
    /// Decisions taken so far.
    pub decisions: u32,
    /// The model the next call goes to (declared name), once known.
    pub model: Option<Name>,
    /// The strategy of the next call, once changed by a decision.
    pub strategy: Option<Name>,
}

impl State {
    /// Accounts one call's cost and latency.
    pub fn charge(&mut self, cost_usd: f64, latency_ms: f64) {
        self.calls += 1;
        self.cost_usd += cost_usd.max(0.0);
        self.latency_ms += latency_ms.max(0.0);
    }

    pub fn note_model(&mut self, model: &str) {
        if !self.models_tried.iter().any(|m| &**m == model) {
            self.models_tried.push(model.into());
        }
    }

    pub fn note_strategy(&mut self, strategy: &str) {
        if !self.strategies_tried.iter().any(|s| &**s == strategy) {
            self.strategies_tried.push(strategy.into());
        }
    }

    pub fn class_count(&self, class: &str) -> u32 {
        self.class_attempts.get(class).copied().unwrap_or(0)
    }
}

/// Fleet-level protection as seen by one decision: computed in trace time
/// from the recorded traffic, never from the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetView {
    /// The circuit breaker of the failed call's model is open.
    pub breaker_open: bool,
    /// The fleet retry budget allows no retry now.
    pub retry_budget_exhausted: bool,
}
