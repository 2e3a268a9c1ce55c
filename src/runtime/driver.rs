//! The batch driver: reads inputs in order, advances fleet protection over
//! every accepted call, replays completed cases in parallel batches, and
//! hands results and rejections to a sink in input order. Batch boundaries
//! depend only on the input, so the output is byte-identical for any
//! `--jobs`.

use std::collections::HashMap;
use std::io;

use rayon::prelude::*;

use crate::compile::CompiledPolicy;

use super::decide::call_model;
use super::event::{Event, Outcome, Timestamp};
use super::fleet::Fleet;
use super::ingress::{Case, Item, Rejection, Stats, Stream};
use super::replay::{CaseInput, CaseResult, replay_case};
use super::state::FleetView;
use super::world::World;

/// Cases replayed per parallel batch.
pub const BATCH: usize = 256;

/// Receives results in input order.
pub trait Sink {
    fn case(&mut self, result: &CaseResult) -> io::Result<()>;
    fn rejected(&mut self, rejection: &Rejection) -> io::Result<()>;
}

pub struct Job<'a> {
    pub policy: &'a CompiledPolicy,
    /// The policy text, for line numbers in rule references.
    pub lines: Option<&'a crate::span::Lines<'a>>,
    pub world: &'a World,
    pub seed: u64,
    /// Worker threads (1 = replay on the reading thread).
    pub jobs: usize,
}

enum Pending {
    Case(Box<Case>, Vec<FleetView>),
    Rejected(Rejection),
}

/// Milliseconds since the epoch of an event's timestamp.
pub fn millis(ts: &Timestamp) -> Option<f64> {
    match ts {
        Timestamp::Millis(ms) => Some(*ms),
        Timestamp::Text(s) => s.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond() as f64),
    }
}

/// Replays every input in turn into `sink`; returns the merged read stats.
pub fn run(job: &Job<'_>, inputs: Vec<Stream>, sink: &mut dyn Sink) -> io::Result<Stats> {
    let pool = std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(job.jobs.max(1))
            .build()
            .map_err(|e| io::Error::other(format!("cannot start worker threads: {e}")))?,
    );
    let f = &job.policy.source.fleet;
    let mut fleet = Fleet::new(f.retry_budget.as_ref(), f.breaker.as_ref());
    // Fleet views of observed calls, by request then seq: one key per
    // request, so an event costs no request id copy.
    let mut views: HashMap<String, Vec<(u64, FleetView)>> = HashMap::new();
    let mut clock = 0.0_f64;
    let mut stats = Stats::default();
    for mut stream in inputs {
        if job.jobs > 1 {
            stream.parse_on(pool.clone());
        }
        let mut pending: Vec<Pending> = Vec::new();
        let mut cases_pending = 0usize;
        while let Some(item) = stream.next_item()? {
            match item {
                Item::Event(accepted) => {
                    let e = &accepted.event;
                    if let Some(t) = e.ts.as_ref().and_then(millis) {
                        clock = clock.max(t);
                    }
                    if e.kind.is_call() {
                        let view = observe(&mut fleet, job.policy, e, clock);
                        match views.get_mut(e.request_id.as_str()) {
                            // Seqs of accepted events increase: search only when one does not.
                            Some(list) if list.last().is_none_or(|(seq, _)| *seq < e.seq) => list.push((e.seq, view)),
                            Some(list) => match list.iter_mut().find(|(seq, _)| *seq == e.seq) {
                                Some(slot) => slot.1 = view,
                                None => list.push((e.seq, view)),
                            },
                            None => {
                                views.insert(e.request_id.clone(), vec![(e.seq, view)]);
                            }
                        }
                    }
                }
                Item::Case(case) => {
                    let fleet_views = take_views(&mut views, &case);
                    pending.push(Pending::Case(Box::new(case), fleet_views));
                    cases_pending += 1;
                    if cases_pending >= BATCH {
                        flush(job, &pool, &mut pending, sink)?;
                        cases_pending = 0;
                    }
                }
                Item::Rejected(r) => pending.push(Pending::Rejected(r)),
            }
        }
        flush(job, &pool, &mut pending, sink)?;
        merge(&mut stats, stream.stats());
    }
    Ok(stats)
}

