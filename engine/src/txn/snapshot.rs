//! A snapshot: a redb read transaction plus the overlay as it was when the snapshot was
//! taken. Reads merge the two (the overlay wins), and a write transaction adds its own write
//! set on top.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use redb::{ReadOnlyTable, ReadableTableMetadata};
use tradestore_schema::TableId;

use super::ops::{Source, Visit};
use super::walk;
use crate::error::{Error, Result, UserPanic, guard_read};
use crate::layout::{self, IndexReader, IndexSpec};
use crate::recent::RecentTrades;
use crate::rowcache::RowCache;
use crate::state::{Entry, INDEX_BASE, Overlay, space_of_table};
use crate::tail::{Chunk, InstrumentTails, KEEP, TAIL_INDEX};

/// Upper-layer entries of a range, in ascending key order.
pub(crate) type Upper = Vec<(Vec<u8>, Entry)>;

/// A redb read transaction with its data tables opened as needed, shared by every snapshot
/// taken until the engine's next redb commit (see `Shared::view`): beginning a read
/// transaction, reading the applied position and opening a table (a walk of redb's table
/// directory) are then paid once per redb commit instead of once per transaction.
pub(crate) struct RedbView {
    txn: redb::ReadTransaction,
    tables: [OnceLock<ReadOnlyTable<&'static [u8], &'static [u8]>>; 8],
    /// Index tables opened so far, by overlay slot (slots are never reused in an open store).
    indexes: RwLock<HashMap<u16, Arc<IndexReader>>>,
    /// The last transaction contained in this redb state.
    applied: u64,
    /// This view's generation (views begun later have larger ones): see [`RowCache`].
    generation: u64,
    rows: Option<Arc<RowCache>>,
    /// The ring of the newest trades, and the highest of its tags this view contains.
    recent: Option<(Arc<RecentTrades>, u64)>,
    /// The instruments' newest index entries, and their generation when this view began.
    tails: Option<(Arc<InstrumentTails>, u64)>,
    /// The archive segments this redb state lists.
    archive: crate::archive::ArchiveView,
}

impl RedbView {
    pub(crate) fn new(
        txn: redb::ReadTransaction,
        generation: u64,
        rows: Option<Arc<RowCache>>,
        recent: Option<(Arc<RecentTrades>, u64)>,
        tails: Option<(Arc<InstrumentTails>, u64)>,
        archive: &Arc<crate::archive::Archive>,
    ) -> Result<RedbView> {
        let (applied, listed) = crate::state::read_view_meta(&txn)?;
        let archive = archive.view(listed);
        Ok(RedbView {
            txn,
            tables: Default::default(),
            indexes: RwLock::new(HashMap::new()),
            applied,
            generation,
            rows,
            recent,
            tails,
            archive,
        })
    }
}

pub(crate) struct Snapshot {
    view: Arc<RedbView>,
    overlay: Overlay,
    /// The last transaction contained in the redb snapshot: overlay entries at or below it
    /// are already in redb (or superseded there) and are ignored.
    applied: u64,
    /// Every transaction up to this one is visible.
    pub(crate) seq: u64,
    pub(crate) indexes: Arc<Vec<IndexSpec>>,
    /// Counts this snapshot among the open readers.
    pub(crate) reader: Option<crate::stats::ReaderGuard>,
}

impl Snapshot {
    pub(crate) fn new(
        view: Arc<RedbView>,
        overlay: Overlay,
        durable: u64,
        indexes: Arc<Vec<IndexSpec>>,
    ) -> Snapshot {
        let applied = view.applied;
        Snapshot {
            view,
            overlay,
            applied,
            seq: durable.max(applied),
            indexes,
            reader: None,
        }
    }

    /// The space number of a source.
    pub(crate) fn space(&self, source: Source<'_>) -> Result<u16> {
        match source {
            Source::Table(t) => Ok(space_of_table(t)),
            Source::Index(spec) => self
                .indexes
                .iter()
                .find(|s| s.def.name == spec.def.name)
                .map(|s| INDEX_BASE + s.slot)
                .ok_or_else(|| Error::not_found(format!("no index named {}", spec.def.name))),
        }
    }

    fn table(&self, t: TableId) -> Result<&ReadOnlyTable<&'static [u8], &'static [u8]>> {
        let slot = &self.view.tables[t as usize];
        if let Some(table) = slot.get() {
            return Ok(table);
        }
        let table = self.view.txn.open_table(layout::data_table(t))?;
        Ok(slot.get_or_init(|| table))
    }

