//! The query engine of an open store: parse, bind, rewrite, plan (through the plan cache),
//! execute, and record the workload for the index manager. Also `analyze`, `EXPLAIN` and
//! the index manager's review cycle (run by a background thread in auto mode).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::{Mutex, RwLock};
use redb::{Durability, ReadableDatabase};
use serde::Serialize;
use serde_json::json;
use tradestore_schema::{Instrument, TableId, Value};

use super::advisor::{Advice, ShapeStats, TableInfo, Workload};
use super::ast::{Operand, Pred, Query, Statement};
use super::bind::bind;
use super::exec::{Actuals, execute};
use super::plan::{self, Access, Choice, Context, Plan, describe_access};
use super::result::{OutputColumn, OutputKind, QueryResult};
use super::rewrite::{Fired, rewrite};
use super::stats::{TableStats, analyze_table};
use crate::catalog::{self, IndexDecision};
use crate::commit::Shared;
use crate::error::Result;
use crate::index::now_ns;
use crate::layout::IndexSpec;
use crate::store::Store;
use crate::txn::{IndexScan, ReadOps, ReadTx};

/// A table's statistics with the change count they were taken at.
struct StatsEntry {
    stats: Arc<TableStats>,
    changes_at: u64,
}

/// A cached access path choice, valid while the index list and statistics are unchanged.
struct Cached {
    choice: Choice,
    index_gen: u64,
    stats_gen: u64,
    /// Rows the filter was estimated to keep when the path was chosen.
    filtered: f64,
}

/// How far the rows the filter keeps (estimated for the new values) may stray from the
/// estimate the cached path was chosen for before the query is planned again: literals of
/// one shape can select a handful of rows or nearly all of them.
const REPLAN_FACTOR: f64 = 10.0;

/// Counters of the plan cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanCacheStats {
    /// Plans found in the cache.
    pub hits: u64,
    /// Plans made.
    pub misses: u64,
    /// Plans held.
    pub entries: u64,
    /// Plans held at most.
    pub capacity: u64,
}

/// The query engine's state, shared by the store handle and the index manager thread.
pub(crate) struct QueryEngine {
    cache: Mutex<LruCache<String, Cached>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    stats: RwLock<HashMap<TableId, StatsEntry>>,
    stats_loaded: Mutex<bool>,
    stats_gen: AtomicU64,
    refreshing: Mutex<HashSet<TableId>>,
    /// Background re-analyses, joined when the store closes.
    analyzers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    workload: Mutex<Workload>,
    /// Set when a query is recorded; cleared when the workload is saved.
    workload_dirty: std::sync::atomic::AtomicBool,
    index_use: Mutex<HashMap<String, Instant>>,
    /// Latency (us) per query shape, for the metrics; at most `MAX_SHAPE_HISTOGRAMS`
    /// shapes, the rest counted under `other`.
    shape_latency: Mutex<HashMap<String, hdrhistogram::Histogram<u64>>>,
    opened: Instant,
}

/// Query shapes with their own latency histogram in the metrics.
const MAX_SHAPE_HISTOGRAMS: usize = 32;

impl QueryEngine {
    /// Copies of the per-shape latency histograms (us).
    pub(crate) fn shape_latencies(&self) -> Vec<(String, hdrhistogram::Histogram<u64>)> {
        let mut v: Vec<_> = self
            .shape_latency
            .lock()
            .iter()
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Plan cache hits and misses.
    pub(crate) fn cache_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Waits for background analyses (the store is closing).
    pub(crate) fn join_background(&self) {
        let threads: Vec<_> = self.analyzers.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    pub(crate) fn new(capacity: u64) -> QueryEngine {
        let capacity = usize::try_from(capacity).unwrap_or(1).max(1);
        QueryEngine {
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::MIN.saturating_add(capacity - 1),
            )),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stats: RwLock::new(HashMap::new()),
            stats_loaded: Mutex::new(false),
            stats_gen: AtomicU64::new(0),
            refreshing: Mutex::new(HashSet::new()),
            analyzers: Mutex::new(Vec::new()),
            workload: Mutex::new(Workload::default()),
            workload_dirty: std::sync::atomic::AtomicBool::new(false),
            index_use: Mutex::new(HashMap::new()),
            shape_latency: Mutex::new(HashMap::new()),
            opened: Instant::now(),
        }
    }
}

