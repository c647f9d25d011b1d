//! The commit path: validation, group commit through the journal, publication into the
//! overlay, and the background applier that moves the overlay into redb.

mod applier;
mod pipeline;
mod written;

pub(crate) use applier::run_applier;
pub(crate) use pipeline::{CommitState, Shared};
