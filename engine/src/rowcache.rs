//! The row cache: rows recently read from redb, by table and primary key, so that a point
//! read of a hot row (an order, an account's cash, a trade looked up by id) is a hash probe
//! instead of a walk down redb's B-tree.
//!
//! It sits under the overlay: a read asks the overlay first (committed writes redb does not
//! hold yet), then the cache, then redb, and a row found in redb is put in the cache. Only
//! reads fill it; scans do not, so a report over a whole table does not push the hot rows
//! out. Eviction (S3-FIFO, by bytes) is `quick_cache`'s; the consistency rules below are
//! this module's.
//!
//! # Why a snapshot never sees a wrong row
//!
//! Every redb read view has a generation, counted up as views are begun. A cached row
//! carries the generation of the view it was read from, and is the newest version of the
//! row while it stays in the cache:
//!
//! - every redb commit that changes rows first removes each of them from the cache
//!   ([`RowCache::begin_write`], then [`RowWrite::forget`]), and the commit is counted as
//!   in progress until it ends;
//! - while a commit that changes rows is in progress, nothing is filled;
//! - when it ends (under the lock that begins views, so no view begins in between), the
//!   *fence* moves to the generation of the next view: a view older than that may have
//!   read a row the commit changed, and fills only from views at or past the fence.
//!
//! A snapshot uses a cached row only if the row was read from a view no newer than its own
//! (`cached.generation <= view.generation`): then no commit changed the row between the two views (it
//! would have removed the row), so the cached bytes are the row as the snapshot's view
//! holds it. Fills and removals take the shard's lock, so a removal either comes after a
//! fill (and removes it) or before it (and the fill sees the commit in progress).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use quick_cache::{DefaultHashBuilder, Weighter, unsync::Cache};
use tradestore_schema::TableId;

/// Shards of the cache, each behind its own lock.
const SHARDS: usize = 16;

/// Bytes counted for an entry beyond its key and row: the map slot, the row's shared
/// header and the eviction policy's bookkeeping.
const ENTRY_OVERHEAD: u64 = 64;

/// Rows a shard's map has room for before it first grows.
const INITIAL_ROWS: usize = 1024;

/// A cache key held inline (no allocation per row): the table's byte, then the key.
#[derive(Clone, PartialEq, Eq, Hash)]
struct InlineKey {
    len: u8,
    bytes: [u8; INLINE_KEY],
}

/// Longest cache key (table byte included) kept; rows with longer keys are not cached.
const INLINE_KEY: usize = 31;

