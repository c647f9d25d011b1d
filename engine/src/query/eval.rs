//! The three-valued evaluator: a [`Pred`] against one row, in SQL's logic of true, false
//! and unknown (`None`).
//!
//! The executor uses it for residual filters and the tests use it as the reference the
//! rewriter is checked against, so it follows the definitions literally:
//!
//! - a comparison with a NULL column value or a NULL operand is unknown;
//! - `x IN (v1, .., vn)` is `x = v1 OR .. OR x = vn`: true when `x` equals some value, else
//!   unknown when `x` or some value is NULL, else false (an empty list is false for every
//!   row, also a NULL one); `NOT IN` is its negation;
//! - `x BETWEEN lo AND hi` is `x >= lo AND x <= hi`; `NOT BETWEEN` is its negation;
//! - `IS [NOT] NULL` is never unknown;
//! - `AND`, `OR` and `NOT` follow SQL's (Kleene's) truth tables; an empty `AND` is true,
//!   an empty `OR` false. Evaluation of an `AND` stops at the first false member and of
//!   an `OR` at the first true one.
//!
//! Integers of different variants (`U64` and `I64`) compare by numeric value; text
//! compared with a number is an [`ErrorKind::Invalid`](crate::error::ErrorKind) error, and
//! so is an operand that binding has not turned into a [`Value`].

use std::cmp::Ordering;

use tradestore_schema::Value;

use crate::error::{Error, Result};
use crate::query::ast::{CmpOp, Operand, Pred};

/// Evaluates `pred` against the row whose column values `row` returns, in three-valued
/// logic: `Some(true)`, `Some(false)`, or `None` for unknown.
///
/// Errors when an operand is not a bound [`Operand::Value`], or when text is compared with
/// a number.
pub fn eval(pred: &Pred, row: &dyn Fn(&str) -> Value) -> Result<Option<bool>> {
    Ok(match pred {
        Pred::True => Some(true),
        Pred::False => Some(false),
        Pred::Cmp { column, op, value } => {
            let value = bound(value)?;
            compare(&row(column), value)?.map(|o| holds(*op, o))
        }
        Pred::In {
            column,
            values,
            negated,
        } => {
            let x = row(column);
            let mut found = Some(false);
            for v in values {
                let v = bound(v)?;
                if found == Some(true) {
                    continue;
                }
                match compare(&x, v)? {
                    Some(Ordering::Equal) => found = Some(true),
                    Some(_) => {}
                    None => found = None,
                }
            }
            negate_if(found, *negated)
        }
        Pred::Between {
            column,
            low,
            high,
            negated,
        } => {
            let (low, high) = (bound(low)?, bound(high)?);
            let x = row(column);
            let above = compare(&x, low)?.map(|o| o != Ordering::Less);
            let below = compare(&x, high)?.map(|o| o != Ordering::Greater);
            negate_if(and3(above, below), *negated)
        }
        Pred::IsNull { column, negated } => Some(matches!(row(column), Value::Null) != *negated),
        Pred::And(items) => {
            let mut acc = Some(true);
            for p in items {
                match eval(p, row)? {
                    Some(false) => return Ok(Some(false)),
                    Some(true) => {}
                    None => acc = None,
                }
            }
            acc
        }
        Pred::Or(items) => {
            let mut acc = Some(false);
            for p in items {
                match eval(p, row)? {
                    Some(true) => return Ok(Some(true)),
                    Some(false) => {}
                    None => acc = None,
                }
            }
            acc
        }
        Pred::Not(p) => eval(p, row)?.map(|b| !b),
    })
}

/// Whether a `WHERE pred` keeps the row: true only when `pred` evaluates to true (false
/// and unknown both drop it).
pub fn keeps(pred: &Pred, row: &dyn Fn(&str) -> Value) -> Result<bool> {
    Ok(eval(pred, row)? == Some(true))
}

/// Compares two values in SQL's sense: `None` when either is NULL. Integers compare by
/// numeric value whatever their variants; text compares with text only.
pub fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>> {
    Ok(Some(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => return Ok(None),
        (Value::U64(x), Value::U64(y)) => x.cmp(y),
        (Value::I64(x), Value::I64(y)) => x.cmp(y),
        (Value::U64(x), Value::I64(y)) => i128::from(*x).cmp(&i128::from(*y)),
        (Value::I64(x), Value::U64(y)) => i128::from(*x).cmp(&i128::from(*y)),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Text(_), _) | (_, Value::Text(_)) => {
            return Err(Error::invalid(format!(
                "cannot compare text with a number ({a:?} and {b:?})"
            )));
        }
    }))
}

