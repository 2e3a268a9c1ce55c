//! Native lines read in chunks, for workers that each split and parse
//! their own chunk: taking a chunk is the only step done in turn, and it
//! is one read from the input straight into the worker's buffer (a
//! `BufReader` with nothing buffered passes a read this large through).
//! Splitting the chunk into lines happens after, on the worker's thread.
//!
//! A chunk ends on a newline: the partial line after its last newline is
//! carried into the next chunk. Lines are those of [`LineReader`]
//! (`super::native::LineReader`): without the newline and a trailing `\r`,
//! a byte order mark stripped from the input's first line, and a line over
//! the limit skipped to its newline without being buffered and given as
//! its length.

use std::io::{self, Read};

/// Bytes read into a chunk before it is cut at its last newline.
pub const CHUNK_BYTES: usize = 128 << 10;

/// Room kept free past [`CHUNK_BYTES`]: each read asks for at least this
/// much, which a 64 KiB `BufReader` with nothing buffered passes through.
const READ_MIN: usize = 64 << 10;

/// Takes chunks of whole lines from a reader, in order.
#[derive(Debug)]
pub struct ChunkReader<R> {
    inner: R,
    limit: usize,
    /// [`CHUNK_BYTES`] and [`READ_MIN`], smaller in tests.
    chunk_bytes: usize,
    read_min: usize,
    /// The partial line after the last chunk's last newline.
    carry: Vec<u8>,
    /// Bytes skipped so far of a line over the limit, while skipping it.
    skipping: Option<u64>,
    /// Nothing read yet: the next chunk starts the input.
    at_start: bool,
    at_end: bool,
}

/// One chunk: whole lines, in a buffer kept by the worker that splits them.
#[derive(Debug, Default)]
pub struct Chunk {
    /// `buf[..filled]` holds the chunk's bytes; the rest is room to read
    /// into, kept initialised so it is not zeroed again for each chunk.
    buf: Vec<u8>,
    filled: usize,
    /// A line over the limit that ends in this chunk, before its bytes: its length.
    lead_too_long: Option<u64>,
    /// The chunk starts the input (a byte order mark may open its first line).
    at_start: bool,
}

/// One line of a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkLine<'a> {
    Bytes(&'a [u8]),
    /// The line was longer than the limit; its length.
    TooLong(u64),
}

