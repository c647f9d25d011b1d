//! The read side of the benchmark: one data set of trades and positions, loaded into every
//! engine (timed: the bulk restore), then point gets, an instrument's last trades and an
//! account's positions read from each, one read transaction per batch of operations.

pub mod data;
pub mod fjall;
pub mod raw_redb;
pub mod report;
pub mod run;
pub mod sqlite;
pub mod tradestore;

pub use data::{DataSet, PositionRow};
pub use report::{ReadMeasurement, ReadOp};
pub use run::{Reader, run_reads};