impl InlineKey {
    /// The key of `key` in `table`, if short enough to cache.
    fn of(table: TableId, key: &[u8]) -> Option<InlineKey> {
        let mut bytes = [0u8; INLINE_KEY];
        bytes[0] = table as u8;
        bytes.get_mut(1..=key.len())?.copy_from_slice(key);
        Some(InlineKey {
            len: u8::try_from(key.len() + 1).ok()?,
            bytes,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A cached row and the generation of the redb view it was read from.
#[derive(Clone)]
struct Cached {
    row: Arc<[u8]>,
    generation: u64,
}

/// Weighs an entry by the bytes it keeps.
#[derive(Clone)]
struct ByBytes;

impl Weighter<InlineKey, Cached> for ByBytes {
    fn weight(&self, _key: &InlineKey, val: &Cached) -> u64 {
        INLINE_KEY as u64 + val.row.len() as u64 + ENTRY_OVERHEAD
    }
}

struct Shard {
    map: Cache<InlineKey, Cached, ByBytes>,
    hits: u64,
    misses: u64,
}

/// Hits, misses and size of the row cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RowCacheStats {
    /// Point reads the cache answered.
    pub hits: u64,
    /// Point reads that went to redb (the row was not cached, or was cached from a newer
    /// view than the reader's).
    pub misses: u64,
    /// Rows cached now.
    pub rows: u64,
    /// Bytes the cached rows take, as the cache counts them.
    pub bytes: u64,
    /// The most bytes the cache keeps.
    pub capacity: u64,
}

/// The row cache of an open store.
pub(crate) struct RowCache {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a key's shard; seeded apart from the shards' own hashing, so that the keys of
    /// one shard still spread over its map.
    pick: DefaultHashBuilder,
    /// Commits that change rows, begun and not ended: no fills meanwhile.
    writing: AtomicU64,
    /// Fills come only from views of this generation or later.
    fence: AtomicU64,
    capacity: u64,
}

impl RowCache {
    /// A cache keeping up to `bytes` of rows; `None` when `bytes` is 0 (no cache).
    pub(crate) fn new(bytes: u64) -> Option<RowCache> {
        if bytes == 0 {
            return None;
        }
        let per_shard = (bytes / SHARDS as u64).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    // Sized for few rows and grown as filled: a map sized for the whole
                    // capacity up front spreads a small working set over many more pages
                    // (measured on quick_cache alone with 183k rows in 16 shards: ~20%
                    // slower per hit).
                    map: Cache::with_weighter(INITIAL_ROWS, per_shard, ByBytes),
                    hits: 0,
                    misses: 0,
                })
            })
            .collect();
        Some(RowCache {
            shards,
            pick: DefaultHashBuilder::default(),
            writing: AtomicU64::new(0),
            fence: AtomicU64::new(0),
            capacity: per_shard * SHARDS as u64,
        })
    }

    fn shard(&self, key: &InlineKey) -> &Mutex<Shard> {
        let h = self.pick.hash_one(key.as_bytes());
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// The row under `key` of `table` as a view of generation `generation` holds it, if cached.
    pub(crate) fn get(&self, table: TableId, key: &[u8], generation: u64) -> Option<Arc<[u8]>> {
        let k = InlineKey::of(table, key)?;
        let mut shard = self.shard(&k).lock();
        let found = match shard.map.get(&k) {
            Some(c) if c.generation <= generation => Some(Arc::clone(&c.row)),
            _ => None,
        };
        if found.is_some() {
            shard.hits += 1;
        } else {
            shard.misses += 1;
        }
        found
    }

    /// Caches `row`, read under `key` of `table` from a view of generation `generation`, unless a
    /// commit that changes rows is in progress or ended after that view began.
    pub(crate) fn fill(&self, table: TableId, key: &[u8], row: &Arc<[u8]>, generation: u64) {
        let Some(k) = InlineKey::of(table, key) else {
            return;
        };
        let mut shard = self.shard(&k).lock();
        if self.writing.load(Ordering::SeqCst) != 0
            || generation < self.fence.load(Ordering::SeqCst)
        {
            return;
        }
        shard.map.insert(
            k,
            Cached {
                row: Arc::clone(row),
                generation,
            },
        );
    }

    /// Starts a redb commit that changes rows: fills stop until the returned guard ends it,
    /// and each changed row must be [`RowWrite::forget`]ten before the commit.
    pub(crate) fn begin_write(&self) -> RowWrite<'_> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        RowWrite {
            cache: self,
            ended: false,
        }
    }

    /// Hits, misses and size now.
    pub(crate) fn stats(&self) -> RowCacheStats {
        let mut s = RowCacheStats {
            capacity: self.capacity,
            ..RowCacheStats::default()
        };
        for shard in &*self.shards {
            let shard = shard.lock();
            s.hits += shard.hits;
            s.misses += shard.misses;
            s.rows += shard.map.len() as u64;
            s.bytes += shard.map.weight();
        }
        s
    }
}

/// A redb commit that changes rows, in progress (see [`RowCache::begin_write`]).
pub(crate) struct RowWrite<'a> {
    cache: &'a RowCache,
    ended: bool,
}