/// Everything one execution did: the result, the plan, the rewrites and the actuals.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The rows.
    pub result: QueryResult,
    /// The plan run.
    pub plan: Plan,
    /// Rewrite rules that fired.
    pub rewrites: Vec<Fired>,
    /// Whether the access path came from the plan cache.
    pub cache_hit: bool,
    /// What each stage did.
    pub actuals: Actuals,
    /// Wall time of planning and execution.
    pub elapsed: Duration,
}

/// A parsed query ready to run many times with different `$n` parameters.
#[derive(Clone, Debug)]
pub struct Prepared {
    statement: Statement,
}

impl Prepared {
    /// The parsed statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }
}

/// The shape of a bound, rewritten query with every value replaced by `?`: the plan
/// cache's key.
pub fn normalized_shape(q: &Query) -> String {
    fn pred(p: &Pred, out: &mut String) {
        match p {
            Pred::True => out.push_str("TRUE"),
            Pred::False => out.push_str("FALSE"),
            Pred::Cmp { column, op, .. } => out.push_str(&format!("{column}{}?", op.symbol())),
            Pred::In {
                column,
                values,
                negated,
            } => out.push_str(&format!(
                "{column}{}IN({})",
                if *negated { " NOT " } else { " " },
                vec!["?"; values.len()].join(",")
            )),
            Pred::Between {
                column, negated, ..
            } => {
                out.push_str(&format!(
                    "{column}{}BETWEEN ? AND ?",
                    if *negated { " NOT " } else { " " }
                ));
            }
            Pred::IsNull { column, negated } => {
                out.push_str(&format!(
                    "{column} IS{} NULL",
                    if *negated { " NOT" } else { "" }
                ));
            }
            Pred::And(v) | Pred::Or(v) => {
                out.push('(');
                for (i, p) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(if matches!(p, Pred::And(_)) {
                            " AND "
                        } else {
                            " & "
                        });
                    }
                    pred(p, out);
                }
                out.push(')');
                if matches!(p, Pred::Or(_)) {
                    out.push_str("|OR");
                }
            }
            Pred::Not(p) => {
                out.push_str("NOT ");
                pred(p, out);
            }
        }
    }
    let mut s = format!("SELECT {:?} FROM {} WHERE ", q.select, q.table);
    pred(&q.filter, &mut s);
    s.push_str(&format!(
        " GROUP {:?} ORDER {:?} LATEST {:?} LIMIT {} OFFSET {}",
        q.group_by,
        q.order_by,
        q.latest,
        if q.limit.is_some() { "?" } else { "-" },
        if q.offset.is_some() { "?" } else { "-" }
    ));
    s
}

fn uses_index(choice: &Choice) -> Option<&str> {
    match choice {
        Choice::Scan { index: Some(n), .. }
        | Choice::SkipScan { index: n }
        | Choice::LatestSkip { index: n } => Some(n),
        _ => None,
    }
}

/// The catalog key of the recorded workload.
const WORKLOAD_KEY: &str = "workload";

impl QueryEngine {
    /// Adds the workload recorded by earlier processes (kept in the catalog).
    pub(crate) fn load_workload(&self, shared: &Shared) -> Result<()> {
        let txn = shared.db.begin_read()?;
        if let Some(saved) = catalog::get_json::<Vec<ShapeStats>>(&txn, WORKLOAD_KEY)? {
            self.workload.lock().merge(saved);
        }
        Ok(())
    }

