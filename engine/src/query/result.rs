//! A query's result: named, typed output columns and rows of values, with the text and
//! JSON forms the CLI prints.

use serde_json::json;
use tradestore_schema::{ColumnType, Money, Price, Quantity, Value};

use super::ast::format_timestamp;

/// What an output column holds: decides how its values print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A count of rows.
    Count,
    /// Values of (or computed from) a column of this type.
    Column(ColumnType),
}

/// One output column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputColumn {
    /// Its name: the alias, the column, or `func(args)`.
    pub name: String,
    /// What it holds.
    pub kind: OutputKind,
}

/// The rows a query returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryResult {
    /// The output columns.
    pub columns: Vec<OutputColumn>,
    /// The rows, each with one value per output column.
    pub rows: Vec<Vec<Value>>,
}

/// A value as text: decimals for prices, quantities and money, RFC 3339 for timestamps,
/// `NULL` for null.
pub fn format_value(kind: OutputKind, v: &Value) -> String {
    match (kind, v) {
        (_, Value::Null) => "NULL".to_owned(),
        (OutputKind::Column(ColumnType::Price), Value::I64(x)) => Price(*x).to_string(),
        (OutputKind::Column(ColumnType::Quantity), Value::I64(x)) => Quantity(*x).to_string(),
        (OutputKind::Column(ColumnType::Money), Value::I64(x)) => Money(*x).to_string(),
        (OutputKind::Column(ColumnType::Timestamp), Value::I64(x)) => format_timestamp(*x),
        (_, v) => v.to_string(),
    }
}

impl QueryResult {
    /// The value of row `r`, column `c` as text ([`format_value`]).
    pub fn cell(&self, r: usize, c: usize) -> String {
        match (
            self.rows.get(r).and_then(|row| row.get(c)),
            self.columns.get(c),
        ) {
            (Some(v), Some(col)) => format_value(col.kind, v),
            _ => String::new(),
        }
    }

    /// The rows as JSON objects keyed by column name: ids and counts as numbers, decimals
    /// and timestamps as exact strings, null as null.
    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut obj = serde_json::Map::new();
                for (col, v) in self.columns.iter().zip(row) {
                    let j = match (col.kind, v) {
                        (_, Value::Null) => serde_json::Value::Null,
                        (OutputKind::Count | OutputKind::Column(ColumnType::Id), Value::U64(x)) => {
                            json!(x)
                        }
                        (OutputKind::Column(ColumnType::Id) | OutputKind::Count, Value::I64(x)) => {
                            json!(x)
                        }
                        (kind, v) => json!(format_value(kind, v)),
                    };
                    obj.insert(col.name.clone(), j);
                }
                serde_json::Value::Object(obj)
            })
            .collect();
        json!({
            "columns": self.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "rows": rows,
        })
    }

    /// The result as an aligned text table with a header.
    pub fn to_table(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.name.len()).collect();
        let cells: Vec<Vec<String>> = (0..self.rows.len())
            .map(|r| (0..self.columns.len()).map(|c| self.cell(r, c)).collect())
            .collect();
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.len());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, items: Vec<&str>| {
            let parts: Vec<String> = items
                .iter()
                .zip(&widths)
                .map(|(s, w)| format!("{s:<w$}"))
                .collect();
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        line(
            &mut out,
            self.columns.iter().map(|c| c.name.as_str()).collect(),
        );
        line(
            &mut out,
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        );
        for row in &cells {
            line(&mut out, row.iter().map(String::as_str).collect());
        }
        out.push_str(&format!(
            "({} row{})\n",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" }
        ));
        out
    }
}
