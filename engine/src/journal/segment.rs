//! Segment files: their names, and writing zeros (preallocation, erasing a torn tail).

use std::path::{Path, PathBuf};

use super::io::{JournalFile, JournalIo};
use crate::error::{Error, Result};

/// The file name ending of segments.
const SUFFIX: &str = ".wal";

/// Zeros are written in chunks of this size.
const ZERO_CHUNK: usize = 1 << 20;

/// A segment's file name: its first seq, zero-padded to 20 digits, and `.wal`.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The largest sequence number a segment can start at: 2^63 - 1, so that counting records
/// on from any segment never overflows (a store committing a million transactions a second
/// reaches it in some 290,000 years).
pub(crate) const MAX_FIRST_SEQ: u64 = i64::MAX as u64;

/// The first seq a segment file name stands for; `None` for any other file (and for a name
/// past [`MAX_FIRST_SEQ`], which no journal reaches).
pub(crate) fn parse_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|seq| *seq <= MAX_FIRST_SEQ)
}

/// A segment on disk, as the journal tracks it.
#[derive(Debug)]
pub(crate) struct Segment {
    /// The seq in its name (its first record's, when it has records).
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
    /// Bytes of the file.
    pub(crate) size: u64,
}

/// The segment records are appended to: its file, where the data ends, and its size.
pub(crate) struct Active {
    pub(crate) file: Box<dyn JournalFile>,
    /// The end of the written frames, where the next group goes.
    pub(crate) end: u64,
    /// For a direct file: the bytes of the block `end` falls in, from its start up to `end`
    /// (a direct write rewrites that block whole, so it must carry them).
    pub(crate) tail: Vec<u8>,
}

/// Writes zeros over `from .. to` of a file (not synced).
pub(crate) fn write_zeros(file: &dyn JournalFile, from: u64, to: u64) -> std::io::Result<()> {
    let chunk = vec![0u8; ZERO_CHUNK.min(usize::try_from(to - from).unwrap_or(ZERO_CHUNK))];
    let mut at = from;
    while at < to {
        let n = chunk
            .len()
            .min(usize::try_from(to - at).unwrap_or(chunk.len()));
        file.write_at(at, &chunk[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Creates the segment `first_seq` in `dir`, `size` bytes of written zeros, synced, and the
/// folder synced, so that a crash after it returns finds the whole file.
pub(crate) fn create(
    io: &dyn JournalIo,
    dir: &Path,
    first_seq: u64,
    size: u64,
    direct: bool,
) -> Result<(Segment, Box<dyn JournalFile>)> {
    let path = dir.join(file_name(first_seq));
    let fail = |what: &str, e| Error::io(format!("journal segment {}: {what}", path.display()), e);
    let file = io.create(&path).map_err(|e| fail("create", e))?;
    write_zeros(file.as_ref(), 0, size).map_err(|e| fail("preallocate", e))?;
    file.sync_data().map_err(|e| fail("sync", e))?;
    io.sync_dir(dir)
        .map_err(|e| Error::io(format!("journal folder {}: sync", dir.display()), e))?;
    // Preallocated and synced: reopened for appending (directly, where the file system can).
    drop(file);
    let file = super::io::open_for_appends(io, &path, direct).map_err(|e| fail("open", e))?;
    let segment = Segment {
        first_seq,
        path,
        size,
    };
    Ok((segment, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_seqs_and_parse_back() {
        assert_eq!(file_name(42), "00000000000000000042.wal");
        assert_eq!(file_name(u64::MAX), "18446744073709551615.wal");
        assert!(file_name(9) < file_name(10));
        for seq in [0, 1, 42, MAX_FIRST_SEQ] {
            assert_eq!(parse_name(Path::new(&file_name(seq))), Some(seq));
        }
    }

    #[test]
    fn other_files_are_not_segments() {
        for name in [
            "42.wal",
            "0000000000000000004x.wal",
            "00000000000000000042.tmp",
            "99999999999999999999.wal", // past u64::MAX
            "18446744073709551615.wal", // u64::MAX: counting on from it overflows
            "09223372036854775808.wal", // 2^63, past MAX_FIRST_SEQ
            "+0000000000000000042.wal",
        ] {
            assert_eq!(parse_name(Path::new(name)), None, "{name}");
        }
        assert_eq!(
            parse_name(Path::new("09223372036854775807.wal")),
            Some(MAX_FIRST_SEQ)
        );
    }
}
