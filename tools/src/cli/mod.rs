//! The subcommands, one file each, and the helpers they share.

pub mod alerts;
pub mod analyze;
pub mod archive;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod check;
pub mod compact;
pub mod dump;
pub mod explain;
pub mod health;
pub mod index;
pub mod init;
pub mod inspect;
pub mod migrate;
pub mod monitor;
pub mod monitor_cost;
pub mod probe;
pub mod progress;
pub mod query;
pub mod report;
pub mod restore;
pub mod simulate;
pub mod standby;
pub mod store;
pub mod table;
