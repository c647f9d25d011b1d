//! Bulk loading, the write path of a restore.
//!
//! Rows are parsed and encoded by the caller into a [`Batch`] before any lock is taken.
//! [`Store::bulk_load`](crate::Store) then validates the batch as a whole, under the commit
//! lock and against a snapshot of the drained store:
//!
//! 1. no two rows of the batch share a primary key, and none clashes with a stored row;
//! 2. no unique index gets the same value twice, within the batch or against the store;
//! 3. the consistency check ([`check::check`]) passes over the store as it would be after
//!    the load (a [`BulkView`]: the snapshot with the batch merged in): foreign keys, rules,
//!    fill sums and position folds.
//!
//! Only then does one redb write transaction insert each table's rows in key order and each
//! index's entries sorted, and commit durably. The batch's index entries are derived from its
//! rows by the same function the write path uses, so the check does not re-read them.
//!
//! Why not a write transaction: its write set is an ordered map (one insert per row and per
//! index entry, each a key comparison walk), its reads merge that map on every lookup, and
//! the apply then inserts rows and index entries into redb in row order, which scatters the
//! index inserts over the whole B-tree. Sorted inserts fill each redb leaf once.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use tradestore_schema::{AnyRecord, FOREIGN_KEYS, ForeignKey, TableId, Value, codec};

use crate::check::{self, Violation};
use crate::error::{Error, ErrorKind, Result};
use crate::keys;
use crate::layout::{self, IndexSpec};
use crate::txn::{ReadOps, ReadTx, Source, Visit, show_values, write_entry_key};

/// One row of a batch: its primary key, its encoded record and the input line it came from.
pub(crate) struct Row {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub line: u64,
}

/// A parsed row: its table, the row, and its id when the table is keyed by `id`.
pub(crate) struct Parsed {
    pub table: TableId,
    row: Row,
    id: Option<u64>,
}

impl Parsed {
    /// The input line the row came from.
    pub(crate) fn line(&self) -> u64 {
        self.row.line
    }

    /// Memory the row holds: its key and record, and the row itself.
    pub(crate) fn held_bytes(&self) -> u64 {
        (self.row.key.capacity() + self.row.value.capacity() + std::mem::size_of::<Parsed>()) as u64
    }
}

impl Row {
    /// The row of a record read from input line `line`. A record whose encoding is larger
    /// than `max_value_bytes` is refused.
    pub(crate) fn of(line: u64, rec: &AnyRecord, max_value_bytes: usize) -> Result<Parsed> {
        let table = rec.table();
        let key = keys::encode(&rec.primary_key());
        let value = codec::encode_any(rec);
        if value.len() > max_value_bytes {
            return Err(Error::new(
                ErrorKind::Capacity,
                format!(
                    "{table} {}: encoded record is {} bytes, over max_value_bytes = {max_value_bytes}",
                    show_values(&rec.primary_key()),
                    value.len()
                ),
            ));
        }
        let id = if table.primary_key() == ["id"] {
            rec.column("id").and_then(|v| v.as_u64())
        } else {
            None
        };
        Ok(Parsed {
            table,
            row: Row { key, value, line },
            id,
        })
    }
}

/// Rows to load, per table (indexed by `TableId as usize`).
#[derive(Default)]
pub(crate) struct Batch {
    tables: [Vec<Row>; 8],
    max_id: [u64; 8],
}

impl Batch {
    /// Adds a row made by [`Row::of`].
    pub(crate) fn add(&mut self, p: Parsed) {
        if let Some(id) = p.id {
            let m = &mut self.max_id[p.table as usize];
            *m = (*m).max(id);
        }
        self.tables[p.table as usize].push(p.row);
    }

    /// The rows of `table`.
    fn rows(&self, table: TableId) -> &[Row] {
        &self.tables[table as usize]
    }

