//! Applying row changes to redb: the single path by which data reaches redb, used by the
//! applier for committed transactions and by recovery for journal replay. Index entries are
//! derived here from the old and new rows, so the journal holds only row changes.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tradestore_schema::{TableId, codec};

use crate::error::{Error, Result};
use crate::layout::{self, IndexSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::overlay::{Entry, INDEX_BASE, OKey};
use crate::txn::entry_key;

/// One row change of a committed transaction: the journal's record body is a list of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RowChange {
    /// The table's on-disk discriminant.
    pub table: u8,
    /// Encoded primary key.
    pub key: Vec<u8>,
    /// The new encoded record, or `None` for a delete. Shared with the write set and the
    /// overlay (no copy per change); it encodes exactly as a byte vector would.
    pub value: Option<Arc<[u8]>>,
}

impl RowChange {
    /// The row changes of a write set (index entries are derived again when applied).
    pub(crate) fn of_writes(writes: &BTreeMap<OKey, Entry>) -> Vec<RowChange> {
        writes
            .iter()
            .filter(|((space, _), _)| *space < INDEX_BASE)
            .map(|((space, key), e)| RowChange {
                table: u8::try_from(*space).unwrap_or(0),
                key: key.clone(),
                value: match e {
                    Entry::Put(v) => Some(Arc::clone(v)),
                    Entry::Del => None,
                },
            })
            .collect()
    }
}

const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
const APPLIED_KEY: &str = "applied_seq";
const ACKED_KEY: &str = "acked_seq";
const ARCHIVE_KEY: &str = "archive_segments";
const STANDBY_KEY: &str = "standby_seq";
/// Prefix of the keys that hold, per table keyed by `id`, a number above every id the table
/// has held: a deleted row's id is never handed out again, after a reopen either.
const NEXT_ID_PREFIX: &str = "next_id/";

fn next_id_key(table: TableId) -> String {
    format!("{NEXT_ID_PREFIX}{}", table.name())
}

/// A number above every id `table` has held (0 when none was recorded).
pub(crate) fn read_next_id(txn: &redb::ReadTransaction, table: TableId) -> Result<u64> {
    read_meta(txn, &next_id_key(table))
}

/// Raises the recorded number above every id of `table` to at least `next`.
fn raise_next_id(txn: &redb::WriteTransaction, table: TableId, next: u64) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    let key = next_id_key(table);
    let recorded = meta.get(key.as_str())?.map_or(0, |g| g.value());
    if next > recorded {
        meta.insert(key.as_str(), next)?;
    }
    Ok(())
}

