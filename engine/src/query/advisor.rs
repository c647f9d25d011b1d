//! The adaptive index manager's memory and judgement: every executed query's predicate
//! shape (table, columns and operator classes, ORDER BY and LATEST ON columns) with its
//! executions, rows examined versus returned, and time; and recommendations obtained by
//! planning each recorded shape again with a hypothetical index.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tradestore_schema::{IndexDef, TableId};

use super::ast::{CmpOp, Pred, Query};
use super::plan::{self, Choice, Context};
use super::rewrite::conjuncts;
use super::stats::TableStats;
use crate::layout::IndexSpec;

/// Distinct shapes remembered; past this the least executed one is forgotten.
const MAX_SHAPES: usize = 1024;
/// Most values (IN-list items, comparison and range operands) a query kept as a shape's
/// sample may hold. The workload is saved in the store and loaded by every later process,
/// so one query with a huge IN list must not be kept there; a shape whose queries are all
/// larger is counted but has no sample, and the advisor passes over it.
const MAX_SAMPLE_VALUES: usize = 64;

/// What was recorded about one predicate shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShapeStats {
    /// The shape, e.g. `trades: account =, ts range; order ts desc`.
    pub shape: String,
    /// Its table.
    pub table: TableId,
    /// Executions.
    pub executions: u64,
    /// Rows or index entries read, over all executions.
    pub examined: u64,
    /// Rows returned, over all executions.
    pub returned: u64,
    /// Time spent, over all executions.
    pub total_time: Duration,
    /// The access path of the last execution.
    pub last_access: String,
    /// The last execution's query (bound and rewritten), replanned by the advisor.
    pub sample: Option<Query>,
}

/// The recorded workload.
#[derive(Default)]
pub struct Workload {
    shapes: HashMap<String, ShapeStats>,
}

/// A recommended index.
#[derive(Clone, Debug, Serialize)]
pub struct Advice {
    /// The index to create.
    pub def: IndexDef,
    /// Estimated cost saved over the recorded workload (units of one sequential row read).
    pub benefit: f64,
    /// Executions of the shapes that would use it.
    pub executions: u64,
    /// The shapes that would use it.
    pub shapes: Vec<String>,
    /// Estimated extra index writes per second at the table's recorded write rate.
    pub writes_per_sec: f64,
    /// Estimated bytes per index entry.
    pub entry_bytes: u64,
}

impl Advice {
    /// One line explaining the recommendation.
    pub fn reason(&self) -> String {
        format!(
            "estimated to save {:.0} row reads over {} recorded execution{} of {}; costs about \
             {:.1} index writes/s of ~{} bytes",
            self.benefit,
            self.executions,
            if self.executions == 1 { "" } else { "s" },
            self.shapes.join(" | "),
            self.writes_per_sec,
            self.entry_bytes
        )
    }
}

fn op_class(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        _ => "range",
    }
}

/// The predicate shape of a query: columns with operator classes (sorted), then ORDER BY
/// and LATEST ON columns.
pub fn shape_of(q: &Query) -> String {
    let mut parts: Vec<String> = Vec::new();
    for p in conjuncts(&q.filter) {
        match p {
            Pred::Cmp { column, op, .. } => parts.push(format!("{column} {}", op_class(*op))),
            Pred::In {
                column,
                negated: false,
                ..
            } => parts.push(format!("{column} in")),
            Pred::In {
                column,
                negated: true,
                ..
            } => parts.push(format!("{column} not in")),
            Pred::IsNull { column, .. } => parts.push(format!("{column} null")),
            Pred::Between { column, .. } => parts.push(format!("{column} range")),
            Pred::False => parts.push("false".into()),
            other => parts.push(format!("({})", shape_text(other))),
        }
    }
    parts.sort();
    parts.dedup();
    let mut s = format!(
        "{}: {}",
        q.table,
        if parts.is_empty() {
            "all".to_owned()
        } else {
            parts.join(", ")
        }
    );
    if !q.order_by.is_empty() {
        let o: Vec<String> = q
            .order_by
            .iter()
            .map(|o| format!("{}{}", o.name, if o.desc { " desc" } else { "" }))
            .collect();
        s.push_str(&format!("; order {}", o.join(", ")));
    }
    if let Some(l) = &q.latest {
        s.push_str(&format!(
            "; latest {} by {}",
            l.ts,
            l.partition_by.join(", ")
        ));
    }
    s
}

