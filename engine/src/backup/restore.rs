//! Restoring a backup into a new store directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{self, Dest};
use super::manifest::TableSum;
use crate::error::{Error, Result};
use crate::store::{Recovery, SUBDIRS, Store};

/// What [`restore_backup`] did.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    /// The restored store's directory.
    pub to: PathBuf,
    /// It holds exactly transactions 1 ..= this.
    pub applied_seq: u64,
    /// Journal records replayed after the backup (point-in-time recovery).
    pub replayed: u64,
    /// Where the replay met a torn or damaged tail and stopped, if it did.
    pub replay_stopped: Option<String>,
    /// When the last transaction replayed was committed (ns since the Unix epoch), if any
    /// was and its record carries the time.
    pub last_commit_ns: Option<u64>,
    /// A restore to a time: the first transaction of the journal committed after it, which
    /// the replay stopped before (its sequence number and commit time). `None` when the
    /// journal folders end first.
    pub stopped_before: Option<(u64, u64)>,
    /// Every redb table restored, with its entries and checksum.
    pub tables: Vec<TableSum>,
    /// Files copied.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// What opening the restored store found (nothing to recover, for a whole backup).
    pub recovery: Recovery,
    /// Rows the consistency check examined, all domain tables.
    pub checked_rows: u64,
    /// Index entries it examined.
    pub checked_index_entries: u64,
}

/// Restores the backup in `backup` into `to`, which must not exist or be an empty
/// directory. The backup is verified first ([`verify_backup`](super::verify_backup)); each
/// file is copied with its checksum checked again and synced, with the store's empty
/// folders; then the new store is opened and passes the whole consistency check
/// ([`Store::check`]) before this returns. All of it happens in a hidden staging folder
/// beside `to`, renamed over `to` once checked: on any error nothing is left in `to`, and a
/// restore killed midway leaves the staging folder, never a partial store at `to`.
pub fn restore_backup(backup: &Path, to: &Path) -> Result<RestoreReport> {
    restore_backup_to(backup, to, &PointInTime::default())
}

/// How far past its backup a restore brings the store: point-in-time recovery.
#[derive(Clone, Debug, Default)]
pub struct PointInTime {
    /// Folders holding the store's journal segments: its `archive/journal` (segments kept
    /// with `keep_journal = true`) and its `journal`. Empty: the backup alone.
    pub journal: Vec<PathBuf>,
    /// The last transaction to replay; `None` replays every record the folders hold after
    /// the backup (up to a torn or damaged tail, which ends the replay and is reported).
    pub until_seq: Option<u64>,
    /// Or a time (ns since the Unix epoch): the replay stops before the first transaction
    /// committed after it. The backup must have been taken at or before it. Each journal
    /// record carries its group's commit time; one written before commit times were kept
    /// makes this an error (restore to a transaction number instead).
    pub until_time_ns: Option<u64>,
}

impl PointInTime {
    fn until(&self) -> crate::journal::Until {
        match (self.until_seq, self.until_time_ns) {
            (Some(seq), _) => crate::journal::Until::Seq(seq),
            (None, Some(t)) => crate::journal::Until::Time(t),
            (None, None) => crate::journal::Until::End,
        }
    }
}

/// [`restore_backup`], then replays the journal records after the backup's last
/// transaction, up to `pit.until_seq`, from the segment files in `pit.journal`, in one
/// durable commit before the restored store is opened and checked. The records must follow
/// on from the backup without a gap, and reach `until_seq` when one is given; otherwise
/// nothing is left in `to`.
pub fn restore_backup_to(backup: &Path, to: &Path, pit: &PointInTime) -> Result<RestoreReport> {
    restore_as(backup, to, pit, None)
}

