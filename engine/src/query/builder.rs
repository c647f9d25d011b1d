//! The typed query builder: the same logical [`Query`] as SQL, built in Rust.
//!
//! ```
//! use tradestore::query::builder::{col, select};
//! use tradestore::query::ast::AggFunc;
//! use tradestore::schema::TableId;
//!
//! // SELECT id, price FROM trades WHERE instrument = 7 AND ts >= 1000 ORDER BY ts DESC LIMIT 100
//! let q = select(TableId::Trades)
//!     .columns(["id", "price"])
//!     .filter(col("instrument").eq(7u64).and(col("ts").ge(1000i64)))
//!     .order_by_desc("ts")
//!     .limit(100)
//!     .build();
//! assert_eq!(q.limit, Some(tradestore::query::ast::Operand::Value(100u64.into())));
//!
//! // SELECT instrument, vwap(price, quantity) FROM trades GROUP BY instrument
//! let q = select(TableId::Trades)
//!     .column("instrument")
//!     .aggregate(AggFunc::Vwap, ["price", "quantity"])
//!     .group_by("instrument")
//!     .build();
//! assert!(q.is_aggregate());
//! ```

use tradestore_schema::{TableId, Value};

use super::ast::{AggFunc, CmpOp, GroupKey, Latest, Operand, OrderKey, Pred, Query, SelectItem};

/// Starts a query of `table`.
pub fn select(table: TableId) -> Builder {
    Builder {
        query: Query::new(table),
    }
}

/// A column, to compare with values.
pub fn col(name: &str) -> Col {
    Col(name.to_owned())
}

/// A value given to the builder: typed values pass through; text is bound like a SQL string
/// literal (timestamps, enumeration names, symbols).
pub fn text(s: &str) -> Operand {
    Operand::Text(s.to_owned())
}

/// The `$n` parameter (1-based).
pub fn param(n: usize) -> Operand {
    Operand::Param(n)
}

impl From<u64> for Operand {
    fn from(v: u64) -> Operand {
        Operand::Value(Value::U64(v))
    }
}

impl From<i64> for Operand {
    fn from(v: i64) -> Operand {
        Operand::Value(Value::I64(v))
    }
}

impl From<&str> for Operand {
    fn from(v: &str) -> Operand {
        Operand::Text(v.to_owned())
    }
}

impl From<&Value> for Operand {
    fn from(v: &Value) -> Operand {
        Operand::Value(v.clone())
    }
}

impl From<Value> for Operand {
    fn from(v: Value) -> Operand {
        Operand::Value(v)
    }
}

/// A column in a predicate.
#[derive(Clone, Debug)]
pub struct Col(String);

impl Col {
    fn cmp(self, op: CmpOp, v: impl Into<Operand>) -> Pred {
        Pred::Cmp {
            column: self.0,
            op,
            value: v.into(),
        }
    }

    /// `col = v`
    pub fn eq(self, v: impl Into<Operand>) -> Pred {
        self.cmp(CmpOp::Eq, v)
    }

    /// `col <> v`
    pub fn ne(self, v: impl Into<Operand>) -> Pred {
        self.cmp(CmpOp::Ne, v)
    }

    /// `col < v`
    pub fn lt(self, v: impl Into<Operand>) -> Pred {
        self.cmp(CmpOp::Lt, v)
    }

    /// `col <= v`
    pub fn le(self, v: impl Into<Operand>) -> Pred {
        self.cmp(CmpOp::Le, v)
    }

    /// `col > v`
    pub fn gt(self, v: impl Into<Operand>) -> Pred {
        self.cmp(CmpOp::Gt, v)
    }

    /// `col >= v`
    pub fn ge(self, v: impl Into<Operand>) -> Pred {
        self.cmp(CmpOp::Ge, v)
    }

    /// `col IN (values)`
    pub fn is_in<V: Into<Operand>>(self, values: impl IntoIterator<Item = V>) -> Pred {
        Pred::In {
            column: self.0,
            values: values.into_iter().map(Into::into).collect(),
            negated: false,
        }
    }

