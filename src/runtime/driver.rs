//! The batch driver: reads inputs in order, advances fleet protection over
//! every accepted call, replays completed cases in batches, and hands
//! results and rejections to a sink in input order.
//!
//! With more than one job the work is pipelined on the pool's threads: the
//! driver (itself on one of them) reads and assembles lines in order while
//! batches of lines are parsed, and batches of cases replayed, encoded and
//! tallied, as pool jobs; it hands finished batches to the sink in order.
//! Batch boundaries depend only on the input, so the output is
//! byte-identical for any `--jobs`.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc;

use crate::compile::CompiledPolicy;

use super::decide::call_model;
use super::event::{Event, Outcome, Timestamp};
use super::fleet::{Fleet, ModelSlot, Names, intern};
use super::ingress::{Case, Item, Observer, Rejection, Stats, Stream};
use super::replay::{CaseInput, CaseResult, replay_case};
use super::state::FleetView;
use super::world::World;

/// Cases replayed per batch handed to the pool: enough work to pay for
/// the hand-over between threads, few enough that a batch's events and
/// results stay in cache between the threads that touch them (256 made
/// `--jobs 2` spend up to 1.6x the CPU of `--jobs 1`; measured,
/// docs/performance.md).
pub const BATCH: usize = 32;

/// Cases replayed per batch on the calling thread (`--jobs 1`): a case's
/// events are replayed and freed while they are still in cache, and the
/// allocator's per-thread cache absorbs the frees (measured,
/// docs/performance.md).
pub const INLINE_BATCH: usize = 8;

/// What happens to each result on the thread that replayed it, in input
/// order within its batch: it is encoded into the batch's bytes and folded
/// into the batch's tally, then dropped. Only tallies and bytes go back to
/// the driver, so results are freed where they were made.
pub trait Encode: Sync {
    /// What a batch leaves for the sink besides its bytes.
    type Tally: Default + Send;
    fn case(&self, result: CaseResult, out: &mut Vec<u8>, tally: &mut Self::Tally) -> io::Result<()>;
    fn rejected(&self, rejection: Rejection, out: &mut Vec<u8>, tally: &mut Self::Tally) -> io::Result<()>;
}

/// Receives the batches in input order.
pub trait Sink<T>: Send {
    /// The running tally: `--jobs 1` folds results straight into it.
    fn tally(&mut self) -> &mut T;
    /// Folds in the tally of the next batch, made on a worker thread.
    fn merge(&mut self, batch: T);
    /// The next batch's encoded bytes.
    fn encoded(&mut self, bytes: &[u8]) -> io::Result<()>;
}

pub struct Job<'a> {
    pub policy: &'a CompiledPolicy,
    /// The policy text, for line numbers in rule references.
    pub lines: Option<&'a crate::span::Lines<'a>>,
    pub world: &'a World,
    pub seed: u64,
    /// Worker threads (1 = everything on the calling thread).
    pub jobs: usize,
}

enum Pending {
    Case(Box<Case>),
    Rejected(Rejection),
}

/// A replayed and encoded batch.
struct Done<T> {
    tally: T,
    bytes: Vec<u8>,
}

/// Milliseconds since the epoch of an event's timestamp.
pub fn millis(ts: &Timestamp) -> Option<f64> {
    match ts {
        Timestamp::Millis(ms) => Some(*ms),
        Timestamp::Text(s) => s.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond() as f64),
    }
}

/// Fleet protection in trace time: the clock is the latest timestamp seen.
struct FleetClock<'a> {
    fleet: Fleet,
    policy: &'a CompiledPolicy,
    clock: f64,
    /// A call's `model` field as recorded, numbered as first seen;
    /// `slots[i]` is the fleet slot of the model key that field `i` maps to
    /// (the policy's name for it, or the field itself).
    raw_models: Names,
    slots: Vec<ModelSlot>,
    /// The slot of calls without a `model` field.
    no_model: Option<ModelSlot>,
}

