//! Query model test: random queries over random data must return exactly what a naive
//! evaluator written here computes from the rows themselves.
//!
//! Each case fills a store with a seeded [`workload`], sometimes adds indexes at run time
//! (`orders(price)`, `trades(price, quantity)`, `trades(side, ts)`, `orders(account,
//! updated_ts)`; `trades(side, ts, quantity)` once a known bug is fixed) and sometimes
//! analyzes it (before or after the index builds, sometimes followed by more writes), so
//! the planner picks different access paths for the same queries. The queries read `orders`, `trades`, `positions` and
//! `cash`: random `WHERE` trees (comparisons, `IN`, `BETWEEN`, `IS [NOT] NULL`, `NOT`,
//! `AND`, `OR`, depth up to 3) over values taken from the data (and their neighbours, the
//! extremes and NULL), `ORDER BY`, `LIMIT`/`OFFSET`, aggregates with `GROUP BY`, and
//! `LATEST ON ... PARTITION BY`. Each is built with the typed builder and run with
//! `run_traced` and `explain_query`; about half are also rendered to SQL text (decimals for
//! prices, quantities and money; instruments sometimes by symbol and timestamps sometimes
//! as RFC 3339 text) and run with `query` and `explain`.
//!
//! The reference reads every row of the table and applies the documented semantics
//! literally: SQL's three-valued logic (a comparison with NULL is unknown, `IN` is a chain
//! of `OR`ed equalities, `BETWEEN` two comparisons), `LATEST ON` keeps the row with the
//! greatest (ts, primary key) per partition key after the filter, aggregates as
//! `engine/src/query/exec.rs` documents them (count(*) rows, count(col) non-null values,
//! sum/avg/min/max over non-null values, avg and vwap truncated toward zero on the raw
//! integers, one row of count 0 and NULLs for an aggregate without `GROUP BY` over no
//! rows), groups in ascending key order, NULL first ascending and last descending, and rows
//! equal on every `ORDER BY` key in primary key order in the direction of the last key.
//! Results are compared exactly where the order is defined, as multisets where it is not.
//! Filters built to be contradictions (`x = a AND x = a + 1` and the like) must be planned
//! as `Access::Empty`.
//!
//! A second test builds indexes online while another thread writes, then checks queries
//! through the new indexes against the same reference. The tests at the end are regressions:
//! each pins one planner bug this model found (ties ordered by an index's other columns, the
//! direction of a fixed last key lost, a latest-row probe breaking ties on extra columns).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as Atomic};
use std::time::Duration;

use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};
use tradestore::query::ast::{
    AggFunc, CmpOp, GroupKey, Operand, Pred, Query, SelectItem, format_timestamp,
};
use tradestore::query::builder::{Builder, col, select};
use tradestore::query::plan::{Access, Choice, describe_access};
use tradestore::{ReadOps, ReadTx, Store};
use tradestore_schema::{
    Account, AccountStatus, Cash, ColumnType, IndexDef, Instrument, Money, Order, OrderKind,
    OrderStatus, Position, Price, Quantity, Record, Side, TableId, TimeInForce, Trade, Value,
};
use tradestore_tests::{ACME, ALPHA, BETA, TempStore, TestResult, seed, workload};

/// A row: the table's column values in column order.
type Row = Vec<Value>;

// ---------------------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------------------

/// Every row of the tables the queries read, as of one snapshot.
struct Data {
    orders: Vec<Row>,
    trades: Vec<Row>,
    positions: Vec<Row>,
    cash: Vec<Row>,
    /// Instrument symbols by id, for SQL text that names instruments by symbol.
    symbols: BTreeMap<u64, String>,
}

fn rows_of<R: Record>(tx: &ReadTx) -> TestResult<Vec<Row>> {
    Ok(tx
        .all::<R>()?
        .into_iter()
        .map(|r| {
            R::TABLE
                .columns()
                .iter()
                .map(|c| r.column(c.name).unwrap_or(Value::Null))
                .collect()
        })
        .collect())
}

impl Data {
    fn read(store: &Store) -> TestResult<Data> {
        let tx = store.read()?;
        Ok(Data {
            orders: rows_of::<Order>(&tx)?,
            trades: rows_of::<Trade>(&tx)?,
            positions: rows_of::<Position>(&tx)?,
            cash: rows_of::<Cash>(&tx)?,
            symbols: tx
                .all::<Instrument>()?
                .into_iter()
                .map(|i| (i.id, i.symbol))
                .collect(),
        })
    }

    fn rows(&self, table: TableId) -> &[Row] {
        match table {
            TableId::Orders => &self.orders,
            TableId::Trades => &self.trades,
            TableId::Positions => &self.positions,
            TableId::Cash => &self.cash,
            _ => &[],
        }
    }
}

/// The tables the queries read.
const TABLES: [TableId; 4] = [
    TableId::Orders,
    TableId::Trades,
    TableId::Positions,
    TableId::Cash,
];

/// The column a filter on "the price" means: the one that may be NULL on orders, the
/// most-varied amount elsewhere.
fn price_column(table: TableId) -> &'static str {
    match table {
        TableId::Orders | TableId::Trades => "price",
        TableId::Positions => "quantity",
        _ => "amount",
    }
}

/// Columns worth grouping by.
fn group_columns(table: TableId) -> &'static [&'static str] {
    match table {
        TableId::Orders => &["account", "instrument", "side", "kind", "status", "price"],
        TableId::Trades => &["instrument", "account", "side", "order_id"],
        TableId::Positions => &["account", "instrument"],
        _ => &["currency", "account"],
    }
}

/// `LATEST ON ts PARTITION BY ...` clauses per table.
fn latest_clauses(table: TableId) -> &'static [(&'static str, &'static [&'static str])] {
    match table {
        TableId::Orders => &[
            ("updated_ts", &["account"]),
            ("updated_ts", &["instrument", "side"]),
            ("created_ts", &["status"]),
        ],
        TableId::Trades => &[
            ("ts", &["instrument"]),
            ("ts", &["account"]),
            ("ts", &["side"]),
        ],
        TableId::Positions => &[
            ("updated_ts", &["account"]),
            ("last_trade_id", &["instrument"]),
        ],
        _ => &[("account", &["currency"])],
    }
}

/// The names an enumeration column accepts.
fn enum_names(table: TableId, column: &str) -> Option<&'static [&'static str]> {
    match (table, column) {
        (TableId::Orders | TableId::Trades, "side") => Some(Side::NAMES),
        (TableId::Orders, "kind") => Some(OrderKind::NAMES),
        (TableId::Orders, "time_in_force") => Some(TimeInForce::NAMES),
        (TableId::Orders, "status") => Some(OrderStatus::NAMES),
        _ => None,
    }
}

fn col_index(table: TableId, name: &str) -> TestResult<usize> {
    table
        .columns()
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| format!("table {table} has no column {name}").into())
}

fn col_type(table: TableId, name: &str) -> TestResult<ColumnType> {
    Ok(table.columns()[col_index(table, name)?].ty)
}