    /// Keeps the recorded workload in the catalog, for `tradestore index advise` and the
    /// next process.
    pub(crate) fn save_workload(&self, shared: &Shared) -> Result<()> {
        if !self.workload_dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let shapes = self.workload.lock().shapes();
        let mut txn = shared.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        catalog::put_json(&txn, WORKLOAD_KEY, &shapes)?;
        shared.commit_redb(txn, None)?;
        Ok(())
    }
}

/// Loads the statistics kept in the catalog, once.
fn load_stats(shared: &Shared, qe: &QueryEngine) -> Result<()> {
    let mut loaded = qe.stats_loaded.lock();
    if *loaded {
        return Ok(());
    }
    let txn = shared.db.begin_read()?;
    let all: Vec<TableStats> = catalog::scan_json(&txn, "stats/")?;
    let mut map = qe.stats.write();
    for mut s in all {
        s.retype();
        map.entry(s.table).or_insert(StatsEntry {
            stats: Arc::new(s),
            changes_at: 0,
        });
    }
    *loaded = true;
    Ok(())
}

/// Analyzes a table and keeps the result in the catalog and the engine.
fn analyze_one(shared: &Shared, qe: &QueryEngine, table: TableId) -> Result<Arc<TableStats>> {
    let changes_at = shared.row_changes[table as usize].load(Ordering::Relaxed);
    let tx = ReadTx::new(shared.snapshot()?);
    let indexes: Vec<IndexSpec> = tx.indexes().iter().filter(|s| s.ready).cloned().collect();
    let stats = analyze_table(&tx, table, &indexes, now_ns())?;
    drop(tx);
    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    catalog::put_json(&txn, &format!("stats/{}", table.name()), &stats)?;
    shared.commit_redb(txn, None)?;
    let stats = Arc::new(stats);
    qe.stats.write().insert(
        table,
        StatsEntry {
            stats: Arc::clone(&stats),
            changes_at,
        },
    );
    qe.stats_gen.fetch_add(1, Ordering::SeqCst);
    Ok(stats)
}

/// The statistics of a table; starts a background refresh when they are stale (the table
/// changed by more than a fifth of its rows since).
fn stats_for(
    shared: &Arc<Shared>,
    qe: &Arc<QueryEngine>,
    table: TableId,
    rows: u64,
) -> Option<Arc<TableStats>> {
    let _ = load_stats(shared, qe);
    let entry = qe
        .stats
        .read()
        .get(&table)
        .map(|e| (Arc::clone(&e.stats), e.changes_at));
    let (stats, at) = entry?;
    let changed = shared.row_changes[table as usize]
        .load(Ordering::Relaxed)
        .saturating_sub(at);
    if changed > 1000 + rows.max(stats.rows) / 5 && qe.refreshing.lock().insert(table) {
        let (s, q) = (Arc::clone(shared), Arc::clone(qe));
        let spawned = std::thread::Builder::new()
            .name("tradestore-analyze".into())
            .spawn(move || {
                // A failed refresh keeps the old statistics; the next query retries.
                let _ = analyze_one(&s, &q, table);
                q.refreshing.lock().remove(&table);
            });
        match spawned {
            Ok(h) => {
                let mut threads = qe.analyzers.lock();
                threads.retain(|t| !t.is_finished());
                threads.push(h);
            }
            Err(_) => {
                qe.refreshing.lock().remove(&table);
            }
        }
    }
    Some(stats)
}

