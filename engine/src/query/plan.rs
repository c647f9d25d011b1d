//! The cost-based planner: enumerates the access paths a query can use (primary key
//! lookup, primary key or index range, covering index, latest-row skip scan, full scan),
//! estimates rows and cost of each from the table statistics, and picks the cheapest.
//! It avoids a sort when the path already delivers the requested order and then stops the
//! scan as soon as the limit is reached.

use std::collections::BTreeSet;
use std::ops::Bound;

use tradestore_schema::{TableId, Value};

use super::ast::{CmpOp, GroupKey, Latest, Operand, OrderKey, Pred, Query, SelectItem};
use super::rewrite::conjuncts;
use super::stats::TableStats;
use crate::layout::IndexSpec;

/// Cost of positioning a cursor (a B-tree descent).
const SEEK: f64 = 4.0;
/// Cost of reading one index entry in order.
const ENTRY: f64 = 0.1;
/// Cost of fetching one row by primary key.
const FETCH: f64 = 1.0;
/// Cost of reading and decoding one row in primary key order.
const ROW: f64 = 0.5;
/// Cost of evaluating one residual condition on one row.
const FILTER: f64 = 0.02;
/// Cost per row and comparison level of a sort.
const SORT: f64 = 0.02;
/// Cost per row of hashing into groups.
const GROUP: f64 = 0.05;
/// Largest number of prefixes an `IN` list may expand into before the planner stops
/// extending the prefix.
const MAX_PREFIXES: usize = 256;

/// Which access path: the part of a plan the plan cache remembers per query shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Choice {
    /// The filter is a contradiction: read nothing.
    Empty,
    /// Point reads by full primary key.
    Get,
    /// A range scan of the table (`index: None`, in primary key order) or of an index.
    Scan {
        /// The index scanned, or the table itself.
        index: Option<String>,
        /// Largest keys first.
        reverse: bool,
    },
    /// An index whose first column the filter leaves free but whose next columns it
    /// narrows: one range per value of the first column.
    SkipScan {
        /// The index.
        index: String,
    },
    /// For `LATEST ON`: per partition key, a backwards scan of an index on the partition
    /// columns then the timestamp, stopping at the first row that passes the filter.
    LatestSkip {
        /// The index.
        index: String,
    },
}

/// The access path with its values.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// Nothing is read.
    Empty,
    /// Point reads of these primary keys.
    Get {
        /// Each a full primary key.
        keys: Vec<Vec<Value>>,
    },
    /// A range scan.
    Scan(Scan),
    /// The latest row per partition key through an index.
    LatestSkip {
        /// The index, whose columns start with the partition columns then the timestamp.
        index: String,
        /// The partition columns' count.
        width: usize,
        /// Partition keys fixed by the filter, or `None` to visit every key present.
        keys: Option<Vec<Vec<Value>>>,
    },
}

/// A range scan of the table or an index: for each prefix, the keys starting with it,
/// optionally bounded on the next key column.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// The index, or `None` for the table in primary key order.
    pub index: Option<String>,
    /// Values of the leading key columns; one empty prefix for the whole range.
    pub prefixes: Vec<Vec<Value>>,
    /// Lower bound of the key column after the prefix.
    pub lower: Option<Bound<Value>>,
    /// Upper bound of the key column after the prefix.
    pub upper: Option<Bound<Value>>,
    /// Largest keys first.
    pub reverse: bool,
    /// The index holds every column the query needs: rows are not fetched.
    pub covering: bool,
    /// A skip scan: the prefixes (and bounds) apply after the index's first column, once
    /// under each of its values present.
    pub skip: bool,
}

/// Estimates of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Rows (or index entries) the access path reads.
    pub examined: f64,
    /// Rows left after the residual filter.
    pub filtered: f64,
    /// Rows after latest-row selection or grouping (before offset and limit).
    pub grouped: f64,
    /// Rows returned.
    pub output: f64,
    /// Total cost, in units of one sequential row read.
    pub cost: f64,
}

