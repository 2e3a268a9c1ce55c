//! The batch driver: reads inputs in order, advances fleet protection over
//! every accepted call, replays completed cases in batches, and hands
//! results and rejections to a sink in input order.
//!
//! With more than one job the work is pipelined on the pool's threads: the
//! driver (itself on one of them) reads batches of lines; a pool job parses
//! a batch, assembles it in its turn (in line order, so fleet views and
//! cases are those of one sequential pass) and replays, encodes and
//! tallies the cases it completed; the driver hands results to the sink in
//! order. What is emitted, and in which order, depends only on the input,
//! so the output is byte-identical for any `--jobs`.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, mpsc};

use crate::compile::CompiledPolicy;

use super::decide::call_model;
use super::event::{Event, Outcome, Timestamp};
use super::fleet::{Fleet, ModelSlot, Names, intern};
use super::ingress::{Item, LineBatch, NativeInput, Observer, ParsedLines, Rejection, Stats, Stream};
use super::replay::{CaseInput, CaseResult, replay_case};
use super::state::FleetView;
use super::world::World;

/// Cases per replay job for what is not replayed by the job that parsed
/// it (span formats, and cases still open at the end of an input): enough
/// work to pay for the hand-over between threads, few enough that a
/// batch's events and results stay in cache between the threads that
/// touch them (measured, docs/performance.md).
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
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.jobs)
        .build()
        .map_err(|e| io::Error::other(format!("cannot start worker threads: {e}")))?;
    // The driver itself runs on a pool thread and works through queued
    // jobs while it waits (`pool::wait`): `--jobs N` is N busy threads.
    // Jobs are spawned FIFO, so a waiting driver runs the oldest first.
    pool.install(|| {
        let mut out = Delivery { in_flight: VecDeque::new(), spare: Vec::new(), depth: 2 * job.jobs };
        let mut stats = Stats::default();
        for mut stream in inputs {
            stream.report_events(false);
            match stream.into_native() {
                Ok(native) => {
                    let read = in_turn(job, encode, native, &mut fleet, &mut out, sink)?;
                    merge(&mut stats, &read);
                }
                Err(stream) => {
                    let mut stream = *stream;
                    // Span formats are converted up front: cases are
                    // replayed on the pool in batches.
                    out.replay_in_batches(job, encode, || stream.next_item_observed(&mut fleet), sink)?;
                    merge(&mut stats, stream.stats());
                }
            }
        }
        Ok(stats)
    })
}

/// Native lines per batch parsed, assembled and replayed as one pool job.
const LINES_PER_JOB: usize = 512;

/// Assembly in line order, shared by the jobs of one native input: a job
/// that has parsed its batch assembles it when its turn comes (parking it
/// otherwise, for the job before it to pick up), then replays the cases it
/// completed on the same thread, so a case's events are mostly read by the
/// core that parsed them.
struct Turn<'f, 'p, T> {
    /// The index of the next batch to assemble.
    next: u64,
    file: String,
    limit: usize,
    assembler: super::ingress::CaseAssembler,
    fleet: &'f mut FleetClock<'p>,
    /// Batches parsed before their turn, by index.
    parked: std::collections::BTreeMap<u64, (ParsedLines, Reply<T>)>,
}

type Reply<T> = mpsc::SyncSender<io::Result<Done<T>>>;

