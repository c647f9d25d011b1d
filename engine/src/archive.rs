//! The archive tier: old trades leave the hot redb file for immutable, zstd-compressed
//! segment files under `archive/trades/`, and every read path still sees them.
//!
//! [`Store::archive_trades`] moves the oldest trades (by id, while their `ts` is before a
//! cutoff) in segments of at most [`SEGMENT_MAX_ROWS`]. A segment is written and synced
//! first; then one durable redb commit removes its trades (and their index entries) from
//! the hot tables, lists the segment in the catalog (`archive/trades/<first id>`) and counts
//! it in the `meta` table (`archive_segments`). That commit is the switch: a crash before
//! it leaves an unlisted file (removed by the next archive run) and every trade still hot.
//!
//! Reads are transparent. A read view pairs its redb snapshot with the segments that
//! snapshot lists, so a trade is seen exactly once, hot or archived:
//! - a point get that misses the hot tables looks in the segment whose id range holds the
//!   id;
//! - a scan of `trades`, or of an index on it, merges the archived entries in range with the
//!   hot ones (index entries of archived trades are derived from the rows on first use and
//!   cached, so indexes created after archiving cover them too);
//! - counts add the archived rows.
//!
//! Archived trades are read-only, as trades already are. Decoded segments are kept in a
//! cache bounded by `archive_cache_mb`; a scan that reaches the archive reads whole
//! segments, which makes cold reads slower than hot ones by design.
//!
//! Segment file layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `TSARCH1\n` |
//! | 8 | uncompressed body length |
//! | 4 | CRC32C of the compressed body |
//! | rest | zstd frame of the body: postcard `Vec<(key, record)>` in key order |

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redb::{Durability, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use tradestore_schema::{TableId, codec};

use crate::commit::Shared;
use crate::error::{Error, Result};
use crate::layout::{self, IndexSpec};
use crate::state::{Entry, RowChange};
use crate::store::Store;

/// The most trades one segment holds.
pub const SEGMENT_MAX_ROWS: usize = 65_536;
/// The largest uncompressed body a segment may declare: a trade's record has no text, so
/// it encodes in at most about 90 bytes, and [`SEGMENT_MAX_ROWS`] of them with their keys
/// stay under 7 MiB. The bound also caps what a damaged or hostile listing can make the
/// reader allocate.
const MAX_BODY_BYTES: u64 = 16 << 20;
const MAGIC: &[u8; 8] = b"TSARCH1\n";
const HEADER: usize = 20;
/// Catalog keys of the segments: this prefix, then the first id in 20 digits.
pub(crate) const CATALOG_PREFIX: &str = "archive/trades/";
/// Catalog keys of the segments' fences: this prefix, the first id in 20 digits, `/`, the
/// index's name.
const FENCES_PREFIX: &str = "archive/fences/";
/// The folder of the segment files, under the store's directory.
pub const FOLDER: &str = "archive/trades";
/// zstd level: archiving runs in the background of a live store; level 6 compresses trade
/// records nearly as well as the slow levels at several times their speed.
const LEVEL: i32 = 6;

/// A segment as the catalog lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentMeta {
    /// The file, relative to the store's directory.
    pub file: String,
    /// The lowest trade id it holds.
    pub first_id: u64,
    /// The highest trade id it holds.
    pub last_id: u64,
    /// Trades it holds.
    pub rows: u64,
    /// The oldest and newest `ts` of its trades (ns since the epoch).
    pub min_ts: i64,
    /// See `min_ts`.
    pub max_ts: i64,
    /// Bytes of the uncompressed body.
    pub raw_bytes: u64,
    /// Bytes of the file.
    pub file_bytes: u64,
    /// CRC32C of the whole file.
    pub crc32c: u32,
    /// When it was written, ns since the epoch.
    pub created_ns: u64,
}

/// What one [`Store::archive_trades`] call did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ArchiveReport {
    /// Segments written.
    pub segments: Vec<SegmentMeta>,
    /// Trades moved out of the hot tables.
    pub trades: u64,
    /// Their records' bytes, uncompressed.
    pub raw_bytes: u64,
    /// Bytes of the segment files written.
    pub file_bytes: u64,
    /// Unlisted files left by an interrupted run, removed.
    pub removed_orphans: Vec<String>,
}

/// The archive as the store sees it: every listed segment, and the cache of decoded ones.
pub(crate) struct Archive {
    dir: PathBuf,
    /// In the order they were listed (the `meta` count of a redb snapshot is a prefix).
    segments: RwLock<Arc<Vec<Arc<SegmentMeta>>>>,
    cache: Mutex<Cache>,
    /// Where each segment's entries of an index can be, by (segment, slot): kept when the
    /// entries are derived, and after they leave the cache (a few KiB each).
    fences: Mutex<std::collections::HashMap<(u64, u16), Arc<Fences>>>,
    /// Held by an archive run: one at a time.
    pub(crate) run: Mutex<()>,
}

/// Decoded segments and derived index entries, bounded by bytes, least recently used out.
struct Cache {
    budget: u64,
    bytes: u64,
    entries: lru::LruCache<CacheKey, (Arc<Entries>, u64)>,
}

/// A segment's rows (`None`) or its entries of the index in a slot.
type CacheKey = (u64, Option<u16>);

/// Entries (keys and values) in key order.
type Entries = Vec<(Vec<u8>, Arc<[u8]>)>;

/// The segments one read view sees.
#[derive(Clone)]
pub(crate) struct ArchiveView {
    archive: Arc<Archive>,
    segments: Arc<Vec<Arc<SegmentMeta>>>,
    listed: usize,
}

