//! Opening a journal: scanning every segment, telling a torn write at the tail from damage
//! before it, and erasing the torn tail.

use std::fmt;
use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};

use super::frame::{self, Decoded};
use super::io::JournalIo;
use super::segment::{self, Active, Segment};
use crate::error::{Error, Result};

/// What [`Journal::open`](super::Journal::open) found: the records to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// `(seq, payload)` of every record with seq > `after`, in seq order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The last good seq in the journal, or `after` if it holds none.
    pub last_seq: u64,
    /// The incomplete write found (and erased) at the end of the journal, if any.
    pub torn_tail: Option<TornTail>,
    /// The commit time of the journal's last good record (ns since the Unix epoch), when it
    /// carries one: the clock of the next group never goes below it.
    pub last_commit_ns: Option<u64>,
    /// Acknowledged records found missing, when opening was told to accept the loss
    /// ([`JournalOptions::accept_loss`](super::JournalOptions::accept_loss)).
    pub lost: Option<String>,
    /// Damage found among records at or below the checkpoint (`after`), which redb already
    /// holds: opening goes past it, and only a point-in-time recovery through those
    /// records would miss them. One line per damaged stretch.
    pub damaged: Vec<String>,
}

/// An incomplete write at the end of the last segment: a group whose write or sync did not
/// finish, so it was never acknowledged. Open erases it (writes zeros over it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the first incomplete frame starts.
    pub offset: u64,
    /// How many bytes were erased: from `offset` up to the last nonzero byte.
    pub discarded_bytes: u64,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn write at offset {} of journal segment {}: {} bytes of an unacknowledged group discarded",
            self.offset,
            self.segment.display(),
            self.discarded_bytes
        )
    }
}

/// A journal as found on disk, ready to append to.
pub(crate) struct Recovered {
    pub(crate) recovery: Recovery,
    pub(crate) segments: Vec<Segment>,
    /// The last segment, open for writing (`None` when there are no segments).
    pub(crate) active: Option<Active>,
}

/// The first bytes of a segment that are not a good frame.
struct Damage {
    offset: usize,
    reason: String,
    /// Never a torn write: the frame's checksum holds but its seq is wrong, or the frame
    /// cannot fit in the file (see [`Decoded::Overrun`]).
    checksummed: bool,
}

/// One segment's frames, as far as they are good.
struct Scan {
    /// The end of the good frames.
    end: usize,
    /// How many good frames there are.
    count: u64,
    /// The seq the frame at `end` should have: one past the last good frame's.
    next: u64,
    /// The commit time of the last good frame, if it carries one.
    last_time: Option<u64>,
    damage: Option<Damage>,
    /// Damaged stretches of checkpointed records that the scan went past (see [`scan`]).
    skipped: Vec<String>,
}

/// Walks the frames of a segment whose first seq must be `first`, pushing each record with
/// seq > `after` onto `records`.
///
/// Damage where a checkpointed record (seq <= `after`) should be is gone past when a good
/// frame follows in the segment and every record in between is checkpointed too: redb
/// holds them, so only a point-in-time recovery would have needed their bytes. Each such
/// stretch is listed in `skipped`.
fn scan(bytes: &[u8], first: u64, after: u64, records: &mut Vec<(u64, Vec<u8>)>) -> Scan {
    let mut at = 0;
    let mut count = 0;
    let mut expected = first;
    let mut last_time = None;
    let mut skipped = Vec::new();
    let damage = loop {
        let found = match frame::decode(bytes, at) {
            Decoded::Frame { seq, payload, next } if seq == expected => {
                if seq > after {
                    records.push((seq, payload.to_vec()));
                }
                last_time = crate::state::record::time_of(payload);
                count += 1;
                expected += 1;
                at = next;
                continue;
            }
            Decoded::Frame { seq, .. } => Damage {
                offset: at,
                reason: format!("frame has seq {seq} where {expected} was expected"),
                checksummed: true,
            },
            Decoded::Invalid(reason) => Damage {
                offset: at,
                reason,
                checksummed: false,
            },
            Decoded::Overrun(reason) => Damage {
                offset: at,
                reason,
                checksummed: true,
            },
            Decoded::End => {
                // Everything after the end of the data is preallocated zeros; anything
                // else means the end marker itself (a frame's length) was damaged.
                let stray = bytes
                    .get(at..)
                    .and_then(|rest| rest.iter().position(|b| *b != 0));
                let Some(p) = stray else { break None };
                Damage {
                    offset: at,
                    reason: format!(
                        "end-of-data marker followed by a nonzero byte at offset {}",
                        at + p
                    ),
                    checksummed: false,
                }
            }
        };
        if expected <= after
            && let Ok(Some((resume, seq))) = frame::find_later_frame(bytes, at, expected)
            && seq - 1 <= after
        {
            skipped.push(format!(
                "records {expected} ..= {} at offset {at}: {}",
                seq - 1,
                found.reason
            ));
            at = resume;
            expected = seq;
            continue;
        }
        break Some(found);
    };
    Scan {
        end: at,
        count,
        next: expected,
        last_time,
        damage,
        skipped,
    }
}

