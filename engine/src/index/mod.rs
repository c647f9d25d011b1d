//! Secondary indexes created and dropped at run time: online builds that backfill while
//! writes continue.

mod build;

pub use crate::catalog::IndexDecision;
pub use build::BuildReport;
pub(crate) use build::{convert_layouts, create, drop, finish_interrupted, now_ns};
