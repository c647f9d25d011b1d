//! Tests of the SQL front end: every construct of the subset, converted exactly
//! ([`accepted`]), and every refusal, pointed at the right place ([`refused`]).

mod accepted;
mod refused;

use tradestore_schema::TableId;

use super::parse;
use crate::error::ErrorKind;
use crate::query::ast::{
    AggFunc, CmpOp, GroupKey, Latest, Operand, OrderKey, Pred, Query, SelectItem, Statement,
};

pub(super) const MINUTE: i64 = 60_000_000_000;
pub(super) const HOUR: i64 = 60 * MINUTE;

pub(super) fn query(sql: &str) -> Query {
    match parse(sql) {
        Ok(Statement::Query(q)) => q,
        other => panic!("{sql}: {other:?}"),
    }
}

pub(super) fn filter(where_clause: &str) -> Pred {
    query(&format!("SELECT * FROM trades WHERE {where_clause}")).filter
}

/// The error message of a refused statement (which must be `Invalid`).
pub(super) fn refused(sql: &str) -> String {
    match parse(sql) {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Invalid, "{sql}: {e}");
            e.message().to_owned()
        }
        Ok(s) => panic!("{sql}: accepted as {s:?}"),
    }
}

/// Asserts `sql` (one line) is refused with a message containing `needle`, pointing at the
/// first occurrence of `target`, underlined over its whole length.
pub(super) fn points(sql: &str, needle: &str, target: &str) {
    let column = col_of(sql, target);
    let width = target.chars().count();
    points_at(sql, needle, 1, column, width);
}

/// Asserts `sql` is refused with a message containing `needle`, pointing at `line`,
/// `column` with `width` carets.
pub(super) fn points_at(sql: &str, needle: &str, line: usize, column: usize, width: usize) {
    let m = refused(sql);
    assert!(m.contains(needle), "{sql}: {m}");
    assert!(
        m.contains(&format!("\nat line {line}, column {column}:\n")),
        "{sql}: {m}"
    );
    let source = sql.split('\n').nth(line - 1).expect("line");
    let lines: Vec<&str> = m.lines().collect();
    assert_eq!(lines[lines.len() - 2], format!("  {source}"), "{m}");
    assert_eq!(
        lines[lines.len() - 1],
        format!("  {}{}", " ".repeat(column - 1), "^".repeat(width)),
        "{m}"
    );
}

/// The 1-based column of the first occurrence of `target` in `sql`.
pub(super) fn col_of(sql: &str, target: &str) -> usize {
    sql[..sql.find(target).expect("target in sql")]
        .chars()
        .count()
        + 1
}

pub(super) fn col(name: &str) -> SelectItem {
    SelectItem::Column {
        name: name.into(),
        alias: None,
    }
}

pub(super) fn agg(func: AggFunc, args: &[&str], alias: Option<&str>) -> SelectItem {
    SelectItem::Agg {
        func,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        alias: alias.map(str::to_owned),
    }
}

pub(super) fn bucket(column: &str, width_ns: i64, alias: Option<&str>) -> SelectItem {
    SelectItem::Bucket {
        column: column.into(),
        width_ns,
        alias: alias.map(str::to_owned),
    }
}

pub(super) fn cmp(column: &str, op: CmpOp, value: Operand) -> Pred {
    Pred::Cmp {
        column: column.into(),
        op,
        value,
    }
}

pub(super) fn num(n: &str) -> Operand {
    Operand::Number(n.into())
}

pub(super) fn text(s: &str) -> Operand {
    Operand::Text(s.into())
}

pub(super) fn key(name: &str, desc: bool) -> OrderKey {
    OrderKey {
        name: name.into(),
        desc,
    }
}