    /// The largest id of each id-keyed table, where the batch has rows.
    pub(crate) fn max_ids(&self) -> impl Iterator<Item = (TableId, u64)> + '_ {
        TableId::ALL
            .into_iter()
            .filter(|t| !self.rows(*t).is_empty() && t.primary_key() == ["id"])
            .map(|t| (t, self.max_id[t as usize]))
    }

    /// The newest `n` trades of the batch by id, with their records (once loaded, each
    /// table's rows are in key order, which for trades is id order).
    pub(crate) fn newest_trades(&self, n: u64) -> impl Iterator<Item = (u64, &[u8])> {
        let rows = self.rows(TableId::Trades);
        let skip = rows
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        rows[skip..]
            .iter()
            .filter_map(|r| Some((keys::id_of(&r.key)?, r.value.as_slice())))
    }

    /// Rows per table.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (TableId, u64)> + '_ {
        TableId::ALL
            .into_iter()
            .map(|t| (t, self.rows(t).len() as u64))
    }

    /// Validates the batch against `base` (the drained store) and writes it into `txn`,
    /// which starts from the same state; see the module's steps. The consistency check and
    /// the inserts run in parallel, on separate tables (redb allows concurrent writes to
    /// different tables of one transaction); on any error the caller drops `txn`, so nothing
    /// is written. `indexes` are the store's indexes.
    pub(crate) fn load(
        &mut self,
        base: &ReadTx,
        indexes: &[IndexSpec],
        txn: &redb::WriteTransaction,
    ) -> Result<()> {
        self.validate_keys(base, indexes)?;
        let this = &*self;
        let mut tasks = vec![Task::Check];
        for table in TableId::ALL {
            if this.rows(table).is_empty() {
                continue;
            }
            tasks.push(Task::Rows(table));
            tasks.extend(
                indexes
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.def.table == table)
                    .map(|(i, _)| Task::Index(i)),
            );
        }
        // Longest first (a row insert costs about as much as an index entry's; the check
        // reads every row), so that the last task to finish is a short one. The sort is
        // stable and the check is never shorter than another task, so it stays first, and
        // its error is the one reported when several tasks fail.
        tasks.sort_by_key(|t| {
            std::cmp::Reverse(match t {
                Task::Check => TableId::ALL.iter().map(|t| this.rows(*t).len()).sum(),
                Task::Rows(table) => this.rows(*table).len(),
                Task::Index(i) => this.rows(indexes[*i].def.table).len(),
            })
        });
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<(usize, Result<()>)>> = Mutex::new(Vec::new());
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(tasks.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(task) = tasks.get(i) else { break };
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = match task {
                            Task::Check => this.check(base),
                            Task::Rows(t) => this.insert_rows(*t, txn, &failed),
                            Task::Index(i) => this.insert_entries(&indexes[*i], txn, &failed),
                        };
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        results.lock().push((i, r));
                    }
                });
            }
        });
        let mut results = results.into_inner();
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().try_for_each(|(_, r)| r)
    }

    /// Refuses duplicate keys within the batch, keys already stored, and values a unique
    /// index already has; the error names the first offending line.
    fn validate_keys(&mut self, base: &ReadTx, indexes: &[IndexSpec]) -> Result<()> {
        let mut first: Option<(u64, Error)> = None;
        let mut keep = |line: u64, e: Error| {
            if first.as_ref().is_none_or(|(l, _)| line < *l) {
                first = Some((line, e));
            }
        };
        for table in TableId::ALL {
            let rows = &mut self.tables[table as usize];
            if !rows.is_sorted_by(|a, b| a.key <= b.key) {
                // Stable: of two rows with one key, the later line stays later.
                rows.sort_by(|a, b| a.key.cmp(&b.key));
            }
            for pair in rows.windows(2) {
                if pair[0].key == pair[1].key {
                    let line = pair[0].line.max(pair[1].line);
                    keep(
                        line,
                        exists(table, &pair[0].key).context(format!("line {line}")),
                    );
                }
            }
            if !rows.is_empty() && base.count(table)? > 0 {
                for r in rows.iter() {
                    if base.raw_get(table, &r.key)?.is_some() {
                        keep(
                            r.line,
                            stored(table, &r.key).context(format!("line {}", r.line)),
                        );
                    }
                }
            }
        }
        for spec in indexes.iter().filter(|s| s.def.unique) {
            if let Some((line, e)) = self.unique_clash(base, spec)? {
                keep(line, e.context(format!("line {line}")));
            }
        }
        match first {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// The consistency check of the store as it would be after the load, after the order
    /// of the input: a dump lists a parent row before the rows that reference it.
    fn check(&self, base: &ReadTx) -> Result<()> {
        self.parents_first()?;
        let report = check::check(&BulkView { base, batch: self }, &[], &mut |_, _| {})?;
        match report.violations.first() {
            Some(v) => Err(self.violation(v, report.violations.len())),
            None => Ok(()),
        }
    }

    /// Refuses a row listed before the batch's row it references (the first such line).
    fn parents_first(&self) -> Result<()> {
        let mut first: Option<(u64, Error)> = None;
        for table in TableId::ALL {
            let fks: Vec<&ForeignKey> =
                FOREIGN_KEYS.iter().filter(|fk| fk.child == table).collect();
            // A dump lists whole tables, parents first: when every parent row comes before
            // every row of this table, no row can be listed before its parent, and the rows
            // need not be decoded.
            let first_line = self.rows(table).iter().map(|r| r.line).min();
            let before = |fk: &&ForeignKey| {
                let last_parent = self.rows(fk.parent).iter().map(|r| r.line).max();
                last_parent.is_none_or(|l| first_line.is_none_or(|f| l < f))
            };
            if fks.iter().all(before) {
                continue;
            }
            for r in self.rows(table) {
                if first.as_ref().is_some_and(|(l, _)| *l < r.line) {
                    continue;
                }
                let rec = codec::decode_any(table, &r.value)?;
                for fk in &fks {
                    let value = rec.column(fk.column).unwrap_or(Value::Null);
                    let key = keys::encode(std::slice::from_ref(&value));
                    let parents = self.rows(fk.parent);
                    let Ok(i) = parents.binary_search_by(|p| p.key.as_slice().cmp(&key)) else {
                        continue;
                    };
                    if parents[i].line > r.line {
                        first = Some((
                            r.line,
                            Error::constraint(format!(
                                "line {}: {table} {}: {} {value} is listed later, at line {}; a dump lists the rows of {} before the rows that reference them",
                                r.line,
                                keys::show(&r.key),
                                fk.column,
                                parents[i].line,
                                fk.parent
                            )),
                        ));
                        break;
                    }
                }
            }
        }
        first.map_or(Ok(()), |(_, e)| Err(e))
    }

    /// The first row (by line) whose value of a unique index is taken, in the batch by an
    /// earlier line or in the store.
    fn unique_clash(&self, base: &ReadTx, spec: &IndexSpec) -> Result<Option<(u64, Error)>> {
        let table = spec.def.table;
        let rows = self.rows(table);
        if rows.is_empty() {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(rows.len());
        for r in rows {
            let rec = codec::decode_any(table, &r.value)?;
            values.push((spec.prefix_of(|c| rec.column(c)), r.line, &r.key));
        }
        values.sort();
        let clash = |line: u64, key: &[u8], other: &[u8]| {
            (
                line,
                Error::constraint(format!(
                    "{table} {}: unique index {} already has this value for the row with key {}",
                    keys::show(key),
                    spec.def.name,
                    keys::show(other)
                )),
            )
        };
        let mut found: Option<(u64, Error)> = None;
        for pair in values.windows(2) {
            if pair[0].0 == pair[1].0 && found.as_ref().is_none_or(|(l, _)| pair[1].1 < *l) {
                found = Some(clash(pair[1].1, pair[1].2, pair[0].2));
            }
        }
        if base.index_len(spec)? > 0 {
            for (prefix, line, key) in &values {
                let end = keys::prefix_end(prefix);
                let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let mut other = None;
                base.raw_range(
                    Source::Index(spec),
                    (Bound::Included(prefix), end),
                    false,
                    &mut |k, _| {
                        other = Some(k[prefix.len()..].to_vec());
                        Ok(false)
                    },
                )?;
                if let Some(o) = other
                    && found.as_ref().is_none_or(|(l, _)| line < l)
                {
                    found = Some(clash(*line, key, &o));
                }
            }
        }
        Ok(found)
    }

    /// The error of a check violation, naming the line of the row it is about when that row
    /// is in the batch.
    fn violation(&self, v: &Violation, count: usize) -> Error {
        let line = v.table.parse::<TableId>().ok().and_then(|t| {
            self.rows(t)
                .iter()
                .find(|r| keys::show(&r.key) == v.key)
                .map(|r| r.line)
        });
        let at = line.map_or_else(|| "restored data".to_owned(), |l| format!("line {l}"));
        Error::new(
            ErrorKind::Constraint,
            format!(
                "{at}: {} {}: {} ({count} violation(s) in all; nothing was restored)",
                v.table, v.key, v.message
            ),
        )
    }

    /// Inserts the rows of `table`, in key order.
    fn insert_rows(
        &self,
        table: TableId,
        txn: &redb::WriteTransaction,
        stop: &AtomicBool,
    ) -> Result<()> {
        let mut data = txn.open_table(layout::data_table(table))?;
        // Sorted by key (`validate_keys`); in runs, so that a failed task stops the others.
        for run in self.rows(table).chunks(RUN) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let key = |i: usize| run[i].key.as_slice();
            if let Some(i) =
                layout::insert_sorted(&mut data, run.len(), key, |i| run[i].value.as_slice())?
            {
                let r = &run[i];
                return Err(exists(table, &r.key).context(format!("line {}", r.line)));
            }
        }
        Ok(())
    }

    /// Derives the batch's entries of one index from its rows and inserts them sorted.
    /// The keys are written back to back into one buffer (no allocation per entry), and
    /// sorted as positions into it.
    fn insert_entries(
        &self,
        spec: &IndexSpec,
        txn: &redb::WriteTransaction,
        stop: &AtomicBool,
    ) -> Result<()> {
        let table = spec.def.table;
        let rows = self.rows(table);
        let mut buf = Vec::with_capacity(rows.len() * 32);
        let mut ends = Vec::with_capacity(rows.len());
        for r in rows {
            let rec = codec::decode_any(table, &r.value)?;
            write_entry_key(&mut buf, spec, &rec, &r.key);
            ends.push(buf.len());
        }
        let key = |i: usize| &buf[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        let order = sorted_order(rows.len(), key);
        let mut index = spec.open_mut(txn)?;
        for run in order.chunks(RUN) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let found = index.insert_sorted(
                run.len(),
                |i| key(run[i]),
                |i| rows[run[i]].value.as_slice(),
            )?;
            if found.is_some() {
                // Entry keys end with the row's primary key, which `validate_keys` found new.
                return Err(Error::corruption(format!(
                    "index {} already has an entry of a row being restored",
                    spec.def.name
                )));
            }
        }
        Ok(())
    }
}

/// Rows or index entries inserted between two looks at the stop flag.
const RUN: usize = 4096;

/// The positions `0..n` ordered by their keys `key(i)`. Each key's first 32 bytes, read
/// as two big-endian integers (zero-padded), order keys as the bytes do except when they
/// tie; so the sort compares integers, and whole keys only on a tie (two keys alike in
/// their first 32 bytes, or a key that is a zero-padded prefix of another). Index keys are
/// shorter than that. Measured on a restore of 200k trades: sorting with byte comparisons
/// throughout was about a fifth of each index's insert task.
fn sorted_order<'k>(n: usize, key: impl Fn(usize) -> &'k [u8]) -> Vec<usize> {
    fn head(key: &[u8]) -> (u128, u128) {
        let mut b = [0u8; 32];
        let n = key.len().min(32);
        b[..n].copy_from_slice(&key[..n]);
        let (hi, lo) = b.split_at(16);
        let int = |h: &[u8]| u128::from_be_bytes(h.try_into().unwrap_or([0; 16]));
        (int(hi), int(lo))
    }
    let mut order: Vec<((u128, u128), usize)> = (0..n).map(|i| (head(key(i)), i)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| key(a.1).cmp(key(b.1))));
    order.into_iter().map(|(_, i)| i).collect()
}

