//! The executor: runs a [`Plan`] against a read snapshot. Rows stream from the access path
//! through the residual filter (stopping early when a limit was pushed down), then go
//! through latest-row selection, grouping, sorting, offset/limit and projection. Each stage
//! counts its rows and time for `EXPLAIN ANALYZE`.
//!
//! Ordering: `NULL` sorts before every value (first ascending, last descending); rows equal
//! on every ORDER BY key come in primary key order, in the direction of the last key.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

use tradestore_schema::{AnyRecord, ColumnType, TableId, Value, codec};

use super::ast::{AggFunc, GroupKey, Pred, Query, SelectItem};
use super::eval;
use super::plan::{Access, Plan, Scan};
use super::result::{OutputColumn, OutputKind, QueryResult};
use crate::error::{Error, Result};
use crate::keys;
use crate::layout::IndexSpec;
use crate::txn::{IndexScan, ReadOps, ReadTx, Source};

/// A row: the table's column values in column order (columns an index-only scan does not
/// read are `NULL`).
pub type Row = Vec<Value>;

/// What one stage of a plan did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageActual {
    /// The stage.
    pub name: String,
    /// Rows it produced.
    pub rows: u64,
    /// Time spent in it.
    pub time: Duration,
}

/// What running a plan did, stage by stage (access first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actuals {
    /// Rows or index entries the access path read.
    pub examined: u64,
    /// Per stage.
    pub stages: Vec<StageActual>,
}

fn position(table: TableId, column: &str) -> Result<usize> {
    table
        .columns()
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| Error::invalid(format!("table {table} has no column {column:?}")))
}

/// A row read from storage, before the filter decided whether it is kept: the decoded
/// record (turned into a [`Row`] only when kept), or an index-only scan's values.
enum Candidate {
    Record(AnyRecord),
    Values(Row),
}

impl Candidate {
    fn decode(table: TableId, bytes: &[u8]) -> Result<Candidate> {
        Ok(Candidate::Record(codec::decode_any(table, bytes)?))
    }

    /// The value of the column at position `i` of the table.
    fn get_at(&self, i: usize) -> Value {
        match self {
            Candidate::Record(r) => r.column_at(i).unwrap_or(Value::Null),
            Candidate::Values(row) => row.get(i).cloned().unwrap_or(Value::Null),
        }
    }

    fn get(&self, table: TableId, column: &str) -> Value {
        match self {
            Candidate::Record(r) => r.column(column).unwrap_or(Value::Null),
            Candidate::Values(row) => table
                .columns()
                .iter()
                .position(|c| c.name == column)
                .map_or(Value::Null, |i| row[i].clone()),
        }
    }

    /// The row's values; only the columns in `needed` (all when `None`) are read, the
    /// others are `NULL`: nothing after the filter reads them.
    fn into_row(self, table: TableId, needed: Option<&[bool]>) -> Row {
        match self {
            Candidate::Record(r) => (0..table.columns().len())
                .map(|i| {
                    if needed.is_none_or(|n| n.get(i).copied().unwrap_or(true)) {
                        r.column_at(i).unwrap_or(Value::Null)
                    } else {
                        Value::Null
                    }
                })
                .collect(),
            Candidate::Values(row) => row,
        }
    }
}

/// The row an index entry (`key`, `value`) stands for: decoded from the entry when the index
/// keeps rows, else fetched by the primary key that ends the entry's key (`n` is the number
/// of indexed columns). `None` when that row is missing.
fn entry_row(
    tx: &ReadTx,
    table: TableId,
    spec: &IndexSpec,
    n: usize,
    key: &[u8],
    value: &[u8],
) -> Result<Option<Candidate>> {
    if spec.def.covering {
        return Candidate::decode(table, value).map(Some);
    }
    let pk = &key[keys::len_of_values(key, n)?..];
    tx.raw_get(table, pk)?
        .map(|bytes| Candidate::decode(table, &bytes))
        .transpose()
}

