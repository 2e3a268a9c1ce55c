//! The one entry point the engine calls: [`open`] a path (or `-` for
//! standard input) in a [`Format`], then pull [`Item`]s.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, mpsc};

use super::assemble::{Accepted, Case, CaseAssembler, NoObserver, Observer};
use super::native::{self, Appended, LineReader, Parsed, RawLine};
use super::reject::{RejectReason, Rejection, Stats};
use super::spans::Converted;
use super::{otlp, trail};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Native NDJSON events (`docs/trace-format.md`).
    Native,
    /// OpenTelemetry OTLP/JSON trace export (`resourceSpans`), one document
    /// or one document per line.
    Otlp,
    /// TRAIL / OpenInference span trees (`spans` with `child_spans`).
    Trail,
    /// Sniff the input: see [`sniff`].
    Auto,
}

impl Format {
    pub const NAMES: [&'static str; 4] = ["native", "otlp", "trail", "auto"];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Otlp => "otlp",
            Format::Trail => "trail",
            Format::Auto => "auto",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" | "ndjson" => Ok(Format::Native),
            "otlp" => Ok(Format::Otlp),
            "trail" => Ok(Format::Trail),
            "auto" => Ok(Format::Auto),
            _ => Err(format!("unknown trace format `{s}`; expected `native`, `otlp`, `trail` or `auto`")),
        }
    }
}

/// Reader options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Native lines longer than this are rejected `line_too_long` (bytes).
    pub max_line_bytes: usize,
    /// Span formats read the whole document; larger inputs are refused (bytes).
    pub max_document_bytes: u64,
    /// Report every accepted event as [`Item::Event`] (the engine's view in
    /// trace time). Off: only cases and rejections.
    pub events: bool,
    /// Close a case whose last event is more than this many lines back
    /// (`None`: at its `end` event or at end of input).
    pub close_idle_lines: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_line_bytes: native::DEFAULT_MAX_LINE,
            max_document_bytes: 512 << 20,
            events: true,
            close_idle_lines: None,
        }
    }
}

/// What the stream yields, in a deterministic order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event was accepted. Every accepted event is reported exactly once,
    /// in file order, except that calls held for a late `request` event are
    /// reported right after it. Span formats report events in start-time order.
    Event(Box<Accepted>),
    /// A case completed (at its `end` event, or at end of input in order of
    /// first line). Boxed, as is `Event`: items are moved through queues,
    /// and an unboxed event is large.
    Case(Box<Case>),
    /// A line (or span) was not accepted.
    Rejected(Rejection),
}

enum Source {
    Native(LineReader<Box<dyn BufRead + Send>>),
    /// Span formats: converted up front, fed through the assembler lazily.
    Spans(std::vec::IntoIter<super::spans::Fed>),
}

/// A pull stream of [`Item`]s over one input.
pub struct Stream {
    file: String,
    format: Format,
    source: Source,
    assembler: CaseAssembler,
    queue: VecDeque<Item>,
    scratch: Vec<Item>,
    finished: bool,
    /// Parses native lines in batches on a pool when set.
    ahead: Option<ReadAhead>,
}

/// Native lines per parallel parse batch.
const PARSE_BATCH: usize = 512;

/// The largest line buffer kept for reuse (a batch of 512 typical lines
/// takes about 150 KB).
const SPARE_BYTES_MAX: usize = 4 << 20;

/// Native lines read ahead and parsed on a pool while earlier batches are
/// assembled: batches are handed back in the order they were read.
struct ReadAhead {
    pool: Arc<rayon::ThreadPool>,
    in_flight: VecDeque<mpsc::Receiver<ParsedBatch>>,
    /// Emptied buffers of parsed batches, filled again instead of
    /// allocated per batch (a batch's bytes are a large allocation, and
    /// they are freed on another thread).
    spare: Vec<(LineBatch, ParsedLines)>,
    /// Batches in flight at most.
    depth: usize,
    /// The reader reached the end of the input.
    read_all: bool,
}

