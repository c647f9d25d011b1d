//! Runs the query benchmark: loads the data set into both engines, checks that they answer
//! every query alike, times each query with the same parameters in each engine, asks
//! tradestore's advisor for an index after the price band ran without one, builds it in
//! both engines and times the price band again, then the aggregates.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use ::tradestore::query::ast::{Operand, Statement};
use ::tradestore::query::plan::describe_access;
use ::tradestore::query::{Prepared, result::QueryResult};
use ::tradestore::schema::Value;
use ::tradestore::{Store, schema::IndexDef};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Statement as SqlStatement, params_from_iter};
use serde::Serialize;

use super::common::{Case, Param, sqlite_text};
use super::data::{self, ACCOUNTS, INSTRUMENTS, ORDERS};
use super::report::{CaseRow, QueryReport, Recommendation};
use crate::Result;
use crate::latency::{Latency, histogram, record_since};

/// How much the query benchmark runs.
#[derive(Clone, Debug, Serialize)]
pub struct QueryPlan {
    /// `quick`, `full` or `tiny`.
    pub name: &'static str,
    /// Trades of the data set.
    pub trades: u64,
    /// Measured executions of each index-served query, per engine.
    pub runs: usize,
    /// Measured executions of each query that reads much of the table, per engine.
    pub scan_runs: usize,
    /// Unmeasured executions before each measured loop, per engine.
    pub warmup: usize,
    /// Parameter lists of each query whose answers are compared between the engines before
    /// it is timed.
    pub checked: usize,
}

impl QueryPlan {
    /// A small data set: the whole run takes well under two minutes in release mode.
    pub fn quick() -> QueryPlan {
        QueryPlan {
            name: "quick",
            trades: 20_000,
            runs: 2_000,
            scan_runs: 200,
            warmup: 20,
            checked: 5,
        }
    }

    /// The default: 200k trades.
    pub fn full() -> QueryPlan {
        QueryPlan {
            name: "full",
            trades: 200_000,
            runs: 10_000,
            scan_runs: 200,
            warmup: 50,
            checked: 5,
        }
    }

    /// Tiny counts for tests.
    pub fn tiny() -> QueryPlan {
        QueryPlan {
            name: "tiny",
            trades: 800,
            runs: 20,
            scan_runs: 5,
            warmup: 2,
            checked: 3,
        }
    }
}

/// A cell as an integer (every column the queries return is one), `None` for null.
fn ts_cell(v: &Value) -> Result<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        v => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("tradestore returned {v}, not an integer").into()),
    }
}

fn sqlite_cell(v: &SqlValue) -> Result<Option<i64>> {
    match v {
        SqlValue::Null => Ok(None),
        SqlValue::Integer(i) => Ok(Some(*i)),
        v => Err(format!("SQLite returned {v:?}, not an integer").into()),
    }
}

/// Every row of a SQLite statement, each column read as an owned value.
fn sqlite_rows(stmt: &mut SqlStatement<'_>, params: &[i64]) -> Result<Vec<Vec<SqlValue>>> {
    let n = stmt.column_count();
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(r.get::<_, SqlValue>(i)?);
        }
        out.push(row);
    }
    Ok(out)
}

/// One query prepared in both engines.
struct Pair<'a> {
    case: Case,
    store: &'a Store,
    prepared: Prepared,
    stmt: SqlStatement<'a>,
}