impl Archive {
    /// The archive of the store in `dir`, with the segments its catalog lists.
    pub(crate) fn load(
        dir: &Path,
        txn: &redb::ReadTransaction,
        cache_bytes: u64,
        indexes: &[IndexSpec],
    ) -> Result<Archive> {
        let mut segments: Vec<SegmentMeta> = crate::catalog::scan_json(txn, CATALOG_PREFIX)?;
        segments.sort_by_key(|s| s.first_id);
        let listed = crate::state::read_archive_segments(txn)?;
        if listed != segments.len() as u64 {
            return Err(Error::corruption(format!(
                "the catalog lists {} archive segments but the store counts {listed}",
                segments.len()
            )));
        }
        for s in &segments {
            check_meta(s)?;
        }
        // Fences written when each segment was archived, for the indexes that still have
        // the same columns (an index dropped and created again with other columns derives
        // its own on first read).
        let mut fences = std::collections::HashMap::new();
        for record in crate::catalog::scan_json::<FenceRecord>(txn, FENCES_PREFIX)? {
            let spec = indexes.iter().find(|s| {
                s.def.name == record.index
                    && s.def.table == TableId::Trades
                    && s.def.columns == record.columns
            });
            if let Some(spec) = spec {
                fences.insert((record.first_id, spec.slot), Arc::new(record.fences()?));
            }
        }
        Ok(Archive {
            dir: dir.to_path_buf(),
            segments: RwLock::new(Arc::new(segments.into_iter().map(Arc::new).collect())),
            cache: Mutex::new(Cache {
                budget: cache_bytes,
                bytes: 0,
                entries: lru::LruCache::unbounded(),
            }),
            fences: Mutex::new(fences),
            run: Mutex::new(()),
        })
    }

    /// The segments a redb snapshot that counts `listed` of them sees.
    pub(crate) fn view(self: &Arc<Archive>, listed: u64) -> ArchiveView {
        let segments = Arc::clone(&self.segments.read());
        let listed = usize::try_from(listed)
            .unwrap_or(usize::MAX)
            .min(segments.len());
        ArchiveView {
            archive: Arc::clone(self),
            segments,
            listed,
        }
    }

    /// Every listed segment.
    pub(crate) fn segments(&self) -> Arc<Vec<Arc<SegmentMeta>>> {
        Arc::clone(&self.segments.read())
    }

    /// Every listed segment whose file fails to read back as written (missing, truncated,
    /// damaged), read from the disk whatever the cache holds, with what is wrong with it.
    /// The segments that read whole go into the cache, for the reads that follow.
    pub(crate) fn damaged(&self) -> Vec<(Arc<SegmentMeta>, Error)> {
        self.segments()
            .iter()
            .filter_map(
                |meta| match read_segment(&self.dir.join(&meta.file), meta) {
                    Ok(rows) => {
                        self.keep((meta.first_id, None), &Arc::new(rows));
                        None
                    }
                    Err(e) => Some((Arc::clone(meta), e)),
                },
            )
            .collect()
    }

    /// The highest archived trade id.
    pub(crate) fn max_id(&self) -> Option<u64> {
        self.segments.read().iter().map(|s| s.last_id).max()
    }

    fn cached(&self, key: CacheKey) -> Option<Arc<Entries>> {
        self.cache
            .lock()
            .entries
            .get(&key)
            .map(|(v, _)| Arc::clone(v))
    }

    fn keep(&self, key: CacheKey, value: &Arc<Entries>) {
        // An index's entries share the records of the segment's rows (a covering entry's
        // value is the row's own allocation): they weigh their keys only.
        let weight = value
            .iter()
            .map(|(k, v)| (k.len() + 48 + if key.1.is_none() { v.len() } else { 0 }) as u64)
            .sum::<u64>();
        let mut c = self.cache.lock();
        if weight > c.budget {
            return;
        }
        if let Some((_, old)) = c.entries.put(key, (Arc::clone(value), weight)) {
            c.bytes -= old;
        }
        c.bytes += weight;
        while c.bytes > c.budget {
            match c.entries.pop_lru() {
                Some((_, (_, w))) => c.bytes -= w,
                None => break,
            }
        }
    }

    /// A segment's rows, in key order: from the cache, else read, checked and decoded.
    fn rows(&self, meta: &SegmentMeta) -> Result<Arc<Entries>> {
        let key = (meta.first_id, None);
        if let Some(rows) = self.cached(key) {
            return Ok(rows);
        }
        let rows = Arc::new(read_segment(&self.dir.join(&meta.file), meta)?);
        self.keep(key, &rows);
        Ok(rows)
    }

    /// A segment's entries of an index on trades, in key order (derived from its rows).
    fn index_entries(&self, meta: &SegmentMeta, spec: &IndexSpec) -> Result<Arc<Entries>> {
        let key = (meta.first_id, Some(spec.slot));
        if let Some(entries) = self.cached(key) {
            return Ok(entries);
        }
        let rows = self.rows(meta)?;
        let empty: Arc<[u8]> = Arc::from(&[][..]);
        let mut entries = Vec::with_capacity(rows.len());
        for (pk, record) in rows.iter() {
            let r = codec::decode_any(TableId::Trades, record).map_err(|e| {
                Error::corruption(format!("{}: a trade does not decode: {e}", meta.file))
            })?;
            let value = if spec.def.covering {
                Arc::clone(record)
            } else {
                Arc::clone(&empty)
            };
            entries.push((crate::txn::entry_key(spec, &r, pk), value));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.fences
            .lock()
            .insert((meta.first_id, spec.slot), Arc::new(Fences::of(&entries)));
        let entries = Arc::new(entries);
        self.keep(key, &entries);
        Ok(entries)
    }

    /// The fences of a segment's entries of an index, when they were derived before.
    fn fences(&self, meta: &SegmentMeta, spec: &IndexSpec) -> Option<Arc<Fences>> {
        self.fences
            .lock()
            .get(&(meta.first_id, spec.slot))
            .map(Arc::clone)
    }
}

/// A segment's fences of one index as the catalog keeps them (keys in hex).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FenceRecord {
    first_id: u64,
    index: String,
    columns: Vec<String>,
    spans: Vec<(String, String)>,
}