/// [`restore_backup_to`]; with `standby` (the journal folders it will follow, refused when
/// they name another store than the backup's), the restored store is marked a standby (its
/// `meta.standby_seq`) before it is renamed into place, so a standby appears whole or not
/// at all.
pub(crate) fn restore_as(
    backup: &Path,
    to: &Path,
    pit: &PointInTime,
    standby: Option<&[PathBuf]>,
) -> Result<RestoreReport> {
    if pit.until_seq.is_some() && pit.until_time_ns.is_some() {
        return Err(Error::invalid(
            "a restore stops at a transaction or at a time, not both",
        ));
    }
    if (pit.until_seq.is_some() || pit.until_time_ns.is_some()) && pit.journal.is_empty() {
        return Err(Error::invalid(
            "a restore to a transaction or a time needs the journal folders to replay from",
        ));
    }
    let manifest = super::verify::verify(backup)?;
    for folder in &pit.journal {
        crate::identity::check_folder(
            folder,
            manifest.store_id.as_deref(),
            "the journal folder to replay",
        )?;
    }
    // A folder that holds no segment (the store's own directory given for its journal/, a
    // mistyped path to an empty one) would make a restore with nothing rolled forward.
    if !pit.journal.is_empty() && crate::journal::segments_in(&pit.journal, false)?.is_empty() {
        let named: Vec<String> = pit
            .journal
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        return Err(Error::invalid(format!(
            "no journal segment in the folders to replay ({}): name the source store's \
             journal/ folder, and its archive/journal/ where keep_journal keeps segments",
            named.join(", ")
        )));
    }
    for folder in standby.unwrap_or_default() {
        crate::identity::check_folder(
            folder,
            manifest.store_id.as_deref(),
            "the journal folder to follow",
        )?;
    }
    if let Some(t) = pit.until_time_ns
        && manifest.created_ns > t
    {
        return Err(Error::invalid(format!(
            "the backup was taken at {}, after {}: it may hold transactions committed after \
             that time; restore an older backup",
            super::rfc3339_ns(manifest.created_ns),
            super::rfc3339_ns(t)
        )));
    }
    if let Some(until) = pit.until_seq
        && until < manifest.applied_seq
    {
        return Err(Error::invalid(format!(
            "the backup already holds transactions up to {}, after {until}: restore an older \
             backup",
            manifest.applied_seq
        )));
    }
    if files::resolve(to)?.starts_with(files::resolve(backup)?) {
        return Err(Error::invalid(format!(
            "restore target {} is inside the backup {}: name a directory outside it",
            to.display(),
            backup.display()
        )));
    }
    let target = Dest::claim(to, "restore target")?;
    // Filled beside the target and renamed over it once checked: a restore killed midway
    // leaves a hidden staging folder, never a partial store where the target was named.
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "restore".to_owned());
    remove_abandoned_staging(to);
    let staging = to.with_file_name(format!(".{name}.restoring-{}", std::process::id()));
    let dest = Dest::claim(&staging, "restore staging folder")?;
    let mut dirs = vec![dest.path().to_path_buf()];
    for f in &manifest.files {
        let target = files::under(dest.path(), &f.path);
        if let Some(parent) = target.parent()
            && !parent.is_dir()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            dirs.push(parent.to_path_buf());
        }
        let (bytes, crc32c) = files::copy_file(&files::under(backup, &f.path), &target)?;
        if (bytes, crc32c) != (f.bytes, f.crc32c) {
            return Err(Error::corruption(format!(
                "{} changed while it was restored (now {bytes} bytes, CRC32C {crc32c:08x})",
                files::under(backup, &f.path).display()
            )));
        }
    }
    for sub in SUBDIRS {
        let p = dest.path().join(sub);
        if !p.is_dir() {
            files::make_dir(&p)?;
        }
    }
    // Deepest first: each directory's entries are durable before its parent's.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in &dirs {
        files::sync_dir(d)?;
    }
    let Replayed {
        count: replayed,
        stopped,
        last_commit_ns,
        passed,
    } = if pit.journal.is_empty() {
        Replayed::default()
    } else {
        replay(dest.path(), manifest.applied_seq, pit)?
    };
    let store = Store::open_dir(dest.path())?;
    let mut report = store.check(&mut |_, _| {})?;
    // The data decides whether the restore goes ahead; a broken audit trail is the backup's
    // as it was, shown by `audit verify` on the restored store.
    report.violations.retain(|v| v.check != "audit");
    if let Some(first) = report.violations.first() {
        return Err(Error::corruption(format!(
            "the restored store fails its consistency check with {} violations; the first: \
             {} {} {}: {}",
            report.violations.len(),
            first.check,
            first.table,
            first.key,
            first.message
        )));
    }
    let recovery = store.recovery().clone();
    drop(store);
    {
        let path = dest.path().join(crate::store::DB_FILE);
        let db = redb::Database::open(&path).map_err(|e| Error::from(e).context(path.display()))?;
        let txn = db.begin_write()?;
        if standby.is_some() {
            crate::state::write_standby_seq(&txn, manifest.applied_seq + replayed)?;
        } else {
            let detail = format!(
                "restored from the backup {} (transactions to {}){}",
                backup.display(),
                manifest.applied_seq,
                if pit.journal.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", then {replayed} transactions replayed from the journal to {}",
                        manifest.applied_seq + replayed
                    )
                }
            );
            // A trail whose last entry is damaged cannot be extended; the restore still
            // completes (recovery comes first), and `audit verify` shows the damage.
            if let Err(e) = crate::audit::append(&txn, "backup.restore", &detail)
                && e.kind() != crate::ErrorKind::Corruption
            {
                return Err(e);
            }
        }
        txn.commit()?;
    }
    std::fs::rename(dest.path(), target.path()).map_err(|e| {
        Error::io(
            format!(
                "moving the restored store from {} to {}",
                dest.path().display(),
                target.path().display()
            ),
            e,
        )
    })?;
    dest.keep();
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        files::sync_dir(parent)?;
    }
    let to = target.path().to_path_buf();
    target.keep();
    Ok(RestoreReport {
        to,
        applied_seq: manifest.applied_seq + replayed,
        replayed,
        replay_stopped: stopped,
        last_commit_ns,
        stopped_before: passed,
        files: manifest.files.len(),
        bytes: manifest.bytes(),
        tables: manifest.tables,
        recovery,
        checked_rows: report.rows,
        checked_index_entries: report.index_entries,
    })
}