impl<'a> Pair<'a> {
    fn new(case: Case, store: &'a Store, conn: &'a Connection) -> Result<Pair<'a>> {
        Ok(Pair {
            case,
            store,
            prepared: store.prepare(case.sql())?,
            stmt: conn.prepare(&sqlite_text(case.sql()))?,
        })
    }

    /// Both engines' answers to `params`, rows sorted, as integers: an error if they differ.
    fn check(&mut self, params: &[Param]) -> Result<usize> {
        let ops: Vec<Operand> = params.iter().map(|p| p.operand()).collect();
        let ints = params
            .iter()
            .map(|p| p.sqlite())
            .collect::<Result<Vec<_>>>()?;
        let ts: QueryResult = self.store.execute(&self.prepared, &ops)?;
        let mut ts_rows = ts
            .rows
            .iter()
            .map(|r| r.iter().map(ts_cell).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let mut lite_rows = sqlite_rows(&mut self.stmt, &ints)?
            .iter()
            .map(|r| r.iter().map(sqlite_cell).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        ts_rows.sort_unstable();
        lite_rows.sort_unstable();
        if ts_rows.len() != lite_rows.len() {
            return Err(format!(
                "query {} ({}) with {params:?}: tradestore returned {} rows, SQLite {}",
                self.case.number(),
                self.case.name(),
                ts_rows.len(),
                lite_rows.len()
            )
            .into());
        }
        if let Some((a, b)) = ts_rows.iter().zip(&lite_rows).find(|(a, b)| a != b) {
            return Err(format!(
                "query {} ({}) with {params:?}: tradestore returned the row {a:?} where SQLite \
                 returned {b:?}",
                self.case.number(),
                self.case.name()
            )
            .into());
        }
        Ok(ts_rows.len())
    }

    /// What each engine does for `params`: tradestore's access path, SQLite's query plan.
    fn plans(&self, conn: &Connection, params: &[Param]) -> Result<(String, String)> {
        let ops: Vec<Operand> = params.iter().map(|p| p.operand()).collect();
        let ints = params
            .iter()
            .map(|p| p.sqlite())
            .collect::<Result<Vec<_>>>()?;
        let ts = match self.prepared.statement() {
            Statement::Query(q) => {
                let o = self.store.run_traced(q.clone(), &ops)?;
                describe_access(&o.plan.access)
            }
            Statement::Explain { .. } => String::new(),
        };
        let mut eqp = conn.prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            sqlite_text(self.case.sql())
        ))?;
        let details = eqp
            .query_map(params_from_iter(ints.iter()), |r| r.get::<_, String>(3))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((ts, details.join("; ")))
    }

    /// Times every parameter list in each engine, after `warmup` unmeasured executions in
    /// each. The engines take turns in blocks of a twentieth of the list, so both run under
    /// the same load of the machine. Both must return as many rows in all.
    fn measure(&mut self, params: &[Vec<Param>], warmup: usize) -> Result<(Latency, Latency, f64)> {
        let ops: Vec<Vec<Operand>> = params
            .iter()
            .map(|p| p.iter().map(|v| v.operand()).collect())
            .collect();
        let ints: Vec<Vec<i64>> = params
            .iter()
            .map(|p| p.iter().map(|v| v.sqlite()).collect::<Result<Vec<_>>>())
            .collect::<Result<_>>()?;
        for (p, q) in ops.iter().zip(&ints).take(warmup) {
            black_box(self.store.execute(&self.prepared, p)?);
            black_box(sqlite_rows(&mut self.stmt, q)?);
        }
        let (mut ts_hist, mut lite_hist) = (histogram(), histogram());
        let (mut ts_rows, mut lite_rows) = (0usize, 0usize);
        let block = (params.len() / 20).max(1);
        for (ops, ints) in ops.chunks(block).zip(ints.chunks(block)) {
            for p in ops {
                let start = Instant::now();
                let r = self.store.execute(&self.prepared, p)?;
                record_since(&mut ts_hist, start);
                ts_rows += r.rows.len();
                drop(black_box(r));
            }
            for p in ints {
                let start = Instant::now();
                let r = sqlite_rows(&mut self.stmt, p)?;
                record_since(&mut lite_hist, start);
                lite_rows += r.len();
                drop(black_box(r));
            }
        }
        if ts_rows != lite_rows {
            return Err(format!(
                "query {} ({}): tradestore returned {ts_rows} rows over the timed runs, SQLite \
                 {lite_rows}",
                self.case.number(),
                self.case.name()
            )
            .into());
        }
        let avg = ts_rows as f64 / params.len().max(1) as f64;
        Ok((Latency::of(&ts_hist), Latency::of(&lite_hist), avg))
    }
}

/// Checks, plans and times one case.
fn run_case(
    case: Case,
    index: String,
    store: &Store,
    conn: &Connection,
    trades: &[crate::workload::TradeRow],
    plan: &QueryPlan,
) -> Result<CaseRow> {
    let runs = if case.scans() {
        plan.scan_runs
    } else {
        plan.runs
    };
    let seed = u64::from(case.number()) << 32 | case as u64;
    let params = case.params(trades, runs.max(1), seed);
    let mut pair = Pair::new(case, store, conn)?;
    for p in params.iter().take(plan.checked) {
        pair.check(p)?;
    }
    let (tradestore_plan, sqlite_plan) = match params.first() {
        Some(p) => pair.plans(conn, p)?,
        None => (String::new(), String::new()),
    };
    let (tradestore, sqlite, rows_avg) = pair.measure(&params, plan.warmup)?;
    Ok(CaseRow::new(
        case,
        index,
        rows_avg,
        tradestore,
        sqlite,
        tradestore_plan,
        sqlite_plan,
    ))
}

/// Builds `def` in both engines and analyzes both again; returns the build times in ms.
fn build_index(
    store: &Store,
    conn: &Connection,
    def: &IndexDef,
    reason: &str,
) -> Result<(f64, f64)> {
    let start = Instant::now();
    store.create_index(def.clone(), reason)?;
    let ts_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    conn.execute_batch(&format!(
        "CREATE INDEX {} ON {} ({});",
        def.name,
        def.table.name(),
        def.columns.join(", ")
    ))?;
    let lite_ms = start.elapsed().as_secs_f64() * 1e3;
    store.analyze()?;
    conn.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok((ts_ms, lite_ms))
}

