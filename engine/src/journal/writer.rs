//! The journal: group appends (one write, one fdatasync) and releasing old segments.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{self, MAX_PAYLOAD};
use super::io::{DIRECT_ALIGN, JournalFile, JournalIo};
use super::options::JournalOptions;
use super::recover::{self, Recovered, Recovery};
use super::segment::{self, Active, Segment};
use crate::error::{Error, ErrorKind, Result};

/// The write-ahead journal: the durability point of the write path.
///
/// Records are `(seq, payload)` with consecutive seqs. [`append`](Journal::append) writes a
/// group of them with one write and one fdatasync; a caller acknowledges the group only
/// after it returns. After a failed write or sync the journal refuses every append until it
/// is reopened (fail-stop): what reached the disk is then unknown, and reopening finds out.
pub struct Journal {
    dir: PathBuf,
    opts: JournalOptions,
    io: Arc<dyn JournalIo>,
    /// Segments in seq order; the last one is the active one.
    segments: Vec<Segment>,
    /// The last segment, open for appending; `None` exactly when there are no segments.
    active: Option<Active>,
    last_seq: u64,
    /// Why appends are refused, after a failed write or sync.
    poisoned: Option<String>,
    /// The encoded group, reused between appends.
    buf: Vec<u8>,
    /// A direct append's whole blocks, reused between appends.
    aligned: Vec<u8>,
    /// Whether `keep_released` exists (it is created on first use).
    keep_ready: bool,
    /// A preallocated file, made off the ack path, that the next segment is renamed from.
    spare: Option<Spare>,
}

/// A preallocated, synced file of zeros named [`SPARE_NAME`], waiting to become the next
/// segment. Made by [`Journal::make_spare`] outside the journal's lock (by a background
/// thread), so that starting a segment on the ack path is a rename, not a preallocation.
pub struct Spare {
    path: PathBuf,
    file: Box<dyn JournalFile>,
    size: u64,
}

/// The file name of a spare segment. Recovery ignores it (it is not a segment name); a
/// leftover one is replaced.
pub const SPARE_NAME: &str = "spare.tmp";

/// What it takes to make a spare: see [`Journal::wants_spare`].
pub struct SpareRequest {
    io: Arc<dyn JournalIo>,
    dir: PathBuf,
    size: u64,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("segments", &self.segments)
            .field("last_seq", &self.last_seq)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (creating `dir` if needed) the journal in `dir`; scans every segment; returns
    /// the records with seq > `after` for replay.
    ///
    /// A torn write at the end of the last segment (an unacknowledged group) is erased and
    /// reported in [`Recovery::torn_tail`]. Damage anywhere else, a gap in the seqs, or a
    /// journal that does not reach back to `after + 1` or forward to `after` is an error of
    /// kind [`Corruption`](ErrorKind::Corruption) naming the segment and offset.
    pub fn open(
        dir: &Path,
        opts: JournalOptions,
        io: Arc<dyn JournalIo>,
        after: u64,
    ) -> Result<(Journal, Recovery)> {
        Journal::open_acked(dir, opts, io, after, after)
    }

    /// Like [`Journal::open`], and the journal must also reach `acked`: a seq known to have
    /// been acknowledged as durable (the store records one at each checkpoint). A journal
    /// that ends before it lost acknowledged records, whatever its frames look like, and is
    /// refused before anything is written.
    pub fn open_acked(
        dir: &Path,
        opts: JournalOptions,
        io: Arc<dyn JournalIo>,
        after: u64,
        acked: u64,
    ) -> Result<(Journal, Recovery)> {
        opts.validate()?;
        let Recovered {
            recovery,
            segments,
            active,
        } = recover::recover(
            io.as_ref(),
            dir,
            opts.segment_bytes,
            after,
            acked,
            opts.accept_loss,
            opts.direct,
        )?;
        let journal = Journal {
            dir: dir.to_path_buf(),
            opts,
            io,
            segments,
            active,
            last_seq: recovery.last_seq,
            poisoned: None,
            buf: Vec::new(),
            aligned: Vec::new(),
            keep_ready: false,
            spare: None,
        };
        Ok((journal, recovery))
    }