/// A physical plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The bound, rewritten query it executes.
    pub query: Query,
    /// The cached part.
    pub choice: Choice,
    /// How rows are read.
    pub access: Access,
    /// Conditions checked on each row read (those the access path does not guarantee).
    pub residual: Pred,
    /// The sort needed after filtering (empty when the access path gives the order, or
    /// there is no ORDER BY). For aggregating queries the sort applies to the groups.
    pub sort: Vec<OrderKey>,
    /// The access path stops after this many rows passed the filter (a pushed-down limit).
    pub stop_after: Option<u64>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// OFFSET.
    pub offset: u64,
    /// Estimates.
    pub estimate: Estimate,
    /// Why this path won.
    pub why: String,
    /// The other paths considered, with their estimated cost.
    pub alternatives: Vec<(String, f64)>,
}

/// What the planner knows about the table.
pub struct Context<'a> {
    /// Live row count.
    pub rows: u64,
    /// Statistics from the last analysis, if any.
    pub stats: Option<&'a TableStats>,
    /// The table's complete indexes.
    pub indexes: &'a [IndexSpec],
}

/// Conditions on one column found in the filter's top-level conjunction.
#[derive(Default, Debug)]
struct ColumnConds {
    eq: Option<Vec<Value>>,
    lower: Option<Bound<Value>>,
    upper: Option<Bound<Value>>,
}

fn value_of(o: &Operand) -> Option<&Value> {
    match o {
        Operand::Value(v) => Some(v),
        _ => None,
    }
}

/// Whether a column may hold NULL (an index range without a lower bound would include
/// its NULL entries, which sort first).
fn nullable(table: TableId, column: &str) -> bool {
    table == TableId::Orders && column == "price"
}

fn tighter_lower(a: Option<Bound<Value>>, b: Bound<Value>) -> Bound<Value> {
    match a {
        None | Some(Bound::Unbounded) => b,
        Some(a) => {
            let (av, bv) = (bound_value(&a), bound_value(&b));
            match (av, bv) {
                (Some(x), Some(y)) if y > x => b,
                (Some(x), Some(y)) if x == y && matches!(b, Bound::Excluded(_)) => b,
                _ => a,
            }
        }
    }
}

fn tighter_upper(a: Option<Bound<Value>>, b: Bound<Value>) -> Bound<Value> {
    match a {
        None | Some(Bound::Unbounded) => b,
        Some(a) => {
            let (av, bv) = (bound_value(&a), bound_value(&b));
            match (av, bv) {
                (Some(x), Some(y)) if y < x => b,
                (Some(x), Some(y)) if x == y && matches!(b, Bound::Excluded(_)) => b,
                _ => a,
            }
        }
    }
}

fn bound_value(b: &Bound<Value>) -> Option<&Value> {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(v),
        Bound::Unbounded => None,
    }
}

