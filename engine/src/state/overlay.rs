//! The overlay: every committed (durable) write that the applier has not yet moved into
//! redb, as a persistent sorted map so that a snapshot is an O(1) clone.
//!
//! Keys are `(space, key)`: space `0..256` is a table (its [`TableId`] discriminant), space
//! `INDEX_BASE + i` is the `i`th secondary index. Each value carries the sequence number
//! of the transaction that wrote it, so that a reader whose redb snapshot already contains
//! that transaction ignores it.

use std::ops::Bound;
use std::sync::Arc;

use tradestore_schema::TableId;

/// First space number of the secondary indexes.
pub(crate) const INDEX_BASE: u16 = 256;

/// A key of the overlay or of a write set.
pub(crate) type OKey = (u16, Vec<u8>);

/// A row or index entry written by a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The row's encoded record (for an index entry: the row's record when the index is
    /// covering, else an empty value).
    Put(Arc<[u8]>),
    /// Deleted.
    Del,
}

/// One level of the overlay: the writes published between two seals, key -> (sequence
/// number of the write, entry).
#[derive(Clone, Default)]
pub(crate) struct Level {
    /// Tells levels apart (see [`Overlay::install`]); 0 for a level never installed.
    id: u64,
    /// Shared by the snapshots that hold the level: whether it is tells a publisher whether
    /// inserting copies the map's nodes (see [`Overlay::newest_shared`]).
    map: Arc<imbl::OrdMap<OKey, (u64, Entry)>>,
    /// The largest sequence number written into this level.
    last_seq: u64,
    /// Bytes its entries take (as [`entry_bytes_of`] counts them).
    bytes: u64,
}

/// The overlay: levels of published writes, oldest first; publishing writes into the newest.
///
/// The applier seals the newest level when it takes a batch, and drops whole levels once
/// redb holds them, instead of removing each applied key: a removal walks the persistent
/// map twice and copies the nodes that snapshots share (measured: 9% of the CPU of a
/// pipelined fill went to those removals). A key lives in at most one level per write, and
/// a later write of a key is in the same or a newer level, so a lookup asks the levels
/// newest first. Cloning it (a snapshot) copies the short list of levels; the maps are
/// shared.
#[derive(Clone, Default)]
pub(crate) struct Overlay {
    levels: Vec<Level>,
    /// The id of the next level installed or sealed.
    next_id: u64,
}

/// The overlay's newest level with a group's writes added, built away from the lock that
/// snapshots take: see [`Overlay::draft`].
pub(crate) struct Draft {
    /// The id of the level it was copied from (0: none).
    base: u64,
    /// That level's bytes when copied.
    base_bytes: u64,
    level: Level,
}

impl Draft {
    /// Adds a write; returns the bytes it added and the bytes of the entry it replaced in
    /// the level (0 if none).
    pub(crate) fn insert(&mut self, key: OKey, seq: u64, entry: Entry) -> (u64, u64) {
        self.level.insert(key, seq, entry)
    }
}

/// What [`Overlay::install`] did.
pub(crate) struct Installed {
    /// The level the draft replaced, for the caller to drop after releasing its lock.
    pub replaced: Option<Level>,
    /// Bytes the overlay counts again: those of a base level that was taken out (applied)
    /// meanwhile, whose writes the draft still holds.
    pub recounted: u64,
}

impl Level {
    fn insert(&mut self, key: OKey, seq: u64, entry: Entry) -> (u64, u64) {
        let key_len = key.1.len();
        let added = entry_bytes_of(&entry, key_len);
        let removed = Arc::make_mut(&mut self.map)
            .insert(key, (seq, entry))
            .map_or(0, |(_, e)| entry_bytes_of(&e, key_len));
        self.last_seq = self.last_seq.max(seq);
        self.bytes = (self.bytes + added).saturating_sub(removed);
        (added, removed)
    }
}

