//! The overlay: every committed (durable) write that the applier has not yet moved into
//! redb, as a persistent sorted map so that a snapshot is an O(1) clone.
//!
//! Keys are `(space, key)`: space `0..256` is a table (its [`TableId`] discriminant), space
//! `INDEX_BASE + i` is the `i`th secondary index. Each value carries the sequence number
//! of the transaction that wrote it, so that a reader whose redb snapshot already contains
//! that transaction ignores it.

use std::sync::Arc;

use tradestore_schema::TableId;

/// First space number of the secondary indexes.
pub(crate) const INDEX_BASE: u16 = 256;

/// A key of the overlay or of a write set.
pub(crate) type OKey = (u16, Vec<u8>);

/// A row or index entry written by a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The row's encoded record (for an index entry: the row's record when the index is
    /// covering, else an empty value).
    Put(Arc<[u8]>),
    /// Deleted.
    Del,
}

/// The overlay map: key -> (sequence number of the write, entry).
pub(crate) type Overlay = imbl::OrdMap<OKey, (u64, Entry)>;

/// The overlay together with the sequence number it is complete up to: every transaction
/// with a sequence number `<= durable` is in the overlay or already in redb.
#[derive(Clone, Default)]
pub(crate) struct Published {
    pub overlay: Overlay,
    pub durable: u64,
}

/// The space of a table's rows.
pub(crate) fn space_of_table(t: TableId) -> u16 {
    u16::from(t as u8)
}
