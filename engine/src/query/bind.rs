//! Binding: checks every column a query names against its table and turns the values of the
//! filter into typed [`Value`]s of the compared column — numbers scaled to prices,
//! quantities and money, timestamps parsed, enumeration names checked, instrument symbols
//! looked up — and substitutes `$n` parameters.

use std::str::FromStr;

use tradestore_schema::{
    AccountStatus, ColumnType, Money, OrderKind, OrderStatus, Price, Quantity, Side, TableId,
    TimeInForce, Value,
};

use super::ast::{GroupKey, Operand, Pred, Query, SelectItem, parse_timestamp};
use crate::error::{Error, Result};

/// Looks up an instrument's id by its symbol.
pub type SymbolLookup<'a> = dyn Fn(&str) -> Result<Option<u64>> + 'a;

/// The enumeration names a column accepts, if it is an enumeration.
pub fn enum_names(table: TableId, column: &str) -> Option<&'static [&'static str]> {
    match (table, column) {
        (TableId::Orders | TableId::Trades, "side") => Some(Side::NAMES),
        (TableId::Orders, "kind") => Some(OrderKind::NAMES),
        (TableId::Orders, "time_in_force") => Some(TimeInForce::NAMES),
        (TableId::Orders, "status") => Some(OrderStatus::NAMES),
        (TableId::Accounts, "status") => Some(AccountStatus::NAMES),
        _ => None,
    }
}

/// Gives a value read back from JSON its column's variant again: JSON cannot tell an id
/// (`U64`) from a non-negative signed integer (`I64`). Text and unknown columns are left.
pub(crate) fn retype_value(table: TableId, column: &str, v: &mut Value) {
    let typed = match table.column(column).map(|c| c.ty) {
        Some(ColumnType::Id) => v.as_u64().map(Value::U64),
        Some(ColumnType::Text | ColumnType::Enum) | None => None,
        Some(_) => v.as_i64().map(Value::I64),
    };
    if let Some(t) = typed {
        *v = t;
    }
}

/// Whether the column holds an instrument id (so a symbol may stand for it).
fn is_instrument_ref(table: TableId, column: &str) -> bool {
    column == "instrument" || (table == TableId::Instruments && column == "id")
}

/// The type of a column of `table`, or an error listing the table's columns.
pub fn column_type(table: TableId, column: &str) -> Result<ColumnType> {
    table.column(column).map(|c| c.ty).ok_or_else(|| {
        let names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
        Error::invalid(format!(
            "table {table} has no column {column:?}; its columns are {}",
            names.join(", ")
        ))
    })
}

/// Binds a query: checks its columns, substitutes `params` (`$1` is `params[0]`) and types
/// every value. Time arithmetic (`now() - interval '1 hour'`) is left for the rewriter to
/// fold.
pub fn bind(mut query: Query, params: &[Operand], symbols: &SymbolLookup<'_>) -> Result<Query> {
    let table = query.table;
    for item in &query.select {
        match item {
            SelectItem::Column { name, .. } => {
                column_type(table, name)?;
            }
            SelectItem::Agg { args, .. } => {
                for a in args {
                    column_type(table, a)?;
                }
            }
            SelectItem::Bucket { column, .. } => time_column(table, column)?,
        }
    }
    for g in &query.group_by {
        match g {
            GroupKey::Column(c) => {
                column_type(table, c)?;
            }
            GroupKey::Bucket { column, .. } => time_column(table, column)?,
        }
    }
    if let Some(l) = &query.latest {
        column_type(table, &l.ts)?;
        for c in &l.partition_by {
            column_type(table, c)?;
        }
    }
    let outputs: Vec<String> = query.select.iter().map(|s| s.output_name()).collect();
    // Results are read by column name (JSON rows are objects, ORDER BY names outputs): two
    // columns of one name would lose one's values.
    for (i, o) in outputs.iter().enumerate() {
        if outputs[..i].contains(o) {
            return Err(Error::invalid(format!(
                "two output columns are named {o:?}; give one a name of its own with AS"
            )));
        }
    }
    for o in &query.order_by {
        if !outputs.contains(&o.name) && table.column(&o.name).is_none() {
            return Err(Error::invalid(format!(
                "ORDER BY {}: not a column of {table} nor an output column",
                o.name
            )));
        }
    }
    let b = Binder {
        table,
        params,
        symbols,
    };
    query.filter = b.pred(query.filter)?;
    query.limit = query.limit.map(|l| b.count(l, "LIMIT")).transpose()?;
    query.offset = query.offset.map(|o| b.count(o, "OFFSET")).transpose()?;
    Ok(query)
}

fn time_column(table: TableId, column: &str) -> Result<()> {
    match column_type(table, column)? {
        ColumnType::Timestamp => Ok(()),
        _ => Err(Error::invalid(format!(
            "time buckets need a timestamp column; {table}.{column} is not one"
        ))),
    }
}

struct Binder<'a> {
    table: TableId,
    params: &'a [Operand],
    symbols: &'a SymbolLookup<'a>,
}