/// A restore's staging folder beside `to` (`.NAME.restoring-PID`), if there is one: a
/// restore into `to` is running, or was killed midway (then `to` is left empty). Returns the
/// folder and whether its process still runs.
pub fn restore_staging(to: &Path) -> Option<(PathBuf, bool)> {
    let (parent, prefix) = staging_prefix(to)?;
    std::fs::read_dir(&parent)
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = super::owner(&entry, &prefix)?;
            entry
                .file_type()
                .is_ok_and(|t| t.is_dir())
                .then(|| (entry.path(), super::process_running(pid)))
        })
}

/// Where restores into `to` stage, and the prefix of their folders' names (`.NAME.restoring-`,
/// followed by the restoring process's pid).
fn staging_prefix(to: &Path) -> Option<(PathBuf, String)> {
    let name = to.file_name()?.to_string_lossy().into_owned();
    let parent = match to.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    Some((parent, format!(".{name}.restoring-")))
}

/// Removes the staging folders beside `to` that restores killed midway left
/// (`.NAME.restoring-PID` whose process is gone; see [`super::remove_abandoned`]).
fn remove_abandoned_staging(to: &Path) {
    if let Some((parent, prefix)) = staging_prefix(to) {
        super::remove_abandoned(&parent, &prefix);
    }
}

/// What [`replay`] did.
#[derive(Default)]
struct Replayed {
    /// Records replayed.
    count: u64,
    /// Where reading stopped early, if it did.
    stopped: Option<String>,
    /// The commit time of the last record replayed.
    last_commit_ns: Option<u64>,
    /// The first record after the time bound (sequence number, commit time).
    passed: Option<(u64, u64)>,
}

/// Replays the journal records after `applied` into the restored database in `dir`: a commit
/// per batch of records (so a long journal is never all in memory), the last one durable.
fn replay(dir: &Path, applied: u64, pit: &PointInTime) -> Result<Replayed> {
    let path = dir.join(crate::store::DB_FILE);
    let mut db: Option<redb::Database> = None;
    let mut apply = |batch: Vec<(u64, Vec<u8>)>| -> Result<()> {
        let db = match &mut db {
            Some(db) => db,
            None => db.insert(
                redb::Database::open(&path).map_err(|e| Error::from(e).context(path.display()))?,
            ),
        };
        let mut txn = db.begin_write()?;
        // Made durable by the last commit: the store is not in place until then anyway.
        txn.set_durability(redb::Durability::None)?;
        let indexes = crate::catalog::init(&txn)?;
        crate::state::replay_records(&txn, &indexes, &batch)?;
        txn.commit()?;
        Ok(())
    };
    let scanned = crate::journal::replay_after(
        &pit.journal,
        applied,
        pit.until(),
        crate::journal::REPLAY_BATCH_BYTES,
        &mut apply,
    )
    .map_err(|e| match e.kind() {
        crate::ErrorKind::Corruption | crate::ErrorKind::Io => e.advise(
            "check the journal folders given to replay; nothing was restored, and the backup \
             and the folders are unchanged",
        ),
        _ => e,
    })?;
    let last = scanned.last.map_or(applied, |(seq, _)| seq);
    if let Some(until) = pit.until_seq
        && last < until
    {
        return Err(Error::invalid(format!(
            "the journal folders hold transactions up to {last}, not {until}{}",
            scanned
                .stopped
                .as_ref()
                .map(|s| format!(" (reading stopped at {s})"))
                .unwrap_or_default()
        )));
    }
    if let Some(db) = db {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
    }
    Ok(Replayed {
        count: last - applied,
        last_commit_ns: scanned.last.and_then(|(_, t)| t),
        passed: scanned.passed,
        stopped: scanned.stopped,
    })
}