impl Overlay {
    /// Whether no level holds an entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.levels.iter().all(|l| l.map.is_empty())
    }

    /// The newest write of `key`, with its sequence number.
    pub(crate) fn get(&self, key: &OKey) -> Option<&(u64, Entry)> {
        self.levels.iter().rev().find_map(|l| l.map.get(key))
    }

    /// The newest write of each key in `range` whose sequence number is above `above`,
    /// ascending by key.
    pub(crate) fn range_above(
        &self,
        range: (Bound<OKey>, Bound<OKey>),
        above: u64,
    ) -> Vec<(Vec<u8>, Entry)> {
        let mut live = self.levels.iter().filter(|l| !l.map.is_empty());
        match (live.next(), live.next()) {
            (None, _) => Vec::new(),
            (Some(only), None) => only
                .map
                .range(range)
                .filter(|(_, (seq, _))| *seq > above)
                .map(|((_, k), (_, e))| (k.clone(), e.clone()))
                .collect(),
            _ => {
                // Newer levels overwrite older ones. A stale newest write means the older
                // writes of that key are stale too (sequence numbers grow with the levels).
                let mut merged = std::collections::BTreeMap::new();
                for l in &self.levels {
                    for ((_, k), (seq, e)) in l.map.range(range.clone()) {
                        if *seq > above {
                            merged.insert(k.clone(), e.clone());
                        } else {
                            merged.remove(k);
                        }
                    }
                }
                merged.into_iter().collect()
            }
        }
    }

    /// Publishes a write into the newest level; returns the bytes it added and the bytes of
    /// the entry it replaced in that level (0 if none).
    pub(crate) fn insert(&mut self, key: OKey, seq: u64, entry: Entry) -> (u64, u64) {
        if self.levels.is_empty() {
            self.next_id += 1;
            self.levels.push(Level {
                id: self.next_id,
                ..Level::default()
            });
        }
        let Some(level) = self.levels.last_mut() else {
            unreachable!("a level was just pushed")
        };
        level.insert(key, seq, entry)
    }

    /// Whether a snapshot holds the newest level: inserting then copies the nodes of the
    /// map it touches, which a publisher does best in a [`Draft`], away from the lock.
    /// Otherwise it inserts in place.
    pub(crate) fn newest_shared(&self) -> bool {
        self.levels
            .last()
            .is_some_and(|l| Arc::strong_count(&l.map) > 1)
    }

    /// A copy of the newest level to publish into. Building it costs a persistent map's
    /// inserts; only [`Overlay::install`], O(levels), needs the lock that snapshots take.
    /// One publisher at a time.
    pub(crate) fn draft(&self) -> Draft {
        match self.levels.last() {
            Some(l) => Draft {
                base: l.id,
                base_bytes: l.bytes,
                level: l.clone(),
            },
            None => Draft {
                base: 0,
                base_bytes: 0,
                level: Level::default(),
            },
        }
    }

    /// Puts a draft in place of the level it was copied from, or adds it as the newest
    /// level when that one is gone (applied meanwhile).
    ///
    /// Either way the order of writes across levels holds: between the draft and now the
    /// applier may have sealed (added empty levels after the base) or taken applied levels
    /// out, but only the publisher adds writes. A draft that replaces a sealed base keeps
    /// it from being dropped with its batch; it is dropped with the next batch, which
    /// applies the draft's writes. Until then its older writes are stale for every reader
    /// whose redb snapshot holds them, as any applied write is.
    pub(crate) fn install(&mut self, draft: Draft) -> Installed {
        let Draft {
            base,
            base_bytes,
            mut level,
        } = draft;
        let at = self.levels.iter().position(|l| base != 0 && l.id == base);
        match at {
            Some(i) => Installed {
                replaced: Some(std::mem::replace(&mut self.levels[i], level)),
                recounted: 0,
            },
            None => {
                self.next_id += 1;
                level.id = self.next_id;
                self.levels.push(level);
                Installed {
                    replaced: None,
                    recounted: base_bytes,
                }
            }
        }
    }

    /// Starts a new level for what is published from now on (the applier's batch is the
    /// levels up to here).
    pub(crate) fn seal(&mut self) {
        if self.levels.last().is_some_and(|l| !l.map.is_empty()) {
            self.next_id += 1;
            self.levels.push(Level {
                id: self.next_id,
                ..Level::default()
            });
        }
    }

    /// Takes out every level redb now holds entirely (each write in it is at or below
    /// `applied`); returns their bytes, and the levels, for the caller to free after
    /// releasing its lock.
    pub(crate) fn take_applied(&mut self, applied: u64) -> (u64, Overlay) {
        let (done, kept): (Vec<Level>, Vec<Level>) = std::mem::take(&mut self.levels)
            .into_iter()
            .partition(|l| l.last_seq <= applied);
        self.levels = kept;
        let freed = done.iter().map(|l| l.bytes).sum();
        (
            freed,
            Overlay {
                levels: done,
                next_id: 0,
            },
        )
    }

    #[cfg(test)]
    fn levels(&self) -> usize {
        self.levels.len()
    }
}

