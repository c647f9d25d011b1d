//! A standby: a copy of a store that follows the primary's journal.
//!
//! [`Standby::create`] restores a backup of the primary (see [`crate::backup`]) into a new
//! directory and marks it a standby; [`Standby::catch_up`] then reads the journal segment
//! files the primary writes (its `journal/` folder and, with `keep_journal = true`, its
//! `archive/journal/`) and applies every record after the last one the standby holds, in
//! durable redb commits of at most [`CATCH_UP_BYTES`] of records each. The primary runs as
//! usual in its own process: the standby only reads its files, and remembers where it
//! stopped in the newest segment, so a catch-up reads only what was appended since.
//!
//! What a standby applies: a record is read only once it is a whole frame with its
//! checksum, so a write in progress is picked up by a later catch-up. A record the primary
//! wrote is in its journal file before it is acknowledged; the standby may apply a record
//! whose group was still being synced, which the primary also replays when it reopens
//! (recovery keeps every whole frame), so the two stay the same.
//!
//! What it does not see: changes that bypass the journal. A dump restored into the primary
//! (`restore`, one direct commit), archiving (trades move to segments; the standby keeps
//! them in its hot tables, with the same rows), and index creation or removal (the standby
//! keeps the indexes of its backup). After a restore into the primary, make a new standby
//! from a new backup.
//!
//! The standby refuses to go on when it cannot stay exact:
//! - the records it needs next are gone from the folders (the primary checkpointed and
//!   deleted them: keep them with `keep_journal = true`, or make a new standby);
//! - the journal jumps over sequence numbers;
//! - its store was opened and written as a store since it last caught up (a promoted
//!   standby: `meta.standby_seq` no longer matches its applied sequence number).
//!
//! Promotion: stop following and open the directory as a store; it holds exactly the
//! transactions 1 ..= [`Standby::applied_seq`] of the primary. [`Standby::promote`] also
//! removes the standby mark, so the store takes migrations like any primary (and can never
//! follow again).

use std::path::{Path, PathBuf};

use redb::ReadableDatabase;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::journal::{self, Stop};
use crate::layout::IndexSpec;
use crate::store::DB_FILE;

/// The most journal payload bytes one catch-up commit applies.
pub const CATCH_UP_BYTES: usize = 64 << 20;

/// A store following another store's journal.
pub struct Standby {
    dir: PathBuf,
    db: redb::Database,
    journal: Vec<PathBuf>,
    applied: u64,
    /// Where the next record is: a segment (by its first seq) and the byte offset of the
    /// next frame in it; unknown until the first catch-up found it.
    at: Option<(u64, u64)>,
    /// The commit time of the last record applied, once one was.
    last_commit_ns: Option<u64>,
    /// Where reading last stopped at bytes that are not a whole frame, and when the bytes
    /// after them were last searched for a later frame (a search reads the rest of the
    /// segment: done again there after [`TAIL_RECHECK`], not at every poll).
    tail_checked: Option<((u64, u64), std::time::Instant)>,
}

/// How often a standby waiting at the same undecoded bytes searches past them again.
const TAIL_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Standby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standby")
            .field("dir", &self.dir)
            .field("journal", &self.journal)
            .field("applied", &self.applied)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// What one [`Standby::catch_up`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CatchUp {
    /// The standby holds transactions 1 ..= this of the primary.
    pub applied_seq: u64,
    /// Records applied by this catch-up.
    pub applied: u64,
    /// Whether more records may be waiting (the catch-up stopped at its byte budget).
    pub more: bool,
    /// When the primary committed the last transaction the standby holds (ns since the Unix
    /// epoch), once a catch-up of this process applied one that carries its time: how far
    /// behind the standby is in the primary's time.
    pub last_commit_ns: Option<u64>,
    /// Where reading stopped at bytes that are not yet a whole frame (a write in progress,
    /// or a torn write the primary truncates when it reopens), if it did.
    pub waiting_at: Option<String>,
}