/// Indexes a case may create at run time (bit `i` of [`StoreSpec::indexes`] is entry `i`).
fn extra_indexes() -> Vec<IndexDef> {
    let def = |name: &str, table, cols: &[&str]| IndexDef {
        name: name.to_owned(),
        table,
        columns: cols.iter().map(|c| (*c).to_owned()).collect(),
        unique: false,
        builtin: false,
        covering: false,
    };
    vec![
        def("orders_by_price", TableId::Orders, &["price"]),
        def(
            "trades_by_price_quantity",
            TableId::Trades,
            &["price", "quantity"],
        ),
        def("trades_by_side_ts", TableId::Trades, &["side", "ts"]),
        def(
            "orders_by_account_updated",
            TableId::Orders,
            &["account", "updated_ts"],
        ),
        def(
            "trades_by_side_ts_quantity",
            TableId::Trades,
            &["side", "ts", "quantity"],
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// The reference evaluator
// ---------------------------------------------------------------------------------------

/// SQL comparison of two values: `None` when either is NULL.
fn sql_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::U64(x), Value::I64(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (Value::I64(x), Value::U64(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (Value::U64(x), Value::U64(y)) => Some(x.cmp(y)),
        (Value::I64(x), Value::I64(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        // Never generated: text is only compared with text.
        _ => Some(a.cmp(b)),
    }
}

/// Sort order: NULL before every value.
fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => sql_cmp(a, b).unwrap_or(Ordering::Equal),
    }
}

fn operand(o: &Operand) -> TestResult<&Value> {
    match o {
        Operand::Value(v) => Ok(v),
        other => Err(format!("the model only takes typed values, not {other:?}").into()),
    }
}

fn not3(v: Option<bool>) -> Option<bool> {
    v.map(|b| !b)
}

fn and3(items: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut acc = Some(true);
    for v in items {
        match v {
            Some(false) => return Some(false),
            None => acc = None,
            Some(true) => {}
        }
    }
    acc
}

fn or3(items: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    not3(and3(items.into_iter().map(not3)))
}

/// The truth of `p` for `row` of `table`, in SQL's three-valued logic.
fn truth(p: &Pred, table: TableId, row: &Row) -> TestResult<Option<bool>> {
    let get = |c: &str| -> TestResult<&Value> { Ok(&row[col_index(table, c)?]) };
    Ok(match p {
        Pred::True => Some(true),
        Pred::False => Some(false),
        Pred::Cmp { column, op, value } => {
            sql_cmp(get(column)?, operand(value)?).map(|o| match op {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Ne => o != Ordering::Equal,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
            })
        }
        Pred::In {
            column,
            values,
            negated,
        } => {
            let x = get(column)?;
            let eqs = values
                .iter()
                .map(|v| Ok(sql_cmp(x, operand(v)?).map(|o| o == Ordering::Equal)))
                .collect::<TestResult<Vec<_>>>()?;
            let r = or3(eqs);
            if *negated { not3(r) } else { r }
        }
        Pred::Between {
            column,
            low,
            high,
            negated,
        } => {
            let x = get(column)?;
            let r = and3([
                sql_cmp(x, operand(low)?).map(|o| o != Ordering::Less),
                sql_cmp(x, operand(high)?).map(|o| o != Ordering::Greater),
            ]);
            if *negated { not3(r) } else { r }
        }
        Pred::IsNull { column, negated } => Some((*get(column)? == Value::Null) != *negated),
        Pred::And(v) => and3(
            v.iter()
                .map(|p| truth(p, table, row))
                .collect::<TestResult<Vec<_>>>()?,
        ),
        Pred::Or(v) => or3(v
            .iter()
            .map(|p| truth(p, table, row))
            .collect::<TestResult<Vec<_>>>()?),
        Pred::Not(p) => not3(truth(p, table, row)?),
    })
}

/// How the engine's rows must relate to the reference's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Same rows in the same order.
    Exact,
    /// Same rows in any order (a sub-multiset of the right size under LIMIT/OFFSET).
    Unordered,
    /// Sorted on the ORDER BY keys; rows equal on every key in any order.
    Ties,
}

/// What the reference computes: output names, every output row before OFFSET and LIMIT
/// (in a valid order), and how to compare.
#[derive(Debug)]
struct Expected {
    columns: Vec<String>,
    full: Vec<Row>,
    /// Per row of `full`, its ORDER BY key values (empty without ORDER BY).
    keys: Vec<Row>,
    mode: Mode,
    offset: usize,
    limit: Option<usize>,
    /// Rows the filter kept.
    filtered: usize,
}

fn count_of(o: Option<&Operand>) -> TestResult<Option<usize>> {
    o.map(|o| {
        operand(o)?
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("bad count {o:?}").into())
    })
    .transpose()
}

fn pk_of(table: TableId, row: &Row) -> TestResult<Vec<Value>> {
    table
        .primary_key()
        .iter()
        .map(|c| Ok(row[col_index(table, c)?].clone()))
        .collect()
}

/// An aggregate's value over a group's rows.
fn aggregate(func: AggFunc, args: &[usize], rows: &[&Row]) -> TestResult<Value> {
    let vals = |i: usize| {
        rows.iter()
            .map(move |r| &r[i])
            .filter(|v| **v != Value::Null)
    };
    let num = |v: &Value| -> TestResult<i128> {
        match v {
            Value::I64(x) => Ok(i128::from(*x)),
            Value::U64(x) => Ok(i128::from(*x)),
            other => Err(format!("not a number: {other:?}").into()),
        }
    };
    let fit = |x: i128| -> TestResult<Value> { Ok(Value::I64(i64::try_from(x)?)) };
    let arg = |k: usize| -> TestResult<usize> {
        args.get(k)
            .copied()
            .ok_or_else(|| format!("{func:?} needs argument {k}").into())
    };
    Ok(match func {
        AggFunc::Count if args.is_empty() => Value::U64(rows.len() as u64),
        AggFunc::Count => Value::U64(vals(arg(0)?).count() as u64),
        AggFunc::Sum => {
            let v: Vec<i128> = vals(arg(0)?).map(num).collect::<TestResult<_>>()?;
            if v.is_empty() {
                Value::Null
            } else {
                fit(v.iter().sum())?
            }
        }
        AggFunc::Avg => {
            let v: Vec<i128> = vals(arg(0)?).map(num).collect::<TestResult<_>>()?;
            if v.is_empty() {
                Value::Null
            } else {
                // Integer division truncates toward zero, as documented.
                fit(v.iter().sum::<i128>() / v.len() as i128)?
            }
        }
        AggFunc::Min => vals(arg(0)?)
            .min_by(|a, b| sort_cmp(a, b))
            .cloned()
            .unwrap_or(Value::Null),
        AggFunc::Max => vals(arg(0)?)
            .max_by(|a, b| sort_cmp(a, b))
            .cloned()
            .unwrap_or(Value::Null),
        AggFunc::Vwap => {
            let (p, q) = (arg(0)?, arg(1)?);
            let (mut pq, mut qs) = (0i128, 0i128);
            for r in rows {
                if r[p] != Value::Null && r[q] != Value::Null {
                    pq += num(&r[p])? * num(&r[q])?;
                    qs += num(&r[q])?;
                }
            }
            if qs == 0 { Value::Null } else { fit(pq / qs)? }
        }
    })
}

/// The reference result of a query.
fn model(q: &Query, data: &Data) -> TestResult<Expected> {
    let table = q.table;
    let mut rows: Vec<Row> = Vec::new();
    for r in data.rows(table) {
        if truth(&q.filter, table, r)? == Some(true) {
            rows.push(r.clone());
        }
    }
    let filtered = rows.len();
    if let Some(l) = &q.latest {
        let ts = col_index(table, &l.ts)?;
        let parts = l
            .partition_by
            .iter()
            .map(|c| col_index(table, c))
            .collect::<TestResult<Vec<_>>>()?;
        let mut best: BTreeMap<Vec<Value>, (Vec<Value>, Row)> = BTreeMap::new();
        for r in rows {
            let key: Vec<Value> = parts.iter().map(|i| r[*i].clone()).collect();
            let mut rank = vec![r[ts].clone()];
            rank.extend(pk_of(table, &r)?);
            let newer = best.get(&key).is_none_or(|(b, _)| {
                rank.iter()
                    .zip(b)
                    .map(|(x, y)| sort_cmp(x, y))
                    .find(|o| *o != Ordering::Equal)
                    == Some(Ordering::Greater)
            });
            if newer {
                best.insert(key, (rank, r));
            }
        }
        rows = best.into_values().map(|(_, r)| r).collect();
    }
    let offset = count_of(q.offset.as_ref())?.unwrap_or(0);
    let limit = count_of(q.limit.as_ref())?;
    if q.is_aggregate() {
        let keys = q
            .group_by
            .iter()
            .map(|g| match g {
                GroupKey::Column(c) => col_index(table, c),
                GroupKey::Bucket { .. } => Err("the model does not bucket".into()),
            })
            .collect::<TestResult<Vec<_>>>()?;
        let mut groups: BTreeMap<Vec<Value>, Vec<&Row>> = BTreeMap::new();
        for r in &rows {
            let key = keys.iter().map(|i| r[*i].clone()).collect();
            groups.entry(key).or_default().push(r);
        }
        if groups.is_empty() && q.group_by.is_empty() {
            groups.insert(Vec::new(), Vec::new());
        }
        let mut full = Vec::new();
        for (key, members) in &groups {
            let mut out = Vec::new();
            for s in &q.select {
                out.push(match s {
                    SelectItem::Column { name, .. } => {
                        let g = q
                            .group_by
                            .iter()
                            .position(|g| *g == GroupKey::Column(name.clone()))
                            .ok_or("a selected column is not grouped")?;
                        key[g].clone()
                    }
                    SelectItem::Agg { func, args, .. } => {
                        let args = args
                            .iter()
                            .map(|a| col_index(table, a))
                            .collect::<TestResult<Vec<_>>>()?;
                        aggregate(*func, &args, members)?
                    }
                    SelectItem::Bucket { .. } => return Err("the model does not bucket".into()),
                });
            }
            full.push(out);
        }
        let columns: Vec<String> = q.select.iter().map(SelectItem::output_name).collect();
        // Groups come in ascending key order; ORDER BY leaves groups equal on its keys in
        // an order the documentation does not fix.
        let order = q
            .order_by
            .iter()
            .map(|o| {
                columns
                    .iter()
                    .position(|c| *c == o.name)
                    .map(|i| (i, o.desc))
                    .ok_or_else(|| format!("ORDER BY {}: not an output", o.name).into())
            })
            .collect::<TestResult<Vec<_>>>()?;
        full.sort_by(|a, b| cmp_on(&order, a, b));
        let keys = full.iter().map(|r| key_values(&order, r)).collect();
        let mode = if order.is_empty() {
            Mode::Exact
        } else {
            Mode::Ties
        };
        return Ok(Expected {
            columns,
            full,
            keys,
            mode,
            offset,
            limit,
            filtered,
        });
    }
    let order = q
        .order_by
        .iter()
        .map(|o| Ok((col_index(table, &o.name)?, o.desc)))
        .collect::<TestResult<Vec<_>>>()?;
    let mode = if order.is_empty() {
        Mode::Unordered
    } else {
        let keys = &order;
        let pk = table
            .primary_key()
            .iter()
            .map(|c| col_index(table, c))
            .collect::<TestResult<Vec<_>>>()?;
        let last_desc = q.order_by.last().is_some_and(|o| o.desc);
        rows.sort_by(|a, b| {
            cmp_on(keys, a, b).then_with(|| {
                let o = pk
                    .iter()
                    .map(|i| sort_cmp(&a[*i], &b[*i]))
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal);
                if last_desc { o.reverse() } else { o }
            })
        });
        Mode::Exact
    };
    let keys = rows.iter().map(|r| key_values(&order, r)).collect();
    let (columns, full) = if q.select.is_empty() {
        let names = table.columns().iter().map(|c| c.name.to_owned()).collect();
        (names, rows)
    } else {
        let mut idx = Vec::new();
        let mut names = Vec::new();
        for s in &q.select {
            match s {
                SelectItem::Column { name, .. } => idx.push(col_index(table, name)?),
                _ => return Err("a row query selects columns only".into()),
            }
            names.push(s.output_name());
        }
        let full = rows
            .iter()
            .map(|r| idx.iter().map(|i| r[*i].clone()).collect())
            .collect();
        (names, full)
    };
    Ok(Expected {
        columns,
        full,
        keys,
        mode,
        offset,
        limit,
        filtered,
    })
}

/// The values of a row's sort keys.
fn key_values(keys: &[(usize, bool)], row: &Row) -> Row {
    keys.iter().map(|(i, _)| row[*i].clone()).collect()
}

/// Compares two rows on sort keys (index, descending), NULL first ascending.
fn cmp_on(keys: &[(usize, bool)], a: &Row, b: &Row) -> Ordering {
    for (i, desc) in keys {
        let o = sort_cmp(&a[*i], &b[*i]);
        if o != Ordering::Equal {
            return if *desc { o.reverse() } else { o };
        }
    }
    Ordering::Equal
}

/// Whether `part` is a sub-multiset of `whole`.
fn sub_multiset(part: &[Row], whole: &[Row]) -> bool {
    let mut counts: BTreeMap<&Row, i64> = BTreeMap::new();
    for r in whole {
        *counts.entry(r).or_default() += 1;
    }
    part.iter().all(|r| {
        let c = counts.entry(r).or_default();
        *c -= 1;
        *c >= 0
    })
}

/// Checks the engine's rows against the reference; the error says how they differ.
fn compare(got: &[Row], want: &Expected) -> Result<(), String> {
    let start = want.offset.min(want.full.len());
    let len = want
        .limit
        .unwrap_or(usize::MAX)
        .min(want.full.len() - start);
    let window = &want.full[start..start + len];
    let show = |rows: &[Row]| -> String {
        let mut s: Vec<String> = rows.iter().take(30).map(|r| format!("{r:?}")).collect();
        if rows.len() > 30 {
            s.push(format!("... ({} rows)", rows.len()));
        }
        s.join("\n    ")
    };
    let differ = |why: &str| {
        Err(format!(
            "{why}\n  got ({} rows):\n    {}\n  want ({} rows):\n    {}",
            got.len(),
            show(got),
            window.len(),
            show(window)
        ))
    };
    if got.len() != len {
        return differ("wrong number of rows");
    }
    match &want.mode {
        Mode::Exact => {
            if got != window {
                return differ("different rows or order");
            }
        }
        Mode::Unordered => {
            if want.offset == 0 && want.limit.is_none() {
                let (mut a, mut b) = (got.to_vec(), want.full.clone());
                a.sort();
                b.sort();
                if a != b {
                    return differ("different rows (compared as multisets)");
                }
            } else if !sub_multiset(got, &want.full) {
                return differ("rows that the full result does not have");
            }
        }
        Mode::Ties => {
            // Run by run of rows equal on the keys: the engine's rows at those positions
            // are rows of the whole run (all of it when the window holds all of it).
            let wkeys = &want.keys[start..start + len];
            let mut i = 0;
            while i < len {
                let mut j = i + 1;
                while j < len && wkeys[j] == wkeys[i] {
                    j += 1;
                }
                let run: Vec<Row> = want
                    .full
                    .iter()
                    .zip(&want.keys)
                    .filter(|(_, k)| **k == wkeys[i])
                    .map(|(r, _)| r.clone())
                    .collect();
                if !sub_multiset(&got[i..j], &run) {
                    return differ(&format!(
                        "rows {i}..{j} are not the rows whose ORDER BY keys are {:?}",
                        wkeys[i]
                    ));
                }
                i = j;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Query specifications: abstract, resolved against the data when a case runs
// ---------------------------------------------------------------------------------------

/// A column: the table's price-like column, or any column (index modulo the count).
#[derive(Clone, Copy, Debug)]
enum ColSel {
    Price,
    Any(usize),
}

/// A value compared with a column.
#[derive(Clone, Copy, Debug)]
enum ValSpec {
    /// The column's value in row `row` (modulo the row count), moved by `delta` (the
    /// neighbouring name for enumerations).
    Existing { row: usize, delta: i8 },
    /// One below the smallest or one above the largest value.
    Extreme { high: bool },
    /// NULL.
    Null,
}

#[derive(Clone, Debug)]
enum PredSpec {
    Cmp(ColSel, CmpOp, ValSpec),
    In(ColSel, Vec<ValSpec>, bool),
    /// `column [NOT] BETWEEN low AND high`; the bounds are put in order unless the last flag
    /// says to keep them as drawn.
    Between(ColSel, ValSpec, ValSpec, bool, bool),
    IsNull(ColSel, bool),
    And(Vec<PredSpec>),
    Or(Vec<PredSpec>),
    Not(Box<PredSpec>),
}

/// A condition that no row can meet, added to the filter's conjunction.
#[derive(Clone, Copy, Debug)]
struct ContraSpec {
    col: ColSel,
    kind: u8,
    val: ValSpec,
    /// Written as `NOT (NOT a OR NOT b)`.
    wrap: bool,
}

#[derive(Clone, Copy, Debug)]
enum AggSpec {
    CountStar,
    Count(ColSel),
    Sum(ColSel),
    Avg(ColSel),
    Min(ColSel),
    Max(ColSel),
    Vwap,
}

#[derive(Clone, Debug)]
enum ShapeSpec {
    /// Plain rows: `SELECT *` or some columns, `ORDER BY` columns.
    Rows {
        columns: Option<Vec<usize>>,
        order: Vec<(ColSel, bool)>,
    },
    /// Aggregates: group columns (shown or not), aggregates, `ORDER BY` outputs.
    Agg {
        group: Vec<usize>,
        hide: Vec<bool>,
        aggs: Vec<AggSpec>,
        order: Vec<(usize, bool)>,
    },
}

#[derive(Clone, Debug)]
struct QuerySpec {
    table: usize,
    filter: Option<PredSpec>,
    contra: Option<ContraSpec>,
    shape: ShapeSpec,
    latest: Option<usize>,
    /// With `latest`: also require the first partition column to be one of these values
    /// (so the planner can probe a few partition keys).
    latest_keys: Option<Vec<ValSpec>>,
    limit: Option<u64>,
    offset: Option<u64>,
    /// Also run as SQL text.
    sql: bool,
    /// Instruments by symbol, timestamps as text in that SQL.
    text_literals: bool,
    /// `EXPLAIN ANALYZE` rather than `EXPLAIN`.
    analyze: bool,
}

const OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];

fn col_sel() -> impl Strategy<Value = ColSel> {
    prop_oneof![
        1 => Just(ColSel::Price),
        3 => (0usize..16).prop_map(ColSel::Any),
    ]
}

fn val_spec() -> impl Strategy<Value = ValSpec> {
    prop_oneof![
        14 => (0usize..100_000, -1i8..=1).prop_map(|(row, delta)| ValSpec::Existing { row, delta }),
        1 => any::<bool>().prop_map(|high| ValSpec::Extreme { high }),
        1 => Just(ValSpec::Null),
    ]
}

fn leaf() -> impl Strategy<Value = PredSpec> {
    let list = prop_oneof![1 => vec(val_spec(), 0..1), 6 => vec(val_spec(), 1..5)];
    prop_oneof![
        6 => (col_sel(), proptest::sample::select(OPS.to_vec()), val_spec())
            .prop_map(|(c, op, v)| PredSpec::Cmp(c, op, v)),
        2 => (col_sel(), list, any::<bool>()).prop_map(|(c, v, n)| PredSpec::In(c, v, n)),
        2 => (col_sel(), val_spec(), val_spec(), any::<bool>(), prop::bool::weighted(0.25))
            .prop_map(|(c, lo, hi, n, keep)| PredSpec::Between(c, lo, hi, n, keep)),
        1 => (col_sel(), any::<bool>()).prop_map(|(c, n)| PredSpec::IsNull(c, n)),
    ]
}

fn pred_spec() -> impl Strategy<Value = PredSpec> {
    leaf().prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            3 => vec(inner.clone(), 2..=3).prop_map(PredSpec::And),
            2 => vec(inner.clone(), 2..=3).prop_map(PredSpec::Or),
            1 => inner.prop_map(|p| PredSpec::Not(Box::new(p))),
        ]
    })
}

fn contra_spec() -> impl Strategy<Value = ContraSpec> {
    (col_sel(), 0u8..8, val_spec(), any::<bool>()).prop_map(|(col, kind, val, wrap)| ContraSpec {
        col,
        kind,
        val,
        wrap,
    })
}

fn agg_spec() -> impl Strategy<Value = AggSpec> {
    prop_oneof![
        2 => Just(AggSpec::CountStar),
        1 => col_sel().prop_map(AggSpec::Count),
        1 => col_sel().prop_map(AggSpec::Sum),
        1 => col_sel().prop_map(AggSpec::Avg),
        1 => col_sel().prop_map(AggSpec::Min),
        1 => col_sel().prop_map(AggSpec::Max),
        2 => Just(AggSpec::Vwap),
    ]
}

fn shape_spec() -> impl Strategy<Value = ShapeSpec> {
    let rows = (
        weighted(0.5, vec(0usize..16, 1..=4)),
        vec((col_sel(), any::<bool>()), 0..=2),
    )
        .prop_map(|(columns, order)| ShapeSpec::Rows { columns, order });
    let agg = (
        vec(0usize..8, 0..=2),
        vec(prop::bool::weighted(0.2), 2),
        vec(agg_spec(), 0..=3),
        vec((0usize..8, any::<bool>()), 0..=2),
    )
        .prop_map(|(group, hide, aggs, order)| ShapeSpec::Agg {
            group,
            hide,
            aggs,
            order,
        });
    prop_oneof![3 => rows, 1 => agg]
}

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    (
        prop_oneof![4 => Just(0usize), 4 => Just(1usize), 1 => Just(2usize), 1 => Just(3usize)],
        weighted(0.85, pred_spec()),
        weighted(0.12, contra_spec()),
        shape_spec(),
        weighted(
            0.25,
            (
                0usize..3,
                weighted(0.5, vec(val_spec(), 1..4)),
                prop::bool::weighted(0.4),
            ),
        ),
        weighted(0.3, 0u64..12),
        weighted(0.2, 0u64..6),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(table, filter, contra, shape, latest, limit, offset, sql, text_literals, analyze)| {
                QuerySpec {
                    table,
                    // Latest-row queries without a filter, often: probing each partition key
                    // is then cheap and the planner takes that path.
                    filter: filter.filter(|_| !latest.as_ref().is_some_and(|l| l.2)),
                    contra,
                    shape,
                    latest: latest.as_ref().map(|l| l.0),
                    latest_keys: latest.and_then(|l| l.1),
                    limit,
                    offset,
                    sql,
                    text_literals,
                    analyze,
                }
            },
        )
}

