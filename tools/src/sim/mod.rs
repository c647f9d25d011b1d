//! The reference trading engine that `tradestore simulate` runs.

pub mod book;
pub mod engine;
pub mod flow;
pub mod report;