    fn index_table(&self, spec: &IndexSpec) -> Result<Arc<IndexReader>> {
        if let Some(t) = self.view.indexes.read().get(&spec.slot) {
            return Ok(Arc::clone(t));
        }
        let t = Arc::new(spec.open_read(&self.view.txn)?);
        self.view.indexes.write().insert(spec.slot, Arc::clone(&t));
        Ok(t)
    }

    /// The overlay's entry for a key, if newer than the redb snapshot.
    pub(crate) fn overlay_get(&self, space: u16, key: &[u8]) -> Option<&Entry> {
        // Most reads find the overlay empty (the applier keeps up): skip building the key.
        if self.overlay.is_empty() {
            return None;
        }
        match self.overlay.get(&(space, key.to_vec())) {
            Some((seq, e)) if *seq > self.applied => Some(e),
            _ => None,
        }
    }

    /// Overlay entries of a space in a range, newer than the redb snapshot, ascending.
    pub(crate) fn overlay_range(&self, space: u16, range: (Bound<&[u8]>, Bound<&[u8]>)) -> Upper {
        if self.overlay.is_empty() {
            return Vec::new();
        }
        let lo = match range.0 {
            Bound::Included(k) => Bound::Included((space, k.to_vec())),
            Bound::Excluded(k) => Bound::Excluded((space, k.to_vec())),
            Bound::Unbounded => Bound::Included((space, Vec::new())),
        };
        let hi = match range.1 {
            Bound::Included(k) => Bound::Included((space, k.to_vec())),
            Bound::Excluded(k) => Bound::Excluded((space, k.to_vec())),
            Bound::Unbounded => Bound::Excluded((space + 1, Vec::new())),
        };
        if !bounds_ordered(&lo, &hi) {
            return Vec::new();
        }
        self.overlay.range_above((lo, hi), self.applied)
    }