/// Whether `op` holds between two operands that compare as `ord`.
fn holds(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// The value of a bound operand.
fn bound(o: &Operand) -> Result<&Value> {
    match o {
        Operand::Value(v) => Ok(v),
        other => Err(Error::invalid(format!(
            "unbound operand {other} in a filter: bind the query before evaluating it"
        ))),
    }
}

/// Three-valued AND of two truth values.
fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// Three-valued NOT when `negated`.
fn negate_if(v: Option<bool>, negated: bool) -> Option<bool> {
    if negated { v.map(|b| !b) } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn cmp(column: &str, op: CmpOp, v: Value) -> Pred {
        Pred::Cmp {
            column: column.into(),
            op,
            value: Operand::Value(v),
        }
    }

    fn in_list(column: &str, values: Vec<Value>, negated: bool) -> Pred {
        Pred::In {
            column: column.into(),
            values: values.into_iter().map(Operand::Value).collect(),
            negated,
        }
    }

    fn between(column: &str, low: Value, high: Value, negated: bool) -> Pred {
        Pred::Between {
            column: column.into(),
            low: Operand::Value(low),
            high: Operand::Value(high),
            negated,
        }
    }

    /// A predicate that is true, false or unknown for the row `x = 0` or `x = NULL`.
    fn lit(t: Option<bool>) -> Pred {
        match t {
            Some(true) => Pred::True,
            Some(false) => Pred::False,
            None => cmp("n", CmpOp::Eq, Value::I64(0)),
        }
    }

    fn row_x(x: Value) -> impl Fn(&str) -> Value {
        move |c: &str| match c {
            "x" => x.clone(),
            "t" => Value::Text("abc".into()),
            _ => Value::Null,
        }
    }

    fn ev(p: &Pred, x: Value) -> Option<bool> {
        eval(p, &row_x(x)).unwrap()
    }

    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const U: Option<bool> = None;

    #[test]
    fn and_or_not_follow_the_three_valued_truth_tables() {
        let all = [T, F, U];
        for a in all {
            assert_eq!(ev(&Pred::Not(Box::new(lit(a))), Value::Null), a.map(|b| !b));
            for b in all {
                let and = match (a, b) {
                    (F, _) | (_, F) => F,
                    (T, T) => T,
                    _ => U,
                };
                let or = match (a, b) {
                    (T, _) | (_, T) => T,
                    (F, F) => F,
                    _ => U,
                };
                assert_eq!(ev(&Pred::And(vec![lit(a), lit(b)]), Value::Null), and);
                assert_eq!(ev(&Pred::Or(vec![lit(a), lit(b)]), Value::Null), or);
            }
        }
        assert_eq!(ev(&Pred::And(vec![]), Value::Null), T);
        assert_eq!(ev(&Pred::Or(vec![]), Value::Null), F);
    }

    #[test]
    fn comparisons_with_null_are_unknown() {
        let ops = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ];
        for op in ops {
            assert_eq!(ev(&cmp("x", op, Value::I64(1)), Value::Null), U);
            assert_eq!(ev(&cmp("x", op, Value::Null), Value::I64(1)), U);
            assert_eq!(ev(&cmp("x", op, Value::Null), Value::Null), U);
        }
        let at = |op, x| ev(&cmp("x", op, Value::I64(5)), Value::I64(x));
        assert_eq!((at(CmpOp::Eq, 5), at(CmpOp::Eq, 4)), (T, F));
        assert_eq!((at(CmpOp::Ne, 5), at(CmpOp::Ne, 4)), (F, T));
        assert_eq!((at(CmpOp::Lt, 4), at(CmpOp::Lt, 5)), (T, F));
        assert_eq!((at(CmpOp::Le, 5), at(CmpOp::Le, 6)), (T, F));
        assert_eq!((at(CmpOp::Gt, 6), at(CmpOp::Gt, 5)), (T, F));
        assert_eq!((at(CmpOp::Ge, 5), at(CmpOp::Ge, 4)), (T, F));
    }

    #[test]
    fn in_lists() {
        let list = |vals: &[Option<i64>], neg| {
            in_list(
                "x",
                vals.iter()
                    .map(|v| v.map_or(Value::Null, Value::I64))
                    .collect(),
                neg,
            )
        };
        let p = list(&[Some(1), Some(2)], false);
        assert_eq!(ev(&p, Value::I64(2)), T);
        assert_eq!(ev(&p, Value::I64(3)), F);
        assert_eq!(ev(&p, Value::Null), U);
        let p = list(&[Some(1), None], false);
        assert_eq!(ev(&p, Value::I64(1)), T);
        assert_eq!(ev(&p, Value::I64(3)), U);
        let p = list(&[Some(1), None], true);
        assert_eq!(ev(&p, Value::I64(1)), F);
        assert_eq!(ev(&p, Value::I64(3)), U);
        let p = list(&[Some(1), Some(2)], true);
        assert_eq!(ev(&p, Value::I64(3)), T);
        assert_eq!(ev(&p, Value::Null), U);
        // An empty list is the empty OR.
        assert_eq!(ev(&list(&[], false), Value::Null), F);
        assert_eq!(ev(&list(&[], true), Value::Null), T);
    }

    #[test]
    fn between_is_inclusive_and_not_between_its_negation() {
        let p = between("x", Value::I64(1), Value::I64(3), false);
        let n = between("x", Value::I64(1), Value::I64(3), true);
        for (x, want) in [(0, F), (1, T), (2, T), (3, T), (4, F)] {
            assert_eq!(ev(&p, Value::I64(x)), want, "{x}");
            assert_eq!(ev(&n, Value::I64(x)), want.map(|b| !b), "{x}");
        }
        assert_eq!(ev(&p, Value::Null), U);
        assert_eq!(ev(&n, Value::Null), U);
        // A NULL bound leaves the other one able to decide.
        let p = between("x", Value::Null, Value::I64(3), false);
        assert_eq!(ev(&p, Value::I64(4)), F);
        assert_eq!(ev(&p, Value::I64(2)), U);
        let n = between("x", Value::Null, Value::I64(3), true);
        assert_eq!(ev(&n, Value::I64(4)), T);
    }

    #[test]
    fn is_null_is_never_unknown() {
        let is = Pred::IsNull {
            column: "x".into(),
            negated: false,
        };
        let not = Pred::IsNull {
            column: "x".into(),
            negated: true,
        };
        assert_eq!(ev(&is, Value::Null), T);
        assert_eq!(ev(&is, Value::I64(0)), F);
        assert_eq!(ev(&not, Value::Null), F);
        assert_eq!(ev(&not, Value::I64(0)), T);
    }

    #[test]
    fn integers_compare_numerically_across_variants() {
        assert_eq!(ev(&cmp("x", CmpOp::Eq, Value::I64(7)), Value::U64(7)), T);
        assert_eq!(ev(&cmp("x", CmpOp::Gt, Value::I64(-1)), Value::U64(0)), T);
        assert_eq!(
            ev(
                &cmp("x", CmpOp::Lt, Value::U64(u64::MAX)),
                Value::I64(i64::MAX)
            ),
            T
        );
        assert_eq!(
            ev(&in_list("x", vec![Value::U64(3)], false), Value::I64(3)),
            T
        );
        assert_eq!(
            ev(&cmp("t", CmpOp::Lt, Value::Text("abd".into())), Value::Null),
            T
        );
    }

    #[test]
    fn text_against_numbers_and_unbound_operands_are_invalid() {
        let e = eval(&cmp("t", CmpOp::Eq, Value::I64(1)), &row_x(Value::Null)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let p = Pred::Cmp {
            column: "x".into(),
            op: CmpOp::Gt,
            value: Operand::Now,
        };
        let e = eval(&p, &row_x(Value::I64(1))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("unbound"), "{}", e.message());
        let p = Pred::In {
            column: "x".into(),
            values: vec![Operand::Value(Value::I64(1)), Operand::Param(1)],
            negated: false,
        };
        assert!(eval(&p, &row_x(Value::I64(1))).is_err());
    }

    #[test]
    fn keeps_only_true() {
        let p = cmp("x", CmpOp::Gt, Value::I64(1));
        assert!(keeps(&p, &row_x(Value::I64(2))).unwrap());
        assert!(!keeps(&p, &row_x(Value::I64(1))).unwrap());
        assert!(!keeps(&p, &row_x(Value::Null)).unwrap());
    }
}