/// A number kept in the `meta` table, 0 when it was never written.
fn read_meta(txn: &redb::ReadTransaction, key: &str) -> Result<u64> {
    match txn.open_table(META) {
        Ok(t) => Ok(t.get(key)?.map_or(0, |g| g.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

fn write_meta(txn: &redb::WriteTransaction, key: &str, value: u64) -> Result<()> {
    txn.open_table(META)?.insert(key, value)?;
    Ok(())
}

/// The sequence number of the last transaction contained in this redb state.
pub(crate) fn read_applied_seq(txn: &redb::ReadTransaction) -> Result<u64> {
    read_meta(txn, APPLIED_KEY)
}

/// Records the sequence number of the last transaction applied in this write.
pub(crate) fn write_applied_seq(txn: &redb::WriteTransaction, seq: u64) -> Result<()> {
    write_meta(txn, APPLIED_KEY, seq)
}

/// The highest sequence number known to have been acknowledged as durable when the last
/// checkpoint was taken (0 if none was recorded): the journal must reach it.
pub(crate) fn read_acked_seq(txn: &redb::ReadTransaction) -> Result<u64> {
    read_meta(txn, ACKED_KEY)
}

/// Records `seq` as acknowledged as durable (its journal record was synced).
pub(crate) fn write_acked_seq(txn: &redb::WriteTransaction, seq: u64) -> Result<()> {
    write_meta(txn, ACKED_KEY, seq)
}

/// The number of archive segments this redb state lists ([`crate::archive`]).
pub(crate) fn read_archive_segments(txn: &redb::ReadTransaction) -> Result<u64> {
    read_meta(txn, ARCHIVE_KEY)
}

/// What a read view needs of the `meta` table, with one opening of it: the applied
/// sequence number and the archive segments listed.
pub(crate) fn read_view_meta(txn: &redb::ReadTransaction) -> Result<(u64, u64)> {
    match txn.open_table(META) {
        Ok(t) => {
            let get = |key: &str| -> Result<u64> { Ok(t.get(key)?.map_or(0, |g| g.value())) };
            Ok((get(APPLIED_KEY)?, get(ARCHIVE_KEY)?))
        }
        Err(redb::TableError::TableDoesNotExist(_)) => Ok((0, 0)),
        Err(e) => Err(e.into()),
    }
}

/// The last primary transaction a standby applied (`None`: the store is not a standby).
pub(crate) fn read_standby_seq(txn: &redb::ReadTransaction) -> Result<Option<u64>> {
    // Present, even as 0 (a standby of a primary that had written nothing), marks a standby.
    match txn.open_table(META) {
        Ok(t) => Ok(t.get(STANDBY_KEY)?.map(|g| g.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Records that a standby has applied the primary's transactions up to `seq`.
pub(crate) fn write_standby_seq(txn: &redb::WriteTransaction, seq: u64) -> Result<()> {
    write_meta(txn, STANDBY_KEY, seq)
}

/// Removes the standby mark: the store is a primary of its own from this commit on.
pub(crate) fn remove_standby_seq(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(META)?.remove(STANDBY_KEY)?;
    Ok(())
}

/// Records how many archive segments this write lists.
pub(crate) fn write_archive_segments(txn: &redb::WriteTransaction, n: u64) -> Result<()> {
    write_meta(txn, ARCHIVE_KEY, n)
}

/// Applies journal records (seq and encoded row changes, in order) in `txn` and records the
/// last as applied and acknowledged: the replay of recovery and of point-in-time restores.
pub(crate) fn replay_records(
    txn: &redb::WriteTransaction,
    indexes: &[IndexSpec],
    records: &[(u64, Vec<u8>)],
) -> Result<()> {
    let Some((last, _)) = records.last() else {
        return Ok(());
    };
    let mut changes: Vec<RowChange> = Vec::new();
    for (seq, payload) in records {
        changes.extend(super::record::decode(*seq, payload)?.1);
    }
    apply_rows(txn, indexes, &changes, None)?;
    write_applied_seq(txn, *last)?;
    write_acked_seq(txn, *last)
}

/// Gives up the CPU every [`Pacer::SLICE`] of work. The applier applies a batch (50 ms of
/// commits) in one burst of milliseconds, and on a machine with few cores the commit path's
/// work waits behind such a burst for a scheduler time slice: on the 2-core machine, the
/// kernel work that completes a journal write and its cache flush runs on the core that
/// takes the disk's interrupts, and a writer's commit stalled 1-3 ms whenever the applier
/// was busy on that core. Measured there, one writer, 40k fills a run, builds alternating:
/// p99.9 commit latency without yielding and yielding every 50 us, medians of 1.10 and 0.39
/// ms over five rounds, 0.50 and 0.34 ms over eight more; commits over 1 ms, median 29 and
/// 18.5 a run in the eight; throughput of one, 64 and pipelined writers unchanged.
struct Pacer {
    since: std::time::Instant,
    calls: u32,
}

impl Pacer {
    /// Work between two yields.
    const SLICE: std::time::Duration = std::time::Duration::from_micros(50);

    fn new() -> Pacer {
        Pacer {
            since: std::time::Instant::now(),
            calls: 0,
        }
    }

    /// Called between two units of work; yields once a slice has passed (the clock is read
    /// every 8th call).
    fn tick(&mut self) {
        self.calls = self.calls.wrapping_add(1);
        if self.calls.is_multiple_of(8) && self.since.elapsed() >= Self::SLICE {
            std::thread::yield_now();
            self.since = std::time::Instant::now();
        }
    }
}

/// An index entry to write: its key, and the row it keeps (`None` removes the entry).
pub(crate) type Edit<'r> = (Vec<u8>, Option<&'r [u8]>);

/// Applies row changes, maintaining every index from the old and new rows.
///
/// Only each row's last change is written: nothing between two changes of one redb commit is
/// ever visible, so a row changed many times in a batch (a hot order, position or cash row)
/// is written once and its index entries move once, from the row in redb to its final value.
/// Rows are written in key order, table by table (each table opened once: opening one walks
/// redb's table directory), then each index's entries in key order; the old row comes back
/// from redb's own insert or remove, so no row is looked up twice.
///
/// Returns the entries written to the index named `keep` (in key order; none without it).
pub(crate) fn apply_rows<'c>(
    txn: &redb::WriteTransaction,
    indexes: &[IndexSpec],
    changes: impl IntoIterator<Item = &'c RowChange>,
    keep: Option<&str>,
) -> Result<Vec<Edit<'c>>> {
    // Stable: a row's changes stay in commit order, so its last one ends each run of equal
    // keys and is the one kept.
    let mut rows: Vec<&RowChange> = changes.into_iter().collect();
    rows.sort_by(|a, b| (a.table, &a.key).cmp(&(b.table, &b.key)));
    rows.reverse();
    rows.dedup_by(|later, kept| (later.table, &later.key) == (kept.table, &kept.key));
    rows.reverse();
    // Per index, the entries to remove (`None`) and insert (with the row, kept by a covering
    // index). A row's index key ends with its primary key, so no two rows share one:
    // removals and inserts never collide.
    let mut edits: Vec<Vec<Edit<'_>>> = indexes.iter().map(|_| Vec::new()).collect();
    let mut pacer = Pacer::new();
    let mut start = 0;
    while start < rows.len() {
        let code = rows[start].table;
        let end = start + rows[start..].partition_point(|c| c.table == code);
        let table = TableId::from_u8(code)
            .ok_or_else(|| Error::corruption(format!("row change names unknown table {code}")))?;
        // The run is in key order, and id keys sort as their ids: its last row has the
        // largest id, inserted or deleted.
        if table.primary_key() == ["id"]
            && let Some(id) = crate::keys::decode(&rows[end - 1].key)?
                .first()
                .and_then(tradestore_schema::Value::as_u64)
        {
            raise_next_id(txn, table, id.saturating_add(1))?;
        }
        let specs: Vec<(usize, &IndexSpec)> = indexes
            .iter()
            .enumerate()
            .filter(|(_, s)| s.def.table == table)
            .collect();
        let mut data = txn.open_table(layout::data_table(table))?;
        let run = &rows[start..end];
        // New rows (a batch's trades, all past the table's last key) go in through redb's
        // cursor, which packs the keys of one gap into leaves together instead of a descent
        // from the root per key, until a key turns out to be stored: the table's changes
        // are updates, and the rest go key by key (a cursor would seek for each anyway).
        let mut sorted = true;
        let mut j = 0;
        while j < run.len() {
            if sorted && run[j].value.is_some() {
                let n = run[j..].iter().take_while(|c| c.value.is_some()).count();
                let found = layout::insert_sorted(
                    &mut data,
                    n,
                    |i| run[j + i].key.as_slice(),
                    |i| run[j + i].value.as_deref().unwrap_or_default(),
                )?;
                let placed = found.map_or(j + n, |p| j + p);
                for c in &run[j..placed] {
                    index_edits(table, &specs, c, None, &mut edits)?;
                    pacer.tick();
                }
                sorted = found.is_none();
                j = placed;
                continue;
            }
            let c = run[j];
            let key = c.key.as_slice();
            let old = match &c.value {
                Some(v) => data.insert(key, &**v)?,
                None => data.remove(key)?,
            };
            index_edits(
                table,
                &specs,
                c,
                old.as_ref().map(|g| g.value()),
                &mut edits,
            )?;
            pacer.tick();
            j += 1;
        }
        start = end;
    }
    let mut kept = Vec::new();
    for (spec, mut edits) in indexes.iter().zip(edits) {
        if edits.is_empty() {
            continue;
        }
        edits.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut t = spec.open_mut(txn)?;
        // As for the rows: runs of new entries through the cursor until one is stored (a
        // covering entry whose row changed), then entry by entry.
        let mut sorted = true;
        let mut j = 0;
        while j < edits.len() {
            if sorted && edits[j].1.is_some() {
                let n = edits[j..].iter().take_while(|e| e.1.is_some()).count();
                let found = t.insert_sorted(
                    n,
                    |i| edits[j + i].0.as_slice(),
                    |i| edits[j + i].1.unwrap_or_default(),
                )?;
                sorted = found.is_none();
                j = found.map_or(j + n, |p| j + p);
                pacer.tick();
                continue;
            }
            match edits[j].1 {
                Some(row) => t.insert(&edits[j].0, row)?,
                None => t.remove(&edits[j].0)?,
            }
            pacer.tick();
            j += 1;
        }
        if keep == Some(spec.def.name.as_str()) {
            // A key-only index keeps no row: its entries' values are empty.
            if !spec.def.covering {
                for (_, row) in &mut edits {
                    if row.is_some() {
                        *row = Some(&[]);
                    }
                }
            }
            kept = edits;
        }
    }
    Ok(kept)
}

/// Adds the index edits of one row change to `edits` (per index of `indexes`, of which
/// `specs` are the row's table's, by position): the old row's entries (`old`, the record
/// stored before the change) removed and the new row's inserted, except those that stay.
fn index_edits<'r>(
    table: TableId,
    specs: &[(usize, &IndexSpec)],
    c: &'r RowChange,
    old: Option<&[u8]>,
    edits: &mut [Vec<Edit<'r>>],
) -> Result<()> {
    if specs.is_empty() {
        return Ok(());
    }
    let key = c.key.as_slice();
    let same_bytes = matches!((old, &c.value), (Some(o), Some(v)) if o == &**v);
    let old = old.map(|o| codec::decode_any(table, o)).transpose()?;
    let new = c
        .value
        .as_deref()
        .map(|v| codec::decode_any(table, v))
        .transpose()?;
    for &(i, spec) in specs {
        let old_key = old.as_ref().map(|o| entry_key(spec, o, key));
        let new_key = new.as_ref().map(|n| entry_key(spec, n, key));
        if old_key == new_key && (same_bytes || !spec.def.covering) {
            continue;
        }
        if old_key != new_key {
            edits[i].extend(old_key.map(|k| (k, None)));
        }
        edits[i].extend(new_key.map(|k| (k, c.value.as_deref())));
    }
    Ok(())
}

/// Two row changes, an insert and a delete, for tests of the record format.
#[cfg(test)]
pub(crate) fn sample_changes() -> Vec<RowChange> {
    vec![
        RowChange {
            table: 4,
            key: vec![1, 2, 3],
            value: Some(Arc::from(&[9u8; 200][..])),
        },
        RowChange {
            table: 3,
            key: vec![7],
            value: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal record's body as earlier builds wrote it: values as byte vectors.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct VecRowChange {
        table: u8,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    }

    use tradestore_schema::{
        AnyRecord, Money, Order, OrderKind, OrderStatus, Price, Quantity, Record, Side,
        TimeInForce, Trade,
    };

    fn order(id: u64, status: OrderStatus) -> Order {
        Order {
            id,
            account: id % 3 + 1,
            instrument: id % 2 + 1,
            side: Side::Buy,
            kind: OrderKind::Limit,
            time_in_force: TimeInForce::Gtc,
            price: Some(Price(100 + i64::try_from(id).unwrap_or(0))),
            quantity: Quantity(10),
            filled_quantity: Quantity(0),
            status,
            created_ts: 1,
            updated_ts: 1,
        }
    }

    fn trade(id: u64, fee: i64) -> Trade {
        Trade {
            id,
            order_id: 10 * (id % 4 + 1),
            account: id % 3 + 1,
            instrument: id % 2 + 1,
            side: Side::Sell,
            price: Price(101),
            quantity: Quantity(1),
            fee: Money(fee),
            ts: i64::try_from(id).unwrap_or(0),
        }
    }

    /// A change writing `r`, or (`None`) deleting the row `key` of `table`.
    fn put<R: Record + Clone>(r: &R) -> RowChange {
        RowChange {
            table: R::TABLE as u8,
            key: crate::keys::encode(&r.primary_key()),
            value: Some(Arc::from(codec::encode(r))),
        }
    }

    fn delete<R: Record>(r: &R) -> RowChange {
        RowChange {
            table: R::TABLE as u8,
            key: crate::keys::encode(&r.primary_key()),
            value: None,
        }
    }

    /// Every entry of a table, key and value.
    fn entries<V: redb::Value + 'static>(
        t: &redb::Table<'_, &'static [u8], V>,
        value: impl Fn(V::SelfType<'_>) -> Vec<u8>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        use redb::ReadableTable;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_vec(), value(v.value())));
        }
        Ok(out)
    }

    /// Batches of new rows (before, between and after the stored ones), updates that move
    /// index entries or keep them, rewrites of the same bytes, a covering entry whose row
    /// changed, a row changed twice, and deletes: each table and index ends exactly as the
    /// rows say, whichever way (cursor or key by key) each entry went in.
    #[test]
    fn mixed_batches_leave_rows_and_index_entries_exact() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let db = redb::Database::create(dir.path().join("db"))?;
        let txn = db.begin_write()?;
        let indexes = crate::catalog::init(&txn)?;
        let new = OrderStatus::New;
        let first: Vec<RowChange> = [10, 20, 30, 40]
            .map(|id| put(&order(id, new)))
            .into_iter()
            .chain((1..=3).map(|id| put(&trade(id, 0))))
            .collect();
        let mut filled = order(20, OrderStatus::PartiallyFilled);
        filled.filled_quantity = Quantity(4);
        let second = vec![
            put(&order(5, new)),
            put(&order(20, OrderStatus::Filled)),
            put(&order(35, new)),
            put(&filled),
            delete(&order(30, new)),
            put(&order(40, new)),
            put(&order(50, new)),
            put(&trade(2, 7)),
            put(&trade(4, 0)),
            put(&trade(5, 0)),
        ];
        let third = vec![
            put(&order(60, new)),
            delete(&trade(1, 0)),
            put(&trade(6, 0)),
        ];
        for batch in [&first, &second, &third] {
            apply_rows(&txn, &indexes, batch.iter(), None)?;
        }
        let orders: Vec<AnyRecord> = [5, 10, 35, 40, 50, 60]
            .map(|id| order(id, new).into_any())
            .into_iter()
            .chain([filled.into_any()])
            .collect();
        let trades: Vec<AnyRecord> = [trade(2, 7), trade(3, 0), trade(4, 0), trade(5, 0)]
            .into_iter()
            .chain([trade(6, 0)])
            .map(Record::into_any)
            .collect();
        for (table, rows) in [(TableId::Orders, &orders), (TableId::Trades, &trades)] {
            let mut want: Vec<(Vec<u8>, Vec<u8>)> = rows
                .iter()
                .map(|r| (crate::keys::encode(&r.primary_key()), codec::encode_any(r)))
                .collect();
            want.sort();
            let data = txn.open_table(layout::data_table(table))?;
            assert_eq!(entries(&data, <[u8]>::to_vec)?, want, "{table:?} rows");
            for spec in indexes.iter().filter(|s| s.def.table == table) {
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = rows
                    .iter()
                    .map(|r| {
                        let pk = crate::keys::encode(&r.primary_key());
                        let row = if spec.def.covering {
                            codec::encode_any(r)
                        } else {
                            Vec::new()
                        };
                        (entry_key(spec, r, &pk), row)
                    })
                    .collect();
                want.sort();
                let got = match spec.open_mut(&txn)? {
                    layout::IndexTable::Keys(t) => entries(&t, |()| Vec::new())?,
                    layout::IndexTable::Rows(t) => entries(&t, <[u8]>::to_vec)?,
                };
                assert_eq!(got, want, "{}", spec.def.name);
            }
        }
        Ok(())
    }

    #[test]
    fn shared_values_keep_the_journal_format() {
        let shared = sample_changes();
        let vecs: Vec<VecRowChange> = shared
            .iter()
            .map(|c| VecRowChange {
                table: c.table,
                key: c.key.clone(),
                value: c.value.as_deref().map(<[u8]>::to_vec),
            })
            .collect();
        let bytes = postcard::to_allocvec(&shared).expect("encode");
        assert_eq!(bytes, postcard::to_allocvec(&vecs).expect("encode"));
        let back: Vec<RowChange> = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, shared);
    }
}