/// The search for a good frame after `damage` gave up at byte `at` (see
/// [`frame::find_later_frame`]): what follows cannot be told apart, so it is refused.
fn search_gave_up(path: &Path, damage: &Damage, at: usize) -> Error {
    corrupt(
        path,
        damage.offset,
        format!(
            "{}, and the bytes after it hold so many frame-like headers (checked up to offset \
             {at}) that a torn write cannot be told from damage",
            damage.reason
        ),
    )
}

fn corrupt(path: &Path, offset: usize, reason: impl fmt::Display) -> Error {
    Error::corruption(format!(
        "journal segment {} at offset {offset}: {reason}",
        path.display()
    ))
}

/// The segment files of `dir`, in seq order; creates `dir` if it does not exist.
fn list_segments(io: &dyn JournalIo, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match io.list(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == IoKind::NotFound => {
            let fail = |e| Error::io(format!("journal folder {}: create", dir.display()), e);
            io.create_dir_all(dir).map_err(fail)?;
            let parent = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            io.sync_dir(parent).map_err(fail)?;
            Vec::new()
        }
        Err(e) => return Err(Error::io(format!("journal folder {}", dir.display()), e)),
    };
    let mut segments: Vec<(u64, PathBuf)> = entries
        .into_iter()
        .filter_map(|p| segment::parse_name(&p).map(|seq| (seq, p)))
        .collect();
    segments.sort();
    Ok(segments)
}