/// The values a predicate carries.
fn values_in(p: &Pred) -> usize {
    match p {
        Pred::Cmp { .. } => 1,
        Pred::In { values, .. } => values.len(),
        Pred::Between { .. } => 2,
        Pred::And(v) | Pred::Or(v) => v.iter().map(values_in).sum(),
        Pred::Not(p) => values_in(p),
        Pred::IsNull { .. } | Pred::True | Pred::False => 0,
    }
}

/// A predicate with its values blanked out.
fn shape_text(p: &Pred) -> String {
    match p {
        Pred::Cmp { column, op, .. } => format!("{column} {}", op_class(*op)),
        Pred::And(v) | Pred::Or(v) => {
            let sep = if matches!(p, Pred::And(_)) {
                " and "
            } else {
                " or "
            };
            let mut items: Vec<String> = v.iter().map(shape_text).collect();
            items.sort();
            // `a = 1 or a = 2 or ...` is one shape whatever the count.
            items.dedup();
            items.join(sep)
        }
        Pred::Not(p) => format!("not {}", shape_text(p)),
        Pred::In { column, .. } => format!("{column} in"),
        Pred::Between { column, .. } => format!("{column} range"),
        Pred::IsNull { column, .. } => format!("{column} null"),
        Pred::True => "true".into(),
        Pred::False => "false".into(),
    }
}

impl Workload {
    /// Records one execution of a query whose shape ([`shape_of`]) is `key`.
    pub fn record(
        &mut self,
        key: String,
        q: &Query,
        access: &str,
        examined: u64,
        returned: u64,
        time: Duration,
    ) {
        if !self.shapes.contains_key(&key)
            && self.shapes.len() >= MAX_SHAPES
            && let Some(victim) = self
                .shapes
                .iter()
                .min_by_key(|(_, s)| s.executions)
                .map(|(k, _)| k.clone())
        {
            self.shapes.remove(&victim);
        }
        let s = self
            .shapes
            .entry(key.clone())
            .or_insert_with(|| ShapeStats {
                shape: key,
                table: q.table,
                executions: 0,
                examined: 0,
                returned: 0,
                total_time: Duration::ZERO,
                last_access: String::new(),
                sample: None,
            });
        s.executions += 1;
        s.examined += examined;
        s.returned += returned;
        s.total_time += time;
        if s.last_access != access {
            s.last_access = access.to_owned();
        }
        // The sample is refreshed at executions 1, 2, 4, 8, ...: recent enough for advice,
        // without a copy of the query on every run.
        if (s.executions.is_power_of_two() || s.sample.is_none())
            && values_in(&q.filter) <= MAX_SAMPLE_VALUES
        {
            s.sample = Some(q.clone());
        }
    }

    /// The recorded shapes, most executed first.
    pub fn shapes(&self) -> Vec<ShapeStats> {
        let mut v: Vec<ShapeStats> = self.shapes.values().cloned().collect();
        v.sort_by(|a, b| b.executions.cmp(&a.executions).then(a.shape.cmp(&b.shape)));
        v
    }

    /// Adds shapes recorded earlier (by another process, kept in the catalog): counts add
    /// up, this process's samples win.
    pub fn merge(&mut self, saved: Vec<ShapeStats>) {
        for mut old in saved {
            if let Some(q) = old.sample.as_mut() {
                retype(q);
            }
            // Kept by a build that had no bound: dropped, and gone at the next save.
            if old
                .sample
                .as_ref()
                .is_some_and(|q| values_in(&q.filter) > MAX_SAMPLE_VALUES)
            {
                old.sample = None;
            }
            let room = self.shapes.len() < MAX_SHAPES;
            match self.shapes.get_mut(&old.shape) {
                Some(s) => {
                    s.executions += old.executions;
                    s.examined += old.examined;
                    s.returned += old.returned;
                    s.total_time += old.total_time;
                }
                None if room => {
                    self.shapes.insert(old.shape.clone(), old);
                }
                None => {}
            }
        }
    }

