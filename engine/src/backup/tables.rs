//! Copying every redb table of one read transaction into a new database, raw (keys and values
//! as stored), and summing tables (rows and CRC32C) for the manifest and its verification.

use redb::{
    Database, Durability, MultimapTableHandle, ReadTransaction, ReadableTable, TableDefinition,
    TableError, TableHandle, WriteTransaction,
};
use tradestore_schema::TableId;

use super::manifest::{TableSum, TableSummer};
use crate::error::{Error, Result};
use crate::layout;

/// The copy commits (without syncing) about this many bytes at a time, so that a large
/// store is not held in one write transaction's memory; the last commit syncs.
const BATCH_BYTES: u64 = 64 << 20;

/// The key and value types of a table of the store (see [`crate::layout`]).
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// `&[u8] -> &[u8]`: domain tables, covering indexes, the `metrics` series.
    Rows,
    /// `&[u8] -> ()`: key-only indexes.
    Keys,
    /// `&str -> &[u8]`: the catalog.
    Catalog,
    /// `&str -> u64`: the sequence numbers (`applied_seq`, `acked_seq`).
    Meta,
}

const META: &str = "meta";
const ACKED_KEY: &str = "acked_seq";

/// The layout of the table `name` of `txn`. A name this build does not know is an error:
/// a backup that silently left a table out would restore a different store.
fn layout_of(txn: &ReadTransaction, name: &str) -> Result<Layout> {
    if name == layout::CATALOG.name() {
        return Ok(Layout::Catalog);
    }
    if name == META {
        return Ok(Layout::Meta);
    }
    if name == crate::monitor::series::METRICS_TABLE.name()
        || TableId::ALL
            .into_iter()
            .any(|t| layout::data_table(t).name() == name)
    {
        return Ok(Layout::Rows);
    }
    if name.starts_with("i.") {
        return match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(name)) {
            Ok(_) => Ok(Layout::Rows),
            Err(TableError::TableTypeMismatch { .. }) => Ok(Layout::Keys),
            Err(e) => Err(Error::from(e).context(format!("table {name}"))),
        };
    }
    Err(Error::corruption(format!(
        "the database holds a table named {name:?}, which this build does not know: \
         it was written by a newer or foreign program"
    )))
}

/// The names of every table of `txn`, sorted. Multimap tables are an error (the store has
/// none).
fn table_names(txn: &ReadTransaction) -> Result<Vec<String>> {
    if let Some(t) = txn.list_multimap_tables()?.next() {
        return Err(Error::corruption(format!(
            "the database holds a multimap table named {:?}, which this build does not know",
            t.name()
        )));
    }
    let mut names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    names.sort();
    Ok(names)
}

/// The destination's write transactions: one at a time, committed without a sync every
/// [`BATCH_BYTES`], the last one durable.
struct Writer<'d> {
    db: &'d Database,
    open: Option<WriteTransaction>,
    bytes: u64,
}

impl Writer<'_> {
    fn take(&mut self) -> Result<WriteTransaction> {
        if let Some(t) = self.open.take() {
            return Ok(t);
        }
        let mut t = self.db.begin_write()?;
        t.set_durability(Durability::None)?;
        Ok(t)
    }

    /// Counts `n` bytes written; whether the transaction should be committed now.
    fn wrote(&mut self, n: usize) -> bool {
        self.bytes += n as u64;
        self.bytes >= BATCH_BYTES
    }

    fn commit(&mut self, t: WriteTransaction) -> Result<()> {
        self.bytes = 0;
        t.commit()?;
        Ok(())
    }

    /// The last commit: durable, with redb's allocator state saved (quick repair), so the
    /// copy opens without a repair pass.
    fn finish(mut self) -> Result<()> {
        let mut t = self.take()?;
        t.set_durability(Durability::Immediate)?;
        t.set_quick_repair(true);
        t.commit()?;
        Ok(())
    }
}