/// Reads one native input in batches of lines, each parsed, assembled in
/// turn and replayed by one pool job, and hands the results to the sink
/// in order; returns the input's read stats.
fn in_turn<E: Encode>(
    job: &Job<'_>,
    encode: &E,
    native: NativeInput,
    fleet: &mut FleetClock<'_>,
    out: &mut Delivery<E::Tally>,
    sink: &mut dyn Sink<E::Tally>,
) -> io::Result<Stats> {
    let NativeInput { file, mut lines, assembler } = native;
    let limit = lines.limit();
    let turn = Mutex::new(Turn { next: 0, file, limit, assembler, fleet, parked: Default::default() });
    // Emptied line batches come back here to be filled again.
    let batches: Mutex<Vec<LineBatch>> = Mutex::new(Vec::new());
    rayon::in_place_scope_fifo(|scope| {
        let (turn, batches) = (&turn, &batches);
        let mut more = true;
        let mut index = 0;
        while more {
            let mut batch = batches.lock().ok().and_then(|mut b| b.pop()).unwrap_or_default();
            more = batch.fill(&mut lines, LINES_PER_JOB)?;
            if batch.is_empty() {
                break;
            }
            let (tx, rx) = mpsc::sync_channel(1);
            let bytes = out.spare.pop().unwrap_or_default();
            scope.spawn_fifo(move |_| {
                let mut parsed = ParsedLines::with_capacity(LINES_PER_JOB);
                batch.parse(&mut parsed);
                if let Ok(mut b) = batches.lock() {
                    b.push(batch);
                }
                let mut bytes = Some(bytes);
                for (items, reply) in take_turn(turn, index, parsed, tx) {
                    replay_into(job, encode, items, bytes.take().unwrap_or_default(), &reply);
                }
            });
            index += 1;
            out.push(rx, sink)?;
        }
        out.drain(sink)
    })?;
    let mut turn = turn.into_inner().map_err(|_| io::Error::other("a replay thread stopped"))?;
    let mut rest = Vec::new();
    turn.assembler.finish(&mut rest);
    // Cases still open at the end of the input (traces without `end`
    // events): replayed on the pool in batches.
    let mut rest = rest.into_iter();
    out.replay_in_batches(job, encode, || Ok(rest.next()), sink)?;
    Ok(turn.assembler.stats().clone())
}

/// Assembles the batch `index` if its turn has come, and then every parked
/// batch whose turn follows; parks it otherwise. Returns the items each
/// assembled batch completed, with where its result goes.
fn take_turn<T>(
    turn: &Mutex<Turn<'_, '_, T>>,
    index: u64,
    parsed: ParsedLines,
    reply: Reply<T>,
) -> Vec<(Vec<Item>, Reply<T>)> {
    let Ok(mut guard) = turn.lock() else { return Vec::new() };
    let t = &mut *guard;
    if t.next != index {
        t.parked.insert(index, (parsed, reply));
        return Vec::new();
    }
    let mut ready = Vec::new();
    let mut next = Some((parsed, reply));
    while let Some((mut parsed, reply)) = next {
        let mut items = Vec::new();
        super::ingress::assemble(&mut t.assembler, &t.file, t.limit, &mut parsed, &mut items, t.fleet);
        ready.push((items, reply));
        t.next += 1;
        next = t.parked.remove(&t.next);
    }
    ready
}

/// Replays and encodes `items` and sends the result.
fn replay_into<E: Encode>(job: &Job<'_>, encode: &E, items: Vec<Item>, bytes: Vec<u8>, reply: &Reply<E::Tally>) {
    let mut done = Done { tally: E::Tally::default(), bytes };
    let result = work(job, encode, items, &mut done.bytes, &mut done.tally).map(|()| done);
    // The receiver only goes away when the driver stopped on an error.
    let _ = reply.send(result);
}

/// The driver's side of the pipeline: results in flight, oldest first, and
/// encoding buffers to reuse (fresh ones cost page faults; measured,
/// docs/performance.md).
struct Delivery<T> {
    in_flight: VecDeque<mpsc::Receiver<io::Result<Done<T>>>>,
    spare: Vec<Vec<u8>>,
    /// Results in flight at most.
    depth: usize,
}

impl<T: Send> Delivery<T> {
    /// Adds a result in flight, handing the oldest ones to the sink while
    /// there are too many.
    fn push(&mut self, rx: mpsc::Receiver<io::Result<Done<T>>>, sink: &mut dyn Sink<T>) -> io::Result<()> {
        self.in_flight.push_back(rx);
        while self.in_flight.len() > self.depth {
            self.deliver_oldest(sink)?;
        }
        Ok(())
    }

