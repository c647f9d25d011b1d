//! The store: opening a directory (and recovering it), snapshots, write transactions and
//! their commit through the journal.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use tradestore_schema::TableId;

use crate::breaker::Breaker;
use crate::catalog;
use crate::commit::{CommitState, Shared, run_applier};
use crate::config::Config;
use crate::error::{Error, Result, guard_read};
use crate::ids::Ids;
use crate::journal::{FileIo, Journal, JournalIo, JournalOptions};
use crate::keys;
use crate::layout::{self, IndexSpec};
use crate::lock::{DeadlockRecord, LockManager, LockOptions};
use crate::state::{Published, read_acked_seq, read_applied_seq, write_acked_seq};
use crate::stats::{Metrics, Stats};
use crate::txn::{LockGuard, Mode, ReadTx, Snapshot, WriteTx};

/// The redb file inside a store's directory.
pub const DB_FILE: &str = "tradestore.redb";
/// Folders a store's directory holds besides the redb file.
pub const SUBDIRS: [&str; 3] = ["journal", "archive", "backups"];

/// What opening the store found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Recovery {
    /// Journal records replayed into redb (transactions acknowledged after the last
    /// checkpoint).
    pub replayed: u64,
    /// A partial write at the end of the journal that was cut off (a crash during a group
    /// write; that group was never acknowledged).
    pub torn_tail: Option<String>,
    /// Acknowledged records the journal had lost, when `accept_journal_loss` let the store
    /// open without them.
    pub journal_loss: Option<String>,
    /// Damage found in journal records that the database already holds (at or below its
    /// checkpoint): nothing stored is missing, and opening went past it, but a
    /// point-in-time recovery through those records would miss them. Empty when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub journal_damage: Vec<String>,
}

impl Recovery {
    /// Whether opening had anything to recover or report: records to replay, a torn tail,
    /// a loss, damage.
    pub fn found_anything(&self) -> bool {
        self.replayed > 0
            || self.torn_tail.is_some()
            || self.journal_loss.is_some()
            || !self.journal_damage.is_empty()
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} journal records replayed", self.replayed)?;
        if let Some(t) = &self.torn_tail {
            write!(f, "; torn tail cut: {t}")?;
        }
        if let Some(lost) = &self.journal_loss {
            write!(f, "; journal loss: {lost}")?;
        }
        for d in &self.journal_damage {
            write!(f, "; damage in checkpointed journal records: {d}")?;
        }
        Ok(())
    }
}

/// Where a store's bytes go: by default the files under its directory.
pub struct Storage {
    /// The journal's file operations.
    pub journal: Arc<dyn JournalIo>,
    /// A redb storage backend to use instead of the file `tradestore.redb`.
    pub redb: Option<Box<dyn redb::StorageBackend>>,
}

impl Default for Storage {
    fn default() -> Storage {
        Storage {
            journal: Arc::new(FileIo),
            redb: None,
        }
    }
}

/// A boxed backend is a backend.
#[derive(Debug)]
struct Boxed(Box<dyn redb::StorageBackend>);

impl redb::StorageBackend for Boxed {
    fn len(&self) -> std::result::Result<u64, std::io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), std::io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::result::Result<(), std::io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::result::Result<(), std::io::Error> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::result::Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
    fn close(&self) -> std::result::Result<(), std::io::Error> {
        self.0.close()
    }
}

/// How [`Store::transact`] retries conflicts and deadlocks: exponential backoff with full
/// jitter, bounded by attempts and total time.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 16).
    pub max_attempts: u32,
    /// Upper bound of the first backoff (default 100 us); doubles each retry.
    pub initial_backoff: Duration,
    /// Largest backoff (default 50 ms).
    pub max_backoff: Duration,
    /// No retry starts after this much time since the first attempt (default 5 s).
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 16,
            initial_backoff: Duration::from_micros(100),
            max_backoff: Duration::from_millis(50),
            max_total: Duration::from_secs(5),
        }
    }
}

/// A transaction submitted without waiting: [`CommitTicket::wait`] returns when it is
/// durable, [`CommitTicket::poll`] says whether it is yet.
#[must_use = "a ticket says when the transaction is durable"]
pub struct CommitTicket {
    // Weak: a ticket does not keep a closed store's database open.
    shared: Weak<Shared>,
    closed_durable: Arc<AtomicU64>,
    seq: u64,
}

impl CommitTicket {
    /// Blocks until the transaction is durable (or the store failed).
    pub fn wait(self) -> Result<()> {
        match self.shared.upgrade() {
            Some(shared) => shared.wait_durable(self.seq),
            None => self.after_close(),
        }
    }

    /// `None` while the transaction is not yet durable.
    pub fn poll(&self) -> Option<Result<()>> {
        match self.shared.upgrade() {
            Some(shared) => shared.poll_durable(self.seq),
            None => Some(self.after_close()),
        }
    }