impl Standby {
    /// Restores `backup` into `dir` (which must not exist, or be empty) as a standby (the
    /// mark is written before the restored store is renamed into place: a standby appears
    /// whole or not at all), and opens it to follow the journal in `journal` (the primary's `journal`
    /// and `archive/journal` folders).
    pub fn create(backup: &Path, dir: &Path, journal: Vec<PathBuf>) -> Result<Standby> {
        // Checked before the restore too: bad folders, and another store's (checked by the
        // restore against the verified manifest), leave no standby behind.
        check_folders(dir, &journal)?;
        crate::backup::restore_as(
            backup,
            dir,
            &crate::backup::PointInTime::default(),
            Some(&journal),
        )?;
        Standby::open(dir, journal)
    }

    /// Opens the standby in `dir` to follow the journal in `journal`. A journal folder that
    /// does not exist yet (the primary's `archive/journal` before its first checkpoint that
    /// keeps a segment) is read once it does; the folder it would be in must exist.
    pub fn open(dir: &Path, journal: Vec<PathBuf>) -> Result<Standby> {
        check_folders(dir, &journal)?;
        let db = open_db(dir)?;
        let txn = db.begin_read()?;
        let applied = crate::state::read_applied_seq(&txn)?;
        let marked = crate::state::read_standby_seq(&txn)?;
        let id = crate::identity::of_catalog(&txn)?;
        drop(txn);
        let Some(marked) = marked else {
            return Err(Error::invalid(format!(
                "{} is not a standby: make one from a backup of the primary (`tradestore \
                 standby --from-backup`)",
                dir.display()
            )));
        };
        if marked != applied {
            return Err(Error::invalid(format!(
                "{} was opened and written as a store since it last followed the primary (it \
                 holds transaction {applied}, it had followed to {marked}): a promoted standby \
                 cannot follow again; make a new one from a backup",
                dir.display()
            )));
        }
        // The primary's id came with the backup: a folder of another store is refused.
        for folder in &journal {
            crate::identity::check_folder(folder, id.as_deref(), "the journal folder to follow")?;
        }
        Ok(Standby {
            dir: dir.to_path_buf(),
            db,
            journal,
            applied,
            at: None,
            last_commit_ns: None,
            tail_checked: None,
        })
    }

    /// Promotes the standby in `dir` to a store of its own: removes its standby mark (one
    /// durable commit, recorded in the audit trail) and returns the last transaction of the
    /// primary it holds. Stop the process following the journal first: the database is
    /// opened exclusively, so a standby or store still running in `dir` makes this fail, and
    /// nothing is changed.
    ///
    /// A standby that was already opened and written as a store since it last followed is
    /// promoted too (it could not follow again anyway); the transaction it returns is then
    /// the primary's last one it applied.
    pub fn promote(dir: &Path) -> Result<u64> {
        let db = open_db(dir)?;
        let marked = crate::state::read_standby_seq(&db.begin_read()?)?;
        let Some(marked) = marked else {
            // Say so when it was promoted before (a promotion whose report was lost, say).
            let entries = crate::audit::entries(&db.begin_read()?, 0, usize::MAX)?;
            let earlier = entries.iter().rev().find(|e| e.action == "standby.promote");
            return Err(Error::invalid(match earlier {
                Some(e) => format!(
                    "{} is not a standby: it was promoted already (audit entry {}, {}, {}): \
                     there is nothing to promote",
                    dir.display(),
                    e.seq,
                    crate::backup::rfc3339_ns(e.at_ns),
                    e.detail
                ),
                None => format!(
                    "{} is not a standby: there is nothing to promote",
                    dir.display()
                ),
            }));
        };
        let txn = db.begin_write()?;
        crate::catalog::init(&txn)?;
        crate::state::remove_standby_seq(&txn)?;
        crate::audit::append(
            &txn,
            "standby.promote",
            &format!("promoted at the primary's transaction {marked}"),
        )?;
        txn.commit()?;
        Ok(marked)
    }

