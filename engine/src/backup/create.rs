//! Taking a backup of an open store: one redb read transaction copied raw into a new
//! database, the configuration and archive files copied beside it, and the manifest last.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::files::{self, Dest};
use super::manifest::{FileSum, MANIFEST_FILE, Manifest, TableSum};
use crate::error::{Error, Result, guard_read};
use crate::state::read_applied_seq;
use crate::stats::Metrics;
use crate::store::{DB_FILE, Store};

/// Configuration files copied into a backup when the store has them.
const CONFIG_FILES: [&str; 2] = ["tradestore.toml", crate::monitor::ALERTS_FILE];
/// How often a backup looks whether the applier has caught up.
const POLL: Duration = Duration::from_millis(2);

/// What [`Store::backup`] made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupReport {
    /// The backup's directory.
    pub path: PathBuf,
    /// When its snapshot was taken (RFC 3339, UTC).
    pub created: String,
    /// It holds exactly transactions 1 ..= this.
    pub applied_seq: u64,
    /// Every redb table copied, with its entries and checksum.
    pub tables: Vec<TableSum>,
    /// Entries of every table together.
    pub rows: u64,
    /// Files written (the manifest aside).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// How long the backup took, in microseconds.
    pub elapsed_us: u64,
}

impl Store {
    /// Backs the store up into `dest`, which must not exist or be an empty directory (a
    /// directory inside the store's own is refused, except under its `backups/` folder).
    /// Writers go on committing while it runs.
    ///
    /// The backup holds every transaction acknowledged before the call, and is a consistent
    /// prefix of the store's history: it waits until the applier has moved every
    /// transaction durable at the call into redb, then copies one redb read transaction,
    /// which holds exactly transactions 1 ..= its applied sequence number. Beside the copy
    /// it writes an empty `journal/`, the store's `tradestore.toml` and `alerts.toml`, the
    /// archive segments the snapshot lists (each checked against the size and CRC32C it was
    /// written with), and last `backup.json`, the
    /// manifest with every table's row count and CRC32C and every file's size and CRC32C.
    /// Every file and directory is synced. On an error nothing is left in `dest`.
    ///
    /// The duration is recorded in the `tradestore_backup_duration_seconds` histogram; a
    /// failure counts in `tradestore_backup_failures_total`.
    pub fn backup(&self, dest: &Path) -> Result<BackupReport> {
        self.timed_backup(Some(dest))
    }

    /// Backs the store up into a new directory of its `backups/` folder named after the
    /// snapshot's time and sequence number: `backups/20261127T231500Z-seq42`. See
    /// [`Store::backup`].
    ///
    /// Directories of that form without a manifest are backups that a killed process left
    /// unfinished (this process holds the store, and runs one backup at a time): they are
    /// removed first.
    pub fn backup_in_store(&self) -> Result<BackupReport> {
        self.timed_backup(None)
    }

    fn timed_backup(&self, dest: Option<&Path>) -> Result<BackupReport> {
        let _one_at_a_time = self.shared.backing_up.lock();
        let started = Instant::now();
        if dest.is_none() {
            self.remove_unfinished_backups()?;
        }
        let outcome = self.run_backup(dest, started);
        match &outcome {
            Ok(_) => self.shared.metrics.backup(started.elapsed()),
            Err(_) => Metrics::count(&self.shared.metrics.backup_failures),
        }
        outcome
    }

