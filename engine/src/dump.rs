//! Dumps and restores: JSON Lines, one record per line naming its table.
//!
//! ```text
//! {"table":"instruments","record":{"id":1,"symbol":"ACME","tick_size":1000000,...}}
//! {"table":"trades","record":{"id":7,"order_id":3,...,"price":10125000000,...}}
//! ```
//!
//! Tables come parents first ([`TableId::ALL`]), rows in primary key order, fields in
//! declaration order, numbers as raw fixed-point integers: two dumps of the same data are
//! byte-identical. The last line counts the rows, `{"end":{"rows":3205}}`: a dump cut short
//! at a line boundary is still valid JSON Lines, and only that count tells it from a smaller
//! dump. A restore validates every line, the end line and every constraint of the store as it
//! would be afterwards, and commits (in one durable redb commit) only if all of it is good.

use std::io::{BufRead, Read, Write};
use std::ops::Bound;

use serde::Serialize;
use tradestore_schema::{AnyRecord, TableId, codec};

use parking_lot::Mutex;

use crate::bulk::{Batch, Parsed, Row};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::txn::{ReadOps, Source};

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
    if let Some(trade) = fast::trade(line) {
        return Ok(AnyRecord::Trades(trade));
    }
    if line.starts_with('\u{feff}') {
        return Err(Error::invalid(
            "the line begins with a byte order mark (U+FEFF): a dump is UTF-8 JSON Lines \
             without one; remove it (the editor that saved the file added it)",
        ));
    }
    serde_json::from_str::<AnyRecord>(line).map_err(|e| Error::invalid(e.to_string()))
}

/// A trade line exactly as [`format_line`] writes it, read without serde: trades are most of
/// a dump's lines, and serde_json's general path (keys matched one by one, numbers through
/// its visitor) was most of a restore's parsing. Anything else (another table, spaces,
/// fields in another order, a number not written the canonical way) is `None`, and serde
/// reads or refuses the line: the fast path only ever agrees with it.
mod fast {
    use tradestore_schema::{Money, Price, Quantity, Side, Trade};