    /// The standby's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The standby holds transactions 1 ..= this of the primary.
    pub fn applied_seq(&self) -> u64 {
        self.applied
    }

    /// Applies the records the journal folders hold after the standby's last one, up to
    /// about [`CATCH_UP_BYTES`] of them, in one durable commit (nothing when there are
    /// none). Call it again while [`CatchUp::more`] is set.
    pub fn catch_up(&mut self) -> Result<CatchUp> {
        // The primary moves segments from `journal` to `archive/journal` as it checkpoints:
        // one moved while the folders were listed or read looks missing, and reading again
        // finds it. Nothing is applied before the records are read whole, so a read can
        // start over; a real gap is there every time.
        let mut tries = 0;
        let read = loop {
            match self.read_next() {
                Err(_) if tries < 2 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                r => break r?,
            }
        };
        let Some((last, _)) = read.records.last() else {
            self.at = read.at;
            return Ok(self.outcome(0, read.more, read.waiting));
        };
        let last = *last;
        let last_time = read
            .records
            .last()
            .and_then(|(_, body)| crate::state::record::time_of(body));
        let txn = self.db.begin_write()?;
        let indexes: Vec<IndexSpec> = crate::catalog::init(&txn)?;
        crate::state::replay_records(&txn, &indexes, &read.records)?;
        crate::state::write_standby_seq(&txn, last)?;
        txn.commit()?;
        let applied = last - self.applied;
        self.applied = last;
        self.last_commit_ns = last_time;
        self.at = read.at;
        Ok(self.outcome(applied, read.more, read.waiting))
    }

    /// Reads the records after the standby's last one, up to the budget.
    fn read_next(&mut self) -> Result<Read> {
        // `archive/journal` appears with the primary's first checkpoint that keeps a segment.
        let segments = journal::segments_in(&self.journal, true)?;
        let mut expected = self.applied + 1;
        let mut read = Read {
            records: Vec::new(),
            at: self.at,
            more: false,
            waiting: None,
        };
        // The segment that holds `expected`: the last that begins at or before it, and
        // begins with the record its name says (an empty or stray file does not hide the
        // records of the one before it; the one the primary just began may be passed over
        // while it is empty, and reading the one before from its end costs nothing).
        let Some(start) = segments
            .iter()
            .rposition(|(first, path)| *first <= expected && journal::starts_with(path, *first))
            // None begins with its record yet (a primary's first segment before its first
            // write): the last that begins at or before it.
            .or_else(|| segments.iter().rposition(|(first, _)| *first <= expected))
        else {
            return match segments.first() {
                Some((first, _)) => Err(gone(expected, *first)),
                None => Ok(read),
            };
        };
        let mut used = 0;
        let last_first = segments.last().map(|(f, _)| *f);
        for (first, path) in &segments[start..] {
            let offset = match read.at {
                Some((seg, offset)) if seg == *first => offset,
                _ => 0,
            };
            let before = read.records.len();
            let (next, stop) = journal::read_from(
                path,
                offset,
                &mut expected,
                &mut read.records,
                CATCH_UP_BYTES.saturating_sub(used),
            )
            .map_err(|e| {
                if e.kind() == crate::ErrorKind::Io && !path.exists() {
                    removed(path)
                } else {
                    e
                }
            })?;
            used += read.records[before..]
                .iter()
                .map(|(_, p)| p.len())
                .sum::<usize>();
            read.at = Some((*first, next));
            match stop {
                Stop::End => {}
                Stop::Budget => {
                    read.more = true;
                    break;
                }
                // The primary writes only its newest segment: bytes that do not decode in
                // an older one never become a frame. That is damage, not a write to wait for.
                Stop::Undecoded(why) if Some(*first) != last_first => {
                    return Err(Error::corruption(format!(
                        "{why}, and a later segment follows: the journal is damaged before \
                         its tail; the standby cannot go on past record {}",
                        expected - 1
                    )));
                }
                // In the newest segment: a write in progress, or a torn write the primary
                // erases when it reopens; unless a good frame of a later record follows,
                // which no write leaves behind: damage, that the standby would wait at
                // forever.
                Stop::Undecoded(why) => {
                    let here = (*first, next);
                    let recent = self
                        .tail_checked
                        .is_some_and(|(at, when)| at == here && when.elapsed() < TAIL_RECHECK);
                    if !recent {
                        if let Some((at, seq)) = journal::later_frame_after(path, next, expected)? {
                            return Err(Error::corruption(format!(
                                "{why}, yet a good frame of record {seq} follows at byte {at}: \
                                 the journal is damaged before its tail; the standby cannot go \
                                 on past record {}",
                                expected - 1
                            )));
                        }
                        self.tail_checked = Some((here, std::time::Instant::now()));
                    }
                    read.waiting = Some(why);
                    break;
                }
            }
        }
        Ok(read)
    }