/// Plans (through the cache) and runs a bound query.
fn run_query(
    shared: &Arc<Shared>,
    qe: &Arc<QueryEngine>,
    query: Query,
    params: &[Operand],
) -> Result<Outcome> {
    let started = Instant::now();
    let tx = ReadTx::new(shared.snapshot()?);
    let lookup = |symbol: &str| -> Result<Option<u64>> {
        let found: Vec<Instrument> = tx.index_scan(
            "instruments_by_symbol",
            &IndexScan::prefix([Value::Text(symbol.to_owned())]).limit(1),
        )?;
        Ok(found.first().map(|i| i.id))
    };
    let mut q = bind(query, params, &lookup)?;
    let now = i64::try_from(now_ns()).unwrap_or(i64::MAX);
    let rw = rewrite(std::mem::replace(&mut q.filter, Pred::True), now)?;
    q.filter = rw.pred;
    let table = q.table;
    let rows = tx.approx_count(table)?;
    let stats = stats_for(shared, qe, table, rows);
    let indexes: Vec<IndexSpec> = tx
        .indexes()
        .iter()
        .filter(|s| s.ready && s.def.table == table)
        .cloned()
        .collect();
    let ctx = Context {
        rows,
        stats: stats.as_deref(),
        indexes: &indexes,
    };
    let key = normalized_shape(&q);
    let (index_gen, stats_gen) = (
        shared.index_gen.load(Ordering::SeqCst),
        qe.stats_gen.load(Ordering::SeqCst),
    );
    let cached = {
        let mut cache = qe.cache.lock();
        match cache.get(&key) {
            Some(c) if c.index_gen == index_gen && c.stats_gen == stats_gen => {
                Some((c.choice.clone(), c.filtered))
            }
            _ => None,
        }
    };
    let reused = cached.and_then(|(choice, was)| {
        let p = plan::build(&q, &choice, &ctx);
        let now = p.estimate.filtered.max(1.0);
        let was = was.max(1.0);
        (now / was <= REPLAN_FACTOR && was / now <= REPLAN_FACTOR).then_some(p)
    });
    let (plan, cache_hit) = match reused {
        Some(mut p) => {
            qe.hits.fetch_add(1, Ordering::Relaxed);
            p.why.push_str(" (plan cache hit)");
            (p, true)
        }
        None => {
            qe.misses.fetch_add(1, Ordering::Relaxed);
            let p = plan::plan(&q, &ctx);
            qe.cache.lock().put(
                key,
                Cached {
                    choice: p.choice.clone(),
                    index_gen,
                    stats_gen,
                    filtered: p.estimate.filtered,
                },
            );
            (p, false)
        }
    };
    let (result, actuals) = execute(&tx, &plan)?;
    let elapsed = started.elapsed();
    if let Some(name) = uses_index(&plan.choice) {
        qe.index_use.lock().insert(name.to_owned(), Instant::now());
    }
    let shape = super::advisor::shape_of(&plan.query);
    {
        let mut h = qe.shape_latency.lock();
        let key = if h.contains_key(&shape) || h.len() < MAX_SHAPE_HISTOGRAMS {
            shape.clone()
        } else {
            "other".to_owned()
        };
        let us = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        h.entry(key)
            .or_insert_with(crate::stats::histogram)
            .saturating_record(us);
    }
    qe.workload_dirty.store(true, Ordering::SeqCst);
    qe.workload.lock().record(
        shape,
        &plan.query,
        &describe_access(&plan.access),
        actuals.examined,
        result.rows.len() as u64,
        elapsed,
    );
    Ok(Outcome {
        result,
        plan,
        rewrites: rw.fired,
        cache_hit,
        actuals,
        elapsed,
    })
}

/// `EXPLAIN [ANALYZE]`: the plan tree with estimates (and actuals), the rewrites and why.
#[derive(Clone, Debug)]
pub struct Explain {
    /// The report as text, one line per row of [`Explain::as_result`].
    pub text: String,
    /// The same as JSON.
    pub json: serde_json::Value,
}

impl Explain {
    /// The report as a one-column result (`plan`), as `query "EXPLAIN ..."` returns it.
    pub fn as_result(&self) -> QueryResult {
        QueryResult {
            columns: vec![OutputColumn {
                name: "plan".into(),
                kind: OutputKind::Column(tradestore_schema::ColumnType::Text),
            }],
            rows: self
                .text
                .lines()
                .map(|l| vec![Value::Text(l.to_owned())])
                .collect(),
        }
    }
}

