//! The newest entries of each instrument in the `trades_by_instrument_ts` index, in memory,
//! for "the last N trades of an instrument" (`recent_trades`, and any newest-first walk of
//! that index within one instrument).
//!
//! A walk of the newest 100 entries in redb costs about 80 ns an entry (page guards, key
//! comparisons, the range bound checks); the same entries held in memory, newest last, cost
//! a copy of a pointer each. Each instrument (a *group*: the index keys' first value) holds
//! up to [`KEEP`] entries, the newest ones, plus up to [`SLACK`] more before the oldest are
//! dropped: the group then answers for every key at or above its *floor* (the oldest key it
//! still holds); a group that holds all of its instrument's entries has no floor. A walk
//! that goes below the floor continues in redb from where the group left off.
//!
//! Which snapshot may use what:
//! - Every entry carries the sequence number of the commit that wrote it (the applier's
//!   batch), and a snapshot uses only entries at or below its own sequence number. The
//!   applier hands a batch's index edits to the groups *before* its redb commit: a
//!   snapshot whose redb view contains the batch therefore finds them here, and one whose
//!   view does not finds the batch's rows in its overlay (the applier drops a batch from the
//!   overlay only after its commit), which wins over a group's entry with the same key.
//! - A group is filled (seeded) by a reader, from its own redb view, when no group holds
//!   the instrument yet. The seed is usable by snapshots at or above the view's applied
//!   sequence number, and is refused when the applier has handed over edits of the group's
//!   shard that the view does not contain (the edits of a group not held are dropped).
//! - Every other commit that may change the index (a restore, a migration, archiving, an
//!   index build or drop) goes through [`InstrumentTails::begin_change`] and
//!   [`InstrumentTails::end_change`] around its redb commit: both drop every group and move
//!   the *generation* on. A read view records the generation before it begins (an odd one:
//!   a change is under way, and the view uses no group), and uses only groups seeded from a
//!   view of the same generation: none outlives a change, and none is seeded while one is
//!   under way.
//! - A group whose entry is replaced or removed (trades are history: only a commit outside
//!   the public API does this) becomes unusable for snapshots older than that commit.
//!
//! Memory: the groups of a shard share a budget (`instrument_tail_mb` over [`SHARDS`]); a
//! seed that does not fit evicts the least recently read groups of its shard first.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// The index whose newest entries are kept.
pub(crate) const TAIL_INDEX: &str = "trades_by_instrument_ts";
/// Entries a group keeps when it trims.
pub(crate) const KEEP: usize = 256;
/// Entries a group may hold above [`KEEP`] before it trims (trims are rarer than inserts).
const SLACK: usize = 64;
/// Shards of groups, each with its own lock.
const SHARDS: usize = 16;
/// Bookkeeping bytes counted per entry besides its key and value.
const ENTRY_OVERHEAD: usize = 48;
/// Bytes counted per group besides its entries (an instrument with no trades is held too:
/// reads of many such must still fit the budget).
const GROUP_OVERHEAD: usize = 160;
/// What a full group is taken to cost before it is read (a trade's entry is 60-110 bytes).
const GROUP_ESTIMATE: usize = GROUP_OVERHEAD + KEEP * (ENTRY_OVERHEAD + 96);
/// A shard too full for another group lets in one seed in this many: more instruments read
/// than the budget holds then cost a seed's walk of [`KEEP`] entries on one read in
/// `ADMIT_FULL` rather than on every read, and the held set still follows a hot set that
/// moves.
const ADMIT_FULL: u64 = 8;

/// One index entry: its key and value in one allocation, and the commit that wrote it.
struct Item {
    seq: u64,
    key_len: usize,
    kv: Box<[u8]>,
}

impl Item {
    fn new(seq: u64, key: &[u8], value: &[u8]) -> Item {
        let mut kv = Vec::with_capacity(key.len() + value.len());
        kv.extend_from_slice(key);
        kv.extend_from_slice(value);
        Item {
            seq,
            key_len: key.len(),
            kv: kv.into_boxed_slice(),
        }
    }

    fn key(&self) -> &[u8] {
        &self.kv[..self.key_len]
    }

