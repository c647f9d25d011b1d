//! `tradestore analyze`: gather the planner's table statistics and print them.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;
use tradestore::IndexSpec;
use tradestore::query::result::{OutputKind, format_value};
use tradestore::query::stats::TableStats;
use tradestore::schema::{TableId, Value};

use super::store::{StoreDir, open_existing};
use super::table::{self, Align};

/// Gather the query planner's statistics of every table and print them.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Scan every table and gather the statistics the query planner estimates with: the rows, and \
per column the distinct non-null values, the nulls and sampled quantiles (the smallest and \
largest sampled values are shown), and per index the number of distinct prefixes of each \
length (distinct values of its first column, of its first two columns, ...).

The statistics are kept in the store's catalog, so later processes plan with them, and \
plans cached before are made again. A process that has changed more than 1000 rows plus a \
fifth of a table's rows since its statistics were taken analyzes the table again in the \
background when it next queries it.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print the statistics as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `analyze`.
pub fn run(args: &Args) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let stats = store.analyze().context("analyzing the store")?;
    let indexes = store.indexes();
    let mut out = std::io::stdout().lock();
    if args.json {
        let tables: Vec<serde_json::Value> = stats.iter().map(|s| to_json(s, &indexes)).collect();
        serde_json::to_writer_pretty(&mut out, &json!({ "tables": tables }))?;
        writeln!(out)?;
    } else {
        for (i, s) in stats.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write_human(&mut out, s, &indexes)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The indexed columns of an index, by name (empty if it was dropped meanwhile).
fn index_columns(indexes: &[IndexSpec], name: &str) -> Vec<String> {
    indexes
        .iter()
        .find(|s| s.def.name == name)
        .map(|s| s.def.columns.clone())
        .unwrap_or_default()
}

/// A sampled value of a column as the query results show it.
fn shown(table: TableId, column: &str, v: Option<&Value>) -> Option<String> {
    let v = v?;
    Some(match table.column(column) {
        Some(c) => format_value(OutputKind::Column(c.ty), v),
        None => v.to_string(),
    })
}

fn timestamp(ns: u64) -> String {
    super::table::time_ns(ns)
}

fn write_human(out: &mut dyn Write, s: &TableStats, indexes: &[IndexSpec]) -> Result<()> {
    writeln!(
        out,
        "{}: {} row{} (analyzed {})",
        s.table,
        s.rows,
        if s.rows == 1 { "" } else { "s" },
        timestamp(s.analyzed_at_ns)
    )?;
    let rows: Vec<Vec<String>> = s
        .columns
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.distinct.to_string(),
                c.nulls.to_string(),
                shown(s.table, &c.name, c.quantiles.first()).unwrap_or_default(),
                shown(s.table, &c.name, c.quantiles.last()).unwrap_or_default(),
            ]
        })
        .collect();
    table::write(
        out,
        &[
            ("COLUMN", Align::Left),
            ("DISTINCT", Align::Right),
            ("NULLS", Align::Right),
            ("SAMPLED MIN", Align::Left),
            ("SAMPLED MAX", Align::Left),
        ],
        &rows,
    )?;
    if !s.indexes.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = s
            .indexes
            .iter()
            .map(|x| {
                let distinct: Vec<String> = x.distinct.iter().map(u64::to_string).collect();
                vec![
                    x.name.clone(),
                    index_columns(indexes, &x.name).join(", "),
                    distinct.join(" / "),
                ]
            })
            .collect();
        table::write(
            out,
            &[
                ("INDEX", Align::Left),
                ("COLUMNS", Align::Left),
                ("DISTINCT PREFIXES", Align::Left),
            ],
            &rows,
        )?;
    }
    Ok(())
}

fn to_json(s: &TableStats, indexes: &[IndexSpec]) -> serde_json::Value {
    json!({
        "table": s.table.name(),
        "rows": s.rows,
        "analyzed_at": timestamp(s.analyzed_at_ns),
        "columns": s.columns.iter().map(|c| json!({
            "name": c.name,
            "distinct": c.distinct,
            "nulls": c.nulls,
            "sampled_min": shown(s.table, &c.name, c.quantiles.first()),
            "sampled_max": shown(s.table, &c.name, c.quantiles.last()),
        })).collect::<Vec<_>>(),
        "indexes": s.indexes.iter().map(|x| json!({
            "name": x.name,
            "columns": index_columns(indexes, &x.name),
            "distinct_prefixes": x.distinct,
        })).collect::<Vec<_>>(),
    })
}
