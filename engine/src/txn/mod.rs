//! Transactions: read snapshots and validated writes.

mod ops;
mod read;
mod snapshot;
mod walk;
mod write;

pub use ops::{IndexScan, ReadOps, Source, Visit};
pub use read::ReadTx;
pub(crate) use read::find_any_index;
pub(crate) use snapshot::{RedbView, Snapshot};
#[cfg(test)]
pub(crate) use write::ScannedRange;
pub use write::{FillOutcome, WriteTx};
pub(crate) use write::{
    LockGuard, Mode, ReadSet, WriteParts, entry_key, show_values, write_entry_key,
};