/// Scans every segment of `dir` (creating it if needed), checks the journal is whole, covers
/// `after` and reaches `acked` (a seq known to have been acknowledged), erases a torn tail,
/// and opens the last segment for appending; the last segment is grown to `segment_bytes`
/// if a crash cut its preallocation short. Nothing is written before every check passed.
pub(crate) fn recover(
    io: &dyn JournalIo,
    dir: &Path,
    segment_bytes: u64,
    after: u64,
    acked: u64,
    accept_loss: bool,
    direct: bool,
) -> Result<Recovered> {
    let files = list_segments(io, dir)?;
    let mut records = Vec::new();
    let mut segments = Vec::with_capacity(files.len());
    // The last seq of the segments scanned so far.
    let mut last: Option<u64> = None;
    let mut tail = None;
    let mut last_commit_ns = None;
    // The last segment's bytes from the start of the block its data ends in to that end.
    let mut last_tail = Vec::new();
    let mut damaged = Vec::new();
    let mut lost = None;
    // Set when the last segment's good records end below `after`, its tail damaged: appends
    // go to a new segment that starts after the checkpoint.
    let mut fresh_segment = false;
    for (i, (first, path)) in files.iter().enumerate() {
        let is_last = i + 1 == files.len();
        if let Some(prev) = last
            && *first != prev + 1
            && (*first <= prev || first - 1 > after)
        {
            return Err(corrupt(
                path,
                0,
                format!(
                    "the segment starts at seq {first} but the previous one ends at seq {prev}: records are missing"
                ),
            ));
        }
        let Some(before_first) = first.checked_sub(1) else {
            return Err(corrupt(path, 0, "seq 0 is never written"));
        };
        let bytes = io.read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                corrupt(path, 0, e.to_string())
            } else {
                Error::io(format!("journal segment {}: read", path.display()), e)
            }
        })?;
        if let Some(prev) = last
            && *first != prev + 1
        {
            // Every record of the gap is checkpointed (checked above).
            damaged.push(format!(
                "journal {}: records {} ..= {} are missing before segment {}",
                dir.display(),
                prev + 1,
                first - 1,
                path.display()
            ));
        }
        let scan = scan(&bytes, *first, after, &mut records);
        damaged.extend(
            scan.skipped
                .iter()
                .map(|s| format!("journal segment {}: {s}", path.display())),
        );
        let expected = scan.next;
        if let Some(damage) = &scan.damage
            && expected <= after
        {
            // Damage from a checkpointed record on, with no good frame after it in this
            // segment that resumes within the checkpoint: fine if the records up to the
            // next segment (or, in the last segment, all records after this one) are
            // checkpointed too, which the seq checks below and at the next segment make sure.
            match frame::find_later_frame(&bytes, damage.offset, expected) {
                Ok(None) => {}
                Ok(Some((at, seq))) => {
                    return Err(corrupt(
                        path,
                        damage.offset,
                        format!(
                            "{}, yet a valid frame with seq {seq} follows at offset {at}: \
                             records {} ..= {} that the checkpoint does not cover are damaged",
                            damage.reason,
                            after + 1,
                            seq - 1
                        ),
                    ));
                }
                Err(at) => return Err(search_gave_up(path, damage, at)),
            }
            if is_last {
                // No torn write: a checkpointed record was written and synced whole. What
                // follows it is gone too, and records after the checkpoint, acknowledged
                // after it was taken, may have been among it.
                if !accept_loss {
                    return Err(corrupt(
                        path,
                        damage.offset,
                        format!(
                            "{}: the record with seq {expected} is damaged, and no good record \
                             follows it. The database holds every record up to seq {after} \
                             (its checkpoint); records acknowledged after that, if there were \
                             any, are not in it and cannot be found in the journal. Nothing \
                             was changed. Set accept_journal_loss = true \
                             (TRADESTORE_ACCEPT_JOURNAL_LOSS=true) to open the store as of seq \
                             {after}",
                            damage.reason
                        ),
                    ));
                }
                lost = Some(format!(
                    "journal segment {} is damaged at offset {} ({}), in records the checkpoint \
                     at seq {after} covers, and no good record follows: opened as of seq \
                     {after}, as accept_journal_loss asked; records acknowledged after the \
                     checkpoint, if there were any, are lost",
                    path.display(),
                    damage.offset,
                    damage.reason
                ));
                fresh_segment = true;
            } else {
                damaged.push(format!(
                    "journal segment {} at offset {}: {} (records from seq {expected} to the \
                     next segment, all at or below the checkpoint at seq {after})",
                    path.display(),
                    damage.offset,
                    damage.reason
                ));
            }
        } else if let Some(damage) = &scan.damage {
            if !is_last || (damage.checksummed && !accept_loss) {
                return Err(corrupt(path, damage.offset, &damage.reason));
            }
            match frame::find_later_frame(&bytes, damage.offset, expected) {
                Ok(None) => {}
                Ok(Some((at, seq))) => {
                    return Err(corrupt(
                        path,
                        damage.offset,
                        format!(
                            "{}, yet a valid frame with seq {seq} follows at offset {at}: the journal is damaged before its end",
                            damage.reason
                        ),
                    ));
                }
                Err(at) => return Err(search_gave_up(path, damage, at)),
            }
            // Nothing good follows: an unacknowledged group whose write did not finish.
            let stray_end = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
            tail = Some(TornTail {
                segment: path.clone(),
                offset: damage.offset as u64,
                discarded_bytes: stray_end.saturating_sub(damage.offset) as u64,
            });
        }
        if scan.count == 0 && !is_last && *first > after {
            return Err(corrupt(
                path,
                0,
                "the segment holds no records but is not the last one",
            ));
        }
        last = Some(expected - 1);
        debug_assert!(expected > before_first);
        if scan.count > 0 {
            last_commit_ns = scan.last_time;
        }
        if is_last {
            let block =
                scan.end / super::io::DIRECT_ALIGN as usize * super::io::DIRECT_ALIGN as usize;
            last_tail = bytes[block..scan.end].to_vec();
        }
        segments.push((
            Segment {
                first_seq: *first,
                path: path.clone(),
                size: bytes.len() as u64,
            },
            scan.end as u64,
        ));
    }

    if let Some((first, _)) = files.first()
        && first.saturating_sub(1) > after
    {
        return Err(Error::corruption(format!(
            "journal {} starts at seq {first}, but replay must start after seq {after}: segments with records {} ..= {} are missing",
            dir.display(),
            after + 1,
            first - 1
        )));
    }
    let mut last_seq = last.unwrap_or(after);
    if fresh_segment {
        last_seq = last_seq.max(after);
    }
    if last_seq < after {
        return Err(Error::corruption(format!(
            "journal {} ends at seq {last_seq}, before seq {after} that the store has already applied: the journal's tail is missing",
            dir.display()
        )));
    }

    if last_seq < acked && accept_loss {
        let missing = format!(
            "records {} ..= {acked} of journal {} were acknowledged as durable but are missing: \
             opened without them, as accept_journal_loss asked",
            last_seq + 1,
            dir.display()
        );
        lost = Some(match lost {
            Some(damage) => format!("{damage}; {missing}"),
            None => missing,
        });
    } else if last_seq < acked {
        return Err(Error::corruption(format!(
            "journal {} ends at seq {last_seq}, but seq {acked} had been acknowledged as durable \
             when the store's last checkpoint was taken: records {} ..= {acked} are missing (the \
             journal's last segment was deleted, cut or overwritten); nothing was changed. Put \
             the journal's files back, or restore the store from a dump or a backup",
            dir.display(),
            last_seq + 1
        )));
    }

    let active = match segments.last_mut() {
        None => None,
        // Its good records end in damage below the checkpoint: left as it is, and the next
        // group starts a segment of its own at `after + 1`.
        Some(_) if fresh_segment => None,
        Some((segment, end)) => Some(open_active(
            io,
            segment,
            *end,
            tail.as_ref(),
            segment_bytes,
            last_tail,
            direct,
        )?),
    };
    Ok(Recovered {
        recovery: Recovery {
            records,
            last_seq,
            torn_tail: tail,
            last_commit_ns,
            lost,
            damaged,
        },
        segments: segments.into_iter().map(|(s, _)| s).collect(),
        active,
    })
}

