//! Transactions: read snapshots and validated writes.

mod ops;
mod read;
mod walk;
mod write;

pub use ops::{IndexScan, ReadOps, Source, Visit};
pub use read::ReadTx;
pub use write::{FillOutcome, WriteTx};
pub(crate) use write::{Mode, entry_key, show_values};
