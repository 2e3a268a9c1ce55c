//! The batch driver: reads inputs in order, advances fleet protection over
//! every accepted call, replays completed cases in batches, and hands
//! results and rejections to a sink in input order.
//!
//! With more than one job, a native input is read by that many workers on
//! the pool's threads, each of which, in a loop, takes the next chunk of
//! lines in turn (one read into its own buffer, hashed as it is read),
//! splits and parses it, assembles it in its turn (in line order, so fleet
//! views and cases are those of one sequential pass), replays, encodes and
//! tallies the cases it completed, and hands them to the sink in its turn
//! (in input order). Span formats, and cases still open at the end of an
//! input, are replayed as pool jobs in batches. What is emitted, and in
//! which order, depends only on the input, so the output is byte-identical
//! for any `--jobs`.

use std::collections::VecDeque;
use std::io;
use std::sync::{Condvar, Mutex, mpsc};

use crate::compile::CompiledPolicy;

use super::decide::call_model;
use super::event::{Event, Outcome, Timestamp};
use super::fleet::{Fleet, ModelSlot, Names, intern};
use super::ingress::chunks::ChunkReader;
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
    /// The sink's own output buffer and the running tally, when it has a
    /// buffer: `--jobs 1` then encodes each batch straight into it, saving
    /// a copy, and calls [`Sink::appended`] after each batch.
    fn buffer(&mut self) -> Option<(&mut Vec<u8>, &mut T)> {
        None
    }
    /// A batch was appended to [`Sink::buffer`].
    fn appended(&mut self) -> io::Result<()> {
        Ok(())
    }
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

/// A batch's place in the output: its index in input order, and where to
/// say that it was handed to the sink (giving back its emptied buffer).
/// Without a channel (the workers of a native input), the buffer goes back
/// to the thread that handed the batch over, and an error stops the run
/// ([`Ordered::fail`]).
struct Ticket {
    index: u64,
    written: Option<mpsc::SyncSender<io::Result<Vec<u8>>>>,
}

/// The sink, fed in input order by the threads that replayed the batches:
/// a job whose batch is next hands it over itself, then every later batch
/// parked by jobs that finished before their turn. Encoded bytes are so
/// mostly written by the core that encoded them, instead of all crossing
/// to the driver's (measured, docs/performance.md).
struct Ordered<'s, T> {
    /// Locked only by the job whose turn it is.
    sink: Mutex<&'s mut dyn Sink<T>>,
    queue: Mutex<OutQueue<T>>,
    /// Signalled when a batch has been written or the run failed, for
    /// workers waiting for room ([`Ordered::wait_room`]).
    moved: Condvar,
}

struct OutQueue<T> {
    order: InOrder<(io::Result<Done<T>>, Ticket)>,
    /// The sink failed: later batches are not written.
    failed: bool,
    /// The first error of a batch without a channel, or of a worker.
    error: Option<io::Error>,
}

/// Work that must be done in index order by whichever thread brings it:
/// the item whose turn it is goes ahead, the others wait here for the
/// thread that ends the turn before theirs.
struct InOrder<X> {
    /// The index whose turn it is.
    next: u64,
    /// Items that came before their turn, by index.
    parked: std::collections::BTreeMap<u64, X>,
}

impl<X> Default for InOrder<X> {
    fn default() -> Self {
        InOrder { next: 0, parked: Default::default() }
    }
}

impl<X> InOrder<X> {
    /// `item` back if its turn has come; parked otherwise.
    fn arrive(&mut self, index: u64, item: X) -> Option<X> {
        if index == self.next {
            return Some(item);
        }
        self.parked.insert(index, item);
        None
    }

    /// Ends the current turn; the next item, if it is already here.
    fn advance(&mut self) -> Option<X> {
        self.next += 1;
        self.parked.remove(&self.next)
    }
}

impl<'s, T: Send> Ordered<'s, T> {
    fn new(sink: &'s mut dyn Sink<T>) -> Self {
        Ordered {
            sink: Mutex::new(sink),
            queue: Mutex::new(OutQueue { order: InOrder::default(), failed: false, error: None }),
            moved: Condvar::new(),
        }
    }

