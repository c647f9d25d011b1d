//! Secondary indexes created and dropped at run time: online builds that backfill while
//! writes continue.

mod build;

pub use crate::catalog::IndexDecision;
pub use build::BuildReport;
pub(crate) use build::{
    backfill_chunk, convert_layouts, create, decision, drop, finish_interrupted, now_ns, validate,
};
