//! A large output written behind its producer. The producer fills blocks;
//! a thread of its own writes them, so encoding never waits on the disk.
//! On Linux the blocks bypass the page cache (`O_DIRECT`): the disk reads
//! them from our memory, where a buffered write first copies every byte
//! into fresh cache pages, a tenth of a replay's CPU time
//! (`docs/performance.md`). Where a filesystem refuses direct writes, the
//! thread writes through the page cache and starts write-back as it goes.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Direct writes want memory, file offset and length aligned to the
/// device's logical block; 4 KiB is a multiple of every common one.
const ALIGN: usize = 4096;
/// Bytes per write call: a block is handed to the writer once it holds
/// this much.
const BLOCK: usize = 1 << 20;
/// Room past `BLOCK`: the producer appends whole batches, and a block
/// hands over only after a batch, so it may run past `BLOCK`.
const HEADROOM: usize = 1 << 20;
/// Blocks in circulation: one being filled while the others are written.
const BLOCKS: usize = 4;

/// Bytes that start on an `ALIGN` boundary: `mem[start..]`, the part of
/// `mem` before `start` is padding.
struct Block {
    mem: Vec<u8>,
    start: usize,
    /// How far `start` is meant to be off the boundary (tests).
    skew: usize,
}

impl Block {
    fn new(room: usize, skew: usize) -> Block {
        let mut mem: Vec<u8> = Vec::with_capacity(room + ALIGN + skew);
        // `align_offset` may decline to compute (it never does for u8 on
        // the platforms we build for); an unaligned block is only slower,
        // as its direct write is refused and redone through the cache.
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN) + skew;
        mem.resize(start, 0);
        Block { mem, start, skew }
    }

    fn len(&self) -> usize {
        self.mem.len() - self.start
    }

    fn bytes(&self) -> &[u8] {
        self.mem.get(self.start..).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.mem.truncate(self.start);
    }

    /// Whether the data still starts where it should: a batch larger than
    /// the headroom makes the vector move.
    fn in_place(&self) -> bool {
        self.mem.get(self.start - self.skew..).is_some_and(|m| m.as_ptr().align_offset(ALIGN) == 0)
    }
}

/// The producer's side. Bytes written are in the file once
/// [`WriteBehind::finish`] returns it.
pub struct WriteBehind {
    filling: Block,
    full: Option<SyncSender<Block>>,
    empty: Receiver<Block>,
    /// Blocks not yet allocated: a small output never allocates them all.
    unallocated: usize,
    writer: Option<JoinHandle<io::Result<File>>>,
}

/// How the writer thread writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Bypass the page cache where the filesystem allows it.
    Direct,
    /// Through the page cache, as on a filesystem that refuses direct
    /// writes (tests take this path on purpose).
    #[cfg(test)]
    Buffered,
    /// Direct, from memory off the alignment a direct write needs: the
    /// kernel refuses the first write and the writer falls back to the
    /// cache (tests).
    #[cfg(test)]
    DirectMisaligned,
}

impl Mode {
    fn direct(self) -> bool {
        match self {
            Mode::Direct => true,
            #[cfg(test)]
            Mode::DirectMisaligned => true,
            #[cfg(test)]
            Mode::Buffered => false,
        }
    }
}