    /// Hands `done` to the sink if its turn has come, and then every parked
    /// batch whose turn follows; parks it otherwise. Returns the emptied
    /// buffers of the batches written here whose tickets have no channel.
    fn deliver(&self, done: io::Result<Done<T>>, ticket: Ticket) -> Vec<Vec<u8>> {
        let mut returned = Vec::new();
        let Ok(mut queue) = self.queue.lock() else { return returned };
        let Some(mut current) = queue.order.arrive(ticket.index, (done, ticket)) else { return returned };
        let mut failed = queue.failed;
        drop(queue);
        loop {
            let (done, ticket) = current;
            // Written outside the queue's lock: a job finishing meanwhile parks.
            let result =
                if failed { Err(io::Error::other("not written after an earlier error")) } else { self.write(done) };
            let now_failed = result.is_err();
            let mut unsent = None;
            match (ticket.written, result) {
                // The driver only goes away when it stopped on an error.
                (Some(channel), result) => drop(channel.send(result)),
                (None, Ok(bytes)) => returned.push(bytes),
                (None, Err(e)) => unsent = Some(e),
            }
            let Ok(mut queue) = self.queue.lock() else { return returned };
            queue.failed |= now_failed;
            if let Some(e) = unsent {
                queue.error.get_or_insert(e);
            }
            failed = queue.failed;
            let next = queue.order.advance();
            drop(queue);
            self.moved.notify_all();
            match next {
                Some(parked) => current = parked,
                None => return returned,
            }
        }
    }

    fn write(&self, done: io::Result<Done<T>>) -> io::Result<Vec<u8>> {
        let done = done?;
        let mut sink = self.sink.lock().map_err(|_| io::Error::other("a writing thread stopped"))?;
        sink.merge(done.tally);
        sink.encoded(&done.bytes)?;
        Ok(done.bytes)
    }

    /// Stops the run on `error` (the first one is kept): later batches are
    /// not written, and workers waiting for room stop waiting.
    fn fail(&self, error: io::Error) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.failed = true;
            queue.error.get_or_insert(error);
        }
        self.moved.notify_all();
    }

    /// Waits until the batch `index` is fewer than `depth` batches ahead of
    /// the next one to be written, which bounds the batches parked or in
    /// flight; an error once the run has failed.
    fn wait_room(&self, index: u64, depth: u64) -> io::Result<()> {
        let stopped = || io::Error::other("a replay thread stopped");
        let mut queue = self.queue.lock().map_err(|_| stopped())?;
        while !queue.failed && index >= queue.order.next + depth {
            queue = self.moved.wait(queue).map_err(|_| stopped())?;
        }
        if queue.failed {
            return Err(io::Error::other("stopped after an earlier error"));
        }
        Ok(())
    }

    /// The error that stopped the run, if one did without reaching a channel.
    fn take_error(&self) -> Option<io::Error> {
        self.queue.lock().ok()?.error.take()
    }
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
    let ordered = Ordered::new(sink);
    pool.install(|| {
        let mut out = Delivery {
            ordered: &ordered,
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            depth: 2 * job.jobs,
            spawned: 0,
        };
        let mut stats = Stats::default();
        for mut stream in inputs {
            stream.report_events(false);
            match stream.into_native() {
                Ok(native) => {
                    let read = in_turn(job, encode, native, &mut fleet, &mut out)?;
                    merge(&mut stats, &read);
                }
                Err(stream) => {
                    let mut stream = *stream;
                    // Span formats are converted up front: cases are
                    // replayed on the pool in batches.
                    out.replay_in_batches(job, encode, || stream.next_item_observed(&mut fleet))?;
                    merge(&mut stats, stream.stats());
                }
            }
        }
        Ok(stats)
    })
}

/// Assembly in line order, shared by the workers of one native input: a
/// worker that has parsed its batch assembles it when its turn comes
/// (parking it otherwise, for the worker before it to pick up), then
/// replays the cases it completed on the same thread, so a case's events
/// are mostly read by the core that parsed them.
struct Turn<'f, 'p> {
    /// Batches in line order; those parsed before their turn wait here.
    order: InOrder<(ParsedLines, Ticket)>,
    file: String,
    limit: usize,
    /// Lines before the next batch: a batch numbers its lines from 1.
    line: u64,
    assembler: super::ingress::CaseAssembler,
    fleet: &'f mut FleetClock<'p>,
}

/// Emptied encoding buffers a worker keeps for its next batches.
const SPARE_BUFFERS: usize = 2;