    /// Replays the items `next` gives, in batches of [`BATCH`] cases, as pool
    /// jobs, and hands every result to the sink.
    fn replay_in_batches<E: Encode<Tally = T>>(
        &mut self,
        job: &Job<'_>,
        encode: &E,
        next: impl FnMut() -> io::Result<Option<Item>>,
        sink: &mut dyn Sink<T>,
    ) -> io::Result<()> {
        rayon::in_place_scope_fifo(|scope| {
            in_batches(BATCH, next, |full| self.spawn(scope, job, encode, full, sink))?;
            self.drain(sink)
        })
    }

    /// Replays a batch of items as a pool job.
    fn spawn<'s, E: Encode<Tally = T>>(
        &mut self,
        scope: &rayon::ScopeFifo<'s>,
        job: &'s Job<'_>,
        encode: &'s E,
        items: Vec<Item>,
        sink: &mut dyn Sink<T>,
    ) -> io::Result<()>
    where
        T: 's,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let bytes = self.spare.pop().unwrap_or_default();
        scope.spawn_fifo(move |_| replay_into(job, encode, items, bytes, &tx));
        self.push(rx, sink)
    }

    /// Waits for the oldest result in flight and hands it to the sink.
    fn deliver_oldest(&mut self, sink: &mut dyn Sink<T>) -> io::Result<()> {
        let Some(rx) = self.in_flight.pop_front() else { return Ok(()) };
        let done = super::pool::wait(&rx)
            .ok_or_else(|| io::Error::other("a replay thread stopped before finishing its cases"))??;
        sink.merge(done.tally);
        sink.encoded(&done.bytes)?;
        self.spare.push(done.bytes);
        Ok(())
    }

    /// Hands every result in flight to the sink.
    fn drain(&mut self, sink: &mut dyn Sink<T>) -> io::Result<()> {
        while !self.in_flight.is_empty() {
            self.deliver_oldest(sink)?;
        }
        Ok(())
    }
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
    each_batch(inputs, fleet, INLINE_BATCH, |full| {
        work(job, encode, full, &mut bytes, sink.tally())?;
        sink.encoded(&bytes)
    })
}

/// Reads every input in turn, observing accepted events, and hands each
/// batch to `dispatch` in input order; returns the merged read stats.
fn each_batch(
    inputs: Vec<Stream>,
    fleet: &mut FleetClock<'_>,
    cases_per_batch: usize,
    mut dispatch: impl FnMut(Vec<Item>) -> io::Result<()>,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    for mut stream in inputs {
        stream.report_events(false);
        in_batches(cases_per_batch, || stream.next_item_observed(fleet), &mut dispatch)?;
        merge(&mut stats, stream.stats());
    }
    Ok(stats)
}

/// Pulls items from `next` until it gives `None` and hands them to
/// `dispatch` in batches of `cases_per_batch` cases, in order.
fn in_batches(
    cases_per_batch: usize,
    mut next: impl FnMut() -> io::Result<Option<Item>>,
    mut dispatch: impl FnMut(Vec<Item>) -> io::Result<()>,
) -> io::Result<()> {
    let mut batch = Batcher::new(cases_per_batch);
    loop {
        let item = next()?;
        let at_end = item.is_none();
        if let Some(full) = batch.add(item) {
            dispatch(full)?;
        }
        if at_end {
            return Ok(());
        }
    }
}

/// Groups items into batches of `limit` cases (rejections ride along in
/// order); `None` (end of input) hands over the rest.
struct Batcher {
    items: Vec<Item>,
    cases: usize,
    limit: usize,
}

impl Batcher {
    fn new(limit: usize) -> Self {
        Batcher { items: Vec::new(), cases: 0, limit }
    }