    /// Forgets the shapes of a table (after an index was built for them).
    pub fn forget_table(&mut self, table: TableId) {
        self.shapes.retain(|_, s| s.table != table);
    }
}

/// The columns an index for this query should have: equality columns (most selective
/// first), then one range column, or else the ORDER BY columns, or for LATEST ON the
/// partition columns then the timestamp.
fn candidate_columns(q: &Query, stats: Option<&TableStats>) -> Vec<String> {
    if let Some(l) = &q.latest {
        let mut cols = l.partition_by.clone();
        cols.push(l.ts.clone());
        return cols;
    }
    let mut eq: Vec<String> = Vec::new();
    let mut range: Option<String> = None;
    for p in conjuncts(&q.filter) {
        match p {
            Pred::Cmp {
                column,
                op: CmpOp::Eq,
                ..
            }
            | Pred::In {
                column,
                negated: false,
                ..
            } if !eq.contains(column) => {
                eq.push(column.clone());
            }
            Pred::Cmp { column, op, .. }
                if *op != CmpOp::Ne && *op != CmpOp::Eq && range.is_none() =>
            {
                range = Some(column.clone());
            }
            _ => {}
        }
    }
    let distinct = |c: &str| stats.and_then(|s| s.column(c)).map_or(0, |c| c.distinct);
    eq.sort_by(|a, b| distinct(b).cmp(&distinct(a)).then(a.cmp(b)));
    let mut cols = eq;
    match range {
        Some(r) if !cols.contains(&r) => cols.push(r),
        _ => {
            let same_dir = q.order_by.windows(2).all(|w| w[0].desc == w[1].desc);
            if same_dir && !q.is_aggregate() {
                for o in &q.order_by {
                    if q.table.column(&o.name).is_some() && !cols.contains(&o.name) {
                        cols.push(o.name.clone());
                    }
                }
            }
        }
    }
    cols
}

/// An index name for a table's columns: `table_by_col1_col2`, at most 64 characters.
pub fn index_name(table: TableId, cols: &[String]) -> String {
    let mut name = format!("{}_by_{}", table.name(), cols.join("_"));
    name.truncate(64);
    name
}

/// What the advisor needs about each table.
pub struct TableInfo {
    /// Live row count.
    pub rows: u64,
    /// Statistics, if analyzed.
    pub stats: Option<Arc<TableStats>>,
    /// The table's complete indexes.
    pub indexes: Vec<IndexSpec>,
    /// Rows written per second recently.
    pub writes_per_sec: f64,
}

/// Recommends indexes for the recorded workload, best first.
pub fn advise(shapes: &[ShapeStats], info: &dyn Fn(TableId) -> Option<TableInfo>) -> Vec<Advice> {
    let mut by_def: Vec<Advice> = Vec::new();
    for s in shapes {
        let Some(q) = &s.sample else { continue };
        let Some(t) = info(q.table) else { continue };
        let cols = candidate_columns(q, t.stats.as_deref());
        if cols.is_empty() {
            continue;
        }
        // Already served: the primary key or an index starts with these columns.
        let pk: Vec<String> = q
            .table
            .primary_key()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let served =
            pk.starts_with(&cols) || t.indexes.iter().any(|i| i.def.columns.starts_with(&cols));
        if served {
            continue;
        }
        let def = IndexDef {
            name: index_name(q.table, &cols),
            table: q.table,
            columns: cols.clone(),
            unique: false,
            builtin: false,
            covering: false,
        };
        let ctx = Context {
            rows: t.rows,
            stats: t.stats.as_deref(),
            indexes: &t.indexes,
        };
        let now = plan::plan(q, &ctx);
        let mut with = t.indexes.clone();
        with.push(IndexSpec::new(def.clone(), u16::MAX, true));
        let ctx_with = Context {
            rows: t.rows,
            stats: t.stats.as_deref(),
            indexes: &with,
        };
        let hypo = plan::plan(q, &ctx_with);
        let uses = match &hypo.choice {
            Choice::Scan { index: Some(n), .. }
            | Choice::SkipScan { index: n }
            | Choice::LatestSkip { index: n } => *n == def.name,
            _ => false,
        };
        let saved = now.estimate.cost - hypo.estimate.cost;
        if !uses || saved <= 0.0 {
            continue;
        }
        let benefit = saved * s.executions as f64;
        let entry_bytes = 9 * (cols.len() + pk.len()) as u64 + 16;
        match by_def
            .iter_mut()
            .find(|a| a.def.table == def.table && a.def.columns == def.columns)
        {
            Some(a) => {
                a.benefit += benefit;
                a.executions += s.executions;
                a.shapes.push(s.shape.clone());
            }
            None => by_def.push(Advice {
                def,
                benefit,
                executions: s.executions,
                shapes: vec![s.shape.clone()],
                writes_per_sec: t.writes_per_sec,
                entry_bytes,
            }),
        }
    }
    by_def.sort_by(|a, b| b.benefit.total_cmp(&a.benefit));
    by_def
}