/// Opens the last segment for appending at `end`: erases the torn tail, restores a
/// preallocation that a crash cut short, and syncs what it wrote.
fn open_active(
    io: &dyn JournalIo,
    segment: &mut Segment,
    end: u64,
    tail: Option<&TornTail>,
    segment_bytes: u64,
    data_tail: Vec<u8>,
    direct: bool,
) -> Result<Active> {
    let path = segment.path.clone();
    let fail = |what: &str, e| Error::io(format!("journal segment {}: {what}", path.display()), e);
    let file = io.open(&path).map_err(|e| fail("open", e))?;
    let mut wrote = false;
    if let Some(tail) = tail {
        let to = tail.offset + tail.discarded_bytes;
        segment::write_zeros(file.as_ref(), tail.offset, to)
            .map_err(|e| fail("erase the torn tail", e))?;
        wrote = true;
    }
    if segment.size < segment_bytes {
        segment::write_zeros(file.as_ref(), segment.size, segment_bytes)
            .map_err(|e| fail("preallocate", e))?;
        segment.size = segment_bytes;
        wrote = true;
    }
    if wrote {
        file.sync_data().map_err(|e| fail("sync", e))?;
    }
    // Erased and preallocated: reopened for appending (directly, where the file system can).
    drop(file);
    let file = super::io::open_for_appends(io, &path, direct).map_err(|e| fail("open", e))?;
    Ok(Active {
        file,
        end,
        tail: data_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_of(records: &[(u64, &[u8])], zeros: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for (seq, p) in records {
            frame::encode(&mut buf, *seq, p);
        }
        buf.resize(buf.len() + zeros, 0);
        buf
    }

    #[test]
    fn scan_collects_records_after_the_checkpoint() {
        let bytes = segment_of(&[(5, b"a"), (6, b"bb"), (7, b"ccc")], 64);
        let mut records = Vec::new();
        let s = scan(&bytes, 5, 5, &mut records);
        assert!(s.damage.is_none());
        assert_eq!(s.count, 3);
        assert_eq!(s.end, 3 * 16 + 6);
        assert_eq!(records, vec![(6, b"bb".to_vec()), (7, b"ccc".to_vec())]);
    }

    #[test]
    fn scan_keeps_the_last_good_records_commit_time_even_before_the_checkpoint() {
        let timed = crate::state::record::timed_empty;
        let (a, b) = (timed(100), timed(250));
        let bytes = segment_of(&[(1, &a), (2, &b)], 32);
        // Both records are before the checkpoint: none replays, the time is still found.
        let mut records = Vec::new();
        let s = scan(&bytes, 1, 2, &mut records);
        assert!(records.is_empty());
        assert_eq!((s.count, s.last_time), (2, Some(250)));
        // A record written before commit times were kept has none.
        let bytes = segment_of(&[(1, &a), (2, &[0x01, 0x02])], 32);
        assert_eq!(scan(&bytes, 1, 0, &mut Vec::new()).last_time, None);
    }

    #[test]
    fn scan_stops_at_a_wrong_seq_and_marks_it_checksummed() {
        let bytes = segment_of(&[(5, b"a"), (7, b"c")], 8);
        let s = scan(&bytes, 5, 0, &mut Vec::new());
        let d = s.damage.expect("damage");
        assert_eq!((d.offset, d.checksummed), (17, true));
        assert!(d.reason.contains("seq 7 where 6"), "{}", d.reason);
    }

    #[test]
    fn scan_reports_stray_bytes_after_the_end_marker() {
        let mut bytes = segment_of(&[(1, b"a")], 40);
        bytes[30] = 9;
        let s = scan(&bytes, 1, 0, &mut Vec::new());
        let d = s.damage.expect("damage");
        assert_eq!(d.offset, 17);
        assert!(d.reason.contains("offset 30"), "{}", d.reason);
    }

    #[test]
    fn empty_and_zeroed_segments_have_no_frames() {
        for bytes in [Vec::new(), vec![0; 3], vec![0; 100]] {
            let s = scan(&bytes, 1, 0, &mut Vec::new());
            assert!(s.damage.is_none());
            assert_eq!((s.count, s.end), (0, 0));
        }
    }
}