fn missing_row(spec: &IndexSpec, table: TableId) -> Error {
    Error::corruption(format!(
        "index {} has an entry for a missing {table} row",
        spec.def.name
    ))
}

/// Runs a plan.
pub fn execute(tx: &ReadTx, plan: &Plan) -> Result<(QueryResult, Actuals)> {
    let q = &plan.query;
    let table = q.table;
    let mut actuals = Actuals::default();
    let t = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let residual = &plan.residual;
    let always = *residual == Pred::True;
    // The columns read after the filter (by sorting, latest-row selection, grouping and
    // projection, and the primary key for ties); `None` for `SELECT *`.
    let needed: Option<Vec<bool>> = super::plan::referenced(q).map(|cols| {
        table
            .columns()
            .iter()
            .map(|c| cols.contains(c.name) || table.primary_key().contains(&c.name))
            .collect()
    });
    let needed = needed.as_deref();
    let keep = |row: &Candidate| -> Result<bool> {
        if always {
            return Ok(true);
        }
        eval::keeps(residual, &|c| row.get(table, c))
    };
    let stop = plan
        .stop_after
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut examined = 0u64;
    // Grouping without LATEST ON folds each kept row as it is read: no row is built.
    let mut streaming = match q.latest {
        None if q.is_aggregate() => Some(Aggregator::new(q)?),
        _ => None,
    };
    let mut folded = 0u64;
    // Rows that nothing reorders or folds after the filter (no sort, LATEST ON or
    // grouping) are built as the projection's columns at once: a full-width row of the
    // table, then a projected copy of it, cost more than reading the rows.
    let direct = if streaming.is_none() && q.latest.is_none() && plan.sort.is_empty() {
        Some(projection(q)?)
    } else {
        None
    };
    let mut emit = |row: Candidate, rows: &mut Vec<Row>| match (streaming.as_mut(), &direct) {
        (Some(agg), _) => {
            folded += 1;
            agg.add(&|i| row.get_at(i));
        }
        (None, Some((_, Some(refs)))) => rows.push(refs.iter().map(|k| k.read(&row)).collect()),
        (None, _) => rows.push(row.into_row(table, needed)),
    };
    match &plan.access {
        Access::Empty => {}
        Access::Get { keys: pks } => {
            for pk in pks {
                examined += 1;
                if let Some(bytes) = tx.raw_get(table, &keys::encode(pk))? {
                    let row = Candidate::decode(table, &bytes)?;
                    if keep(&row)? {
                        emit(row, &mut rows);
                    }
                }
            }
        }
        Access::Scan(scan) => {
            scan_rows(tx, table, scan, &mut examined, &mut |row| {
                if keep(&row)? {
                    emit(row, &mut rows);
                }
                Ok(rows.len() < stop)
            })?;
        }
        Access::LatestSkip {
            index,
            width,
            keys: fixed,
        } => {
            let spec = tx.index(index)?;
            let n = spec.def.columns.len();
            let probe = |key: &[Value], examined: &mut u64| -> Result<Option<Row>> {
                let (start, end) = IndexScan::prefix(key.to_vec()).byte_range();
                let mut found = None;
                let mut err = None;
                tx.raw_range(
                    Source::Index(&spec),
                    (as_ref(&start), as_ref(&end)),
                    true,
                    &mut |k, v| {
                        *examined += 1;
                        let Some(row) = entry_row(tx, table, &spec, n, k, v)? else {
                            err = Some(missing_row(&spec, table));
                            return Ok(false);
                        };
                        if keep(&row)? {
                            found = Some(row.into_row(table, needed));
                            return Ok(false);
                        }
                        Ok(true)
                    },
                )?;
                match err {
                    Some(e) => Err(e),
                    None => Ok(found),
                }
            };
            match fixed {
                Some(list) => {
                    for key in list {
                        if let Some(r) = probe(key, &mut examined)? {
                            rows.push(r);
                        }
                    }
                }
                None => {
                    // Visit every partition key present: seek to the first entry after the
                    // previous key, read its key, probe it.
                    let mut from: Bound<Vec<u8>> = Bound::Unbounded;
                    loop {
                        let mut next: Option<Vec<Value>> = None;
                        tx.raw_range(
                            Source::Index(&spec),
                            (as_ref(&from), Bound::Unbounded),
                            false,
                            &mut |k, _| {
                                let len = keys::len_of_values(k, *width)?;
                                next = Some(keys::decode(&k[..len])?);
                                Ok(false)
                            },
                        )?;
                        let Some(key) = next else { break };
                        examined += 1;
                        if let Some(r) = probe(&key, &mut examined)? {
                            rows.push(r);
                        }
                        match keys::prefix_end(&keys::encode(&key)) {
                            Some(e) => from = Bound::Included(e),
                            None => break,
                        }
                    }
                }
            }
        }
    }
    actuals.examined = examined;
    actuals.stages.push(StageActual {
        name: "access+filter".into(),
        rows: rows.len() as u64 + folded,
        time: t.elapsed(),
    });

    if let Some(l) = &q.latest
        && !matches!(plan.access, Access::LatestSkip { .. })
    {
        let t = Instant::now();
        let ts = position(table, &l.ts)?;
        let parts: Vec<usize> = l
            .partition_by
            .iter()
            .map(|c| position(table, c))
            .collect::<Result<_>>()?;
        let pk: Vec<usize> = table
            .primary_key()
            .iter()
            .map(|c| position(table, c))
            .collect::<Result<_>>()?;
        let mut best: BTreeMap<Vec<Value>, Row> = BTreeMap::new();
        for row in rows {
            let key: Vec<Value> = parts.iter().map(|i| row[*i].clone()).collect();
            let newer = match best.get(&key) {
                None => true,
                Some(b) => {
                    let a = (&row[ts], pk.iter().map(|i| &row[*i]).collect::<Vec<_>>());
                    let c = (&b[ts], pk.iter().map(|i| &b[*i]).collect::<Vec<_>>());
                    a > c
                }
            };
            if newer {
                best.insert(key, row);
            }
        }
        rows = best.into_values().collect();
        actuals.stages.push(StageActual {
            name: "latest".into(),
            rows: rows.len() as u64,
            time: t.elapsed(),
        });
    }

    let t = Instant::now();
    let (columns, mut out) = if q.is_aggregate() {
        let (columns, out) = match streaming.take() {
            Some(agg) => agg.finish()?,
            None => aggregate(q, rows)?,
        };
        actuals.stages.push(StageActual {
            name: "aggregate".into(),
            rows: out.len() as u64,
            time: t.elapsed(),
        });
        let t = Instant::now();
        let mut out = out;
        if !plan.sort.is_empty() {
            let keys = plan
                .sort
                .iter()
                .map(|o| {
                    columns
                        .iter()
                        .position(|c| c.name == o.name)
                        .map(|i| (i, o.desc))
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "ORDER BY {}: an aggregating query orders by its output columns",
                                o.name
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            out.sort_by(|a, b| {
                for (i, desc) in &keys {
                    let o = a[*i].cmp(&b[*i]);
                    if o != Ordering::Equal {
                        return if *desc { o.reverse() } else { o };
                    }
                }
                Ordering::Equal
            });
            actuals.stages.push(StageActual {
                name: "sort".into(),
                rows: out.len() as u64,
                time: t.elapsed(),
            });
        }
        (columns, out)
    } else {
        if !plan.sort.is_empty() {
            let t = Instant::now();
            sort_rows(q, &plan.sort, &mut rows)?;
            actuals.stages.push(StageActual {
                name: "sort".into(),
                rows: rows.len() as u64,
                time: t.elapsed(),
            });
        }
        let t = Instant::now();
        let skip = usize::try_from(plan.offset).unwrap_or(usize::MAX);
        let take = plan
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let rows: Vec<Row> = rows.into_iter().skip(skip).take(take).collect();
        let (columns, out) = match direct {
            Some((columns, _)) => (columns, rows),
            None => project(q, rows)?,
        };
        actuals.stages.push(StageActual {
            name: "limit+project".into(),
            rows: out.len() as u64,
            time: t.elapsed(),
        });
        return Ok((QueryResult { columns, rows: out }, actuals));
    };
    let skip = usize::try_from(plan.offset).unwrap_or(usize::MAX);
    let take = plan
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    out = out.into_iter().skip(skip).take(take).collect();
    Ok((QueryResult { columns, rows: out }, actuals))
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Streams the rows of a range scan to `f` until it returns `false`.
fn scan_rows(
    tx: &ReadTx,
    table: TableId,
    scan: &Scan,
    examined: &mut u64,
    f: &mut dyn FnMut(Candidate) -> Result<bool>,
) -> Result<()> {
    let spec = scan.index.as_ref().map(|n| tx.index(n)).transpose()?;
    let given: Vec<&Vec<Value>> = if scan.reverse {
        scan.prefixes.iter().rev().collect()
    } else {
        scan.prefixes.iter().collect()
    };
    // A skip scan runs the prefixes under each value of the index's first column, found
    // by seeking past the previous one.
    let mut leads: Vec<Option<Value>> = vec![None];
    let mut from: Bound<Vec<u8>> = Bound::Unbounded;
    let cols = table.columns();
    while let Some(lead) = leads.pop() {
        let lead = match (scan.skip, &spec, lead) {
            (true, Some(spec), _) => {
                let mut next: Option<Value> = None;
                tx.raw_range(
                    Source::Index(spec),
                    (as_ref(&from), Bound::Unbounded),
                    false,
                    &mut |k, _| {
                        let len = keys::len_of_values(k, 1)?;
                        next = keys::decode(&k[..len])?.into_iter().next();
                        Ok(false)
                    },
                )?;
                let Some(v) = next else { break };
                *examined += 1;
                if let Some(e) = keys::prefix_end(&keys::encode(std::slice::from_ref(&v))) {
                    from = Bound::Included(e);
                    leads.push(None);
                }
                Some(v)
            }
            _ => None,
        };
        let mut stopped = false;
        for prefix in &given {
            let prefix: Vec<Value> = match &lead {
                Some(v) => std::iter::once(v.clone())
                    .chain(prefix.iter().cloned())
                    .collect(),
                None => (*prefix).clone(),
            };
            if !scan_prefix(tx, table, scan, spec.as_ref(), cols, prefix, examined, f)? {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
    }
    Ok(())
}

/// Scans one prefix of a [`Scan`]; returns whether to go on.
#[expect(
    clippy::too_many_arguments,
    reason = "one scan's pieces, passed down once"
)]
fn scan_prefix(
    tx: &ReadTx,
    table: TableId,
    scan: &Scan,
    spec: Option<&crate::layout::IndexSpec>,
    cols: &[tradestore_schema::Column],
    prefix: Vec<Value>,
    examined: &mut u64,
    f: &mut dyn FnMut(Candidate) -> Result<bool>,
) -> Result<bool> {
    {
        let range = IndexScan {
            prefix,
            lower: scan.lower.clone(),
            upper: scan.upper.clone(),
            reverse: scan.reverse,
            limit: None,
        };
        let (start, end) = range.byte_range();
        let mut go_on = true;
        let mut err = None;
        match spec {
            None => tx.raw_range(
                Source::Table(table),
                (as_ref(&start), as_ref(&end)),
                scan.reverse,
                &mut |_, v| {
                    *examined += 1;
                    go_on = f(Candidate::decode(table, v)?)?;
                    Ok(go_on)
                },
            )?,
            Some(spec) => {
                let n = spec.def.columns.len();
                let key_cols: Vec<usize> = spec
                    .def
                    .columns
                    .iter()
                    .map(String::as_str)
                    .chain(table.primary_key().iter().copied())
                    .map(|c| cols.iter().position(|x| x.name == c).unwrap_or(usize::MAX))
                    .collect();
                tx.raw_range(
                    Source::Index(spec),
                    (as_ref(&start), as_ref(&end)),
                    scan.reverse,
                    &mut |k, v| {
                        *examined += 1;
                        let row = if scan.covering && !spec.def.covering {
                            let mut row = vec![Value::Null; cols.len()];
                            for (i, v) in key_cols.iter().zip(keys::decode(k)?) {
                                if let Some(slot) = row.get_mut(*i) {
                                    *slot = v;
                                }
                            }
                            Candidate::Values(row)
                        } else {
                            match entry_row(tx, table, spec, n, k, v)? {
                                Some(row) => row,
                                None => {
                                    err = Some(missing_row(spec, table));
                                    return Ok(false);
                                }
                            }
                        };
                        go_on = f(row)?;
                        Ok(go_on)
                    },
                )?
            }
        }
        if let Some(e) = err {
            return Err(e);
        }
        Ok(go_on)
    }
}

/// How a sort key or an output column reads a row: a column of the table by its position,
/// or the bucket of a timestamp column.
enum KeyRef {
    Column(usize),
    Bucket(usize, i64),
}

impl KeyRef {
    /// Its value in a full-width row of the table.
    fn value(&self, r: &Row) -> Value {
        match self {
            KeyRef::Column(i) => r[*i].clone(),
            KeyRef::Bucket(i, w) => bucket(&r[*i], *w),
        }
    }

    /// Its value in a row read from storage.
    fn read(&self, r: &Candidate) -> Value {
        match self {
            KeyRef::Column(i) => r.get_at(*i),
            KeyRef::Bucket(i, w) => bucket(&r.get_at(*i), *w),
        }
    }
}

fn sort_rows(q: &Query, order: &[super::ast::OrderKey], rows: &mut [Row]) -> Result<()> {
    let table = q.table;
    let mut keys = Vec::new();
    for o in order {
        let col = super::plan::output_column(q, &o.name);
        let key = match position(table, &col) {
            Ok(i) => KeyRef::Column(i),
            Err(_) => match q.select.iter().find(|s| s.output_name() == o.name) {
                Some(SelectItem::Bucket {
                    column, width_ns, ..
                }) => KeyRef::Bucket(position(table, column)?, *width_ns),
                _ => {
                    return Err(Error::invalid(format!(
                        "ORDER BY {}: no such column",
                        o.name
                    )));
                }
            },
        };
        keys.push((key, o.desc));
    }
    let pk: Vec<usize> = table
        .primary_key()
        .iter()
        .map(|c| position(table, c))
        .collect::<Result<_>>()?;
    let last_desc = order.last().is_some_and(|o| o.desc);
    rows.sort_by(|a, b| {
        for (k, desc) in &keys {
            let o = k.value(a).cmp(&k.value(b));
            if o != Ordering::Equal {
                return if *desc { o.reverse() } else { o };
            }
        }
        let o = pk.iter().map(|i| &a[*i]).cmp(pk.iter().map(|i| &b[*i]));
        if last_desc { o.reverse() } else { o }
    });
    Ok(())
}

/// The start of the bucket of width `w` holding timestamp `v`. The first bucket, whose start
/// lies before the earliest timestamp (1677-09-21), starts at that timestamp instead of
/// wrapping around to the far future.
fn bucket(v: &Value, w: i64) -> Value {
    match v.as_i64() {
        Some(t) if w > 0 => Value::I64(t.div_euclid(w).saturating_mul(w)),
        _ => Value::Null,
    }
}

fn column_kind(table: TableId, column: &str) -> OutputKind {
    table
        .column(column)
        .map_or(OutputKind::Count, |c| OutputKind::Column(c.ty))
}

/// The output columns of a non-aggregating query, and how each reads a row of the table
/// (`None` for `SELECT *`: the row as it is).
fn projection(q: &Query) -> Result<(Vec<OutputColumn>, Option<Vec<KeyRef>>)> {
    let table = q.table;
    if q.select.is_empty() {
        let columns = table
            .columns()
            .iter()
            .map(|c| OutputColumn {
                name: c.name.to_owned(),
                kind: OutputKind::Column(c.ty),
            })
            .collect();
        return Ok((columns, None));
    }
    let mut columns = Vec::new();
    let mut refs = Vec::new();
    for s in &q.select {
        match s {
            SelectItem::Column { name, .. } => {
                refs.push(KeyRef::Column(position(table, name)?));
                columns.push(OutputColumn {
                    name: s.output_name(),
                    kind: column_kind(table, name),
                });
            }
            SelectItem::Bucket {
                column, width_ns, ..
            } => {
                refs.push(KeyRef::Bucket(position(table, column)?, *width_ns));
                columns.push(OutputColumn {
                    name: s.output_name(),
                    kind: OutputKind::Column(ColumnType::Timestamp),
                });
            }
            SelectItem::Agg { .. } => {
                return Err(Error::invalid("aggregates need an aggregating query"));
            }
        }
    }
    Ok((columns, Some(refs)))
}

/// Projects full-width rows of the table onto the query's output columns.
fn project(q: &Query, rows: Vec<Row>) -> Result<(Vec<OutputColumn>, Vec<Row>)> {
    let (columns, refs) = projection(q)?;
    let Some(refs) = refs else {
        return Ok((columns, rows));
    };
    let out = rows
        .into_iter()
        .map(|r| refs.iter().map(|k| k.value(&r)).collect())
        .collect();
    Ok((columns, out))
}

/// An aggregate's running state.
#[derive(Clone, Debug)]
enum Acc {
    Count(u64),
    Sum(i128, bool),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg(i128, u64),
    /// The sum of price × quantity and of quantity; `None` once the first overflowed 128
    /// bits (an error when the result is asked for, never a wrapped answer).
    Vwap(Option<i128>, i128),
}

impl Acc {
    fn new(f: AggFunc) -> Acc {
        match f {
            AggFunc::Count => Acc::Count(0),
            AggFunc::Sum => Acc::Sum(0, false),
            AggFunc::Min => Acc::Min(None),
            AggFunc::Max => Acc::Max(None),
            AggFunc::Avg => Acc::Avg(0, 0),
            AggFunc::Vwap => Acc::Vwap(Some(0), 0),
        }
    }

    fn add(&mut self, a: Option<&Value>, b: Option<&Value>, star: bool) {
        let num = |v: Option<&Value>| {
            v.and_then(|v| match v {
                Value::U64(x) => Some(i128::from(*x)),
                Value::I64(x) => Some(i128::from(*x)),
                _ => None,
            })
        };
        match self {
            Acc::Count(n) => {
                if star || a.is_some_and(|v| *v != Value::Null) {
                    *n += 1;
                }
            }
            Acc::Sum(s, any) => {
                if let Some(x) = num(a) {
                    *s += x;
                    *any = true;
                }
            }
            Acc::Min(m) => {
                if let Some(v) = a.filter(|v| **v != Value::Null)
                    && m.as_ref().is_none_or(|m| v < m)
                {
                    *m = Some(v.clone());
                }
            }
            Acc::Max(m) => {
                if let Some(v) = a.filter(|v| **v != Value::Null)
                    && m.as_ref().is_none_or(|m| v > m)
                {
                    *m = Some(v.clone());
                }
            }
            Acc::Avg(s, n) => {
                if let Some(x) = num(a) {
                    *s += x;
                    *n += 1;
                }
            }
            Acc::Vwap(pq, q) => {
                if let (Some(p), Some(qty)) = (num(a), num(b)) {
                    *pq = pq.and_then(|s| p.checked_mul(qty).and_then(|x| s.checked_add(x)));
                    *q += qty;
                }
            }
        }
    }

    fn finish(&self) -> Result<Value> {
        let fit = |x: i128| {
            i64::try_from(x)
                .map(Value::I64)
                .map_err(|_| Error::invalid("an aggregate's result does not fit in 64 bits"))
        };
        match self {
            Acc::Count(n) => Ok(Value::U64(*n)),
            Acc::Sum(s, any) => {
                if *any {
                    fit(*s)
                } else {
                    Ok(Value::Null)
                }
            }
            Acc::Min(m) | Acc::Max(m) => Ok(m.clone().unwrap_or(Value::Null)),
            Acc::Avg(s, n) => {
                if *n > 0 {
                    fit(s / i128::from(*n))
                } else {
                    Ok(Value::Null)
                }
            }
            Acc::Vwap(pq, q) => match pq {
                None => Err(Error::invalid(
                    "vwap: the sum of price × quantity over these rows does not fit in 128 bits",
                )),
                Some(pq) if *q != 0 => fit(pq / q),
                Some(_) => Ok(Value::Null),
            },
        }
    }
}

/// Where an aggregating query's output column comes from.
enum Item {
    /// The group key at this position.
    Group(usize),
    /// Accumulator `.0` over the columns at `.1` and `.2`; `.3` for `count(*)`.
    Agg(usize, Option<usize>, Option<usize>, bool),
}

/// Groups rows and folds them into their aggregates, one row at a time.
struct Aggregator {
    group_refs: Vec<KeyRef>,
    items: Vec<Item>,
    columns: Vec<OutputColumn>,
    funcs: Vec<AggFunc>,
    groups: BTreeMap<Vec<Value>, Vec<Acc>>,
    global: bool,
}

impl Aggregator {
    fn new(q: &Query) -> Result<Aggregator> {
        let table = q.table;
        let group_refs: Vec<KeyRef> = q
            .group_by
            .iter()
            .map(|g| match g {
                GroupKey::Column(c) => position(table, c).map(KeyRef::Column),
                GroupKey::Bucket { column, width_ns } => {
                    position(table, column).map(|i| KeyRef::Bucket(i, *width_ns))
                }
            })
            .collect::<Result<_>>()?;
        let mut items = Vec::new();
        let mut columns = Vec::new();
        let mut funcs = Vec::new();
        for s in &q.select {
            let name = s.output_name();
            match s {
                SelectItem::Column { name: col, .. } => {
                    let g = q
                        .group_by
                        .iter()
                        .position(|g| matches!(g, GroupKey::Column(c) if c == col))
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "column {col} must be in GROUP BY or inside an aggregate"
                            ))
                        })?;
                    items.push(Item::Group(g));
                    columns.push(OutputColumn {
                        name,
                        kind: column_kind(table, col),
                    });
                }
                SelectItem::Bucket {
                    column, width_ns, ..
                } => {
                    let g = q
                        .group_by
                        .iter()
                        .position(|g| matches!(g, GroupKey::Bucket { column: c, width_ns: w } if c == column && w == width_ns))
                        .ok_or_else(|| Error::invalid(format!("{name} must be in GROUP BY")))?;
                    items.push(Item::Group(g));
                    columns.push(OutputColumn {
                        name,
                        kind: OutputKind::Column(ColumnType::Timestamp),
                    });
                }
                SelectItem::Agg { func, args, .. } => {
                    let a = args.first().map(|c| position(table, c)).transpose()?;
                    let b = args.get(1).map(|c| position(table, c)).transpose()?;
                    let kind = match func {
                        AggFunc::Count => OutputKind::Count,
                        AggFunc::Vwap => OutputKind::Column(ColumnType::Price),
                        _ => args
                            .first()
                            .map_or(OutputKind::Count, |c| column_kind(table, c)),
                    };
                    items.push(Item::Agg(funcs.len(), a, b, args.is_empty()));
                    funcs.push(*func);
                    columns.push(OutputColumn { name, kind });
                }
            }
        }
        Ok(Aggregator {
            group_refs,
            items,
            columns,
            funcs,
            groups: BTreeMap::new(),
            global: q.group_by.is_empty(),
        })
    }

    /// Folds one row, read through `get` (the value at a column position).
    fn add(&mut self, get: &dyn Fn(usize) -> Value) {
        let key: Vec<Value> = self
            .group_refs
            .iter()
            .map(|k| match k {
                KeyRef::Column(i) => get(*i),
                KeyRef::Bucket(i, w) => bucket(&get(*i), *w),
            })
            .collect();
        let funcs = &self.funcs;
        let accs = self
            .groups
            .entry(key)
            .or_insert_with(|| funcs.iter().map(|f| Acc::new(*f)).collect());
        for it in &self.items {
            if let Item::Agg(i, a, b, star) = it {
                let (av, bv) = (a.map(get), b.map(get));
                accs[*i].add(av.as_ref(), bv.as_ref(), *star);
            }
        }
    }

    /// The output columns and one row per group, in group key order (one row over no rows
    /// for an aggregate without GROUP BY).
    fn finish(mut self) -> Result<(Vec<OutputColumn>, Vec<Row>)> {
        if self.groups.is_empty() && self.global {
            let accs = self.funcs.iter().map(|f| Acc::new(*f)).collect();
            self.groups.insert(Vec::new(), accs);
        }
        let mut out = Vec::with_capacity(self.groups.len());
        for (key, accs) in self.groups {
            let mut r = Vec::with_capacity(self.items.len());
            for it in &self.items {
                r.push(match it {
                    Item::Group(g) => key[*g].clone(),
                    Item::Agg(i, ..) => accs[*i].finish()?,
                });
            }
            out.push(r);
        }
        Ok((self.columns, out))
    }
}