/// A predicate with its values shown as SQL literals of their columns' types: decimals
/// for prices, quantities and money, RFC 3339 text for timestamps.
fn show_pred(table: TableId, p: &Pred) -> String {
    fn typed(table: TableId, column: &str, o: &Operand) -> Operand {
        let kind = table.column(column).map(|c| OutputKind::Column(c.ty));
        match (kind, o) {
            (Some(kind @ OutputKind::Column(ty)), Operand::Value(v @ Value::I64(_))) => {
                let text = super::result::format_value(kind, v);
                if ty == tradestore_schema::ColumnType::Timestamp {
                    Operand::Text(text)
                } else {
                    Operand::Number(text)
                }
            }
            _ => o.clone(),
        }
    }
    fn walk(table: TableId, p: &Pred) -> Pred {
        match p {
            Pred::Cmp { column, op, value } => Pred::Cmp {
                column: column.clone(),
                op: *op,
                value: typed(table, column, value),
            },
            Pred::In {
                column,
                values,
                negated,
            } => Pred::In {
                column: column.clone(),
                values: values.iter().map(|v| typed(table, column, v)).collect(),
                negated: *negated,
            },
            Pred::Between {
                column,
                low,
                high,
                negated,
            } => Pred::Between {
                column: column.clone(),
                low: typed(table, column, low),
                high: typed(table, column, high),
                negated: *negated,
            },
            Pred::And(v) => Pred::And(v.iter().map(|p| walk(table, p)).collect()),
            Pred::Or(v) => Pred::Or(v.iter().map(|p| walk(table, p)).collect()),
            Pred::Not(p) => Pred::Not(Box::new(walk(table, p))),
            other => other.clone(),
        }
    }
    walk(table, p).to_string()
}