    /// A row as stored in redb.
    pub(crate) fn redb_get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        guard_read("reading a row", || {
            Ok(self.table(table)?.get(key)?.map(|g| g.value().to_vec()))
        })
    }

    /// A row as of the snapshot (overlay, then redb).
    pub(crate) fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(table, key, |b| Ok(b.to_vec()))
    }

    /// A trade never changes: its copy in the ring of the newest trades, from a commit this
    /// view contains, is the answer. `f` of it, or `f` back when the ring has none.
    fn recent_or<T, F: FnOnce(&[u8]) -> T>(
        &self,
        table: TableId,
        key: &[u8],
        f: F,
    ) -> Result<T, F> {
        match (table, &self.view.recent, crate::keys::id_of(key)) {
            (TableId::Trades, Some((recent, seen)), Some(id)) => recent.read(id, *seen, f),
            _ => Err(f),
        }
    }

    /// [`Snapshot::recent_or`], for a caller with nothing to give back.
    fn recent<T>(&self, table: TableId, key: &[u8], f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        self.recent_or(table, key, f).ok()
    }

    /// `f` of the row's bytes as of the snapshot, called where they lie (no copy).
    pub(crate) fn get_with<T>(
        &self,
        table: TableId,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        let f = match self.recent_or(table, key, f) {
            Ok(read) => return read.map(Some),
            Err(f) => f,
        };
        match self.overlay_get(space_of_table(table), key) {
            Some(Entry::Put(v)) => f(v).map(Some),
            Some(Entry::Del) => Ok(None),
            None => {
                if let Some(rows) = &self.view.rows {
                    return self.cached(rows, table, key)?.map(|v| f(&v)).transpose();
                }
                // `f` is called once: on the hot row, or else on the archived one.
                let mut f = Some(f);
                let hot = guard_read("reading a row", || match self.table(table)?.get(key)? {
                    Some(g) => f.take().map(|f| f(g.value())).transpose(),
                    None => Ok(None),
                })?;
                match (hot, f) {
                    (Some(v), _) => Ok(Some(v)),
                    (None, Some(f)) => self.archived(table, key)?.map(|v| f(&v)).transpose(),
                    (None, None) => Ok(None),
                }
            }
        }
    }

    /// The row's bytes as of the snapshot, shared (no copy when the overlay or the row
    /// cache holds them).
    pub(crate) fn get_shared(&self, table: TableId, key: &[u8]) -> Result<Option<Arc<[u8]>>> {
        if let Some(record) = self.recent(table, key, |b| Arc::<[u8]>::from(b)) {
            return Ok(Some(record));
        }
        match self.overlay_get(space_of_table(table), key) {
            Some(Entry::Put(v)) => Ok(Some(Arc::clone(v))),
            Some(Entry::Del) => Ok(None),
            None => match &self.view.rows {
                Some(rows) => self.cached(rows, table, key),
                None => match guard_read("reading a row", || {
                    Ok(self.table(table)?.get(key)?.map(|g| Arc::from(g.value())))
                })? {
                    Some(v) => Ok(Some(v)),
                    None => self.archived(table, key),
                },
            },
        }
    }

    /// A row the hot tables do not hold, from the archive tier (only trades are archived).
    fn archived(&self, table: TableId, key: &[u8]) -> Result<Option<Arc<[u8]>>> {
        if table != TableId::Trades || self.view.archive.is_empty() {
            return Ok(None);
        }
        self.view.archive.get(key)
    }

    /// A row below the overlay: from the row cache, else from redb (and then cached).
    fn cached(&self, rows: &RowCache, table: TableId, key: &[u8]) -> Result<Option<Arc<[u8]>>> {
        if let Some(v) = rows.get(table, key, self.view.generation) {
            return Ok(Some(v));
        }
        let found = match guard_read("reading a row", || {
            Ok(self.table(table)?.get(key)?.map(|g| Arc::from(g.value())))
        })? {
            Some(v) => Some(v),
            None => self.archived(table, key)?,
        };
        if let Some(v) = &found {
            rows.fill(table, key, v, self.view.generation);
        }
        Ok(found)
    }

    /// Walks redb's entries of `source` in `range`.
    fn walk(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        match source {
            Source::Table(t) => walk::rows(self.table(t)?, range, reverse, visit),
            Source::Index(spec) => walk::entries(&*self.index_table(spec)?, range, reverse, visit),
        }
    }

    /// Walks `source` in `range` newest first from the instruments' newest entries held in
    /// memory ([`crate::tail`]), merged under this snapshot's overlay, as far as they answer
    /// for it; seeds the instrument's group from this view when none is held.
    pub(crate) fn tail_walk(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        f: &mut Visit<'_>,
    ) -> Result<TailWalk> {
        let (Source::Index(spec), Some((tails, generation))) = (source, &self.view.tails) else {
            return Ok(TailWalk::NotServed);
        };
        if spec.def.name != TAIL_INDEX || self.view.archive.covers(source) {
            return Ok(TailWalk::NotServed);
        }
        let Some(group) = tail_group(range) else {
            return Ok(TailWalk::NotServed);
        };
        let generation = *generation;
        let mut chunk = tails.read(&group, generation, self.seq, range, TAIL_CHUNK);
        if chunk.is_none() && tails.may_seed(&group, generation, self.applied) {
            self.seed_tail(tails, generation, spec, &group)?;
            chunk = tails.read(&group, generation, self.seq, range, TAIL_CHUNK);
        }
        let Some(mut chunk) = chunk else {
            return Ok(TailWalk::NotServed);
        };
        let upper = self.overlay_range(self.space(source)?, range);
        // upper[..next] is still to come, newest (last) first.
        let mut next = upper.len();
        loop {
            if !visit_chunk(&chunk, &upper, &mut next, f)? {
                return Ok(TailWalk::Done);
            }
            let Some(from) = chunk.covers_from.take() else {
                return Ok(TailWalk::Done);
            };
            if !chunk.more {
                return Ok(TailWalk::Continue(from));
            }
            match tails.read(
                &group,
                generation,
                self.seq,
                (range.0, Bound::Excluded(&from)),
                TAIL_CHUNK,
            ) {
                Some(mut c) => {
                    // The group may have been trimmed since the last chunk: its floor can
                    // now lie above `from`, and then it answers nothing below `from`. The
                    // walk has visited everything down to `from`, never more than that.
                    if let Some(floor) = &mut c.covers_from
                        && *floor > from
                    {
                        *floor = from;
                    }
                    chunk = c;
                }
                None => return Ok(TailWalk::Continue(from)),
            }
        }
    }

    /// Reads an instrument's newest entries from this view's redb state and offers them to
    /// `tails` as the instrument's group.
    fn seed_tail(
        &self,
        tails: &InstrumentTails,
        generation: u64,
        spec: &IndexSpec,
        group: &[u8],
    ) -> Result<()> {
        let end = crate::keys::prefix_end(group);
        let hi = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut items = Vec::with_capacity(KEEP);
        guard_read("scanning", || {
            self.walk(
                Source::Index(spec),
                (Bound::Included(group), hi),
                true,
                &mut |k, v| {
                    items.push((k.to_vec(), v.to_vec()));
                    Ok(items.len() < KEEP)
                },
            )
        })?;
        tails.seed(group, generation, self.applied, items);
        Ok(())
    }

    /// Walks `source` in `range`, merging `upper` (ascending, already merged from the layers
    /// above redb) over redb's entries. Returns the last key visited when `f` stopped early.
    pub(crate) fn merged_range(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        upper: Upper,
        f: &mut Visit<'_>,
    ) -> Result<Option<Vec<u8>>> {
        // `f` is the application's code: its panics are its own, not damage.
        let user = UserPanic::default();
        let mut visit_user = |k: &[u8], v: &[u8]| user.call(|| f(k, v));
        let f = &mut visit_user;
        let archived = if self.view.archive.covers(source) {
            Some(self.view.archive.cursor(source, range, reverse)?)
        } else {
            None
        };
        if archived.is_none() && upper.is_empty() {
            // Nothing above redb (the applier keeps up, no archive): redb's walk alone.
            let mut stopped_at: Option<Vec<u8>> = None;
            let walked = guard_read("scanning", || {
                let mut visit = |k: &[u8], v: &[u8]| -> Result<bool> {
                    let go = f(k, v)?;
                    if !go {
                        stopped_at = Some(k.to_vec());
                    }
                    Ok(go)
                };
                self.walk(source, range, reverse, &mut visit)
            });
            user.resume();
            walked?;
            return Ok(stopped_at);
        }
        let mut upper = UpperStream {
            overlay: if reverse {
                Box::new(upper.into_iter().rev())
            } else {
                Box::new(upper.into_iter())
            },
            pending: None,
            archived,
            reverse,
        };
        let mut stopped_at: Option<Vec<u8>> = None;
        let walked = guard_read("scanning", || {
            let mut visit = |k: &[u8], v: &[u8]| -> Result<bool> {
                while let Some((uk, ue)) = upper.next_upto(Some(k))? {
                    if uk.as_slice() == k {
                        // The upper layer's entry replaces redb's.
                        return match ue {
                            Entry::Put(val) => {
                                let go = f(&uk, &val)?;
                                if !go {
                                    stopped_at = Some(uk);
                                }
                                Ok(go)
                            }
                            Entry::Del => Ok(true),
                        };
                    }
                    if let Entry::Put(val) = &ue
                        && !f(&uk, val)?
                    {
                        stopped_at = Some(uk);
                        return Ok(false);
                    }
                }
                let go = f(k, v)?;
                if !go {
                    stopped_at = Some(k.to_vec());
                }
                Ok(go)
            };
            self.walk(source, range, reverse, &mut visit)
        });
        user.resume();
        walked?;
        if stopped_at.is_some() {
            return Ok(stopped_at);
        }
        while let Some((uk, ue)) = upper.next_upto(None)? {
            if let Entry::Put(val) = &ue {
                let go = f(&uk, val);
                user.resume();
                if !go? {
                    return Ok(Some(uk));
                }
            }
        }
        Ok(None)
    }

    /// Rows of a table as of the snapshot.
    pub(crate) fn count(&self, table: TableId) -> Result<u64> {
        let base = self.approx_count(table)?;
        let mut n = i128::from(base);
        for (k, e) in
            self.overlay_range(space_of_table(table), (Bound::Unbounded, Bound::Unbounded))
        {
            let in_redb = self.redb_get(table, &k)?.is_some();
            match (e, in_redb) {
                (Entry::Put(_), false) => n += 1,
                (Entry::Del, true) => n -= 1,
                _ => {}
            }
        }
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The number of rows of a table in the redb snapshot, without the overlay: O(1), and
    /// off by at most what the applier has yet to move (good enough for estimates).
    pub(crate) fn approx_count(&self, table: TableId) -> Result<u64> {
        let hot = guard_read("counting rows", || Ok(self.table(table)?.len()?))?;
        Ok(if table == TableId::Trades {
            hot + self.view.archive.rows()
        } else {
            hot
        })
    }

    /// Entries of an index as of the snapshot.
    pub(crate) fn index_len(&self, spec: &IndexSpec) -> Result<u64> {
        let mut n = 0u64;
        self.merged_range(
            Source::Index(spec),
            (Bound::Unbounded, Bound::Unbounded),
            false,
            self.overlay_range(
                self.space(Source::Index(spec))?,
                (Bound::Unbounded, Bound::Unbounded),
            ),
            &mut |_, _| {
                n += 1;
                Ok(true)
            },
        )?;
        Ok(n)
    }
}