/// The sargable conditions per column; conjuncts of other forms stay residual.
fn column_conds(filter: &Pred) -> Vec<(String, ColumnConds)> {
    let mut out: Vec<(String, ColumnConds)> = Vec::new();
    fn slot(out: &mut Vec<(String, ColumnConds)>, c: &str) -> usize {
        match out.iter().position(|(n, _)| n == c) {
            Some(i) => i,
            None => {
                out.push((c.to_owned(), ColumnConds::default()));
                out.len() - 1
            }
        }
    }
    for p in conjuncts(filter) {
        match p {
            Pred::Cmp { column, op, value } => {
                let Some(v) = value_of(value) else { continue };
                if *v == Value::Null {
                    continue;
                }
                let i = slot(&mut out, column);
                let c = &mut out[i].1;
                match op {
                    CmpOp::Eq => c.eq = Some(vec![v.clone()]),
                    CmpOp::Gt => {
                        c.lower = Some(tighter_lower(c.lower.take(), Bound::Excluded(v.clone())))
                    }
                    CmpOp::Ge => {
                        c.lower = Some(tighter_lower(c.lower.take(), Bound::Included(v.clone())))
                    }
                    CmpOp::Lt => {
                        c.upper = Some(tighter_upper(c.upper.take(), Bound::Excluded(v.clone())))
                    }
                    CmpOp::Le => {
                        c.upper = Some(tighter_upper(c.upper.take(), Bound::Included(v.clone())))
                    }
                    CmpOp::Ne => {}
                }
            }
            Pred::In {
                column,
                values,
                negated: false,
            } => {
                let vals: Option<Vec<Value>> =
                    values.iter().map(|o| value_of(o).cloned()).collect();
                if let Some(mut vals) = vals
                    && !vals.contains(&Value::Null)
                {
                    vals.sort();
                    vals.dedup();
                    let i = slot(&mut out, column);
                    if out[i].1.eq.is_none() {
                        out[i].1.eq = Some(vals);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn conds_of<'c>(conds: &'c [(String, ColumnConds)], column: &str) -> Option<&'c ColumnConds> {
    conds.iter().find(|(n, _)| n == column).map(|(_, c)| c)
}

/// Every table column the query reads.
pub(crate) fn referenced(q: &Query) -> Option<BTreeSet<String>> {
    if q.select.is_empty() {
        return None;
    }
    let mut out = BTreeSet::new();
    for s in &q.select {
        match s {
            SelectItem::Column { name, .. } => {
                out.insert(name.clone());
            }
            SelectItem::Agg { args, .. } => out.extend(args.iter().cloned()),
            SelectItem::Bucket { column, .. } => {
                out.insert(column.clone());
            }
        }
    }
    for g in &q.group_by {
        match g {
            GroupKey::Column(c) | GroupKey::Bucket { column: c, .. } => {
                out.insert(c.clone());
            }
        }
    }
    for o in &q.order_by {
        if q.table.column(&o.name).is_some() {
            out.insert(o.name.clone());
        }
    }
    if let Some(l) = &q.latest {
        out.insert(l.ts.clone());
        out.extend(l.partition_by.iter().cloned());
    }
    collect_columns(&q.filter, &mut out);
    Some(out)
}

fn collect_columns(p: &Pred, out: &mut BTreeSet<String>) {
    match p {
        Pred::True | Pred::False => {}
        Pred::Cmp { column, .. }
        | Pred::In { column, .. }
        | Pred::Between { column, .. }
        | Pred::IsNull { column, .. } => {
            out.insert(column.clone());
        }
        Pred::And(v) | Pred::Or(v) => v.iter().for_each(|p| collect_columns(p, out)),
        Pred::Not(p) => collect_columns(p, out),
    }
}

/// The key columns of a source, in key order: an index's columns then the primary key's.
fn key_columns(table: TableId, index: Option<&IndexSpec>) -> Vec<String> {
    let pk = table.primary_key().iter().map(|c| (*c).to_owned());
    match index {
        None => pk.collect(),
        Some(s) => {
            let mut cols = s.def.columns.clone();
            for c in pk {
                if !cols.contains(&c) {
                    cols.push(c);
                }
            }
            cols
        }
    }
}

impl Context<'_> {
    fn rows(&self) -> f64 {
        (self.rows as f64).max(1.0)
    }

    fn distinct(&self, table: TableId, column: &str) -> f64 {
        if table.primary_key() == [column] {
            return self.rows();
        }
        match self.stats.and_then(|s| s.column(column)) {
            Some(c) => (c.distinct as f64).max(1.0),
            // Unanalyzed: assume about ten rows per value.
            None => (self.rows() / 10.0).max(1.0),
        }
    }

    fn eq_sel(&self, table: TableId, column: &str, n: usize) -> f64 {
        (n as f64 / self.distinct(table, column)).min(1.0)
    }

    fn range_sel(
        &self,
        column: &str,
        lower: Option<&Bound<Value>>,
        upper: Option<&Bound<Value>>,
    ) -> f64 {
        if lower.is_none() && upper.is_none() {
            return 1.0;
        }
        match self.stats.and_then(|s| s.column(column)) {
            Some(c) if !c.quantiles.is_empty() => {
                c.range_fraction(lower, upper).max(0.5 / self.rows())
            }
            _ if lower.is_some() && upper.is_some() => 0.1,
            _ => 0.3,
        }
    }

    /// Selectivity of a predicate (independence assumed between conjuncts).
    fn sel(&self, table: TableId, p: &Pred) -> f64 {
        match p {
            Pred::True => 1.0,
            Pred::False => 0.0,
            Pred::Cmp { column, op, value } => match (op, value_of(value)) {
                (CmpOp::Eq, _) => self.eq_sel(table, column, 1),
                (CmpOp::Ne, _) => 1.0 - self.eq_sel(table, column, 1),
                (CmpOp::Gt, Some(v)) => {
                    self.range_sel(column, Some(&Bound::Excluded(v.clone())), None)
                }
                (CmpOp::Ge, Some(v)) => {
                    self.range_sel(column, Some(&Bound::Included(v.clone())), None)
                }
                (CmpOp::Lt, Some(v)) => {
                    self.range_sel(column, None, Some(&Bound::Excluded(v.clone())))
                }
                (CmpOp::Le, Some(v)) => {
                    self.range_sel(column, None, Some(&Bound::Included(v.clone())))
                }
                _ => 0.3,
            },
            Pred::In {
                column,
                values,
                negated,
            } => {
                let s = self.eq_sel(table, column, values.len());
                if *negated { 1.0 - s } else { s }
            }
            Pred::Between { negated, .. } => {
                if *negated {
                    0.9
                } else {
                    0.1
                }
            }
            Pred::IsNull { column, negated } => {
                let s = match self.stats.and_then(|s| s.column(column)) {
                    Some(c) => c.nulls as f64 / self.rows(),
                    None if nullable(table, column) => 0.1,
                    None => 0.0,
                };
                if *negated { 1.0 - s } else { s }
            }
            Pred::And(v) => v.iter().map(|p| self.sel(table, p)).product(),
            Pred::Or(v) => v.iter().map(|p| self.sel(table, p)).sum::<f64>().min(1.0),
            Pred::Not(p) => 1.0 - self.sel(table, p),
        }
    }

    /// Selectivity of equality on the first `k` key columns of a source (`n` prefixes).
    fn prefix_sel(
        &self,
        table: TableId,
        index: Option<&IndexSpec>,
        cols: &[String],
        k: usize,
        n: usize,
    ) -> f64 {
        if k == 0 {
            return 1.0;
        }
        if let Some(spec) = index
            && let Some(d) = self
                .stats
                .and_then(|s| s.index(&spec.def.name))
                .and_then(|i| i.distinct.get(k - 1))
        {
            return (n as f64 / (*d as f64).max(1.0)).min(1.0);
        }
        if index.is_none() && k == table.primary_key().len() {
            return (n as f64 / self.rows()).min(1.0);
        }
        cols[..k]
            .iter()
            .map(|c| self.eq_sel(table, c, 1))
            .product::<f64>()
            .mul_add(n as f64, 0.0)
            .min(1.0)
    }
}

/// Plans a bound, rewritten query: every candidate is costed, the cheapest wins.
pub fn plan(q: &Query, ctx: &Context<'_>) -> Plan {
    let choices = candidates(q, ctx);
    let mut built: Vec<Plan> = choices.iter().map(|c| build(q, c, ctx)).collect();
    let best = built
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.estimate.cost.total_cmp(&b.1.estimate.cost))
        .map_or(0, |(i, _)| i);
    let alternatives: Vec<(String, f64)> = built
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, p)| (describe_access(&p.access), p.estimate.cost))
        .collect();
    let mut plan = built.swap_remove(best);
    if !alternatives.is_empty() {
        let next = alternatives
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(d, c)| format!("; next best {d} at cost {c:.1}"))
            .unwrap_or_default();
        plan.why.push_str(&next);
    }
    plan.alternatives = alternatives;
    plan
}