    fn outcome(&self, applied: u64, more: bool, waiting_at: Option<String>) -> CatchUp {
        CatchUp {
            applied_seq: self.applied,
            applied,
            more,
            last_commit_ns: self.last_commit_ns,
            waiting_at,
        }
    }
}

/// Records read by one catch-up, and where reading stopped.
struct Read {
    records: Vec<(u64, Vec<u8>)>,
    at: Option<(u64, u64)>,
    more: bool,
    waiting: Option<String>,
}

fn open_db(dir: &Path) -> Result<redb::Database> {
    let path = dir.join(DB_FILE);
    if !path.is_file() {
        return Err(Error::invalid(format!(
            "{} holds no store ({DB_FILE} is missing)",
            dir.display()
        )));
    }
    redb::Database::open(&path).map_err(|e| Error::from(e).context(path.display()))
}

/// The error of a segment removed while the standby read it.
fn removed(path: &Path) -> Error {
    Error::invalid(format!(
        "{} was removed while the standby read it: the primary checkpointed it away before \
         the standby caught up. Keep segments with `keep_journal = true` on the primary (and \
         follow its archive/journal too), or make a new standby from a new backup",
        path.display()
    ))
}

/// The error of records that are no longer in the journal folders.
fn gone(expected: u64, first_left: u64) -> Error {
    Error::invalid(format!(
        "the standby needs record {expected} next, but the journal folders begin at record \
         {first_left}: the primary checkpointed and removed the records in between. Keep \
         them with `keep_journal = true` on the primary (and follow its archive/journal \
         too), or make a new standby from a new backup"
    ))
}

/// The journal folders a standby in `dir` may follow: at least one, one of them existing
/// (the others at least have the folder they would be in), none inside `dir`.
fn check_folders(dir: &Path, journal: &[PathBuf]) -> Result<()> {
    if journal.is_empty() {
        return Err(Error::invalid(
            "a standby needs the primary's journal folders to follow",
        ));
    }
    for folder in journal {
        let parent = folder.parent().filter(|p| !p.as_os_str().is_empty());
        if !folder.is_dir() && !parent.is_some_and(Path::is_dir) {
            return Err(Error::invalid(format!(
                "journal folder {} does not exist (nor does the folder it would be in)",
                folder.display()
            )));
        }
    }
    // One folder may appear later (the primary's archive/journal), not all of them: the
    // primary's journal folder is there from its first open.
    if !journal.iter().any(|f| f.is_dir()) {
        return Err(Error::invalid(format!(
            "none of the journal folders exists ({}): name the primary's journal folder",
            journal
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // The standby's own folders hold no primary's journal.
    let own = std::fs::canonicalize(dir).ok();
    if let Some(own) = &own
        && let Some(inside) = journal
            .iter()
            .find(|f| std::fs::canonicalize(f).is_ok_and(|f| f.starts_with(own)))
    {
        return Err(Error::invalid(format!(
            "journal folder {} is inside the standby {}: name the primary's folders",
            inside.display(),
            dir.display()
        )));
    }
    Ok(())
}
