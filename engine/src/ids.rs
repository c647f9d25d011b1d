//! Id counters for the tables keyed by `id`: handed out outside transactions so that
//! concurrent writers never conflict on "the largest id", and raised past every id that
//! commits, whoever chose it.

use std::sync::atomic::{AtomicU64, Ordering};

use tradestore_schema::TableId;

use crate::error::{Error, ErrorKind, Result};

/// The next id of each table (indexed by the table's discriminant).
#[derive(Debug, Default)]
pub(crate) struct Ids {
    next: [AtomicU64; 8],
}

impl Ids {
    /// A new id for `table`.
    pub(crate) fn next(&self, table: TableId) -> Result<u64> {
        if table.primary_key() != ["id"] {
            return Err(Error::invalid(format!("{table} is not keyed by an id")));
        }
        let slot = &self.next[table as usize];
        let id = slot.fetch_add(1, Ordering::Relaxed).max(1);
        if id == u64::MAX {
            return Err(Error::new(
                ErrorKind::Capacity,
                format!("{table} ids are used up"),
            ));
        }
        slot.fetch_max(id + 1, Ordering::Relaxed);
        Ok(id)
    }

    /// Notes that `id` is taken in `table`: later ids are larger.
    pub(crate) fn observe(&self, table: TableId, id: u64) {
        self.next[table as usize].fetch_max(id.saturating_add(1), Ordering::Relaxed);
    }
}
