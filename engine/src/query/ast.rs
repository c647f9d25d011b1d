//! The logical query: what both front ends (SQL and the typed builder) produce, and what the
//! rewriter, the planner and the executor consume.
//!
//! A query reads one table. Its filter is a [`Pred`] over the table's columns; values in it
//! are [`Operand`]s, which the front ends leave as written (numbers, text, `now()`,
//! intervals, `$n` parameters) and binding turns into typed [`Value`]s of the compared
//! column.

use std::fmt;

use serde::{Deserialize, Serialize};

use tradestore_schema::{TableId, Value};

/// A statement of the SQL subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Statement {
    /// `SELECT ...`
    Query(Query),
    /// `EXPLAIN [ANALYZE] SELECT ...`
    Explain {
        /// Run the query and report actual rows and time per node.
        analyze: bool,
        /// The explained query.
        query: Query,
    },
}

/// A query over one table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// The table read.
    pub table: TableId,
    /// The output columns; empty means every column (`*`).
    pub select: Vec<SelectItem>,
    /// Rows are kept when this is true (`Pred::True` when there is no `WHERE`).
    pub filter: Pred,
    /// `GROUP BY` keys (empty: no grouping; aggregates then fold the whole result).
    pub group_by: Vec<GroupKey>,
    /// `ORDER BY` keys, applied to the output.
    pub order_by: Vec<OrderKey>,
    /// `LIMIT n`.
    pub limit: Option<Operand>,
    /// `OFFSET n`.
    pub offset: Option<Operand>,
    /// Keep only the latest row per key (QuestDB's `LATEST ON ts PARTITION BY key`).
    pub latest: Option<Latest>,
}

impl Query {
    /// `SELECT * FROM table`.
    pub fn new(table: TableId) -> Query {
        Query {
            table,
            select: Vec::new(),
            filter: Pred::True,
            group_by: Vec::new(),
            order_by: Vec::new(),
            limit: None,
            offset: None,
            latest: None,
        }
    }

    /// Whether the query aggregates (has aggregate functions or `GROUP BY`).
    pub fn is_aggregate(&self) -> bool {
        !self.group_by.is_empty()
            || self
                .select
                .iter()
                .any(|s| matches!(s, SelectItem::Agg { .. }))
    }
}

/// One output column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SelectItem {
    /// A column of the table.
    Column {
        /// The column's name.
        name: String,
        /// `AS alias`.
        alias: Option<String>,
    },
    /// An aggregate over the group's rows.
    Agg {
        /// Which aggregate.
        func: AggFunc,
        /// Its argument columns: none for `count(*)`, one for most, `(price, quantity)` for
        /// `vwap`.
        args: Vec<String>,
        /// `AS alias`.
        alias: Option<String>,
    },
    /// The start of a row's time bucket: `time_bucket(interval '1 minute', ts)`.
    Bucket {
        /// The timestamp column.
        column: String,
        /// Bucket width in nanoseconds, > 0.
        width_ns: i64,
        /// `AS alias`.
        alias: Option<String>,
    },
}

impl SelectItem {
    /// The output column's name: its alias, else the column, else `func(args)`.
    pub fn output_name(&self) -> String {
        match self {
            SelectItem::Column { name, alias } => alias.clone().unwrap_or_else(|| name.clone()),
            SelectItem::Agg { func, args, alias } => alias.clone().unwrap_or_else(|| {
                if args.is_empty() {
                    format!("{}(*)", func.name())
                } else {
                    format!("{}({})", func.name(), args.join(", "))
                }
            }),
            SelectItem::Bucket {
                column,
                width_ns,
                alias,
            } => alias
                .clone()
                .unwrap_or_else(|| format!("time_bucket({}, {column})", show_interval(*width_ns))),
        }
    }
}

/// Aggregate functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggFunc {
    /// `count(*)` (no argument) or `count(col)` (non-null values).
    Count,
    /// Sum of a column.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Arithmetic mean (rounded towards zero to the column's scale).
    Avg,
    /// Volume-weighted average price: `sum(price * quantity) / sum(quantity)`.
    Vwap,
}

impl AggFunc {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Avg => "avg",
            AggFunc::Vwap => "vwap",
        }
    }

    /// The function with this (lower-case) SQL name.
    pub fn from_name(name: &str) -> Option<AggFunc> {
        [
            AggFunc::Count,
            AggFunc::Sum,
            AggFunc::Min,
            AggFunc::Max,
            AggFunc::Avg,
            AggFunc::Vwap,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

/// A `GROUP BY` key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupKey {
    /// A column's value.
    Column(String),
    /// The time bucket of a timestamp column (`SAMPLE BY`, `time_bucket`).
    Bucket {
        /// The timestamp column.
        column: String,
        /// Bucket width in nanoseconds, > 0.
        width_ns: i64,
    },
}

/// An `ORDER BY` key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderKey {
    /// A column of the table, or the output name of a select item (an alias or
    /// `count(*)`-style name).
    pub name: String,
    /// Descending.
    pub desc: bool,
}

/// Keep only the row with the greatest `ts` per distinct value of `partition_by`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    /// The column whose greatest value wins (a timestamp, or an id).
    pub ts: String,
    /// The key columns.
    pub partition_by: Vec<String>,
}