    /// Closing a store makes every submitted transaction durable unless storage failed.
    fn after_close(&self) -> Result<()> {
        if self.seq <= self.closed_durable.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Error::new(
                crate::ErrorKind::Io,
                "the store closed after a storage failure, before this transaction became durable",
            ))
        }
    }

    /// The transaction's sequence number (its position in the journal).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// What [`Store::compact`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Compaction {
    /// What opening the store recovered from its journal first.
    pub recovery: Recovery,
    /// The database file's size before, in bytes.
    pub before_bytes: u64,
    /// Its size after, in bytes.
    pub after_bytes: u64,
}

/// An open store. Share it between threads behind an `Arc`: reads never block; write
/// transactions run in parallel on their callers' threads and commit in groups.
pub struct Store {
    pub(crate) shared: Arc<Shared>,
    pub(crate) queries: Arc<crate::query::QueryEngine>,
    pub(crate) monitor: Arc<crate::monitor::Monitor>,
    /// The alert manager, when `alerts.toml` configures one.
    pub(crate) alerts: Option<Arc<Mutex<crate::monitor::AlertManager>>>,
    alerts_stop: Arc<AtomicBool>,
    dir: PathBuf,
    recovery: Recovery,
    threads: Vec<JoinHandle<()>>,
    /// Set when the store closes: the last durable transaction, for tickets outliving it.
    closed_durable: Arc<AtomicU64>,
}

/// Where a new database is made before it is renamed to [`DB_FILE`]: a store's database
/// appears whole (created, its tables and catalog committed durably) or not at all, so a
/// process killed while it creates a store leaves this file, which the next creation
/// replaces, and never a half-made `tradestore.redb`.
pub const NEW_DB_FILE: &str = "tradestore.redb.new";

/// Whether `dir` holds only what creating a store leaves before its database is in place:
/// its folders (empty, or holding only empty folders), [`NEW_DB_FILE`] and
/// `tradestore.toml`, at least one of the first two. Such a folder is a store whose creation was interrupted (or a folder
/// prepared with a configuration), not someone else's files: opening it creates the store.
pub fn is_unfinished_store(dir: &Path) -> bool {
    fn only_empty_dirs(p: &Path, depth: u32) -> bool {
        depth < 4
            && std::fs::read_dir(p).is_ok_and(|entries| {
                entries.into_iter().all(|e| {
                    e.is_ok_and(|e| {
                        e.file_type().is_ok_and(|t| t.is_dir())
                            && only_empty_dirs(&e.path(), depth + 1)
                    })
                })
            })
    }
    if dir.join(DB_FILE).exists() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut begun = false;
    let only_creation = entries.into_iter().all(|e| {
        let Ok(e) = e else { return false };
        let Ok(t) = e.file_type() else { return false };
        let name = e.file_name();
        let name = name.to_string_lossy();
        if t.is_dir() {
            begun = true;
            SUBDIRS.contains(&name.as_ref()) && only_empty_dirs(&e.path(), 0)
        } else {
            begun |= name == NEW_DB_FILE;
            t.is_file() && (name == NEW_DB_FILE || name == crate::config::CONFIG_FILE)
        }
    });
    // An empty folder, or one holding only a configuration, is not a creation under way.
    begun && only_creation
}

/// The error of a store another process is creating.
fn busy(new: &Path) -> Error {
    Error::new(
        crate::ErrorKind::Busy,
        format!("{}: another process is creating this store", new.display()),
    )
}

/// Creates the database of a new store in `dir` (see [`NEW_DB_FILE`]) and opens the store.
/// redb locks the file while it is made, so a second process creating the same store at the
/// same moment is refused as busy instead of emptying the first one's file.
fn create_db(
    dir: &Path,
    builder: &redb::Builder,
    config: Config,
    journal: Arc<dyn JournalIo>,
) -> Result<Store> {
    let new = dir.join(NEW_DB_FILE);
    let open = |fresh: bool| -> Result<Database> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(!fresh)
            .create_new(fresh)
            .truncate(false)
            .open(&new)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    busy(&new)
                } else {
                    Error::io(format!("creating {}", new.display()), e)
                }
            })?;
        // redb locks the file before it reads it: a creation under way elsewhere is busy.
        let backend = redb::backends::FileBackend::new(file)
            .map_err(|e| Error::from(e).context(new.display()))?;
        builder
            .create_with_backend(backend)
            .map_err(|e| Error::from(e).context(new.display()))
    };
    let db = match open(false) {
        Ok(db) => db,
        Err(e) if e.kind() == crate::ErrorKind::Busy => return Err(busy(&new)),
        // What a creation killed before its first commit left (an empty or partial header):
        // never a store. Made again from nothing; a process that got there first is busy.
        Err(_) => {
            std::fs::remove_file(&new)
                .map_err(|e| Error::io(format!("removing {}", new.display()), e))?;
            open(true)?
        }
    };
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    for t in TableId::ALL {
        txn.open_table(layout::data_table(t))?;
    }
    catalog::init(&txn)?;
    txn.commit()?;
    // Renamed while still open and locked: no other creation can empty it on the way.
    let path = dir.join(DB_FILE);
    std::fs::rename(&new, &path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", new.display(), path.display()),
            e,
        )
    })?;
    crate::backup::files::sync_dir(dir)?;
    drop(db);
    Store::open_with(
        dir,
        config,
        Storage {
            journal,
            redb: None,
        },
    )
}

