//! Queries: one logical plan ([`ast`]) with two front ends (SQL, the typed builder), a
//! rewriter, a cost-based planner, an executor, a plan cache and the adaptive index manager.

pub mod advisor;
pub mod ast;
pub mod eval;
pub mod rewrite;
pub mod bind;
pub mod builder;
pub mod plan;
pub mod stats;
pub mod exec;
pub mod result;
mod engine;

pub use engine::{Explain, Outcome, PlanCacheStats, Prepared, Review, normalized_shape};
pub(crate) use engine::{QueryEngine, run_index_manager};
