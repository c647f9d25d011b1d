//! Table statistics for the planner: row counts, and per column the number of distinct
//! values, nulls and sampled quantiles; per index the number of distinct prefixes of each
//! length. Computed by [`analyze_table`] (`tradestore analyze`), kept in the catalog, and
//! scaled to the live row count when used; a table that changed by more than a fifth since
//! it was analyzed is analyzed again in the background.

use std::collections::HashSet;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use tradestore_schema::{TableId, Value, codec};

use crate::error::Result;
use crate::layout::IndexSpec;
use crate::txn::{ReadOps, ReadTx, Source};

/// Quantile boundaries kept per column (the 0th to the 32nd 32-quantile).
const QUANTILES: usize = 33;
/// Values sampled per column for the quantiles.
const SAMPLE: usize = 4096;
/// Distinct values counted exactly per column; past this the count is extrapolated.
const DISTINCT_CAP: usize = 200_000;

/// Statistics of one table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// The table.
    pub table: TableId,
    /// Rows when analyzed.
    pub rows: u64,
    /// When, in nanoseconds since the Unix epoch.
    pub analyzed_at_ns: u64,
    /// Per column, in table order.
    pub columns: Vec<ColumnStats>,
    /// Per index of the table.
    pub indexes: Vec<IndexStats>,
}

/// Statistics of one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// The column.
    pub name: String,
    /// Distinct non-null values.
    pub distinct: u64,
    /// Null values.
    pub nulls: u64,
    /// Sampled quantile boundaries of the non-null values, ascending: the first is the
    /// smallest sampled value, the last the largest.
    pub quantiles: Vec<Value>,
}

/// Statistics of one index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexStats {
    /// The index.
    pub name: String,
    /// `distinct[k]`: distinct values of the first `k + 1` indexed columns.
    pub distinct: Vec<u64>,
}

impl TableStats {
    /// Gives every sampled value its column's variant again. JSON cannot tell an id from a
    /// non-negative signed integer, so statistics read back from the catalog need this
    /// before their quantiles are compared with query values.
    pub fn retype(&mut self) {
        let table = self.table;
        for c in &mut self.columns {
            for v in &mut c.quantiles {
                super::bind::retype_value(table, &c.name, v);
            }
        }
    }

    /// The statistics of a column.
    pub fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The statistics of an index.
    pub fn index(&self, name: &str) -> Option<&IndexStats> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

impl ColumnStats {
    /// The fraction of non-null values `v` with `lower < v < upper` (bounds as given),
    /// interpolated between the sampled quantiles.
    pub fn range_fraction(
        &self,
        lower: Option<&Bound<Value>>,
        upper: Option<&Bound<Value>>,
    ) -> f64 {
        let pos = |b: Option<&Bound<Value>>, default: f64| match b {
            None | Some(Bound::Unbounded) => default,
            Some(Bound::Included(v) | Bound::Excluded(v)) => self.position(v),
        };
        (pos(upper, 1.0) - pos(lower, 0.0)).clamp(0.0, 1.0)
    }

