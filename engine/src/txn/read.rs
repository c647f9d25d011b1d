//! Read transactions: a consistent snapshot of the whole store.

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadOnlyTable, ReadableTableMetadata};
use tradestore_schema::TableId;

use super::ops::{ReadOps, Source, Visit};
use super::walk;
use crate::error::{Error, Result, guard_read};
use crate::layout::{self, IndexSpec};

/// A read-only snapshot. Never blocks writers and is never blocked by them; sees every
/// transaction committed before it began and nothing after.
pub struct ReadTx {
    txn: redb::ReadTransaction,
    indexes: Arc<Vec<IndexSpec>>,
}

impl ReadTx {
    pub(crate) fn new(txn: redb::ReadTransaction, indexes: Arc<Vec<IndexSpec>>) -> ReadTx {
        ReadTx { txn, indexes }
    }

    fn table(&self, t: TableId) -> Result<ReadOnlyTable<&'static [u8], &'static [u8]>> {
        Ok(self.txn.open_table(layout::data_table(t))?)
    }

    /// The secondary indexes this snapshot knows.
    pub fn indexes(&self) -> &[IndexSpec] {
        &self.indexes
    }

    /// The number of entries in an index.
    pub fn index_len(&self, spec: &IndexSpec) -> Result<u64> {
        Ok(self.txn.open_table(spec.redb_table())?.len()?)
    }
}

impl ReadOps for ReadTx {
    fn raw_get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        guard_read("reading a row", || {
            Ok(self.table(table)?.get(key)?.map(|g| g.value().to_vec()))
        })
    }

    fn raw_range(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()> {
        guard_read("scanning", || match source {
            Source::Table(t) => walk::rows(&self.table(t)?, range, reverse, f),
            Source::Index(spec) => {
                walk::entries(&self.txn.open_table(spec.redb_table())?, range, reverse, f)
            }
        })
    }

    fn count(&self, table: TableId) -> Result<u64> {
        guard_read("counting rows", || Ok(self.table(table)?.len()?))
    }

    fn index(&self, name: &str) -> Result<IndexSpec> {
        find_index(&self.indexes, name)
    }
}

pub(crate) fn find_index(indexes: &[IndexSpec], name: &str) -> Result<IndexSpec> {
    indexes
        .iter()
        .find(|s| s.def.name == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = indexes.iter().map(|s| s.def.name.as_str()).collect();
            Error::not_found(format!(
                "no index named {name:?}; the indexes are {}",
                names.join(", ")
            ))
        })
}