/// Gives every value of a reloaded query its column's variant again (JSON does not tell
/// an id from a non-negative signed integer).
fn retype(q: &mut Query) {
    fn fix(table: TableId, column: &str, o: &mut super::ast::Operand) {
        if let super::ast::Operand::Value(v) = o {
            super::bind::retype_value(table, column, v);
        }
    }
    fn walk(table: TableId, p: &mut Pred) {
        match p {
            Pred::Cmp { column, value, .. } => fix(table, column, value),
            Pred::In { column, values, .. } => {
                values.iter_mut().for_each(|v| fix(table, column, v))
            }
            Pred::Between {
                column, low, high, ..
            } => {
                fix(table, column, low);
                fix(table, column, high);
            }
            Pred::And(v) | Pred::Or(v) => v.iter_mut().for_each(|p| walk(table, p)),
            Pred::Not(p) => walk(table, p),
            Pred::True | Pred::False | Pred::IsNull { .. } => {}
        }
    }
    walk(q.table, &mut q.filter);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::ast::Operand;
    use tradestore_schema::Value;

    fn ids(n: u64) -> Query {
        let mut q = Query::new(TableId::Trades);
        q.filter = Pred::In {
            column: "id".into(),
            values: (0..n).map(|i| Operand::Value(Value::U64(i))).collect(),
            negated: false,
        };
        q
    }

    #[test]
    fn a_huge_query_is_counted_but_not_kept_as_the_sample() {
        let mut w = Workload::default();
        let big = ids(MAX_SAMPLE_VALUES as u64 + 1);
        let key = shape_of(&big);
        w.record(key.clone(), &big, "scan", 10, 1, Duration::ZERO);
        let s = &w.shapes()[0];
        assert_eq!((s.executions, s.sample.is_none()), (1, true));
        let small = ids(3);
        assert_eq!(shape_of(&small), key);
        w.record(key.clone(), &small, "scan", 10, 1, Duration::ZERO);
        w.record(key, &big, "scan", 10, 1, Duration::ZERO);
        let s = &w.shapes()[0];
        assert_eq!(s.executions, 3);
        assert_eq!(s.sample.as_ref().map(|q| values_in(&q.filter)), Some(3));

        // A saved workload with a huge sample loses the sample when it is loaded.
        let mut saved = w.shapes();
        saved[0].sample = Some(big);
        let mut loaded = Workload::default();
        loaded.merge(saved);
        assert!(loaded.shapes()[0].sample.is_none());
    }

    #[test]
    fn a_long_or_of_one_comparison_is_one_short_shape() {
        let cmp = |i: u64| Pred::Cmp {
            column: "id".into(),
            op: CmpOp::Eq,
            value: Operand::Value(Value::U64(i)),
        };
        let mut q = Query::new(TableId::Trades);
        q.filter = Pred::Or((0..5000).map(cmp).collect());
        assert_eq!(shape_of(&q), "trades: (id =)");
    }
}
