//! Queries: one logical plan ([`ast`]) with two front ends ([`sql`], [`builder`]), a
//! [`rewrite`]r, a cost-based [`plan`]ner over table [`stats`], an [`exec`]utor, a plan
//! cache and the adaptive index manager ([`advisor`]).

pub mod advisor;
pub mod ast;
pub mod bind;
pub mod builder;
mod engine;
pub mod eval;
pub mod exec;
pub mod plan;
pub mod result;
pub mod rewrite;
pub mod sql;
pub mod stats;

pub use engine::{Explain, Outcome, PlanCacheStats, Prepared, Review, normalized_shape};
pub(crate) use engine::{QueryEngine, run_index_manager};