    fn bytes(&self) -> usize {
        self.kv.len() + ENTRY_OVERHEAD
    }
}

/// The newest entries of one instrument.
struct Group {
    /// In ascending key order.
    items: VecDeque<Item>,
    /// Every entry at or above this key is held; `None`: every entry is held.
    floor: Option<Box<[u8]>>,
    /// Usable by snapshots whose sequence number is at least this.
    since: u64,
    /// The generation of the view it was seeded from.
    generation: u64,
    bytes: usize,
    /// When it was last read (the tails' clock), for eviction.
    used: AtomicU64,
}

impl Group {
    fn below_floor(&self, key: &[u8]) -> bool {
        self.floor.as_deref().is_some_and(|f| key < f)
    }

    fn put(&mut self, key: &[u8], value: &[u8], seq: u64) -> isize {
        if self.below_floor(key) {
            return 0;
        }
        let item = Item::new(seq, key, value);
        let added = item.bytes() as isize;
        // Trades mostly arrive in key order: the end is checked first.
        let at = match self.items.back() {
            Some(last) if last.key() < key => Err(self.items.len()),
            None => Err(0),
            _ => self.items.binary_search_by(|i| i.key().cmp(key)),
        };
        let mut delta = added;
        match at {
            Ok(i) => {
                // A stored entry changed: snapshots from before this commit must not see it.
                delta -= self.items[i].bytes() as isize;
                self.items[i] = item;
                self.since = self.since.max(seq);
            }
            Err(i) => self.items.insert(i, item),
        }
        if self.items.len() > KEEP + SLACK {
            let drop = self.items.len() - KEEP;
            for old in self.items.drain(..drop) {
                delta -= old.bytes() as isize;
            }
            self.floor = self.items.front().map(|i| Box::from(i.key()));
        }
        self.bytes = self.bytes.saturating_add_signed(delta);
        delta
    }

    fn remove(&mut self, key: &[u8], seq: u64) -> isize {
        if self.below_floor(key) {
            return 0;
        }
        match self.items.binary_search_by(|i| i.key().cmp(key)) {
            Ok(i) => {
                let gone = self.items.remove(i).map_or(0, |old| old.bytes() as isize);
                self.since = self.since.max(seq);
                self.bytes = self.bytes.saturating_sub(gone as usize);
                -gone
            }
            Err(_) => 0,
        }
    }
}

#[derive(Default)]
struct Shard {
    groups: HashMap<Box<[u8]>, Group>,
    /// The highest sequence number of a batch whose edits touched this shard.
    last_edit: u64,
    bytes: usize,
    /// Seeds turned away since the last one let in to a full shard (see
    /// [`InstrumentTails::may_seed`]).
    turned_away: AtomicU64,
}

/// Entries of a group, newest first, copied out for a reader (who visits them outside the
/// lock): one buffer, no allocation or reference count per entry.
pub(crate) struct Chunk {
    /// Keys and values, one after the other.
    bytes: Vec<u8>,
    /// Per entry, newest first: where its key starts, where its value starts, where it
    /// ends. All at or below the reader's sequence number, inside its range.
    spans: Vec<(usize, usize, usize)>,
    /// `true`: the chunk stopped at its size, and the group may hold more below its last
    /// item. `false`: the group holds nothing more for this reader in the range.
    pub more: bool,
    /// The lowest key the chunk answers for: every entry of the reader's snapshot at or
    /// above it, inside the range, is in the chunk or in the reader's overlay. `None`: the
    /// rest of the range entirely.
    pub covers_from: Option<Vec<u8>>,
}

impl Chunk {
    /// The entries, newest first: (key, value).
    pub(crate) fn items(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|&(k, v, e)| (&self.bytes[k..v], &self.bytes[v..e]))
    }

    /// How many entries it holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.spans.len()
    }
}

/// Newest-first reads the instruments' tails answered and did not, and what they hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstrumentTailStats {
    /// Walks answered from memory (in whole, or down to a group's floor).
    pub reads: u64,
    /// Walks no group could answer (the instrument not held yet, or held for newer
    /// snapshots only): they read redb.
    pub misses: u64,
    /// Instruments held.
    pub instruments: u64,
    /// Bytes held (keys, values and bookkeeping).
    pub bytes: u64,
}

