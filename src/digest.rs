//! Digests in the tagged text form (`<algorithm>:<hex>`) that reports,
//! traces and hashes carry. The policy hash and prompt digests are SHA-256:
//! short texts, quoted on every trace line. File digests in a run's snapshot
//! are BLAKE3: a replay hashes every input byte, and BLAKE3 does that in
//! about a fifth of SHA-256's time (docs/performance.md).

use std::fs;
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// `sha256:` followed by the lower-case hex SHA-256 of `bytes`.
pub fn sha256_tagged(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    push_hex(&mut out, &Sha256::digest(bytes));
    out
}

/// A streaming BLAKE3 digest of a file's bytes, fed as they are read.
#[derive(Debug, Clone, Default)]
pub struct FileDigest(blake3::Hasher);

impl FileDigest {
    pub fn new() -> FileDigest {
        FileDigest::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// `blake3:` followed by the lower-case hex digest of the bytes so far.
    pub fn tagged(&self) -> String {
        let mut out = String::with_capacity(7 + 64);
        out.push_str("blake3:");
        push_hex(&mut out, self.0.finalize().as_bytes());
        out
    }

    /// The digest of `bytes` alone.
    pub fn of(bytes: &[u8]) -> String {
        let mut d = FileDigest::new();
        d.update(bytes);
        d.tagged()
    }

    /// The digest of the file at `path` (read in 64 KiB pieces).
    pub fn of_file(path: &Path) -> io::Result<String> {
        let mut d = FileDigest::new();
        d.0.update_reader(fs::File::open(path)?)?;
        Ok(d.tagged())
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn tagged_digest_matches_the_known_sha256_of_abc() {
        assert_eq!(sha256_tagged(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn file_digest_matches_the_known_blake3_of_abc_however_it_is_fed() {
        let abc = "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
        assert_eq!(FileDigest::of(b"abc"), abc);
        let mut d = FileDigest::new();
        d.update(b"a");
        d.update(b"");
        d.update(b"bc");
        assert_eq!(d.tagged(), abc);
    }

    #[test]
    fn file_digest_of_a_file_equals_that_of_its_bytes() {
        let dir = std::env::temp_dir().join(format!("rcv-digest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.bin");
        // Larger than one 64 KiB read, so the digest joins pieces.
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        let from_file = FileDigest::of_file(&path);
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(from_file.unwrap(), FileDigest::of(&bytes));
        assert!(FileDigest::of_file(&dir.join("missing")).is_err());
    }
}