/// The access paths worth costing for this query.
pub fn candidates(q: &Query, ctx: &Context<'_>) -> Vec<Choice> {
    if q.filter == Pred::False {
        return vec![Choice::Empty];
    }
    let table = q.table;
    let conds = column_conds(&q.filter);
    let mut out = Vec::new();
    let pk = table.primary_key();
    if pk
        .iter()
        .all(|c| conds_of(&conds, c).is_some_and(|c| c.eq.is_some()))
    {
        out.push(Choice::Get);
    }
    let order = effective_order(q, &conds);
    let reverse = order.first().is_some_and(|o| o.desc);
    out.push(Choice::Scan {
        index: None,
        reverse,
    });
    let used = referenced(q);
    for spec in ctx
        .indexes
        .iter()
        .filter(|s| s.def.table == table && s.ready)
    {
        let lead = &spec.def.columns[0];
        let constrained = conds_of(&conds, lead).is_some();
        let cols = key_columns(table, Some(spec));
        let ordered = !order.is_empty() && order_from(&cols, &conds, &order).is_some();
        let covering = is_covering(spec, used.as_ref());
        if constrained || ordered || covering {
            out.push(Choice::Scan {
                index: Some(spec.def.name.clone()),
                reverse,
            });
        }
        let second = spec.def.columns.get(1);
        if !constrained && second.is_some_and(|c| conds_of(&conds, c).is_some()) {
            out.push(Choice::SkipScan {
                index: spec.def.name.clone(),
            });
        }
        if let Some(l) = &q.latest
            && latest_index(spec, l)
        {
            out.push(Choice::LatestSkip {
                index: spec.def.name.clone(),
            });
        }
    }
    out
}