impl WriteBehind {
    pub fn new(file: File, mode: Mode) -> io::Result<WriteBehind> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Block>(BLOCKS);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Block>(BLOCKS);
        let writer = std::thread::Builder::new()
            .name("rcv-write-behind".into())
            .spawn(move || write_blocks(file, mode, full_rx, empty_tx))?;
        #[cfg(test)]
        let skew = usize::from(mode == Mode::DirectMisaligned);
        #[cfg(not(test))]
        let skew = 0;
        Ok(WriteBehind {
            filling: Block::new(BLOCK + HEADROOM, skew),
            full: Some(full_tx),
            empty: empty_rx,
            unallocated: BLOCKS - 1,
            writer: Some(writer),
        })
    }

    /// The block being filled, to append to; call
    /// [`WriteBehind::appended`] after appending.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.filling.mem
    }

    /// Hands the block being filled to the writer once it holds a block's
    /// worth.
    pub fn appended(&mut self) -> io::Result<()> {
        if self.filling.mem.len() < self.filling.start {
            // Only appending is allowed: the bytes before `start` pad the
            // block onto its boundary.
            return Err(io::Error::other("the trace buffer was cut below its start"));
        }
        if self.filling.len() >= BLOCK { self.pass_on() } else { Ok(()) }
    }

    /// Hands the block being filled to the writer and takes an empty one.
    fn pass_on(&mut self) -> io::Result<()> {
        let mut next = if self.unallocated > 0 {
            self.unallocated -= 1;
            Block::new(BLOCK + HEADROOM, self.filling.skew)
        } else {
            match self.empty.recv() {
                Ok(block) => block,
                Err(_) => return Err(self.writer_error()),
            }
        };
        // A direct write takes whole alignment units: the rest of the bytes
        // start the next block.
        let whole = self.filling.len() / ALIGN * ALIGN;
        next.mem.extend_from_slice(self.filling.bytes().get(whole..).unwrap_or_default());
        self.filling.mem.truncate(self.filling.start + whole);
        if !self.filling.in_place() {
            let mut moved = Block::new(whole, self.filling.skew);
            moved.mem.extend_from_slice(self.filling.bytes());
            self.filling = moved;
        }
        let block = std::mem::replace(&mut self.filling, next);
        let sent = self.full.as_ref().map(|full| full.send(block).is_ok());
        if sent == Some(true) { Ok(()) } else { Err(self.writer_error()) }
    }

    /// The writer stopped early: its error.
    fn writer_error(&mut self) -> io::Error {
        self.full = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the trace writer thread stopped"),
        }
    }

    /// Writes out what is left and hands the file back, written but not
    /// yet synced.
    pub fn finish(mut self) -> io::Result<File> {
        if self.filling.len() > 0 {
            let last = std::mem::replace(&mut self.filling, Block { mem: Vec::new(), start: 0, skew: 0 });
            let sent = self.full.as_ref().map(|full| full.send(last).is_ok());
            if sent != Some(true) {
                return Err(self.writer_error());
            }
        }
        self.full = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(done)) => done,
            _ => Err(io::Error::other("the trace writer thread stopped")),
        }
    }
}

