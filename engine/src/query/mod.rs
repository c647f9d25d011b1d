//! Queries: one logical plan ([`ast`]) with two front ends (SQL, the typed builder), a
//! rewriter, a cost-based planner, an executor, a plan cache and the adaptive index manager.

pub mod ast;
pub mod sql;