impl Store {
    /// Opens the store in `dir`, creating the directory, its folders and the database on
    /// first use, and replaying the journal after the last checkpoint.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Store> {
        Store::open_with(dir, config, Storage::default())
    }

    /// Opens the store with explicit storage: the journal's file operations and, optionally,
    /// a redb storage backend in place of `tradestore.redb`. This is the seam the crash
    /// tests inject faults through.
    pub fn open_with(dir: impl AsRef<Path>, config: Config, storage: Storage) -> Result<Store> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        // With `keep_journal`, the folder released segments go to exists from the start, so a
        // restore can name it before the first segment is released.
        let kept = config
            .keep_journal
            .then(|| Path::new("archive").join("journal"));
        for sub in SUBDIRS.iter().map(Path::new).chain(kept.as_deref()) {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p)
                .map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
        }
        let path = dir.join(DB_FILE);
        if storage.redb.is_none() && std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(Error::invalid(format!(
                "{} is not a regular file (a folder, a device or a pipe): it cannot be the \
                 store's database; move it away",
                path.display()
            )));
        }
        // redb would take an empty file for a new database: a store whose file was emptied
        // would open as an empty store (or be rebuilt from whatever journal is left).
        if storage.redb.is_none()
            && std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0)
        {
            return Err(Error::corruption(format!(
                "{} is empty (0 bytes): the database was lost, or its creation never finished. \
                 For a new store, remove the file and open it again; otherwise restore from a \
                 dump or a backup",
                path.display()
            )));
        }
        let mut builder = Database::builder();
        builder.set_cache_size(usize::try_from(config.cache_size_mb << 20).unwrap_or(usize::MAX));
        let mut db = match storage.redb {
            Some(backend) => builder.create_with_backend(Boxed(backend)),
            None if !path.exists() => return create_db(&dir, &builder, config, storage.journal),
            None => builder.create(&path),
        }
        .map_err(|e| Error::from(e).context(path.display()))?;
        if config.check_on_open
            && !db
                .check_integrity()
                .map_err(|e| Error::from(e).context(path.display()))?
        {
            return Err(Error::corruption(format!(
                "{}: integrity check failed and was repaired; verify with `tradestore check`",
                path.display()
            )));
        }
        let shown = path.display().to_string();
        let indexes = guard_read(&shown, || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            for t in TableId::ALL {
                txn.open_table(layout::data_table(t))?;
            }
            let indexes = catalog::init(&txn)?;
            crate::index::convert_layouts(&txn, &indexes)?;
            let id = crate::identity::ensure(&txn)?;
            txn.commit()?;
            Ok((indexes, id))
        })?;
        let (indexes, store_id) = indexes;
        // Before anything is replayed: a journal folder of another store (copied or linked
        // in) is refused, and one without an id is marked as this store's.
        crate::identity::claim_folder(&dir.join("journal"), &store_id)?;
        let kept = dir.join("archive").join("journal");
        if config.keep_journal || kept.is_dir() {
            crate::identity::claim_folder(&kept, &store_id)?;
        }
        let (applied, acked) = {
            let read = db.begin_read()?;
            (read_applied_seq(&read)?, read_acked_seq(&read)?)
        };
        let options = JournalOptions {
            segment_bytes: config.journal_segment_mb << 20,
            keep_released: config
                .keep_journal
                .then(|| dir.join("archive").join("journal")),
            accept_loss: config.accept_journal_loss,
            direct: config.journal_direct_io,
        };
        let (mut journal, found) = Journal::open_acked(
            &dir.join("journal"),
            options,
            storage.journal,
            applied,
            acked.max(applied),
        )?;
        let mut recovery = Recovery {
            replayed: found.records.len() as u64,
            torn_tail: found.torn_tail.as_ref().map(|t| t.to_string()),
            journal_loss: found.lost.clone(),
            journal_damage: found.damaged.clone(),
        };
        if let Some((last, _)) = found.records.last() {
            let last = *last;
            guard_read(&shown, || {
                let mut txn = db.begin_write()?;
                txn.set_durability(Durability::Immediate)?;
                txn.set_quick_repair(true);
                crate::state::replay_records(&txn, &indexes, &found.records)?;
                txn.commit()?;
                Ok(())
            })?;
            journal.release(last)?;
        } else if found.lost.is_some() {
            // The loss is accepted once: from now on the journal need only reach where it
            // ends now.
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            write_acked_seq(&txn, found.last_seq)?;
            txn.commit()?;
        }
        let mut indexes = indexes;
        guard_read(&shown, || {
            crate::index::finish_interrupted(&db, &mut indexes)
        })?;
        let next_slot = u16::try_from(indexes.len())
            .map_err(|_| Error::corruption("the catalog lists too many indexes"))?;
        recovery.replayed = found.records.len() as u64;
        let last_seq = journal.last_seq().max(applied);
        let ids = Arc::new(Ids::default());
        {
            let txn = db.begin_read()?;
            for t in TableId::ALL
                .into_iter()
                .filter(|t| t.primary_key() == ["id"])
            {
                let table = txn.open_table(layout::data_table(t))?;
                if let Some((k, _)) = table.last()?
                    && let Some(id) = keys::decode(k.value())?.first().and_then(|v| v.as_u64())
                {
                    ids.observe(t, id);
                }
                // Above the ids of rows deleted since (the last row may be gone).
                if let Some(id) = crate::state::read_next_id(&txn, t)?.checked_sub(1) {
                    ids.observe(t, id);
                }
            }
        }
        let archive = {
            let txn = db.begin_read()?;
            Arc::new(crate::archive::Archive::load(
                &dir,
                &txn,
                config.archive_cache_mb << 20,
                &indexes,
            )?)
        };
        if let Some(id) = archive.max_id() {
            ids.observe(TableId::Trades, id);
        }
        let config_lock_timeout = config.lock_timeout_ms;
        let row_cache_bytes = config.row_cache_mb << 20;
        let recent = crate::recent::RecentTrades::new(config.recent_trades).map(Arc::new);
        let instrument_tail_bytes = config.instrument_tail_mb << 20;
        let (breaker_failures, breaker_cooldown_ms) =
            (config.breaker_failures, config.breaker_cooldown_ms);
        let shared = Arc::new(Shared {
            db,
            config,
            indexes: RwLock::new(Arc::new(indexes)),
            index_ddl: Mutex::new(()),
            backing_up: Mutex::new(()),
            next_slot: std::sync::atomic::AtomicU16::new(next_slot),
            index_gen: AtomicU64::new(0),
            row_changes: Default::default(),
            published: RwLock::new(Published {
                durable: last_seq,
                ..Published::default()
            }),
            overlay_bytes: AtomicU64::new(0),
            graveyard: Mutex::new(crate::state::Graveyard::default()),
            view: RwLock::new(None),
            view_gen: AtomicU64::new(0),
            rows: crate::rowcache::RowCache::new(row_cache_bytes).map(Arc::new),
            recent,
            tails: crate::tail::InstrumentTails::new(instrument_tail_bytes).map(Arc::new),
            archive,
            commit: Mutex::new(CommitState::new(last_seq)),
            durable: AtomicU64::new(last_seq),
            last_commit_ns: AtomicU64::new(found.last_commit_ns.unwrap_or(0)),
            commit_cv: Condvar::new(),
            journal: Mutex::new(journal),
            apply_queue: Mutex::new(VecDeque::new()),
            apply_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            poison: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            ids,
            metrics: Metrics::default(),
            locks: Arc::new(LockManager::new(LockOptions {
                wait_timeout: Duration::from_millis(config_lock_timeout),
                ..LockOptions::default()
            })),
            next_tx: AtomicU64::new(1),
            breaker: Breaker::new(
                u32::try_from(breaker_failures).unwrap_or(u32::MAX),
                Duration::from_millis(breaker_cooldown_ms),
            ),
        });
        let queries = Arc::new(crate::query::QueryEngine::new(
            shared.config.plan_cache_size,
        ));
        // Checked before any thread starts: a refused file leaves nothing running that
        // holds the database open, so the caller can fix it and open again.
        let alerts = match crate::monitor::alerts_config(&dir)? {
            Some(manager) => {
                crate::monitor::check_rule_series(
                    &manager,
                    &crate::monitor::metrics::gather(&shared, &queries, &dir),
                    &dir.join(crate::monitor::ALERTS_FILE),
                )?;
                Some(manager)
            }
            None => None,
        };
        let mut started = Started {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
        };
        {
            let s = Arc::clone(&shared);
            started.spawn("applier", move || run_applier(&s, last_seq))?;
            let s = Arc::clone(&shared);
            started.spawn("flusher", move || s.run_flusher())?;
        }
        // The workload recorded by earlier processes is advisory: an unreadable one is
        // skipped (and replaced when this process saves its own).
        let _ = queries.load_workload(&shared);
        if shared.config.index_auto {
            let (s, q) = (Arc::clone(&shared), Arc::clone(&queries));
            started.spawn("index manager", move || {
                crate::query::run_index_manager(&s, &q)
            })?;
        }
        if shared.config.archive_after_s > 0 {
            let (s, d) = (Arc::clone(&shared), dir.clone());
            started.spawn("archiver", move || crate::archive::run_archiver(&s, &d))?;
        }
        let monitor = Arc::new(crate::monitor::Monitor::default());
        if shared.config.monitor {
            let (s, q, m, d) = (
                Arc::clone(&shared),
                Arc::clone(&queries),
                Arc::clone(&monitor),
                dir.clone(),
            );
            let interval = Duration::from_millis(shared.config.monitor_interval_ms);
            started.spawn("sampler", move || {
                crate::monitor::run_sampler(&s, &q, &m, &d, interval)
            })?;
        }
        // Nothing fails from here on: the store owns the threads.
        let mut threads = std::mem::take(&mut started.threads);
        let alerts_stop = Arc::new(AtomicBool::new(false));
        let alerts = match alerts {
            None => None,
            Some(manager) => {
                let interval = manager.evaluation_interval();
                let manager = manager.into_shared();
                let source: Arc<dyn crate::monitor::MetricSource + Send + Sync> = monitor.clone();
                threads.push(crate::monitor::alerts::spawn(
                    Arc::clone(&manager),
                    source,
                    interval,
                    Arc::clone(&alerts_stop),
                ));
                Some(manager)
            }
        };
        Ok(Store {
            shared,
            queries,
            monitor,
            alerts,
            alerts_stop,
            dir,
            recovery,
            threads,
            closed_durable: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Compacts the database file of the store in `dir`, offline: opens the store (which
    /// replays its journal), closes it (everything applied and checkpointed), then has redb
    /// rewrite the file without its free pages. The store must not be open elsewhere: a
    /// store open in another process makes it a [`ErrorKind::Busy`](crate::ErrorKind)
    /// error, and nothing changes.
    ///
    /// The applier commits to redb without syncing between checkpoints, and redb frees the
    /// pages those commits replace only at a checkpoint, so the file keeps more free pages
    /// than a database synced on every commit; they are reused as data grows, but the file
    /// never shrinks on its own.
    ///
    /// The file passes redb's full integrity check first (`check_on_open`, whatever the
    /// configuration says): a damaged file is refused, never rewritten.
    pub fn compact(dir: impl AsRef<Path>, config: Config) -> Result<Compaction> {
        let dir = dir.as_ref();
        let cache = usize::try_from(config.cache_size_mb << 20).unwrap_or(usize::MAX);
        let config = Config {
            check_on_open: true,
            ..config
        };
        let recovery = Store::open(dir, config)?.recovery().clone();
        let path = dir.join(DB_FILE);
        let size = || {
            std::fs::metadata(&path)
                .map(|m| m.len())
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))
        };
        let before_bytes = size()?;
        let mut builder = Database::builder();
        builder.set_cache_size(cache);
        let mut db = builder
            .open(&path)
            .map_err(|e| Error::from(e).context(path.display()))?;
        // Each pass moves pages towards the start of the file and truncates it; a pass that
        // finds nothing to do ends it.
        // redb panics on some damage it meets while moving pages; the pass that panicked is
        // not committed, so the file keeps its last committed state.
        guard_read(&format!("compacting {}", path.display()), || {
            while db
                .compact()
                .map_err(|e| Error::from(e).context(path.display()))?
            {}
            Ok(())
        })?;
        drop(db);
        Ok(Compaction {
            recovery,
            before_bytes,
            after_bytes: size()?,
        })
    }

    /// Opens the store in `dir` with the configuration found there ([`Config::load`]).
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Store> {
        let config = Config::load(dir.as_ref())?;
        Store::open(dir, config)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// What opening the store recovered.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The secondary indexes.
    pub fn indexes(&self) -> Arc<Vec<IndexSpec>> {
        Arc::clone(&self.shared.indexes.read())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        self.shared.snapshot()
    }

    /// A consistent read snapshot of every acknowledged write.
    pub fn read(&self) -> Result<ReadTx> {
        Ok(ReadTx::new(self.snapshot()?))
    }

    fn begin(&self, mode: Mode) -> Result<(WriteTx, u64)> {
        if self.shared.poisoned.load(Ordering::SeqCst) {
            return Err(self.shared.poison_error());
        }
        let epoch = self.shared.commit.lock().epoch;
        let max = usize::try_from(self.shared.config.max_value_bytes).unwrap_or(usize::MAX);
        let mut tx = WriteTx::new(
            self.snapshot()?,
            Arc::clone(&self.shared),
            max,
            self.lock_guard(),
        );
        tx.set_mode(mode);
        Ok((tx, epoch))
    }

    fn lock_guard(&self) -> LockGuard {
        LockGuard {
            manager: Arc::clone(&self.shared.locks),
            tx: self.shared.next_tx.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Runs `f` in a write transaction and commits it when `f` returns `Ok`; returns after
    /// the commit is durable (its group's journal fsync returned). When `f` returns `Err`
    /// nothing it wrote is kept. A concurrent transaction that changed what `f` read makes
    /// the commit fail with a retryable [`ErrorKind::Conflict`]; [`Store::transact`] retries.
    pub fn write<T>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let (mut tx, epoch) = self.begin(Mode::Api)?;
        let out = f(&mut tx).inspect_err(|e| self.note_failure(e))?;
        let (parts, _locks) = tx.into_parts();
        self.shared.commit(parts, epoch, started, true)?;
        Ok(out)
    }

    /// Runs `f` and submits its transaction without waiting for durability: the returned
    /// ticket says when it is durable. One thread can pipeline many transactions this way;
    /// a background flusher writes their groups.
    pub fn submit<T>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T>,
    ) -> Result<(T, CommitTicket)> {
        let started = Instant::now();
        let (mut tx, epoch) = self.begin(Mode::Api)?;
        let out = f(&mut tx).inspect_err(|e| self.note_failure(e))?;
        // Locks are released once the transaction is ordered (validated and queued):
        // every later transaction sees it or conflicts with it.
        let (parts, _locks) = tx.into_parts();
        let seq = self.shared.commit(parts, epoch, started, false)?;
        Ok((
            out,
            CommitTicket {
                shared: Arc::downgrade(&self.shared),
                closed_durable: Arc::clone(&self.closed_durable),
                seq,
            },
        ))
    }

    /// [`Store::submit`], running `f` again after retryable errors, within `policy`.
    ///
    /// A submitted transaction reads durable data only, so one that reads a row that an
    /// earlier submission still in flight writes (the same account's cash after two fills in
    /// a row) conflicts with it. After a conflict this waits until every transaction ordered
    /// so far is durable (about one journal sync; this thread may write the group itself),
    /// so that the next attempt's snapshot holds what it conflicted with, and runs `f`
    /// again. A deadlock backs off as in [`Store::transact`]. Returns the value and the ticket
    /// of the attempt that was ordered.
    pub fn submit_transact<T>(
        &self,
        policy: &RetryPolicy,
        mut f: impl FnMut(&mut WriteTx) -> Result<T>,
    ) -> Result<(T, CommitTicket)> {
        self.retrying(policy, true, || self.submit(&mut f))
    }

    /// Runs `f` in a write transaction like [`Store::write`], retrying it after retryable
    /// errors (conflicts, deadlocks) with exponential backoff and jitter, within `policy`.
    pub fn transact<T>(
        &self,
        policy: &RetryPolicy,
        mut f: impl FnMut(&mut WriteTx) -> Result<T>,
    ) -> Result<T> {
        self.retrying(policy, false, || self.write(&mut f))
    }

    /// Runs `attempt` until it succeeds, fails for good, or `policy` runs out. Between
    /// attempts: exponential backoff with full jitter, or, after a conflict when
    /// `wait_on_conflict`, until every transaction ordered so far is durable.
    fn retrying<R>(
        &self,
        policy: &RetryPolicy,
        wait_on_conflict: bool,
        mut attempt: impl FnMut() -> Result<R>,
    ) -> Result<R> {
        let first = Instant::now();
        let mut backoff = policy.initial_backoff;
        let mut attempts = 1;
        loop {
            match attempt() {
                Err(e)
                    if e.is_retryable()
                        && attempts < policy.max_attempts
                        && first.elapsed() < policy.max_total =>
                {
                    Metrics::count(&self.shared.metrics.retries);
                    if wait_on_conflict && e.kind() == crate::ErrorKind::Conflict {
                        let ordered = self.shared.commit.lock().next_seq.saturating_sub(1);
                        self.shared.wait_durable(ordered)?;
                    } else {
                        let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX).max(1);
                        std::thread::sleep(Duration::from_nanos(fastrand::u64(0..=nanos)));
                        backoff = (backoff * 2).min(policy.max_backoff);
                    }
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// Loads a restore's rows ([`crate::bulk`]): under the commit lock, once every acked
    /// write is in redb, validates the batch against the store and writes it in one
    /// durable redb commit (the journal is not involved: the commit itself is the
    /// durability point). Nothing is written when validation fails. Transactions that
    /// began before it conflict at commit (the epoch moves).
    pub(crate) fn bulk_load(&self, mut batch: crate::bulk::Batch) -> Result<()> {
        let shared = &self.shared;
        let mut st = self.drained()?;
        let indexes = self.indexes();
        let base = self.read()?;
        let mut txn = shared.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.set_quick_repair(true);
        // On an error `txn` is dropped uncommitted: nothing was written.
        batch.load(&base, &indexes, &txn)?;
        drop(base);
        let counts: Vec<String> = batch
            .counts()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{} {n}", t.name()))
            .collect();
        let total: u64 = batch.counts().map(|(_, n)| n).sum();
        crate::audit::append(
            &txn,
            "restore",
            &format!("{total} rows loaded ({})", counts.join(", ")),
        )?;
        // A restore only adds rows (one whose key exists fails validation), and the row
        // cache holds only rows that exist: none of its rows is changed, so none is
        // forgotten; fills still pause over the commit, as for every row change.
        let rows = shared
            .rows
            .as_deref()
            .map(crate::rowcache::RowCache::begin_write);
        shared.commit_redb(txn, rows)?;
        st.epoch += 1;
        drop(st);
        if let Some(recent) = &shared.recent {
            shared.remember_trades(batch.newest_trades(recent.size()));
        }
        for (table, id) in batch.max_ids() {
            shared.ids.observe(table, id);
        }
        for (table, n) in batch.counts() {
            shared.row_changes[table as usize].fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Takes the commit lock once every acked write is in redb (nothing pending, queued or
    /// in the overlay): a redb write transaction begun under it sees every committed
    /// transaction, and no other can commit until the guard is dropped.
    pub(crate) fn drained(&self) -> Result<parking_lot::MutexGuard<'_, CommitState>> {
        let shared = &self.shared;
        let mut st = shared.commit.lock();
        loop {
            if shared.poisoned.load(Ordering::SeqCst) {
                return Err(shared.poison_error());
            }
            // One lock at a time: the publisher takes `published`, then the queue.
            let queued = !shared.apply_queue.lock().is_empty();
            let unapplied = !shared.published.read().overlay.is_empty();
            let drained = st.pending.is_empty() && !st.leader && !queued && !unapplied;
            if drained {
                return Ok(st);
            }
            shared.apply_cv.notify_one();
            shared.commit_cv.wait_for(&mut st, Duration::from_millis(2));
        }
    }

    /// A write transaction of the public API over `snap`, outside the commit pipeline: a
    /// migration runs one under the drained commit lock and writes its rows itself.
    pub(crate) fn detached_tx(&self, snap: Snapshot) -> WriteTx {
        let max = usize::try_from(self.shared.config.max_value_bytes).unwrap_or(usize::MAX);
        WriteTx::new(snap, Arc::clone(&self.shared), max, self.lock_guard())
    }

    fn note_failure(&self, e: &Error) {
        if e.kind() == crate::ErrorKind::Deadlock {
            Metrics::count(&self.shared.metrics.deadlocks);
        }
    }

    /// The last deadlocks the lock manager broke (transactions, keys, time, victim).
    pub fn deadlocks(&self) -> Vec<DeadlockRecord> {
        self.shared.locks.deadlocks()
    }

    /// Checks the consistency of the whole store ([`check::check`](crate::check::check)),
    /// and the audit trail's hash chain ([`Store::verify_audit`]; a break is an `audit`
    /// violation). `progress(done, total)` is called as rows and index entries are examined.
    pub fn check(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<crate::check::CheckReport> {
        let damaged = self.shared.archive.damaged();
        let mut report = if damaged.is_empty() {
            let tx = self.read()?;
            crate::check::check(&tx, tx.indexes(), progress)?
        } else {
            crate::check::archive_damage(&damaged)
        };
        let audit = self.verify_audit()?;
        report
            .violations
            .extend(audit.problems.into_iter().map(|p| crate::check::Violation {
                check: "audit",
                table: "catalog".to_owned(),
                key: p.key,
                message: p.message,
            }));
        Ok(report)
    }

    /// Statistics of the write path.
    pub fn stats(&self) -> Stats {
        let mut s = self.shared.metrics.snapshot();
        s.durable_seq = self.shared.published.read().durable;
        s.overlay_bytes = self.shared.overlay_bytes.load(Ordering::Relaxed);
        s.applied_seq = self
            .shared
            .db
            .begin_read()
            .ok()
            .and_then(|t| read_applied_seq(&t).ok())
            .unwrap_or(0);
        s.journal_bytes = self.shared.journal.lock().size_bytes();
        s.poisoned = self
            .shared
            .poison
            .lock()
            .as_ref()
            .map(|(why, _)| why.clone());
        s.breaker = Some(self.shared.breaker.state());
        if let Some(rows) = &self.shared.rows {
            s.row_cache = rows.stats();
        }
        if let Some(recent) = &self.shared.recent {
            s.recent_trades = recent.stats();
        }
        if let Some(tails) = &self.shared.tails {
            s.instrument_tails = tails.stats();
        }
        s
    }

    /// Size in bytes of the database file.
    pub fn file_size(&self) -> Result<u64> {
        let p = self.dir.join(DB_FILE);
        std::fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| Error::io(format!("reading {}", p.display()), e))
    }
}

/// The background threads `Store::open` has started so far. If a later step fails (a thread
/// that cannot start), the store is never returned: these are stopped and joined here, or
/// they would keep the database open in the process for good.
struct Started {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Started {
    /// Starts the thread `tradestore-<what>` (spaces as dashes).
    fn spawn(&mut self, what: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
        #[cfg(test)]
        if tests::FAIL_SPAWN.with(|at| at.get() == Some(self.threads.len())) {
            return Err(Error::io(
                format!("starting the {what} thread"),
                std::io::Error::from(std::io::ErrorKind::WouldBlock),
            ));
        }
        let handle = std::thread::Builder::new()
            .name(format!("tradestore-{}", what.replace(' ', "-")))
            .spawn(f)
            .map_err(|e| Error::io(format!("starting the {what} thread"), e))?;
        self.threads.push(handle);
        Ok(())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        stop_threads(&self.shared, &mut self.threads);
    }
}

/// Tells the store's background threads to stop and waits for each (none: nothing to do).
fn stop_threads(shared: &Shared, threads: &mut Vec<std::thread::JoinHandle<()>>) {
    if threads.is_empty() {
        return;
    }
    shared.shutdown.store(true, Ordering::SeqCst);
    shared.apply_cv.notify_all();
    shared.commit_cv.notify_all();
    for t in threads.drain(..) {
        let _ = t.join();
    }
}

impl Drop for Store {
    /// Makes every submitted transaction durable, applies the overlay and checkpoints.
    fn drop(&mut self) {
        let target = self.shared.commit.lock().next_seq.saturating_sub(1);
        let _ = self.shared.wait_durable(target);
        let durable = self.shared.commit.lock().durable;
        self.closed_durable.store(durable, Ordering::SeqCst);
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.alerts_stop.store(true, Ordering::SeqCst);
        stop_threads(&self.shared, &mut self.threads);
        self.queries.join_background();
        if !self.shared.poisoned.load(Ordering::SeqCst) {
            // Best effort: the workload is advisory.
            let _ = self.queries.save_workload(&self.shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::Database;

    use super::*;
    use crate::ErrorKind;
    use crate::ReadOps;

    thread_local! {
        /// Makes `Store::open` on this thread fail to start its background thread number
        /// `n` (0: the applier), as the OS would when out of threads.
        pub(super) static FAIL_SPAWN: std::cell::Cell<Option<usize>> =
            const { std::cell::Cell::new(None) };
    }

    /// An open that fails after some of its threads started stops and joins them: nothing
    /// holds the database, and the same process opens the store right after.
    #[test]
    fn an_open_that_fails_to_start_a_thread_leaves_nothing_running() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        Store::open(dir.path(), Config::default())?.write(|tx| {
            tx.insert(&tradestore_schema::Account {
                id: 1,
                name: "a".into(),
                status: tradestore_schema::AccountStatus::Active,
            })
        })?;
        // The applier, the flusher, then the sampler (the monitor is on by default).
        for n in 0..3 {
            FAIL_SPAWN.with(|at| at.set(Some(n)));
            let err = Store::open(dir.path(), Config::default())
                .err()
                .unwrap_or_else(|| panic!("thread {n} failed to start, yet the store opened"));
            FAIL_SPAWN.with(|at| at.set(None));
            assert_eq!(err.kind(), ErrorKind::Io, "{err}");
            assert!(err.to_string().contains("thread"), "{err}");
            let store = Store::open(dir.path(), Config::default())?;
            assert!(
                store
                    .read()?
                    .get_id::<tradestore_schema::Account>(1)?
                    .is_some()
            );
        }
        Ok(())
    }

    /// Records in the store's redb, as a checkpoint would, that `extra` more seqs than the
    /// journal holds were acknowledged.
    fn claim_acked_beyond(dir: &Path, extra: u64) -> Result<u64> {
        let db = Database::open(dir.join(DB_FILE))?;
        let applied = read_applied_seq(&db.begin_read()?)?;
        let txn = db.begin_write()?;
        write_acked_seq(&txn, applied + extra)?;
        txn.commit()?;
        Ok(applied)
    }

    #[test]
    fn a_store_whose_journal_lost_acknowledged_records_is_refused_until_told_to_accept()
    -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let store = Store::open(dir.path(), Config::default())?;
        for id in 1..=5 {
            store.write(|tx| {
                tx.insert(&tradestore_schema::Account {
                    id,
                    name: format!("a{id}"),
                    status: tradestore_schema::AccountStatus::Active,
                })
            })?;
        }
        drop(store);
        let applied = claim_acked_beyond(dir.path(), 3)?;

        let err = Store::open(dir.path(), Config::default())
            .err()
            .ok_or("opened without the acknowledged records")
            .map_err(Error::invalid)?;
        assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
        let missing = format!("records {} ..= {} are missing", applied + 1, applied + 3);
        assert!(err.message().contains(&missing), "{err}");

        let accepting = Config {
            accept_journal_loss: true,
            ..Config::default()
        };
        let store = Store::open(dir.path(), accepting)?;
        let loss = store.recovery().journal_loss.clone().unwrap_or_default();
        assert!(
            loss.contains(&format!("records {} ..= {}", applied + 1, applied + 3)),
            "{loss}"
        );
        let accounts: Vec<tradestore_schema::Account> = store.read()?.all()?;
        assert_eq!(accounts.len(), 5);
        drop(store);
        // Accepted once: the next plain open finds nothing missing.
        let store = Store::open(dir.path(), Config::default())?;
        assert_eq!(store.recovery().journal_loss, None);
        Ok(())
    }
}