impl<'a> FleetClock<'a> {
    fn new(policy: &'a CompiledPolicy) -> Self {
        let f = &policy.source.fleet;
        FleetClock {
            fleet: Fleet::new(f.retry_budget.as_ref(), f.breaker.as_ref()),
            policy,
            clock: 0.0,
            raw_models: Names::default(),
            slots: Vec::new(),
            no_model: None,
        }
    }

    /// The fleet slot of a call's model key: the policy's name for its
    /// `model` field, or the field itself (`""` without one). The key
    /// depends on the field alone, so it is worked out once per field.
    fn slot(&mut self, e: &Event) -> ModelSlot {
        let Some(raw) = e.model.as_deref() else {
            return *self.no_model.get_or_insert_with(|| self.fleet.model(model_key(self.policy, e)));
        };
        if let Some(slot) = self.raw_models.get_index_of(raw).and_then(|i| self.slots.get(i)) {
            return *slot;
        }
        let slot = self.fleet.model(model_key(self.policy, e));
        let i = intern(&mut self.raw_models, raw);
        debug_assert_eq!(i, self.slots.len());
        self.slots.push(slot);
        slot
    }
}

impl Observer for FleetClock<'_> {
    fn observe(&mut self, e: &Event) -> FleetView {
        if let Some(t) = e.ts_ms.or_else(|| e.ts.as_ref().and_then(millis)) {
            self.clock = self.clock.max(t);
        }
        if !e.kind.is_call() {
            return FleetView::default();
        }
        let slot = self.slot(e);
        let is_retry = e.attempt.is_some_and(|a| a > 1);
        self.fleet.observe_slot(self.clock, slot, is_retry, e.outcome == Some(Outcome::Error))
    }
}

/// Replays every input in turn into `sink`, encoding with `encode`;
/// returns the merged read stats.
pub fn run<E: Encode>(
    job: &Job<'_>,
    inputs: Vec<Stream>,
    encode: &E,
    sink: &mut dyn Sink<E::Tally>,
) -> io::Result<Stats> {
    let mut fleet = FleetClock::new(job.policy);
    if job.jobs <= 1 {
        return run_inline(job, inputs, encode, sink, &mut fleet);
    }
    let pool = std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(job.jobs)
            .build()
            .map_err(|e| io::Error::other(format!("cannot start worker threads: {e}")))?,
    );
    let depth = 2 * job.jobs;
    // The driver itself runs on a pool thread and works through queued
    // batches while it waits (`pool::wait`): `--jobs N` is N busy threads.
    // Work is spawned FIFO, so a waiting driver runs the oldest batch first.
    pool.install(|| {
        rayon::in_place_scope_fifo(|scope| {
            let mut in_flight: InFlight<E::Tally> = VecDeque::new();
            // Encoding buffers go back and forth instead of being allocated
            // per batch: fresh ones cost page faults (measured,
            // docs/performance.md).
            let mut spare: Vec<Vec<u8>> = Vec::new();
            let stats = each_batch(inputs, &mut fleet, Some(&pool), BATCH, |full| {
                let (tx, rx) = mpsc::sync_channel(1);
                let bytes = spare.pop().unwrap_or_default();
                scope.spawn_fifo(move |_| {
                    let mut done = Done { tally: E::Tally::default(), bytes };
                    let _ = tx.send(work(job, encode, full, &mut done.bytes, &mut done.tally).map(|()| done));
                });
                in_flight.push_back(rx);
                while in_flight.len() > depth {
                    deliver_oldest(&mut in_flight, &mut spare, sink)?;
                }
                Ok(())
            })?;
            while !in_flight.is_empty() {
                deliver_oldest(&mut in_flight, &mut spare, sink)?;
            }
            Ok(stats)
        })
    })
}

type InFlight<T> = VecDeque<mpsc::Receiver<io::Result<Done<T>>>>;

