//! Fleet-level protection in trace time: a retry budget (retries allowed as
//! a share of recent calls, in the style of Envoy's and the AWS SDKs' retry
//! budgets) and a per-model circuit breaker. Both advance over the recorded
//! calls in input order, using event timestamps, never the wall clock, so a
//! replay gives the same answer every time and on any thread count.
//!
//! Simplification, stated in docs/replay.md: the fleet state is driven by
//! the recorded traffic; actions the replay simulates do not feed back.

use std::collections::VecDeque;

use indexmap::IndexMap;

use crate::check::ir::{BreakerIr, RetryBudgetIr};

use super::state::FleetView;

#[derive(Debug, Default)]
struct Breaker {
    failures: VecDeque<f64>,
    open_until: Option<f64>,
}

/// The fleet's protection state, advanced call by call.
#[derive(Debug, Default)]
pub struct Fleet {
    retry_budget: Option<(f64, u32, f64)>,
    breaker: Option<(u32, f64, f64)>,
    calls: VecDeque<f64>,
    retries: VecDeque<f64>,
    /// Per model; looked up on every call, so hashed with foldhash.
    breakers: IndexMap<String, Breaker, foldhash::fast::RandomState>,
}

impl Fleet {
    pub fn new(retry_budget: Option<&RetryBudgetIr>, breaker: Option<&BreakerIr>) -> Self {
        Fleet {
            retry_budget: retry_budget.map(|r| (r.ratio, r.min, r.window_ms)),
            breaker: breaker.map(|b| (b.failures, b.window_ms, b.cooldown_ms)),
            ..Fleet::default()
        }
    }

    /// Records one call at time `t` (ms): its model key, whether it was a
    /// retry (attempt > 1) and whether it failed. Returns the view the
    /// decision about this call sees (state before the call is counted).
    pub fn observe(&mut self, t: f64, model: &str, is_retry: bool, failed: bool) -> FleetView {
        let view = self.view(t, model);
        if let Some((_, _, window)) = self.retry_budget {
            self.calls.push_back(t);
            if is_retry {
                self.retries.push_back(t);
            }
            prune(&mut self.calls, t - window);
            prune(&mut self.retries, t - window);
        }
        if let Some((threshold, window, cooldown)) = self.breaker {
            // The model name is copied only the first time it is seen.
            let b = match self.breakers.get_index_of(model) {
                Some(i) => &mut self.breakers[i],
                None => self.breakers.entry(model.to_string()).or_default(),
            };
            if failed {
                b.failures.push_back(t);
                prune(&mut b.failures, t - window);
                if b.failures.len() >= threshold as usize && b.open_until.is_none_or(|u| t >= u) {
                    b.open_until = Some(t + cooldown);
                    b.failures.clear();
                }
            }
        }
        view
    }

    fn view(&mut self, t: f64, model: &str) -> FleetView {
        let breaker_open = self.breakers.get(model).and_then(|b| b.open_until).is_some_and(|u| t < u);
        let retry_budget_exhausted = match self.retry_budget {
            Some((ratio, min, window)) => {
                prune(&mut self.calls, t - window);
                prune(&mut self.retries, t - window);
                let allowed = (ratio * self.calls.len() as f64).max(f64::from(min));
                self.retries.len() as f64 >= allowed
            }
            None => false,
        };
        FleetView { breaker_open, retry_budget_exhausted }
    }
}

fn prune(q: &mut VecDeque<f64>, before: f64) {
    while q.front().is_some_and(|&x| x <= before) {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ir::{ActionIr, DecisionIr};
    use crate::span::Span;

    fn decision() -> DecisionIr {
        DecisionIr { action: ActionIr::Abort, reason: "R".into(), span: Span::default() }
    }

    #[test]
    fn breaker_opens_after_failures_and_closes_after_cooldown() {
        let b = BreakerIr {
            failures: 3,
            window_ms: 1000.0,
            cooldown_ms: 5000.0,
            decision: decision(),
            span: Span::default(),
        };
        let mut f = Fleet::new(None, Some(&b));
        assert!(!f.observe(0.0, "m", false, true).breaker_open);
        assert!(!f.observe(10.0, "m", false, true).breaker_open);
        assert!(!f.observe(20.0, "m", false, true).breaker_open); // third failure opens it
        assert!(f.observe(30.0, "m", false, false).breaker_open);
        assert!(!f.observe(30.0, "other", false, false).breaker_open);
        assert!(!f.observe(5021.0, "m", false, false).breaker_open);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let b = BreakerIr {
            failures: 2,
            window_ms: 100.0,
            cooldown_ms: 1000.0,
            decision: decision(),
            span: Span::default(),
        };
        let mut f = Fleet::new(None, Some(&b));
        f.observe(0.0, "m", false, true);
        f.observe(500.0, "m", false, true);
        assert!(!f.observe(510.0, "m", false, false).breaker_open);
    }

    #[test]
    fn retry_budget_allows_a_share_of_recent_calls() {
        let r = RetryBudgetIr { ratio: 0.5, min: 1, window_ms: 1000.0, decision: decision(), span: Span::default() };
        let mut f = Fleet::new(Some(&r), None);
        assert!(!f.observe(0.0, "m", false, true).retry_budget_exhausted);
        assert!(!f.observe(1.0, "m", true, true).retry_budget_exhausted);
        // 2 calls, 1 retry: allowed = max(1, 1.0) = 1, used 1 -> exhausted.
        assert!(f.observe(2.0, "m", true, false).retry_budget_exhausted);
        // Much later the window is empty again.
        assert!(!f.observe(5000.0, "m", true, false).retry_budget_exhausted);
    }
}
