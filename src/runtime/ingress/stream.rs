//! The one entry point the engine calls: [`open`] a path (or `-` for
//! standard input) in a [`Format`], then pull [`Item`]s.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use super::assemble::{Accepted, Case, CaseAssembler, NoObserver, Observer};
use super::chunks::{Chunk, ChunkLine, ChunkReader};
use super::native::{self, LineReader, Parsed, RawLine};
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
}

/// A native input taken apart, for a driver that reads it in chunks of
/// lines, parses the chunks on several threads and assembles them in
/// order (`driver`).
pub struct NativeInput {
    pub file: String,
    pub chunks: ChunkReader<Box<dyn BufRead + Send>>,
    /// Lines read before the first chunk.
    pub lines_before: u64,
    pub assembler: CaseAssembler,
}

/// Lines read for parsing elsewhere: one chunk of whole lines. Filled
/// again after it is parsed, so its buffer is allocated once.
#[derive(Debug, Default)]
pub struct LineBatch {
    chunk: Chunk,
}

/// Each line's number and what it turned into (`Err`: too long, its length).
pub type ParsedLines = Vec<(u64, Result<Parsed, u64>)>;

/// The largest chunk buffer worth keeping for reuse (a chunk of typical
/// lines takes 192 KiB).
const KEEP_BYTES_MAX: usize = 4 << 20;

impl LineBatch {
    /// Takes the next chunk of lines from `reader`: the step done in turn.
    /// `false` once the input is at its end (the batch may still hold its
    /// last lines).
    pub fn fill<R: io::Read>(&mut self, reader: &mut ChunkReader<R>) -> io::Result<bool> {
        reader.next_chunk(&mut self.chunk)
    }

    pub fn is_empty(&self) -> bool {
        self.chunk.is_empty()
    }

    /// Splits the batch into lines and parses each onto the end of `out`,
    /// numbered from 1 within the batch, then empties it.
    pub fn parse(&mut self, limit: usize, out: &mut ParsedLines) {
        out.extend(self.chunk.lines(limit).zip(1..).map(|(line, n)| match line {
            ChunkLine::Bytes(bytes) => (n, Ok(native::parse_line(bytes))),
            ChunkLine::TooLong(len) => (n, Err(len)),
        }));
        // A batch of unusually long lines does not keep its buffer.
        self.chunk.clear(KEEP_BYTES_MAX);
    }
}

/// Hands parsed lines, in line order, to the assembler; what it decides
/// goes onto `out`.
pub fn assemble(
    assembler: &mut CaseAssembler,
    file: &str,
    limit: usize,
    parsed: &mut ParsedLines,
    out: &mut Vec<Item>,
    obs: &mut dyn Observer,
) {
    for line in parsed.drain(..) {
        feed_line(assembler, file, limit, line, out, obs);
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
    Ok(Stream { file, format, source, assembler, queue: VecDeque::new(), scratch: Vec::new(), finished: false })
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

    /// The parts of a native input that has not been read from yet, for a
    /// driver that parses and assembles it in batches; `Err` gives back
    /// any other stream.
    pub fn into_native(self) -> Result<NativeInput, Box<Stream>> {
        match self.source {
            Source::Native(lines) if !self.finished && self.queue.is_empty() && self.scratch.is_empty() => {
                let (chunks, lines_before) = lines.into_chunks();
                Ok(NativeInput { file: self.file, chunks, lines_before, assembler: self.assembler })
            }
            source => Err(Box::new(Stream { source, ..self })),
        }
    }

    /// Turns [`Item::Event`] reports on (the default) or off.
    pub fn report_events(&mut self, on: bool) {
        self.assembler.report_events(on);
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