    /// Where `v` falls among the sampled values, from 0 (below all) to 1 (above all).
    fn position(&self, v: &Value) -> f64 {
        let q = &self.quantiles;
        if q.is_empty() {
            return 0.5;
        }
        let i = q.partition_point(|x| x < v);
        if i == 0 {
            return 0.0;
        }
        if i >= q.len() {
            return 1.0;
        }
        // Interpolate inside the bucket [q[i-1], q[i]] for numbers.
        let within = match (q[i - 1].as_i64(), q[i].as_i64(), v.as_i64()) {
            (Some(a), Some(b), Some(x)) if b > a => (x - a) as f64 / (b - a) as f64,
            _ => 0.5,
        };
        ((i - 1) as f64 + within) / (q.len() - 1) as f64
    }
}

/// Scans a table and computes its statistics.
pub fn analyze_table(
    tx: &ReadTx,
    table: TableId,
    indexes: &[IndexSpec],
    now_ns: u64,
) -> Result<TableStats> {
    let columns = table.columns();
    let indexes: Vec<&IndexSpec> = indexes.iter().filter(|s| s.def.table == table).collect();
    let mut distinct: Vec<HashSet<Value>> = columns.iter().map(|_| HashSet::new()).collect();
    let mut capped_at: Vec<Option<u64>> = vec![None; columns.len()];
    let mut nulls = vec![0u64; columns.len()];
    let mut samples: Vec<Vec<Value>> = columns.iter().map(|_| Vec::new()).collect();
    // Per index, per prefix length: the distinct prefixes, and when counting stopped.
    type PrefixSet = (HashSet<Vec<Value>>, Option<u64>);
    let mut prefix_sets: Vec<Vec<PrefixSet>> = indexes
        .iter()
        .map(|s| {
            s.def
                .columns
                .iter()
                .map(|_| (HashSet::new(), None))
                .collect()
        })
        .collect();
    let mut rows = 0u64;
    tx.raw_range(
        Source::Table(table),
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |_, bytes| {
            let record = codec::decode_any(table, bytes)?;
            rows += 1;
            for (i, c) in columns.iter().enumerate() {
                let v = record.column(c.name).unwrap_or(Value::Null);
                if v == Value::Null {
                    nulls[i] += 1;
                    continue;
                }
                // Reservoir sampling keeps a uniform sample of the column's values.
                let seen = rows - nulls[i];
                if samples[i].len() < SAMPLE {
                    samples[i].push(v.clone());
                } else {
                    let j = fastrand::u64(0..seen);
                    if let Ok(j) = usize::try_from(j)
                        && j < SAMPLE
                    {
                        samples[i][j] = v.clone();
                    }
                }
                if capped_at[i].is_none() {
                    distinct[i].insert(v);
                    if distinct[i].len() >= DISTINCT_CAP {
                        capped_at[i] = Some(seen);
                    }
                }
            }
            for (s, sets) in indexes.iter().zip(prefix_sets.iter_mut()) {
                let values: Vec<Value> = s
                    .def
                    .columns
                    .iter()
                    .map(|c| record.column(c).unwrap_or(Value::Null))
                    .collect();
                for (k, (set, capped)) in sets.iter_mut().enumerate() {
                    if capped.is_none() {
                        set.insert(values[..=k].to_vec());
                        if set.len() >= DISTINCT_CAP {
                            *capped = Some(rows);
                        }
                    }
                }
            }
            Ok(true)
        },
    )?;
    let columns = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let non_null = rows - nulls[i];
            let exact = distinct[i].len() as u64;
            let d = extrapolate(exact, capped_at[i], non_null);
            let mut sample = std::mem::take(&mut samples[i]);
            sample.sort();
            let quantiles = if sample.is_empty() {
                Vec::new()
            } else {
                (0..QUANTILES)
                    .map(|q| sample[q * (sample.len() - 1) / (QUANTILES - 1)].clone())
                    .collect()
            };
            ColumnStats {
                name: c.name.to_owned(),
                distinct: d.min(non_null),
                nulls: nulls[i],
                quantiles,
            }
        })
        .collect();
    let indexes = indexes
        .iter()
        .zip(prefix_sets)
        .map(|(s, sets)| IndexStats {
            name: s.def.name.clone(),
            distinct: sets
                .iter()
                .map(|(set, capped)| extrapolate(set.len() as u64, *capped, rows))
                .collect(),
        })
        .collect();
    Ok(TableStats {
        table,
        rows,
        analyzed_at_ns: now_ns,
        columns,
        indexes,
    })
}

/// A distinct count that stopped being exact after `at` of `total` values: past the cap,
/// new values are assumed to keep arriving at the rate seen so far.
fn extrapolate(counted: u64, at: Option<u64>, total: u64) -> u64 {
    match at {
        Some(at) if at > 0 => ((counted as f64) * (total as f64) / (at as f64)) as u64,
        _ => counted,
    }
}