impl FenceRecord {
    fn of(first_id: u64, spec: &IndexSpec, fences: &Fences) -> FenceRecord {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        FenceRecord {
            first_id,
            index: spec.def.name.clone(),
            columns: spec.def.columns.clone(),
            spans: fences.0.iter().map(|(lo, hi)| (hex(lo), hex(hi))).collect(),
        }
    }

    /// The fences, checked to be spans a writer makes: each in order, disjoint, ascending.
    fn fences(&self) -> Result<Fences> {
        let bad = || {
            Error::corruption(format!(
                "the catalog's fences of archive segment {} for index {} are malformed",
                self.first_id, self.index
            ))
        };
        let unhex = |s: &str| -> Result<Vec<u8>> {
            if !s.len().is_multiple_of(2) {
                return Err(bad());
            }
            (0..s.len())
                .step_by(2)
                .map(|i| {
                    s.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(bad)
                })
                .collect()
        };
        let spans = self
            .spans
            .iter()
            .map(|(lo, hi)| Ok((unhex(lo)?, unhex(hi)?)))
            .collect::<Result<Vec<_>>>()?;
        let ordered = spans.iter().all(|(lo, hi)| lo <= hi)
            && spans.windows(2).all(|w| w[0].1 < w[1].0)
            && spans.len() <= MAX_FENCES;
        if !ordered {
            return Err(bad());
        }
        Ok(Fences(spans))
    }
}

/// At most this many spans fence one segment's entries of an index.
const MAX_FENCES: usize = 256;

/// Disjoint key spans, in key order, that together cover every entry of one segment's index:
/// where its entries can be, known without reading the segment. One span per value of the
/// index's first column (an instrument, an account), merged with its neighbours down to
/// [`MAX_FENCES`] spans.
pub(crate) struct Fences(Vec<(Vec<u8>, Vec<u8>)>);

impl Fences {
    fn of(entries: &Entries) -> Fences {
        let first_len = |k: &[u8]| crate::keys::len_of_values(k, 1).unwrap_or(k.len());
        let mut spans: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut start = 0;
        while start < entries.len() {
            let key = &entries[start].0;
            let prefix = &key[..first_len(key)];
            let end = start + entries[start..].partition_point(|(k, _)| k.starts_with(prefix));
            spans.push((key.clone(), entries[end - 1].0.clone()));
            start = end;
        }
        if spans.len() > MAX_FENCES {
            let per = spans.len().div_ceil(MAX_FENCES);
            spans = spans
                .chunks(per)
                .map(|c| (c[0].0.clone(), c[c.len() - 1].1.clone()))
                .collect();
        }
        Fences(spans)
    }

    /// The lowest and highest key in `range` these spans can hold, or `None` when they hold
    /// none of it.
    fn bounds(&self, range: (Bound<&[u8]>, Bound<&[u8]>)) -> Option<(Vec<u8>, Vec<u8>)> {
        // Spans are disjoint and in order: skip those that end before the range starts, and
        // stop at the first that starts after it ends.
        let first = match range.0 {
            Bound::Included(k) => self.0.partition_point(|(_, hi)| hi.as_slice() < k),
            Bound::Excluded(k) => self.0.partition_point(|(_, hi)| hi.as_slice() <= k),
            Bound::Unbounded => 0,
        };
        let mut found: Option<(Vec<u8>, Vec<u8>)> = None;
        for (lo, hi) in self.0[first..]
            .iter()
            .take_while(|(lo, hi)| overlaps(range, lo, hi))
        {
            let low = match range.0 {
                Bound::Included(k) | Bound::Excluded(k) if k > lo.as_slice() => k.to_vec(),
                _ => lo.clone(),
            };
            let high = match range.1 {
                Bound::Included(k) | Bound::Excluded(k) if k < hi.as_slice() => k.to_vec(),
                _ => hi.clone(),
            };
            found = Some(match found {
                None => (low, high),
                Some((l, _)) => (l, high),
            });
        }
        found
    }
}

impl ArchiveView {
    fn listed(&self) -> &[Arc<SegmentMeta>] {
        &self.segments[..self.listed]
    }

    /// Whether this view sees any archived trade.
    pub(crate) fn is_empty(&self) -> bool {
        self.listed == 0
    }

    /// Archived trades this view sees.
    pub(crate) fn rows(&self) -> u64 {
        self.listed().iter().map(|s| s.rows).sum()
    }

    /// Whether the archive applies to reads of `source`.
    pub(crate) fn covers(&self, source: crate::txn::Source<'_>) -> bool {
        !self.is_empty()
            && match source {
                crate::txn::Source::Table(t) => t == TableId::Trades,
                crate::txn::Source::Index(spec) => spec.def.table == TableId::Trades,
            }
    }

    /// The archived record of a trade, by its key.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Arc<[u8]>>> {
        let Some(id) = crate::keys::id_of(key) else {
            return Ok(None);
        };
        for meta in self
            .listed()
            .iter()
            .filter(|s| (s.first_id..=s.last_id).contains(&id))
        {
            let rows = self.archive.rows(meta)?;
            if let Ok(i) = rows.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                return Ok(Some(Arc::clone(&rows[i].1)));
            }
        }
        Ok(None)
    }

    /// A cursor over the archived entries of `source` in `range`, in the order of the
    /// walk (descending when `reverse`). It reads a segment only once the walk reaches the
    /// first key the segment can hold (its id range, or the fences of its index entries);
    /// a segment whose index entries were never derived is read now, once.
    pub(crate) fn cursor<'a>(
        &self,
        source: crate::txn::Source<'a>,
        range: (Bound<&'a [u8]>, Bound<&'a [u8]>),
        reverse: bool,
    ) -> Result<ArchiveCursor<'a>> {
        let spec = match source {
            crate::txn::Source::Table(_) => None,
            crate::txn::Source::Index(spec) => Some(spec),
        };
        let mut parts = Vec::new();
        for meta in self.listed() {
            let bounds = match spec {
                None => {
                    let (lo, hi) = (
                        crate::keys::id_key(meta.first_id),
                        crate::keys::id_key(meta.last_id),
                    );
                    overlaps(range, &lo, &hi).then(|| {
                        (
                            bound_max(range.0, &lo).to_vec(),
                            bound_min(range.1, &hi).to_vec(),
                        )
                    })
                }
                Some(spec) => {
                    let fences = match self.archive.fences(meta, spec) {
                        Some(f) => f,
                        None => {
                            self.archive.index_entries(meta, spec)?;
                            self.archive.fences(meta, spec).ok_or_else(|| {
                                Error::corruption(format!("{}: no fences derived", meta.file))
                            })?
                        }
                    };
                    fences.bounds(range)
                }
            };
            if let Some((lo, hi)) = bounds {
                parts.push(Part::Pending {
                    meta: Arc::clone(meta),
                    bound: if reverse { hi } else { lo },
                });
            }
        }
        Ok(ArchiveCursor {
            archive: Arc::clone(&self.archive),
            spec,
            range,
            reverse,
            parts,
        })
    }
}