fn explain_of(o: &Outcome, analyze: bool) -> Explain {
    let p = &o.plan;
    let q = &p.query;
    let stage = |name: &str| o.actuals.stages.iter().find(|s| s.name == name);
    let actual = |name: &str| -> String {
        match (analyze, stage(name)) {
            (true, Some(s)) => format!(
                "  (actual rows={} time={:.3} ms)",
                s.rows,
                s.time.as_secs_f64() * 1e3
            ),
            _ => String::new(),
        }
    };
    // Nodes from the root down: (label, estimate, actual).
    let mut nodes: Vec<(String, String, String)> = Vec::new();
    let e = p.estimate;
    if p.limit.is_some() || p.offset > 0 {
        let label = match p.limit {
            Some(l) => format!("Limit {l} offset {}", p.offset),
            None => format!("Offset {}", p.offset),
        };
        nodes.push((
            label,
            format!("est rows={:.0}", e.output),
            actual("limit+project"),
        ));
    }
    if !p.sort.is_empty() {
        let keys: Vec<String> = p
            .sort
            .iter()
            .map(|k| format!("{}{}", k.name, if k.desc { " desc" } else { "" }))
            .collect();
        nodes.push((
            format!("Sort by {}", keys.join(", ")),
            format!("est rows={:.0}", e.grouped),
            actual("sort"),
        ));
    }
    if q.is_aggregate() {
        let keys = if q.group_by.is_empty() {
            "all rows".to_owned()
        } else {
            q.group_by
                .iter()
                .map(|g| match g {
                    super::ast::GroupKey::Column(c) => c.clone(),
                    super::ast::GroupKey::Bucket { column, width_ns } => format!(
                        "time_bucket({}, {column})",
                        super::ast::show_interval(*width_ns)
                    ),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        nodes.push((
            format!("Aggregate over {keys}"),
            format!("est rows={:.0}", e.grouped),
            actual("aggregate"),
        ));
    }
    if let Some(l) = &q.latest
        && !matches!(p.access, Access::LatestSkip { .. })
    {
        nodes.push((
            format!(
                "Latest on {} partition by {}",
                l.ts,
                l.partition_by.join(", ")
            ),
            format!("est rows={:.0}", e.grouped),
            actual("latest"),
        ));
    }
    if p.residual != Pred::True {
        nodes.push((
            format!("Filter {}", show_pred(q.table, &p.residual)),
            format!("est rows={:.0}", e.filtered),
            String::new(),
        ));
    }
    let stop = p
        .stop_after
        .map(|n| format!(" stop after {n}"))
        .unwrap_or_default();
    let access_actual = if analyze {
        format!(
            "  (actual examined={} rows={} time={:.3} ms)",
            o.actuals.examined,
            stage("access+filter").map_or(0, |s| s.rows),
            stage("access+filter").map_or(0.0, |s| s.time.as_secs_f64() * 1e3)
        )
    } else {
        String::new()
    };
    nodes.push((
        format!("{}{stop}", describe_access(&p.access)),
        format!("est examined={:.0} cost={:.1}", e.examined, e.cost),
        access_actual,
    ));
    let mut text = String::new();
    text.push_str(&format!(
        "Plan for {} (estimated cost {:.1}, rows {:.0}; plan cache {})\n",
        q.table,
        e.cost,
        e.output,
        if o.cache_hit { "hit" } else { "miss" }
    ));
    for (i, (label, est, act)) in nodes.iter().enumerate() {
        let indent = "  ".repeat(i);
        let arrow = if i == 0 { "" } else { "-> " };
        let est = if est.is_empty() {
            String::new()
        } else {
            format!("  [{est}]")
        };
        text.push_str(&format!("{indent}{arrow}{label}{est}{act}\n"));
    }
    text.push_str(&format!("Why: {}\n", p.why));
    if !p.alternatives.is_empty() {
        let alts: Vec<String> = p
            .alternatives
            .iter()
            .map(|(d, c)| format!("{d} (cost {c:.1})"))
            .collect();
        text.push_str(&format!("Rejected: {}\n", alts.join("; ")));
    }
    if o.rewrites.is_empty() {
        text.push_str("Rewrites: none\n");
    } else {
        for f in &o.rewrites {
            text.push_str(&format!("Rewrite {f}\n"));
        }
    }
    text.push_str(&format!(
        "Filter after rewriting: {}\n",
        show_pred(q.table, &q.filter)
    ));
    if analyze {
        text.push_str(&format!(
            "Actual: {} row{} in {:.3} ms\n",
            o.result.rows.len(),
            if o.result.rows.len() == 1 { "" } else { "s" },
            o.elapsed.as_secs_f64() * 1e3
        ));
    }
    let json = json!({
        "table": q.table.name(),
        "access": describe_access(&p.access),
        "choice": format!("{:?}", p.choice),
        "residual": show_pred(q.table, &p.residual),
        "sort": p.sort.iter().map(|k| json!({"name": k.name, "desc": k.desc})).collect::<Vec<_>>(),
        "stop_after": p.stop_after,
        "limit": p.limit,
        "offset": p.offset,
        "estimate": {"examined": e.examined, "filtered": e.filtered, "grouped": e.grouped, "rows": e.output, "cost": e.cost},
        "why": p.why,
        "rejected": p.alternatives.iter().map(|(d, c)| json!({"access": d, "cost": c})).collect::<Vec<_>>(),
        "rewrites": o.rewrites.iter().map(|f| json!({"rule": f.rule.name(), "detail": f.detail})).collect::<Vec<_>>(),
        "plan_cache_hit": o.cache_hit,
        "actual": analyze.then(|| json!({
            "examined": o.actuals.examined,
            "rows": o.result.rows.len(),
            "ms": o.elapsed.as_secs_f64() * 1e3,
            "stages": o.actuals.stages.iter().map(|s| json!({"stage": s.name, "rows": s.rows, "ms": s.time.as_secs_f64() * 1e3})).collect::<Vec<_>>(),
        })),
    });
    Explain { text, json }
}

/// What one review of the index manager did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Review {
    /// Indexes built.
    pub created: Vec<String>,
    /// Indexes dropped.
    pub dropped: Vec<String>,
}

impl Store {
    /// Parses a statement of the SQL subset, to run it many times with [`Store::execute`].
    pub fn prepare(&self, sql: &str) -> Result<Prepared> {
        Ok(Prepared {
            statement: super::sql::parse(sql)?,
        })
    }

    /// Runs one SQL statement. `EXPLAIN [ANALYZE]` returns the report as a one-column
    /// result.
    pub fn query(&self, sql: &str) -> Result<QueryResult> {
        self.execute(&self.prepare(sql)?, &[])
    }

    /// Runs a prepared statement with values for its `$n` parameters.
    pub fn execute(&self, prepared: &Prepared, params: &[Operand]) -> Result<QueryResult> {
        match &prepared.statement {
            Statement::Query(q) => self.run(q.clone(), params),
            Statement::Explain { analyze, query } => Ok(self
                .explain_query(query.clone(), params, *analyze)?
                .as_result()),
        }
    }

    /// Runs a query built with the typed builder ([`super::builder`]) or parsed from SQL.
    pub fn run(&self, query: Query, params: &[Operand]) -> Result<QueryResult> {
        Ok(run_query(&self.shared, &self.queries, query, params)?.result)
    }

    /// Runs a query and returns everything about its execution: rows, plan, rewrites,
    /// per-stage actuals.
    pub fn run_traced(&self, query: Query, params: &[Operand]) -> Result<Outcome> {
        run_query(&self.shared, &self.queries, query, params)
    }

    /// `EXPLAIN` of a SQL text (a plain query, or one starting with `EXPLAIN [ANALYZE]`).
    /// `analyze` adds the actuals even without `EXPLAIN ANALYZE` in the text.
    pub fn explain(&self, sql: &str, analyze: bool) -> Result<Explain> {
        match super::sql::parse(sql)? {
            Statement::Query(q) => self.explain_query(q, &[], analyze),
            Statement::Explain { analyze: a, query } => {
                self.explain_query(query, &[], a || analyze)
            }
        }
    }

    /// `EXPLAIN [ANALYZE]` of a query. The query is always planned and run, so the plan
    /// shown is exactly the one a run uses (and the run counts in the plan cache and the
    /// recorded workload); `analyze` adds the actual rows and time of each node.
    pub fn explain_query(
        &self,
        query: Query,
        params: &[Operand],
        analyze: bool,
    ) -> Result<Explain> {
        let o = run_query(&self.shared, &self.queries, query, params)?;
        Ok(explain_of(&o, analyze))
    }

    /// Analyzes every table (row counts, distinct values, quantiles, index prefix counts)
    /// and keeps the statistics in the catalog; plans made before are invalidated.
    pub fn analyze(&self) -> Result<Vec<TableStats>> {
        load_stats(&self.shared, &self.queries)?;
        TableId::ALL
            .into_iter()
            .map(|t| analyze_one(&self.shared, &self.queries, t).map(|s| (*s).clone()))
            .collect()
    }

    /// The statistics the planner has for a table, if it was analyzed.
    pub fn table_stats(&self, table: TableId) -> Result<Option<TableStats>> {
        load_stats(&self.shared, &self.queries)?;
        Ok(self
            .queries
            .stats
            .read()
            .get(&table)
            .map(|e| (*e.stats).clone()))
    }

    /// Plan cache counters.
    pub fn plan_cache_stats(&self) -> PlanCacheStats {
        let qe = &self.queries;
        PlanCacheStats {
            hits: qe.hits.load(Ordering::Relaxed),
            misses: qe.misses.load(Ordering::Relaxed),
            entries: qe.cache.lock().len() as u64,
            capacity: qe.capacity as u64,
        }
    }

    /// The predicate shapes recorded since the store opened, most executed first.
    pub fn workload(&self) -> Vec<ShapeStats> {
        self.queries.workload.lock().shapes()
    }

    /// Recommended indexes for the recorded workload, best first.
    pub fn advise_indexes(&self) -> Result<Vec<Advice>> {
        advise_for(&self.shared, &self.queries)
    }

    /// One review of the index manager, as auto mode runs it every
    /// `index_auto_interval_ms`: builds the best recommendation whose benefit reaches
    /// `index_auto_min_benefit`, and drops indexes created at run time that no query used
    /// for `index_unused_drop_s`. Every decision is recorded in the catalog.
    pub fn review_indexes(&self) -> Result<Review> {
        review(&self.shared, &self.queries)
    }
}

fn advise_for(shared: &Arc<Shared>, qe: &Arc<QueryEngine>) -> Result<Vec<Advice>> {
    load_stats(shared, qe)?;
    let tx = ReadTx::new(shared.snapshot()?);
    let uptime = qe.opened.elapsed().as_secs_f64().max(1.0);
    let shapes = qe.workload.lock().shapes();
    let info = |table: TableId| -> Option<TableInfo> {
        let rows = tx.approx_count(table).ok()?;
        Some(TableInfo {
            rows,
            stats: qe.stats.read().get(&table).map(|e| Arc::clone(&e.stats)),
            indexes: tx
                .indexes()
                .iter()
                .filter(|s| s.ready && s.def.table == table)
                .cloned()
                .collect(),
            writes_per_sec: shared.row_changes[table as usize].load(Ordering::Relaxed) as f64
                / uptime,
        })
    };
    Ok(super::advisor::advise(&shapes, &info))
}

fn review(shared: &Arc<Shared>, qe: &Arc<QueryEngine>) -> Result<Review> {
    let mut out = Review::default();
    let min = shared.config.index_auto_min_benefit as f64;
    if let Some(best) = advise_for(shared, qe)?
        .into_iter()
        .find(|a| a.benefit >= min)
    {
        let reason = format!("auto: {}", best.reason());
        crate::index::create(shared, best.def.clone(), &reason)?;
        qe.workload.lock().forget_table(best.def.table);
        qe.index_use
            .lock()
            .insert(best.def.name.clone(), Instant::now());
        out.created.push(best.def.name);
    }
    let window = Duration::from_secs(shared.config.index_unused_drop_s);
    let list = shared.indexes.read().clone();
    for spec in list.iter().filter(|s| !s.def.builtin && s.ready) {
        let last = qe
            .index_use
            .lock()
            .get(&spec.def.name)
            .copied()
            .unwrap_or(qe.opened);
        if last.elapsed() >= window {
            let reason = format!("auto: no query used it for {} s", last.elapsed().as_secs());
            crate::index::drop(shared, &spec.def.name, &reason)?;
            qe.index_use.lock().remove(&spec.def.name);
            out.dropped.push(spec.def.name.clone());
        }
    }
    Ok(out)
}

/// The index manager's thread in auto mode: a review every `index_auto_interval_ms` until
/// the store closes. A failed review is recorded as a decision and retried next time.
pub(crate) fn run_index_manager(shared: &Arc<Shared>, qe: &Arc<QueryEngine>) {
    let interval = Duration::from_millis(shared.config.index_auto_interval_ms);
    let mut last = Instant::now();
    while !shared.shutdown.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50).min(interval));
        if last.elapsed() < interval || shared.poisoned.load(Ordering::SeqCst) {
            continue;
        }
        last = Instant::now();
        // Best effort: the workload is advisory.
        let _ = qe.save_workload(shared);
        if let Err(e) = review(shared, qe) {
            let note = IndexDecision {
                at_ns: now_ns(),
                action: "review_failed".into(),
                index: String::new(),
                table: String::new(),
                columns: Vec::new(),
                reason: e.to_string(),
            };
            let _ = record_note(shared, &note);
        }
    }
}

fn record_note(shared: &Shared, d: &IndexDecision) -> Result<()> {
    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    catalog::record_decision(&txn, d)?;
    shared.commit_redb(txn, None)?;
    Ok(())
}