impl Binder<'_> {
    fn pred(&self, p: Pred) -> Result<Pred> {
        Ok(match p {
            Pred::True | Pred::False => p,
            Pred::Cmp { column, op, value } => {
                let value = self.value(&column, value)?;
                Pred::Cmp { column, op, value }
            }
            Pred::In {
                column,
                values,
                negated,
            } => {
                let values = values
                    .into_iter()
                    .map(|v| self.value(&column, v))
                    .collect::<Result<_>>()?;
                Pred::In {
                    column,
                    values,
                    negated,
                }
            }
            Pred::Between {
                column,
                low,
                high,
                negated,
            } => {
                let low = self.value(&column, low)?;
                let high = self.value(&column, high)?;
                Pred::Between {
                    column,
                    low,
                    high,
                    negated,
                }
            }
            Pred::IsNull { column, negated } => {
                column_type(self.table, &column)?;
                Pred::IsNull { column, negated }
            }
            Pred::And(v) => Pred::And(v.into_iter().map(|p| self.pred(p)).collect::<Result<_>>()?),
            Pred::Or(v) => Pred::Or(v.into_iter().map(|p| self.pred(p)).collect::<Result<_>>()?),
            Pred::Not(p) => Pred::Not(Box::new(self.pred(*p)?)),
        })
    }

    fn param(&self, n: usize) -> Result<Operand> {
        n.checked_sub(1)
            .and_then(|i| self.params.get(i))
            .cloned()
            .ok_or_else(|| {
                Error::invalid(format!(
                    "parameter ${n} has no value ({} given)",
                    self.params.len()
                ))
            })
    }

    /// A LIMIT or OFFSET: a non-negative integer.
    fn count(&self, o: Operand, what: &str) -> Result<Operand> {
        let o = match o {
            Operand::Param(n) => self.param(n)?,
            o => o,
        };
        let n = match &o {
            Operand::Number(s) => s.parse::<u64>().ok(),
            Operand::Text(s) => s.parse::<u64>().ok(),
            Operand::Value(v) => v.as_u64(),
            _ => None,
        };
        n.map(|n| Operand::Value(Value::U64(n)))
            .ok_or_else(|| Error::invalid(format!("{what} {o}: expected a non-negative integer")))
    }

    /// Types one operand compared with `column`.
    fn value(&self, column: &str, o: Operand) -> Result<Operand> {
        let ty = column_type(self.table, column)?;
        let bad = |o: &Operand, want: &str| {
            Error::invalid(format!(
                "{}.{column} is compared with {o}, which is not {want}",
                self.table
            ))
        };
        Ok(match o {
            Operand::Param(n) => self.value(column, self.param(n)?)?,
            Operand::Null | Operand::Value(Value::Null) => Operand::Value(Value::Null),
            Operand::Now | Operand::Interval(_) => match ty {
                ColumnType::Timestamp => o,
                _ => return Err(bad(&o, "a timestamp column's value")),
            },
            Operand::Arith { left, minus, right } => match ty {
                ColumnType::Timestamp
                | ColumnType::Price
                | ColumnType::Quantity
                | ColumnType::Money => Operand::Arith {
                    left: Box::new(self.value(column, *left)?),
                    minus,
                    right: Box::new(self.value(column, *right)?),
                },
                _ => return Err(bad(&Operand::Arith { left, minus, right }, "a plain value")),
            },
            Operand::Value(v) => Operand::Value(match (ty, v) {
                (ColumnType::Id, v) => Value::U64(
                    v.as_u64()
                        .ok_or_else(|| bad(&Operand::Value(v.clone()), "an id"))?,
                ),
                (ColumnType::Text | ColumnType::Enum, Value::Text(s)) => {
                    return self.value(column, Operand::Text(s));
                }
                (ColumnType::Text | ColumnType::Enum, v) => {
                    return Err(bad(&Operand::Value(v), "text"));
                }
                (_, v) => Value::I64(
                    v.as_i64()
                        .ok_or_else(|| bad(&Operand::Value(v.clone()), "a number"))?,
                ),
            }),
            Operand::Number(ref s) => Operand::Value(match ty {
                ColumnType::Id => Value::U64(s.parse().map_err(|_| bad(&o, "an id"))?),
                ColumnType::Timestamp => Value::I64(s.parse().map_err(|_| {
                    bad(
                        &o,
                        "a timestamp (nanoseconds, or text like '2026-11-26T10:00:00Z')",
                    )
                })?),
                ColumnType::Price => Value::I64(
                    Price::from_str(s)
                        .map_err(|e| bad(&o, &format!("a price ({e})")))?
                        .raw(),
                ),
                ColumnType::Quantity => Value::I64(
                    Quantity::from_str(s)
                        .map_err(|e| bad(&o, &format!("a quantity ({e})")))?
                        .raw(),
                ),
                ColumnType::Money => Value::I64(
                    Money::from_str(s)
                        .map_err(|e| bad(&o, &format!("an amount ({e})")))?
                        .raw(),
                ),
                ColumnType::Text | ColumnType::Enum => return Err(bad(&o, "text")),
            }),
            Operand::Text(ref s) => Operand::Value(match ty {
                ColumnType::Text => Value::Text(s.clone()),
                ColumnType::Enum => {
                    if let Some(names) = enum_names(self.table, column)
                        && !names.contains(&s.as_str())
                    {
                        return Err(Error::invalid(format!(
                            "{}.{column} is one of {}; {o} is not",
                            self.table,
                            names.join(", ")
                        )));
                    }
                    Value::Text(s.clone())
                }
                ColumnType::Timestamp => Value::I64(
                    parse_timestamp(s)
                        .ok_or_else(|| bad(&o, "a timestamp like '2026-11-26T10:00:00Z'"))?,
                ),
                ColumnType::Id if is_instrument_ref(self.table, column) => match s.parse::<u64>() {
                    Ok(id) => Value::U64(id),
                    Err(_) => Value::U64((self.symbols)(s)?.ok_or_else(|| {
                        Error::not_found(format!("no instrument has the symbol {o}"))
                    })?),
                },
                ColumnType::Id => Value::U64(s.parse().map_err(|_| bad(&o, "an id"))?),
                ColumnType::Price | ColumnType::Quantity | ColumnType::Money => {
                    return self.value(column, Operand::Number(s.clone()));
                }
            }),
        })
    }
}