    struct Cursor<'a>(&'a [u8]);

    impl Cursor<'_> {
        fn tag(&mut self, tag: &[u8]) -> Option<()> {
            self.0 = self.0.strip_prefix(tag)?;
            Some(())
        }

        /// Digits with no sign and no leading zero (`0` itself excepted), as serde writes a
        /// u64.
        fn u64(&mut self) -> Option<u64> {
            let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
            let (digits, rest) = self.0.split_at(n);
            if n == 0 || (n > 1 && digits[0] == b'0') {
                return None;
            }
            let mut v: u64 = 0;
            for d in digits {
                v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            }
            self.0 = rest;
            Some(v)
        }

        /// An i64 as serde writes it: `-` only before a nonzero magnitude.
        fn i64(&mut self) -> Option<i64> {
            if let Some(rest) = self.0.strip_prefix(b"-") {
                self.0 = rest;
                let m = self.u64()?;
                if m == 0 {
                    return None;
                }
                // -(2^63) is the one magnitude past i64::MAX.
                0i64.checked_sub_unsigned(m)
            } else {
                i64::try_from(self.u64()?).ok()
            }
        }
    }

    pub(super) fn trade(line: &str) -> Option<Trade> {
        let mut c = Cursor(line.as_bytes());
        c.tag(br#"{"table":"trades","record":{"id":"#)?;
        let id = c.u64()?;
        c.tag(br#","order_id":"#)?;
        let order_id = c.u64()?;
        c.tag(br#","account":"#)?;
        let account = c.u64()?;
        c.tag(br#","instrument":"#)?;
        let instrument = c.u64()?;
        c.tag(br#","side":""#)?;
        let side = if c.tag(b"buy").is_some() {
            Side::Buy
        } else {
            c.tag(b"sell")?;
            Side::Sell
        };
        c.tag(br#"","price":"#)?;
        let price = Price(c.i64()?);
        c.tag(br#","quantity":"#)?;
        let quantity = Quantity(c.i64()?);
        c.tag(br#","fee":"#)?;
        let fee = Money(c.i64()?);
        c.tag(br#","ts":"#)?;
        let ts = c.i64()?;
        c.tag(b"}}")?;
        c.0.is_empty().then_some(Trade {
            id,
            order_id,
            account,
            instrument,
            side,
            price,
            quantity,
            fee,
            ts,
        })
    }
}

/// The last line of a dump: how many rows the lines before it hold.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EndLine {
    end: End,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    rows: u64,
}

/// The end line of a dump of `rows` rows (without the newline).
pub fn end_line(rows: u64) -> String {
    serde_json::to_string(&EndLine { end: End { rows } })
        .unwrap_or_else(|e| unreachable!("end line to JSON: {e}"))
}

/// How a restore treats the dump's end line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Require exactly one end line, after every row, counting them (the default). When
    /// false, end lines are skipped wherever they are and a file without one is accepted:
    /// for files made by hand or by other tools, or dumps joined together, where a dump cut
    /// short at a line boundary can no longer be told from a complete one.
    pub check_end: bool,
}

impl Default for RestoreOptions {
    fn default() -> RestoreOptions {
        RestoreOptions { check_end: true }
    }
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
    let mut end = end_line(summary.total);
    end.push('\n');
    out.write_all(end.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing the dump", e))?;
    progress(summary.total, total);
    Ok(summary)
}

/// Restores a dump into the store. Every line is parsed and encoded first, with no lock
/// held; then the rows are validated as a whole against the store (no duplicate or clashing
/// keys, unique indexes, and the consistency check of the store as it would be after the
/// restore: foreign keys, rules, fill sums, position folds) and, only if everything is good,
/// written in key order in one durable commit ([`crate::bulk`]). Any error names the line
/// and leaves the store exactly as it was. `progress(bytes_read)` is called as input is
/// consumed. The dump must end with its end line ([`RestoreOptions::default`]).
pub fn restore(
    store: &Store,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    restore_with(store, input, RestoreOptions::default(), progress)
}

/// [`restore`], with the end line treated as `options` say.
pub fn restore_with(
    store: &Store,
    input: &mut dyn BufRead,
    options: RestoreOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let max = usize::try_from(store.config().max_value_bytes).unwrap_or(usize::MAX);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The reading thread hands chunks of lines to parsers; each chunk's result comes back
    // with its number, so the first bad line is the one reported, whichever thread saw it.
    let (send, recv) = std::sync::mpsc::sync_channel::<Chunk>(workers);
    let recv = Mutex::new(recv);
    let parsed: Mutex<Vec<(u64, Result<Vec<Line>>)>> = Mutex::new(Vec::new());
    // Set by a parser that met a bad line: reading stops (an endless input of bad lines
    // would otherwise be read forever); every chunk sent before is still parsed, so the
    // first bad line is still the one reported.
    let failed = std::sync::atomic::AtomicBool::new(false);
    // Bytes the parsed rows hold: a dump larger than `restore_max_mb` is refused while it is
    // read, before it can exhaust the memory of the process (an application's, for one
    // restoring through the library).
    let limit_mb = store.config().restore_max_mb;
    let limit = limit_mb.saturating_mul(1 << 20);
    let held = std::sync::atomic::AtomicU64::new(0);
    let read = std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let next = recv.lock().recv();
                    let Ok(chunk) = next else { break };
                    let rows = chunk.parse(max).and_then(|lines| {
                        let bytes: u64 = lines.iter().map(Line::held_bytes).sum::<u64>()
                            + std::mem::size_of::<(u64, Result<Vec<Line>>)>() as u64;
                        let total =
                            held.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes;
                        if total > limit {
                            return Err(Error::new(
                                crate::ErrorKind::Capacity,
                                format!(
                                    "line {}: the dump's rows take more than restore_max_mb = \
                                     {limit_mb} MiB of memory by here, which a restore holds \
                                     until its one commit; raise restore_max_mb, or restore \
                                     the dump in parts (parents first, each part with \
                                     `--no-end-check`)",
                                    chunk.first_line
                                ),
                            ));
                        }
                        Ok(lines)
                    });
                    match &rows {
                        Err(_) => failed.store(true, std::sync::atomic::Ordering::Relaxed),
                        // Nothing to keep from a chunk of blank lines.
                        Ok(lines) if lines.is_empty() => continue,
                        Ok(_) => {}
                    }
                    parsed.lock().push((chunk.first_line, rows));
                }
            });
        }
        let read = read_chunks(input, &send, &failed, progress);
        drop(send);
        read
    });
    let mut chunks = parsed.into_inner();
    chunks.sort_by_key(|(first, _)| *first);
    let mut batch = Batch::default();
    let mut summary = Summary::default();
    // The end line seen (its line number), when checked.
    let mut end: Option<u64> = None;
    for (_, lines) in chunks {
        for l in lines? {
            match l {
                Line::Row(p) => {
                    if let Some(at) = end {
                        return Err(Error::invalid(format!(
                            "line {}: a row after the dump's end line (line {at}): the file \
                             holds more than one dump, or rows were added after it ends",
                            p.line()
                        )));
                    }
                    summary.add(p.table);
                    batch.add(p);
                }
                Line::End { .. } if !options.check_end => {}
                Line::End { line, rows } => {
                    if let Some(at) = end {
                        return Err(Error::invalid(format!(
                            "line {line}: a second end line (the first is line {at}): the file \
                             holds more than one dump"
                        )));
                    }
                    if rows != summary.total {
                        return Err(Error::invalid(format!(
                            "line {line}: the end line counts {rows} rows, but the dump holds {} \
                             before it: rows were removed or added after it was written",
                            summary.total
                        )));
                    }
                    end = Some(line);
                }
            }
        }
    }
    read?;
    if options.check_end && end.is_none() {
        return Err(Error::invalid(format!(
            "the dump ({} rows) has no end line (`{}`, which `tradestore dump` writes last): \
             it was cut short, or made by another tool; to load a file made without one, \
             restore it with `--no-end-check`",
            summary.total,
            end_line(summary.total)
        )));
    }
    store.bulk_load(batch)?;
    Ok(summary)
}

/// One parsed line of a dump (blank lines are dropped).
enum Line {
    Row(Parsed),
    /// The end line, at input line `line`, counting `rows`.
    End {
        line: u64,
        rows: u64,
    },
}

impl Line {
    /// Memory the line holds once parsed.
    fn held_bytes(&self) -> u64 {
        match self {
            Line::Row(p) => p.held_bytes(),
            Line::End { .. } => 0,
        }
    }
}

/// Lines parsed together by one parser.
const PARSE_CHUNK: usize = 4096;

/// Consecutive lines of a dump: their bytes back to back and where each ends.
struct Chunk {
    first_line: u64,
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Chunk {
    fn new(first_line: u64) -> Chunk {
        Chunk {
            first_line,
            text: Vec::with_capacity(PARSE_CHUNK * 256),
            ends: Vec::with_capacity(PARSE_CHUNK),
        }
    }

    /// The rows of the chunk's lines (blank lines skipped), or the first line's error.
    fn parse(&self, max: usize) -> Result<Vec<Line>> {
        let mut out = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            let line = self.first_line + i as u64;
            if let Some(p) = parse_numbered(line, &self.text[start..end], max)? {
                out.push(p);
            }
            start = end;
        }
        // Room reserved for blank lines is given back: a dump of blank lines would otherwise
        // hold a chunk's worth of reserved rows per chunk until the commit.
        out.shrink_to_fit();
        Ok(out)
    }
}

/// Reads `input` into chunks sent to the parsers. Stops at the first line it cannot read
/// or that is too long, with that error, after sending the lines before it, and once a
/// parser has `failed`.
fn read_chunks(
    input: &mut dyn BufRead,
    send: &std::sync::mpsc::SyncSender<Chunk>,
    failed: &std::sync::atomic::AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut line_no = 0u64;
    let mut bytes_read = 0u64;
    let mut chunk = Chunk::new(1);
    let result = loop {
        let before = chunk.text.len();
        let n = match input
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut chunk.text)
        {
            Ok(n) => n,
            Err(e) => {
                chunk.text.truncate(before);
                break Err(Error::io(format!("reading line {}", line_no + 1), e));
            }
        };
        if n == 0 {
            break Ok(());
        }
        line_no += 1;
        bytes_read += n as u64;
        if n > MAX_LINE_BYTES {
            chunk.text.truncate(before);
            break Err(Error::invalid(format!(
                "line {line_no}: longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        chunk.ends.push(chunk.text.len());
        if chunk.ends.len() == PARSE_CHUNK {
            let full = std::mem::replace(&mut chunk, Chunk::new(line_no + 1));
            if send.send(full).is_err() || failed.load(std::sync::atomic::Ordering::Relaxed) {
                break Ok(());
            }
            progress(bytes_read);
        }
    };
    if !chunk.ends.is_empty() {
        // Only fails when every parser is gone, which they are not while the sender lives.
        let _ = send.send(chunk);
    }
    progress(bytes_read);
    result
}

/// One dump line: `None` when blank.
fn parse_numbered(line: u64, bytes: &[u8], max: usize) -> Result<Option<Line>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid(format!("line {line}: not UTF-8")))?
        .trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.trim_start().starts_with(r#"{"end""#) {
        let e: EndLine = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("line {line}: a malformed end line: {e}")))?;
        return Ok(Some(Line::End {
            line,
            rows: e.end.rows,
        }));
    }
    let rec = parse_line(text).map_err(|e| e.context(format!("line {line}")))?;
    Row::of(line, &rec, max)
        .map(|p| Some(Line::Row(p)))
        .map_err(|e| e.context(format!("line {line}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path agrees with serde on every line it reads, canonical or mutated, and
    /// reads the canonical ones.
    #[test]
    fn the_trade_fast_path_only_ever_agrees_with_serde() {
        use tradestore_schema::{Money, Price, Quantity, Side, Trade};
        const ALPHABET: &[u8] = b"0123456789-+.e \"x,:{}";
        let serde = |l: &str| serde_json::from_str::<AnyRecord>(l).ok();
        let mut rng = fastrand::Rng::with_seed(7);
        let edge = [0, 1, -1, i64::MAX, i64::MIN, 9_950_000_000, -37];
        for i in 0..3000u64 {
            let pick = |rng: &mut fastrand::Rng| {
                if rng.bool() {
                    edge[rng.usize(..edge.len())]
                } else {
                    rng.i64(..)
                }
            };
            let t = Trade {
                id: if i % 7 == 0 { u64::MAX } else { rng.u64(..) },
                order_id: rng.u64(..1000),
                account: i,
                instrument: rng.u64(..),
                side: if rng.bool() { Side::Buy } else { Side::Sell },
                price: Price(pick(&mut rng)),
                quantity: Quantity(pick(&mut rng)),
                fee: Money(pick(&mut rng)),
                ts: pick(&mut rng),
            };
            let line = format_line(&AnyRecord::Trades(t.clone()));
            assert_eq!(fast::trade(&line), Some(t), "{line}");
            // Mutations: a byte changed, dropped or doubled, and known tricky spellings.
            let bytes = line.as_bytes();
            for _ in 0..8 {
                let mut m = bytes.to_vec();
                let at = rng.usize(..m.len());
                match rng.u8(..3) {
                    0 => m[at] = ALPHABET[rng.usize(..ALPHABET.len())],
                    1 => {
                        m.remove(at);
                    }
                    _ => m.insert(at, m[at]),
                }
                let Ok(m) = String::from_utf8(m) else {
                    continue;
                };
                if let Some(f) = fast::trade(&m) {
                    assert_eq!(Some(AnyRecord::Trades(f)), serde(&m), "{m}");
                }
            }
        }
        for tricky in [
            r#"{"table":"trades","record":{"id":01,"order_id":1,"account":1,"instrument":1,"side":"buy","price":1,"quantity":1,"fee":0,"ts":1}}"#,
            r#"{"table":"trades","record":{"id":1,"order_id":1,"account":1,"instrument":1,"side":"buy","price":-0,"quantity":1,"fee":0,"ts":1}}"#,
            r#"{"table":"trades","record":{"id":1,"order_id":1,"account":1,"instrument":1,"side":"buy","price":9223372036854775808,"quantity":1,"fee":0,"ts":1}}"#,
            r#"{"table":"trades","record":{"id":18446744073709551616,"order_id":1,"account":1,"instrument":1,"side":"buy","price":1,"quantity":1,"fee":0,"ts":1}}"#,
            r#"{"table":"trades","record":{"id":1,"order_id":1,"account":1,"instrument":1,"side":"buy","price":1,"quantity":1,"fee":0,"ts":1}} "#,
            r#"{"table":"trades","record":{"id":1,"order_id":1,"account":1,"instrument":1,"side":"BUY","price":1,"quantity":1,"fee":0,"ts":1}}"#,
        ] {
            assert_eq!(fast::trade(tricky), None, "{tricky}");
        }
        let min = r#"{"table":"trades","record":{"id":1,"order_id":1,"account":1,"instrument":1,"side":"sell","price":-9223372036854775808,"quantity":1,"fee":0,"ts":1}}"#;
        assert_eq!(fast::trade(min).map(AnyRecord::Trades), serde(min));
    }

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

    /// A chunk of blank lines holds nothing once parsed; a chunk with a few rows among
    /// blank lines holds room for those rows only.
    #[test]
    fn blank_lines_hold_no_memory_once_parsed() -> Result<()> {
        let row = br#"{"table":"accounts","record":{"id":1,"name":"a","status":"active"}}"#;
        let mut chunk = Chunk::new(1);
        for i in 0..PARSE_CHUNK {
            if i % 1000 == 999 {
                chunk.text.extend_from_slice(row);
            }
            chunk.text.push(b'\n');
            chunk.ends.push(chunk.text.len());
        }
        let lines = chunk.parse(1 << 20)?;
        assert_eq!(lines.len(), PARSE_CHUNK / 1000);
        assert_eq!(lines.capacity(), lines.len());
        let mut blank = Chunk::new(1);
        for _ in 0..PARSE_CHUNK {
            blank.text.extend_from_slice(b"  \r\n");
            blank.ends.push(blank.text.len());
        }
        assert_eq!(blank.parse(1 << 20)?.capacity(), 0);
        Ok(())
    }

    #[test]
    fn line_round_trip() {
        let line = r#"{"table":"accounts","record":{"id":1,"name":"a","status":"active"}}"#;
        assert_eq!(format_line(&parse_line(line).unwrap()), line);
    }

    #[test]
    fn a_byte_order_mark_is_named() {
        let line = "\u{feff}{\"table\":\"accounts\",\"record\":{\"id\":1,\"name\":\"a\",\"status\":\"active\"}}";
        let e = parse_line(line).unwrap_err();
        assert!(e.to_string().contains("byte order mark"), "{e}");
    }
}