/// The larger of a range's start and `key` (a lower bound of the range's keys in a span
/// that starts at `key`).
fn bound_max<'a>(start: Bound<&'a [u8]>, key: &'a [u8]) -> &'a [u8] {
    match start {
        Bound::Included(k) | Bound::Excluded(k) if k > key => k,
        _ => key,
    }
}

/// The smaller of a range's end and `key`.
fn bound_min<'a>(end: Bound<&'a [u8]>, key: &'a [u8]) -> &'a [u8] {
    match end {
        Bound::Included(k) | Bound::Excluded(k) if k < key => k,
        _ => key,
    }
}

/// One segment's part of a cursor.
enum Part {
    /// Not read yet: the first key (in the walk's order) it can hold in the range.
    Pending {
        meta: Arc<SegmentMeta>,
        bound: Vec<u8>,
    },
    /// Read: its entries in the range are `entries[next..end]`, taken from the front going
    /// forward and from the back in reverse.
    Loaded {
        entries: Arc<Entries>,
        next: usize,
        end: usize,
    },
    Done,
}

/// The archived entries of one range scan, merged across segments and read lazily (see
/// [`ArchiveView::cursor`]).
pub(crate) struct ArchiveCursor<'a> {
    archive: Arc<Archive>,
    spec: Option<&'a IndexSpec>,
    range: (Bound<&'a [u8]>, Bound<&'a [u8]>),
    reverse: bool,
    parts: Vec<Part>,
}

impl ArchiveCursor<'_> {
    /// Whether `a` comes before `b` in the walk's order.
    fn before(&self, a: &[u8], b: &[u8]) -> bool {
        if self.reverse { a > b } else { a < b }
    }

    /// The next archived entry if its key comes at or before `limit` in the walk's order
    /// (any entry when `limit` is `None`); `None` when the next one comes after `limit`, or
    /// there is none. Reads a segment only when its first possible key is at or before
    /// `limit`.
    pub(crate) fn next_upto(&mut self, limit: Option<&[u8]>) -> Result<Option<(Vec<u8>, Entry)>> {
        loop {
            let mut best: Option<(usize, &[u8])> = None;
            for (i, part) in self.parts.iter().enumerate() {
                let head: &[u8] = match part {
                    Part::Pending { bound, .. } => bound,
                    Part::Loaded { entries, next, end } => {
                        let at = if self.reverse { *end - 1 } else { *next };
                        &entries[at].0
                    }
                    Part::Done => continue,
                };
                if best.is_none_or(|(_, b)| self.before(head, b)) {
                    best = Some((i, head));
                }
            }
            let Some((i, head)) = best else {
                return Ok(None);
            };
            if limit.is_some_and(|l| self.before(l, head)) {
                return Ok(None);
            }
            match &mut self.parts[i] {
                Part::Pending { meta, .. } => {
                    let meta = Arc::clone(meta);
                    self.parts[i] = self.load(&meta)?;
                }
                Part::Loaded { entries, next, end } => {
                    let at = if self.reverse {
                        *end -= 1;
                        *end
                    } else {
                        *next += 1;
                        *next - 1
                    };
                    let (k, v) = &entries[at];
                    let item = (k.clone(), Entry::Put(Arc::clone(v)));
                    if next == end {
                        self.parts[i] = Part::Done;
                    }
                    return Ok(Some(item));
                }
                Part::Done => {}
            }
        }
    }

    /// Reads a segment's entries in the range.
    fn load(&self, meta: &SegmentMeta) -> Result<Part> {
        let entries = match self.spec {
            None => self.archive.rows(meta)?,
            Some(spec) => self.archive.index_entries(meta, spec)?,
        };
        let next = match self.range.0 {
            Bound::Included(k) => entries.partition_point(|(e, _)| e.as_slice() < k),
            Bound::Excluded(k) => entries.partition_point(|(e, _)| e.as_slice() <= k),
            Bound::Unbounded => 0,
        };
        let end = match self.range.1 {
            Bound::Included(k) => entries.partition_point(|(e, _)| e.as_slice() <= k),
            Bound::Excluded(k) => entries.partition_point(|(e, _)| e.as_slice() < k),
            Bound::Unbounded => entries.len(),
        };
        Ok(if next < end {
            Part::Loaded { entries, next, end }
        } else {
            Part::Done
        })
    }
}

/// Whether `range` can hold a key in `lo ..= hi`.
fn overlaps(range: (Bound<&[u8]>, Bound<&[u8]>), lo: &[u8], hi: &[u8]) -> bool {
    let below = match range.1 {
        Bound::Included(e) => e < lo,
        Bound::Excluded(e) => e <= lo,
        Bound::Unbounded => false,
    };
    let above = match range.0 {
        Bound::Included(s) => s > hi,
        Bound::Excluded(s) => s >= hi,
        Bound::Unbounded => false,
    };
    !below && !above
}