/// The newest entries of every instrument read lately.
pub(crate) struct InstrumentTails {
    shards: Box<[RwLock<Shard>]>,
    /// Odd while a commit outside the applier may be changing the index.
    generation: AtomicU64,
    budget_per_shard: usize,
    clock: AtomicU64,
    reads: AtomicU64,
    misses: AtomicU64,
}

impl InstrumentTails {
    /// Tails within `budget` bytes in all, or none for 0.
    pub(crate) fn new(budget: u64) -> Option<InstrumentTails> {
        if budget == 0 {
            return None;
        }
        Some(InstrumentTails {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            generation: AtomicU64::new(0),
            budget_per_shard: usize::try_from(budget / SHARDS as u64).unwrap_or(usize::MAX),
            clock: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    fn shard(&self, group: &[u8]) -> &RwLock<Shard> {
        let h = foldhash::fast::FixedState::with_seed(0x7461_696c).hash_one(group);
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// The generation, for a read view about to begin its redb read transaction.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Drops every group and moves the generation on by `steps` (under every shard's
    /// lock): 1 begins or ends a change, 2 is a whole one.
    fn reset(&self, steps: u64) {
        let mut locked: Vec<_> = self.shards.iter().map(|s| s.write()).collect();
        for shard in &mut locked {
            shard.groups.clear();
            shard.bytes = 0;
        }
        self.generation.fetch_add(steps, Ordering::SeqCst);
    }

    /// Before a redb commit that may change the index other than through the applier.
    pub(crate) fn begin_change(&self) {
        self.reset(1);
    }

    /// After that commit, whether it succeeded or not.
    pub(crate) fn end_change(&self) {
        self.reset(1);
    }

    /// Hands over the applier's edits of the index (key, new value or `None` for a
    /// removal; in key order), made by the batch ending at `seq`, before its redb commit.
    pub(crate) fn apply(&self, edits: &[(Vec<u8>, Option<&[u8]>)], seq: u64) {
        let mut i = 0;
        while i < edits.len() {
            let Ok(n) = crate::keys::len_of_values(&edits[i].0, 1) else {
                // Not a key this index writes: nothing here can be trusted to match redb.
                // A whole change at once: the generation moves on and stays even.
                self.reset(2);
                return;
            };
            let group = &edits[i].0[..n];
            let end = i + edits[i..].partition_point(|(k, _)| k.starts_with(group));
            let mut shard = self.shard(group).write();
            shard.last_edit = shard.last_edit.max(seq);
            let mut delta = 0;
            if let Some(g) = shard.groups.get_mut(group) {
                for (key, value) in &edits[i..end] {
                    delta += match value {
                        Some(v) => g.put(key, v, seq),
                        None => g.remove(key, seq),
                    };
                }
            }
            shard.bytes = shard.bytes.saturating_add_signed(delta);
            i = end.max(i + 1);
        }
    }

    /// Up to `max` entries of `group` for a snapshot at `seq` whose view has `generation`,
    /// newest first, inside `(lo, hi)`; `None` when no group may answer it.
    pub(crate) fn read(
        &self,
        group: &[u8],
        generation: u64,
        seq: u64,
        (lo, hi): (Bound<&[u8]>, Bound<&[u8]>),
        max: usize,
    ) -> Option<Chunk> {
        let shard = self.shard(group).read();
        let Some(g) = shard
            .groups
            .get(group)
            .filter(|g| g.generation == generation && seq >= g.since)
        else {
            drop(shard);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        g.used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        // The items inside the range: `bottom..top`, walked down from the top.
        let top = match hi {
            Bound::Unbounded => g.items.len(),
            Bound::Included(h) => g.items.partition_point(|i| i.key() <= h),
            Bound::Excluded(h) => g.items.partition_point(|i| i.key() < h),
        };
        let bottom = match lo {
            Bound::Unbounded => 0,
            Bound::Included(l) => g.items.partition_point(|i| i.key() < l),
            Bound::Excluded(l) => g.items.partition_point(|i| i.key() <= l),
        }
        .min(top);
        let max = max.max(1);
        let mut bytes = Vec::with_capacity(
            g.items
                .range(bottom..top)
                .rev()
                .take(max)
                .map(|i| i.kv.len())
                .sum(),
        );
        let mut spans = Vec::with_capacity(max.min(top - bottom));
        let mut more = false;
        let mut last = None;
        for item in g.items.range(bottom..top).rev() {
            if item.seq > seq {
                continue;
            }
            if spans.len() == max {
                more = true;
                break;
            }
            let at = bytes.len();
            bytes.extend_from_slice(&item.kv);
            spans.push((at, at + item.key_len, bytes.len()));
            last = Some(item);
        }
        let covers_from = if more {
            last.map(|i| i.key().to_vec())
        } else {
            // Nothing more in the group for this reader: it answers down to its floor,
            // or for the rest of the range when the range ends above the floor.
            match (&g.floor, lo) {
                (None, _) => None,
                (Some(f), Bound::Included(l) | Bound::Excluded(l)) if l >= &f[..] => None,
                (Some(f), _) => Some(f.to_vec()),
            }
        };
        drop(shard);
        self.reads.fetch_add(1, Ordering::Relaxed);
        Some(Chunk {
            bytes,
            spans,
            more,
            covers_from,
        })
    }

    /// Whether a reader of a view of `generation` that contains every batch up to
    /// `applied` should read a seed of `group` now: it would be accepted, and the group's
    /// shard has room for it or lets this one in (one in [`ADMIT_FULL`] when full). A
    /// group held already, even one this reader may not use (an older snapshot), is not
    /// seeded again.
    pub(crate) fn may_seed(&self, group: &[u8], generation: u64, applied: u64) -> bool {
        if !generation.is_multiple_of(2) || self.generation() != generation {
            return false;
        }
        let shard = self.shard(group).read();
        if shard.last_edit > applied || shard.groups.contains_key(group) {
            return false;
        }
        if shard.bytes + GROUP_ESTIMATE <= self.budget_per_shard {
            return true;
        }
        // Full: this seed would evict a group. Let in one in `ADMIT_FULL`.
        let turned = shard.turned_away.fetch_add(1, Ordering::Relaxed) + 1;
        if turned >= ADMIT_FULL {
            shard.turned_away.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Installs `group`'s newest entries (`items`, newest first, at most [`KEEP`]: fewer
    /// means every entry of the group), read from a redb view of `generation` that
    /// contains every batch up to `applied`. Refused when the generation moved on, when the
    /// applier handed over edits of the shard that the view does not contain, or when the
    /// group does not fit.
    pub(crate) fn seed(
        &self,
        group: &[u8],
        generation: u64,
        applied: u64,
        items: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> bool {
        let complete = items.len() < KEEP;
        let held: VecDeque<Item> = items
            .iter()
            .rev()
            .map(|(k, v)| Item::new(applied, k, v))
            .collect();
        let bytes: usize = GROUP_OVERHEAD + held.iter().map(Item::bytes).sum::<usize>();
        let mut shard = self.shard(group).write();
        if self.generation() != generation
            || !generation.is_multiple_of(2)
            || shard.last_edit > applied
            || shard.groups.contains_key(group)
            || bytes > self.budget_per_shard
        {
            return false;
        }
        while shard.bytes + bytes > self.budget_per_shard {
            let Some(oldest) = shard
                .groups
                .iter()
                .min_by_key(|(_, g)| g.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(g) = shard.groups.remove(&oldest) {
                shard.bytes = shard.bytes.saturating_sub(g.bytes);
            }
        }
        let floor = if complete {
            None
        } else {
            held.front().map(|i| Box::from(i.key()))
        };
        shard.bytes += bytes;
        shard.groups.insert(
            Box::from(group),
            Group {
                items: held,
                floor,
                since: applied,
                generation,
                bytes,
                used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)),
            },
        );
        true
    }

    /// Reads answered and not, groups held and their bytes.
    pub(crate) fn stats(&self) -> InstrumentTailStats {
        let (mut groups, mut bytes) = (0, 0);
        for s in self.shards.iter() {
            let s = s.read();
            groups += s.groups.len() as u64;
            bytes += s.bytes as u64;
        }
        InstrumentTailStats {
            reads: self.reads.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            instruments: groups,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use tradestore_schema::Value;

    fn key(instrument: u64, ts: u64) -> Vec<u8> {
        keys::encode(&[Value::U64(instrument), Value::U64(ts), Value::U64(ts)])
    }

    fn group(instrument: u64) -> Vec<u8> {
        keys::encode(&[Value::U64(instrument)])
    }

    fn whole(instrument: u64) -> (Vec<u8>, Vec<u8>) {
        let g = group(instrument);
        let end = keys::prefix_end(&g).unwrap();
        (g, end)
    }

    fn read_all(t: &InstrumentTails, i: u64, generation: u64, seq: u64) -> Option<Chunk> {
        let (lo, hi) = whole(i);
        t.read(
            &group(i),
            generation,
            seq,
            (Bound::Included(&lo), Bound::Excluded(&hi)),
            1000,
        )
    }

    fn ts_of(c: &Chunk) -> Vec<u8> {
        c.items().map(|(_, v)| v[0]).collect()
    }

    fn entries(instrument: u64, ts: std::ops::RangeInclusive<u64>) -> Vec<(Vec<u8>, Vec<u8>)> {
        ts.rev()
            .map(|t| (key(instrument, t), vec![t as u8]))
            .collect()
    }

    #[test]
    fn a_seeded_group_answers_newest_first_and_takes_later_edits() {
        let t = InstrumentTails::new(1 << 20).unwrap();
        let g = t.generation();
        assert!(read_all(&t, 1, g, 10).is_none(), "nothing seeded yet");
        assert!(t.seed(&group(1), g, 10, entries(1, 1..=3)));
        let c = read_all(&t, 1, g, 10).unwrap();
        assert_eq!(ts_of(&c), vec![3, 2, 1]);
        assert_eq!((c.more, c.covers_from), (false, None), "every entry held");
        // A later batch (seq 11): seen by snapshots at 11, not by those at 10.
        let k4 = key(1, 4);
        t.apply(&[(k4, Some(&[4][..]))], 11);
        assert_eq!(ts_of(&read_all(&t, 1, g, 10).unwrap()), vec![3, 2, 1]);
        assert_eq!(ts_of(&read_all(&t, 1, g, 11).unwrap()), vec![4, 3, 2, 1]);
        // Snapshots older than the seed's view do not use it.
        assert!(read_all(&t, 1, g, 9).is_none());
        // Another instrument is its own group.
        assert!(read_all(&t, 2, g, 11).is_none());
        let s = t.stats();
        assert_eq!((s.reads, s.misses, s.instruments), (3, 3, 1));
    }

    #[test]
    fn a_full_group_trims_its_oldest_and_answers_above_its_floor() {
        let t = InstrumentTails::new(64 << 20).unwrap();
        let g = t.generation();
        let n = KEEP as u64;
        assert!(t.seed(&group(1), g, 1, entries(1, 1..=n)));
        let c = read_all(&t, 1, g, 1).unwrap();
        assert_eq!(c.len(), KEEP);
        assert_eq!(
            c.covers_from,
            Some(key(1, 1)),
            "a full seed may miss older ones"
        );
        for ts in n + 1..=n + SLACK as u64 + 1 {
            let k = key(1, ts);
            t.apply(&[(k, Some(&[ts as u8][..]))], 2);
        }
        let c = read_all(&t, 1, g, 2).unwrap();
        assert_eq!(c.len(), KEEP);
        let floor = key(1, SLACK as u64 + 2);
        assert_eq!(c.covers_from.as_deref(), Some(&floor[..]));
        // An edit below the floor is not held; a read that starts above it is whole.
        let old = key(1, 1);
        t.apply(&[(old, Some(&[1][..]))], 3);
        let lo = key(1, n);
        let (_, hi) = whole(1);
        let from_lo = |max| {
            t.read(
                &group(1),
                g,
                3,
                (Bound::Included(&lo), Bound::Excluded(&hi)),
                max,
            )
            .unwrap()
        };
        let c = from_lo(10);
        assert!(c.more);
        assert_eq!(c.len(), 10);
        let last = key(1, n + SLACK as u64 + 1 - 9);
        assert_eq!(c.covers_from.as_deref(), Some(&last[..]));
        let c = from_lo(1000);
        assert_eq!((c.len(), c.more, c.covers_from), (SLACK + 2, false, None));
    }

    #[test]
    fn a_change_outside_the_applier_drops_every_group_and_blocks_seeds() {
        let t = InstrumentTails::new(1 << 20).unwrap();
        let g = t.generation();
        assert!(t.seed(&group(1), g, 5, entries(1, 1..=2)));
        t.begin_change();
        assert!(read_all(&t, 1, g, 5).is_none());
        let during = t.generation();
        assert!(
            !t.may_seed(&group(1), during, 5),
            "no seed while a change is under way"
        );
        assert!(!t.seed(&group(1), during, 5, entries(1, 1..=2)));
        assert!(
            !t.seed(&group(1), g, 5, entries(1, 1..=2)),
            "a view from before"
        );
        t.end_change();
        let after = t.generation();
        assert!(t.may_seed(&group(1), after, 5));
        assert!(!t.seed(&group(1), during, 5, entries(1, 1..=2)));
        assert!(t.seed(&group(1), after, 5, entries(1, 1..=2)));
        assert!(
            read_all(&t, 1, g, 5).is_none(),
            "views from before the change"
        );
        assert!(read_all(&t, 1, after, 5).is_some());
    }

    #[test]
    fn a_seed_from_a_view_behind_the_applier_is_refused() {
        let t = InstrumentTails::new(1 << 20).unwrap();
        let g = t.generation();
        // The applier handed over a batch of instrument 1 (not held: dropped) at seq 8.
        let k = key(1, 9);
        t.apply(&[(k, Some(&[9][..]))], 8);
        assert!(!t.may_seed(&group(1), g, 7));
        assert!(
            !t.seed(&group(1), g, 7, entries(1, 1..=2)),
            "view at 7 lacks it"
        );
        assert!(t.may_seed(&group(1), g, 8));
        assert!(t.seed(&group(1), g, 8, entries(1, 1..=9)));
        // Held: an older snapshot that may not use it does not read a seed again.
        assert!(read_all(&t, 1, g, 7).is_none());
        assert!(!t.may_seed(&group(1), g, 8));
    }

    #[test]
    fn changed_and_removed_entries_hide_the_group_from_older_snapshots() {
        let t = InstrumentTails::new(1 << 20).unwrap();
        let g = t.generation();
        assert!(t.seed(&group(1), g, 5, entries(1, 1..=3)));
        let k2 = key(1, 2);
        t.apply(&[(k2, None)], 6);
        assert!(read_all(&t, 1, g, 5).is_none());
        assert_eq!(ts_of(&read_all(&t, 1, g, 6).unwrap()), vec![3, 1]);
        let k3 = key(1, 3);
        t.apply(&[(k3, Some(&[30][..]))], 7);
        assert!(read_all(&t, 1, g, 6).is_none());
        assert_eq!(ts_of(&read_all(&t, 1, g, 7).unwrap()), vec![30, 1]);
    }

    #[test]
    fn a_full_shard_lets_in_one_seed_in_eight() {
        // Room in each shard for two estimated groups.
        let t = InstrumentTails::new((SHARDS * 2 * GROUP_ESTIMATE) as u64).unwrap();
        let g = t.generation();
        let same_shard: Vec<u64> = (1..100_000)
            .filter(|&i| std::ptr::eq(t.shard(&group(i)), t.shard(&group(1))))
            .take(12)
            .collect();
        // Entries of about the estimated size: two groups fit a shard, a third does not.
        let full = |i: u64| -> Vec<(Vec<u8>, Vec<u8>)> {
            (1..=KEEP as u64)
                .rev()
                .map(|ts| (key(i, ts), vec![ts as u8; 60]))
                .collect()
        };
        for &i in &same_shard[..2] {
            assert!(t.may_seed(&group(i), g, 1));
            assert!(t.seed(&group(i), g, 1, full(i)));
        }
        let asked: Vec<bool> = same_shard[2..]
            .iter()
            .map(|&i| t.may_seed(&group(i), g, 1))
            .collect();
        let mut want = vec![false; 10];
        want[ADMIT_FULL as usize - 1] = true;
        assert_eq!(asked, want);
        // The one let in evicts the least recently read group.
        let admitted = same_shard[2 + ADMIT_FULL as usize - 1];
        assert!(t.seed(&group(admitted), g, 1, full(admitted)));
        assert!(read_all(&t, same_shard[0], g, 1).is_none());
        assert!(read_all(&t, admitted, g, 1).is_some());
    }

    #[test]
    fn seeds_past_the_budget_evict_the_least_recently_read() {
        // Room in a shard for about one group of three small entries.
        let room = GROUP_OVERHEAD + 3 * (ENTRY_OVERHEAD + 40);
        let t = InstrumentTails::new((SHARDS * room) as u64).unwrap();
        let g = t.generation();
        let same_shard: Vec<u64> = (1..10_000)
            .filter(|&i| std::ptr::eq(t.shard(&group(i)), t.shard(&group(1))))
            .take(2)
            .collect();
        let (a, b) = (same_shard[0], same_shard[1]);
        assert!(t.seed(&group(a), g, 1, entries(a, 1..=3)));
        assert!(t.seed(&group(b), g, 1, entries(b, 1..=3)));
        assert!(
            read_all(&t, a, g, 1).is_none(),
            "evicted for the newer seed"
        );
        assert!(read_all(&t, b, g, 1).is_some());
        let too_big = entries(a, 1..=200);
        assert!(!t.seed(&group(a), g, 1, too_big));
        assert!(InstrumentTails::new(0).is_none());
        // Instruments with no trades count too: reads of many stay within the budget.
        let budget = 64 << 10;
        let t = InstrumentTails::new(budget).unwrap();
        for i in 0..100_000 {
            assert!(t.seed(&group(i), g, 1, Vec::new()));
        }
        let s = t.stats();
        assert!(s.bytes <= budget, "{s:?}");
        assert!(s.instruments <= budget / GROUP_OVERHEAD as u64, "{s:?}");
        assert!(s.instruments > 100, "{s:?}");
    }

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Op {
        /// A batch: (instrument, ts, value or removal), at the next sequence number.
        Apply(Vec<(u64, u16, Option<u8>)>),
        /// A reader seeds an instrument from a view `lag` batches behind.
        Seed(u64, u8),
        /// A reader `lag` batches behind walks an instrument in a ts range.
        Read(u64, u8, Option<u16>, Option<u16>, u8),
        /// A commit outside the applier.
        Change,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let edit = (
            1..=2u64,
            0..700u16,
            prop_oneof![9 => any::<u8>().prop_map(Some), 1 => Just(None)],
        );
        prop_oneof![
            6 => proptest::collection::vec(edit, 1..60).prop_map(Op::Apply),
            2 => (1..=2u64, 0..4u8).prop_map(|(i, l)| Op::Seed(i, l)),
            6 => (1..=2u64, 0..4u8, proptest::option::of(0..700u16), proptest::option::of(0..700u16), 1..200u8)
                .prop_map(|(i, l, lo, hi, max)| Op::Read(i, l, lo, hi, max)),
            1 => Just(Op::Change),
        ]
    }

    /// Every entry as of `seq`: the batches up to it applied in order.
    fn state(
        history: &[Vec<(Vec<u8>, Option<u8>)>],
        seq: usize,
    ) -> std::collections::BTreeMap<Vec<u8>, u8> {
        let mut out = std::collections::BTreeMap::new();
        for batch in &history[..seq] {
            for (k, v) in batch {
                match v {
                    Some(v) => out.insert(k.clone(), *v),
                    None => out.remove(k),
                };
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Whatever a group answers is exactly the reader's state: the entries at or above
        /// the chunk's lowest key, inside the range, newest first; and a seed from a view
        /// that lacks a batch the tails were handed, or from before a change, is refused.
        #[test]
        fn answers_are_the_state_at_the_readers_sequence_number(ops in proptest::collection::vec(op(), 1..120)) {
            let t = InstrumentTails::new(64 << 20).unwrap();
            // Batch n (1-based) holds the edits of sequence number n.
            let mut history: Vec<Vec<(Vec<u8>, Option<u8>)>> = Vec::new();
            let mut changed_at = 0;
            for op in ops {
                let now = history.len();
                match op {
                    Op::Apply(edits) => {
                        let mut batch: std::collections::BTreeMap<Vec<u8>, Option<u8>> = Default::default();
                        for (i, ts, v) in edits {
                            batch.insert(key(i, u64::from(ts)), v);
                        }
                        let batch: Vec<(Vec<u8>, Option<u8>)> = batch.into_iter().collect();
                        let handed: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                            batch.iter().map(|(k, v)| (k.clone(), v.map(|b| vec![b]))).collect();
                        let edits: Vec<(Vec<u8>, Option<&[u8]>)> =
                            handed.iter().map(|(k, v)| (k.clone(), v.as_deref())).collect();
                        history.push(batch);
                        t.apply(&edits, history.len() as u64);
                    }
                    Op::Seed(i, lag) => {
                        let at = now.saturating_sub(usize::from(lag));
                        let held: Vec<(Vec<u8>, Vec<u8>)> = state(&history, at)
                            .into_iter()
                            .filter(|(k, _)| k.starts_with(&group(i)))
                            .rev()
                            .take(KEEP)
                            .map(|(k, v)| (k, vec![v]))
                            .collect();
                        let behind = history[at..].iter().flatten().any(|(k, _)| {
                            std::ptr::eq(t.shard(&k[..9]), t.shard(&group(i)))
                        });
                        let seeded = t.seed(&group(i), t.generation(), at as u64, held);
                        if behind {
                            proptest::prop_assert!(!seeded, "seeded from a view behind the applier");
                        }
                        // A view from before the last change never seeds.
                        if changed_at > 0 {
                            let old = t.generation() - 2;
                            proptest::prop_assert!(!t.seed(&group(i), old, now as u64, Vec::new()));
                        }
                    }
                    Op::Read(i, lag, lo, hi, max) => {
                        let seq = now.saturating_sub(usize::from(lag));
                        let lo_key = lo.map(|l| key(i, u64::from(l)));
                        let hi_key = hi.map(|h| key(i, u64::from(h)));
                        let (g_lo, g_hi) = whole(i);
                        let lo_b = lo_key.as_deref().map_or(Bound::Included(&g_lo[..]), Bound::Included);
                        let hi_b = hi_key.as_deref().map_or(Bound::Excluded(&g_hi[..]), Bound::Excluded);
                        let Some(c) = t.read(&group(i), t.generation(), seq as u64, (lo_b, hi_b), usize::from(max)) else {
                            continue;
                        };
                        let want: Vec<(Vec<u8>, u8)> = state(&history, seq)
                            .into_iter()
                            .filter(|(k, _)| k.starts_with(&group(i)))
                            .filter(|(k, _)| lo_key.as_ref().is_none_or(|l| k >= l))
                            .filter(|(k, _)| hi_key.as_ref().is_none_or(|h| k < h))
                            .filter(|(k, _)| c.covers_from.as_ref().is_none_or(|f| k >= f))
                            .rev()
                            .collect();
                        let got: Vec<(Vec<u8>, u8)> = c.items().map(|(k, v)| (k.to_vec(), v[0])).collect();
                        if c.more {
                            proptest::prop_assert_eq!(got.len(), usize::from(max));
                            proptest::prop_assert_eq!(&got[..], &want[..got.len()]);
                        } else {
                            proptest::prop_assert_eq!(got, want);
                        }
                    }
                    Op::Change => {
                        t.begin_change();
                        t.end_change();
                        changed_at = now.max(1);
                    }
                }
            }
        }
    }
}