/// One batch of lines: line numbers, and where each line's bytes are in `bytes`.
struct LineBatch {
    lines: Vec<(u64, LineSlot)>,
    bytes: Vec<u8>,
}

enum LineSlot {
    TooLong(u64),
    Bytes(std::ops::Range<usize>),
}

/// Each line's number and what it turned into (`Err`: too long, its length).
type ParsedLines = Vec<(u64, Result<Parsed, u64>)>;

/// A parsed batch, and its line buffer emptied for reuse.
struct ParsedBatch {
    parsed: ParsedLines,
    emptied: LineBatch,
}

impl LineBatch {
    fn with_capacity(lines: usize) -> Self {
        LineBatch { lines: Vec::with_capacity(lines), bytes: Vec::new() }
    }

    /// Parses every line into `parsed` (emptied first).
    fn parse(mut self, mut parsed: ParsedLines) -> ParsedBatch {
        parsed.clear();
        let bytes = &self.bytes;
        parsed.extend(self.lines.drain(..).map(|(line, slot)| match slot {
            LineSlot::Bytes(range) => (line, Ok(native::parse_line(bytes.get(range).unwrap_or_default()))),
            LineSlot::TooLong(len) => (line, Err(len)),
        }));
        self.bytes.clear();
        ParsedBatch { parsed, emptied: self }
    }
}

/// Hands one native line's outcome to the assembler.
fn feed_line(
    assembler: &mut CaseAssembler,
    file: &str,
    limit: usize,
    (line, read): (u64, Result<Parsed, u64>),
    out: &mut Vec<Item>,
    obs: &mut dyn Observer,
) {
    assembler.count_line();
    match read {
        Err(len) => assembler.reject(
            Rejection {
                file: file.to_string(),
                line,
                request_id: None,
                reason: RejectReason::LineTooLong,
                detail: format!("the line has {len} bytes; the limit is {limit}"),
            },
            out,
        ),
        Ok(Parsed::Blank) => assembler.count_blank(),
        Ok(Parsed::Event(event)) => assembler.push_observed(line, event, out, obs),
        Ok(Parsed::Rejected { reason, request_id, detail }) => {
            assembler.reject(Rejection { file: file.to_string(), line, request_id, reason, detail }, out)
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("file", &self.file).field("format", &self.format).finish_non_exhaustive()
    }
}

/// Opens a path, or `-` for standard input.
pub fn open(path: &str, format: Format, options: Options) -> io::Result<Stream> {
    let reader: Box<dyn BufRead + Send> = if path == "-" {
        Box::new(BufReader::with_capacity(64 * 1024, io::stdin()))
    } else {
        Box::new(BufReader::with_capacity(64 * 1024, File::open(path)?))
    };
    open_reader(path, reader, format, options)
}

/// Opens any reader; `name` is what rejections call the input.
pub fn open_reader(
    name: impl Into<String>,
    mut reader: Box<dyn BufRead + Send>,
    format: Format,
    options: Options,
) -> io::Result<Stream> {
    let file = name.into();
    let format = match format {
        Format::Auto => sniff(&mut reader)?,
        f => f,
    };
    let assembler = CaseAssembler::new(file.clone(), options.events).close_idle_after(options.close_idle_lines);
    let source = match format {
        Format::Native | Format::Auto => Source::Native(LineReader::new(reader, options.max_line_bytes)),
        Format::Otlp | Format::Trail => {
            let mut bytes = Vec::new();
            let limit = options.max_document_bytes;
            reader.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("`{file}` is larger than the {limit}-byte limit for span documents"),
                ));
            }
            let converted: Converted =
                if format == Format::Otlp { otlp::convert(&file, &bytes) } else { trail::convert(&file, &bytes) };
            Source::Spans(converted.into_fed().into_iter())
        }
    };
    Ok(Stream {
        file,
        format,
        source,
        assembler,
        queue: VecDeque::new(),
        scratch: Vec::new(),
        finished: false,
        ahead: None,
    })
}