/// A listed segment's description must be one this code could have written.
fn check_meta(s: &SegmentMeta) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::corruption(format!(
            "archive segment {}: {why}",
            s.file
        )))
    };
    let expected = segment_file(s.first_id, s.last_id);
    if s.file != expected {
        return bad(&format!(
            "listed under the wrong name (expected {expected})"
        ));
    }
    if s.first_id > s.last_id || s.rows == 0 || s.rows > s.last_id - s.first_id + 1 {
        return bad("its id range and row count disagree");
    }
    if s.rows > SEGMENT_MAX_ROWS as u64
        || s.raw_bytes > MAX_BODY_BYTES
        || s.file_bytes > 2 * MAX_BODY_BYTES
    {
        return bad("larger than any segment this engine writes");
    }
    Ok(())
}

/// The file of a segment, relative to the store's directory.
fn segment_file(first: u64, last: u64) -> String {
    format!("{FOLDER}/{first:020}-{last:020}.seg")
}

/// Reads a segment file and checks it against its listing.
fn read_segment(path: &Path, meta: &SegmentMeta) -> Result<Entries> {
    let shown = path.display();
    let bytes = read_bounded(path, meta.file_bytes)?;
    let bad = |why: String| Error::corruption(format!("archive segment {shown}: {why}"));
    if bytes.len() as u64 != meta.file_bytes {
        return Err(bad(format!(
            "{} bytes, but it was written with {}",
            bytes.len(),
            meta.file_bytes
        )));
    }
    if crc32c::crc32c(&bytes) != meta.crc32c {
        return Err(bad(
            "its checksum does not match: the file is damaged".into()
        ));
    }
    let decoded = decode_segment(&bytes).map_err(|e| bad(e.message().to_owned()))?;
    if decoded.raw_bytes != meta.raw_bytes {
        return Err(bad(format!(
            "declares {} uncompressed bytes, the catalog {}",
            decoded.raw_bytes, meta.raw_bytes
        )));
    }
    let rows = decoded.rows;
    if rows.len() as u64 != meta.rows {
        return Err(bad(format!(
            "holds {} trades, the catalog lists {}",
            rows.len(),
            meta.rows
        )));
    }
    let in_range = |k: &[u8]| {
        crate::keys::id_of(k).is_some_and(|id| (meta.first_id..=meta.last_id).contains(&id))
    };
    if !rows.iter().all(|(k, _)| in_range(k)) {
        return Err(bad("it holds trades outside its listed id range".into()));
    }
    Ok(rows.into_iter().map(|(k, v)| (k, Arc::from(v))).collect())
}

/// A decoded segment file: its rows and the length of its uncompressed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSegment {
    /// (key, record) pairs in key order.
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of the uncompressed body.
    pub raw_bytes: u64,
}

/// Decodes a segment file's bytes (see the module documentation for the layout), checking
/// its framing, its body's checksum and that its keys are trade ids in increasing order.
/// Any other input is a corruption error; nothing it declares makes it allocate more than
/// the bound on a segment's body.
pub fn decode_segment(bytes: &[u8]) -> Result<DecodedSegment> {
    let bad = |why: &str| Error::corruption(why.to_owned());
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad("not an archive segment (bad magic)"));
    }
    let raw_len = declared_body_len(bytes);
    let body_crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
    let body = &bytes[HEADER..];
    if crc32c::crc32c(body) != body_crc {
        return Err(bad("its body's checksum does not match"));
    }
    if raw_len > MAX_BODY_BYTES {
        return Err(Error::corruption(format!(
            "declares {raw_len} uncompressed bytes, over the bound of {MAX_BODY_BYTES}"
        )));
    }
    let raw = zstd::bulk::decompress(body, usize::try_from(raw_len).unwrap_or(usize::MAX))
        .map_err(|e| Error::corruption(format!("does not decompress: {e}")))?;
    if raw.len() as u64 != raw_len {
        return Err(bad("decompresses to a different length"));
    }
    let rows: Vec<(Vec<u8>, Vec<u8>)> = postcard::from_bytes(&raw)
        .map_err(|e| Error::corruption(format!("does not decode: {e}")))?;
    let mut previous: Option<u64> = None;
    for (k, _) in &rows {
        let id = crate::keys::id_of(k).ok_or_else(|| bad("a key is not a trade id"))?;
        if previous.is_some_and(|p| p >= id) {
            return Err(bad("its trades are out of order"));
        }
        previous = Some(id);
    }
    Ok(DecodedSegment {
        rows,
        raw_bytes: raw_len,
    })
}

