//! Read transactions: a consistent snapshot of the whole store.

use std::ops::Bound;

use tradestore_schema::TableId;

use super::ops::{ReadOps, Source, Visit};
use super::snapshot::{Snapshot, TailWalk};
use crate::error::{Error, Result};
use crate::layout::IndexSpec;

/// A read-only snapshot. Never blocks writers and is never blocked by them; sees every
/// transaction acknowledged before it began (a redb snapshot plus the overlay of durable
/// writes not yet in redb) and nothing after.
pub struct ReadTx {
    snap: Snapshot,
}

impl ReadTx {
    pub(crate) fn new(snap: Snapshot) -> ReadTx {
        ReadTx { snap }
    }

    /// A table's row count for estimates (see `Snapshot::approx_count`).
    pub(crate) fn approx_count(&self, table: TableId) -> Result<u64> {
        self.snap.approx_count(table)
    }

    /// The secondary indexes this snapshot knows.
    pub fn indexes(&self) -> &[IndexSpec] {
        &self.snap.indexes
    }

    /// The number of entries in an index.
    pub fn index_len(&self, spec: &IndexSpec) -> Result<u64> {
        self.snap.index_len(spec)
    }

    /// The sequence number of the last transaction this snapshot sees.
    pub fn seq(&self) -> u64 {
        self.snap.seq
    }
}

impl ReadOps for ReadTx {
    fn raw_get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snap.get(table, key)
    }

    fn get_encoded<R: tradestore_schema::Record>(&self, key: &[u8]) -> Result<Option<R>> {
        // Decoded where redb (or the overlay) holds it: no copy of the row's bytes.
        self.snap
            .get_with(R::TABLE, key, |b| Ok(tradestore_schema::codec::decode(b)?))
    }

    fn raw_range(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()> {
        let mut range = range;
        let below;
        if reverse {
            match self.snap.tail_walk(source, range, f)? {
                TailWalk::Done => return Ok(()),
                TailWalk::Continue(from) => {
                    below = from;
                    let narrower = match range.1 {
                        Bound::Included(h) => h >= below.as_slice(),
                        Bound::Excluded(h) => h > below.as_slice(),
                        Bound::Unbounded => true,
                    };
                    if narrower {
                        range.1 = Bound::Excluded(below.as_slice());
                    }
                }
                TailWalk::NotServed => {}
            }
        }
        let upper = self.snap.overlay_range(self.snap.space(source)?, range);
        self.snap
            .merged_range(source, range, reverse, upper, f)
            .map(|_| ())
    }

    fn count(&self, table: TableId) -> Result<u64> {
        self.snap.count(table)
    }

    fn index(&self, name: &str) -> Result<IndexSpec> {
        find_index(&self.snap.indexes, name)
    }
}

/// The ready index with this name (an index still being built cannot be read yet).
pub(crate) fn find_index(indexes: &[IndexSpec], name: &str) -> Result<IndexSpec> {
    let spec = find_any_index(indexes, name)?;
    if !spec.ready {
        return Err(Error::new(
            crate::ErrorKind::Busy,
            format!("index {name} is still being built; it can be read once complete"),
        ));
    }
    Ok(spec)
}

/// The index with this name, complete or not.
pub(crate) fn find_any_index(indexes: &[IndexSpec], name: &str) -> Result<IndexSpec> {
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