/// Guesses the format from the start of the input without consuming it:
/// a first object whose first key is `resourceSpans`, or that mentions
/// `"resourceSpans"` early, is OTLP; one that mentions `"child_spans"` or
/// `"spans"` (or a top-level array) is TRAIL; anything else is native NDJSON.
pub fn sniff(reader: &mut Box<dyn BufRead + Send>) -> io::Result<Format> {
    let head = loop {
        match reader.fill_buf() {
            Ok(b) => break b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    Ok(sniff_bytes(head))
}

/// [`sniff`] on a prefix of the input.
pub fn sniff_bytes(head: &[u8]) -> Format {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let rest = &head[start..];
    let contains = |needle: &[u8]| rest.windows(needle.len()).any(|w| w == needle);
    match rest.first() {
        Some(b'[') if contains(b"\"child_spans\"") || contains(b"\"spans\"") => Format::Trail,
        Some(b'{') => {
            // The first key decides when it can.
            let first_key = first_key(&rest[1..]);
            match first_key {
                Some(b"resourceSpans") => Format::Otlp,
                Some(b"request_id" | b"seq" | b"kind") => Format::Native,
                _ if contains(b"\"resourceSpans\"") => Format::Otlp,
                _ if contains(b"\"child_spans\"") || contains(b"\"spans\"") => Format::Trail,
                _ => Format::Native,
            }
        }
        _ => Format::Native,
    }
}

fn first_key(after_brace: &[u8]) -> Option<&[u8]> {
    let start = after_brace.iter().position(|b| !b.is_ascii_whitespace())?;
    let s = &after_brace[start..];
    let body = s.strip_prefix(b"\"")?;
    let end = body.iter().position(|&b| b == b'"' || b == b'\\')?;
    Some(&body[..end])
}

impl Stream {
    /// The input's name (its path, or `-`).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The format read (resolved when [`Format::Auto`] was asked).
    pub fn format(&self) -> Format {
        self.format
    }

    /// Counts so far; final once the stream returned `None`.
    pub fn stats(&self) -> &Stats {
        self.assembler.stats()
    }

    /// Open cases right now.
    pub fn in_flight(&self) -> usize {
        self.assembler.in_flight()
    }

    /// Parses native lines in batches on `pool`, reading ahead while earlier
    /// batches are assembled (decoding and validation run in parallel;
    /// assembly stays in line order, so the items are the same as without a
    /// pool).
    pub fn parse_on(&mut self, pool: Arc<rayon::ThreadPool>) {
        let depth = 2 * pool.current_num_threads().max(1);
        self.ahead = Some(ReadAhead { pool, in_flight: VecDeque::new(), spare: Vec::new(), depth, read_all: false });
    }

    /// Turns [`Item::Event`] reports on (the default) or off.
    pub fn report_events(&mut self, on: bool) {
        self.assembler.report_events(on);
    }

    /// Keeps up to `depth` batches in flight, then assembles the oldest.
    fn fill_ahead(&mut self, obs: &mut dyn Observer) -> io::Result<()> {
        let (Some(ahead), Source::Native(lines)) = (&mut self.ahead, &mut self.source) else { return Ok(()) };
        while !ahead.read_all && ahead.in_flight.len() < ahead.depth {
            let (mut batch, parsed) =
                ahead.spare.pop().unwrap_or_else(|| (LineBatch::with_capacity(PARSE_BATCH), Vec::new()));
            while batch.lines.len() < PARSE_BATCH {
                match lines.append_line(&mut batch.bytes)? {
                    None => {
                        ahead.read_all = true;
                        break;
                    }
                    Some((line, Appended::TooLong(len))) => batch.lines.push((line, LineSlot::TooLong(len))),
                    Some((line, Appended::Bytes(range))) => batch.lines.push((line, LineSlot::Bytes(range))),
                }
            }
            let (tx, rx) = mpsc::sync_channel(1);
            ahead.pool.spawn_fifo(move || {
                // The receiver only goes away when the stream is dropped.
                let _ = tx.send(batch.parse(parsed));
            });
            ahead.in_flight.push_back(rx);
        }
        let limit = lines.limit();
        let Some(rx) = ahead.in_flight.pop_front() else {
            self.assembler.finish(&mut self.scratch);
            self.finished = true;
            self.queue.extend(self.scratch.drain(..));
            return Ok(());
        };
        let batch = crate::runtime::pool::wait(&rx)
            .ok_or_else(|| io::Error::other("a parser thread stopped before finishing its lines"))?;
        let ParsedBatch { mut parsed, emptied } = batch;
        for line in parsed.drain(..) {
            feed_line(&mut self.assembler, &self.file, limit, line, &mut self.scratch, obs);
        }
        // A batch of unusually long lines is not kept around.
        if emptied.bytes.capacity() <= SPARE_BYTES_MAX {
            ahead.spare.push((emptied, parsed));
        }
        self.queue.extend(self.scratch.drain(..));
        Ok(())
    }

    /// The next item, `Ok(None)` at the end. An I/O error ends the stream.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        self.next_item_observed(&mut NoObserver)
    }

    /// [`Stream::next_item`], telling `obs` about every accepted event in
    /// acceptance order (see [`Observer`]).
    pub fn next_item_observed(&mut self, obs: &mut dyn Observer) -> io::Result<Option<Item>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Ok(Some(item));
            }
            if self.finished {
                return Ok(None);
            }
            self.fill(obs)?;
        }
    }

    /// Reads until at least one item is queued or the input ends.
    fn fill(&mut self, obs: &mut dyn Observer) -> io::Result<()> {
        if let (Some(_), Source::Native(_)) = (&self.ahead, &self.source) {
            return self.fill_ahead(obs);
        }
        // Lines that yield nothing (accepted events, when not reported) are
        // read on in this loop instead of one call per line.
        while self.scratch.is_empty() && !self.finished {
            self.fill_one(obs)?;
        }
        self.queue.extend(self.scratch.drain(..));
        Ok(())
    }

    /// Reads one line (or span) into `scratch`.
    fn fill_one(&mut self, obs: &mut dyn Observer) -> io::Result<()> {
        let out = &mut self.scratch;
        match &mut self.source {
            Source::Native(lines) => match lines.next_line()? {
                None => {
                    self.assembler.finish(out);
                    self.finished = true;
                }
                Some((line, raw)) => {
                    let read = match raw {
                        RawLine::TooLong(len) => Err(len),
                        RawLine::Bytes(bytes) => Ok(native::parse_line(bytes)),
                    };
                    feed_line(&mut self.assembler, &self.file, lines.limit(), (line, read), out, obs);
                }
            },
            Source::Spans(fed) => match fed.next() {
                None => {
                    self.assembler.finish(out);
                    self.finished = true;
                }
                Some(super::spans::Fed::Span) => self.assembler.count_line(),
                Some(super::spans::Fed::Skipped) => {
                    self.assembler.count_line();
                    self.assembler.count_skipped_span();
                }
                Some(super::spans::Fed::Explained) => {
                    self.assembler.count_line();
                    self.assembler.count_explained_span();
                }
                Some(super::spans::Fed::Event(line, event)) => self.assembler.push_observed(line, event, out, obs),
                Some(super::spans::Fed::Rejected(r)) => self.assembler.reject(r, out),
            },
        }
        Ok(())
    }
}

impl Iterator for Stream {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_item() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.finished = true;
                self.queue.clear();
                Some(Err(e))
            }
        }
    }
}

/// Reads a whole input and returns everything: items in order and stats
/// (convenient for tests and small inputs).
pub fn read_all(stream: &mut Stream) -> io::Result<Vec<Item>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next_item()? {
        items.push(item);
    }
    Ok(items)
}
