//! Select items, aggregate and `time_bucket` calls, `GROUP BY` and `ORDER BY`.

use sqlparser::ast::{
    self, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    OrderByExpr, OrderBySort, SelectItemQualifiedWildcardKind, Spanned, Value, ValueWithSpan,
    WildcardAdditionalOptions,
};
use sqlparser::tokenizer::Span;
use tradestore_schema::ColumnType;

use super::expr::{Scope, function_name, interval, name};
use crate::error::Result;
use crate::query::ast::{AggFunc, GroupKey, OrderKey, SelectItem, parse_interval};

/// A function call allowed in the select list, `GROUP BY` and `ORDER BY`.
#[derive(Debug, PartialEq)]
pub(super) enum Call {
    /// An aggregate over columns.
    Agg { func: AggFunc, args: Vec<String> },
    /// `time_bucket(width, column)`.
    Bucket { column: String, width_ns: i64 },
}

impl Call {
    /// Whether `item` is this call (whatever its alias).
    fn is(&self, item: &SelectItem) -> bool {
        match (self, item) {
            (
                Call::Agg { func, args },
                SelectItem::Agg {
                    func: f, args: a, ..
                },
            ) => func == f && args == a,
            (
                Call::Bucket { column, width_ns },
                SelectItem::Bucket {
                    column: c,
                    width_ns: w,
                    ..
                },
            ) => column == c && width_ns == w,
            _ => false,
        }
    }
}

/// The number a positional reference (`GROUP BY 1`, `ORDER BY 2`) is written as.
fn position(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::Number(n, _),
            ..
        }) => Some(n),
        _ => None,
    }
}

