//! The SQL front end: parses one statement of the SQL subset into a [`Statement`].
//!
//! The text is tokenized with `sqlparser`; the QuestDB-style clauses standard parsers do not
//! know (`LATEST ON ... PARTITION BY ...`, `SAMPLE BY <interval>`) are taken out of the token
//! stream (replaced by whitespace, so every other token keeps its line and column), the rest
//! is parsed by `sqlparser` and the syntax tree is converted into the logical query of
//! [`super::ast`]. Everything outside the subset is refused with an error that quotes the
//! offending line and underlines the offending part.
//!
//! [`Statement`]: super::ast::Statement

mod clauses;
mod expr;
mod point;
mod select;
mod statement;
#[cfg(test)]
mod tests;

pub use statement::parse;