/// Levels taken out of the overlay (applied, or replaced by a draft) that snapshots may
/// still hold. Whoever lets go of a level last frees its map's nodes, and that is usually
/// a committer ending its transaction: a pipelining thread, whose time is the throughput.
/// Kept here instead, a level is freed by [`Graveyard::reap`] on the thread that calls it
/// (a publishing leader, the applier) once no snapshot holds it.
#[derive(Default)]
pub(crate) struct Graveyard {
    levels: Vec<Level>,
}

impl Graveyard {
    /// Keeps the levels of `overlay` until no snapshot holds them.
    pub(crate) fn bury_all(&mut self, overlay: Overlay) {
        self.levels.extend(overlay.levels);
    }

    /// Keeps `level` until no snapshot holds it.
    pub(crate) fn bury(&mut self, level: Level) {
        self.levels.push(level);
    }

    /// Takes out the levels no snapshot holds any more, for the caller to drop after
    /// releasing its lock. Nothing can take a new hold on them: they are out of the overlay.
    pub(crate) fn reap(&mut self) -> Vec<Level> {
        let (free, held): (Vec<Level>, Vec<Level>) = std::mem::take(&mut self.levels)
            .into_iter()
            .partition(|l| Arc::strong_count(&l.map) == 1);
        self.levels = held;
        free
    }

    /// Levels kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.levels.len()
    }
}

/// Bytes an overlay entry is counted as: its key, its value and a fixed overhead.
fn entry_bytes_of(e: &Entry, key_len: usize) -> u64 {
    let v = match e {
        Entry::Put(v) => v.len(),
        Entry::Del => 0,
    };
    (key_len + v + 48) as u64
}

/// The overlay together with the sequence number it is complete up to: every transaction
/// with a sequence number `<= durable` is in the overlay or already in redb.
#[derive(Clone, Default)]
pub(crate) struct Published {
    pub overlay: Overlay,
    pub durable: u64,
}

