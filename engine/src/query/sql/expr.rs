//! Names, `WHERE` conditions and values: from sqlparser expressions to [`Pred`] and
//! [`Operand`].

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, Ident, InTarget, Interval, ObjectName, ObjectNamePart,
    Spanned, UnaryOperator, Value, ValueWithSpan,
};
use sqlparser::tokenizer::Span;
use tradestore_schema::TableId;

use super::point::Source;
use crate::error::{Error, Result};
use crate::query::ast::{AggFunc, CmpOp, Operand, Pred, parse_interval};

/// What names in a query resolve against: its one table (and the table's alias).
pub(super) struct Scope<'s, 'a> {
    /// The text, for errors.
    pub src: &'s Source<'a>,
    /// The table read.
    pub table: TableId,
    /// `FROM trades t`: `t`.
    pub alias: Option<String>,
}

/// An identifier as SQL compares it: lower-cased unless quoted.
pub(super) fn name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// A function's (lower-cased) name, when it has a single part.
pub(super) fn function_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(ident.value.to_lowercase()),
        _ => None,
    }
}

impl Scope<'_, '_> {
    /// The column `name` (validated), or an error pointing at `span` that lists the columns.
    pub(super) fn column_named(&self, name: &str, span: Span) -> Result<String> {
        match self.table.column(name) {
            Some(c) => Ok(c.name.to_owned()),
            None => {
                let names: Vec<&str> = self.table.columns().iter().map(|c| c.name).collect();
                Err(self.src.error(
                    span,
                    format!(
                        "unknown column {name:?} in table {}; the columns are {}",
                        self.table,
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    /// An expression's span, with a call's closing parenthesis.
    pub(super) fn span_of(&self, e: &Expr) -> Span {
        match e {
            Expr::Function(f) => self.src.call_span(f.name.span()),
            _ => e.span(),
        }
    }

    /// The column an identifier names.
    pub(super) fn column(&self, ident: &Ident) -> Result<String> {
        self.column_named(&name(ident), ident.span)
    }

    /// The column an expression names when it is a column reference (`price`, `t.price`,
    /// `(price)`), `None` when it is something else.
    pub(super) fn column_of(&self, e: &Expr) -> Result<Option<String>> {
        match e {
            Expr::Identifier(ident) => self.column(ident).map(Some),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, column] => {
                    let q = name(qualifier);
                    if q == self.table.name() || self.alias.as_deref() == Some(q.as_str()) {
                        self.column(column).map(Some)
                    } else {
                        Err(self.src.error(
                            qualifier.span,
                            format!(
                                "unknown table or alias {q:?}; the query reads table {}",
                                self.table
                            ),
                        ))
                    }
                }
                _ => Err(self.src.error(
                    e.span(),
                    "a column name takes at most one qualifier, e.g. trades.price",
                )),
            },
            Expr::Nested(inner) => self.column_of(inner),
            _ => Ok(None),
        }
    }

    /// A `WHERE` condition.
    pub(super) fn predicate(&self, e: &Expr) -> Result<Pred> {
        match e {
            Expr::BinaryOp {
                op: op @ (BinaryOperator::And | BinaryOperator::Or),
                ..
            } => {
                // `a AND b AND c` nests to the left: walk the chain without recursing.
                let mut operands = Vec::new();
                let mut cur = e;
                while let Expr::BinaryOp { left, op: o, right } = cur
                    && o == op
                {
                    operands.push(right.as_ref());
                    cur = left;
                }
                operands.push(cur);
                let preds = operands
                    .into_iter()
                    .rev()
                    .map(|x| self.predicate(x))
                    .collect::<Result<Vec<_>>>()?;
                Ok(if *op == BinaryOperator::And {
                    Pred::And(preds)
                } else {
                    Pred::Or(preds)
                })
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Pred::Not(Box::new(self.predicate(expr)?))),
            Expr::Nested(inner) => self.predicate(inner),
            Expr::BinaryOp { left, op, right } => match cmp_op(op) {
                Some(op) => self.comparison(e, left, op, right),
                None => Err(self.src.error(
                    e.span(),
                    format!("operator {op} is not supported in a condition"),
                )),
            },
            Expr::In {
                expr,
                target,
                negated,
                ..
            } => {
                let column = self.tested_column(expr, "IN")?;
                match target {
                    InTarget::List(list) => Ok(Pred::In {
                        column,
                        values: list
                            .iter()
                            .map(|v| self.operand(v, None))
                            .collect::<Result<_>>()?,
                        negated: *negated,
                    }),
                    InTarget::Subquery(q) => {
                        Err(self.src.error(q.span(), "subqueries are not supported"))
                    }
                    _ => Err(self.src.error(
                        e.span(),
                        "IN takes a list of values, e.g. side IN ('buy', 'sell')",
                    )),
                }
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => Ok(Pred::Between {
                column: self.tested_column(expr, "BETWEEN")?,
                low: self.operand(low, None)?,
                high: self.operand(high, None)?,
                negated: *negated,
            }),
            Expr::IsNull(x) | Expr::IsNotNull(x) => Ok(Pred::IsNull {
                column: self.tested_column(x, "IS NULL")?,
                negated: matches!(e, Expr::IsNotNull(_)),
            }),
            Expr::Value(ValueWithSpan {
                value: Value::Boolean(b),
                ..
            }) => Ok(if *b { Pred::True } else { Pred::False }),
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => {
                Err(self.src.error(q.span(), "subqueries are not supported"))
            }
            Expr::Function(f) => Err(self.unknown_function(&f.name, true)),
            _ => Err(self.src.error(
                e.span(),
                "unsupported condition; a condition is a comparison (=, <>, <, <=, >, >=), \
                 IN, BETWEEN or IS NULL on a column, combined with AND, OR and NOT",
            )),
        }
    }

    /// The column on the left of `IN`, `BETWEEN` or `IS NULL`.
    fn tested_column(&self, e: &Expr, what: &str) -> Result<String> {
        match self.column_of(e)? {
            Some(c) => Ok(c),
            None => Err(self
                .src
                .error(e.span(), format!("{what} needs a column on its left"))),
        }
    }

    /// `left op right` with a column on one side and a value on the other.
    fn comparison(&self, e: &Expr, left: &Expr, op: CmpOp, right: &Expr) -> Result<Pred> {
        match (self.column_of(left)?, self.column_of(right)?) {
            (Some(_), Some(_)) => Err(self.src.error(
                e.span(),
                "comparisons between two columns are not supported; compare a column with a value",
            )),
            (Some(column), None) => Ok(Pred::Cmp {
                column,
                op,
                value: self.operand(right, None)?,
            }),
            (None, Some(column)) => Ok(Pred::Cmp {
                column,
                op: op.flip(),
                value: self.operand(left, None)?,
            }),
            (None, None) => {
                self.operand(left, None)?;
                self.operand(right, None)?;
                Err(self.src.error(
                    e.span(),
                    "a comparison needs a column on one side, e.g. price > 100",
                ))
            }
        }
    }

    /// A value. `arith` is the span of the enclosing `+`/`-` expression, if any.
    pub(super) fn operand(&self, e: &Expr, arith: Option<Span>) -> Result<Operand> {
        match e {
            Expr::Value(v) => value(self.src, v),
            Expr::UnaryOp {
                op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
                expr,
            } => match expr.as_ref() {
                Expr::Value(ValueWithSpan {
                    value: Value::Number(n, _),
                    ..
                }) if *op == UnaryOperator::Minus => Ok(Operand::Number(format!("-{n}"))),
                Expr::Value(ValueWithSpan {
                    value: Value::Number(n, _),
                    ..
                }) => Ok(Operand::Number(n.clone())),
                other => Err(self
                    .src
                    .error(other.span(), "a sign can only be written before a number")),
            },
            Expr::Nested(inner) => self.operand(inner, arith),
            Expr::Interval(iv) => interval(self.src, iv).map(Operand::Interval),
            Expr::Function(f) => {
                let is_now = function_name(&f.name).as_deref() == Some("now")
                    && f.over.is_none()
                    && f.filter.is_none()
                    && f.within_group.is_empty()
                    && matches!(&f.parameters, FunctionArguments::None)
                    && matches!(&f.args, FunctionArguments::List(l)
                        if l.args.is_empty() && l.clauses.is_empty()
                            && l.duplicate_treatment.is_none());
                if is_now {
                    Ok(Operand::Now)
                } else {
                    Err(self.unknown_function(&f.name, true))
                }
            }
            Expr::BinaryOp {
                op: BinaryOperator::Plus | BinaryOperator::Minus,
                ..
            } => {
                let arith = Some(arith.unwrap_or_else(|| e.span()));
                // `a + b - c` nests to the left: walk the chain without recursing.
                let mut rights = Vec::new();
                let mut cur = e;
                while let Expr::BinaryOp {
                    left,
                    op: op @ (BinaryOperator::Plus | BinaryOperator::Minus),
                    right,
                } = cur
                {
                    rights.push((*op == BinaryOperator::Minus, right.as_ref()));
                    cur = left;
                }
                let mut acc = self.operand(cur, arith)?;
                for (minus, right) in rights.into_iter().rev() {
                    acc = Operand::Arith {
                        left: Box::new(acc),
                        minus,
                        right: Box::new(self.operand(right, arith)?),
                    };
                }
                Ok(acc)
            }
            Expr::BinaryOp { op, .. } => Err(self.src.error(
                e.span(),
                format!("operator {op} is not supported between values; only + and - are"),
            )),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                self.column_of(e)?;
                Err(match arith {
                    Some(span) => self
                        .src
                        .error(span, "arithmetic on columns is not supported"),
                    None => self.src.error(
                        e.span(),
                        "a value is expected here, not a column; comparisons between two columns are not supported",
                    ),
                })
            }
            Expr::Subquery(q) => Err(self.src.error(q.span(), "subqueries are not supported")),
            _ => Err(self.src.error(
                e.span(),
                "unsupported value; a value is a number, a 'string', NULL, $n, now(), \
                 interval '...', or + and - between them",
            )),
        }
    }

    /// An error for a function that is not allowed where it is written.
    pub(super) fn unknown_function(&self, name: &ObjectName, in_condition: bool) -> Error {
        let shown = function_name(name).unwrap_or_else(|| name.to_string());
        let message = if in_condition && AggFunc::from_name(&shown).is_some() {
            format!("aggregate {shown}() cannot be used in WHERE")
        } else if in_condition {
            format!("unknown function {shown:?}; the only function allowed in a condition is now()")
        } else {
            format!(
                "unknown function {shown:?}; the functions are count, sum, min, max, avg, vwap and time_bucket"
            )
        };
        self.src.error(name.span(), message)
    }
}

/// The comparison a binary operator is, if it is one.
fn cmp_op(op: &BinaryOperator) -> Option<CmpOp> {
    Some(match op {
        BinaryOperator::Eq => CmpOp::Eq,
        BinaryOperator::NotEq => CmpOp::Ne,
        BinaryOperator::Lt => CmpOp::Lt,
        BinaryOperator::LtEq => CmpOp::Le,
        BinaryOperator::Gt => CmpOp::Gt,
        BinaryOperator::GtEq => CmpOp::Ge,
        _ => return None,
    })
}

/// A literal.
fn value(src: &Source, v: &ValueWithSpan) -> Result<Operand> {
    match &v.value {
        Value::Number(n, _) => Ok(Operand::Number(n.clone())),
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::NationalStringLiteral(s)
        | Value::UnicodeStringLiteral(s) => Ok(Operand::Text(s.clone())),
        Value::Null => Ok(Operand::Null),
        Value::Placeholder(p) => param(src, p, v.span).map(Operand::Param),
        Value::Boolean(_) => Err(src.error(
            v.span,
            "TRUE and FALSE can only be whole conditions; no column holds booleans",
        )),
        _ => Err(src.error(
            v.span,
            "unsupported literal; write numbers as 100 or 100.25 and text as 'text'",
        )),
    }
}

/// A `$n` parameter's number (1-based).
pub(super) fn param(src: &Source, p: &str, span: Span) -> Result<usize> {
    if p == "?" {
        return Err(src.error(span, "write numbered parameters ($1, $2, ...) instead of ?"));
    }
    let digits = p.strip_prefix('$').unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(src.error(
            span,
            format!("invalid parameter {p}; parameters are $1, $2, ..."),
        ));
    }
    match digits.parse::<usize>() {
        Ok(0) => Err(src.error(span, "parameters are numbered from $1")),
        Ok(n) => Ok(n),
        Err(_) => Err(src.error(span, format!("parameter number {p} is too large"))),
    }
}

/// `interval '1 minute'` (or `interval '1' minute`) in nanoseconds.
pub(super) fn interval(src: &Source, iv: &Interval) -> Result<i64> {
    let span = iv.value.span();
    if iv.leading_precision.is_some()
        || iv.last_field.is_some()
        || iv.fractional_seconds_precision.is_some()
    {
        return Err(src.error(
            span,
            "unsupported interval; write e.g. interval '1 minute' or interval '90 seconds'",
        ));
    }
    let text = match iv.value.as_ref() {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s) | Value::Number(s, _),
            ..
        }) => s.clone(),
        _ => {
            return Err(src.error(
                span,
                "an interval's length is a quoted text, e.g. interval '1 minute'",
            ));
        }
    };
    let text = match &iv.leading_field {
        Some(field) => format!("{text} {field}").to_lowercase(),
        None => text,
    };
    parse_interval(&text).ok_or_else(|| {
        src.error(
            span,
            format!("invalid interval {text:?}; write e.g. '1 minute', '90 seconds' or '1h 30m'"),
        )
    })
}