/// The reading side of a native input, shared by its workers: each takes
/// the next chunk of lines here, in turn.
struct Reading<R> {
    chunks: ChunkReader<R>,
    /// The index of the next batch in the input.
    next: u64,
    /// The input is at its end (or failed): nothing more to take.
    done: bool,
}

/// Reads one native input with `job.jobs` workers, each of which takes
/// the next batch of lines in turn (read and hashed on its own core),
/// parses it, assembles it in its turn, replays and encodes the cases it
/// completed, and hands them to the sink in their turn. A batch's bytes,
/// events and results so stay on the core that read them, and no thread
/// hands work out (measured, docs/performance.md). Returns the input's
/// read stats.
fn in_turn<E: Encode>(
    job: &Job<'_>,
    encode: &E,
    native: NativeInput,
    fleet: &mut FleetClock<'_>,
    out: &mut Delivery<'_, '_, E::Tally>,
) -> io::Result<Stats> {
    let NativeInput { file, chunks, lines_before, assembler } = native;
    let limit = chunks.limit();
    let turn = Mutex::new(Turn { order: InOrder::default(), file, limit, line: lines_before, assembler, fleet });
    let reading = Mutex::new(Reading { chunks, next: 0, done: false });
    let base = out.spawned;
    let depth = out.depth as u64;
    let ordered = out.ordered;
    let worker = || {
        if let Err(e) = work_in_turn(job, encode, &reading, &turn, ordered, base, depth) {
            ordered.fail(e);
        }
    };
    rayon::in_place_scope(|scope| {
        for _ in 1..job.jobs {
            scope.spawn(|_| worker());
        }
        worker();
    });
    if let Some(e) = ordered.take_error() {
        return Err(e);
    }
    let read = reading.into_inner().map_err(|_| io::Error::other("a reading thread stopped"))?;
    out.spawned = base + read.next;
    let mut turn = turn.into_inner().map_err(|_| io::Error::other("a replay thread stopped"))?;
    let mut rest = Vec::new();
    turn.assembler.finish(&mut rest);
    // Cases still open at the end of the input (traces without `end`
    // events): replayed on the pool in batches.
    let mut rest = rest.into_iter();
    out.replay_in_batches(job, encode, || Ok(rest.next()))?;
    Ok(turn.assembler.stats().clone())
}

/// One worker of [`in_turn`]: takes batches until the input is at its end.
fn work_in_turn<E: Encode, R: io::Read>(
    job: &Job<'_>,
    encode: &E,
    reading: &Mutex<Reading<R>>,
    turn: &Mutex<Turn<'_, '_>>,
    ordered: &Ordered<'_, E::Tally>,
    base: u64,
    depth: u64,
) -> io::Result<()> {
    let stopped = || io::Error::other("a reading thread stopped");
    let limit = reading.lock().map_err(|_| stopped())?.chunks.limit();
    let mut batch = LineBatch::default();
    // Lines in this worker's last batch: the next one is about as long.
    let mut lines = 0;
    // Encoding buffers this worker handed to the sink, to fill again.
    let mut spare: Vec<Vec<u8>> = Vec::new();
    loop {
        let index = {
            let mut r = reading.lock().map_err(|_| stopped())?;
            if r.done {
                return Ok(());
            }
            let index = r.next;
            ordered.wait_room(base + index, depth)?;
            let more = batch.fill(&mut r.chunks);
            r.done = !matches!(more, Ok(true));
            more?;
            if batch.is_empty() {
                return Ok(());
            }
            r.next += 1;
            index
        };
        let mut parsed = ParsedLines::with_capacity(lines);
        batch.parse(limit, &mut parsed);
        lines = parsed.len();
        let ticket = Ticket { index: base + index, written: None };
        for (items, ticket) in take_turn(turn, index, parsed, ticket) {
            let bytes = spare.pop().unwrap_or_default();
            spare.extend(replay_into(job, encode, items, bytes, ticket, ordered));
            // A worker that writes the batches others parked gets their
            // buffers too: kept without a bound, they would pile up here
            // over a long input (measured, docs/performance.md).
            spare.truncate(SPARE_BUFFERS);
        }
    }
}