    fn add(&mut self, item: Option<Item>) -> Option<Vec<Item>> {
        match item {
            Some(Item::Event(_)) => return None,
            Some(Item::Case(case)) => {
                self.items.push(Item::Case(case));
                self.cases += 1;
                if self.cases < self.limit {
                    return None;
                }
            }
            Some(Item::Rejected(r)) => {
                self.items.push(Item::Rejected(r));
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
    batch: Vec<Item>,
    bytes: &mut Vec<u8>,
    tally: &mut E::Tally,
) -> io::Result<()> {
    bytes.clear();
    for p in batch {
        match p {
            Item::Case(case) => {
                let input = CaseInput {
                    request_id: &case.request_id,
                    request: &case.request,
                    calls: &case.calls,
                    fleet: &case.views,
                };
                let result = replay_case(job.policy, input, job.world, job.seed, job.lines);
                encode.case(result, bytes, tally)?;
            }
            Item::Rejected(r) => encode.rejected(r, bytes, tally)?,
            // Not reported: the driver turns event reports off.
            Item::Event(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ingress::CaseAssembler;
    use crate::runtime::ingress::native::LineReader;

    fn tool_chain() -> CompiledPolicy {
        let text = include_str!("../../policies/tool_chain.rcv");
        crate::compile::build(&crate::diag::Source::new("tool_chain.rcv", text.to_string())).policy.unwrap()
    }

    /// The fixture's lines in batches of `n`, parsed.
    fn parsed_batches(n: usize) -> Vec<ParsedLines> {
        let text: &[u8] = include_bytes!("../../fixtures/tool_chain_failures.ndjson");
        let mut lines = LineReader::new(text, 1 << 20);
        let mut out = Vec::new();
        loop {
            let mut batch = LineBatch::default();
            let more = batch.fill(&mut lines, n).unwrap();
            let mut parsed = ParsedLines::new();
            batch.parse(&mut parsed);
            if !parsed.is_empty() {
                out.push(parsed);
            }
            if !more {
                return out;
            }
        }
    }

    fn ids(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Case(c) => c.request_id.clone(),
                Item::Rejected(r) => format!("line {}", r.line),
                Item::Event(_) => "event".into(),
            })
            .collect()
    }

    /// Batches that finish parsing out of order are assembled in order: a
    /// batch whose turn has not come is parked, and the batch before it
    /// assembles it too; the items are those of one assembly in line order.
    #[test]
    fn batches_parked_out_of_turn_are_assembled_in_order() {
        let policy = tool_chain();
        let batches = parsed_batches(7);
        assert!(batches.len() >= 4, "the fixture gives several batches");

        let mut fleet = FleetClock::new(&policy);
        let mut assembler = CaseAssembler::new("f", false);
        let mut expected = Vec::new();
        for mut b in batches.clone() {
            crate::runtime::ingress::assemble(&mut assembler, "f", 1 << 20, &mut b, &mut expected, &mut fleet);
        }

        let mut fleet = FleetClock::new(&policy);
        let turn: Mutex<Turn<'_, '_, ()>> = Mutex::new(Turn {
            next: 0,
            file: "f".into(),
            limit: 1 << 20,
            assembler: CaseAssembler::new("f", false),
            fleet: &mut fleet,
            parked: Default::default(),
        });
        let mut got = Vec::new();
        let mut receivers = Vec::new();
        // Batch 2 finishes first, then 1, then 0 (which assembles all three), then the rest in order.
        let mut order: Vec<usize> = vec![2, 1, 0];
        order.extend(3..batches.len());
        let mut assembled_by = vec![None; batches.len()];
        for i in order {
            let (tx, rx) = mpsc::sync_channel(1);
            receivers.push((i, rx));
            let ready = take_turn(&turn, i as u64, batches[i].clone(), tx);
            for (items, _) in ready {
                assembled_by[got.len()] = Some(i);
                got.push(items);
            }
        }
        assert_eq!(assembled_by[..3], [Some(0), Some(0), Some(0)]);
        assert!(assembled_by[3..].iter().enumerate().all(|(k, by)| *by == Some(k + 3)));
        let got: Vec<Item> = got.into_iter().flatten().collect();
        let mut turn = turn.into_inner().unwrap();
        let (mut rest_a, mut rest_b) = (Vec::new(), Vec::new());
        turn.assembler.finish(&mut rest_a);
        assembler.finish(&mut rest_b);
        assert_eq!(ids(&got), ids(&expected));
        assert_eq!(ids(&rest_a), ids(&rest_b));
        assert!(!expected.is_empty());
    }
}
