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

    /// The result as an aligned text table with a header. Control characters in names and
    /// values are written escaped (`\n`, `\u{1b}`): a stored string cannot move the
    /// terminal's cursor or break the table's lines.
    pub fn to_table(&self) -> String {
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|c| printable(&c.name, false).into_owned())
            .collect();
        let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
        let cells: Vec<Vec<String>> = (0..self.rows.len())
            .map(|r| {
                (0..self.columns.len())
                    .map(|c| printable(&self.cell(r, c), false).into_owned())
                    .collect()
            })
            .collect();
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        // Padded by hand: a formatting width is limited to 65535.
        let line = |out: &mut String, items: Vec<&str>| {
            let start = out.len();
            for (i, (s, w)) in items.iter().zip(&widths).enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                out.push_str(s);
                out.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(s.chars().count()),
                ));
            }
            let kept = out[start..].trim_end().len();
            out.truncate(start + kept);
            out.push('\n');
        };
        line(&mut out, names.iter().map(String::as_str).collect());
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

/// `text` with its control characters written as escapes (`\n`, `\u{1b}`), except newlines
/// and tabs when `keep_lines`: text from files and the store, printed on a terminal, must not
/// move the cursor or recolour it, nor (in a table) break its lines. Borrowed when there is
/// nothing to escape.
pub fn printable(text: &str, keep_lines: bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !(keep_lines && (c == '\n' || c == '\t'));
    if !text.chars().any(escaped) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if escaped(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, values: &[&str]) -> QueryResult {
        QueryResult {
            columns: vec![OutputColumn {
                name: name.to_owned(),
                kind: OutputKind::Column(ColumnType::Text),
            }],
            rows: values
                .iter()
                .map(|v| vec![Value::Text((*v).to_owned())])
                .collect(),
        }
    }

    #[test]
    fn the_table_aligns_and_escapes_control_characters() {
        let t = text("name", &["a\u{1b}[2J\u{7}", "bb\ncc"]).to_table();
        assert_eq!(
            t, "name\n---------------\na\\u{1b}[2J\\u{7}\nbb\\ncc\n(2 rows)\n",
            "{t}"
        );
        assert!(!t.contains('\u{1b}'));
    }

    #[test]
    fn a_name_wider_than_any_formatting_width_prints() {
        let wide = "a".repeat(70_000);
        let t = text(&wide, &["x"]).to_table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], wide);
        assert_eq!(lines[1].len(), 70_000);
        assert_eq!(lines[2], "x");
    }
}