impl Write for WriteBehind {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.filling.mem.extend_from_slice(bytes);
        self.appended()?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // Closing the channel ends the writer after the blocks it has.
        self.full = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: writes each block in turn and sends it back.
fn write_blocks(file: File, mode: Mode, full: Receiver<Block>, empty: SyncSender<Block>) -> io::Result<File> {
    let mut direct = mode.direct() && cache::bypass(&file, true).is_ok();
    let mut written = 0u64;
    for mut block in full {
        if direct && block.len() % ALIGN != 0 {
            // The tail: a direct write must end on a block boundary.
            cache::bypass(&file, false)?;
            direct = false;
        }
        let mut rest = block.bytes();
        while !rest.is_empty() {
            match (&file).write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if direct && cache::refused(&e) => {
                    cache::bypass(&file, false)?;
                    direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        if !direct {
            cache::start_write_back(&file, written);
        }
        written += block.len() as u64;
        block.clear();
        // The producer may be gone already; the block is then just freed.
        let _ = empty.send(block);
    }
    Ok(file)
}

#[cfg(target_os = "linux")]
mod cache {
    use std::fs::File;
    use std::io;

    use rustix::fs::OFlags;

    /// Turns `O_DIRECT` on or off for the open file.
    pub fn bypass(file: &File, on: bool) -> io::Result<()> {
        let flags = rustix::fs::fcntl_getfl(file)?;
        let flags = if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT };
        Ok(rustix::fs::fcntl_setfl(file, flags)?)
    }

    /// A direct write the filesystem or device will not take as it is
    /// (alignment, or no direct I/O at all): redo it through the cache.
    pub fn refused(e: &io::Error) -> bool {
        e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
    }

    /// Asks the kernel to start writing the file's dirty pages from `from`
    /// on, without waiting (`POSIX_FADV_DONTNEED` starts asynchronous
    /// write-back of the range, then drops pages that are already clean),
    /// so the final `fsync` waits for the tail only. Only a hint: a failure
    /// is ignored.
    pub fn start_write_back(file: &File, from: u64) {
        let _ = rustix::fs::fadvise(file, from, None, rustix::fs::Advice::DontNeed);
    }
}

#[cfg(not(target_os = "linux"))]
mod cache {
    use std::fs::File;
    use std::io;

    pub fn bypass(_: &File, _: bool) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub fn refused(_: &io::Error) -> bool {
        false
    }

    pub fn start_write_back(_: &File, _: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `total` bytes of a pattern in pieces of `piece` bytes, through
    /// `Write` or appended in place, and reads them back.
    fn round_trip(mode: Mode, total: usize, piece: usize) {
        for in_place in [false, true] {
            round_trip_by(mode, total, piece, in_place);
        }
    }

    fn round_trip_by(mode: Mode, total: usize, piece: usize, in_place: bool) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out");
        let file = File::create(&path).expect("create");
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let mut w = WriteBehind::new(file, mode).expect("writer");
        for chunk in data.chunks(piece) {
            if in_place {
                w.buffer().extend_from_slice(chunk);
                w.appended().expect("append");
            } else {
                w.write_all(chunk).expect("write");
            }
        }
        w.finish().expect("finish").sync_all().expect("sync");
        let back = std::fs::read(&path).expect("read");
        assert_eq!(back.len(), data.len());
        assert!(back == data, "bytes differ ({mode:?}, {total} bytes in pieces of {piece})");
    }

    #[test]
    fn every_byte_arrives_in_order_in_every_mode() {
        for mode in [Mode::Direct, Mode::Buffered, Mode::DirectMisaligned] {
            // Empty, shorter than one alignment unit, one block exactly,
            // and several blocks with a ragged tail (blocks recycled).
            round_trip(mode, 0, 1);
            round_trip(mode, 100, 7);
            round_trip(mode, BLOCK, 65_536);
            // Blocks end off the alignment unit (the rest carries over).
            round_trip(mode, BLOCKS * BLOCK * 2 + ALIGN + 17, 100_003);
            // A piece larger than a block and its headroom: the block's
            // memory moves and is put back on the boundary.
            round_trip(mode, 3 * (BLOCK + HEADROOM) + 5, BLOCK + HEADROOM + 4_099);
        }
    }

    #[test]
    fn a_buffer_cut_below_its_start_is_an_error_not_a_bad_write() {
        let dir = tempfile::tempdir().expect("dir");
        let file = File::create(dir.path().join("out")).expect("create");
        // Skewed, so the block has padding before its start whatever the
        // allocator's alignment.
        let mut w = WriteBehind::new(file, Mode::DirectMisaligned).expect("writer");
        w.buffer().clear();
        assert!(w.appended().is_err());
    }

    #[test]
    fn a_write_error_reaches_the_producer() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out");
        std::fs::write(&path, b"x").expect("seed");
        // Read-only: every write fails with EBADF.
        let file = File::open(&path).expect("open");
        let mut w = WriteBehind::new(file, Mode::Direct).expect("writer");
        let piece = vec![1u8; 1 << 20];
        let mut failed = false;
        for _ in 0..(BLOCKS + 2) * BLOCK / piece.len() {
            if w.write_all(&piece).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed || w.finish().is_err(), "the write error was lost");
    }
}
