//! Fleet-level protection in trace time: a retry budget (retries allowed as
//! a share of recent calls, in the style of Envoy's and the AWS SDKs' retry
//! budgets) and a per-model circuit breaker. Both advance over the recorded
//! calls in input order, using event timestamps, never the wall clock, so a
//! replay gives the same answer every time and on any thread count.
//!
//! Simplification, stated in docs/replay.md: the fleet state is driven by
//! the recorded traffic; actions the replay simulates do not feed back.

use std::collections::VecDeque;

use indexmap::IndexSet;

use crate::check::ir::{BreakerIr, RetryBudgetIr};

use super::state::FleetView;

#[derive(Debug, Default)]
struct Breaker {
    failures: VecDeque<f64>,
    open_until: Option<f64>,
}

/// Names (model keys) numbered densely in first-seen order: a name's
/// number is its index in the set.
pub type Names = IndexSet<Box<str>, foldhash::fast::RandomState>;

/// The number of `name`, numbering it next if it is new (the name is
/// copied only then).
pub fn intern(names: &mut Names, name: &str) -> usize {
    names.get_index_of(name).unwrap_or_else(|| names.insert_full(name.into()).0)
}

/// A model key's place in a [`Fleet`], from [`Fleet::model`]: observing by
/// slot finds the model's breaker without comparing names again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSlot(usize);

/// The fleet's protection state, advanced call by call.
#[derive(Debug, Default)]
pub struct Fleet {
    retry_budget: Option<(f64, u32, f64)>,
    breaker: Option<(u32, f64, f64)>,
    calls: VecDeque<f64>,
    retries: VecDeque<f64>,
    /// Model keys, numbered as first seen; `breakers[i]` belongs to key `i`.
    models: Names,
    breakers: Vec<Breaker>,
}

impl Fleet {
    pub fn new(retry_budget: Option<&RetryBudgetIr>, breaker: Option<&BreakerIr>) -> Self {
        Fleet {
            retry_budget: retry_budget.map(|r| (r.ratio, r.min, r.window_ms)),
            breaker: breaker.map(|b| (b.failures, b.window_ms, b.cooldown_ms)),
            ..Fleet::default()
        }
    }

    /// The slot of a model key (the name is copied only the first time it
    /// is seen).
    pub fn model(&mut self, model: &str) -> ModelSlot {
        let i = intern(&mut self.models, model);
        if i == self.breakers.len() {
            self.breakers.push(Breaker::default());
        }
        ModelSlot(i)
    }

    /// Records one call at time `t` (ms): its model key, whether it was a
    /// retry (attempt > 1) and whether it failed. Returns the view the
    /// decision about this call sees (state before the call is counted).
    pub fn observe(&mut self, t: f64, model: &str, is_retry: bool, failed: bool) -> FleetView {
        let slot = self.model(model);
        self.observe_slot(t, slot, is_retry, failed)
    }

    /// [`Fleet::observe`] for a model already given a slot by [`Fleet::model`].
    pub fn observe_slot(&mut self, t: f64, model: ModelSlot, is_retry: bool, failed: bool) -> FleetView {
        let retry_budget_exhausted = match self.retry_budget {
            Some((ratio, min, window)) => {
                prune(&mut self.calls, t - window);
                prune(&mut self.retries, t - window);
                let allowed = (ratio * self.calls.len() as f64).max(f64::from(min));
                let exhausted = self.retries.len() as f64 >= allowed;
                self.calls.push_back(t);
                if is_retry {
                    self.retries.push_back(t);
                }
                prune(&mut self.calls, t - window);
                prune(&mut self.retries, t - window);
                exhausted
            }
            None => false,
        };
        let Some(b) = self.breakers.get_mut(model.0) else {
            return FleetView { breaker_open: false, retry_budget_exhausted };
        };
        let breaker_open = b.open_until.is_some_and(|u| t < u);
        if let Some((threshold, window, cooldown)) = self.breaker
            && failed
        {
            b.failures.push_back(t);
            prune(&mut b.failures, t - window);
            if b.failures.len() >= threshold as usize && b.open_until.is_none_or(|u| t >= u) {
                b.open_until = Some(t + cooldown);
                b.failures.clear();
            }
        }
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
    fn names_are_numbered_in_first_seen_order() {
        let mut names = Names::default();
        assert!(names.is_empty());
        assert_eq!(names.get_index_of("a"), None);
        let words: Vec<String> = (0..24).map(|i| format!("model-{i}")).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(intern(&mut names, w), i);
            // Seen again.
            assert_eq!(intern(&mut names, w), i);
            assert_eq!(names.get_index_of(words[0].as_str()), Some(0));
            assert_eq!(names.len(), i + 1);
        }
        for (i, w) in words.iter().enumerate() {
            assert_eq!(names.get_index_of(w.as_str()), Some(i));
            assert_eq!(names.get_index(i).map(|n| &**n), Some(w.as_str()));
        }
        assert_eq!(names.get_index_of("model-"), None, "a prefix is another name");
        assert_eq!(names.get_index_of(""), None);
        assert_eq!(intern(&mut names, ""), words.len());
        assert_eq!(names.get_index(words.len() + 1), None);
    }

    #[test]
    fn slots_and_names_reach_the_same_breaker() {
        let b = BreakerIr {
            failures: 2,
            window_ms: 1000.0,
            cooldown_ms: 100.0,
            decision: decision(),
            span: Span::default(),
        };
        let mut f = Fleet::new(None, Some(&b));
        let m = f.model("m");
        assert_eq!(f.model("m"), m);
        assert_ne!(f.model("n"), m);
        f.observe_slot(0.0, m, false, true);
        assert!(!f.observe(1.0, "m", false, true).breaker_open, "the view is taken before the call counts");
        assert!(f.observe_slot(2.0, m, false, false).breaker_open);
        let n = f.model("n");
        assert!(!f.observe_slot(2.0, n, false, false).breaker_open);
        // Many models: each keeps its own breaker.
        for i in 0..16 {
            let name = format!("x{i}");
            f.observe(3.0, &name, false, true);
            f.observe(4.0, &name, false, true);
        }
        assert!(f.observe(5.0, "x11", false, false).breaker_open);
        assert!(f.observe(5.0, "m", false, false).breaker_open);
        assert!(!f.observe(102.0, "m", false, false).breaker_open);
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