/// The layers above redb in a scan, in the walk's order: the overlay's entries (merged with
/// a write set's), and the archive's below them, which are read only as the walk reaches
/// them. On an equal key the overlay's entry wins.
struct UpperStream<'a> {
    overlay: Box<dyn Iterator<Item = (Vec<u8>, Entry)>>,
    /// The overlay's next entry, taken from the iterator but not yet due.
    pending: Option<(Vec<u8>, Entry)>,
    archived: Option<crate::archive::ArchiveCursor<'a>>,
    reverse: bool,
}

impl UpperStream<'_> {
    /// The next entry whose key comes at or before `limit` in the walk's order (any when
    /// `None`); `None` when the next one comes after it, or there is none.
    fn next_upto(&mut self, limit: Option<&[u8]>) -> Result<Option<(Vec<u8>, Entry)>> {
        let reverse = self.reverse;
        let after = |a: &[u8], b: &[u8]| if reverse { a < b } else { a > b };
        if self.pending.is_none() {
            self.pending = self.overlay.next();
        }
        let overlay_due = match (&self.pending, limit) {
            (Some((k, _)), Some(l)) => !after(k, l),
            (Some(_), None) => true,
            (None, _) => false,
        };
        // The archive's entry comes first only before the overlay's next (or, without one
        // due, up to the limit).
        let archive_limit = match &self.pending {
            Some((k, _)) if overlay_due => Some(k.as_slice()),
            _ => limit,
        };
        if let Some(cursor) = &mut self.archived
            && let Some(item) = cursor.next_upto(archive_limit)?
        {
            let tie = overlay_due && self.pending.as_ref().is_some_and(|(k, _)| *k == item.0);
            if !tie {
                return Ok(Some(item));
            }
        }
        Ok(if overlay_due {
            self.pending.take()
        } else {
            None
        })
    }
}