/// The fleet views of a case's calls (default for a call never observed),
/// removed from `views`; views of other calls of the request stay.
fn take_views(views: &mut HashMap<String, Vec<(u64, FleetView)>>, case: &Case) -> Vec<FleetView> {
    let Some(mut list) = views.remove(case.request_id.as_str()) else {
        return vec![FleetView::default(); case.calls.len()];
    };
    // Both are in seq order as a rule: walk them together, search otherwise.
    let mut taken = vec![false; list.len()];
    let mut next = 0usize;
    let mut out = Vec::with_capacity(case.calls.len());
    for (_, e) in &case.calls {
        let found = if e.request_id != case.request_id {
            None
        } else if list.get(next).is_some_and(|(seq, _)| *seq == e.seq) && !taken.get(next).copied().unwrap_or(true) {
            Some(next)
        } else {
            list.iter().zip(&taken).position(|((seq, _), t)| *seq == e.seq && !t)
        };
        match found.and_then(|i| Some((i, list.get(i)?.1))) {
            Some((i, view)) => {
                if let Some(t) = taken.get_mut(i) {
                    *t = true;
                }
                next = i + 1;
                out.push(view);
            }
            None => out.push(FleetView::default()),
        }
    }
    if taken.iter().any(|t| !t) {
        let mut i = 0;
        list.retain(|_| {
            let keep = !taken.get(i).copied().unwrap_or(true);
            i += 1;
            keep
        });
        views.insert(case.request_id.clone(), list);
    }
    out
}

fn observe(fleet: &mut Fleet, policy: &CompiledPolicy, e: &Event, clock: f64) -> FleetView {
    let model = call_model(policy, e).or(e.model.as_deref()).unwrap_or("");
    let is_retry = e.attempt.is_some_and(|a| a > 1);
    fleet.observe(clock, model, is_retry, e.outcome == Some(Outcome::Error))
}

fn flush(job: &Job<'_>, pool: &rayon::ThreadPool, pending: &mut Vec<Pending>, sink: &mut dyn Sink) -> io::Result<()> {
    let replay = |p: &Pending| match p {
        Pending::Case(case, views) => {
            let input =
                CaseInput { request_id: &case.request_id, request: &case.request, calls: &case.calls, fleet: views };
            Some(replay_case(job.policy, input, job.world, job.seed, job.lines))
        }
        Pending::Rejected(_) => None,
    };
    let results: Vec<Option<CaseResult>> = if job.jobs <= 1 {
        pending.iter().map(replay).collect()
    } else {
        pool.install(|| pending.par_iter().map(replay).collect())
    };
    for (p, r) in pending.drain(..).zip(results) {
        match (p, r) {
            (_, Some(result)) => sink.case(&result)?,
            (Pending::Rejected(rej), None) => sink.rejected(&rej)?,
            (Pending::Case(..), None) => {}
        }
    }
    Ok(())
}

fn merge(into: &mut Stats, s: &Stats) {
    into.lines += s.lines;
    into.accepted += s.accepted;
    into.skipped_blank += s.skipped_blank;
    into.skipped_spans += s.skipped_spans;
    into.cases += s.cases;
    for (reason, n) in &s.rejected {
        *into.rejected.entry(*reason).or_insert(0) += n;
    }
    into.rejected.sort_unstable_keys();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(seq: u64) -> (u64, Event) {
        let json = format!(r#"{{"request_id":"r","seq":{seq},"kind":"model_call","outcome":"error"}}"#);
        (seq, serde_json::from_str(&json).unwrap())
    }

    fn view(open: bool) -> FleetView {
        FleetView { breaker_open: open, retry_budget_exhausted: !open }
    }

    #[test]
    fn views_follow_their_calls_and_the_rest_stay() {
        let request = serde_json::from_str(r#"{"request_id":"r","seq":1,"kind":"request"}"#).unwrap();
        let mut views: HashMap<String, Vec<(u64, FleetView)>> = HashMap::new();
        // Observed out of order, one call never observed, one observed call not in the case.
        views.insert("r".to_string(), vec![(4, view(true)), (2, view(false)), (9, view(true))]);
        let case = Case {
            request_id: "r".to_string(),
            request,
            request_line: 1,
            calls: vec![call(2), call(3), call(4)],
            first_line: 1,
            end_line: None,
        };
        assert_eq!(take_views(&mut views, &case), vec![view(false), FleetView::default(), view(true)]);
        assert_eq!(views.get("r"), Some(&vec![(9, view(true))]));
        // Everything taken: the request's entry goes.
        let case = Case { calls: vec![call(9)], ..case };
        assert_eq!(take_views(&mut views, &case), vec![view(true)]);
        assert!(views.is_empty());
        // A request never observed gets defaults.
        assert_eq!(take_views(&mut views, &case), vec![FleetView::default()]);
    }
}