/// The cost of one row read through `spec` (the table itself when `None`): an entry that
/// keeps the row costs the row and its key (a little more than the table's row), a key-only
/// entry that covers the query costs an entry, any other entry an entry and a fetch.
fn per_row(spec: Option<&IndexSpec>, covering: bool) -> f64 {
    match spec {
        None => ROW,
        Some(s) if s.def.covering => ROW + ENTRY,
        Some(_) if covering => ENTRY,
        Some(_) => ENTRY + FETCH,
    }
}

/// Whether reading through the index needs no row lookup: it keeps whole rows, or its
/// key holds every column the query uses.
fn is_covering(spec: &IndexSpec, used: Option<&BTreeSet<String>>) -> bool {
    if spec.def.covering {
        return true;
    }
    let Some(used) = used else { return false };
    used.iter()
        .all(|c| spec.def.columns.contains(c) || spec.def.table.primary_key().contains(&c.as_str()))
}

/// Whether an index starts with the partition columns (in any order) then the timestamp.
/// Whether an index is exactly the partition columns (in any order) then the timestamp:
/// its entries of one key then run in (timestamp, primary key) order, so the first row a
/// backwards probe keeps is the one with the greatest (timestamp, primary key).
fn latest_index(spec: &IndexSpec, l: &Latest) -> bool {
    let n = l.partition_by.len();
    let cols = &spec.def.columns;
    cols.len() == n + 1 && l.partition_by.iter().all(|c| cols[..n].contains(c)) && cols[n] == l.ts
}

fn fixed(conds: &[(String, ColumnConds)], column: &str) -> bool {
    conds_of(conds, column).is_some_and(|c| c.eq.as_ref().is_some_and(|v| v.len() == 1))
}

/// The full row order a query asks for: its ORDER BY keys without the columns the filter
/// fixes to one value, then the primary key columns (the documented tie-break) in the
/// direction of the last ORDER BY key. Empty when there is no ORDER BY, and for
/// aggregating or latest-row queries (their sort applies to the output).
fn effective_order(q: &Query, conds: &[(String, ColumnConds)]) -> Vec<OrderKey> {
    if q.is_aggregate() || q.latest.is_some() || q.order_by.is_empty() {
        return Vec::new();
    }
    let mut keys: Vec<OrderKey> = Vec::new();
    for o in &q.order_by {
        let name = output_column(q, &o.name);
        if !fixed(conds, &name) && !keys.iter().any(|k| k.name == name) {
            keys.push(OrderKey { name, desc: o.desc });
        }
    }
    let last_desc = q.order_by.last().is_some_and(|o| o.desc);
    for c in q.table.primary_key() {
        if !fixed(conds, c) && !keys.iter().any(|k| k.name == *c) {
            keys.push(OrderKey {
                name: (*c).to_owned(),
                desc: last_desc,
            });
        }
    }
    keys
}

/// The table column an ORDER BY name refers to (an alias of a selected column, or itself).
pub fn output_column(q: &Query, name: &str) -> String {
    for s in &q.select {
        if let SelectItem::Column {
            name: col,
            alias: Some(a),
        } = s
            && a == name
        {
            return col.clone();
        }
    }
    name.to_owned()
}

/// The eq-prefix length and scan direction when the source delivers `order`.
fn order_from(
    cols: &[String],
    conds: &[(String, ColumnConds)],
    order: &[OrderKey],
) -> Option<bool> {
    let Some(first) = order.first() else {
        // Every key (the primary key included) is fixed: at most one row.
        return Some(false);
    };
    let desc = first.desc;
    if order.iter().any(|o| o.desc != desc) {
        return None;
    }
    // Columns fixed to a single value do not disturb the order of the rows that pass.
    let rest: Vec<&String> = cols.iter().filter(|c| !fixed(conds, c)).collect();
    (rest.len() >= order.len() && rest.iter().zip(order).all(|(c, o)| **c == o.name))
        .then_some(desc)
}