/// A file's bytes, refusing one longer than `expected` (a damaged listing or a swapped
/// file must not make the reader load anything large).
fn read_bounded(path: &Path, expected: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let shown = path.display();
    let missing = || {
        Error::corruption(format!(
            "archive segment {shown} is missing; restore it from a backup of the store"
        ))
    };
    // Looked at before it is opened: opening a FIFO would wait for a writer, and a link
    // could lead anywhere.
    let kind = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(Error::io(format!("reading archive segment {shown}"), e)),
    };
    if !kind.is_file() {
        return Err(Error::corruption(format!(
            "archive segment {shown} is not a regular file (a link, folder or device took its \
             place); restore it from a backup of the store"
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            missing()
        } else {
            Error::io(format!("opening archive segment {shown}"), e)
        }
    })?;
    let mut bytes = Vec::new();
    file.take(expected.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading archive segment {shown}"), e))?;
    Ok(bytes)
}

/// The uncompressed body length a segment file's header declares (0 for a file shorter than
/// its header).
fn declared_body_len(bytes: &[u8]) -> u64 {
    bytes
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Encodes rows (trade keys in increasing order, and their records) as a segment file's
/// bytes, which [`decode_segment`] reads back.
pub fn encode_segment(rows: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>> {
    let raw = postcard::to_allocvec(rows)
        .map_err(|e| Error::invalid(format!("encoding an archive segment: {e}")))?;
    if raw.len() as u64 > MAX_BODY_BYTES {
        return Err(Error::invalid(format!(
            "an archive segment of {} bytes is over the bound of {MAX_BODY_BYTES}",
            raw.len()
        )));
    }
    let body = zstd::bulk::compress(&raw, LEVEL)
        .map_err(|e| Error::io("compressing an archive segment", e))?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The oldest hot trades to archive next: from the lowest id up, while `ts < before`, at
/// most [`SEGMENT_MAX_ROWS`].
fn candidates(db: &redb::Database, before: i64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let txn = db.begin_read()?;
    let table = txn.open_table(layout::data_table(TableId::Trades))?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in table.iter()? {
        let (k, v) = item?;
        // Well inside what a reader accepts ([`MAX_BODY_BYTES`]).
        bytes += k.value().len() + v.value().len() + 8;
        if bytes as u64 > MAX_BODY_BYTES / 2 {
            break;
        }
        let trade: tradestore_schema::Trade = codec::decode(v.value()).map_err(|e| {
            Error::corruption(format!(
                "trade {}: does not decode: {e}",
                crate::keys::show(k.value())
            ))
        })?;
        if trade.ts >= before || out.len() == SEGMENT_MAX_ROWS {
            break;
        }
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

impl Store {
    /// Moves the oldest trades whose `ts` is before `before` (ns since the epoch) into the
    /// archive tier, segment by segment, and returns what moved. Online: commits continue
    /// meanwhile, pausing only while each segment's durable redb commit runs. Trades are
    /// taken by id from the lowest up and the run stops at the first trade at or after the
    /// cutoff, so the archive holds the store's oldest history; trades the applier has not
    /// moved into redb yet wait for a later run.
    ///
    /// Archived trades stay readable through every read (see the [module](crate::archive)
    /// documentation); they are read-only, like every trade. With `archive_after_s` set, a
    /// background thread runs this every minute (or every `archive_after_s`, if shorter).
    pub fn archive_trades(&self, before: i64) -> Result<ArchiveReport> {
        archive_trades(&self.shared, self.dir(), before)
    }

    /// The archive segments the store lists, oldest first.
    pub fn archive_segments(&self) -> Vec<SegmentMeta> {
        self.shared
            .archive
            .segments()
            .iter()
            .map(|s| (**s).clone())
            .collect()
    }
}

/// [`Store::archive_trades`], timed into the archive histogram.
pub(crate) fn archive_trades(shared: &Shared, dir: &Path, before: i64) -> Result<ArchiveReport> {
    let started = Instant::now();
    let out = archive_run(shared, dir, before);
    shared.metrics.archive(started.elapsed(), out.is_ok());
    out
}

fn archive_run(shared: &Shared, dir: &Path, before: i64) -> Result<ArchiveReport> {
    let archive = &shared.archive;
    let _run = archive.run.lock();
    if shared.poisoned.load(Ordering::SeqCst) {
        return Err(shared.poison_error());
    }
    let mut report = ArchiveReport {
        removed_orphans: remove_orphans(dir, &archive.segments())?,
        ..ArchiveReport::default()
    };
    loop {
        let rows = candidates(&shared.db, before)?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            break;
        };
        let id = |k: &[u8]| {
            crate::keys::id_of(k)
                .ok_or_else(|| Error::corruption("a trade's key is not an id".to_owned()))
        };
        let (first_id, last_id) = (id(&first.0)?, id(&last.0)?);
        let mut ts = (i64::MAX, i64::MIN);
        for (_, v) in &rows {
            let t: tradestore_schema::Trade = codec::decode(v)?;
            ts = (ts.0.min(t.ts), ts.1.max(t.ts));
        }
        let bytes = encode_segment(&rows)?;
        let raw_bytes = declared_body_len(&bytes);
        let file = segment_file(first_id, last_id);
        let path = dir.join(&file);
        segment_folder(dir)?;
        crate::backup::files::write_atomic(&path, &bytes)?;
        let meta = SegmentMeta {
            file,
            first_id,
            last_id,
            rows: rows.len() as u64,
            min_ts: ts.0,
            max_ts: ts.1,
            raw_bytes,
            file_bytes: bytes.len() as u64,
            crc32c: crc32c::crc32c(&bytes),
            created_ns: crate::index::now_ns(),
        };
        let indexes = Arc::clone(&shared.indexes.read());
        let fences = trade_fences(&rows, &indexes)?;
        if let Err(e) = archive_commit(shared, &meta, rows, &fences) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        report.trades += meta.rows;
        report.raw_bytes += meta.raw_bytes;
        report.file_bytes += meta.file_bytes;
        report.segments.push(meta);
    }
    Ok(report)
}

/// The switch of one segment: one durable redb commit removes its trades and their index
/// entries from the hot tables and lists it.
fn archive_commit(
    shared: &Shared,
    meta: &SegmentMeta,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    fences: &[(IndexSpec, Fences)],
) -> Result<()> {
    // No index is created or dropped meanwhile: every index's entries of these trades
    // leave with them.
    let _ddl = shared.index_ddl.lock();
    let indexes = Arc::clone(&shared.indexes.read());
    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_quick_repair(true);
    {
        // Trades never change, but the segment must hold exactly what leaves.
        let table = txn.open_table(layout::data_table(TableId::Trades))?;
        for (k, v) in &rows {
            let same = table.get(k.as_slice())?.is_some_and(|g| g.value() == v);
            if !same {
                return Err(Error::new(
                    crate::ErrorKind::Conflict,
                    format!(
                        "trade {} changed while it was being archived; run the archive again",
                        crate::keys::show(k)
                    ),
                ));
            }
        }
    }
    let changes: Vec<RowChange> = rows
        .iter()
        .map(|(k, _)| RowChange {
            table: TableId::Trades as u8,
            key: k.clone(),
            value: None,
        })
        .collect();
    crate::state::apply_rows(&txn, &indexes, &changes, None)?;
    crate::catalog::put_json(
        &txn,
        &format!("{CATALOG_PREFIX}{:020}", meta.first_id),
        meta,
    )?;
    crate::audit::append(
        &txn,
        "archive",
        &format!(
            "{} trades (ids {} to {}) moved into {} ({} bytes, crc32c {:08x})",
            meta.rows, meta.first_id, meta.last_id, meta.file, meta.file_bytes, meta.crc32c
        ),
    )?;
    for (spec, f) in fences {
        crate::catalog::put_json(
            &txn,
            &format!("{FENCES_PREFIX}{:020}/{}", meta.first_id, spec.def.name),
            &FenceRecord::of(meta.first_id, spec, f),
        )?;
    }
    let listed = {
        let mut list = shared.archive.segments.write();
        let mut next = (**list).clone();
        next.push(Arc::new(meta.clone()));
        let n = next.len() as u64;
        *list = Arc::new(next);
        n
    };
    crate::state::write_archive_segments(&txn, listed)?;
    let cache = shared
        .rows
        .as_deref()
        .map(crate::rowcache::RowCache::begin_write);
    if let Some(c) = &cache {
        for (k, _) in &rows {
            c.forget(TableId::Trades, k);
        }
    }
    match shared.commit_redb(txn, cache) {
        Ok(()) => {
            shared.row_changes[TableId::Trades as usize]
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            let mut known = shared.archive.fences.lock();
            for (spec, f) in fences {
                known.insert((meta.first_id, spec.slot), Arc::new(Fences(f.0.clone())));
            }
            Ok(())
        }
        Err(e) => {
            // Views pair with the count in redb, which did not move: the extra listing is
            // never read; drop it so the next run's listing takes its place.
            let mut list = shared.archive.segments.write();
            let mut next = (**list).clone();
            next.pop();
            *list = Arc::new(next);
            Err(e)
        }
    }
}

/// The fences of a segment's rows in every index on trades, worked out when it is archived
/// so that no process has to read the segment to learn where its entries lie.
fn trade_fences(
    rows: &[(Vec<u8>, Vec<u8>)],
    indexes: &[IndexSpec],
) -> Result<Vec<(IndexSpec, Fences)>> {
    let records = rows
        .iter()
        .map(|(k, v)| Ok((k, codec::decode_any(TableId::Trades, v)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for spec in indexes.iter().filter(|s| s.def.table == TableId::Trades) {
        let mut entries: Entries = records
            .iter()
            .map(|(pk, r)| (crate::txn::entry_key(spec, r, pk), Arc::from(&[][..])))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out.push((spec.clone(), Fences::of(&entries)));
    }
    Ok(out)
}

/// The background archiver (`archive_after_s` > 0): archives trades older than that, every
/// minute or every `archive_after_s` if shorter, until the store closes. A failed run is
/// counted (`tradestore_archive_failures_total`) and tried again at the next turn.
pub(crate) fn run_archiver(shared: &Shared, dir: &Path) {
    let after = shared.config.archive_after_s;
    let every = Duration::from_secs(after.clamp(1, 60));
    let mut next = Instant::now() + every;
    while !shared.shutdown.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + every;
        let age_ns = i64::try_from(after.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
        let now = i64::try_from(crate::index::now_ns()).unwrap_or(i64::MAX);
        let _ = archive_trades(shared, dir, now.saturating_sub(age_ns));
    }
}

/// The store's segment folder (`archive/trades`), created if missing. `archive` and
/// `archive/trades` must be real folders of the store: through a link, an archive run would
/// write into, and clean up, some other place (another store's archive).
fn segment_folder(dir: &Path) -> Result<PathBuf> {
    let mut at = dir.to_path_buf();
    for part in FOLDER.split('/') {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::invalid(format!(
                    "{} is a link or not a folder: the archive must be a folder of the store",
                    at.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at)
                    .map_err(|e| Error::io(format!("creating {}", at.display()), e))?;
            }
            Err(e) => return Err(Error::io(format!("reading {}", at.display()), e)),
        }
    }
    Ok(at)
}

/// Removes segment files (and temporary files) in the archive folder that no segment lists:
/// what a run interrupted before its commit left.
fn remove_orphans(dir: &Path, listed: &[Arc<SegmentMeta>]) -> Result<Vec<String>> {
    let folder = segment_folder(dir)?;
    let names: HashSet<String> = listed
        .iter()
        .filter_map(|s| s.file.rsplit('/').next().map(str::to_owned))
        .collect();
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", folder.display()), e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", folder.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".seg") || name.ends_with(".tmp");
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if ours && is_file && !names.contains(&name) {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io(format!("removing {}", entry.path().display()), e))?;
            removed.push(format!("{FOLDER}/{name}"));
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        (1..=n)
            .map(|id| {
                let t = tradestore_schema::Trade {
                    id,
                    order_id: id / 3 + 1,
                    account: 7,
                    instrument: 2,
                    side: tradestore_schema::Side::Buy,
                    price: tradestore_schema::Price(100_000_000),
                    quantity: tradestore_schema::Quantity(100_000_000),
                    fee: tradestore_schema::Money(0),
                    ts: 1_000 + id as i64,
                };
                (crate::keys::id_key(id).to_vec(), codec::encode(&t))
            })
            .collect()
    }

    fn meta_of(bytes: &[u8], raw: u64, n: u64) -> SegmentMeta {
        SegmentMeta {
            file: segment_file(1, n),
            first_id: 1,
            last_id: n,
            rows: n,
            min_ts: 1_001,
            max_ts: 1_000 + n as i64,
            raw_bytes: raw,
            file_bytes: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
            created_ns: 0,
        }
    }

    /// Writes `bytes` as a segment and reads it back against `meta`.
    fn read_back(bytes: &[u8], meta: &SegmentMeta) -> Result<Entries> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("s.seg");
        std::fs::write(&path, bytes).map_err(|e| Error::io("write", e))?;
        read_segment(&path, meta)
    }

    /// A segment file around `raw` as the writer frames it.
    fn frame(raw: &[u8]) -> Vec<u8> {
        let body = zstd::bulk::compress(raw, 1).unwrap_or_default();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn corruption(r: Result<Entries>, what: &str) {
        match r {
            Err(e) => {
                assert_eq!(e.kind(), crate::ErrorKind::Corruption, "{what}: {e}");
                assert!(e.to_string().contains("archive segment"), "{what}: {e}");
            }
            Ok(_) => panic!("{what}: read as a good segment"),
        }
    }

    #[test]
    fn fences_bound_a_range_and_round_trip_through_the_catalog() -> Result<()> {
        let e = |k: &[u8]| (k.to_vec(), Arc::<[u8]>::from(&[][..]));
        // Keys of two first values (tag 0x01: a u64) with suffixes.
        let key = |v: u8, s: u8| {
            let mut k = crate::keys::id_key(u64::from(v)).to_vec();
            k.push(s);
            k
        };
        let entries: Entries = vec![e(&key(1, 5)), e(&key(1, 9)), e(&key(3, 2)), e(&key(3, 7))];
        let f = Fences::of(&entries);
        assert_eq!(f.0, vec![(key(1, 5), key(1, 9)), (key(3, 2), key(3, 7))]);
        let inc = |a: &[u8], b: &[u8]| -> (Vec<u8>, Vec<u8>) { (a.to_vec(), b.to_vec()) };
        let bounds = |lo: &[u8], hi: &[u8]| f.bounds((Bound::Included(lo), Bound::Included(hi)));
        // Between the two spans: nothing.
        assert_eq!(bounds(&key(2, 0), &key(2, 255)), None);
        // Inside the second: clamped to the range.
        assert_eq!(
            bounds(&key(3, 0), &key(3, 4)),
            Some(inc(&key(3, 2), &key(3, 4)))
        );
        // Across both.
        assert_eq!(
            bounds(&key(0, 0), &key(9, 0)),
            Some(inc(&key(1, 5), &key(3, 7)))
        );

        let spec = IndexSpec::new(
            tradestore_schema::IndexDef {
                name: "x".into(),
                table: TableId::Trades,
                columns: vec!["instrument".into()],
                unique: false,
                builtin: false,
                covering: false,
            },
            0,
            true,
        );
        let record = FenceRecord::of(7, &spec, &f);
        assert_eq!(record.fences()?.0, f.0);
        for spans in [
            vec![("0".to_owned(), "00".to_owned())],
            vec![("zz".to_owned(), "00".to_owned())],
            vec![("02".to_owned(), "01".to_owned())],
            vec![
                ("01".to_owned(), "03".to_owned()),
                ("02".to_owned(), "04".to_owned()),
            ],
        ] {
            let bad = FenceRecord {
                spans,
                ..FenceRecord::of(7, &spec, &f)
            };
            assert!(bad.fences().is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn a_segment_reads_back_and_any_damage_is_corruption() -> Result<()> {
        let good = rows(500);
        let bytes = encode_segment(&good)?;
        let raw = declared_body_len(&bytes);
        let meta = meta_of(&bytes, raw, 500);
        check_meta(&meta)?;
        let back = read_back(&bytes, &meta)?;
        assert_eq!(back.len(), 500);
        assert!(
            back.iter()
                .zip(&good)
                .all(|((k, v), (gk, gv))| k == gk && &**v == gv.as_slice())
        );

        // Every single flipped byte, cut and growth is caught (by a checksum or a bound).
        for at in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x21;
            corruption(read_back(&bad, &meta), &format!("byte {at} flipped"));
        }
        corruption(read_back(&bytes[..bytes.len() - 1], &meta), "cut");
        let mut longer = bytes.clone();
        longer.push(0);
        corruption(read_back(&longer, &meta), "grown");

        // Whole, self-consistent files whose contents are wrong: each listing matches the
        // file, so only the checks after the checksums can refuse them.
        let hostile: Vec<(&str, Vec<u8>, u64)> = vec![
            (
                "bad magic",
                [b"NOTASEG\n".as_slice(), &bytes[8..]].concat(),
                raw,
            ),
            (
                "not zstd",
                {
                    let body = vec![7u8; 64];
                    let mut out = MAGIC.to_vec();
                    out.extend_from_slice(&raw.to_le_bytes());
                    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
                    out.extend_from_slice(&body);
                    out
                },
                raw,
            ),
            ("not postcard", frame(&[0xff; 40]), 40),
            (
                "fewer rows",
                frame(&postcard::to_allocvec(&good[..499]).unwrap_or_default()),
                0,
            ),
            (
                "out of order",
                {
                    let mut r = good.clone();
                    r.swap(3, 4);
                    frame(&postcard::to_allocvec(&r).unwrap_or_default())
                },
                0,
            ),
            (
                "not trade keys",
                {
                    let mut r = good.clone();
                    r[0].0 = vec![1, 2, 3];
                    frame(&postcard::to_allocvec(&r).unwrap_or_default())
                },
                0,
            ),
        ];
        for (what, file, raw_len) in hostile {
            let declared = if raw_len == 0 {
                u64::from_le_bytes(file[8..16].try_into().unwrap_or_default())
            } else {
                raw_len
            };
            let m = meta_of(&file, declared, 500);
            corruption(read_back(&file, &m), what);
        }

        // Listings a writer never makes are refused before any file is read.
        for (what, m) in [
            (
                "renamed",
                SegmentMeta {
                    file: "archive/trades/x.seg".into(),
                    ..meta.clone()
                },
            ),
            (
                "reversed",
                SegmentMeta {
                    first_id: 9,
                    last_id: 2,
                    ..meta.clone()
                },
            ),
            (
                "too many rows",
                SegmentMeta {
                    rows: 501,
                    ..meta.clone()
                },
            ),
            (
                "huge",
                SegmentMeta {
                    raw_bytes: MAX_BODY_BYTES + 1,
                    ..meta.clone()
                },
            ),
            (
                "huge file",
                SegmentMeta {
                    file_bytes: u64::MAX,
                    ..meta.clone()
                },
            ),
        ] {
            assert!(check_meta(&m).is_err(), "{what}");
        }
        Ok(())
    }
}