    fn run_backup(&self, dest: Option<&Path>, started: Instant) -> Result<BackupReport> {
        if let Some(d) = dest {
            self.check_destination(d)?;
        }
        let target = self.shared.durable.load(Ordering::Acquire);
        self.wait_applied(target)?;
        let read = self.shared.db.begin_read()?;
        let applied = read_applied_seq(&read)?;
        let created_ns = crate::index::now_ns();
        let dest = match dest {
            Some(d) => Dest::claim(d, "backup destination")?,
            None => self.claim_in_store(created_ns, applied)?,
        };
        let db_path = dest.path().join(DB_FILE);
        let tables = {
            let copy = redb::Database::builder()
                .create(&db_path)
                .map_err(|e| Error::from(e).context(db_path.display()))?;
            let what = format!("copying {}", self.dir().join(DB_FILE).display());
            guard_read(&what, || super::tables::copy_all(&read, &copy, applied))?
        };
        let segments: Vec<crate::archive::SegmentMeta> =
            crate::catalog::scan_json(&read, crate::archive::CATALOG_PREFIX)?;
        let store_id = crate::identity::of_catalog(&read)?;
        drop(read);
        files::sync_file(&db_path)?;
        let mut manifest = Manifest::new(created_ns, applied, tables);
        manifest.store_id = store_id;
        let (bytes, crc32c) = files::file_sum(&db_path)?;
        manifest.files.push(FileSum {
            path: DB_FILE.to_owned(),
            bytes,
            crc32c,
        });
        files::make_dir(&dest.path().join("journal"))?;
        for name in CONFIG_FILES {
            let from = self.dir().join(name);
            if std::fs::symlink_metadata(&from).is_ok() {
                let (bytes, crc32c) = files::copy_file(&from, &dest.path().join(name))?;
                manifest.files.push(FileSum {
                    path: name.to_owned(),
                    bytes,
                    crc32c,
                });
            }
        }
        // The archive segments the snapshot lists, and nothing else of `archive/`: files
        // no segment lists (an interrupted archive run's, the archived journal) are not the
        // snapshot's data. Segments are renamed into place before they are listed and never
        // change after; one whose size differs from its listing is damaged, and is refused
        // before anything is copied (whatever it has grown to).
        if !segments.is_empty() {
            let to = dest.path().join(crate::archive::FOLDER);
            std::fs::create_dir_all(&to)
                .map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
            for s in &segments {
                let from = files::under(self.dir(), &s.file);
                let meta = files::regular_file(&from)?;
                if meta.len() != s.file_bytes {
                    return Err(Error::corruption(format!(
                        "archive segment {}: {} bytes, but it was written with {}: the \
                         segment is damaged",
                        from.display(),
                        meta.len(),
                        s.file_bytes
                    )));
                }
                let (bytes, crc32c) = files::copy_file(&from, &files::under(dest.path(), &s.file))?;
                manifest.files.push(FileSum {
                    path: s.file.clone(),
                    bytes,
                    crc32c,
                });
            }
            files::sync_dir(&to)?;
            files::sync_dir(&dest.path().join("archive"))?;
        }
        super::verify::check_segments(&segments, &manifest.files)
            .map_err(|e| e.context(self.dir().display()))?;
        files::sync_dir(dest.path())?;
        // Last: a backup without its manifest is unfinished.
        files::write_atomic(&dest.path().join(MANIFEST_FILE), &manifest.to_json()?)?;
        let path = dest.path().to_path_buf();
        dest.keep();
        Ok(BackupReport {
            path,
            created: manifest.created.clone(),
            applied_seq: applied,
            rows: manifest.rows(),
            files: manifest.files.len(),
            bytes: manifest.bytes(),
            tables: manifest.tables,
            elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }

    /// Waits until redb holds every transaction up to `seq` (the applier moves them from
    /// the overlay in batches).
    fn wait_applied(&self, seq: u64) -> Result<()> {
        loop {
            if self.shared.poisoned.load(Ordering::SeqCst) {
                return Err(self.shared.poison_error());
            }
            if read_applied_seq(&self.shared.db.begin_read()?)? >= seq {
                return Ok(());
            }
            self.shared.apply_cv.notify_one();
            std::thread::sleep(POLL);
        }
    }

    /// Refuses a destination inside the store's directory, except under `backups/`.
    fn check_destination(&self, dest: &Path) -> Result<()> {
        let store = files::resolve(self.dir())?;
        let target = files::resolve(dest)?;
        let backups = store.join("backups");
        if target.starts_with(&store) && !(target.starts_with(&backups) && target != backups) {
            return Err(Error::invalid(format!(
                "backup destination {} is inside the store's directory {}: name a directory \
                 outside it, or one under its backups/ folder",
                dest.display(),
                self.dir().display()
            )));
        }
        Ok(())
    }

    /// A new directory `backups/<time>-seq<applied>` of the store (with `-2`, `-3`, ... if
    /// the name is taken).
    /// Removes the directories of `backups/` named like the backups it makes that hold no
    /// manifest. Called with `backing_up` held.
    fn remove_unfinished_backups(&self) -> Result<()> {
        let backups = self.dir().join("backups");
        let entries = match std::fs::read_dir(&backups) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("reading {}", backups.display()), e)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io(format!("reading {}", backups.display()), e))?;
            let path = entry.path();
            let ours = entry
                .file_name()
                .to_str()
                .is_some_and(is_in_store_backup_name);
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if ours && is_dir && !path.join(MANIFEST_FILE).exists() {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            }
        }
        Ok(())
    }

    fn claim_in_store(&self, created_ns: u64, applied: u64) -> Result<Dest> {
        let name = format!("{}-seq{applied}", compact_timestamp(created_ns));
        let backups = self.dir().join("backups");
        let mut n = 1;
        loop {
            let candidate = if n == 1 {
                backups.join(&name)
            } else {
                backups.join(format!("{name}-{n}"))
            };
            if std::fs::symlink_metadata(&candidate).is_err() {
                return Dest::claim(&candidate, "backup destination");
            }
            n += 1;
        }
    }
}

/// Whether `name` is one [`Store::backup_in_store`] gives: `20261127T231500Z-seq42`, perhaps
/// with `-2`, `-3`, ... after it.
fn is_in_store_backup_name(name: &str) -> bool {
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let Some((stamp, rest)) = name.split_once("-seq") else {
        return false;
    };
    let stamp = stamp.as_bytes();
    let stamp_ok = stamp.len() == 16
        && digits(&stamp[..8])
        && stamp[8] == b'T'
        && digits(&stamp[9..15])
        && stamp[15] == b'Z';
    let seq_ok = match rest.split_once('-') {
        Some((seq, n)) => digits(seq.as_bytes()) && digits(n.as_bytes()),
        None => digits(rest.as_bytes()),
    };
    stamp_ok && seq_ok
}

/// `20261127T231500Z`: the time in UTC, to the second, as a file name.
pub(crate) fn compact_timestamp(ns: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_nanos(ns))
        .to_string()
        .replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::is_in_store_backup_name;

    #[test]
    fn only_names_of_in_store_backups_are_taken_for_them() {
        for name in ["20261127T231500Z-seq42", "20261127T231500Z-seq0-3"] {
            assert!(is_in_store_backup_name(name), "{name}");
        }
        for name in [
            "20261127T231500Z-seq",
            "20261127T231500Z-seq4-",
            "20261127X231500Z-seq4",
            "2026112T231500Z-seq4",
            "my-backup",
            "é0261127T231500Z-seq4",
            "20261127T231500Z-seq4-x",
        ] {
            assert!(!is_in_store_backup_name(name), "{name}");
        }
    }
}