    /// Appends records `(seq, payload)` in one write + one fdatasync, and returns after the
    /// data is durable. Seqs must continue the journal (`last_seq() + 1`, `+ 2`, ...) and
    /// payloads be 1 byte to 64 MiB, else an [`Invalid`](ErrorKind::Invalid) error and
    /// nothing is written. A group that does not fit the active segment starts a new one
    /// (creating it costs a preallocation and a second sync).
    pub fn append(&mut self, records: &[(u64, &[u8])]) -> Result<()> {
        if let Some(why) = &self.poisoned {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "journal {} refuses writes after an earlier failure ({why}); reopen it",
                    self.dir.display()
                ),
            ));
        }
        let Some(&(first, _)) = records.first() else {
            return Ok(());
        };
        self.encode(records)?;
        if let Err(e) = self.write_group(first) {
            self.poisoned = Some(e.message().to_string());
            return Err(e);
        }
        self.last_seq = first + records.len() as u64 - 1;
        Ok(())
    }

    /// Checks a group and encodes it into `self.buf`.
    fn encode(&mut self, records: &[(u64, &[u8])]) -> Result<()> {
        self.buf.clear();
        let mut expected = self.last_seq;
        for (seq, payload) in records {
            expected = expected
                .checked_add(1)
                .ok_or_else(|| Error::invalid("journal seqs are used up (u64::MAX reached)"))?;
            if *seq != expected {
                return Err(Error::invalid(format!(
                    "journal append: record seq {seq} does not continue the journal (expected {expected})"
                )));
            }
            if payload.is_empty() || payload.len() > MAX_PAYLOAD {
                return Err(Error::invalid(format!(
                    "journal append: record {seq} has {} bytes; a payload is 1 byte to 64 MiB",
                    payload.len()
                )));
            }
            frame::encode(&mut self.buf, *seq, payload);
        }
        Ok(())
    }

    /// Writes `self.buf` (a group starting at seq `first`) to the journal and syncs it.
    fn write_group(&mut self, first: u64) -> Result<()> {
        let needed = self.buf.len() as u64;
        let active = match (self.active.as_ref(), self.segments.last_mut()) {
            (Some(active), Some(segment)) if active.end + needed <= segment.size => active,
            (Some(active), Some(segment)) if active.end == 0 => {
                // An empty active segment (named `first`) too small for this group: grow it,
                // to a whole number of blocks (a direct write covers whole blocks). It holds
                // no data, so zeros may start at the block its old end falls in.
                let fail = |e| Error::io(format!("journal segment {}", segment.path.display()), e);
                let from = segment.size / DIRECT_ALIGN * DIRECT_ALIGN;
                let to = needed.next_multiple_of(DIRECT_ALIGN);
                segment::write_zeros(active.file.as_ref(), from, to).map_err(fail)?;
                active.file.sync_data().map_err(fail)?;
                segment.size = to;
                active
            }
            _ => {
                let (segment, file) = match self.spare.take() {
                    Some(spare) if spare.size >= needed => self.adopt_spare(spare, first)?,
                    _ => {
                        let size = self
                            .opts
                            .segment_bytes
                            .max(needed.next_multiple_of(DIRECT_ALIGN));
                        segment::create(self.io.as_ref(), &self.dir, first, size, self.opts.direct)?
                    }
                };
                self.segments.push(segment);
                self.active.insert(Active {
                    file,
                    end: 0,
                    tail: Vec::new(),
                })
            }
        };
        let fail = |what: &str, e| {
            Error::io(
                format!(
                    "journal {}: {what} of records from seq {first}",
                    self.dir.display()
                ),
                e,
            )
        };
        let mut tail = None;
        if active.file.direct() {
            // Whole blocks from the one the data ends in: its bytes so far, the group, zeros
            // up to the next block boundary (zeros are what the preallocation left there).
            let align = DIRECT_ALIGN as usize;
            let mut blocks = std::mem::take(&mut self.aligned);
            blocks.clear();
            blocks.extend_from_slice(&active.tail);
            blocks.extend_from_slice(&self.buf);
            let data = blocks.len();
            blocks.resize(data.next_multiple_of(align), 0);
            let start = active.end - active.tail.len() as u64;
            let written = active.file.write_at(start, &blocks);
            tail = Some(blocks[data / align * align..data].to_vec());
            self.aligned = blocks;
            written.map_err(|e| fail("write", e))?;
        } else {
            active
                .file
                .write_at(active.end, &self.buf)
                .map_err(|e| fail("write", e))?;
        }
        active.file.sync_data().map_err(|e| fail("sync", e))?;
        if let Some(active) = self.active.as_mut() {
            active.end += needed;
            if let Some(tail) = tail {
                active.tail = tail;
            }
        }
        Ok(())
    }

    /// Renames the spare to the segment starting at `first` and makes the name durable.
    fn adopt_spare(&self, spare: Spare, first: u64) -> Result<(Segment, Box<dyn JournalFile>)> {
        let path = self.dir.join(segment::file_name(first));
        let fail = |e| {
            Error::io(
                format!("journal segment {}: rename from the spare", path.display()),
                e,
            )
        };
        self.io.rename(&spare.path, &path).map_err(fail)?;
        self.io.sync_dir(&self.dir).map_err(fail)?;
        // Reopened by its new name: the file system seam tracks files by path.
        drop(spare.file);
        let file =
            super::io::open_for_appends(self.io.as_ref(), &path, self.opts.direct).map_err(fail)?;
        Ok((
            Segment {
                first_seq: first,
                path,
                size: spare.size,
            },
            file,
        ))
    }

    /// What [`Journal::make_spare`] needs, when the active segment is more than half full and
    /// no spare is ready (and the journal is not poisoned).
    pub fn wants_spare(&self) -> Option<SpareRequest> {
        let half_full = match (self.active.as_ref(), self.segments.last()) {
            (Some(active), Some(segment)) => active.end * 2 >= segment.size,
            _ => false,
        };
        (half_full && self.spare.is_none() && self.poisoned.is_none()).then(|| SpareRequest {
            io: Arc::clone(&self.io),
            dir: self.dir.clone(),
            size: self.opts.segment_bytes,
        })
    }

    /// Makes a spare segment file: zeros written and synced. Slow (it writes a whole
    /// segment); call it without holding the journal.
    pub fn make_spare(req: SpareRequest) -> Result<Spare> {
        let path = req.dir.join(SPARE_NAME);
        let fail =
            |what: &str, e| Error::io(format!("journal spare {}: {what}", path.display()), e);
        match req.io.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("remove a leftover", e)),
        }
        let file = req.io.create(&path).map_err(|e| fail("create", e))?;
        segment::write_zeros(file.as_ref(), 0, req.size).map_err(|e| fail("preallocate", e))?;
        file.sync_data().map_err(|e| fail("sync", e))?;
        Ok(Spare {
            path,
            file,
            size: req.size,
        })
    }

    /// Keeps a spare for the next segment (a second one is dropped: its file stays until the
    /// next spare replaces it).
    pub fn install_spare(&mut self, spare: Spare) {
        if self.spare.is_none() {
            self.spare = Some(spare);
        }
    }

    /// Deletes the segments whose records all have seq <= `upto` (or moves them to
    /// [`JournalOptions::keep_released`]), oldest first. Never the active segment. Call it
    /// only with a seq that a checkpoint covers: reopening needs every record after it.
    pub fn release(&mut self, upto: u64) -> Result<()> {
        // Segment i ends where segment i + 1 begins; the active (last) one has no successor.
        let n = self
            .segments
            .windows(2)
            .take_while(|w| w[1].first_seq - 1 <= upto)
            .count();
        if n == 0 {
            return Ok(());
        }
        if let Some(keep) = &self.opts.keep_released
            && !self.keep_ready
        {
            let fail = |e| Error::io(format!("journal archive folder {}", keep.display()), e);
            self.io.create_dir_all(keep).map_err(fail)?;
            if let Some(parent) = keep.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.io.sync_dir(parent).map_err(fail)?;
            }
            self.keep_ready = true;
        }
        let mut done = 0;
        let mut result = Ok(());
        for segment in &self.segments[..n] {
            let moved = match &self.opts.keep_released {
                Some(keep) => self.io.rename(
                    &segment.path,
                    &keep.join(segment::file_name(segment.first_seq)),
                ),
                None => self.io.remove(&segment.path),
            };
            if let Err(e) = moved {
                result = Err(Error::io(
                    format!("journal segment {}: release", segment.path.display()),
                    e,
                ));
                break;
            }
            done += 1;
        }
        self.segments.drain(..done);
        result?;
        let fail = |dir: &Path, e| Error::io(format!("journal folder {}: sync", dir.display()), e);
        if let Some(keep) = &self.opts.keep_released {
            self.io.sync_dir(keep).map_err(|e| fail(keep, e))?;
        }
        self.io.sync_dir(&self.dir).map_err(|e| fail(&self.dir, e))
    }

    /// The seq of the last record appended (or found at open); the next append starts at
    /// this plus one.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Bytes of the segment files on disk (preallocated space included).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Whether an earlier failed write or sync makes the journal refuse appends until it is
    /// reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Journal>();
    }
}
