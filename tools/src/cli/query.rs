//! `tradestore query`: run one statement of the SQL subset and print its rows.

use std::io::Write;

use anyhow::{Result, bail};
use tradestore::Store;
use tradestore::query::Prepared;
use tradestore::query::ast::{Operand, Pred, Query, Statement};
use tradestore::query::result::QueryResult;

use super::store::{StoreDir, open_existing};

/// Run one SQL statement (SELECT, or EXPLAIN [ANALYZE] SELECT) and print its result.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Run one statement of the SQL subset against the store and print its result: a SELECT over \
one table (WHERE, GROUP BY, ORDER BY, LIMIT, OFFSET, LATEST ON ... PARTITION BY ..., \
SAMPLE BY ...), or EXPLAIN [ANALYZE] of one, which prints the plan report.

Rows print as an aligned table with a header and a row count; --json prints one document \
{\"columns\": [...], \"rows\": [{column: value}, ...]} (ids and counts as numbers, prices, \
quantities, money and timestamps as exact strings, NULL as null); --csv prints a header \
line and one line per row (NULL as an empty field). Prices, quantities and money print as \
decimals, timestamps as RFC 3339 UTC.

--param VALUE gives the values of $1, $2, ... in order. A value written as a plain number \
(-12, 100.25) is a number; anything else is text (an enumeration name such as buy, a \
timestamp such as 2026-11-26T10:00:00Z, an instrument symbol where an instrument id is \
expected). Either way the value is checked against the column it is compared with.

A statement outside the subset, an unknown table or column, or a value that does not fit \
its column is an error that quotes the statement and underlines the offending part; the \
status is then 1 and nothing is printed on standard output. Queries only read: the store's \
rows are never changed.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// The statement, e.g. "SELECT count(*) FROM trades WHERE instrument = 1".
    #[arg(value_name = "SQL")]
    pub sql: String,

    /// Print the result as one JSON document.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// Print the result as CSV: a header line, then one line per row.
    #[arg(long)]
    pub csv: bool,

    /// The value of the next `$n` parameter: the first --param is $1, the second $2, ...
    #[arg(long = "param", value_name = "VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,
}

/// Runs `query`.
pub fn run(args: &Args) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let prepared = prepare(&store, &args.sql)?;
    let params = operands(&prepared, &args.params)?;
    let mut out = std::io::stdout().lock();
    match prepared.statement() {
        Statement::Explain { analyze, query } => {
            let explain = store
                .explain_query(query.clone(), &params, *analyze)
                .map_err(engine_error)?;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &explain.json)?;
                writeln!(out)?;
            } else if args.csv {
                write_csv(&mut out, &explain.as_result())?;
            } else {
                out.write_all(explain.text.as_bytes())?;
            }
        }
        Statement::Query(_) => {
            let result = store.execute(&prepared, &params).map_err(engine_error)?;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &result.to_json())?;
                writeln!(out)?;
            } else if args.csv {
                write_csv(&mut out, &result)?;
            } else {
                out.write_all(result.to_table().as_bytes())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Parses a statement, with the engine's error (which points at the offending text) shown
/// as [`engine_error`] does.
pub fn prepare(store: &Store, sql: &str) -> Result<Prepared> {
    store.prepare(sql).map_err(engine_error)
}

/// The values of a statement's `$n` parameters, from `--param` values: plain numbers as
/// numbers, anything else as text. More values than the statement has parameters is an
/// error (fewer is one too, reported by the engine when it binds `$n`).
pub fn operands(prepared: &Prepared, values: &[String]) -> Result<Vec<Operand>> {
    let used = match prepared.statement() {
        Statement::Query(q) | Statement::Explain { query: q, .. } => max_param(q),
    };
    if values.len() > used {
        let uses = match used {
            0 => "has no $n parameter".to_owned(),
            1 => "has one parameter ($1)".to_owned(),
            n => format!("has {n} parameters ($1 to ${n})"),
        };
        bail!(
            "{} --param value{} given, but the statement {uses}",
            values.len(),
            if values.len() == 1 { "" } else { "s" }
        );
    }
    Ok(values.iter().map(|v| operand(v)).collect())
}

/// A `--param` value: a number when written as a plain integer or decimal, else text.
pub fn operand(value: &str) -> Operand {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if all_digits(int) && frac.is_none_or(all_digits) {
        Operand::Number(value.to_owned())
    } else {
        Operand::Text(value.to_owned())
    }
}

/// The highest `$n` a query uses (0 when none).
fn max_param(q: &Query) -> usize {
    fn operand(o: &Operand) -> usize {
        match o {
            Operand::Param(n) => *n,
            Operand::Arith { left, right, .. } => operand(left).max(operand(right)),
            _ => 0,
        }
    }
    fn pred(p: &Pred) -> usize {
        match p {
            Pred::True | Pred::False | Pred::IsNull { .. } => 0,
            Pred::Cmp { value, .. } => operand(value),
            Pred::In { values, .. } => values.iter().map(operand).max().unwrap_or(0),
            Pred::Between { low, high, .. } => operand(low).max(operand(high)),
            Pred::And(v) | Pred::Or(v) => v.iter().map(pred).max().unwrap_or(0),
            Pred::Not(p) => pred(p),
        }
    }
    [
        pred(&q.filter),
        q.limit.as_ref().map_or(0, operand),
        q.offset.as_ref().map_or(0, operand),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

/// An engine error for the command line. An error about a statement's text spans lines
/// (the message, where, the statement, a caret line under the offending part): its hint
/// then goes on a line of its own rather than after the carets.
pub fn engine_error(e: tradestore::Error) -> anyhow::Error {
    let full = e.to_string();
    if !e.message().contains('\n') {
        return anyhow::Error::new(e);
    }
    let head = format!("{}: {}", e.heading(), e.message());
    match full.strip_prefix(&head) {
        Some(hint) if !hint.trim().is_empty() => anyhow::anyhow!("{head}\n{}", hint.trim()),
        _ => anyhow::anyhow!("{full}"),
    }
}

/// Writes a result as CSV: the column names, then each row's cells as the table shows
/// them, NULL as an empty field.
pub fn write_csv(out: &mut dyn Write, result: &QueryResult) -> Result<()> {
    // A closed pipe inside csv's error is recognised by `report::is_broken_pipe`.
    let mut w = csv::Writer::from_writer(out);
    w.write_record(result.columns.iter().map(|c| c.name.as_str()))?;
    for (r, row) in result.rows.iter().enumerate() {
        let cells = row.iter().enumerate().map(|(c, v)| {
            if *v == tradestore::schema::Value::Null {
                String::new()
            } else {
                result.cell(r, c)
            }
        });
        w.write_record(cells)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_numbers_and_the_rest_text() {
        for n in ["0", "12", "-3", "100.25", "-0.5"] {
            assert_eq!(operand(n), Operand::Number(n.to_owned()), "{n}");
        }
        for t in [
            "buy",
            "ACME",
            "2026-11-26T10:00:00Z",
            "1e5",
            ".5",
            "5.",
            "-",
            "",
            "1-2",
        ] {
            assert_eq!(operand(t), Operand::Text(t.to_owned()), "{t}");
        }
    }
}
