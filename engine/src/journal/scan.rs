//! Reading journal segments kept for point-in-time recovery (`keep_journal`): the records
//! after a sequence number, from segment files in any folders, without opening them as a
//! journal (nothing is written, truncated or moved).

use std::path::{Path, PathBuf};

use super::frame::{self, Decoded};
use super::segment;
use crate::error::{Error, Result};

/// The largest segment file read (a journal segment is at most a few hundred MiB; anything
/// larger is not one of ours).
const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// What [`records_after`] found.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// The records `after + 1 ..= last`, in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Where reading stopped early, if it did: the segment and why (a torn or damaged tail).
    pub stopped: Option<String>,
}

/// The records with sequence numbers after `after` and up to `until` (every one when
/// `None`) in the segment files (`<first seq>.wal`) of `folders`, which must follow on from
/// `after` without a gap. A segment's tail that does not decode ends the scan there (it is
/// reported in [`Scanned::stopped`]); a gap in the sequence numbers is an error.
pub(crate) fn records_after(
    folders: &[PathBuf],
    after: u64,
    until: Option<u64>,
) -> Result<Scanned> {
    let mut segments: Vec<(u64, PathBuf)> = Vec::new();
    for folder in folders {
        let entries = std::fs::read_dir(folder)
            .map_err(|e| Error::io(format!("listing journal folder {}", folder.display()), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::io(format!("listing {}", folder.display()), e))?
                .path();
            if let Some(first) = segment::parse_name(&path)
                && !segments.iter().any(|(f, _)| *f == first)
            {
                segments.push((first, path));
            }
        }
    }
    segments.sort();
    let mut out = Scanned::default();
    let mut expected = after + 1;
    for (i, (first, path)) in segments.iter().enumerate() {
        // A segment ends where the next begins: skip those wholly at or before `after`.
        if segments
            .get(i + 1)
            .is_some_and(|(next, _)| *next <= expected)
        {
            continue;
        }
        if until.is_some_and(|u| *first > u) {
            break;
        }
        let bytes = read_segment(path)?;
        let mut offset = 0;
        loop {
            match frame::decode(&bytes, offset) {
                Decoded::Frame { seq, payload, next } => {
                    offset = next;
                    if seq < expected {
                        continue;
                    }
                    if seq > expected {
                        return Err(Error::invalid(format!(
                            "{}: the journal jumps from record {} to {seq}; records {expected} \
                             ..= {} are missing from the folders given",
                            path.display(),
                            expected - 1,
                            seq - 1
                        )));
                    }
                    if until.is_some_and(|u| seq > u) {
                        return Ok(out);
                    }
                    out.records.push((seq, payload.to_vec()));
                    expected += 1;
                }
                Decoded::End => break,
                Decoded::Invalid(why) | Decoded::Overrun(why) => {
                    out.stopped = Some(format!("{} at byte {offset}: {why}", path.display()));
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

fn read_segment(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| Error::io(format!("reading {shown}"), e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{shown} is not a regular file: a journal segment is one"
        )));
    }
    if meta.len() > MAX_SEGMENT_BYTES {
        return Err(Error::invalid(format!(
            "{shown} is {} bytes, larger than any journal segment",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| Error::io(format!("reading {shown}"), e))
}
