//! Atomic file output: everything is written to a temporary file in the
//! destination's directory and renamed over it only when complete, so a
//! reader never sees a half-written report. Large outputs (a replay's
//! trace) are handed to the kernel for write-back while they are written,
//! so the final `fsync` waits for the tail only, not the whole file.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written; it appears at its path only on [`AtomicFile::commit`].
/// Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    /// Bytes accepted so far, and how far write-back was last started.
    written: u64,
    flushed_to: u64,
}

/// Start write-back every this many bytes: large enough that the hint costs
/// nothing per record, small enough that a 1 GB trace leaves little for the
/// final `fsync`.
const WRITE_BACK_EVERY: u64 = 8 << 20;

impl AtomicFile {
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let file = File::create(&tmp)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            written: 0,
            flushed_to: 0,
        })
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(out) = self.out.take() {
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
        }
        fs::rename(&self.tmp, &self.path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(out) = &mut self.out else { return Err(io::Error::other("file already committed")) };
        let n = out.write(buf)?;
        self.written += n as u64;
        if self.written - self.flushed_to >= WRITE_BACK_EVERY {
            start_write_back(out.get_ref(), self.flushed_to);
            self.flushed_to = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Asks the kernel to start writing the file's dirty pages from `from` on,
/// without waiting (Linux: `POSIX_FADV_DONTNEED` starts asynchronous
/// write-back of the range, then drops pages that are already clean). Only
/// a hint: the data is made durable by the `fsync` in `commit`, so a
/// failure here is ignored.
#[cfg(target_os = "linux")]
fn start_write_back(file: &File, from: u64) {
    let _ = rustix::fs::fadvise(file, from, None, rustix::fs::Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_: &File, _: u64) {}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_appears_only_on_commit() {
        let dir = std::env::temp_dir().join(format!("rcv-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("a.json");
        let mut f = AtomicFile::create(&path).expect("create");
        f.write_all(b"{}").expect("write");
        assert!(!path.exists());
        f.commit().expect("commit");
        assert_eq!(fs::read(&path).expect("read"), b"{}");
        {
            let mut g = AtomicFile::create(&dir.join("b.json")).expect("create");
            g.write_all(b"x").expect("write");
        }
        assert!(!dir.join("b.json").exists());
        let leftovers = fs::read_dir(&dir).expect("ls").count();
        assert_eq!(leftovers, 1, "temporary files left behind");
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_file_past_the_write_back_step_keeps_every_byte() {
        let dir = std::env::temp_dir().join(format!("rcv-atomic-big-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("trace.ndjson");
        let chunk: Vec<u8> = (0..=255u8).cycle().take(100_003).collect();
        let mut f = AtomicFile::create(&path).expect("create");
        let rounds = (2 * WRITE_BACK_EVERY as usize) / chunk.len() + 1;
        for _ in 0..rounds {
            f.write_all(&chunk).expect("write");
        }
        assert!(f.flushed_to >= WRITE_BACK_EVERY, "write-back was started");
        f.commit().expect("commit");
        let bytes = fs::read(&path).expect("read");
        assert_eq!(bytes.len(), rounds * chunk.len());
        assert!(bytes.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
