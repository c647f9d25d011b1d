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
    /// The records `after + 1 ..= last`, in order ([`records_after`]; [`replay_after`] hands
    /// them to its caller instead and leaves this empty).
    pub records: Vec<(u64, Vec<u8>)>,
    /// The last record found: its sequence number and commit time, if it carries one.
    pub last: Option<(u64, Option<u64>)>,
    /// Where reading stopped early, if it did: the segment and why (a torn or damaged tail).
    pub stopped: Option<String>,
    /// The first record after the time bound, when the scan had one and met such a record:
    /// its sequence number and commit time.
    pub passed: Option<(u64, u64)>,
}

/// Where a scan of the journal stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Until {
    /// At the end of what the folders hold.
    #[default]
    End,
    /// After this sequence number.
    Seq(u64),
    /// Before the first record written after this time (ns since the Unix epoch).
    Time(u64),
}

/// Payload bytes a point-in-time restore replays at a time (see [`replay_after`]).
pub(crate) const REPLAY_BATCH_BYTES: usize = 64 << 20;

/// The records with sequence numbers after `after`, up to `until`, in the segment files
/// (`<first seq>.wal`) of `folders`, all in memory: [`replay_after`] collected.
#[cfg(test)]
pub(crate) fn records_after(folders: &[PathBuf], after: u64, until: Until) -> Result<Scanned> {
    let mut records = Vec::new();
    let mut scanned = replay_after(folders, after, until, usize::MAX, &mut |batch| {
        records.extend(batch);
        Ok(())
    })?;
    scanned.records = records;
    Ok(scanned)
}

/// Hands `each` the records with sequence numbers after `after`, up to `until`, in the
/// segment files (`<first seq>.wal`) of `folders`, in order, in batches of about
/// `batch_bytes` of payload (so a long journal is never all in memory). The segments must
/// follow on from `after` without a gap. The newest segment's tail that does not decode
/// ends the scan there (it is reported in [`Scanned::stopped`]); the same in an older
/// segment, a gap in the sequence numbers, a record out of sequence and (when `until` is a
/// time) a record without a commit time are errors, which may come after `each` took
/// earlier batches.
pub(crate) fn replay_after(
    folders: &[PathBuf],
    after: u64,
    until: Until,
    batch_bytes: usize,
    each: &mut dyn FnMut(Vec<(u64, Vec<u8>)>) -> Result<()>,
) -> Result<Scanned> {
    let mut out = Scanned::default();
    scan_into(folders, after, until, batch_bytes, &mut out, each)?;
    if !out.records.is_empty() {
        each(std::mem::take(&mut out.records))?;
    }
    Ok(out)
}