fn aggregate(q: &Query, rows: Vec<Row>) -> Result<(Vec<OutputColumn>, Vec<Row>)> {
    let mut agg = Aggregator::new(q)?;
    for row in &rows {
        agg.add(&|i| row.get(i).cloned().unwrap_or(Value::Null));
    }
    agg.finish()
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn buckets_floor_and_never_wrap() {
        let minute = 60_000_000_000;
        assert_eq!(
            bucket(&Value::I64(61_000_000_000), minute),
            Value::I64(minute)
        );
        assert_eq!(bucket(&Value::I64(-1), minute), Value::I64(-minute));
        assert_eq!(bucket(&Value::I64(i64::MIN), minute), Value::I64(i64::MIN));
        assert_eq!(
            bucket(&Value::I64(i64::MAX), minute),
            Value::I64(i64::MAX / minute * minute)
        );
    }
}

#[cfg(test)]
mod aggregate_tests {
    use super::*;

    fn vwap(rows: &[(i64, i64)]) -> Result<Value> {
        let mut acc = Acc::new(AggFunc::Vwap);
        for (p, q) in rows {
            acc.add(Some(&Value::I64(*p)), Some(&Value::I64(*q)), false);
        }
        acc.finish()
    }

    #[test]
    fn vwap_is_exact_or_refused_never_wrapped() -> Result<()> {
        assert_eq!(vwap(&[(10, 1), (20, 3)])?, Value::I64(17));
        assert_eq!(vwap(&[])?, Value::Null);
        // One product of the largest values fits in 128 bits; the sum of three does not.
        let m = i64::MAX;
        assert_eq!(vwap(&[(m, m)])?, Value::I64(m));
        assert_eq!(vwap(&[(m, m), (m, m)])?, Value::I64(m));
        let err = vwap(&[(m, m), (m, m), (m, m)]).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        // Negative prices (spreads) may cancel out; they do not overflow on the way.
        assert_eq!(vwap(&[(-m, m), (m, m)])?, Value::I64(0));
        Ok(())
    }
}