/// One part of a load: the check, a table's rows, or an index's entries.
enum Task {
    Check,
    Rows(TableId),
    /// By position in the index list.
    Index(usize),
}

fn exists(table: TableId, key: &[u8]) -> Error {
    Error::constraint(format!(
        "{table} {}: a row with this key already exists",
        keys::show(key)
    ))
}

/// A row of the load whose key the store already holds.
fn stored(table: TableId, key: &[u8]) -> Error {
    Error::constraint(format!(
        "{table} {}: the store already holds a row with this key",
        keys::show(key)
    ))
    .advise(
        "nothing was restored; if an earlier restore of this dump finished, there is nothing \
         left to do (`tradestore audit list` shows every restore), otherwise restore into a \
         store without these rows",
    )
}

/// The store as it would be after a load: a snapshot of the drained store with the batch's
/// rows merged in (their keys are new: clashes were refused before). It carries rows only;
/// index entries are not part of the view.
struct BulkView<'a> {
    base: &'a ReadTx,
    batch: &'a Batch,
}

impl BulkView<'_> {
    /// The batch's rows of `table` within `range`.
    fn rows_in(&self, table: TableId, range: (Bound<&[u8]>, Bound<&[u8]>)) -> &[Row] {
        let rows = self.batch.rows(table);
        let lo = match range.0 {
            Bound::Included(a) => rows.partition_point(|r| r.key.as_slice() < a),
            Bound::Excluded(a) => rows.partition_point(|r| r.key.as_slice() <= a),
            Bound::Unbounded => 0,
        };
        let hi = match range.1 {
            Bound::Included(b) => rows.partition_point(|r| r.key.as_slice() <= b),
            Bound::Excluded(b) => rows.partition_point(|r| r.key.as_slice() < b),
            Bound::Unbounded => rows.len(),
        };
        rows.get(lo..hi.max(lo)).unwrap_or(&[])
    }
}