/// A predicate over one row. Evaluated in SQL's three-valued logic: a comparison with a
/// NULL column is unknown, and a row is kept only when the filter is true.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Pred {
    /// Always true (no filter).
    True,
    /// Never true: the query returns nothing without reading storage.
    False,
    /// `column op value`.
    Cmp {
        /// The column compared.
        column: String,
        /// The comparison.
        op: CmpOp,
        /// What it is compared with.
        value: Operand,
    },
    /// `column [NOT] IN (values)`.
    In {
        /// The column tested.
        column: String,
        /// The candidate values.
        values: Vec<Operand>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `column [NOT] BETWEEN low AND high` (inclusive).
    Between {
        /// The column tested.
        column: String,
        /// Lower bound, inclusive.
        low: Operand,
        /// Upper bound, inclusive.
        high: Operand,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        /// The column tested.
        column: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// All of them.
    And(Vec<Pred>),
    /// Any of them.
    Or(Vec<Pred>),
    /// The negation.
    Not(Box<Pred>),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator's SQL spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// The operator that holds exactly when this one does not (for non-null operands).
    pub fn negate(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Ge => CmpOp::Lt,
        }
    }

    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }
}

/// The value side of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Operand {
    /// A typed value (from the builder, or after binding).
    Value(Value),
    /// A numeric literal as written (`100`, `-3`, `100.25`); binding scales it to the
    /// compared column's type.
    Number(String),
    /// A string literal: text, an enumeration name, a timestamp (`'2026-11-26T10:00:00Z'`)
    /// or an instrument symbol where an instrument id is expected.
    Text(String),
    /// `NULL`.
    Null,
    /// `$n`, 1-based.
    Param(usize),
    /// `now()`: the query's start time.
    Now,
    /// `interval '1 hour'`, in nanoseconds.
    Interval(i64),
    /// `left + right` or `left - right` (timestamps and intervals, or numbers).
    Arith {
        /// Left operand.
        left: Box<Operand>,
        /// `true` for `-`, `false` for `+`.
        minus: bool,
        /// Right operand.
        right: Box<Operand>,
    },
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Value(Value::Text(s)) | Operand::Text(s) => {
                write!(f, "'{}'", s.replace('\'', "''"))
            }
            Operand::Value(v) => write!(f, "{v}"),
            Operand::Number(n) => f.write_str(n),
            Operand::Null => f.write_str("NULL"),
            Operand::Param(n) => write!(f, "${n}"),
            Operand::Now => f.write_str("now()"),
            Operand::Interval(ns) => write!(f, "interval '{}'", show_interval(*ns)),
            Operand::Arith { left, minus, right } => {
                write!(f, "{left} {} {right}", if *minus { "-" } else { "+" })
            }
        }
    }
}

impl fmt::Display for Pred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[Pred], sep: &str| -> fmt::Result {
            f.write_str("(")?;
            for (i, p) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{p}")?;
            }
            f.write_str(")")
        };
        match self {
            Pred::True => f.write_str("TRUE"),
            Pred::False => f.write_str("FALSE"),
            Pred::Cmp { column, op, value } => write!(f, "{column} {} {value}", op.symbol()),
            Pred::In {
                column,
                values,
                negated,
            } => {
                write!(f, "{column} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Pred::Between {
                column,
                low,
                high,
                negated,
            } => write!(
                f,
                "{column} {}BETWEEN {low} AND {high}",
                if *negated { "NOT " } else { "" }
            ),
            Pred::IsNull { column, negated } => {
                write!(f, "{column} IS {}NULL", if *negated { "NOT " } else { "" })
            }
            Pred::And(items) => list(f, items, " AND "),
            Pred::Or(items) => list(f, items, " OR "),
            Pred::Not(p) => write!(f, "NOT {p}"),
        }
    }
}

/// An interval in its largest whole unit: `90 seconds` becomes `90s`, `1 hour` `1h`.
pub fn show_interval(ns: i64) -> String {
    const UNITS: [(i64, &str); 6] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
    ];
    for (unit, name) in UNITS {
        if ns != 0 && ns % unit == 0 {
            return format!("{}{name}", ns / unit);
        }
    }
    format!("{ns}ns")
}

/// Parses an interval: `1 hour`, `90 seconds`, `1m`, `15min`, `2 days`, `1h 30m`. `None`
/// when it is not one, or is zero or too long to count in nanoseconds.
pub fn parse_interval(text: &str) -> Option<i64> {
    let d = humantime::parse_duration(text.trim()).ok()?;
    i64::try_from(d.as_nanos()).ok().filter(|ns| *ns > 0)
}

/// Parses an RFC 3339 timestamp (`2026-11-26T10:00:00Z`, fractions allowed; a missing zone
/// is UTC) into nanoseconds since the Unix epoch. `None` when it is not one.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nanoseconds.
pub fn format_timestamp(ns: i64) -> String {
    match u64::try_from(ns) {
        Ok(ns) => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
            humantime::format_rfc3339_nanos(t).to_string()
        }
        Err(_) => format!("{ns}ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_timestamps_parse() {
        assert_eq!(parse_interval("1 hour"), Some(3_600_000_000_000));
        assert_eq!(parse_interval("1m"), Some(60_000_000_000));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("soon"), None);
        assert_eq!(
            parse_timestamp("2026-11-26T10:00:00Z"),
            Some(1_795_687_200_000_000_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(
            format_timestamp(1_795_687_200_000_000_001),
            "2026-11-26T10:00:00.000000001Z"
        );
        assert_eq!(show_interval(90_000_000_000), "90s");
        assert_eq!(show_interval(3_600_000_000_000), "1h");
    }

    #[test]
    fn predicates_display_as_sql() {
        let p = Pred::And(vec![
            Pred::Cmp {
                column: "instrument".into(),
                op: CmpOp::Eq,
                value: Operand::Text("ACME".into()),
            },
            Pred::Not(Box::new(Pred::IsNull {
                column: "price".into(),
                negated: false,
            })),
        ]);
        assert_eq!(p.to_string(), "(instrument = 'ACME' AND NOT price IS NULL)");
    }
}