/// Assembles the batch `index` if its turn has come, and then every parked
/// batch whose turn follows; parks it otherwise. Returns the items each
/// assembled batch completed, with its place in the output.
fn take_turn(turn: &Mutex<Turn<'_, '_>>, index: u64, parsed: ParsedLines, ticket: Ticket) -> Vec<(Vec<Item>, Ticket)> {
    let Ok(mut guard) = turn.lock() else { return Vec::new() };
    let t = &mut *guard;
    let mut ready = Vec::new();
    let mut next = t.order.arrive(index, (parsed, ticket));
    while let Some((mut parsed, ticket)) = next {
        for (line, _) in &mut parsed {
            *line += t.line;
        }
        t.line += parsed.len() as u64;
        let mut items = Vec::new();
        super::ingress::assemble(&mut t.assembler, &t.file, t.limit, &mut parsed, &mut items, t.fleet);
        ready.push((items, ticket));
        next = t.order.advance();
    }
    ready
}

/// Replays and encodes `items` and hands the result to the sink in its
/// turn; returns the buffers given back to this thread ([`Ordered::deliver`]).
fn replay_into<E: Encode>(
    job: &Job<'_>,
    encode: &E,
    items: Vec<Item>,
    bytes: Vec<u8>,
    ticket: Ticket,
    ordered: &Ordered<'_, E::Tally>,
) -> Vec<Vec<u8>> {
    let mut done = Done { tally: E::Tally::default(), bytes };
    done.bytes.clear();
    let result = work(job, encode, items, &mut done.bytes, &mut done.tally).map(|()| done);
    ordered.deliver(result, ticket)
}

/// The driver's side of the pipeline: batches in flight, oldest first,
/// and encoding buffers to reuse (fresh ones cost page faults; measured,
/// docs/performance.md).
struct Delivery<'o, 's, T> {
    ordered: &'o Ordered<'s, T>,
    in_flight: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
    spare: Vec<Vec<u8>>,
    /// Batches in flight at most.
    depth: usize,
    /// Batches handed out so far: the next one's index in the output.
    spawned: u64,
}

impl<T: Send> Delivery<'_, '_, T> {
    /// The next batch's place in the output, and a buffer to encode into.
    fn ticket(&mut self) -> (Ticket, Vec<u8>) {
        let (written, rx) = mpsc::sync_channel(1);
        self.in_flight.push_back(rx);
        let ticket = Ticket { index: self.spawned, written: Some(written) };
        self.spawned += 1;
        (ticket, self.spare.pop().unwrap_or_default())
    }

    /// Waits while too many batches are in flight.
    fn bound(&mut self) -> io::Result<()> {
        while self.in_flight.len() > self.depth {
            self.wait_oldest()?;
        }
        Ok(())
    }

    /// Replays the items `next` gives, in batches of [`BATCH`] cases, as pool
    /// jobs, and waits until the sink has them all.
    fn replay_in_batches<E: Encode<Tally = T>>(
        &mut self,
        job: &Job<'_>,
        encode: &E,
        next: impl FnMut() -> io::Result<Option<Item>>,
    ) -> io::Result<()> {
        let ordered = self.ordered;
        rayon::in_place_scope_fifo(|scope| {
            in_batches(BATCH, next, |items| {
                let (ticket, bytes) = self.ticket();
                scope.spawn_fifo(move |_| drop(replay_into(job, encode, items, bytes, ticket, ordered)));
                self.bound()
            })?;
            self.drain()
        })
    }