impl<R: Read> ChunkReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        Self::sized(inner, limit, CHUNK_BYTES, READ_MIN)
    }

    /// Chunks of about `chunk_bytes`, each read asking for at least
    /// `read_min` bytes (small ones for tests).
    pub fn sized(inner: R, limit: usize, chunk_bytes: usize, read_min: usize) -> Self {
        ChunkReader {
            inner,
            limit,
            chunk_bytes,
            read_min,
            carry: Vec::new(),
            skipping: None,
            at_start: true,
            at_end: false,
        }
    }

    /// The input's first line has been read elsewhere: no byte order mark
    /// is stripped.
    pub fn not_at_start(&mut self) {
        self.at_start = false;
    }

    /// The line limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Fills `chunk` with the next whole lines (about [`CHUNK_BYTES`], more
    /// for a long line); `false` once the input is at its end (`chunk`
    /// still holds the last lines, if any).
    pub fn next_chunk(&mut self, chunk: &mut Chunk) -> io::Result<bool> {
        chunk.filled = 0;
        chunk.lead_too_long = None;
        chunk.at_start = std::mem::take(&mut self.at_start);
        if self.at_end {
            return Ok(false);
        }
        chunk.put(&self.carry);
        self.carry.clear();
        // Bytes before `searched` hold no newline: the line they start is
        // still open.
        let mut searched = chunk.filled;
        loop {
            let n = self.read_into(chunk)?;
            if let Some(skipped) = self.skipping {
                // A line over the limit: its bytes are dropped as they come.
                match memchr::memchr(b'\n', &chunk.buf[..chunk.filled]) {
                    Some(i) => {
                        chunk.lead_too_long = Some(skipped + i as u64);
                        self.skipping = None;
                        chunk.buf.copy_within(i + 1..chunk.filled, 0);
                        chunk.filled -= i + 1;
                    }
                    None => {
                        self.skipping = Some(skipped + chunk.filled as u64);
                        chunk.filled = 0;
                        if n == 0 {
                            chunk.lead_too_long = self.skipping.take();
                            self.at_end = true;
                            return Ok(false);
                        }
                        continue;
                    }
                }
            }
            if n == 0 {
                // The last line may lack its newline: it ends the chunk.
                self.at_end = true;
                return Ok(false);
            }
            if chunk.filled < self.chunk_bytes {
                continue;
            }
            if let Some(last) = memchr::memrchr(b'\n', &chunk.buf[searched..chunk.filled]) {
                let end = searched + last + 1;
                self.carry.extend_from_slice(&chunk.buf[end..chunk.filled]);
                chunk.filled = end;
                return Ok(true);
            }
            // No newline: the chunk is one open line.
            if chunk.filled > self.limit {
                self.skipping = Some(chunk.filled as u64);
                chunk.filled = 0;
                // A chunk gives at most one skipped line, before its bytes.
                if chunk.lead_too_long.is_some() {
                    return Ok(true);
                }
            }
            searched = chunk.filled;
        }
    }

    /// Reads once into the room after `chunk.filled` (grown to at least
    /// `read_min`); the bytes read, 0 at the end of the input.
    fn read_into(&mut self, chunk: &mut Chunk) -> io::Result<usize> {
        let want = (chunk.filled + self.read_min).max(self.chunk_bytes + self.read_min);
        if chunk.buf.len() < want {
            chunk.buf.resize(want, 0);
        }
        loop {
            match self.inner.read(&mut chunk.buf[chunk.filled..]) {
                Ok(n) => {
                    chunk.filled += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Chunk {
    /// No lines.
    pub fn is_empty(&self) -> bool {
        self.filled == 0 && self.lead_too_long.is_none()
    }

    /// Empties the chunk, and frees its buffer if it grew over `keep` bytes.
    pub fn clear(&mut self, keep: usize) {
        self.filled = 0;
        self.lead_too_long = None;
        if self.buf.len() > keep {
            self.buf = Vec::new();
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.filled + bytes.len();
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.buf[self.filled..end].copy_from_slice(bytes);
        self.filled = end;
    }

    /// The chunk's lines in order, each over `limit` bytes given as its length.
    pub fn lines(&self, limit: usize) -> impl Iterator<Item = ChunkLine<'_>> {
        let mut rest = &self.buf[..self.filled];
        let mut lead = self.lead_too_long.map(ChunkLine::TooLong);
        let mut first = self.at_start && lead.is_none();
        std::iter::from_fn(move || {
            if let Some(line) = lead.take() {
                return Some(line);
            }
            if rest.is_empty() {
                return None;
            }
            let (mut line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            if line.len() > limit {
                first = false;
                return Some(ChunkLine::TooLong(line.len() as u64));
            }
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            if std::mem::take(&mut first) {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            Some(ChunkLine::Bytes(line))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ingress::native::{LineReader, RawLine};

    /// Gives at most `step` bytes a read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn by_line_reader(data: &[u8], limit: usize) -> Vec<Result<Vec<u8>, u64>> {
        let mut r = LineReader::new(data, limit);
        let mut out = Vec::new();
        while let Some((_, raw)) = r.next_line().unwrap() {
            out.push(match raw {
                RawLine::Bytes(b) => Ok(b.to_vec()),
                RawLine::TooLong(len) => Err(len),
            });
        }
        out
    }

    fn by_chunks(data: &[u8], limit: usize, chunk: usize, read_min: usize, step: usize) -> Vec<Result<Vec<u8>, u64>> {
        let mut r = ChunkReader::sized(Trickle { bytes: data, step }, limit, chunk, read_min);
        let mut c = Chunk::default();
        let mut out = Vec::new();
        loop {
            let more = r.next_chunk(&mut c).unwrap();
            if more {
                assert!(c.filled == 0 || c.buf[c.filled - 1] == b'\n', "a chunk ends on a newline");
            }
            out.extend(c.lines(limit).map(|l| match l {
                ChunkLine::Bytes(b) => Ok(b.to_vec()),
                ChunkLine::TooLong(len) => Err(len),
            }));
            if !more {
                assert!(!r.next_chunk(&mut c).unwrap() && c.lines(limit).next().is_none(), "nothing after the end");
                return out;
            }
        }
    }

    /// Chunks give the lines of the line reader, whatever the chunk size,
    /// read size, limit, line endings, long lines and byte order marks.
    #[test]
    fn chunks_give_the_lines_of_the_line_reader() {
        let inputs: [&[u8]; 9] = [
            b"",
            b"\n",
            b"a",
            b"a\r\nbbbbbbbbbb\nc\n\xEF\xBB\xBFd",
            b"\xEF\xBB\xBFx\n\n",
            b"\xEF\xBB\xBFfirst\r\nbbbbbbbbbbbbbbbbbbbb\n\nlast-but-one\r\nzz",
            b"0123456789abcdefghij\n0123456789abcdefghijk\nshort\n0123456789abcdefghijklmnopqrstuvwxyz",
            b"\r\n\r\n\r",
            b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\nz\n",
        ];
        let mut generated = Vec::new();
        for i in 0..300u32 {
            generated.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, (i * 7 % 41) as usize));
            generated.extend_from_slice(if i % 5 == 0 { b"\r\n" } else { b"\n" });
        }
        for data in inputs.iter().copied().chain([generated.as_slice()]) {
            for limit in [0, 1, 4, 12, 20, 40, 1 << 20] {
                let expected = by_line_reader(data, limit);
                for (chunk, read_min) in [(1, 1), (3, 2), (8, 5), (16, 16), (64, 7), (4096, 4096)] {
                    for step in [1, 2, 5, 64, usize::MAX] {
                        let got = by_chunks(data, limit, chunk, read_min, step);
                        assert_eq!(
                            got, expected,
                            "limit {limit}, chunk {chunk}, read {read_min}, step {step}: {data:?}"
                        );
                    }
                }
            }
        }
    }

    /// A line far over the limit is not buffered: the chunk's buffer stays
    /// near the chunk size plus the limit.
    #[test]
    fn a_long_line_is_skipped_without_being_buffered() {
        let mut data = b"ok\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 1 << 20));
        data.extend_from_slice(b"\nafter\n");
        let mut r = ChunkReader::sized(data.as_slice(), 100, 64, 64);
        let mut c = Chunk::default();
        let mut lines = Vec::new();
        let mut largest = 0;
        loop {
            let more = r.next_chunk(&mut c).unwrap();
            largest = largest.max(c.buf.len());
            lines.extend(c.lines(100).map(|l| format!("{l:?}")));
            if !more {
                break;
            }
        }
        assert_eq!(lines, ["Bytes([111, 107])", "TooLong(1048576)", "Bytes([97, 102, 116, 101, 114])"]);
        assert!(largest < 64 + 100 + 2 * 64, "buffer grew to {largest}");
    }

    #[test]
    fn read_errors_reach_the_caller() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("device gone"))
            }
        }
        let err = ChunkReader::new(Broken, 10).next_chunk(&mut Chunk::default()).unwrap_err();
        assert_eq!(err.to_string(), "device gone");
    }
}
