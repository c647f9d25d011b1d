//! The query benchmark: the common queries of the SQL front end, each run many times with
//! random parameters against one data set loaded into tradestore and into SQLite, with and
//! without the index tradestore's advisor recommends.
//!
//! Run it with `cargo run --release -p tradestore-benches --bin queries -- [--quick] [--json]`.

pub mod common;
pub mod data;
pub mod report;
pub mod run;

pub use common::{Case, Param};
pub use report::{CaseRow, QueryReport, Recommendation};
pub use run::{QueryPlan, run_queries};