/// The space of a table's rows.
pub(crate) fn space_of_table(t: TableId) -> u16 {
    u16::from(t as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &[u8]) -> Entry {
        Entry::Put(Arc::from(v))
    }

    fn key(k: &[u8]) -> OKey {
        (3, k.to_vec())
    }

    fn all(o: &Overlay, above: u64) -> Vec<(Vec<u8>, Entry)> {
        o.range_above((Bound::Unbounded, Bound::Unbounded), above)
    }

    #[test]
    fn lookups_see_the_newest_level_and_sealed_levels_drop_whole() {
        let mut o = Overlay::default();
        assert!(o.is_empty());
        o.insert(key(b"a"), 1, put(b"a1"));
        o.insert(key(b"b"), 2, put(b"b2"));
        o.seal();
        o.insert(key(b"a"), 3, put(b"a3"));
        o.insert(key(b"c"), 4, Entry::Del);
        assert_eq!(o.levels(), 2);
        assert_eq!(o.get(&key(b"a")), Some(&(3, put(b"a3"))));
        assert_eq!(o.get(&key(b"b")), Some(&(2, put(b"b2"))));
        assert_eq!(
            all(&o, 0),
            [
                (b"a".to_vec(), put(b"a3")),
                (b"b".to_vec(), put(b"b2")),
                (b"c".to_vec(), Entry::Del)
            ]
        );
        // Above 2: the older level's writes are stale; `a`'s newest write is not.
        assert_eq!(
            all(&o, 2),
            [(b"a".to_vec(), put(b"a3")), (b"c".to_vec(), Entry::Del)]
        );
        let snapshot = o.clone();
        let (freed, _) = o.take_applied(2);
        assert_eq!(freed, (1 + 2 + 48) * 2, "the first level's two entries");
        assert_eq!(o.levels(), 1);
        assert_eq!(o.get(&key(b"b")), None);
        assert_eq!(
            snapshot.get(&key(b"b")),
            Some(&(2, put(b"b2"))),
            "a clone keeps its levels"
        );
        assert_eq!(o.take_applied(3).0, 0, "a level with a later write stays");
        o.take_applied(4);
        assert!(o.is_empty());
        assert_eq!(o.levels(), 0);
    }

    #[test]
    fn a_rewrite_in_the_same_level_replaces_and_is_counted_once() {
        let mut o = Overlay::default();
        assert_eq!(o.insert(key(b"k"), 1, put(b"xx")), (1 + 2 + 48, 0));
        assert_eq!(o.insert(key(b"k"), 2, put(b"y")), (1 + 1 + 48, 1 + 2 + 48));
        o.seal();
        o.seal();
        assert_eq!(o.levels(), 2, "an empty newest level is not sealed again");
        assert_eq!(o.take_applied(2).0, 1 + 1 + 48);
    }

    fn bytes(o: &Overlay) -> u64 {
        o.levels.iter().map(|l| l.bytes).sum()
    }

    #[test]
    fn a_draft_replaces_its_base_even_after_a_seal() {
        let mut o = Overlay::default();
        o.insert(key(b"a"), 1, put(b"a1"));
        let mut draft = o.draft();
        assert_eq!(draft.insert(key(b"b"), 2, put(b"b2")), (1 + 2 + 48, 0));
        assert_eq!(o.get(&key(b"b")), None, "a draft is not published");
        // The applier seals the base and takes its batch (up to 1) meanwhile.
        o.seal();
        let installed = o.install(draft);
        assert!(installed.replaced.is_some());
        assert_eq!(installed.recounted, 0);
        assert_eq!(o.levels(), 2);
        assert_eq!(o.get(&key(b"b")), Some(&(2, put(b"b2"))));
        // Later writes go to the newest level, after the draft's.
        o.insert(key(b"b"), 3, put(b"b3"));
        assert_eq!(o.get(&key(b"b")), Some(&(3, put(b"b3"))));
        // Batch 1 applied: the replaced base holds write 2, so it stays.
        assert_eq!(o.take_applied(1).0, 0);
        assert_eq!(o.get(&key(b"a")), Some(&(1, put(b"a1"))), "stale, and kept");
        assert_eq!(all(&o, 1), [(b"b".to_vec(), put(b"b3"))]);
        let both = bytes(&o);
        assert_eq!(o.take_applied(3).0, both);
        assert!(o.is_empty());
    }

    #[test]
    fn a_draft_whose_base_was_applied_is_added_and_counted_again() {
        let mut o = Overlay::default();
        o.insert(key(b"a"), 1, put(b"a1"));
        let base = bytes(&o);
        let mut draft = o.draft();
        draft.insert(key(b"b"), 2, put(b"b2"));
        let (freed, _) = o.take_applied(1);
        assert_eq!(freed, base);
        let installed = o.install(draft);
        assert!(installed.replaced.is_none());
        assert_eq!(
            installed.recounted, base,
            "the base's bytes are counted again"
        );
        assert_eq!(bytes(&o), base + 1 + 2 + 48);
        assert_eq!(all(&o, 1), [(b"b".to_vec(), put(b"b2"))]);
        assert_eq!(o.get(&key(b"b")), Some(&(2, put(b"b2"))));
    }

    #[test]
    fn the_newest_level_is_shared_while_a_snapshot_holds_it() {
        let mut o = Overlay::default();
        assert!(!o.newest_shared());
        o.insert(key(b"a"), 1, put(b"a1"));
        assert!(!o.newest_shared());
        let snapshot = o.clone();
        assert!(o.newest_shared());
        o.insert(key(b"a"), 2, put(b"a2"));
        assert_eq!(snapshot.get(&key(b"a")), Some(&(1, put(b"a1"))));
        assert!(!o.newest_shared(), "the insert copied the level");
        drop(snapshot);
        let snapshot = o.clone();
        drop(snapshot);
        assert!(!o.newest_shared());
    }

    #[test]
    fn a_buried_level_is_freed_once_no_snapshot_holds_it() {
        let mut o = Overlay::default();
        o.insert(key(b"a"), 1, put(b"a1"));
        let snapshot = o.clone();
        let mut graveyard = Graveyard::default();
        graveyard.bury_all(o.take_applied(1).1);
        assert_eq!(graveyard.len(), 1);
        assert!(graveyard.reap().is_empty(), "a snapshot holds it");
        assert_eq!(snapshot.get(&key(b"a")), Some(&(1, put(b"a1"))));
        drop(snapshot);
        assert_eq!(graveyard.reap().len(), 1);
        assert_eq!(graveyard.len(), 0);
    }
}
