//! The newest trades, in memory, for point reads by id.
//!
//! A trade never changes once written (trades are history: no update, no delete), so a
//! copy of its record can answer a read by id with no invalidation at all. The copies sit in
//! a ring of slots, slot `id mod size`, each holding its record: a later trade takes over
//! the slot of an older one, so the ring holds the newest trades, which are the ones a
//! trading system reads most. A read checks one slot, where a B-tree lookup walks three or
//! four pages.
//!
//! Which reader may use a copy: every copy carries a tag, handed out after the redb commit
//! that wrote its trade succeeded; tags grow in the order they are handed out. Publishing a
//! tag makes it and every earlier one visible. A read view reads the highest visible tag
//! (`visible`) before it begins its redb read transaction, and uses only copies tagged at
//! or under it: such a tag was published before the view began, after its commit, so the
//! view contains that commit. A copy tagged above is from a commit the view may not
//! contain, and the read goes to the view's own overlay and redb snapshot instead.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Reads the ring answered and did not answer, and its size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecentTradesStats {
    /// Reads of a trade by id that the ring answered.
    pub hits: u64,
    /// Reads of a trade by id that went on to redb (the trade was not held, its slot was
    /// taken by a newer trade, or its commit is newer than the reader's view).
    pub misses: u64,
    /// Slots of the ring (0 when it is off).
    pub slots: u64,
}

/// Bytes of a record a slot holds (a trade's record is 40-70 bytes); a longer one is not
/// kept, and its reads go to redb.
const INLINE: usize = 112;

/// One slot: the trade's id, the tag of its commit, its record (held in the slot: a read
/// touches the slot's memory only, not a separate allocation).
struct Slot {
    id: u64,
    tag: u64,
    /// Bytes of `record` in use; 0 for an empty slot (no record is empty).
    len: usize,
    record: [u8; INLINE],
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            id: 0,
            tag: 0,
            len: 0,
            record: [0; INLINE],
        }
    }
}

/// Slots allocated together, when a trade first lands in one of them: a store that holds
/// few trades does not pay for the whole ring.
const CHUNK: u64 = 4096;

/// A chunk of slots, allocated on first use.
type Chunk = OnceLock<Box<[Mutex<Slot>]>>;