/// [`replay_after`] but for the last batch, left in `out.records`.
fn scan_into(
    folders: &[PathBuf],
    after: u64,
    until: Until,
    batch_bytes: usize,
    out: &mut Scanned,
    each: &mut dyn FnMut(Vec<(u64, Vec<u8>)>) -> Result<()>,
) -> Result<()> {
    let segments = segments_in(folders, false)?;
    let mut batched = 0usize;
    let mut expected = after + 1;
    for (i, (first, path)) in segments.iter().enumerate() {
        // A segment ends where the next begins: skip those wholly at or before `after`. The
        // next one must start with the record its name says (one frame header read), so an
        // empty or stray file does not hide the records before it.
        if segments
            .get(i + 1)
            .is_some_and(|(next, path)| *next <= expected && starts_with(path, *next))
        {
            continue;
        }
        if let Until::Seq(u) = until
            && *first > u
        {
            break;
        }
        let bytes = read_segment(path)?;
        let mut offset = 0;
        // The seq the segment's next frame must have: its name's, then one more each frame.
        let mut in_order = *first;
        loop {
            match frame::decode(&bytes, offset) {
                Decoded::Frame { seq, payload, next } => {
                    if seq != in_order {
                        return Err(Error::corruption(format!(
                            "{} at byte {offset}: journal record {seq} where {in_order} should \
                             be (a record out of sequence, or a segment named for another)",
                            path.display()
                        )));
                    }
                    in_order += 1;
                    offset = next;
                    if seq < expected {
                        continue;
                    }
                    if seq > expected {
                        return Err(gap(path, expected, seq));
                    }
                    match until {
                        Until::Seq(u) if seq > u => return Ok(()),
                        Until::Time(t) => match crate::state::record::time_of(payload) {
                            Some(at) if at > t => {
                                out.passed = Some((seq, at));
                                return Ok(());
                            }
                            Some(_) => {}
                            None => {
                                return Err(Error::invalid(format!(
                                    "{}: journal record {seq} carries no commit time (it was \
                                     written before commit times were kept): restore to a \
                                     transaction number instead",
                                    path.display()
                                )));
                            }
                        },
                        _ => {}
                    }
                    out.last = Some((seq, crate::state::record::time_of(payload)));
                    out.records.push((seq, payload.to_vec()));
                    expected += 1;
                    batched += payload.len();
                    if batched >= batch_bytes {
                        each(std::mem::take(&mut out.records))?;
                        batched = 0;
                    }
                }
                Decoded::End => break,
                Decoded::Invalid(why) | Decoded::Overrun(why) => {
                    let at = format!("{} at byte {offset}: {why}", path.display());
                    // Only the journal's newest segment can end in a torn write; damage with
                    // segments after it would end the replay short of records it holds.
                    if let Some((_, later)) = segments.get(i + 1) {
                        return Err(Error::corruption(format!(
                            "{at}, and {} follows: the journal is damaged before its end, so \
                             the records after the damage cannot be replayed",
                            later.display()
                        )));
                    }
                    out.stopped = Some(at);
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Whether the segment file at `path` begins with a frame header for record `seq` (only the
/// header is read; its checksum is checked when the frame is).
pub(crate) fn starts_with(path: &Path, seq: u64) -> bool {
    use std::io::Read;
    let mut header = [0u8; frame::HEADER_LEN];
    let read = segment_meta(path).is_ok()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut header))
            .is_ok();
    read && header[..4] != [0; 4] && header[8..16] == seq.to_le_bytes()
}

/// One segment file as [`summarize`] read it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SegmentSummary {
    /// The file.
    pub path: PathBuf,
    /// The sequence number in its name: its first record's.
    pub first_seq: u64,
    /// Whole records read from it.
    pub records: u64,
    /// The last of them.
    pub last_seq: Option<u64>,
    /// The commit time of its first record that has one (ns since the Unix epoch).
    pub first_commit_ns: Option<u64>,
    /// The commit time of its last record that has one.
    pub last_commit_ns: Option<u64>,
    /// Records without a commit time (written before commit times were kept).
    pub untimed: u64,
    /// The file's size.
    pub bytes: u64,
    /// Bytes its records take; the rest is preallocated zeros.
    pub used: u64,
    /// What ended the reading before the zeros, if anything did: a torn or damaged tail
    /// (in a live journal, recovery cuts it at the next open), a record out of sequence.
    pub problem: Option<String>,
    /// The problem is bytes that are not a whole frame: what a torn write leaves at the end
    /// of the journal's newest segment (and a write in progress, read while it is made).
    /// Anywhere else, and any other problem, is damage.
    pub undecoded_tail: bool,
}

/// Reads every segment file (`<first seq>.wal`) of `folders` (a folder that does not exist
/// is skipped) and summarizes each: its records' sequence numbers and commit times, and
/// anything that ended the reading early. Nothing is written: the journal of a store that
/// is running can be read, and its newest segment shows the records written so far.
pub fn summarize(folders: &[PathBuf]) -> Result<Vec<SegmentSummary>> {
    let mut out = Vec::new();
    for (first, path) in segments_in(folders, true)? {
        out.push(summarize_segment(first, path)?);
    }
    // Each segment starts where the one before it (with records) ended, and only the last
    // one may hold none.
    let mut prev_last: Option<u64> = None;
    let count = out.len();
    for (i, s) in out.iter_mut().enumerate() {
        if s.problem.is_none()
            && let Some(prev) = prev_last
        {
            if s.first_seq > prev + 1 {
                s.problem = Some(format!(
                    "records {} ..= {} are not in the folders",
                    prev + 1,
                    s.first_seq - 1
                ));
            } else if s.first_seq <= prev {
                s.problem = Some(format!(
                    "named for record {}, which the segment before it holds",
                    s.first_seq
                ));
            }
        }
        if s.problem.is_none() && s.records == 0 && i + 1 < count {
            s.problem = Some("holds no records but is not the last segment".to_owned());
        }
        if s.last_seq.is_some() {
            prev_last = s.last_seq;
        }
    }
    Ok(out)
}

/// Reads the segment file at `path`, named for its first record `first`, and summarizes it.
pub(crate) fn summarize_segment(first: u64, path: PathBuf) -> Result<SegmentSummary> {
    let bytes = read_segment(&path)?;
    Ok(summarize_bytes(path, first, &bytes))
}

/// Summarizes the bytes of a segment file (`path` names it in the summary) whose first record
/// must be `first`: every frame is checked (length, checksum, sequence number) and every
/// record's body decoded, up to the first that fails, which is the summary's `problem`.
pub fn summarize_bytes(path: PathBuf, first: u64, bytes: &[u8]) -> SegmentSummary {
    let mut s = SegmentSummary {
        path,
        first_seq: first,
        records: 0,
        last_seq: None,
        first_commit_ns: None,
        last_commit_ns: None,
        untimed: 0,
        bytes: bytes.len() as u64,
        used: 0,
        problem: None,
        undecoded_tail: false,
    };
    let mut offset = 0;
    loop {
        match frame::decode(bytes, offset) {
            Decoded::Frame { seq, payload, next } => {
                let expected = s.last_seq.map_or(first, |l| l + 1);
                if seq != expected {
                    s.problem = Some(format!(
                        "at byte {offset}: record {seq} where {expected} should be"
                    ));
                    break;
                }
                match crate::state::record::decode(seq, payload) {
                    Ok((Some(t), _)) => {
                        s.first_commit_ns.get_or_insert(t);
                        s.last_commit_ns = Some(t);
                    }
                    Ok((None, _)) => s.untimed += 1,
                    Err(e) => {
                        s.problem = Some(format!("at byte {offset}: {}", e.message()));
                        break;
                    }
                }
                s.records += 1;
                s.last_seq = Some(seq);
                offset = next;
                s.used = next as u64;
            }
            Decoded::End => {
                if let Some(at) = bytes[offset.min(bytes.len())..]
                    .iter()
                    .position(|b| *b != 0)
                {
                    s.problem = Some(format!(
                        "non-zero bytes at byte {} after the end of the records",
                        offset + at
                    ));
                    s.undecoded_tail = no_later_frame(bytes, offset, &s, first);
                }
                break;
            }
            Decoded::Invalid(why) => {
                s.problem = Some(format!("at byte {offset}: {why}"));
                s.undecoded_tail = no_later_frame(bytes, offset, &s, first);
                break;
            }
            // Segments are preallocated before anything is written in them, and a frame's
            // length is written whole: no write, torn or in progress, leaves a frame that
            // cannot fit. The file was cut or overwritten.
            Decoded::Overrun(why) => {
                s.problem = Some(format!(
                    "at byte {offset}: {why} (no write leaves that: the file was cut or \
                     overwritten)"
                ));
                break;
            }
        }
    }
    s
}

/// Whether no good frame of a later record follows the bytes at `offset` that do not
/// decode: only then can they be a torn write or a write in progress.
fn no_later_frame(bytes: &[u8], offset: usize, s: &SegmentSummary, first: u64) -> bool {
    let expected = s.last_seq.map_or(first, |l| l.saturating_add(1));
    matches!(frame::find_later_frame(bytes, offset, expected), Ok(None))
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

/// Whether a good frame for a record after `expected` lies past byte `offset` of the
/// segment at `path`, where reading stopped at bytes that are not a whole frame: then those
/// bytes are damage, not a write in progress or a torn write (which only ever end the
/// data). Returns that frame's offset and seq. A search that gives up (see
/// [`frame::find_later_frame`]) finds none.
pub(crate) fn later_frame_after(
    path: &Path,
    offset: u64,
    expected: u64,
) -> Result<Option<(u64, u64)>> {
    let bytes = read_segment(path)?;
    let from = usize::try_from(offset).unwrap_or(usize::MAX);
    if from >= bytes.len() {
        return Ok(None);
    }
    Ok(frame::find_later_frame(&bytes, from, expected)
        .ok()
        .flatten()
        .map(|(at, seq)| (at as u64, seq)))
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
    let mut seen = std::collections::HashSet::new();
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
                && seen.insert(first)
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
    // The seq of the frame before the next one: the one before the segment's first (its
    // name's) at the start, the last one read when reading on from `offset`. Frames go up
    // one at a time; any other step is damage, never a record to skip.
    let mut prev = if offset == 0 {
        segment::parse_name(path).and_then(|first| first.checked_sub(1))
    } else {
        expected.checked_sub(1)
    };
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
                    if let Some(p) = prev
                        && Some(seq) != p.checked_add(1)
                    {
                        return Err(Error::corruption(format!(
                            "{shown} at byte {}: journal record {seq} where {} should be (a \
                             record out of sequence, or a segment named for another)",
                            offset + pos as u64,
                            p.saturating_add(1)
                        )));
                    }
                    prev = Some(seq);
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
                // A frame that may end past the chunk: read on, unless the file ends or its
                // length is over the maximum (no read would ever hold it).
                Decoded::Overrun(_)
                    if !at_eof
                        && buf.get(pos..pos + 4).is_none_or(|b| {
                            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
                                <= super::MAX_PAYLOAD
                        }) =>
                {
                    break None;
                }
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

    /// A segment file of frames `first ..` with these bodies, then 64 zero bytes.
    fn segment_of(dir: &std::path::Path, first: u64, bodies: &[Vec<u8>]) -> std::path::PathBuf {
        let mut bytes = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            frame::encode(&mut bytes, first + i as u64, body);
        }
        bytes.resize(bytes.len() + 64, 0);
        let path = dir.join(format!("{first:020}.wal"));
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("writing a segment: {e}"));
        path
    }

    use crate::state::record::timed_empty as timed;

    #[test]
    fn a_time_bound_stops_before_the_first_later_record_and_refuses_untimed_ones()
    -> crate::Result<()> {
        use super::{Until, records_after, summarize};
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let folders = vec![dir.path().to_path_buf()];
        // Records 1 ..= 3 in one segment, 4 ..= 5 in the next; two share a group's time.
        segment_of(dir.path(), 1, &[timed(100), timed(200), timed(200)]);
        segment_of(dir.path(), 4, &[timed(300), timed(400)]);
        /// The sequence numbers a scan returned, and the record it stopped before.
        type Seqs = (Vec<u64>, Option<(u64, u64)>);
        let seqs = |until| -> crate::Result<Seqs> {
            let s = records_after(&folders, 0, until)?;
            Ok((s.records.iter().map(|(seq, _)| *seq).collect(), s.passed))
        };
        assert_eq!(seqs(Until::Time(200))?, (vec![1, 2, 3], Some((4, 300))));
        assert_eq!(seqs(Until::Time(299))?, (vec![1, 2, 3], Some((4, 300))));
        assert_eq!(seqs(Until::Time(50))?, (vec![], Some((1, 100))));
        assert_eq!(seqs(Until::Time(400))?, (vec![1, 2, 3, 4, 5], None));
        assert_eq!(seqs(Until::Seq(4))?, (vec![1, 2, 3, 4], None));
        assert_eq!(
            records_after(&folders, 2, Until::Time(300))?
                .records
                .iter()
                .map(|(seq, _)| *seq)
                .collect::<Vec<_>>(),
            vec![3, 4]
        );

        let sums = summarize(&folders)?;
        assert_eq!(sums.len(), 2);
        assert_eq!(
            (sums[0].first_seq, sums[0].records, sums[0].last_seq),
            (1, 3, Some(3))
        );
        assert_eq!(
            (sums[0].first_commit_ns, sums[0].last_commit_ns),
            (Some(100), Some(200))
        );
        assert_eq!(
            (sums[1].first_commit_ns, sums[1].last_commit_ns),
            (Some(300), Some(400))
        );
        assert!(sums.iter().all(|s| s.problem.is_none() && s.untimed == 0));
        assert_eq!(sums[0].used + 64, sums[0].bytes);

        // A record written before commit times were kept (a bare postcard vector): a time
        // bound cannot place it, a sequence bound can.
        let later = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let folders = vec![later.path().to_path_buf()];
        segment_of(
            later.path(),
            1,
            &[timed(100), vec![0x01, 3, 1, 7, 0], timed(300)],
        );
        let Err(err) = records_after(&folders, 0, Until::Time(500)) else {
            panic!("an untimed record was placed in time");
        };
        assert!(
            err.to_string().contains("record 2 carries no commit time"),
            "{err}"
        );
        assert_eq!(records_after(&folders, 0, Until::End)?.records.len(), 3);
        assert_eq!(summarize(&folders)?[0].untimed, 1);

        // A record whose frame holds but whose body does not decode ends the summary there.
        let undecodable = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        segment_of(
            undecodable.path(),
            1,
            &[timed(1), vec![0x01, 0x02], timed(3)],
        );
        let sums = summarize(&[undecodable.path().to_path_buf()])?;
        assert_eq!((sums[0].records, sums[0].last_seq), (1, Some(1)));
        let problem = sums[0].problem.as_deref().unwrap_or_default();
        assert!(problem.contains("record 2 does not decode"), "{problem}");

        // Damage before the last segment, a record out of sequence, a segment named for
        // another: errors, not a short replay.
        let damaged = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let first = segment_of(damaged.path(), 1, &[timed(1), timed(2), timed(3)]);
        segment_of(damaged.path(), 4, &[timed(4)]);
        let mut bytes = std::fs::read(&first).map_err(|e| crate::Error::io("read", e))?;
        bytes[40] ^= 0x10;
        std::fs::write(&first, &bytes).map_err(|e| crate::Error::io("write", e))?;
        let duplicated = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        segment_of(duplicated.path(), 1, &[timed(1), timed(2)]);
        let mut dup = Vec::new();
        frame::encode(&mut dup, 1, &timed(1));
        frame::encode(&mut dup, 2, &timed(2));
        frame::encode(&mut dup, 2, &timed(9));
        std::fs::write(duplicated.path().join(format!("{:020}.wal", 1)), &dup)
            .map_err(|e| crate::Error::io("write", e))?;
        let misnamed = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let mut wrong = Vec::new();
        frame::encode(&mut wrong, 7, &timed(7));
        std::fs::write(misnamed.path().join(format!("{:020}.wal", 1)), &wrong)
            .map_err(|e| crate::Error::io("write", e))?;
        for (dir, says) in [
            (&damaged, "damaged before its end"),
            (&duplicated, "record 2 where 3 should be"),
            (&misnamed, "record 7 where 1 should be"),
        ] {
            let Err(e) = records_after(&[dir.path().to_path_buf()], 0, Until::End) else {
                panic!("{says}: replayed");
            };
            assert!(e.to_string().contains(says), "{e}");
        }
        // An empty segment between two, or one named inside the one before: listed as such.
        let odd = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        segment_of(odd.path(), 1, &[timed(1), timed(2), timed(3)]);
        std::fs::write(odd.path().join(format!("{:020}.wal", 2)), b"")
            .map_err(|e| crate::Error::io("write", e))?;
        segment_of(odd.path(), 4, &[timed(4)]);
        let sums = summarize(&[odd.path().to_path_buf()])?;
        assert_eq!(
            sums[1].problem.as_deref(),
            Some("named for record 2, which the segment before it holds")
        );
        assert!(sums[2].problem.is_none());
        // The stray file does not hide record 3 from a replay after 2.
        let replayed = records_after(&[odd.path().to_path_buf()], 2, Until::End)?;
        assert_eq!(
            replayed
                .records
                .iter()
                .map(|(seq, _)| *seq)
                .collect::<Vec<_>>(),
            vec![3, 4]
        );
        std::fs::remove_file(odd.path().join(format!("{:020}.wal", 2)))
            .map_err(|e| crate::Error::io("remove", e))?;
        std::fs::write(odd.path().join(format!("{:020}.wal", 5)), b"")
            .map_err(|e| crate::Error::io("write", e))?;
        segment_of(odd.path(), 6, &[timed(6)]);
        let sums = summarize(&[odd.path().to_path_buf()])?;
        assert_eq!(
            sums[2].problem.as_deref(),
            Some("holds no records but is not the last segment")
        );

        // Handed over in batches of about the given bytes, every record once, in order.
        let many = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let bodies: Vec<Vec<u8>> = (1..=40).map(timed).collect();
        segment_of(many.path(), 1, &bodies[..25]);
        segment_of(many.path(), 26, &bodies[25..]);
        let mut batches = Vec::new();
        let body_len = bodies[0].len();
        let scanned = super::replay_after(
            &[many.path().to_path_buf()],
            3,
            Until::Time(38),
            4 * body_len,
            &mut |batch| {
                batches.push(batch.iter().map(|(seq, _)| *seq).collect::<Vec<_>>());
                Ok(())
            },
        )?;
        assert!(
            batches.iter().all(|b| !b.is_empty() && b.len() <= 4),
            "{batches:?}"
        );
        assert_eq!(batches.concat(), (4..=38).collect::<Vec<u64>>());
        assert_eq!(scanned.last, Some((38, Some(38))));
        assert_eq!(scanned.passed, Some((39, 39)));
        assert!(scanned.records.is_empty());

        // A missing segment between two: the summary names the records that are not there.
        let gapped = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        segment_of(gapped.path(), 1, &[timed(1), timed(2)]);
        segment_of(gapped.path(), 6, &[timed(6)]);
        let sums = summarize(&[gapped.path().to_path_buf()])?;
        assert_eq!(
            sums[1].problem.as_deref(),
            Some("records 3 ..= 5 are not in the folders")
        );
        Ok(())
    }

    /// Bytes that do not decode in a segment are a torn write (or one in progress) only
    /// when nothing good follows them: a later good frame makes them damage, and so does a
    /// frame that runs past the end of the file (segments are preallocated).
    #[test]
    fn a_segment_summary_calls_bytes_a_torn_tail_only_when_nothing_good_follows() {
        let frames = |records: &[(u64, &[u8])]| {
            let mut bytes = Vec::new();
            for (seq, p) in records {
                frame::encode(&mut bytes, *seq, p);
            }
            bytes
        };
        let body = crate::state::record::timed_empty(100);
        let mut bytes = frames(&[(1, &body), (2, &body), (3, &body)]);
        bytes.resize(bytes.len() + 200, 0);
        let second = frame::HEADER_LEN + body.len();
        let summary = |b: &[u8]| super::summarize_bytes("s.wal".into(), 1, b);

        // The middle frame damaged, the third still good: damage.
        let mut damaged = bytes.clone();
        damaged[second + frame::HEADER_LEN + 1] ^= 1;
        let s = summary(&damaged);
        assert_eq!(s.records, 1);
        assert!(s.problem.is_some());
        assert!(!s.undecoded_tail, "{:?}", s.problem);

        // The last frame damaged: nothing good follows, a torn write.
        let mut torn = bytes.clone();
        torn[2 * second + frame::HEADER_LEN + 1] ^= 1;
        let s = summary(&torn);
        assert_eq!(s.records, 2);
        assert!(s.undecoded_tail, "{:?}", s.problem);

        // A stray byte in the zeros after the records: what a torn write can leave.
        let mut stray = bytes.clone();
        stray[3 * second + 50] = 9;
        let s = summary(&stray);
        assert_eq!(s.records, 3);
        assert!(s.undecoded_tail, "{:?}", s.problem);

        // The file cut inside the last frame: cut, not torn.
        let cut = &bytes[..2 * second + frame::HEADER_LEN + 1];
        let s = summary(cut);
        assert_eq!(s.records, 2);
        assert!(!s.undecoded_tail, "{:?}", s.problem);
        assert!(
            s.problem
                .as_deref()
                .is_some_and(|p| p.contains("cut or overwritten"))
        );
    }
}