/// Loads the data set of `plan` into tradestore and SQLite under `dir` (in folders of their
/// own, removed afterwards), then measures every [`Case`]. `progress` hears what is being
/// done.
pub fn run_queries(
    dir: &Path,
    plan: &QueryPlan,
    progress: &mut dyn FnMut(&str),
) -> Result<QueryReport> {
    progress(&format!(
        "loading {} trades into tradestore and SQLite ...",
        plan.trades
    ));
    let out = measure_all(dir, plan, progress);
    let _ = std::fs::remove_dir_all(dir.join("tradestore"));
    let _ = std::fs::remove_dir_all(dir.join("sqlite"));
    out
}

fn measure_all(
    dir: &Path,
    plan: &QueryPlan,
    progress: &mut dyn FnMut(&str),
) -> Result<QueryReport> {
    let loaded = data::load(dir, plan.trades)?;
    let (store, conn) = (&loaded.store, &loaded.sqlite.conn);
    let trades = &loaded.data.trades;
    if trades.is_empty() {
        return Err("the data set has no trades".into());
    }
    let mut rows = Vec::new();
    let builtin = |case: Case| -> String {
        match case {
            Case::Recent => "built-in (instrument, ts)".into(),
            Case::AccountWindow => "built-in (account, ts)".into(),
            Case::Positions => "primary key".into(),
            _ => "no index on price".into(),
        }
    };
    for case in [
        Case::Recent,
        Case::AccountWindow,
        Case::Positions,
        Case::PriceBand,
    ] {
        progress(&format!("query {}: {} ...", case.number(), case.name()));
        rows.push(run_case(case, builtin(case), store, conn, trades, plan)?);
    }

    let advice = store.advise_indexes()?;
    let first = advice
        .first()
        .ok_or("tradestore's advisor recommended no index after the workload ran")?;
    progress(&format!(
        "the advisor recommends {} on {}({}): {}",
        first.def.name,
        first.def.table.name(),
        first.def.columns.join(", "),
        first.reason()
    ));
    let reason = format!("query benchmark: {}", first.reason());
    let (ts_ms, lite_ms) = build_index(store, conn, &first.def, &reason)?;
    let recommendation = Recommendation {
        index: first.def.name.clone(),
        table: first.def.table.name().to_owned(),
        columns: first.def.columns.clone(),
        benefit: first.benefit,
        executions: first.executions,
        reason: first.reason(),
        others: advice
            .iter()
            .skip(1)
            .map(|a| format!("{} (benefit {:.0})", a.def.name, a.benefit))
            .collect(),
        tradestore_build_ms: ts_ms,
        sqlite_build_ms: lite_ms,
    };
    let with = format!("recommended ({})", first.def.columns.join(", "));
    let case = Case::PriceBandIndexed;
    progress(&format!(
        "query 4: {} with {} ...",
        case.name(),
        first.def.name
    ));
    rows.push(run_case(case, with, store, conn, trades, plan)?);

    for case in [Case::AggregateWide, Case::AggregateNarrow] {
        progress(&format!("query 5: {} ...", case.name()));
        rows.push(run_case(
            case,
            "no index on ts".into(),
            store,
            conn,
            trades,
            plan,
        )?);
    }

    Ok(QueryReport {
        plan: plan.clone(),
        trades: trades.len() as u64,
        instruments: INSTRUMENTS,
        accounts: ACCOUNTS,
        orders: ORDERS,
        positions: loaded.data.positions.len() as u64,
        tradestore_load_s: loaded.tradestore_load.as_secs_f64(),
        sqlite_load_s: loaded.sqlite_load.as_secs_f64(),
        recommendation,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny run yields one row per case with latencies of both engines (which also means
    /// both engines answered every checked query alike).
    #[test]
    fn tiny_run_measures_every_query_in_both_engines() {
        let dir = tempfile::tempdir().unwrap();
        let report = run_queries(dir.path(), &QueryPlan::tiny(), &mut |_| {}).unwrap();
        let cases: Vec<Case> = report.rows.iter().map(|r| r.case).collect();
        assert_eq!(cases, Case::ALL);
        for r in &report.rows {
            assert!(r.tradestore.count > 0 && r.sqlite.count > 0, "{:?}", r.case);
            assert!(!r.tradestore_plan.is_empty() && !r.sqlite_plan.is_empty());
        }
        assert_eq!(report.recommendation.columns, ["price"]);
        assert!(report.table().contains("trades_by_price"));
        assert!(report.json().contains("\"sqlite_over_tradestore_p50\""));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