/// The ring of the newest trades.
pub(crate) struct RecentTrades {
    /// The slots, in chunks of `chunk` slots each, allocated on first use.
    chunks: Box<[Chunk]>,
    /// Slots per chunk (a power of two).
    chunk: u64,
    /// Slots in the ring minus one (the count is a power of two).
    mask: u64,
    /// The highest tag whose commit every read view begun from now on contains.
    visible: AtomicU64,
    /// The last tag handed out.
    last_tag: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl RecentTrades {
    /// A ring of at least `size` slots (rounded up to a power of two), or none for 0.
    pub(crate) fn new(size: u64) -> Option<RecentTrades> {
        if size == 0 {
            return None;
        }
        let n = size.checked_next_power_of_two()?;
        let chunk = n.min(CHUNK);
        Some(RecentTrades {
            chunks: (0..n / chunk).map(|_| OnceLock::new()).collect(),
            chunk,
            mask: n - 1,
            visible: AtomicU64::new(0),
            last_tag: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// A tag for the copies of a commit that has succeeded. Tags are handed out in order,
    /// so whoever publishes this tag or a later one does so after this commit: a view that
    /// sees the tag contains the commit, even when two commits fill at once.
    pub(crate) fn next_tag(&self) -> u64 {
        self.last_tag.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The chunk of trade `id`'s slot, and the slot's place in it.
    fn place(&self, id: u64) -> (&Chunk, usize) {
        let i = id & self.mask;
        (
            &self.chunks[(i / self.chunk) as usize],
            (i % self.chunk) as usize,
        )
    }

    /// Keeps trade `id`'s record, written by the commit of `tag` (which has succeeded).
    pub(crate) fn put(&self, id: u64, tag: u64, record: &[u8]) {
        if record.is_empty() || record.len() > INLINE {
            return;
        }
        let (chunk, at) = self.place(id);
        let slots = chunk.get_or_init(|| {
            (0..self.chunk)
                .map(|_| Mutex::new(Slot::default()))
                .collect()
        });
        let mut slot = slots[at].lock();
        slot.id = id;
        slot.tag = tag;
        slot.len = record.len();
        slot.record[..record.len()].copy_from_slice(record);
    }

    /// Makes the copies of `tag` (and of every earlier tag) usable by read views begun
    /// from now on.
    pub(crate) fn publish(&self, tag: u64) {
        self.visible.fetch_max(tag, Ordering::SeqCst);
    }

    /// The highest visible tag, for a read view about to begin its redb read transaction.
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::SeqCst)
    }

    /// `f` of trade `id`'s record, if the ring holds it from a commit no later than
    /// `seen` (called under the slot's lock: no copy); else `f` back.
    pub(crate) fn read<T, F: FnOnce(&[u8]) -> T>(&self, id: u64, seen: u64, f: F) -> Result<T, F> {
        let (chunk, at) = self.place(id);
        let out = match chunk.get() {
            Some(slots) => {
                let slot = slots[at].lock();
                if slot.len > 0 && slot.id == id && slot.tag <= seen {
                    Ok(f(&slot.record[..slot.len]))
                } else {
                    Err(f)
                }
            }
            None => Err(f),
        };
        let counter = if out.is_ok() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Trade `id`'s record, copied, if the ring holds it from a commit no later than
    /// `seen`.
    #[cfg(test)]
    fn get(&self, id: u64, seen: u64) -> Option<Vec<u8>> {
        self.read(id, seen, <[u8]>::to_vec).ok()
    }

    /// Hits, misses and size so far.
    pub(crate) fn stats(&self) -> RecentTradesStats {
        RecentTradesStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            slots: self.size(),
        }
    }

    /// Slots allocated so far.
    #[cfg(test)]
    fn allocated(&self) -> u64 {
        self.chunks.iter().filter(|c| c.get().is_some()).count() as u64 * self.chunk
    }

    /// Slots in the ring.
    pub(crate) fn size(&self) -> u64 {
        self.mask + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(b: u8) -> Vec<u8> {
        vec![b; 3]
    }

    #[test]
    fn a_copy_is_seen_only_by_views_that_contain_its_commit() {
        let r = RecentTrades::new(8).unwrap();
        let tag = r.next_tag();
        r.put(5, tag, &rec(5));
        // Not yet published: a view begun now does not contain the commit.
        assert_eq!(r.get(5, r.visible()), None);
        r.publish(tag);
        let seen = r.visible();
        assert_eq!(r.get(5, seen).as_deref(), Some(&[5u8, 5, 5][..]));
        // A view begun before the publication still goes to its own snapshot.
        assert_eq!(r.get(5, seen - 1), None);
        // Another id, or one sharing the slot, is not answered.
        assert_eq!(r.get(6, seen), None);
        assert_eq!(r.get(13, seen), None);
        let s = r.stats();
        assert_eq!((s.hits, s.misses, s.slots), (1, 4, 8));
    }

    #[test]
    fn a_newer_trade_takes_over_the_slot() {
        let r = RecentTrades::new(5).unwrap();
        assert_eq!(r.size(), 8);
        let t1 = r.next_tag();
        r.put(3, t1, &rec(3));
        r.publish(t1);
        let t2 = r.next_tag();
        assert!(t2 > t1);
        r.put(11, t2, &rec(11));
        r.publish(t2);
        let seen = r.visible();
        assert_eq!(r.get(3, seen), None, "evicted: the read goes to redb");
        assert_eq!(r.get(11, seen).as_deref(), Some(&[11u8, 11, 11][..]));
        // A view that began between the two commits sees neither copy: 3 is gone from the
        // ring, 11 is not in its snapshot.
        assert_eq!(r.get(11, t1), None);
    }

    #[test]
    fn chunks_are_allocated_when_first_used() {
        let r = RecentTrades::new(3 * CHUNK).unwrap();
        assert_eq!((r.size(), r.allocated()), (4 * CHUNK, 0));
        let tag = r.next_tag();
        r.publish(tag);
        // A read of a slot in a chunk never written finds nothing, and allocates nothing.
        assert_eq!(r.get(1, tag), None);
        assert_eq!(r.allocated(), 0);
        r.put(1, tag, &rec(1));
        r.put(2 * CHUNK + 1, tag, &rec(2));
        assert_eq!(r.allocated(), 2 * CHUNK);
        assert_eq!(r.get(1, tag).as_deref(), Some(&[1u8, 1, 1][..]));
        assert_eq!(r.get(2 * CHUNK + 1, tag).as_deref(), Some(&[2u8, 2, 2][..]));
        // The ring wraps: id 4 * CHUNK + 1 shares id 1's slot.
        assert_eq!(r.get(4 * CHUNK + 1, tag), None);
    }

    #[test]
    fn a_record_too_long_for_its_slot_is_not_kept() {
        let r = RecentTrades::new(8).unwrap();
        let tag = r.next_tag();
        r.put(1, tag, &[7; INLINE]);
        r.put(2, tag, &[8; INLINE + 1]);
        r.put(3, tag, &[]);
        r.publish(tag);
        assert_eq!(r.get(1, tag), Some(vec![7; INLINE]));
        assert_eq!(r.get(2, tag), None, "read from redb instead");
        assert_eq!(r.get(3, tag), None);
        // A shorter record replacing a longer one keeps only its own bytes.
        let t2 = r.next_tag();
        r.put(9, t2, &[1, 2]);
        r.publish(t2);
        assert_eq!(r.get(9, t2), Some(vec![1, 2]));
    }

    #[test]
    fn publishing_never_moves_back() {
        let r = RecentTrades::new(1).unwrap();
        r.publish(7);
        r.publish(3);
        assert_eq!(r.visible(), 7);
        assert!(RecentTrades::new(0).is_none());
        assert!(RecentTrades::new(u64::MAX).is_none());
    }
}