/// Waits for the oldest batch in flight and hands it to the sink.
fn deliver_oldest<T>(in_flight: &mut InFlight<T>, spare: &mut Vec<Vec<u8>>, sink: &mut dyn Sink<T>) -> io::Result<()> {
    let Some(rx) = in_flight.pop_front() else { return Ok(()) };
    let done = super::pool::wait(&rx)
        .ok_or_else(|| io::Error::other("a replay thread stopped before finishing its cases"))??;
    sink.merge(done.tally);
    sink.encoded(&done.bytes)?;
    spare.push(done.bytes);
    Ok(())
}

/// `--jobs 1`: the same batches, on the calling thread, tallied in place.
fn run_inline<E: Encode>(
    job: &Job<'_>,
    inputs: Vec<Stream>,
    encode: &E,
    sink: &mut dyn Sink<E::Tally>,
    fleet: &mut FleetClock<'_>,
) -> io::Result<Stats> {
    let mut bytes = Vec::new();
    each_batch(inputs, fleet, None, INLINE_BATCH, |full| {
        work(job, encode, full, &mut bytes, sink.tally())?;
        sink.encoded(&bytes)
    })
}

/// Reads every input in turn (parsing on `pool` when given), observing
/// accepted events, and hands each batch to `dispatch` in input order;
/// returns the merged read stats.
fn each_batch(
    inputs: Vec<Stream>,
    fleet: &mut FleetClock<'_>,
    pool: Option<&std::sync::Arc<rayon::ThreadPool>>,
    cases_per_batch: usize,
    mut dispatch: impl FnMut(Vec<Pending>) -> io::Result<()>,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    for mut stream in inputs {
        stream.report_events(false);
        if let Some(pool) = pool {
            stream.parse_on(pool.clone());
        }
        let mut batch = Batcher::new(cases_per_batch);
        loop {
            let item = stream.next_item_observed(fleet)?;
            let at_end = item.is_none();
            if let Some(full) = batch.add(item) {
                dispatch(full)?;
            }
            if at_end {
                break;
            }
        }
        merge(&mut stats, stream.stats());
    }
    Ok(stats)
}

/// Groups items into batches of `limit` cases (rejections ride along in
/// order); `None` (end of input) hands over the rest.
struct Batcher {
    items: Vec<Pending>,
    cases: usize,
    limit: usize,
}

impl Batcher {
    fn new(limit: usize) -> Self {
        Batcher { items: Vec::new(), cases: 0, limit }
    }

    fn add(&mut self, item: Option<Item>) -> Option<Vec<Pending>> {
        match item {
            Some(Item::Event(_)) => return None,
            Some(Item::Case(case)) => {
                self.items.push(Pending::Case(case));
                self.cases += 1;
                if self.cases < self.limit {
                    return None;
                }
            }
            Some(Item::Rejected(r)) => {
                self.items.push(Pending::Rejected(r));
                return None;
            }
            None if self.items.is_empty() => return None,
            None => {}
        }
        self.cases = 0;
        // The next batch starts at the size of this one instead of growing to it.
        let next = Vec::with_capacity(self.items.len());
        Some(std::mem::replace(&mut self.items, next))
    }
}

/// Replays one batch, encoding into `bytes` (emptied first) and tallying
/// into `tally`.
fn work<E: Encode>(
    job: &Job<'_>,
    encode: &E,
    batch: Vec<Pending>,
    bytes: &mut Vec<u8>,
    tally: &mut E::Tally,
) -> io::Result<()> {
    bytes.clear();
    for p in batch {
        match p {
            Pending::Case(case) => {
                let input = CaseInput {
                    request_id: &case.request_id,
                    request: &case.request,
                    calls: &case.calls,
                    fleet: &case.views,
                };
                let result = replay_case(job.policy, input, job.world, job.seed, job.lines);
                encode.case(result, bytes, tally)?;
            }
            Pending::Rejected(r) => encode.rejected(r, bytes, tally)?,
        }
    }
    Ok(())
}

/// The key a call's model is tracked under: the policy's name for it, or
/// the recorded name (`""` without one).
fn model_key<'p>(policy: &'p CompiledPolicy, e: &'p Event) -> &'p str {
    call_model(policy, e).or(e.model.as_deref()).unwrap_or("")
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