/// Builds the plan for one access path choice, with estimates.
pub fn build(q: &Query, choice: &Choice, ctx: &Context<'_>) -> Plan {
    let table = q.table;
    let conds = column_conds(&q.filter);
    let order = effective_order(q, &conds);
    let limit = q
        .limit
        .as_ref()
        .and_then(|l| value_of(l))
        .and_then(Value::as_u64);
    let offset = q
        .offset
        .as_ref()
        .and_then(|l| value_of(l))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let rows = ctx.rows();
    let mut plan = Plan {
        query: q.clone(),
        choice: choice.clone(),
        access: Access::Empty,
        residual: q.filter.clone(),
        sort: q.order_by.clone(),
        stop_after: None,
        limit,
        offset,
        estimate: Estimate::default(),
        why: String::new(),
        alternatives: Vec::new(),
    };
    let residual_all = ctx.sel(table, &q.filter);
    let (examined, access_cost, consumed, ordered): (f64, f64, Vec<String>, bool) = match choice {
        Choice::Empty => {
            plan.why = "the filter can never be true".into();
            plan.residual = Pred::True;
            (0.0, 0.0, Vec::new(), true)
        }
        Choice::Get => {
            let pk: Vec<String> = table
                .primary_key()
                .iter()
                .map(|c| (*c).to_owned())
                .collect();
            let keys = expand(&pk, &conds, usize::MAX).0;
            let n = keys.len() as f64;
            plan.access = Access::Get { keys };
            plan.why = "the filter fixes the whole primary key".into();
            (n, n * FETCH, pk, order.is_empty())
        }
        Choice::Scan { index, reverse } => {
            let spec = index
                .as_ref()
                .and_then(|n| ctx.indexes.iter().find(|s| s.def.name == *n));
            let cols = key_columns(table, spec);
            let (prefixes, k) = expand(&cols, &conds, MAX_PREFIXES);
            let mut consumed: Vec<String> = cols[..k].to_vec();
            let (mut lower, mut upper) = (None, None);
            if let Some(c) = cols
                .get(k)
                .and_then(|c| conds_of(&conds, c).map(|cc| (c, cc)))
            {
                lower = c.1.lower.clone();
                upper = c.1.upper.clone();
                if !nullable(table, c.0) && (lower.is_some() || upper.is_some()) {
                    consumed.push(c.0.clone());
                }
            }
            let range_col = cols.get(k).cloned().unwrap_or_default();
            let sel = ctx.prefix_sel(table, spec, &cols, k, prefixes.len())
                * ctx.range_sel(&range_col, lower.as_ref(), upper.as_ref());
            let matched = (rows * sel).max(if k > 0 { 0.5 } else { 0.0 });
            let ordered = order.is_empty()
                || (prefixes.len() == 1 && order_from(&cols, &conds, &order) == Some(*reverse));
            let covering = spec.is_some_and(|s| is_covering(s, referenced(q).as_ref()));
            let per = per_row(spec, covering);
            let seeks = prefixes.len() as f64 * SEEK;
            plan.why = match (spec, k, covering) {
                (None, 0, _) if lower.is_none() && upper.is_none() => {
                    "full scan of the table".into()
                }
                (None, _, _) => format!(
                    "primary key range on {}",
                    cols[..(k + 1).min(cols.len())].join(", ")
                ),
                (Some(s), _, true) if s.def.covering => format!(
                    "index {} narrows to about {matched:.0} of {rows:.0} rows and keeps the rows \
                     (covering)",
                    s.def.name
                ),
                (Some(s), _, true) => {
                    format!("index {} holds every column needed (covering)", s.def.name)
                }
                (Some(s), 0, _) if lower.is_none() && upper.is_none() => {
                    format!("index {} gives the order", s.def.name)
                }
                (Some(s), _, _) => format!(
                    "index {} narrows to about {matched:.0} of {rows:.0} rows",
                    s.def.name
                ),
            };
            plan.access = Access::Scan(Scan {
                index: index.clone(),
                prefixes,
                lower,
                upper,
                reverse: *reverse,
                covering,
                skip: false,
            });
            (matched, seeks + matched * per, consumed, ordered)
        }
        Choice::SkipScan { index } => {
            let spec = ctx.indexes.iter().find(|s| s.def.name == *index);
            let cols = key_columns(table, spec);
            let after = cols.get(1..).unwrap_or_default();
            let (prefixes, k) = expand(after, &conds, MAX_PREFIXES);
            let mut consumed: Vec<String> = after[..k].to_vec();
            let (mut lower, mut upper) = (None, None);
            if let Some(c) = after
                .get(k)
                .and_then(|c| conds_of(&conds, c).map(|cc| (c, cc)))
            {
                lower = c.1.lower.clone();
                upper = c.1.upper.clone();
                if !nullable(table, c.0) && (lower.is_some() || upper.is_some()) {
                    consumed.push(c.0.clone());
                }
            }
            let range_col = after.get(k).cloned().unwrap_or_default();
            let groups = cols
                .first()
                .map_or(1.0, |c| ctx.distinct(table, c).min(rows));
            let sel = after[..k]
                .iter()
                .map(|c| ctx.eq_sel(table, c, 1))
                .product::<f64>()
                * prefixes.len() as f64
                * ctx.range_sel(&range_col, lower.as_ref(), upper.as_ref());
            let matched = rows * sel.min(1.0);
            let covering = spec.is_some_and(|s| is_covering(s, referenced(q).as_ref()));
            let per = per_row(spec, covering);
            let seeks = groups * (1.0 + prefixes.len() as f64) * SEEK;
            plan.why = format!(
                "skip scan of {index}: about {groups:.0} values of {}, each narrowed to its range",
                cols.first().map_or("", String::as_str)
            );
            plan.access = Access::Scan(Scan {
                index: Some(index.clone()),
                prefixes,
                lower,
                upper,
                reverse: false,
                covering,
                skip: true,
            });
            (matched, seeks + matched * per, consumed, order.is_empty())
        }
        Choice::LatestSkip { index } => {
            let spec = ctx.indexes.iter().find(|s| s.def.name == *index);
            let width = q.latest.as_ref().map_or(0, |l| l.partition_by.len());
            let cols: Vec<String> = spec
                .map(|s| s.def.columns[..width].to_vec())
                .unwrap_or_default();
            let (keys, k) = expand(&cols, &conds, MAX_PREFIXES);
            let fixed = k == width && width > 0;
            let groups = if fixed {
                keys.len() as f64
            } else {
                cols.iter()
                    .map(|c| ctx.distinct(table, c))
                    .product::<f64>()
                    .min(rows)
            };
            let tries = 1.0 / residual_all.max(1e-3);
            plan.access = Access::LatestSkip {
                index: index.clone(),
                width,
                keys: fixed.then_some(keys),
            };
            plan.why =
                format!("about {groups:.0} partition keys: one backwards probe of {index} each");
            let per = per_row(spec, false);
            let cost = groups * (2.0 * SEEK + tries.min(rows / groups.max(1.0)) * per);
            (
                groups * tries.min(rows / groups.max(1.0)),
                cost,
                Vec::new(),
                true,
            )
        }
    };
    // Drop the conjuncts the access path guarantees.
    if !consumed.is_empty() {
        let keep: Vec<Pred> = conjuncts(&q.filter)
            .into_iter()
            .filter(|p| !consumes(p, &consumed))
            .cloned()
            .collect();
        plan.residual = match keep.len() {
            0 => Pred::True,
            1 => keep.into_iter().next().unwrap_or(Pred::True),
            _ => Pred::And(keep),
        };
    }
    let residual_sel = ctx.sel(table, &plan.residual);
    let filtered_full = examined * residual_sel;
    let aggregate = q.is_aggregate();
    let streaming = !aggregate && q.latest.is_none() && ordered;
    let examined_all = examined;
    let mut examined = examined;
    if streaming && let Some(l) = limit {
        // Saturating: a limit and offset past u64::MAX together mean every row.
        let stop = l.saturating_add(offset);
        let need = stop as f64;
        plan.stop_after = Some(stop);
        examined = examined.min(need / residual_sel.max(1e-3));
    }
    let filtered = filtered_full.min(examined * residual_sel);
    let n_conj = conjuncts(&plan.residual).len() as f64;
    // A pushed-down limit reads only part of the range.
    let fraction = if examined_all > 0.0 {
        (examined / examined_all).min(1.0)
    } else {
        1.0
    };
    let mut cost = access_cost * fraction;
    cost += examined * FILTER * n_conj;
    if ordered && !aggregate && q.latest.is_none() {
        plan.sort = Vec::new();
    }
    let mut output = filtered;
    if let Some(l) = &q.latest {
        if !matches!(choice, Choice::LatestSkip { .. }) {
            cost += filtered * GROUP;
        }
        let groups: f64 = l
            .partition_by
            .iter()
            .map(|c| ctx.distinct(table, c))
            .product();
        output = output.min(groups);
    }
    if aggregate {
        cost += filtered * GROUP;
        output = if q.group_by.is_empty() {
            1.0
        } else {
            output.min(rows.sqrt().max(1.0))
        };
    }
    if !plan.sort.is_empty() {
        cost += output * output.max(2.0).log2() * SORT;
    }
    let grouped = output;
    if let Some(l) = limit {
        output = output.min(l as f64);
    }
    plan.estimate = Estimate {
        examined,
        filtered,
        grouped,
        output,
        cost,
    };
    plan
}