/// Copies every table of `read` into the empty database `dst`, with `acked_seq` set to
/// `applied` (the copy's journal is empty: every transaction it holds is applied). Returns
/// each table's sum, in name order.
pub(crate) fn copy_all(
    read: &ReadTransaction,
    dst: &Database,
    applied: u64,
) -> Result<Vec<TableSum>> {
    let mut w = Writer {
        db: dst,
        open: None,
        bytes: 0,
    };
    let mut sums = Vec::new();
    for name in table_names(read)? {
        let sum = match layout_of(read, &name)? {
            Layout::Rows => copy::<&[u8], &[u8]>(read, &mut w, &name)?,
            Layout::Keys => copy::<&[u8], ()>(read, &mut w, &name)?,
            Layout::Catalog => copy::<&str, &[u8]>(read, &mut w, &name)?,
            Layout::Meta => copy_meta(read, &mut w, applied)?,
        };
        sums.push(sum);
    }
    w.finish()?;
    Ok(sums)
}

fn copy<K, V>(read: &ReadTransaction, w: &mut Writer<'_>, name: &str) -> Result<TableSum>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let def = TableDefinition::<K, V>::new(name);
    let src = read.open_table(def)?;
    let mut entries = src.iter()?;
    let mut sum = TableSummer::new();
    loop {
        let txn = w.take()?;
        let mut full = false;
        {
            // Opened even when there is nothing to copy: an empty table is copied too.
            let mut dst = txn.open_table(def)?;
            for entry in entries.by_ref() {
                let (k, v) = entry?;
                let (k, v) = (k.value(), v.value());
                let n = {
                    let (kb, vb) = (K::as_bytes(&k), V::as_bytes(&v));
                    sum.add(kb.as_ref(), vb.as_ref());
                    kb.as_ref().len() + vb.as_ref().len()
                };
                dst.insert(&k, &v)?;
                if w.wrote(n) {
                    full = true;
                    break;
                }
            }
        }
        if full {
            w.commit(txn)?;
        } else {
            w.open = Some(txn);
            return Ok(sum.finish(name));
        }
    }
}

/// Copies the `meta` table with `acked_seq` = `applied`.
fn copy_meta(read: &ReadTransaction, w: &mut Writer<'_>, applied: u64) -> Result<TableSum> {
    let def = TableDefinition::<&str, u64>::new(META);
    let mut values = std::collections::BTreeMap::new();
    for entry in read.open_table(def)?.iter()? {
        let (k, v) = entry?;
        values.insert(k.value().to_owned(), v.value());
    }
    values.insert(ACKED_KEY.to_owned(), applied);
    let txn = w.take()?;
    let mut sum = TableSummer::new();
    {
        let mut dst = txn.open_table(def)?;
        for (k, v) in &values {
            sum.add(k.as_bytes(), &<u64 as redb::Value>::as_bytes(v));
            dst.insert(k.as_str(), v)?;
        }
    }
    w.open = Some(txn);
    Ok(sum.finish(META))
}

/// Every table of `read` summed, in name order.
pub(crate) fn sum_all(read: &ReadTransaction) -> Result<Vec<TableSum>> {
    let mut sums = Vec::new();
    for name in table_names(read)? {
        let sum = match layout_of(read, &name)? {
            Layout::Rows => sum::<&[u8], &[u8]>(read, &name)?,
            Layout::Keys => sum::<&[u8], ()>(read, &name)?,
            Layout::Catalog => sum::<&str, &[u8]>(read, &name)?,
            Layout::Meta => sum::<&str, u64>(read, &name)?,
        };
        sums.push(sum);
    }
    Ok(sums)
}

fn sum<K, V>(read: &ReadTransaction, name: &str) -> Result<TableSum>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let mut sum = TableSummer::new();
    for entry in read
        .open_table(TableDefinition::<K, V>::new(name))?
        .iter()?
    {
        let (k, v) = entry?;
        let (k, v) = (k.value(), v.value());
        sum.add(K::as_bytes(&k).as_ref(), V::as_bytes(&v).as_ref());
    }
    Ok(sum.finish(name))
}