/// Visits a chunk's entries merged with the overlay's entries (`upper[..*next]`, taken
/// from the end) at or above the chunk's lowest key, newest first; `false` when `f` stopped.
fn visit_chunk(chunk: &Chunk, upper: &Upper, next: &mut usize, f: &mut Visit<'_>) -> Result<bool> {
    let floor = chunk.covers_from.as_deref();
    let mut items = chunk.items().peekable();
    loop {
        let held = items.peek().map(|(k, _)| *k);
        let over = next
            .checked_sub(1)
            .map(|i| upper[i].0.as_slice())
            .filter(|k| floor.is_none_or(|c| *k >= c));
        let from_overlay = match (held, over) {
            (None, None) => return Ok(true),
            (Some(h), Some(o)) => o >= h,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if from_overlay {
            *next -= 1;
            let (k, e) = &upper[*next];
            if held == Some(k.as_slice()) {
                // The overlay's entry wins over the same key held here.
                items.next();
            }
            if let Entry::Put(v) = e
                && !f(k, v)?
            {
                return Ok(false);
            }
        } else if let Some((k, v)) = items.next()
            && !f(k, v)?
        {
            return Ok(false);
        }
    }
}

/// Entries taken from a group per lock: one chunk answers the last 100 trades.
const TAIL_CHUNK: usize = 128;

/// How far [`Snapshot::tail_walk`] got.
pub(crate) enum TailWalk {
    /// No group answers for this snapshot: walk the range as usual.
    NotServed,
    /// The walk is over (the visitor stopped, or the range was answered whole).
    Done,
    /// Every entry at or above this key was visited: walk the rest of the range below it.
    Continue(Vec<u8>),
}

/// The group (an instrument's encoded value) a range lies in, if it lies in one.
fn tail_group(range: (Bound<&[u8]>, Bound<&[u8]>)) -> Option<Vec<u8>> {
    let (Bound::Included(start) | Bound::Excluded(start)) = range.0 else {
        return None;
    };
    let group = &start[..crate::keys::len_of_values(start, 1).ok()?];
    let inside = match range.1 {
        Bound::Included(end) => end.starts_with(group),
        Bound::Excluded(end) => {
            end.starts_with(group) || crate::keys::prefix_end(group).as_deref() == Some(end)
        }
        Bound::Unbounded => false,
    };
    inside.then(|| group.to_vec())
}

fn bounds_ordered<T: Ord>(lo: &Bound<T>, hi: &Bound<T>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
    }
}