impl RowWrite<'_> {
    /// Removes a row the commit changes.
    pub(crate) fn forget(&self, table: TableId, key: &[u8]) {
        if let Some(k) = InlineKey::of(table, key) {
            self.cache.shard(&k).lock().map.remove(&k);
        }
    }

    /// Ends the commit (committed or not): fills resume from views of generation
    /// `next_gen` on. Called under the lock that begins views, with the generation the
    /// next view will have.
    pub(crate) fn end(mut self, next_gen: u64) {
        self.finish(next_gen);
    }

    fn finish(&mut self, next_gen: u64) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.cache.fence.fetch_max(next_gen, Ordering::SeqCst);
        self.cache.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for RowWrite<'_> {
    /// A commit abandoned before [`RowWrite::end`] (an error on the way): no view may fill
    /// again, since which one holds the commit is unknown; the cache still answers with
    /// the rows it has, which the commit did not change.
    fn drop(&mut self) {
        self.finish(u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(b: &[u8]) -> Arc<[u8]> {
        Arc::from(b)
    }

    #[test]
    fn a_row_is_seen_only_by_views_no_older_than_its_read() {
        let c = RowCache::new(1 << 20).expect("a cache");
        c.fill(TableId::Trades, b"k", &row(b"v1"), 5);
        assert_eq!(c.get(TableId::Trades, b"k", 4), None, "an older view");
        assert_eq!(c.get(TableId::Trades, b"k", 5).as_deref(), Some(&b"v1"[..]));
        assert_eq!(c.get(TableId::Trades, b"k", 9).as_deref(), Some(&b"v1"[..]));
        assert_eq!(
            c.get(TableId::Orders, b"k", 9),
            None,
            "tables do not share keys"
        );
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.rows), (2, 2, 1));
    }

    #[test]
    fn a_commit_removes_its_rows_and_fences_out_older_views() {
        let c = RowCache::new(1 << 20).expect("a cache");
        c.fill(TableId::Trades, b"k", &row(b"old"), 3);
        let w = c.begin_write();
        w.forget(TableId::Trades, b"k");
        // A view begun before the commit reads the old row: it must not come back.
        c.fill(TableId::Trades, b"k", &row(b"old"), 3);
        assert_eq!(c.get(TableId::Trades, b"k", 3), None);
        // Nor may a view begun during the commit fill anything.
        c.fill(TableId::Trades, b"j", &row(b"x"), 4);
        assert_eq!(c.get(TableId::Trades, b"j", 4), None);
        w.end(5);
        c.fill(TableId::Trades, b"k", &row(b"old"), 4);
        assert_eq!(
            c.get(TableId::Trades, b"k", 9),
            None,
            "a view older than the fence"
        );
        c.fill(TableId::Trades, b"k", &row(b"new"), 5);
        assert_eq!(
            c.get(TableId::Trades, b"k", 5).as_deref(),
            Some(&b"new"[..])
        );
    }

    #[test]
    fn an_abandoned_commit_stops_fills_but_keeps_what_is_cached() {
        let c = RowCache::new(1 << 20).expect("a cache");
        c.fill(TableId::Cash, b"a", &row(b"1"), 1);
        drop(c.begin_write());
        c.fill(TableId::Cash, b"b", &row(b"2"), 2);
        assert_eq!(c.get(TableId::Cash, b"b", 2), None);
        assert_eq!(c.get(TableId::Cash, b"a", 2).as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn the_cache_keeps_to_its_size_and_skips_long_keys() {
        let c = RowCache::new(64 << 10).expect("a cache");
        let longest = vec![7u8; INLINE_KEY - 1];
        c.fill(TableId::Orders, &longest, &row(b"fits"), 1);
        assert_eq!(
            c.get(TableId::Orders, &longest, 1).as_deref(),
            Some(&b"fits"[..])
        );
        let long = vec![7u8; INLINE_KEY];
        c.fill(TableId::Orders, &long, &row(b"long"), 1);
        assert_eq!(c.get(TableId::Orders, &long, 1), None, "not cached");
        assert_eq!(
            c.get(TableId::Orders, &longest, 1).as_deref(),
            Some(&b"fits"[..]),
            "a longer key is not mistaken for its prefix"
        );
        for i in 0u32..10_000 {
            c.fill(TableId::Trades, &i.to_be_bytes(), &row(&[1u8; 100]), 1);
        }
        let s = c.stats();
        assert!(s.bytes <= s.capacity, "{s:?}");
        assert!(s.rows < 10_000, "{s:?}");
        assert!(RowCache::new(0).is_none());
    }
}