    /// `col BETWEEN low AND high`
    pub fn between(self, low: impl Into<Operand>, high: impl Into<Operand>) -> Pred {
        Pred::Between {
            column: self.0,
            low: low.into(),
            high: high.into(),
            negated: false,
        }
    }

    /// `col IS NULL`
    pub fn is_null(self) -> Pred {
        Pred::IsNull {
            column: self.0,
            negated: false,
        }
    }

    /// `col IS NOT NULL`
    pub fn is_not_null(self) -> Pred {
        Pred::IsNull {
            column: self.0,
            negated: true,
        }
    }
}

impl Pred {
    /// `self AND other`
    pub fn and(self, other: Pred) -> Pred {
        match self {
            Pred::True => other,
            Pred::And(mut v) => {
                v.push(other);
                Pred::And(v)
            }
            p => Pred::And(vec![p, other]),
        }
    }

    /// `self OR other`
    pub fn or(self, other: Pred) -> Pred {
        match self {
            Pred::Or(mut v) => {
                v.push(other);
                Pred::Or(v)
            }
            p => Pred::Or(vec![p, other]),
        }
    }

    /// `NOT self`
    pub fn negate(self) -> Pred {
        Pred::Not(Box::new(self))
    }
}

/// Builds a [`Query`].
#[derive(Clone, Debug)]
pub struct Builder {
    query: Query,
}

impl Builder {
    /// Adds output columns.
    pub fn columns<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Builder {
        for n in names {
            self = self.column(n);
        }
        self
    }

    /// Adds one output column.
    pub fn column(mut self, name: &str) -> Builder {
        self.query.select.push(SelectItem::Column {
            name: name.to_owned(),
            alias: None,
        });
        self
    }

    /// Adds an aggregate over the given columns (none for `count(*)`).
    pub fn aggregate<'a>(
        mut self,
        func: AggFunc,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Builder {
        self.query.select.push(SelectItem::Agg {
            func,
            args: args.into_iter().map(str::to_owned).collect(),
            alias: None,
        });
        self
    }

    /// Adds the time bucket of `column` (width in nanoseconds) as an output column and a
    /// grouping key.
    pub fn bucket(mut self, column: &str, width_ns: i64) -> Builder {
        self.query.select.push(SelectItem::Bucket {
            column: column.to_owned(),
            width_ns,
            alias: None,
        });
        self.query.group_by.push(GroupKey::Bucket {
            column: column.to_owned(),
            width_ns,
        });
        self
    }

    /// ANDs a condition into the filter.
    pub fn filter(mut self, p: Pred) -> Builder {
        self.query.filter = std::mem::replace(&mut self.query.filter, Pred::True).and(p);
        self
    }

    /// Groups by a column.
    pub fn group_by(mut self, column: &str) -> Builder {
        self.query
            .group_by
            .push(GroupKey::Column(column.to_owned()));
        self
    }

    /// Orders by a column or output name, ascending.
    pub fn order_by(mut self, name: &str) -> Builder {
        self.query.order_by.push(OrderKey {
            name: name.to_owned(),
            desc: false,
        });
        self
    }

    /// Orders by a column or output name, descending.
    pub fn order_by_desc(mut self, name: &str) -> Builder {
        self.query.order_by.push(OrderKey {
            name: name.to_owned(),
            desc: true,
        });
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Builder {
        self.query.limit = Some(Operand::Value(Value::U64(n)));
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Builder {
        self.query.offset = Some(Operand::Value(Value::U64(n)));
        self
    }

    /// Keeps the latest row (greatest `ts`) per value of the partition columns.
    pub fn latest_on<'a>(
        mut self,
        ts: &str,
        partition_by: impl IntoIterator<Item = &'a str>,
    ) -> Builder {
        self.query.latest = Some(Latest {
            ts: ts.to_owned(),
            partition_by: partition_by.into_iter().map(str::to_owned).collect(),
        });
        self
    }

    /// The query.
    pub fn build(self) -> Query {
        self.query
    }
}
