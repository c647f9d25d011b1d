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
    let segments = segments_in(folders, false)?;
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
                        return Err(gap(path, expected, seq));
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

/// The metadata of the segment file at `path`, which must be a regular file (not a link, a
/// FIFO or a device, which could point anywhere or block a read forever).
fn segment_meta(path: &Path) -> Result<std::fs::Metadata> {
    let shown = path.display();
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| Error::io(format!("reading {shown}"), e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{shown} is not a regular file: a journal segment is one"
        )));
    }
    Ok(meta)
}

/// The error of a journal that jumps from `expected - 1` to `seq` in `path`.
fn gap(path: &Path, expected: u64, seq: u64) -> Error {
    Error::invalid(format!(
        "{}: the journal jumps from record {} to {seq}; records {expected} ..= {} are missing \
         from the folders given",
        path.display(),
        expected - 1,
        seq - 1
    ))
}

fn read_segment(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta = segment_meta(path)?;
    if meta.len() > MAX_SEGMENT_BYTES {
        return Err(Error::invalid(format!(
            "{shown} is {} bytes, larger than any journal segment",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| Error::io(format!("reading {shown}"), e))
}

/// The segment files (`<first seq>.wal`) in `folders`, by first seq; a segment found in
/// two folders (being moved by a checkpoint) is listed once. A folder that does not exist
/// is an error, unless `missing_ok`.
pub(crate) fn segments_in(folders: &[PathBuf], missing_ok: bool) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments: Vec<(u64, PathBuf)> = Vec::new();
    for folder in folders {
        if missing_ok && !folder.exists() {
            continue;
        }
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
    Ok(segments)
}

/// Where [`read_from`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At the end of the written frames: the segment's zeros, or the end of the file.
    End,
    /// At bytes that are not a whole frame with its checksum: a write in progress, a torn
    /// write, or damage. Why, in words.
    Undecoded(String),
    /// The byte budget was spent; more frames may follow.
    Budget,
}

/// Bytes read from a segment at a time by [`read_from`].
const READ_CHUNK: usize = 1 << 20;

/// Reads the frames of the segment at `path` from byte `offset` (the start of a frame),
/// appending those with seq `expected` and on to `out` (frames before `expected` are
/// skipped; a later one is a gap, an error) until about `budget` payload bytes are taken.
/// Reads the file a chunk at a time, so a segment's preallocated zeros are not read past
/// the first. Returns the offset after the last frame read, and why it stopped there.
pub(crate) fn read_from(
    path: &Path,
    mut offset: u64,
    expected: &mut u64,
    out: &mut Vec<(u64, Vec<u8>)>,
    budget: usize,
) -> Result<(u64, Stop)> {
    use std::os::unix::fs::FileExt;
    let shown = path.display();
    segment_meta(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {shown}"), e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {shown}"), e))?
        .len()
        .min(MAX_SEGMENT_BYTES);
    let mut taken = 0usize;
    let mut want = READ_CHUNK;
    loop {
        if taken >= budget {
            return Ok((offset, Stop::Budget));
        }
        let end = len.min(offset.saturating_add(want as u64));
        let mut buf = vec![0u8; usize::try_from(end.saturating_sub(offset)).unwrap_or(0)];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(format!("reading {shown} at byte {offset}"), e))?;
        let at_eof = end == len;
        let mut pos = 0usize;
        let stop = loop {
            if taken >= budget {
                break None;
            }
            match frame::decode(&buf, pos) {
                Decoded::Frame { seq, payload, next } => {
                    if seq > *expected {
                        return Err(gap(path, *expected, seq));
                    }
                    if seq == *expected {
                        out.push((seq, payload.to_vec()));
                        *expected += 1;
                        taken += payload.len();
                    }
                    pos = next;
                }
                // Fewer than four bytes left in the chunk: read on, unless the file ends.
                Decoded::End if !at_eof && buf.len() - pos < 4 => break None,
                Decoded::End => break Some(Stop::End),
                Decoded::Overrun(_) if !at_eof => break None,
                Decoded::Overrun(why) | Decoded::Invalid(why) => {
                    break Some(Stop::Undecoded(format!(
                        "{shown} at byte {}: {why}",
                        offset + pos as u64
                    )));
                }
            }
        };
        if let Some(stop) = stop {
            return Ok((offset + pos as u64, stop));
        }
        if pos == 0 {
            // Not one whole frame in the chunk: read enough for the frame at `offset`.
            let need = buf
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .unwrap_or(0)
                .saturating_add(frame::HEADER_LEN);
            want = want.max(need).saturating_mul(2).min(2 * super::MAX_PAYLOAD);
        } else {
            want = READ_CHUNK;
        }
        offset += pos as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::{READ_CHUNK, Stop, read_from};
    use crate::journal::frame;

    /// A segment file of frames `first ..` with these payload sizes, then `zeros` zero
    /// bytes; returns its path (in `dir`) and the payloads.
    fn segment(
        dir: &std::path::Path,
        first: u64,
        sizes: &[usize],
        zeros: usize,
    ) -> (std::path::PathBuf, Vec<Vec<u8>>) {
        let mut bytes = Vec::new();
        let mut payloads = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8 | 1).collect();
            frame::encode(&mut bytes, first + i as u64, &payload);
            payloads.push(payload);
        }
        bytes.resize(bytes.len() + zeros, 0);
        let path = dir.join(format!("{first:020}.wal"));
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("writing a segment: {e}"));
        (path, payloads)
    }

    #[test]
    fn frames_across_chunk_boundaries_are_read_once_in_order_whatever_the_budget()
    -> crate::Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        // Small frames, frames larger than a chunk, and sizes that end frames just before,
        // at and after the chunk boundaries.
        let mut sizes = vec![100; 3000];
        sizes.extend([READ_CHUNK + 5, 7, 3 * READ_CHUNK, 1, READ_CHUNK - 16, 2, 3]);
        sizes.extend((0..500).map(|i| 1 + (i * 7919) % 20_000));
        let (path, payloads) = segment(dir.path(), 10, &sizes, 3 * READ_CHUNK + 3);
        for budget in [1, 5000, READ_CHUNK, usize::MAX] {
            let mut expected = 10;
            let mut offset = 0;
            let mut out = Vec::new();
            loop {
                let (next, stop) = read_from(&path, offset, &mut expected, &mut out, budget)?;
                assert!(next >= offset);
                offset = next;
                match stop {
                    Stop::Budget => continue,
                    Stop::End => break,
                    Stop::Undecoded(why) => panic!("budget {budget}: {why}"),
                }
            }
            assert_eq!(out.len(), payloads.len(), "budget {budget}");
            for (i, (seq, p)) in out.iter().enumerate() {
                assert_eq!(*seq, 10 + i as u64);
                assert!(*p == payloads[i], "budget {budget}: record {seq}");
            }
            assert_eq!(expected, 10 + payloads.len() as u64);
            // Read again from the end: nothing more.
            let (again, stop) = read_from(&path, offset, &mut expected, &mut out, budget)?;
            assert_eq!((again, stop), (offset, Stop::End));
        }
        Ok(())
    }

    #[test]
    fn earlier_records_are_skipped_a_gap_is_an_error_and_a_partial_frame_waits() -> crate::Result<()>
    {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let (path, _) = segment(dir.path(), 5, &[10, 20, 30, 40], 100);
        // From the start with record 7 next: 5 and 6 are skipped.
        let (mut expected, mut out) = (7, Vec::new());
        let (_, stop) = read_from(&path, 0, &mut expected, &mut out, usize::MAX)?;
        assert_eq!(stop, Stop::End);
        assert_eq!(out.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [7, 8]);
        // Record 3 next, but the segment begins at 5: a gap.
        let (mut expected, mut out) = (3, Vec::new());
        let err = read_from(&path, 0, &mut expected, &mut out, usize::MAX)
            .expect_err("records 3 and 4 are missing");
        assert!(
            err.to_string().contains("records 3 ..= 4 are missing"),
            "{err}"
        );
        // A frame being written after the last whole one: the read stops before it.
        let mut bytes = std::fs::read(&path).map_err(|e| crate::Error::io("read", e))?;
        let end = 4 * frame::HEADER_LEN + 100;
        bytes[end..end + 6].copy_from_slice(&[50, 0, 0, 0, 9, 9]);
        std::fs::write(&path, &bytes).map_err(|e| crate::Error::io("write", e))?;
        let (mut expected, mut out) = (5, Vec::new());
        let (at, stop) = read_from(&path, 0, &mut expected, &mut out, usize::MAX)?;
        assert_eq!(at, end as u64);
        assert!(matches!(stop, Stop::Undecoded(_)), "{stop:?}");
        assert_eq!(out.len(), 4);
        Ok(())
    }
}
