//! Where things live in the redb file.
//!
//! | redb table | key | value |
//! |---|---|---|
//! | `t.<table>` (one per domain table) | encoded primary key ([`crate::keys`]) | record: version byte + postcard |
//! | `i.<index>` (one per secondary index) | encoded index columns, then encoded primary key | `()`, or for a covering index the row's record (as in `t.<table>`) |
//! | `catalog` | `index/<name>`, `meta/<name>` | JSON |

use redb::{TableDefinition, TableError};
use tradestore_schema::{IndexDef, TableId, Value};

use crate::error::Result;
use crate::keys;

/// The redb table holding a domain table's rows.
pub(crate) fn data_table(t: TableId) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(match t {
        TableId::Instruments => "t.instruments",
        TableId::Accounts => "t.accounts",
        TableId::Orders => "t.orders",
        TableId::Trades => "t.trades",
        TableId::Positions => "t.positions",
        TableId::Cash => "t.cash",
    })
}

/// The catalog: index definitions and store metadata.
pub(crate) const CATALOG: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("catalog");

/// A secondary index as the engine uses it: its definition, its redb table's name, its
/// overlay slot and whether it is complete.
#[derive(Clone, Debug)]
pub struct IndexSpec {
    /// The definition from the catalog.
    pub def: IndexDef,
    table_name: String,
    /// The index's overlay space is `INDEX_BASE + slot`. Slots are handed out once per open
    /// store and never reused, so overlay entries of a dropped index can never be read as
    /// entries of a later one.
    pub(crate) slot: u16,
    /// `false` while an online build is backfilling it: writes maintain it, but reads
    /// (queries, foreign key checks) must not rely on it yet.
    pub(crate) ready: bool,
}

impl IndexSpec {
    pub(crate) fn new(def: IndexDef, slot: u16, ready: bool) -> IndexSpec {
        let table_name = format!("i.{}", def.name);
        IndexSpec {
            def,
            table_name,
            slot,
            ready,
        }
    }

    /// Whether the index is complete and usable by reads (not still being built online).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The redb table of a key-only index.
    fn keys_table(&self) -> TableDefinition<'_, &'static [u8], ()> {
        TableDefinition::new(&self.table_name)
    }

    /// The redb table of a covering index: each entry's value is the row's record.
    fn rows_table(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.table_name)
    }

    /// Opens (creating it if needed) the index's table for writing.
    pub(crate) fn open_mut<'t>(&self, txn: &'t redb::WriteTransaction) -> Result<IndexTable<'t>> {
        Ok(if self.def.covering {
            IndexTable::Rows(txn.open_table(self.rows_table())?)
        } else {
            IndexTable::Keys(txn.open_table(self.keys_table())?)
        })
    }

    /// Opens the index's table for reading.
    pub(crate) fn open_read(&self, txn: &redb::ReadTransaction) -> Result<IndexReader> {
        Ok(if self.def.covering {
            IndexReader::Rows(txn.open_table(self.rows_table())?)
        } else {
            IndexReader::Keys(txn.open_table(self.keys_table())?)
        })
    }

    /// Deletes the index's table, whatever its value type (redb deletes by name). Returns
    /// whether it existed.
    pub(crate) fn delete_table(&self, txn: &redb::WriteTransaction) -> Result<bool> {
        Ok(txn.delete_table(self.keys_table())?)
    }

    /// Whether the index's table in `txn` holds rows in its entries (a covering layout).
    /// `None` when the table is not among `tables` (the names of the tables in `txn`).
    pub(crate) fn stored_covering(
        &self,
        txn: &redb::WriteTransaction,
        tables: &[String],
    ) -> Result<Option<bool>> {
        if !tables.contains(&self.table_name) {
            return Ok(None);
        }
        match txn.open_table(self.rows_table()) {
            Ok(_) => Ok(Some(true)),
            Err(TableError::TableTypeMismatch { .. }) => Ok(Some(false)),
            Err(e) => Err(e.into()),
        }
    }

    /// The encoded values of the indexed columns (the prefix of every entry of the row).
    pub(crate) fn prefix_of(&self, values: impl Fn(&str) -> Option<Value>) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for c in &self.def.columns {
            keys::encode_value(&mut out, &values(c).unwrap_or(Value::Null));
        }
        out
    }

    /// Whether the index's first column is `column`.
    pub(crate) fn leads_with(&self, column: &str) -> bool {
        self.def.columns.first().is_some_and(|c| c == column)
    }
}

/// An index's redb table opened for writing.
pub(crate) enum IndexTable<'t> {
    /// Key-only entries.
    Keys(redb::Table<'t, &'static [u8], ()>),
    /// Covering entries: the value is the row's record.
    Rows(redb::Table<'t, &'static [u8], &'static [u8]>),
}

impl IndexTable<'_> {
    /// Inserts the entry `key` of the row whose record is `row` (kept only when covering).
    pub(crate) fn insert(&mut self, key: &[u8], row: &[u8]) -> Result<()> {
        match self {
            IndexTable::Keys(t) => {
                t.insert(key, ())?;
            }
            IndexTable::Rows(t) => {
                t.insert(key, row)?;
            }
        }
        Ok(())
    }

    /// Removes the entry `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Result<()> {
        match self {
            IndexTable::Keys(t) => {
                t.remove(key)?;
            }
            IndexTable::Rows(t) => {
                t.remove(key)?;
            }
        }
        Ok(())
    }
}

/// An index's redb table opened for reading.
pub(crate) enum IndexReader {
    /// Key-only entries.
    Keys(redb::ReadOnlyTable<&'static [u8], ()>),
    /// Covering entries: the value is the row's record.
    Rows(redb::ReadOnlyTable<&'static [u8], &'static [u8]>),
}
