//! Plain text tables: a header and rows in columns padded to their widest cell.

use std::io::{self, Write};
use tradestore::query::result::printable;

/// A time in ns since the Unix epoch as RFC 3339 in UTC: `2026-11-27T23:15:00.123456789Z`.
pub fn time_ns(ns: u64) -> String {
    tradestore::query::ast::format_timestamp(i64::try_from(ns).unwrap_or(i64::MAX))
}

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers and sizes.
    Right,
}

/// Writes `header` and `rows` as columns separated by two spaces. The last column is not
/// padded, so long text (messages) does not leave trailing blanks. Control characters are
/// written escaped.
pub fn write(
    out: &mut dyn Write,
    header: &[(&str, Align)],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| printable(c, false).into_owned())
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let names: Vec<String> = header.iter().map(|(h, _)| (*h).to_owned()).collect();
    for row in std::iter::once(&names).chain(rows) {
        let mut line = String::new();
        for (i, ((cell, width), (_, align))) in row.iter().zip(&widths).zip(header).enumerate() {
            let last = i + 1 == header.len();
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            match align {
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
                Align::Left if last => line.push_str(cell),
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let mut out = Vec::new();
        let rows = vec![vec!["a\u{1b}[31mred".to_owned(), "two\nlines".to_owned()]];
        write(&mut out, &[("A", Align::Left), ("B", Align::Left)], &rows).ok();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("a\\u{1b}[31mred"), "{text}");
        assert!(text.contains("two\\nlines"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn columns_line_up() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["accounts".to_owned(), "12".to_owned(), "x".to_owned()],
            vec!["cash".to_owned(), "3".to_owned(), "longer".to_owned()],
        ];
        write(
            &mut out,
            &[
                ("TABLE", Align::Left),
                ("ROWS", Align::Right),
                ("NOTE", Align::Left),
            ],
            &rows,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "TABLE     ROWS  NOTE\naccounts    12  x\ncash         3  longer\n"
        );
    }
}