impl Scope<'_, '_> {
    /// An aggregate or `time_bucket` call.
    pub(super) fn call(&self, f: &Function) -> Result<Call> {
        let at = f.name.span();
        let Some(fname) = function_name(&f.name) else {
            return Err(self.unknown_function(&f.name, false));
        };
        if f.over.is_some() {
            return Err(self
                .src
                .error(at, "window functions (OVER ...) are not supported"));
        }
        if let Some(filter) = &f.filter {
            return Err(self
                .src
                .error(filter.span(), "FILTER (WHERE ...) is not supported"));
        }
        if !f.within_group.is_empty()
            || f.null_treatment.is_some()
            || f.uses_odbc_syntax
            || !matches!(f.parameters, FunctionArguments::None)
        {
            return Err(self
                .src
                .error(at, format!("unsupported form of {fname}(...)")));
        }
        let args: &[FunctionArg] = match &f.args {
            FunctionArguments::None => &[],
            FunctionArguments::Subquery(q) => {
                return Err(self.src.error(q.span(), "subqueries are not supported"));
            }
            FunctionArguments::List(list) => {
                if matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)) {
                    return Err(self
                        .src
                        .error(at, format!("{fname}(DISTINCT ...) is not supported")));
                }
                if !list.clauses.is_empty() {
                    return Err(self
                        .src
                        .error(at, format!("unsupported clause inside {fname}(...)")));
                }
                &list.args
            }
        };
        let args = args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(x) => Ok(x),
                other => Err(self
                    .src
                    .error(other.span(), "named arguments are not supported")),
            })
            .collect::<Result<Vec<_>>>()?;
        if fname == "time_bucket" {
            return self.bucket(at, &args);
        }
        let Some(func) = AggFunc::from_name(&fname) else {
            return Err(self.unknown_function(&f.name, false));
        };
        let columns = match (func, args.as_slice()) {
            (AggFunc::Count, [FunctionArgExpr::Wildcard]) => Vec::new(),
            (AggFunc::Vwap, [price, quantity]) => vec![
                self.arg_column(&fname, price, at)?,
                self.arg_column(&fname, quantity, at)?,
            ],
            (AggFunc::Vwap, _) => {
                return Err(self.src.error(
                    at,
                    "vwap takes two columns, the price and the quantity: vwap(price, quantity)",
                ));
            }
            (_, [arg]) => vec![self.arg_column(&fname, arg, at)?],
            (AggFunc::Count, _) => {
                return Err(self
                    .src
                    .error(at, "count takes * or one column: count(*), count(price)"));
            }
            _ => {
                return Err(self.src.error(
                    at,
                    format!("{fname} takes one column, e.g. {fname}(quantity)"),
                ));
            }
        };
        Ok(Call::Agg {
            func,
            args: columns,
        })
    }

    /// An aggregate's argument, which must be a column.
    fn arg_column(&self, fname: &str, arg: &FunctionArgExpr, at: Span) -> Result<String> {
        match arg {
            FunctionArgExpr::Expr(e) => match self.column_of(e)? {
                Some(c) => Ok(c),
                None => Err(self.src.error(
                    e.span(),
                    format!(
                        "the arguments of {fname} must be columns; expressions and arithmetic on columns are not supported"
                    ),
                )),
            },
            _ => Err(self.src.error(
                at,
                format!("{fname}(*) is not supported; only count(*) counts rows"),
            )),
        }
    }

    /// `time_bucket(interval '1 minute', ts)` or `time_bucket('1m', ts)`.
    fn bucket(&self, at: Span, args: &[&FunctionArgExpr]) -> Result<Call> {
        let [FunctionArgExpr::Expr(width), FunctionArgExpr::Expr(column)] = args else {
            return Err(self.src.error(
                at,
                "time_bucket takes an interval and a timestamp column: time_bucket(interval '1 minute', ts)",
            ));
        };
        let width_ns = match width {
            Expr::Interval(iv) => interval(self.src, iv)?,
            Expr::Value(ValueWithSpan {
                value: Value::SingleQuotedString(s),
                span,
            }) => parse_interval(s).ok_or_else(|| {
                self.src.error(
                    *span,
                    format!("invalid interval {s:?}; write e.g. '1m', '15 minutes' or '1h'"),
                )
            })?,
            other => {
                return Err(self.src.error(
                    other.span(),
                    "time_bucket's first argument is an interval, e.g. interval '1 minute' or '1m'",
                ));
            }
        };
        let Some(col) = self.column_of(column)? else {
            return Err(self.src.error(
                column.span(),
                "time_bucket's second argument is a timestamp column",
            ));
        };
        if self.table.column(&col).map(|c| c.ty) != Some(ColumnType::Timestamp) {
            return Err(self.src.error(
                column.span(),
                format!("time_bucket needs a timestamp column; {col} is not one"),
            ));
        }
        Ok(Call::Bucket {
            column: col,
            width_ns,
        })
    }

    /// One select item; `None` for `*`.
    pub(super) fn select_item(&self, item: &ast::SelectItem) -> Result<Option<SelectItem>> {
        match item {
            ast::SelectItem::Wildcard(opts) => self.plain_wildcard(opts).map(|()| None),
            ast::SelectItem::QualifiedWildcard(kind, opts) => {
                let qualifier = match kind {
                    SelectItemQualifiedWildcardKind::ObjectName(n) => match n.0.as_slice() {
                        [ast::ObjectNamePart::Identifier(i)] => Some(name(i)),
                        _ => None,
                    },
                    SelectItemQualifiedWildcardKind::Expr(_) => None,
                };
                let ours = qualifier
                    .as_deref()
                    .is_some_and(|q| q == self.table.name() || self.alias.as_deref() == Some(q));
                if !ours {
                    return Err(self.src.error(
                        kind.span(),
                        format!(
                            "unknown table or alias before .*; the query reads table {}",
                            self.table
                        ),
                    ));
                }
                self.plain_wildcard(opts).map(|()| None)
            }
            ast::SelectItem::UnnamedExpr(e) => self.item(e, None).map(Some),
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                self.item(expr, Some(name(alias))).map(Some)
            }
            ast::SelectItem::ExprWithAliases { .. } => {
                Err(self.src.error(item.span(), "a select item takes one alias"))
            }
        }
    }

    /// `*` without `EXCLUDE`, `REPLACE` and the like.
    fn plain_wildcard(&self, opts: &WildcardAdditionalOptions) -> Result<()> {
        let WildcardAdditionalOptions {
            wildcard_token: _,
            opt_ilike,
            opt_exclude,
            opt_except,
            opt_replace,
            opt_rename,
            opt_alias,
        } = opts;
        if opt_ilike.is_some()
            || opt_exclude.is_some()
            || opt_except.is_some()
            || opt_replace.is_some()
            || opt_rename.is_some()
            || opt_alias.is_some()
        {
            return Err(self.src.error(
                opts.span(),
                "options after * (EXCLUDE, EXCEPT, REPLACE, RENAME, ILIKE, AS) are not supported",
            ));
        }
        Ok(())
    }

    fn item(&self, e: &Expr, alias: Option<String>) -> Result<SelectItem> {
        if let Some(name) = self.column_of(e)? {
            return Ok(SelectItem::Column { name, alias });
        }
        match e {
            Expr::Function(f) => Ok(match self.call(f)? {
                Call::Agg { func, args } => SelectItem::Agg { func, args, alias },
                Call::Bucket { column, width_ns } => SelectItem::Bucket {
                    column,
                    width_ns,
                    alias,
                },
            }),
            Expr::Subquery(q) => Err(self.src.error(q.span(), "subqueries are not supported")),
            _ => Err(self.src.error(
                e.span(),
                "a select item is a column, an aggregate (count, sum, min, max, avg, vwap) or \
                 time_bucket(...); expressions and arithmetic on columns are not supported",
            )),
        }
    }

    /// Select item `n` (1-based) of a positional reference.
    fn positional<'i>(
        &self,
        e: &Expr,
        n: &str,
        items: &'i [(SelectItem, Span)],
        clause: &str,
    ) -> Result<&'i SelectItem> {
        match n.parse::<usize>() {
            Ok(k) if (1..=items.len()).contains(&k) => Ok(&items[k - 1].0),
            _ => Err(self.src.error(
                e.span(),
                format!(
                    "{clause} {n}: there is no select item {n}; the select list has {} items",
                    items.len()
                ),
            )),
        }
    }

    /// The `GROUP BY` keys.
    pub(super) fn group_keys(
        &self,
        exprs: &[Expr],
        items: &[(SelectItem, Span)],
    ) -> Result<Vec<GroupKey>> {
        exprs.iter().map(|e| self.group_key(e, items)).collect()
    }

    fn group_key(&self, e: &Expr, items: &[(SelectItem, Span)]) -> Result<GroupKey> {
        let item = if let Some(n) = position(e) {
            Some(self.positional(e, n, items, "GROUP BY")?)
        } else if let Expr::Identifier(ident) = e {
            // A select alias (`time_bucket(...) AS minute ... GROUP BY minute`).
            let n = name(ident);
            items
                .iter()
                .map(|(i, _)| i)
                .find(|i| alias_of(i) == Some(n.as_str()))
        } else {
            None
        };
        match item {
            Some(SelectItem::Column { name, .. }) => return Ok(GroupKey::Column(name.clone())),
            Some(SelectItem::Bucket {
                column, width_ns, ..
            }) => {
                return Ok(GroupKey::Bucket {
                    column: column.clone(),
                    width_ns: *width_ns,
                });
            }
            Some(SelectItem::Agg { .. }) => {
                return Err(self
                    .src
                    .error(self.span_of(e), "aggregates cannot be GROUP BY keys"));
            }
            None => {}
        }
        if let Some(c) = self.column_of(e)? {
            return Ok(GroupKey::Column(c));
        }
        match e {
            Expr::Function(f) => match self.call(f)? {
                Call::Bucket { column, width_ns } => Ok(GroupKey::Bucket { column, width_ns }),
                Call::Agg { .. } => Err(self
                    .src
                    .error(self.span_of(e), "aggregates cannot be GROUP BY keys")),
            },
            _ => Err(self.src.error(
                e.span(),
                "GROUP BY takes columns, time_bucket(...), select aliases or positions (GROUP BY 1)",
            )),
        }
    }

    /// The `ORDER BY` keys. An aggregate query's output has only its select items, so it is
    /// ordered by their output names.
    pub(super) fn order_keys(
        &self,
        exprs: &[OrderByExpr],
        items: &[(SelectItem, Span)],
        aggregate: bool,
    ) -> Result<Vec<OrderKey>> {
        let mut keys = Vec::with_capacity(exprs.len());
        for OrderByExpr {
            expr,
            options,
            with_fill,
        } in exprs
        {
            if with_fill.is_some() {
                return Err(self.src.error(expr.span(), "WITH FILL is not supported"));
            }
            if options.nulls_first.is_some() {
                let at = self
                    .src
                    .word_after(&["NULLS"], expr.span().end)
                    .unwrap_or_else(|| expr.span());
                return Err(self
                    .src
                    .error(at, "NULLS FIRST and NULLS LAST are not supported"));
            }
            let desc = match &options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(op)) => {
                    return Err(self
                        .src
                        .error(op.span(), "ORDER BY ... USING is not supported"));
                }
            };
            keys.push(OrderKey {
                name: self.order_name(expr, items, aggregate)?,
                desc,
            });
        }
        Ok(keys)
    }

    fn order_name(
        &self,
        e: &Expr,
        items: &[(SelectItem, Span)],
        aggregate: bool,
    ) -> Result<String> {
        if let Some(n) = position(e) {
            if items.is_empty() {
                // `SELECT *`: the table's columns, in order.
                let columns = self.table.columns();
                return match n.parse::<usize>() {
                    Ok(k) if (1..=columns.len()).contains(&k) => Ok(columns[k - 1].name.to_owned()),
                    _ => Err(self.src.error(
                        e.span(),
                        format!(
                            "ORDER BY {n}: there is no column {n}; table {} has {} columns",
                            self.table,
                            columns.len()
                        ),
                    )),
                };
            }
            return self
                .positional(e, n, items, "ORDER BY")
                .map(SelectItem::output_name);
        }
        if let Expr::Identifier(ident) = e {
            let n = name(ident);
            if items.iter().any(|(i, _)| i.output_name() == n) {
                return Ok(n);
            }
        }
        if let Some(c) = self.column_of(e)? {
            if !aggregate {
                return Ok(c);
            }
            if let Some((item, _)) = items
                .iter()
                .find(|(i, _)| matches!(i, SelectItem::Column { name, .. } if *name == c))
            {
                return Ok(item.output_name());
            }
            let outputs: Vec<String> = items.iter().map(|(i, _)| i.output_name()).collect();
            return Err(self.src.error(
                e.span(),
                format!(
                    "column {c:?} is not an output of this aggregate query; order by one of {}",
                    outputs.join(", ")
                ),
            ));
        }
        match e {
            Expr::Function(f) => {
                let call = self.call(f)?;
                items
                    .iter()
                    .find(|(i, _)| call.is(i))
                    .map(|(i, _)| i.output_name())
                    .ok_or_else(|| {
                        self.src.error(
                            self.span_of(e),
                            "ORDER BY an aggregate or time_bucket(...) only when it is also selected",
                        )
                    })
            }
            _ => Err(self.src.error(
                e.span(),
                "ORDER BY takes columns, select item names or positions (ORDER BY 1)",
            )),
        }
    }
}

/// A select item's alias.
fn alias_of(item: &SelectItem) -> Option<&str> {
    match item {
        SelectItem::Column { alias, .. }
        | SelectItem::Agg { alias, .. }
        | SelectItem::Bucket { alias, .. } => alias.as_deref(),
    }
}
