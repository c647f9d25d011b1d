//! Latency histograms and counters of the write path, and the [`Stats`] snapshot of them
//! that `store.stats()` returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 us .. 1 h at 3 significant digits: fixed, valid bounds.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|e| unreachable!("valid bounds: {e}"))
}

/// The live metrics, updated on the write path.
pub(crate) struct Metrics {
    commit: Mutex<Histogram<u64>>,
    fsync: Mutex<Histogram<u64>>,
    apply: Mutex<Histogram<u64>>,
    group: Mutex<Histogram<u64>>,
    archive: Mutex<Histogram<u64>>,
    /// Archive runs that failed.
    pub archive_failures: AtomicU64,
    backup: Mutex<Histogram<u64>>,
    /// Backups that failed.
    pub backup_failures: AtomicU64,
    pub commits: AtomicU64,
    pub conflicts: AtomicU64,
    pub deadlocks: AtomicU64,
    pub retries: AtomicU64,
    pub checkpoints: AtomicU64,
    /// When the last checkpoint (or the open) made redb durable, ns since the epoch.
    pub last_checkpoint_ns: AtomicU64,
    /// The last transaction the last checkpoint holds.
    pub checkpointed_seq: AtomicU64,
    /// Snapshots open now (read transactions, and write transactions' snapshots).
    pub readers: std::sync::Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            commit: Mutex::new(histogram()),
            fsync: Mutex::new(histogram()),
            apply: Mutex::new(histogram()),
            group: Mutex::new(histogram()),
            archive: Mutex::new(histogram()),
            archive_failures: AtomicU64::new(0),
            backup: Mutex::new(histogram()),
            backup_failures: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            deadlocks: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            last_checkpoint_ns: AtomicU64::new(crate::index::now_ns()),
            checkpointed_seq: AtomicU64::new(0),
            readers: std::sync::Arc::new(AtomicU64::new(0)),
        }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Metrics {
    pub(crate) fn commit(&self, d: Duration) {
        self.commit.lock().saturating_record(us(d));
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fsync(&self, d: Duration, group: usize) {
        self.fsync.lock().saturating_record(us(d));
        self.group.lock().saturating_record(group.max(1) as u64);
    }

    pub(crate) fn apply(&self, d: Duration) {
        self.apply.lock().saturating_record(us(d));
    }

    /// One archive run ([`crate::archive`]), and whether it succeeded.
    pub(crate) fn archive(&self, d: Duration, ok: bool) {
        self.archive.lock().saturating_record(us(d));
        if !ok {
            self.archive_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A copy of the archive runs' latency histogram (us).
    pub(crate) fn archive_histogram(&self) -> Histogram<u64> {
        self.archive.lock().clone()
    }

    /// Records a backup that succeeded.
    pub(crate) fn backup(&self, d: Duration) {
        self.backup.lock().saturating_record(us(d));
    }

    /// A copy of the backup duration histogram (us).
    pub(crate) fn backup_histogram(&self) -> Histogram<u64> {
        self.backup.lock().clone()
    }

    /// Copies of the four histograms: commit, fsync and apply latency (us), group size.
    pub(crate) fn histograms(&self) -> [(&'static str, Histogram<u64>); 4] {
        [
            ("commit", self.commit.lock().clone()),
            ("fsync", self.fsync.lock().clone()),
            ("apply", self.apply.lock().clone()),
            ("group", self.group.lock().clone()),
        ]
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            commit_us: Summary::of(&self.commit.lock()),
            fsync_us: Summary::of(&self.fsync.lock()),
            apply_us: Summary::of(&self.apply.lock()),
            group_size: Summary::of(&self.group.lock()),
            archive_us: Summary::of(&self.archive.lock()),
            backup_us: Summary::of(&self.backup.lock()),
            backup_failures: get(&self.backup_failures),
            commits: get(&self.commits),
            conflicts: get(&self.conflicts),
            deadlocks: get(&self.deadlocks),
            retries: get(&self.retries),
            checkpoints: get(&self.checkpoints),
            ..Stats::default()
        }
    }
}

/// Percentiles of one histogram.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The write path's statistics at one moment. Latencies are in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    commit_us: Summary,
    fsync_us: Summary,
    apply_us: Summary,
    group_size: Summary,
    archive_us: Summary,
    backup_us: Summary,
    backup_failures: u64,
    commits: u64,
    conflicts: u64,
    deadlocks: u64,
    retries: u64,
    checkpoints: u64,
    pub(crate) durable_seq: u64,
    pub(crate) applied_seq: u64,
    pub(crate) overlay_bytes: u64,
    pub(crate) journal_bytes: u64,
    pub(crate) poisoned: Option<String>,
    pub(crate) breaker: Option<crate::breaker::BreakerState>,
    pub(crate) row_cache: crate::rowcache::RowCacheStats,
    pub(crate) recent_trades: crate::recent::RecentTradesStats,
    pub(crate) instrument_tails: crate::tail::InstrumentTailStats,
}

impl Stats {
    /// Submit-to-ack latency of committed write transactions.
    pub fn commit_us(&self) -> Summary {
        self.commit_us
    }
    /// Journal write + fdatasync latency per group.
    pub fn fsync_us(&self) -> Summary {
        self.fsync_us
    }
    /// Latency of one applier batch into redb.
    pub fn apply_us(&self) -> Summary {
        self.apply_us
    }
    /// Transactions per journal group.
    pub fn group_size(&self) -> Summary {
        self.group_size
    }
    /// Latency of archive runs ([`Store::archive_trades`](crate::Store::archive_trades)).
    pub fn archive_us(&self) -> Summary {
        self.archive_us
    }
    /// Duration of the backups that succeeded (`Store::backup`) since the store opened.
    pub fn backup_us(&self) -> Summary {
        self.backup_us
    }
    /// Backups that failed since the store opened.
    pub fn backup_failures(&self) -> u64 {
        self.backup_failures
    }
    /// Committed write transactions.
    pub fn commits(&self) -> u64 {
        self.commits
    }
    /// Commits refused because a concurrent transaction changed what they read.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }
    /// Transactions chosen as deadlock victims.
    pub fn deadlocks(&self) -> u64 {
        self.deadlocks
    }
    /// Retries made by `transact`.
    pub fn retries(&self) -> u64 {
        self.retries
    }
    /// Checkpoints (durable redb commits) made by the applier.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }
    /// Last durable (acknowledged) transaction.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }
    /// Last transaction applied to redb.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }
    /// Bytes held by the overlay (committed, not yet in redb).
    pub fn overlay_bytes(&self) -> u64 {
        self.overlay_bytes
    }
    /// Bytes of journal segments on disk.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes
    }
    /// The storage circuit breaker's state.
    pub fn breaker(&self) -> crate::breaker::BreakerState {
        self.breaker.unwrap_or(crate::breaker::BreakerState::Closed)
    }

    /// Why the store refuses writes, if a storage failure poisoned it.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }
    /// The row cache's hits, misses and size (all zero when it is off).
    pub fn row_cache(&self) -> crate::rowcache::RowCacheStats {
        self.row_cache
    }

    /// The ring of the newest trades: reads by id it answered and did not (all zero when
    /// it is off).
    pub fn recent_trades(&self) -> crate::recent::RecentTradesStats {
        self.recent_trades
    }

    /// The instruments' newest trades index entries held in memory: newest-first reads
    /// they answered and did not (all zero when they are off).
    pub fn instrument_tails(&self) -> crate::tail::InstrumentTailStats {
        self.instrument_tails
    }
}

/// Counts an open snapshot for as long as it lives.
pub(crate) struct ReaderGuard(std::sync::Arc<AtomicU64>);

impl ReaderGuard {
    pub(crate) fn new(counter: &std::sync::Arc<AtomicU64>) -> ReaderGuard {
        counter.fetch_add(1, Ordering::Relaxed);
        ReaderGuard(std::sync::Arc::clone(counter))
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