impl ReadOps for BulkView<'_> {
    fn raw_get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let rows = self.batch.rows(table);
        match rows.binary_search_by(|r| r.key.as_slice().cmp(key)) {
            Ok(i) => Ok(Some(rows[i].value.clone())),
            Err(_) => self.base.raw_get(table, key),
        }
    }

    fn raw_range(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()> {
        let Source::Table(table) = source else {
            return Err(Error::new(
                ErrorKind::Invalid,
                "a bulk load's view has rows only, not index entries",
            ));
        };
        let rows = self.rows_in(table, range);
        let mut mine: Box<dyn Iterator<Item = &Row>> = if reverse {
            Box::new(rows.iter().rev())
        } else {
            Box::new(rows.iter())
        };
        let mut next = mine.next();
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        let mut stopped = false;
        if self.base.count(table)? > 0 {
            self.base.raw_range(source, range, reverse, &mut |k, v| {
                while let Some(r) = next.filter(|r| before(&r.key, k)) {
                    if !f(&r.key, &r.value)? {
                        stopped = true;
                        return Ok(false);
                    }
                    next = mine.next();
                }
                let go = f(k, v)?;
                stopped = !go;
                Ok(go)
            })?;
        }
        while let Some(r) = next.filter(|_| !stopped) {
            stopped = !f(&r.key, &r.value)?;
            next = mine.next();
        }
        Ok(())
    }

    fn count(&self, table: TableId) -> Result<u64> {
        Ok(self.base.count(table)? + self.batch.rows(table).len() as u64)
    }

    fn index(&self, name: &str) -> Result<IndexSpec> {
        self.base.index(name)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::sorted_order;

    proptest! {
        /// The order is the byte order of the keys, including keys longer than the 32
        /// bytes compared as integers, keys that are a zero-padded prefix of another, and
        /// equal keys.
        #[test]
        fn sorted_order_is_the_byte_order(
            keys in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..40),
                0..200,
            )
        ) {
            let order = sorted_order(keys.len(), |i| keys[i].as_slice());
            let mut seen = order.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..keys.len()).collect::<Vec<_>>());
            let got: Vec<&[u8]> = order.iter().map(|&i| keys[i].as_slice()).collect();
            let mut want: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            want.sort_unstable();
            prop_assert_eq!(got, want);
        }
    }
}