fn column_of(table: TableId, c: ColSel) -> &'static str {
    let cols = table.columns();
    match c {
        ColSel::Price => price_column(table),
        ColSel::Any(i) => cols[i % cols.len()].name,
    }
}

/// A numeric (I64) column for sum and avg.
fn numeric_column(table: TableId, c: ColSel) -> &'static str {
    let cols: Vec<&'static str> = table
        .columns()
        .iter()
        .filter(|c| {
            matches!(
                c.ty,
                ColumnType::Price
                    | ColumnType::Quantity
                    | ColumnType::Money
                    | ColumnType::Timestamp
            )
        })
        .map(|c| c.name)
        .collect();
    match c {
        ColSel::Any(i) if !cols.is_empty() => cols[i % cols.len()],
        _ => price_column(table),
    }
}

fn default_value(table: TableId, column: &str) -> TestResult<Value> {
    Ok(match col_type(table, column)? {
        ColumnType::Id => Value::U64(1),
        ColumnType::Enum => Value::Text(
            enum_names(table, column)
                .and_then(|n| n.first())
                .map_or("buy", |s| *s)
                .to_owned(),
        ),
        ColumnType::Text => Value::Text("USD".into()),
        _ => Value::I64(0),
    })
}

/// `v` moved by `delta`: numbers by `delta`, enumeration names to a neighbouring name,
/// other text to a slightly larger or smaller text.
fn shift(table: TableId, column: &str, v: Value, delta: i64) -> Value {
    match v {
        Value::U64(x) => Value::U64(x.saturating_add_signed(delta)),
        Value::I64(x) => Value::I64(x.saturating_add(delta)),
        Value::Text(s) if delta != 0 => match enum_names(table, column) {
            Some(names) => {
                let n = names.len() as i64;
                let at = names.iter().position(|x| *x == s).unwrap_or(0) as i64;
                let i = usize::try_from((at + delta).rem_euclid(n)).unwrap_or(0);
                Value::Text(names[i].to_owned())
            }
            None if delta > 0 => Value::Text(format!("{s}0")),
            None => {
                let mut s = s;
                s.pop();
                Value::Text(s)
            }
        },
        other => other,
    }
}

