//! The query benchmark's rows, its table and its JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use super::common::Case;
use super::run::QueryPlan;
use crate::latency::Latency;
use crate::report::grid;

/// One measured case: both engines' latencies over the same parameter lists.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRow {
    /// The query's number (1 to 5).
    pub query: u8,
    /// Which case.
    pub case: Case,
    /// The SQL text (`$n` parameters; SQLite ran it with `?n`).
    pub sql: &'static str,
    /// The index the query can use, e.g. `built-in (instrument, ts)` or `none`.
    pub index: String,
    /// Rows returned per execution, on average (the same in both engines).
    pub rows_avg: f64,
    /// tradestore's latency per execution (prepare once, `Store::execute` each time).
    pub tradestore: Latency,
    /// SQLite's latency per execution (prepared statement, every row stepped and read).
    pub sqlite: Latency,
    /// SQLite's p50 over tradestore's: above 1 means tradestore is faster.
    pub sqlite_over_tradestore_p50: f64,
    /// tradestore's access path for the first parameter list.
    pub tradestore_plan: String,
    /// SQLite's `EXPLAIN QUERY PLAN` for the first parameter list.
    pub sqlite_plan: String,
}

impl CaseRow {
    /// A row; the ratio is computed from the latencies.
    pub fn new(
        case: Case,
        index: String,
        rows_avg: f64,
        tradestore: Latency,
        sqlite: Latency,
        tradestore_plan: String,
        sqlite_plan: String,
    ) -> CaseRow {
        let ratio = if tradestore.p50_us > 0.0 {
            sqlite.p50_us / tradestore.p50_us
        } else {
            0.0
        };
        CaseRow {
            query: case.number(),
            case,
            sql: case.sql(),
            index,
            rows_avg,
            tradestore,
            sqlite,
            sqlite_over_tradestore_p50: ratio,
            tradestore_plan,
            sqlite_plan,
        }
    }
}

/// The index tradestore's advisor recommended after the first four queries ran, built in
/// both engines.
#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// Its name.
    pub index: String,
    /// Its table.
    pub table: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// The advisor's estimated benefit (row reads saved over the recorded workload).
    pub benefit: f64,
    /// Recorded executions that would use it.
    pub executions: u64,
    /// The advisor's explanation.
    pub reason: String,
    /// The advisor's other recommendations, with their benefit.
    pub others: Vec<String>,
    /// Time of `Store::create_index` (backfill included), ms.
    pub tradestore_build_ms: f64,
    /// Time of SQLite's `CREATE INDEX`, ms.
    pub sqlite_build_ms: f64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct QueryReport {
    /// The counts used.
    pub plan: QueryPlan,
    /// Trades loaded.
    pub trades: u64,
    /// Instruments of the data set.
    pub instruments: u64,
    /// Accounts of the data set.
    pub accounts: u64,
    /// Orders of the data set (tradestore only; SQLite gets trades and positions).
    pub orders: u64,
    /// Positions the trades left.
    pub positions: u64,
    /// Seconds to record the fills in tradestore and analyze it.
    pub tradestore_load_s: f64,
    /// Seconds to load SQLite, analyze it and checkpoint its log.
    pub sqlite_load_s: f64,
    /// The advisor's first recommendation.
    pub recommendation: Recommendation,
    /// One row per case, in measured order.
    pub rows: Vec<CaseRow>,
}

impl QueryReport {
    /// The report as one JSON document.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| unreachable!("plain structs serialize: {e}"))
    }

    /// The report as aligned text: the latency table, the recommendation and each engine's
    /// plan per query.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "query benchmark ({}): {} trades, {} instruments, {} accounts, {} positions; \
             loaded in tradestore {:.1} s (fills recorded, analyzed), SQLite {:.1} s",
            self.plan.name,
            self.trades,
            self.instruments,
            self.accounts,
            self.positions,
            self.tradestore_load_s,
            self.sqlite_load_s
        );
        out.push('\n');
        let cells: Vec<[String; 10]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.query.to_string(),
                    r.case.name().to_owned(),
                    r.index.clone(),
                    r.tradestore.count.to_string(),
                    format!("{:.1}", r.rows_avg),
                    format!("{:.1}", r.tradestore.p50_us),
                    format!("{:.1}", r.tradestore.p99_us),
                    format!("{:.1}", r.sqlite.p50_us),
                    format!("{:.1}", r.sqlite.p99_us),
                    format!("{:.2}", r.sqlite_over_tradestore_p50),
                ]
            })
            .collect();
        out.push_str(&grid(
            &[
                "#",
                "query",
                "index",
                "runs",
                "rows",
                "ts p50 us",
                "ts p99 us",
                "sqlite p50 us",
                "sqlite p99 us",
                "sqlite/ts p50",
            ],
            &cells,
            3,
        ));
        out.push_str(
            "(ts = tradestore; rows = rows returned per run on average; sqlite/ts p50 > 1 means \
             tradestore is faster)\n\n",
        );
        let rec = &self.recommendation;
        let _ = writeln!(
            out,
            "advisor's first recommendation: {} on {}({}), estimated benefit {:.0} row reads \
             over {} executions; built in {:.0} ms (SQLite CREATE INDEX {:.0} ms)",
            rec.index,
            rec.table,
            rec.columns.join(", "),
            rec.benefit,
            rec.executions,
            rec.tradestore_build_ms,
            rec.sqlite_build_ms
        );
        let _ = writeln!(out, "  {}", rec.reason);
        if !rec.others.is_empty() {
            let _ = writeln!(out, "  other recommendations: {}", rec.others.join(", "));
        }
        out.push_str("\nplans (first parameter list):\n");
        for r in &self.rows {
            let _ = writeln!(out, "  {} {} [{}]", r.query, r.case.name(), r.index);
            let _ = writeln!(out, "      sql:        {}", r.sql);
            let _ = writeln!(out, "      tradestore: {}", r.tradestore_plan);
            let _ = writeln!(out, "      sqlite:     {}", r.sqlite_plan);
        }
        out
    }
}