/// Whether a conjunct is guaranteed by an access path that fixed `columns`.
fn consumes(p: &Pred, columns: &[String]) -> bool {
    match p {
        Pred::Cmp { column, op, value } => {
            columns.contains(column) && *op != CmpOp::Ne && value_of(value).is_some()
        }
        Pred::In {
            column,
            negated: false,
            values,
        } => columns.contains(column) && values.iter().all(|v| value_of(v).is_some()),
        _ => false,
    }
}

/// The prefixes of key values fixed by equality/IN conditions on the leading key columns
/// (their cartesian product, at most `cap`), and how many columns they cover.
fn expand(
    cols: &[String],
    conds: &[(String, ColumnConds)],
    cap: usize,
) -> (Vec<Vec<Value>>, usize) {
    let mut prefixes: Vec<Vec<Value>> = vec![Vec::new()];
    let mut k = 0;
    for c in cols {
        let Some(values) = conds_of(conds, c).and_then(|cc| cc.eq.as_ref()) else {
            break;
        };
        if prefixes.len().saturating_mul(values.len()) > cap {
            break;
        }
        prefixes = prefixes
            .iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect();
        k += 1;
    }
    (prefixes, k)
}

/// One line describing an access path.
pub fn describe_access(a: &Access) -> String {
    let show = |vals: &[Value]| -> String {
        vals.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match a {
        Access::Empty => "Empty (nothing read)".into(),
        Access::Get { keys } => format!(
            "PrimaryKeyLookup {} key{}",
            keys.len(),
            if keys.len() == 1 { "" } else { "s" }
        ),
        Access::Scan(s) => {
            let what = match (&s.index, s.covering) {
                (None, _)
                    if s.prefixes.iter().all(Vec::is_empty)
                        && s.lower.is_none()
                        && s.upper.is_none() =>
                {
                    "FullScan".to_owned()
                }
                (None, _) => "PrimaryKeyRange".to_owned(),
                (Some(i), true) if s.skip => format!("CoveringSkipScan {i}"),
                (Some(i), false) if s.skip => format!("SkipScan {i}"),
                (Some(i), true) => format!("CoveringIndexScan {i}"),
                (Some(i), false) => format!("IndexScan {i}"),
            };
            let mut parts = vec![what];
            let fixed: Vec<String> = s
                .prefixes
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| format!("({})", show(p)))
                .collect();
            if !fixed.is_empty() {
                if fixed.len() > 4 {
                    parts.push(format!(
                        "prefixes {} … ({} in all)",
                        fixed[..4].join(" "),
                        fixed.len()
                    ));
                } else {
                    parts.push(format!("prefix {}", fixed.join(" ")));
                }
            }
            let b = |x: &Option<Bound<Value>>, lo: bool| match x {
                Some(Bound::Included(v)) => Some(format!("{} {v}", if lo { ">=" } else { "<=" })),
                Some(Bound::Excluded(v)) => Some(format!("{} {v}", if lo { ">" } else { "<" })),
                _ => None,
            };
            let range: Vec<String> = [b(&s.lower, true), b(&s.upper, false)]
                .into_iter()
                .flatten()
                .collect();
            if !range.is_empty() {
                parts.push(format!("range {}", range.join(" and ")));
            }
            if s.reverse {
                parts.push("backwards".into());
            }
            parts.join(" ")
        }
        Access::LatestSkip { index, keys, .. } => match keys {
            Some(k) => format!(
                "LatestSkipScan {index} over {} key{}",
                k.len(),
                if k.len() == 1 { "" } else { "s" }
            ),
            None => format!("LatestSkipScan {index} over every key"),
        },
    }
}