fn resolve_value(data: &Data, table: TableId, column: &str, v: ValSpec) -> TestResult<Value> {
    let i = col_index(table, column)?;
    let rows = data.rows(table);
    Ok(match v {
        ValSpec::Null => Value::Null,
        ValSpec::Existing { row, delta } => {
            let base = match rows.get(row % rows.len().max(1)) {
                Some(r) => r[i].clone(),
                None => default_value(table, column)?,
            };
            shift(table, column, base, i64::from(delta))
        }
        ValSpec::Extreme { high } => {
            let present = rows.iter().map(|r| &r[i]).filter(|v| **v != Value::Null);
            let base = if high {
                present.max_by(|a, b| sort_cmp(a, b))
            } else {
                present.min_by(|a, b| sort_cmp(a, b))
            };
            let base = match base {
                Some(v) => v.clone(),
                None => default_value(table, column)?,
            };
            match (enum_names(table, column), high) {
                // Enumerations only take their names: the extremes are the names themselves.
                (Some(names), true) => names.iter().max().map_or(base, |s| (*s).into()),
                (Some(names), false) => names.iter().min().map_or(base, |s| (*s).into()),
                (None, _) => shift(table, column, base, if high { 1 } else { -1 }),
            }
        }
    })
}

fn resolve_pred(data: &Data, table: TableId, p: &PredSpec) -> TestResult<Pred> {
    let value = |c: &str, v: ValSpec| -> TestResult<Operand> {
        Ok(resolve_value(data, table, c, v)?.into())
    };
    Ok(match p {
        PredSpec::Cmp(c, op, v) => {
            let c = column_of(table, *c);
            Pred::Cmp {
                column: c.to_owned(),
                op: *op,
                value: value(c, *v)?,
            }
        }
        PredSpec::In(c, vals, negated) => {
            let c = column_of(table, *c);
            let values = vals
                .iter()
                .map(|v| value(c, *v))
                .collect::<TestResult<Vec<_>>>()?;
            if *negated {
                Pred::In {
                    column: c.to_owned(),
                    values,
                    negated: true,
                }
            } else {
                col(c).is_in(values)
            }
        }
        PredSpec::Between(c, lo, hi, negated, keep) => {
            let c = column_of(table, *c);
            let (mut lo, mut hi) = (value(c, *lo)?, value(c, *hi)?);
            if let (false, Operand::Value(l), Operand::Value(h)) = (keep, &lo, &hi)
                && sql_cmp(l, h) == Some(Ordering::Greater)
            {
                std::mem::swap(&mut lo, &mut hi);
            }
            let p = col(c).between(lo, hi);
            match p {
                Pred::Between {
                    column, low, high, ..
                } => Pred::Between {
                    column,
                    low,
                    high,
                    negated: *negated,
                },
                other => other,
            }
        }
        PredSpec::IsNull(c, negated) => {
            let c = column_of(table, *c);
            if *negated {
                col(c).is_not_null()
            } else {
                col(c).is_null()
            }
        }
        PredSpec::And(v) => {
            let mut it = v.iter();
            let first = it.next().ok_or("empty AND")?;
            let mut p = resolve_pred(data, table, first)?;
            // `Pred::and` appends to an `AND` on the left: keep the tree as generated.
            p = Pred::And(vec![p]);
            for q in it {
                p = p.and(resolve_pred(data, table, q)?);
            }
            p
        }
        PredSpec::Or(v) => {
            let mut it = v.iter();
            let first = it.next().ok_or("empty OR")?;
            let mut p = Pred::Or(vec![resolve_pred(data, table, first)?]);
            for q in it {
                p = p.or(resolve_pred(data, table, q)?);
            }
            p
        }
        PredSpec::Not(p) => resolve_pred(data, table, p)?.negate(),
    })
}

