//! Applying row changes to redb: the single path by which data reaches redb, used by the
//! applier for committed transactions and by recovery for journal replay. Index entries are
//! derived here from the old and new rows, so the journal holds only row changes.

use redb::{ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};
use tradestore_schema::{TableId, codec};

use crate::error::{Error, Result};
use crate::layout::{self, IndexSpec};
use std::collections::BTreeMap;

use super::overlay::{Entry, INDEX_BASE, OKey};
use crate::txn::entry_key;

/// One row change of a committed transaction: the journal's record body is a list of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RowChange {
    /// The table's on-disk discriminant.
    pub table: u8,
    /// Encoded primary key.
    pub key: Vec<u8>,
    /// The new encoded record, or `None` for a delete.
    pub value: Option<Vec<u8>>,
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
                    Entry::Put(v) => Some(v.to_vec()),
                    Entry::Del => None,
                },
            })
            .collect()
    }
}

const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
const APPLIED_KEY: &str = "applied_seq";

/// The sequence number of the last transaction contained in this redb state.
pub(crate) fn read_applied_seq(txn: &redb::ReadTransaction) -> Result<u64> {
    match txn.open_table(META) {
        Ok(t) => Ok(t.get(APPLIED_KEY)?.map_or(0, |g| g.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Records the sequence number of the last transaction applied in this write.
pub(crate) fn write_applied_seq(txn: &redb::WriteTransaction, seq: u64) -> Result<()> {
    txn.open_table(META)?.insert(APPLIED_KEY, seq)?;
    Ok(())
}

/// Applies row changes in order, maintaining every index from the old and new rows. Each
/// redb table is opened once for the whole run of changes (opening one walks redb's table
/// directory, which would otherwise dominate the cost of a small change).
pub(crate) fn apply_rows<'c>(
    txn: &redb::WriteTransaction,
    indexes: &[IndexSpec],
    changes: impl IntoIterator<Item = &'c RowChange>,
) -> Result<()> {
    let mut rows: Vec<Option<Table<'_, &'static [u8], &'static [u8]>>> =
        (0..8).map(|_| None).collect();
    let mut idx: Vec<Option<Table<'_, &'static [u8], ()>>> = indexes.iter().map(|_| None).collect();
    for c in changes {
        let table = TableId::from_u8(c.table).ok_or_else(|| {
            Error::corruption(format!("row change names unknown table {}", c.table))
        })?;
        let slot = &mut rows[table as usize];
        if slot.is_none() {
            *slot = Some(txn.open_table(layout::data_table(table))?);
        }
        let Some(data) = slot.as_mut() else { continue };
        let old = match data.get(c.key.as_slice())? {
            Some(g) => Some(codec::decode_any(table, g.value())?),
            None => None,
        };
        let new = c
            .value
            .as_deref()
            .map(|v| codec::decode_any(table, v))
            .transpose()?;
        match &c.value {
            Some(v) => data.insert(c.key.as_slice(), v.as_slice())?,
            None => data.remove(c.key.as_slice())?,
        };
        for (i, spec) in indexes
            .iter()
            .enumerate()
            .filter(|(_, s)| s.def.table == table)
        {
            let old_key = old.as_ref().map(|o| entry_key(spec, o, &c.key));
            let new_key = new.as_ref().map(|n| entry_key(spec, n, &c.key));
            if old_key == new_key {
                continue;
            }
            let slot = &mut idx[i];
            if slot.is_none() {
                *slot = Some(txn.open_table(spec.redb_table())?);
            }
            let Some(t) = slot.as_mut() else { continue };
            if let Some(k) = old_key {
                t.remove(k.as_slice())?;
            }
            if let Some(k) = new_key {
                t.insert(k.as_slice(), ())?;
            }
        }
    }
    Ok(())
}
