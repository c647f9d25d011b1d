//! Dumps and restores: JSON Lines, one record per line naming its table.
//!
//! ```text
//! {"table":"instruments","record":{"id":1,"symbol":"ACME","tick_size":1000000,...}}
//! {"table":"trades","record":{"id":7,"order_id":3,...,"price":10125000000,...}}
//! ```
//!
//! Tables come parents first ([`TableId::ALL`]), rows in primary key order, fields in
//! declaration order, numbers as raw fixed-point integers: two dumps of the same data are
//! byte-identical. A restore validates every line and every constraint inside one
//! transaction and commits only if all of it is good.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::ops::Bound;

use serde::Serialize;
use tradestore_schema::{AnyRecord, TableId, codec};

use crate::check;
use crate::error::{Error, ErrorKind, Result};
use crate::keys;
use crate::store::Store;
use crate::txn::{Mode, ReadOps, Source, WriteTx};

/// The longest line a dump may hold (a record is at most 64 KiB encoded; its JSON is
/// bounded well below this).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Rows per table written or read.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Rows per table, in table order.
    pub tables: Vec<(String, u64)>,
    /// All rows.
    pub total: u64,
}

impl Summary {
    fn add(&mut self, table: TableId) {
        self.total += 1;
        match self.tables.iter_mut().find(|(n, _)| n == table.name()) {
            Some((_, c)) => *c += 1,
            None => self.tables.push((table.name().to_owned(), 1)),
        }
    }
}

/// Parses one dump line into a record. Unknown tables, unknown or missing fields, wrong
/// types and trailing characters are errors.
pub fn parse_line(line: &str) -> Result<AnyRecord> {
    serde_json::from_str::<AnyRecord>(line).map_err(|e| Error::invalid(e.to_string()))
}

/// Formats one record as a dump line (without the newline).
pub fn format_line(record: &AnyRecord) -> String {
    // Serializing these plain structs to JSON cannot fail (no maps with non-string keys,
    // no floats).
    serde_json::to_string(record).unwrap_or_else(|e| unreachable!("record to JSON: {e}"))
}

/// Writes every row of the store as JSON Lines. `progress(done, total)` is called as rows go.
pub fn dump(
    store: &Store,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary> {
    let tx = store.read()?;
    let mut total = 0;
    for t in TableId::ALL {
        total += tx.count(t)?;
    }
    let mut summary = Summary::default();
    for table in TableId::ALL {
        let mut err = None;
        tx.raw_range(
            Source::Table(table),
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |_, v| {
                let rec = codec::decode_any(table, v)?;
                let mut line = format_line(&rec);
                line.push('\n');
                if let Err(e) = out.write_all(line.as_bytes()) {
                    err = Some(e);
                    return Ok(false);
                }
                summary.add(table);
                if summary.total.is_multiple_of(4096) {
                    progress(summary.total, total);
                }
                Ok(true)
            },
        )?;
        if let Some(e) = err {
            return Err(Error::io("writing the dump", e));
        }
    }
    out.flush().map_err(|e| Error::io("writing the dump", e))?;
    progress(summary.total, total);
    Ok(summary)
}

/// Restores a dump into the store: every line is parsed and validated (rules, foreign keys,
/// no duplicate keys), then the whole store is checked as it would be after the restore
/// (fill sums, position folds, indexes). Only if everything is good is it committed; any
/// error names the line and leaves the store exactly as it was. `progress(bytes_read)`
/// is called as input is consumed.
pub fn restore(
    store: &Store,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let indexes = store.indexes();
    store.write_direct(Mode::Restore, |tx| {
        let mut summary = Summary::default();
        let mut lines: HashMap<(TableId, Vec<u8>), u64> = HashMap::new();
        let mut line_no = 0u64;
        let mut bytes_read = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = input
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io(format!("reading line {}", line_no + 1), e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            bytes_read += n as u64;
            if buf.len() > MAX_LINE_BYTES {
                return Err(Error::invalid(format!(
                    "line {line_no}: longer than {MAX_LINE_BYTES} bytes"
                )));
            }
            let text = std::str::from_utf8(&buf)
                .map_err(|_| Error::invalid(format!("line {line_no}: not UTF-8")))?
                .trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let rec = parse_line(text).map_err(|e| e.context(format!("line {line_no}")))?;
            let table = rec.table();
            let pk = keys::encode(&rec.primary_key());
            insert(tx, rec).map_err(|e| e.context(format!("line {line_no}")))?;
            lines.insert((table, pk), line_no);
            summary.add(table);
            if line_no.is_multiple_of(4096) {
                progress(bytes_read);
            }
        }
        progress(bytes_read);
        let report = check::check(&*tx, &indexes, &mut |_, _| {})?;
        if let Some(v) = report.violations.first() {
            let line = v.table.parse::<TableId>().ok().and_then(|t| {
                lines
                    .iter()
                    .find(|((lt, pk), _)| *lt == t && pk_matches(pk, &v.key))
                    .map(|(_, l)| *l)
            });
            let at = line.map_or_else(|| "restored data".to_owned(), |l| format!("line {l}"));
            return Err(Error::new(
                ErrorKind::Constraint,
                format!(
                    "{at}: {} {}: {} ({} violation(s) in all; nothing was restored)",
                    v.table,
                    v.key,
                    v.message,
                    report.violations.len()
                ),
            ));
        }
        Ok(summary)
    })
}

fn pk_matches(pk: &[u8], shown: &str) -> bool {
    keys::decode(pk)
        .map(|v| crate::txn::show_values(&v) == shown)
        .unwrap_or(false)
}

fn insert(tx: &mut WriteTx, rec: AnyRecord) -> Result<()> {
    match rec {
        AnyRecord::Instruments(r) => tx.insert(&r),
        AnyRecord::Accounts(r) => tx.insert(&r),
        AnyRecord::Orders(r) => tx.insert(&r),
        AnyRecord::Trades(r) => tx.insert(&r),
        AnyRecord::Positions(r) => tx.insert(&r),
        AnyRecord::Cash(r) => tx.insert(&r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse_line("").is_err());
        assert!(parse_line("{}").is_err());
        assert!(parse_line(r#"{"table":"nope","record":{}}"#).is_err());
        assert!(
            parse_line(
                r#"{"table":"accounts","record":{"id":1,"name":"a","status":"active","x":1}}"#
            )
            .is_err()
        );
        assert!(
            parse_line(r#"{"table":"accounts","record":{"id":-1,"name":"a","status":"active"}}"#)
                .is_err()
        );
        assert!(
            parse_line(r#"{"table":"accounts","record":{"id":1,"name":"a","status":"active"}} x"#)
                .is_err()
        );
    }

    #[test]
    fn line_round_trip() {
        let line = r#"{"table":"accounts","record":{"id":1,"name":"a","status":"active"}}"#;
        assert_eq!(format_line(&parse_line(line).unwrap()), line);
    }
}