/// The conjuncts of a contradiction, and whether SQL can write it.
fn contradiction(data: &Data, table: TableId, c: ContraSpec) -> TestResult<Vec<Pred>> {
    let name = column_of(table, c.col);
    let column = name.to_owned();
    let a = resolve_value(data, table, name, c.val)?;
    let cmp = |op: CmpOp, v: &Value| Pred::Cmp {
        column: column.clone(),
        op,
        value: Operand::Value(v.clone()),
    };
    let parts = if a == Value::Null {
        // A comparison with NULL is never true.
        vec![cmp(OPS[usize::from(c.kind) % OPS.len()], &a)]
    } else {
        // `b` differs from `a`; for numbers it is `a + 1`.
        let b = shift(table, name, a.clone(), 1);
        let (lo, hi) = if sort_cmp(&a, &b) == Ordering::Less {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        match c.kind {
            0 => vec![cmp(CmpOp::Eq, &a), cmp(CmpOp::Eq, &b)],
            1 => vec![cmp(CmpOp::Gt, &a), cmp(CmpOp::Lt, &a)],
            2 => vec![col(name).between(hi, lo)],
            3 => match a {
                Value::Text(_) => vec![col(name).is_in([a]), cmp(CmpOp::Eq, &b)],
                _ => {
                    let a2 = shift(table, name, a.clone(), 2);
                    vec![col(name).is_in([a, a2]), cmp(CmpOp::Eq, &b)]
                }
            },
            4 => vec![cmp(CmpOp::Ge, &Value::Null)],
            5 => vec![cmp(CmpOp::Ge, &hi), cmp(CmpOp::Le, &lo)],
            6 => vec![Pred::In {
                column: column.clone(),
                values: vec![Operand::Value(a), Operand::Value(Value::Null)],
                negated: true,
            }],
            _ => vec![col(name).is_in(Vec::<Operand>::new())],
        }
    };
    Ok(if c.wrap {
        vec![Pred::Or(parts.into_iter().map(Pred::negate).collect()).negate()]
    } else {
        parts
    })
}

/// A resolved query.
#[derive(Debug)]
struct Built {
    query: Query,
    /// The filter is built to be a contradiction.
    contradiction: bool,
    /// Also run it as SQL text.
    sql: bool,
    /// That text names instruments by symbol and writes timestamps as text.
    text_literals: bool,
    analyze: bool,
}

fn build_query(data: &Data, s: &QuerySpec) -> TestResult<Built> {
    let table = TABLES[s.table % TABLES.len()];
    let mut filter = match &s.filter {
        Some(f) => resolve_pred(data, table, f)?,
        None => Pred::True,
    };
    if let Some(c) = s.contra {
        let parts = contradiction(data, table, c)?;
        filter = match filter {
            Pred::True => Pred::And(parts),
            other => Pred::And(std::iter::once(other).chain(parts).collect()),
        };
    }
    let latest = s.latest.map(|i| {
        let clauses = latest_clauses(table);
        clauses[i % clauses.len()]
    });
    if let (Some((_, parts)), Some(vals)) = (latest, &s.latest_keys) {
        let c = parts[0];
        let values = vals
            .iter()
            .map(|v| resolve_value(data, table, c, *v))
            .collect::<TestResult<Vec<_>>>()?;
        let p = match values.as_slice() {
            [one] => col(c).eq(one.clone()),
            _ => col(c).is_in(values),
        };
        filter = filter.and(p);
    }
    let mut b: Builder = select(table).filter(filter);
    if let Some((ts, parts)) = latest {
        b = b.latest_on(ts, parts.iter().copied());
    }
    match &s.shape {
        ShapeSpec::Rows { columns, order } => {
            if let Some(cols) = columns {
                let all = table.columns();
                let mut names: Vec<&str> = Vec::new();
                for i in cols {
                    let n = all[i % all.len()].name;
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                b = b.columns(names);
            }
            for (c, desc) in order {
                let n = column_of(table, *c);
                b = if *desc {
                    b.order_by_desc(n)
                } else {
                    b.order_by(n)
                };
            }
        }
        ShapeSpec::Agg {
            group,
            hide,
            aggs,
            order,
        } => {
            let gcols = group_columns(table);
            let mut groups: Vec<&str> = Vec::new();
            for i in group {
                let n = gcols[i % gcols.len()];
                if !groups.contains(&n) {
                    groups.push(n);
                }
            }
            let mut items: Vec<SelectItem> = Vec::new();
            for (k, g) in groups.iter().enumerate() {
                if !hide.get(k).copied().unwrap_or(false) {
                    items.push(SelectItem::Column {
                        name: (*g).to_owned(),
                        alias: None,
                    });
                }
            }
            let mut aggs = aggs.clone();
            if aggs.is_empty() && groups.is_empty() {
                aggs.push(AggSpec::CountStar);
            }
            for a in aggs {
                let (func, args): (AggFunc, Vec<&str>) = match a {
                    AggSpec::CountStar => (AggFunc::Count, vec![]),
                    AggSpec::Count(c) => (AggFunc::Count, vec![column_of(table, c)]),
                    AggSpec::Sum(c) => (AggFunc::Sum, vec![numeric_column(table, c)]),
                    AggSpec::Avg(c) => (AggFunc::Avg, vec![numeric_column(table, c)]),
                    AggSpec::Min(c) => (AggFunc::Min, vec![column_of(table, c)]),
                    AggSpec::Max(c) => (AggFunc::Max, vec![column_of(table, c)]),
                    AggSpec::Vwap if table == TableId::Trades => {
                        (AggFunc::Vwap, vec!["price", "quantity"])
                    }
                    AggSpec::Vwap => (AggFunc::Count, vec![]),
                };
                let item = SelectItem::Agg {
                    func,
                    args: args.iter().map(|s| (*s).to_owned()).collect(),
                    alias: None,
                };
                if !items.iter().any(|i| i.output_name() == item.output_name()) {
                    items.push(item);
                }
            }
            if items.is_empty() {
                // Every group column hidden and no aggregate: show the first group column.
                items.push(SelectItem::Column {
                    name: groups.first().map_or("account", |g| *g).to_owned(),
                    alias: None,
                });
            }
            for i in &items {
                b = match i {
                    SelectItem::Column { name, .. } => b.column(name),
                    SelectItem::Agg { func, args, .. } => {
                        b.aggregate(*func, args.iter().map(String::as_str))
                    }
                    SelectItem::Bucket { .. } => b,
                };
            }
            for g in &groups {
                b = b.group_by(g);
            }
            for (i, desc) in order {
                let n = items[i % items.len()].output_name();
                b = if *desc {
                    b.order_by_desc(&n)
                } else {
                    b.order_by(&n)
                };
            }
        }
    }
    if let Some(n) = s.limit {
        b = b.limit(n);
    }
    if let Some(n) = s.offset {
        b = b.offset(n);
    }
    Ok(Built {
        query: b.build(),
        contradiction: s.contra.is_some(),
        sql: s.sql,
        text_literals: s.text_literals,
        analyze: s.analyze,
    })
}

// ---------------------------------------------------------------------------------------
// SQL text
// ---------------------------------------------------------------------------------------

/// How SQL text writes values.
#[derive(Clone, Copy)]
struct Style<'a> {
    /// Instruments by symbol (`instrument = 'ACME'`) and timestamps as RFC 3339 text
    /// (`ts >= '1970-01-01T00:00:00.000001Z'`), rather than as numbers.
    text: Option<&'a BTreeMap<u64, String>>,
}

/// A value as a SQL literal for `column`: decimals for prices, quantities and money.
fn literal(style: Style<'_>, table: TableId, column: &str, v: &Value) -> Option<String> {
    let ty = table.column(column)?.ty;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    if let Some(symbols) = style.text {
        match (v, ty) {
            (Value::U64(id), ColumnType::Id) if column == "instrument" => {
                if let Some(sym) = symbols.get(id) {
                    return Some(quote(sym));
                }
            }
            (Value::I64(ns), ColumnType::Timestamp) if *ns >= 0 => {
                return Some(quote(&format_timestamp(*ns)));
            }
            _ => {}
        }
    }
    Some(match v {
        Value::Null => "NULL".to_owned(),
        Value::U64(x) => x.to_string(),
        Value::Text(s) => quote(s),
        Value::I64(x) => match ty {
            ColumnType::Price => Price(*x).to_string(),
            ColumnType::Quantity => Quantity(*x).to_string(),
            ColumnType::Money => Money(*x).to_string(),
            _ => x.to_string(),
        },
    })
}

fn render_pred(style: Style<'_>, table: TableId, p: &Pred) -> Option<String> {
    let lit = |c: &str, o: &Operand| match o {
        Operand::Value(v) => literal(style, table, c, v),
        _ => None,
    };
    let list = |items: &[Pred], sep: &str| -> Option<String> {
        let parts = items
            .iter()
            .map(|p| render_pred(style, table, p))
            .collect::<Option<Vec<_>>>()?;
        Some(format!("({})", parts.join(sep)))
    };
    Some(match p {
        Pred::True => "TRUE".to_owned(),
        Pred::False => "FALSE".to_owned(),
        Pred::Cmp { column, op, value } => {
            format!("{column} {} {}", op.symbol(), lit(column, value)?)
        }
        Pred::In {
            column,
            values,
            negated,
        } => {
            if values.is_empty() {
                return None;
            }
            let vals = values
                .iter()
                .map(|v| lit(column, v))
                .collect::<Option<Vec<_>>>()?;
            let not = if *negated { "NOT " } else { "" };
            format!("{column} {not}IN ({})", vals.join(", "))
        }
        Pred::Between {
            column,
            low,
            high,
            negated,
        } => {
            let not = if *negated { "NOT " } else { "" };
            format!(
                "{column} {not}BETWEEN {} AND {}",
                lit(column, low)?,
                lit(column, high)?
            )
        }
        Pred::IsNull { column, negated } => {
            format!("{column} IS {}NULL", if *negated { "NOT " } else { "" })
        }
        Pred::And(v) => list(v, " AND ")?,
        Pred::Or(v) => list(v, " OR ")?,
        Pred::Not(p) => format!("NOT ({})", render_pred(style, table, p)?),
    })
}

/// The query as SQL text, when SQL can say it.
fn render_sql(q: &Query, style: Style<'_>) -> Option<String> {
    let t = q.table;
    let mut s = String::from("SELECT ");
    if q.select.is_empty() {
        s.push('*');
    } else {
        let items = q
            .select
            .iter()
            .map(|i| match i {
                SelectItem::Column { name, .. } => Some(name.clone()),
                SelectItem::Agg { .. } => Some(i.output_name()),
                SelectItem::Bucket { .. } => None,
            })
            .collect::<Option<Vec<_>>>()?;
        s.push_str(&items.join(", "));
    }
    s.push_str(&format!(" FROM {t}"));
    if q.filter != Pred::True {
        s.push_str(&format!(" WHERE {}", render_pred(style, t, &q.filter)?));
    }
    if let Some(l) = &q.latest {
        s.push_str(&format!(
            " LATEST ON {} PARTITION BY {}",
            l.ts,
            l.partition_by.join(", ")
        ));
    }
    if !q.group_by.is_empty() {
        let keys = q
            .group_by
            .iter()
            .map(|g| match g {
                GroupKey::Column(c) => Some(c.clone()),
                GroupKey::Bucket { .. } => None,
            })
            .collect::<Option<Vec<_>>>()?;
        s.push_str(&format!(" GROUP BY {}", keys.join(", ")));
    }
    if !q.order_by.is_empty() {
        let keys = q
            .order_by
            .iter()
            .map(|o| {
                let name = if q.is_aggregate() {
                    // By position (`ORDER BY 2 DESC`) or by the item itself
                    // (`ORDER BY count(*) DESC`), alternately.
                    let i = q.select.iter().position(|s| s.output_name() == o.name)?;
                    if (i + q.order_by.len()).is_multiple_of(2) {
                        (i + 1).to_string()
                    } else {
                        o.name.clone()
                    }
                } else {
                    o.name.clone()
                };
                Some(format!("{name}{}", if o.desc { " DESC" } else { "" }))
            })
            .collect::<Option<Vec<_>>>()?;
        s.push_str(&format!(" ORDER BY {}", keys.join(", ")));
    }
    let count = |o: &Option<Operand>| match o {
        Some(Operand::Value(Value::U64(n))) => Some(Some(*n)),
        None => Some(None),
        _ => None,
    };
    if let Some(n) = count(&q.limit)? {
        s.push_str(&format!(" LIMIT {n}"));
    }
    if let Some(n) = count(&q.offset)? {
        s.push_str(&format!(" OFFSET {n}"));
    }
    Some(s)
}

// ---------------------------------------------------------------------------------------
// Running a query both ways
// ---------------------------------------------------------------------------------------

/// What the plans of the checked queries used.
#[derive(Default, Debug)]
struct Seen {
    /// Indexes named by a chosen access path.
    indexes: Vec<String>,
    /// Queries checked, by the first word of their access path.
    accesses: BTreeMap<String, usize>,
    /// Queries that returned rows.
    nonempty: usize,
    /// Queries also run as SQL text.
    sql: usize,
}

fn check_query(store: &Store, data: &Data, b: &Built, seen: &mut Seen) -> TestResult {
    let q = &b.query;
    let style = Style {
        text: b.text_literals.then_some(&data.symbols),
    };
    let sql = render_sql(q, style);
    let shown = sql.clone().unwrap_or_else(|| format!("{q:?}"));
    if std::env::var_os("QUERY_MODEL_SHOW").is_some() {
        // `QUERY_MODEL_SHOW=1 cargo test ... -- --nocapture` prints every query.
        eprintln!("{shown}");
    }
    let want = model(q, data).map_err(|e| format!("model of {shown}: {e}"))?;
    let o = store
        .run_traced(q.clone(), &[])
        .map_err(|e| format!("run_traced {shown}: {e}"))?;
    let plan = format!(
        "{} (why: {}; residual: {}; sort: {:?}; stop after {:?})",
        describe_access(&o.plan.access),
        o.plan.why,
        o.plan.residual,
        o.plan.sort,
        o.plan.stop_after
    );
    let access = describe_access(&o.plan.access);
    let kind = access.split(' ').next().unwrap_or("").to_owned();
    *seen.accesses.entry(kind).or_default() += 1;
    if let Choice::Scan { index: Some(n), .. } | Choice::LatestSkip { index: n } = &o.plan.choice
        && !seen.indexes.contains(n)
    {
        seen.indexes.push(n.clone());
    }
    if !o.result.rows.is_empty() {
        seen.nonempty += 1;
    }
    let names: Vec<&str> = o.result.columns.iter().map(|c| c.name.as_str()).collect();
    if names != want.columns {
        return Err(format!("{shown}: columns {names:?}, want {:?}", want.columns).into());
    }
    compare(&o.result.rows, &want)
        .map_err(|e| format!("builder query {shown}\n  plan {plan}\n  {e}"))?;
    if b.contradiction {
        if want.filtered != 0 {
            return Err(format!("test bug: {shown} is not a contradiction").into());
        }
        if o.plan.access != Access::Empty {
            return Err(format!(
                "{shown}: a contradiction must read nothing, the plan is {plan}; rewritten filter {}",
                o.plan.query.filter
            )
            .into());
        }
    }
    let e = store
        .explain_query(q.clone(), &[], b.analyze)
        .map_err(|e| format!("explain_query {shown}: {e}"))?;
    if e.text.is_empty() || e.json.get("access").is_none() {
        return Err(format!("{shown}: empty EXPLAIN: {}", e.text).into());
    }
    if let (true, Some(sql)) = (b.sql, &sql) {
        seen.sql += 1;
        let r = store.query(sql).map_err(|e| format!("query {sql}: {e}"))?;
        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
        if names != want.columns {
            return Err(format!("SQL {sql}: columns {names:?}, want {:?}", want.columns).into());
        }
        compare(&r.rows, &want).map_err(|e| format!("SQL {sql}\n  plan {plan}\n  {e}"))?;
        let e = store
            .explain(sql, b.analyze)
            .map_err(|e| format!("explain {sql}: {e}"))?;
        let access = e.json.get("access").and_then(|a| a.as_str()).unwrap_or("");
        if b.contradiction && access != describe_access(&Access::Empty) {
            return Err(format!(
                "EXPLAIN {sql}: a contradiction must read nothing:\n{}",
                e.text
            )
            .into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------

/// How a case's store is made.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StoreSpec {
    seed: u64,
    txns: usize,
    /// Bit `i`: create `extra_indexes()[i]`.
    indexes: u8,
    /// 0: never analyzed; 1: analyzed before the index builds; 2: after them.
    analyze: u8,
    /// More writes at the end, so statistics are a little stale.
    more: bool,
}

fn store_spec() -> impl Strategy<Value = StoreSpec> {
    (
        any::<u64>(),
        120usize..=220,
        0u8..32,
        0u8..3,
        prop::bool::weighted(0.3),
    )
        .prop_map(|(seed, txns, indexes, analyze, more)| StoreSpec {
            seed,
            txns,
            indexes,
            analyze,
            more,
        })
}

fn build_store(spec: &StoreSpec) -> TestResult<TempStore> {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, spec.seed, spec.txns)?;
    if spec.analyze == 1 {
        store.analyze()?;
    }
    for (bit, def) in extra_indexes().into_iter().enumerate() {
        if spec.indexes & (1 << bit) != 0 {
            store.create_index(def, "query_model")?;
        }
    }
    if spec.analyze == 2 {
        store.analyze()?;
    }
    if spec.more {
        workload(&store, spec.seed.wrapping_add(1), 20)?;
    }
    Ok(store)
}

thread_local! {
    /// The last case's store: shrinking reruns a case with the same store many times.
    static STORE: RefCell<Option<(StoreSpec, TempStore)>> = const { RefCell::new(None) };
}

fn with_store<T>(spec: &StoreSpec, f: impl FnOnce(&Store) -> TestResult<T>) -> TestResult<T> {
    let cached = STORE.with(|c| c.borrow_mut().take());
    let store = match cached {
        Some((s, store)) if s == *spec => store,
        other => {
            drop(other);
            build_store(spec)?
        }
    };
    let out = f(&store);
    STORE.with(|c| *c.borrow_mut() = Some((spec.clone(), store)));
    out
}

fn run_case(spec: &StoreSpec, queries: &[QuerySpec], seen: &mut Seen) -> TestResult {
    with_store(spec, |store| {
        let data = Data::read(store)?;
        for q in queries {
            let built = build_query(&data, q)?;
            check_query(store, &data, &built, seen)?;
        }
        Ok(())
    })
}

#[test]
fn queries_match_the_naive_model() {
    // `PROPTEST_CASES=1000` for a longer run.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 400,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let seen = RefCell::new(Seen::default());
    let strategy = (store_spec(), vec(query_spec(), 1..=32));
    let result = runner.run(&strategy, |(spec, queries)| {
        run_case(&spec, &queries, &mut seen.borrow_mut())
            .map_err(|e| TestCaseError::fail(e.to_string()))
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
    let seen = seen.into_inner();
    eprintln!("{seen:#?}");
    // The queries are not vacuous: many return rows, and every kind of access path ran.
    let total: usize = seen.accesses.values().sum();
    assert!(seen.nonempty * 3 >= total, "{seen:#?}");
    assert!(seen.sql * 4 >= total, "{seen:#?}");
    // (Latest-row skip scans rarely win on data this small; the online test asks for one.)
    for kind in [
        "Empty",
        "PrimaryKeyLookup",
        "PrimaryKeyRange",
        "FullScan",
        "IndexScan",
        "CoveringIndexScan",
    ] {
        assert!(
            seen.accesses.contains_key(kind),
            "no {kind} plan: {seen:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Online index builds
// ---------------------------------------------------------------------------------------

/// Many limit and market orders on ACME, so an index build backfills in several chunks.
fn bulk_orders(store: &Store, n: u64) -> TestResult {
    let active: Vec<u64> = store
        .read()?
        .all::<Account>()?
        .into_iter()
        .filter(|a| a.status == AccountStatus::Active)
        .map(|a| a.id)
        .collect();
    if active.is_empty() {
        return Err("no active account".into());
    }
    store.write(|tx| {
        for i in 0..n {
            let id = tx.next_id(TableId::Orders)?;
            let account = active[(i as usize) % active.len()];
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let mut o = if i % 9 == 0 {
                tradestore_tests::market(id, account, ACME, side, 1 + (i % 4) as i64)
            } else {
                let px = format!("{}.{:02}", 90 + i % 20, (i * 7) % 100);
                tradestore_tests::limit(id, account, ACME, side, 1 + (i % 4) as i64, &px)
            };
            o.updated_ts = 1000 + (i % 50) as i64;
            tx.insert(&o)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// One seeded workload transaction, retried on the conflicts an index build causes.
fn write_some(store: &Store, seed: u64) -> tradestore::Result<()> {
    for _ in 0..100 {
        match workload(store, seed, 1) {
            Err(e) if e.is_retryable() => std::thread::sleep(Duration::from_millis(1)),
            other => return other,
        }
    }
    Ok(())
}

#[test]
fn queries_through_indexes_built_online_match_the_model() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, 17, 150)?;
    bulk_orders(&store, 5000)?;
    let defs: Vec<IndexDef> = extra_indexes().into_iter().take(4).collect();
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    std::thread::scope(|s| -> TestResult {
        let writer = s.spawn(|| -> tradestore::Result<()> {
            let mut n = 0u64;
            while !stop.load(Atomic::SeqCst) {
                write_some(&store, 10_000 + n)?;
                n += 1;
                written.fetch_add(1, Atomic::SeqCst);
            }
            // And some once every build is done.
            for k in 0..30 {
                write_some(&store, 20_000 + k)?;
            }
            Ok(())
        });
        while written.load(Atomic::SeqCst) < 5 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for d in &defs {
            store.create_index(d.clone(), "query_model online")?;
        }
        stop.store(true, Atomic::SeqCst);
        writer.join().map_err(|_| "writer panicked")??;
        Ok(())
    })?;
    assert!(written.load(Atomic::SeqCst) >= 5);

    let data = Data::read(&store)?;
    let mut seen = Seen::default();
    // Queries each new index serves.
    let price = |k: usize| -> TestResult<Value> {
        let rows = data.rows(TableId::Orders);
        let i = col_index(TableId::Orders, "price")?;
        Ok(rows
            .iter()
            .map(|r| r[i].clone())
            .filter(|v| *v != Value::Null)
            .nth(k)
            .ok_or("no priced order")?)
    };
    let (p1, p2) = (price(10)?, price(20)?);
    let (lo, hi) = if p1 <= p2 { (p1, p2) } else { (p2, p1) };
    let trade_price = data.rows(TableId::Trades).get(3).ok_or("no trades")?
        [col_index(TableId::Trades, "price")?]
    .clone();
    let directed = vec![
        select(TableId::Orders)
            .filter(col("price").eq(lo.clone()))
            .build(),
        select(TableId::Orders)
            .columns(["id", "price"])
            .filter(col("price").between(lo.clone(), hi.clone()))
            .order_by_desc("price")
            .limit(25)
            .build(),
        select(TableId::Orders)
            .filter(col("price").lt(lo.clone()))
            .order_by("price")
            .limit(40)
            .build(),
        select(TableId::Orders)
            .column("price")
            .aggregate(AggFunc::Count, [])
            .filter(col("price").le(hi.clone()).or(col("price").is_null()))
            .group_by("price")
            .build(),
        select(TableId::Trades)
            .columns(["price", "quantity"])
            .filter(col("price").ge(trade_price.clone()))
            .build(),
        select(TableId::Trades)
            .aggregate(AggFunc::Count, [])
            .aggregate(AggFunc::Sum, ["quantity"])
            .filter(col("price").eq(trade_price.clone()))
            .build(),
        select(TableId::Trades).latest_on("ts", ["side"]).build(),
        select(TableId::Trades)
            .latest_on("ts", ["side"])
            .filter(col("price").gt(trade_price.clone()))
            .build(),
        select(TableId::Orders)
            .latest_on("updated_ts", ["account"])
            .filter(col("status").eq(Value::from("new")))
            .build(),
        select(TableId::Orders)
            .latest_on("updated_ts", ["account"])
            .filter(col("account").is_in([ALPHA, BETA]))
            .build(),
        select(TableId::Trades)
            .latest_on("ts", ["instrument"])
            .filter(col("instrument").is_in([1u64, 2]))
            .build(),
        select(TableId::Trades)
            .filter(col("side").eq(Value::from("buy")))
            .order_by_desc("ts")
            .limit(5)
            .build(),
        select(TableId::Orders)
            .filter(col("account").eq(BETA))
            .order_by_desc("updated_ts")
            .limit(5)
            .build(),
    ];
    // The directed queries and random ones, before and after analyzing (with statistics,
    // the latest-row queries on `side` probe its two values through `trades_by_side_ts`).
    let mut runner = TestRunner::deterministic();
    for round in 0..2 {
        if round == 1 {
            store.analyze()?;
        }
        for query in &directed {
            let b = Built {
                query: query.clone(),
                contradiction: false,
                sql: true,
                text_literals: round == 1,
                analyze: true,
            };
            check_query(&store, &data, &b, &mut seen)?;
        }
        for _ in 0..150 {
            let spec = query_spec()
                .new_tree(&mut runner)
                .map_err(|e| format!("generating a query: {e}"))?
                .current();
            let b = build_query(&data, &spec)?;
            check_query(&store, &data, &b, &mut seen)?;
        }
    }
    eprintln!("{seen:#?}");
    assert!(seen.accesses.contains_key("LatestSkipScan"), "{seen:#?}");
    for d in &defs {
        assert!(
            seen.indexes.contains(&d.name),
            "no query used {}; used {:?}",
            d.name,
            seen.indexes
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Regressions: planner bugs the model found, each pinned by a small case.
// ---------------------------------------------------------------------------------------

/// The ids a query returns (its first column).
fn ids(store: &Store, sql: &str) -> TestResult<Vec<Value>> {
    Ok(store
        .query(sql)?
        .rows
        .into_iter()
        .map(|mut r| r.swap_remove(0))
        .collect())
}

/// Regression: `ORDER BY account` served by the built-in index `orders_by_account_status`
/// (key: account, status, id) returns the rows of one account in status order, not in
/// primary key order as documented ("rows equal on all ORDER BY keys come in primary key
/// order in the direction of the last key"). `order_from` in `engine/src/query/plan.rs`
/// accepts any index whose key columns start with the ORDER BY keys, whatever columns
/// follow them before the primary key.
#[test]
fn ties_follow_the_primary_key_not_the_index() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    store.write(|tx| {
        // Orders 1 and 2 of the seed are ALPHA's and new; 4 is rejected, 5 new.
        tx.insert(&tradestore_tests::market(4, BETA, ACME, Side::Buy, 1))?;
        tx.insert(&Order {
            status: OrderStatus::Rejected,
            ..tradestore_tests::limit(5, ALPHA, ACME, Side::Buy, 1, "100")
        })?;
        tx.insert(&tradestore_tests::limit(
            6,
            ALPHA,
            ACME,
            Side::Buy,
            1,
            "100",
        ))?;
        // Enough other rows that reading 4 index entries beats sorting the table.
        for id in 7..80 {
            tx.insert(&tradestore_tests::limit(
                id,
                BETA,
                ACME,
                Side::Sell,
                1,
                "101",
            ))?;
        }
        Ok(())
    })?;
    let sql = "SELECT id FROM orders ORDER BY account LIMIT 4";
    let plan = store.explain(sql, false)?.text;
    let want: Vec<Value> = [1u64, 2, 5, 6].into_iter().map(Value::U64).collect();
    assert_eq!(ids(&store, sql)?, want, "{sql}\n{plan}");
    Ok(())
}

/// Regression: in `SELECT id FROM orders WHERE account = 1 ORDER BY account DESC` every row
/// ties on the only ORDER BY key, so they must come in descending primary key order; they
/// come ascending. Likewise `... ORDER BY status, account DESC` through the index
/// `orders_by_account_status` gives rows of one status in ascending id order. In
/// `engine/src/query/plan.rs`, `effective_order` drops the ORDER BY keys the filter fixes to
/// one value, `build` then finds the access path ordered (trivially, or by the index) and
/// clears `plan.sort`, and the scan direction comes from the first remaining key: the
/// direction of the dropped last key, which decides the order of ties, is lost.
#[test]
fn ties_follow_the_direction_of_a_fixed_last_key() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    // ALPHA's orders 1 and 2 are both new limit orders.
    let mut wrong = Vec::new();
    for sql in [
        "SELECT id FROM orders WHERE account = 1 ORDER BY account DESC",
        "SELECT id FROM orders WHERE account = 1 ORDER BY status, account DESC",
    ] {
        let want: Vec<Value> = [2u64, 1].into_iter().map(Value::U64).collect();
        let got = ids(&store, sql)?;
        if got != want {
            let plan = store.explain(sql, false)?.text;
            wrong.push(format!("{sql}: got {got:?}, want {want:?}\n{plan}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}

/// Regression: `LATEST ON ts PARTITION BY side` through an index on `(side, ts, quantity)`
/// keeps, among the rows sharing the greatest `ts`, the one with the greatest quantity
/// instead of the one with the greatest primary key. `latest_index` in
/// `engine/src/query/plan.rs` accepts an index with any columns after the timestamp, and
/// the `LatestSkip` probe in `engine/src/query/exec.rs` takes the first passing row of a
/// backwards scan, which is in (ts, quantity, id) order.
#[test]
fn latest_skip_ties_follow_the_primary_key() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    store.write(|tx| {
        let big = tradestore_tests::limit(10, ALPHA, ACME, Side::Buy, 1000, "100");
        tx.insert(&big)?;
        for id in 1..=40 {
            tx.record_fill(&tradestore_tests::fill(id, &big, 1, "100", "0", id as i64))?;
        }
        // Two fills at the same, greatest time: trade 42 is the latest by (ts, id).
        tx.record_fill(&tradestore_tests::fill(41, &big, 5, "100", "0", 100))?;
        tx.record_fill(&tradestore_tests::fill(42, &big, 1, "100", "0", 100))?;
        Ok(())
    })?;
    store.create_index(
        IndexDef {
            name: "trades_by_side_ts_quantity".into(),
            table: TableId::Trades,
            columns: vec!["side".into(), "ts".into(), "quantity".into()],
            unique: false,
            builtin: false,
            covering: false,
        },
        "test",
    )?;
    let sql = "SELECT * FROM trades WHERE side = 'buy' LATEST ON ts PARTITION BY side";
    let plan = store.explain(sql, false)?.text;
    assert_eq!(ids(&store, sql)?, vec![Value::U64(42)], "{sql}\n{plan}");
    Ok(())
}
