//! Atomic file output: everything is written to a temporary file in the
//! destination's directory and renamed over it only when complete, so a
//! reader never sees a half-written report. A large output (a replay's
//! trace) is written behind its producer by a thread of its own
//! (`write_behind.rs`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::write_behind::{Mode, WriteBehind};

/// A file being written; it appears at its path only on [`AtomicFile::commit`].
/// Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<Out>,
}

enum Out {
    Buffered(BufWriter<File>),
    Behind(WriteBehind),
}

impl AtomicFile {
    /// For an output of modest size, written through a buffer.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let (tmp, file) = temporary(path)?;
        let out = Out::Buffered(BufWriter::with_capacity(1 << 16, file));
        Ok(AtomicFile { path: path.to_path_buf(), tmp, out: Some(out) })
    }

    /// For a large output: written behind the producer, straight to the
    /// disk where the filesystem allows it (see `write_behind.rs`).
    pub fn create_large(path: &Path) -> io::Result<AtomicFile> {
        AtomicFile::create_behind(path, Mode::Direct)
    }

    fn create_behind(path: &Path, mode: Mode) -> io::Result<AtomicFile> {
        let (tmp, file) = temporary(path)?;
        // From here on, dropping `f` removes the temporary file.
        let mut f = AtomicFile { path: path.to_path_buf(), tmp, out: None };
        f.out = Some(Out::Behind(WriteBehind::new(file, mode)?));
        Ok(f)
    }

    /// The buffer of a file written behind ([`AtomicFile::create_large`]),
    /// for a producer that appends to it in place; call
    /// [`AtomicFile::appended`] after appending. `None` for other files.
    pub fn buffer(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.out {
            Some(Out::Behind(out)) => Some(out.buffer()),
            _ => None,
        }
    }

    /// Bytes were appended to [`AtomicFile::buffer`]: a full block goes to
    /// the writer.
    pub fn appended(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(Out::Behind(out)) => out.appended(),
            _ => Ok(()),
        }
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> io::Result<()> {
        let file = match self.out.take() {
            Some(Out::Buffered(out)) => out.into_inner().map_err(io::IntoInnerError::into_error)?,
            Some(Out::Behind(out)) => out.finish()?,
            None => return Err(io::Error::other("file already committed")),
        };
        file.sync_all()?;
        fs::rename(&self.tmp, &self.path)
    }
}

/// Creates the temporary file beside `path`.
fn temporary(path: &Path) -> io::Result<(PathBuf, File)> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let file = File::create(&tmp)?;
    Ok((tmp, file))
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            Some(Out::Buffered(out)) => out.write(buf),
            Some(Out::Behind(out)) => out.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(Out::Buffered(out)) => out.flush(),
            Some(Out::Behind(out)) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            // Stop the writer before the file goes.
            drop(out);
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

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
    fn a_large_file_appears_whole_on_commit_and_not_before() {
        for mode in [Mode::Direct, Mode::Buffered] {
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("trace.ndjson");
            let chunk: Vec<u8> = (0..=255u8).cycle().take(100_003).collect();
            let mut f = AtomicFile::create_behind(&path, mode).expect("create");
            let rounds = (20 << 20) / chunk.len() + 1;
            for _ in 0..rounds {
                f.write_all(&chunk).expect("write");
            }
            assert!(!path.exists());
            f.commit().expect("commit");
            let bytes = fs::read(&path).expect("read");
            assert_eq!(bytes.len(), rounds * chunk.len());
            assert!(bytes.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
            {
                let mut g = AtomicFile::create_large(&dir.path().join("dropped")).expect("create");
                g.write_all(&chunk).expect("write");
            }
            let names: Vec<_> = fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
            assert_eq!(names, vec![std::ffi::OsString::from("trace.ndjson")], "{mode:?}");
        }
    }
}