    /// Waits until the oldest batch in flight is with the sink.
    fn wait_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.in_flight.pop_front() else { return Ok(()) };
        let bytes = super::pool::wait(&rx)
            .ok_or_else(|| io::Error::other("a replay thread stopped before finishing its cases"))??;
        self.spare.push(bytes);
        Ok(())
    }

    /// Waits until every batch in flight is with the sink.
    fn drain(&mut self) -> io::Result<()> {
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
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
    each_batch(inputs, fleet, INLINE_BATCH, |full| match sink.buffer() {
        Some((buffer, tally)) => {
            work(job, encode, full, buffer, tally)?;
            sink.appended()
        }
        None => {
            bytes.clear();
            work(job, encode, full, &mut bytes, sink.tally())?;
            sink.encoded(&bytes)
        }
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

/// Replays one batch, appending its encoding to `bytes` and tallying
/// into `tally`.
fn work<E: Encode>(
    job: &Job<'_>,
    encode: &E,
    batch: Vec<Item>,
    bytes: &mut Vec<u8>,
    tally: &mut E::Tally,
) -> io::Result<()> {
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
    use crate::runtime::ingress::native::{LineReader, RawLine};

    fn tool_chain() -> CompiledPolicy {
        let text = include_str!("../../policies/tool_chain.rcv");
        crate::compile::build(&crate::diag::Source::new("tool_chain.rcv", text.to_string())).policy.unwrap()
    }

    const FIXTURE: &[u8] = include_bytes!("../../fixtures/tool_chain_failures.ndjson");

    /// The fixture's lines in chunks of about `n` bytes, parsed and
    /// numbered from 1 within each chunk.
    fn parsed_batches(n: usize) -> Vec<ParsedLines> {
        let mut chunks = ChunkReader::sized(FIXTURE, 1 << 20, n, 64);
        let mut out = Vec::new();
        loop {
            let mut batch = LineBatch::default();
            let more = batch.fill(&mut chunks).unwrap();
            let mut parsed = ParsedLines::new();
            batch.parse(1 << 20, &mut parsed);
            if !parsed.is_empty() {
                out.push(parsed);
            }
            if !more {
                return out;
            }
        }
    }

    /// The fixture's lines read one by one, parsed, numbered in the file.
    fn parsed_lines() -> ParsedLines {
        let mut lines = LineReader::new(FIXTURE, 1 << 20);
        let mut out = ParsedLines::new();
        while let Some((n, raw)) = lines.next_line().unwrap() {
            out.push(match raw {
                RawLine::Bytes(bytes) => (n, Ok(crate::runtime::ingress::native::parse_line(bytes))),
                RawLine::TooLong(len) => (n, Err(len)),
            });
        }
        out
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

    /// Records what it is given, and fails on the bytes `fail_on`.
    #[derive(Default)]
    struct Recorder {
        tallies: Vec<u32>,
        bytes: Vec<u8>,
        fail_on: Option<u8>,
    }

    impl Sink<u32> for Recorder {
        fn tally(&mut self) -> &mut u32 {
            unreachable!("only --jobs 1 uses the running tally")
        }
        fn merge(&mut self, batch: u32) {
            self.tallies.push(batch);
        }
        fn encoded(&mut self, bytes: &[u8]) -> io::Result<()> {
            if bytes.first() == self.fail_on.as_ref() {
                return Err(io::Error::other("disk full"));
            }
            self.bytes.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn done(i: u8) -> io::Result<Done<u32>> {
        Ok(Done { tally: u32::from(i), bytes: vec![i] })
    }

    /// Batches finished out of order reach the sink in order, each written
    /// by the job whose turn it is: one that finishes early is parked and
    /// written by the job before it.
    #[test]
    fn batches_done_out_of_turn_reach_the_sink_in_order() {
        let mut sink = Recorder::default();
        let mut receivers = Vec::new();
        {
            let ordered = Ordered::new(&mut sink);
            let mut tickets: Vec<Option<Ticket>> = (0..6u64)
                .map(|index| {
                    let (written, rx) = mpsc::sync_channel(1);
                    receivers.push(rx);
                    Some(Ticket { index, written: Some(written) })
                })
                .collect();
            for i in [2u8, 1, 3, 0, 5, 4] {
                let ticket = tickets[usize::from(i)].take().unwrap();
                ordered.deliver(done(i), ticket);
                // Nothing is written before batch 0 is done.
                if i != 0 && ordered.queue.lock().unwrap().order.next == 0 {
                    assert!(receivers[usize::from(i)].try_recv().is_err());
                }
            }
            assert!(ordered.queue.lock().unwrap().order.parked.is_empty());
        }
        assert_eq!(sink.bytes, [0, 1, 2, 3, 4, 5]);
        assert_eq!(sink.tallies, [0, 1, 2, 3, 4, 5]);
        for (i, rx) in receivers.iter().enumerate() {
            assert_eq!(rx.try_recv().unwrap().unwrap(), [i as u8], "batch {i} gives its buffer back");
        }
    }

    /// Without a channel, a batch's emptied buffer goes back to the thread
    /// that wrote it, parked batches' too; a worker waiting for room goes on
    /// once the batch it waits for is written, and stops when the run fails.
    #[test]
    fn batches_without_a_channel_give_their_buffers_to_the_writer() {
        let mut sink = Recorder::default();
        let ordered = Ordered::new(&mut sink);
        assert!(ordered.deliver(done(1), Ticket { index: 1, written: None }).is_empty(), "parked");
        let back = ordered.deliver(done(0), Ticket { index: 0, written: None });
        assert_eq!(back, [vec![0], vec![1]]);
        ordered.wait_room(3, 2).unwrap();
        std::thread::scope(|s| {
            let waiting = s.spawn(|| ordered.wait_room(4, 2));
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!waiting.is_finished(), "batch 4 is two ahead of batch 2");
            ordered.deliver(done(2), Ticket { index: 2, written: None });
            assert!(waiting.join().unwrap().is_ok());
            let stopped = s.spawn(|| ordered.wait_room(9, 2));
            ordered.fail(io::Error::other("device gone"));
            assert!(stopped.join().unwrap().is_err());
        });
        assert_eq!(ordered.take_error().unwrap().to_string(), "device gone");
        drop(ordered);
        assert_eq!(sink.bytes, [0, 1, 2]);
    }

    /// After the sink fails, later batches are not written and each says so;
    /// the failure itself is reported for the batch that caused it.
    #[test]
    fn a_sink_error_stops_later_batches() {
        let mut sink = Recorder { fail_on: Some(1), ..Recorder::default() };
        let mut receivers = Vec::new();
        {
            let ordered = Ordered::new(&mut sink);
            for i in [0u8, 2, 1, 3] {
                let (written, rx) = mpsc::sync_channel(1);
                receivers.push((i, rx));
                ordered.deliver(done(i), Ticket { index: u64::from(i), written: Some(written) });
            }
        }
        assert_eq!(sink.bytes, [0]);
        receivers.sort_by_key(|(i, _)| *i);
        let results: Vec<_> = receivers.iter().map(|(_, rx)| rx.try_recv().unwrap()).collect();
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().to_string(), "disk full");
        for r in &results[2..] {
            assert_eq!(r.as_ref().unwrap_err().to_string(), "not written after an earlier error");
        }
    }

    /// A batch that failed before the sink (replay or encoding) is reported
    /// in its place, and the batches after it are not written.
    #[test]
    fn a_failed_batch_is_reported_in_its_place() {
        let mut sink = Recorder::default();
        let (mut rxs, ordered) = (Vec::new(), Ordered::new(&mut sink));
        for i in 0u8..3 {
            let (written, rx) = mpsc::sync_channel(1);
            rxs.push(rx);
            let result = if i == 1 { Err(io::Error::other("cannot encode")) } else { done(i) };
            ordered.deliver(result, Ticket { index: u64::from(i), written: Some(written) });
        }
        drop(ordered);
        assert_eq!(sink.bytes, [0]);
        assert_eq!(rxs[1].try_recv().unwrap().unwrap_err().to_string(), "cannot encode");
        assert!(rxs[2].try_recv().unwrap().is_err());
    }

    /// Batches that finish parsing out of order are assembled in order: a
    /// batch whose turn has not come is parked, and the batch before it
    /// assembles it too; the items are those of one assembly in line order.
    #[test]
    fn batches_parked_out_of_turn_are_assembled_in_order() {
        let policy = tool_chain();
        let batches = parsed_batches(4096);
        assert!(batches.len() >= 4, "the fixture gives several batches");

        // One assembly of the lines read one by one.
        let mut fleet = FleetClock::new(&policy);
        let mut assembler = CaseAssembler::new("f", false);
        let mut expected = Vec::new();
        let mut all = parsed_lines();
        crate::runtime::ingress::assemble(&mut assembler, "f", 1 << 20, &mut all, &mut expected, &mut fleet);

        let mut fleet = FleetClock::new(&policy);
        let turn = Mutex::new(Turn {
            order: InOrder::default(),
            file: "f".into(),
            limit: 1 << 20,
            line: 0,
            assembler: CaseAssembler::new("f", false),
            fleet: &mut fleet,
        });
        let mut got = Vec::new();
        let mut receivers = Vec::new();
        // Batch 2 finishes first, then 1, then 0 (which assembles all three), then the rest in order.
        let mut order: Vec<usize> = vec![2, 1, 0];
        order.extend(3..batches.len());
        let mut assembled_by = vec![None; batches.len()];
        for i in order {
            let (written, rx) = mpsc::sync_channel(1);
            receivers.push((i, rx));
            let ready =
                take_turn(&turn, i as u64, batches[i].clone(), Ticket { index: i as u64, written: Some(written) });
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

    /// Encodes a case as its request id and a rejection as its line; the
    /// tally counts both.
    struct Ids;

    impl Encode for Ids {
        type Tally = u32;
        fn case(&self, result: CaseResult, out: &mut Vec<u8>, n: &mut u32) -> io::Result<()> {
            out.extend_from_slice(result.request_id.as_bytes());
            out.push(b'\n');
            *n += 1;
            Ok(())
        }
        fn rejected(&self, rejection: Rejection, out: &mut Vec<u8>, n: &mut u32) -> io::Result<()> {
            out.extend_from_slice(format!("line {}\n", rejection.line).as_bytes());
            *n += 1;
            Ok(())
        }
    }

    /// Keeps what it is given; fails on the `fail_at`th batch (from 1).
    #[derive(Default)]
    struct Kept {
        tally: u32,
        bytes: Vec<u8>,
        batches: usize,
        fail_at: Option<usize>,
    }

    impl Sink<u32> for Kept {
        fn tally(&mut self) -> &mut u32 {
            &mut self.tally
        }
        fn merge(&mut self, batch: u32) {
            self.tally += batch;
        }
        fn encoded(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.batches += 1;
            if self.fail_at == Some(self.batches) {
                return Err(io::Error::other("disk full"));
            }
            self.bytes.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// Gives `bytes`, then fails once `fail_after` of them are read.
    struct Failing {
        bytes: io::Cursor<Vec<u8>>,
        fail_after: u64,
    }

    impl io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.bytes.position() >= self.fail_after {
                return Err(io::Error::other("device gone"));
            }
            let room = (self.fail_after - self.bytes.position()).min(buf.len() as u64) as usize;
            io::Read::read(&mut self.bytes, &mut buf[..room])
        }
    }

    /// The fixture eight times over: more batches of lines than the
    /// workers may have in flight, so they wait for room.
    fn many_lines() -> Vec<u8> {
        include_bytes!("../../fixtures/tool_chain_failures.ndjson").repeat(8)
    }

    fn replay(
        policy: &CompiledPolicy,
        input: Vec<u8>,
        fail_after: u64,
        jobs: usize,
        sink: &mut Kept,
    ) -> io::Result<Stats> {
        let reader = io::BufReader::with_capacity(4096, Failing { bytes: io::Cursor::new(input), fail_after });
        let format = crate::runtime::ingress::Format::Native;
        let stream = crate::runtime::ingress::open_reader("f", Box::new(reader), format, Default::default())?;
        let world = World::default();
        let job = Job { policy, lines: None, world: &world, seed: 7, jobs };
        run(&job, vec![stream], &Ids, sink)
    }

    /// Workers that each read, parse, assemble, replay and hand over their
    /// own batches give the bytes, tallies and stats of one thread.
    #[test]
    fn workers_give_the_output_of_one_thread() {
        let policy = tool_chain();
        let input = many_lines();
        assert!(input.len() > 8 * crate::runtime::ingress::chunks::CHUNK_BYTES, "more chunks than may be in flight");
        let mut one = Kept::default();
        let stats = replay(&policy, input.clone(), u64::MAX, 1, &mut one).unwrap();
        assert!(one.tally > 100 && stats.lines > 4000);
        for jobs in 2..=4 {
            let mut other = Kept::default();
            let other_stats = replay(&policy, input.clone(), u64::MAX, jobs, &mut other).unwrap();
            assert!(one.bytes == other.bytes, "--jobs {jobs} gives other bytes");
            assert_eq!((one.tally, format!("{stats:?}")), (other.tally, format!("{other_stats:?}")), "--jobs {jobs}");
        }
    }

    /// A read error in the middle of the input stops every worker and is
    /// the run's error, as with one thread.
    #[test]
    fn workers_stop_at_a_read_error() {
        let policy = tool_chain();
        for jobs in 1..=3 {
            let err = replay(&policy, many_lines(), 300_000, jobs, &mut Kept::default()).unwrap_err();
            assert_eq!(err.to_string(), "device gone", "--jobs {jobs}");
        }
    }

    /// A sink that fails stops the workers; nothing after the failed batch
    /// is written.
    #[test]
    fn workers_stop_at_a_sink_error() {
        let policy = tool_chain();
        for jobs in 2..=3 {
            let mut sink = Kept { fail_at: Some(3), ..Kept::default() };
            let err = replay(&policy, many_lines(), u64::MAX, jobs, &mut sink).unwrap_err();
            assert_eq!(err.to_string(), "disk full", "--jobs {jobs}");
            assert_eq!(sink.batches, 3, "no batch is written after the failed one");
        }
    }
}
