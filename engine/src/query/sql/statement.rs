//! The entry point: one statement, its query, its table and its clauses.

use std::str::FromStr;

use sqlparser::ast::{
    self, DescribeAlias, Distinct, Expr, GroupByExpr, LimitClause, ObjectNamePart, OrderByKind,
    SelectFlavor, SetExpr, Spanned, TableFactor, Value, ValueWithSpan,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Span, Token, Tokenizer};
use tradestore_schema::TableId;

use super::clauses::{self, Clauses};
use super::expr::{Scope, name, param};
use super::point::{self, Source};
use crate::error::{Error, Result};
use crate::query::ast::{GroupKey, Latest, Operand, Pred, Query, SelectItem, Statement};

/// Parses one statement of the SQL subset: `SELECT` over one table (with `WHERE`,
/// `GROUP BY`, `ORDER BY`, `LIMIT`, `OFFSET` and the QuestDB-style clauses
/// `LATEST ON ... PARTITION BY ...` and `SAMPLE BY <interval>`), or `EXPLAIN [ANALYZE]` of one. Anything else is refused with
/// an [`Invalid`](crate::error::ErrorKind::Invalid) error whose message quotes the offending
/// line and underlines the offending part with `^`.
pub fn parse(sql: &str) -> Result<Statement> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| point::tokenizer_error(sql, &e))?;
    let src = Source::new(sql, tokens);
    clauses::check_size(&src)?;
    let mut tokens = src.tokens().to_vec();
    let clauses = clauses::extract(&src, &mut tokens)?;
    let statements = Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| src.parser_error(&e))?;
    if statements.len() > 1 {
        let at = src.second_statement().unwrap_or_else(|| src.end());
        return Err(src.error(at, "only one statement can be run at a time"));
    }
    let Some(statement) = statements.into_iter().next() else {
        return Err(src.error(
            src.start(),
            "empty statement: expected SELECT ... FROM <table>",
        ));
    };
    let not_select = |at: Span, what: &str| {
        src.error(
            at,
            format!("{what} is not supported; only SELECT and EXPLAIN [ANALYZE] SELECT are"),
        )
    };
    match statement {
        ast::Statement::Query(q) => Ok(Statement::Query(query(&src, &q, clauses)?)),
        ast::Statement::Explain {
            describe_alias,
            analyze,
            verbose,
            query_plan,
            estimate,
            statement,
            format,
            options,
        } => {
            if describe_alias != DescribeAlias::Explain
                || verbose
                || query_plan
                || estimate
                || format.is_some()
                || options.is_some()
            {
                return Err(not_select(src.start(), "this form of EXPLAIN"));
            }
            match *statement {
                ast::Statement::Query(q) => Ok(Statement::Explain {
                    analyze,
                    query: query(&src, &q, clauses)?,
                }),
                _ => {
                    let at = src
                        .word_after(&["EXPLAIN"], Location::new(1, 1))
                        .unwrap_or_else(|| src.start());
                    let (at, word) = first_word_after(&src, at);
                    Err(not_select(at, &format!("EXPLAIN {word}")))
                }
            }
        }
        _ => {
            let (at, word) = first_word_after(&src, Span::empty());
            Err(not_select(at, &format!("{word} statement")))
        }
    }
}

/// The first significant token after `after` (skipping `ANALYZE`), and its text upper-cased.
fn first_word_after(src: &Source, after: Span) -> (Span, String) {
    src.tokens()
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .filter(|t| after.start.line == 0 || t.span.start >= after.end)
        .find(|t| !point::is_word(&t.token, &["ANALYZE"]))
        .map_or_else(
            || (src.start(), "this".to_owned()),
            |t| (t.span, t.token.to_string().to_uppercase()),
        )
}

/// An error for a clause outside the subset: pointed at its keyword when it can be found,
/// else at `fallback`.
fn refuse(src: &Source, keyword: &[&str], fallback: Span, message: &str) -> Error {
    let at = src
        .word_after(keyword, Location::new(1, 1))
        .unwrap_or(fallback);
    src.error(at, message)
}

fn query(src: &Source, q: &ast::Query, clauses: Clauses) -> Result<Query> {
    let ast::Query {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = q;
    if let Some(with) = with {
        return Err(src.error(
            with.with_token.0.span,
            "WITH (common table expressions) is not supported",
        ));
    }
    let select = match body.as_ref() {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { left, op, .. } => {
            let word = op.to_string();
            let at = src
                .word_after(&[word.as_str()], left.span().end)
                .unwrap_or_else(|| body.span());
            return Err(src.error(
                at,
                format!("{word} is not supported: a query reads one table"),
            ));
        }
        SetExpr::Query(inner) => {
            return Err(src.error(inner.span(), "subqueries are not supported"));
        }
        _ => return Err(src.error(src.start(), "only SELECT queries are supported")),
    };
    if fetch.is_some() {
        return Err(refuse(
            src,
            &["FETCH"],
            q.span(),
            "FETCH is not supported; use LIMIT",
        ));
    }
    if !locks.is_empty() || for_clause.is_some() {
        return Err(refuse(
            src,
            &["FOR"],
            q.span(),
            "FOR ... clauses are not supported",
        ));
    }
    if settings.is_some() || format_clause.is_some() || !pipe_operators.is_empty() {
        return Err(refuse(
            src,
            &["SETTINGS", "FORMAT"],
            q.span(),
            "unsupported clause",
        ));
    }
    let mut query = self::select(src, select, order_by.as_ref(), clauses)?;
    if let Some(limit) = limit_clause {
        match limit {
            LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            } => {
                if let Some(by) = limit_by.first() {
                    return Err(src.error(by.span(), "LIMIT ... BY is not supported"));
                }
                query.limit = limit.as_ref().map(|e| count(src, e, "LIMIT")).transpose()?;
                query.offset = offset
                    .as_ref()
                    .map(|o| count(src, &o.value, "OFFSET"))
                    .transpose()?;
            }
            LimitClause::OffsetCommaLimit { offset, .. } => {
                return Err(src.error(
                    offset.span(),
                    "LIMIT <skip>, <count> is not supported; write LIMIT <count> OFFSET <skip>",
                ));
            }
        }
    }
    Ok(query)
}

/// A `LIMIT` or `OFFSET` count: a non-negative integer literal or a `$n` parameter.
fn count(src: &Source, e: &Expr, clause: &str) -> Result<Operand> {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::Number(n, _),
            ..
        }) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Operand::Number(n.clone()))
        }
        Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            span,
        }) => param(src, p, *span).map(Operand::Param),
        _ => Err(src.error(
            e.span(),
            format!("{clause} takes a non-negative integer or a $n parameter"),
        )),
    }
}

/// The table after `FROM`, and its alias.
fn table(src: &Source, s: &ast::Select) -> Result<(TableId, Option<String>)> {
    let Some(from) = s.from.first() else {
        let end = s.span().end;
        return Err(src.error(
            point::point_at(end),
            "a query reads one table: add FROM <table>",
        ));
    };
    if let Some(more) = s.from.get(1) {
        return Err(src.error(
            more.span(),
            "a query reads one table; several tables are not supported",
        ));
    }
    if let Some(join) = from.joins.first() {
        let at = join.relation.span();
        let at = src.word_before(&["JOIN"], at.start).unwrap_or(at);
        return Err(src.error(at, "joins are not supported: a query reads one table"));
    }
    let TableFactor::Table {
        name: table_name,
        alias,
        args,
        with_hints,
        version,
        with_ordinality,
        partitions,
        json_path,
        sample,
        index_directives,
        ..
    } = &from.relation
    else {
        return Err(match &from.relation {
            TableFactor::Derived { subquery, .. } => {
                src.error(subquery.span(), "subqueries are not supported")
            }
            other => src.error(other.span(), "only a table name can follow FROM"),
        });
    };
    let ident = match table_name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => ident,
        _ => {
            return Err(src.error(
                table_name.span(),
                "write the table's plain name, e.g. FROM trades",
            ));
        }
    };
    if args.is_some()
        || !with_hints.is_empty()
        || version.is_some()
        || *with_ordinality
        || !partitions.is_empty()
        || json_path.is_some()
        || sample.is_some()
        || !index_directives.is_empty()
    {
        return Err(src.error(
            from.relation.span(),
            "only a table name (and an alias) can follow FROM",
        ));
    }
    let table = TableId::from_str(&name(ident)).map_err(|e| src.error(ident.span, e))?;
    let alias = match alias {
        Some(a) if !a.columns.is_empty() => {
            return Err(src.error(a.span(), "column aliases on a table are not supported"));
        }
        Some(a) => Some(name(&a.name)),
        None => None,
    };
    Ok((table, alias))
}

fn select(
    src: &Source,
    s: &ast::Select,
    order_by: Option<&ast::OrderBy>,
    clauses: Clauses,
) -> Result<Query> {
    refuse_select_extras(src, s)?;
    let (table, alias) = table(src, s)?;
    let scope = Scope { src, table, alias };

    let mut items: Vec<(SelectItem, Span)> = Vec::new();
    let mut wildcard = None;
    for item in &s.projection {
        match scope.select_item(item)? {
            Some(i) => items.push((i, item_span(&scope, item))),
            None if wildcard.is_none() => wildcard = Some(item.span()),
            None => return Err(src.error(item.span(), "* is written twice")),
        }
    }
    if let (Some(w), false) = (wildcard, items.is_empty()) {
        return Err(src.error(w, "* cannot be combined with other select items"));
    }

    let filter = match &s.selection {
        Some(e) => scope.predicate(e)?,
        None => Pred::True,
    };

    let group_exprs = match &s.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(refuse(
                    src,
                    &["ROLLUP", "CUBE", "TOTALS", "GROUPING"],
                    s.group_by.span(),
                    "GROUP BY modifiers are not supported",
                ));
            }
            exprs.as_slice()
        }
        GroupByExpr::All(_) => {
            return Err(refuse(
                src,
                &["GROUP"],
                s.span(),
                "GROUP BY ALL is not supported; name the keys",
            ));
        }
    };
    let has_agg = items
        .iter()
        .any(|(i, _)| matches!(i, SelectItem::Agg { .. }));
    if let Some(w) = wildcard
        && (has_agg || !group_exprs.is_empty() || clauses.sample.is_some())
    {
        return Err(src.error(
            w,
            "* cannot be combined with GROUP BY, SAMPLE BY or aggregates; name the columns",
        ));
    }
    let mut group_by = scope.group_keys(group_exprs, &items)?;

    if let Some(sample) = &clauses.sample {
        if let Some(first) = group_exprs.first() {
            let at = src
                .word_before(&["GROUP"], first.span().start)
                .unwrap_or_else(|| first.span());
            return Err(src.error(at, "SAMPLE BY cannot be combined with GROUP BY"));
        }
        let column = match table {
            TableId::Trades => "ts",
            TableId::Orders => "created_ts",
            TableId::Positions => "updated_ts",
            other => {
                return Err(src.error(
                    sample.span,
                    format!("table {other} has no time column to SAMPLE BY"),
                ));
            }
        };
        if !has_agg {
            return Err(src.error(
                sample.span,
                "SAMPLE BY needs at least one aggregate in the select list",
            ));
        }
        group_by.push(GroupKey::Bucket {
            column: column.to_owned(),
            width_ns: sample.width_ns,
        });
        // The time column named in the select list is the bucket, where the list puts it
        // (as in QuestDB): grouping by its raw value would make a group of nearly every row.
        for (item, _) in &mut items {
            if let SelectItem::Column { name, alias } = item
                && name == column
            {
                let alias = Some(alias.take().unwrap_or_else(|| column.to_owned()));
                *item = SelectItem::Bucket {
                    column: column.to_owned(),
                    width_ns: sample.width_ns,
                    alias,
                };
            }
        }
        for (item, _) in &items {
            if let SelectItem::Column { name, .. } = item {
                let key = GroupKey::Column(name.clone());
                if !group_by.contains(&key) {
                    group_by.push(key);
                }
            }
        }
        if !items
            .iter()
            .any(|(i, _)| matches!(i, SelectItem::Bucket { .. }))
        {
            let bucket = SelectItem::Bucket {
                column: column.to_owned(),
                width_ns: sample.width_ns,
                alias: Some(column.to_owned()),
            };
            items.insert(0, (bucket, sample.span));
        }
    }

    let aggregate = has_agg || !group_by.is_empty();
    if aggregate {
        check_grouped(src, &items, &group_by, clauses.sample.is_some())?;
    }

    let order_by = match order_by {
        None => Vec::new(),
        Some(o) => {
            if o.interpolate.is_some() {
                return Err(refuse(
                    src,
                    &["INTERPOLATE"],
                    o.span(),
                    "INTERPOLATE is not supported",
                ));
            }
            match &o.kind {
                OrderByKind::Expressions(exprs) => scope.order_keys(exprs, &items, aggregate)?,
                OrderByKind::All(_) => {
                    return Err(refuse(
                        src,
                        &["ORDER"],
                        o.span(),
                        "ORDER BY ALL is not supported; name the keys",
                    ));
                }
            }
        }
    };

    let latest = match clauses.latest {
        None => None,
        Some(l) => Some(Latest {
            ts: scope.column_named(&l.ts.0, l.ts.1)?,
            partition_by: l
                .partition_by
                .iter()
                .map(|(n, span)| scope.column_named(n, *span))
                .collect::<Result<_>>()?,
        }),
    };

    Ok(Query {
        table,
        select: items.into_iter().map(|(i, _)| i).collect(),
        filter,
        group_by,
        order_by,
        limit: None,
        offset: None,
        latest,
    })
}

/// A select item's span, with a call's closing parenthesis.
fn item_span(scope: &Scope, item: &ast::SelectItem) -> Span {
    match item {
        ast::SelectItem::UnnamedExpr(e) => scope.span_of(e),
        ast::SelectItem::ExprWithAlias { expr, alias } => scope.span_of(expr).union(&alias.span),
        other => other.span(),
    }
}

/// In an aggregate query, every plain column and bucket selected must be a `GROUP BY` key.
fn check_grouped(
    src: &Source,
    items: &[(SelectItem, Span)],
    group_by: &[GroupKey],
    sampled: bool,
) -> Result<()> {
    for (item, span) in items {
        match item {
            SelectItem::Column { name, .. }
                if !group_by.contains(&GroupKey::Column(name.clone())) =>
            {
                return Err(src.error(
                    *span,
                    format!("column {name:?} must be a GROUP BY key or be inside an aggregate"),
                ));
            }
            SelectItem::Bucket {
                column, width_ns, ..
            } if !group_by.contains(&GroupKey::Bucket {
                column: column.clone(),
                width_ns: *width_ns,
            }) =>
            {
                let message = if sampled {
                    "this time_bucket(...) differs from the SAMPLE BY bucket"
                } else {
                    "time_bucket(...) in an aggregate query must also be a GROUP BY key"
                };
                return Err(src.error(*span, message));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses the parts of a `SELECT` outside the subset.
fn refuse_select_extras(src: &Source, s: &ast::Select) -> Result<()> {
    let after_select = s.select_token.0.span.start;
    match &s.distinct {
        None | Some(Distinct::All) => {}
        Some(_) => {
            let at = src
                .word_after(&["DISTINCT"], after_select)
                .unwrap_or(s.select_token.0.span);
            return Err(src.error(at, "DISTINCT is not supported; use GROUP BY"));
        }
    }
    if s.top.is_some() {
        return Err(refuse(
            src,
            &["TOP"],
            s.select_token.0.span,
            "TOP is not supported; use LIMIT",
        ));
    }
    if s.select_modifiers.is_some() || s.flavor != SelectFlavor::Standard {
        return Err(src.error(s.select_token.0.span, "unsupported form of SELECT"));
    }
    if let Some(e) = &s.exclude {
        return Err(src.error(
            src.word_after(&["EXCLUDE"], after_select)
                .unwrap_or_else(|| e.span()),
            "EXCLUDE is not supported",
        ));
    }
    if let Some(into) = &s.into {
        return Err(src.error(into.span(), "SELECT INTO is not supported"));
    }
    if let Some(h) = &s.having {
        let at = src
            .word_before(&["HAVING"], h.span().start)
            .unwrap_or_else(|| h.span());
        return Err(src.error(at, "HAVING is not supported"));
    }
    let other: Option<Span> = s
        .lateral_views
        .first()
        .map(Spanned::span)
        .or_else(|| s.prewhere.as_ref().map(Spanned::span))
        .or_else(|| s.connect_by.first().map(Spanned::span))
        .or_else(|| s.cluster_by.first().map(Spanned::span))
        .or_else(|| s.distribute_by.first().map(Spanned::span))
        .or_else(|| s.sort_by.first().map(Spanned::span))
        .or_else(|| s.named_window.first().map(Spanned::span))
        .or_else(|| s.qualify.as_ref().map(Spanned::span));
    if let Some(at) = other {
        let at = if at.start.line == 0 { src.start() } else { at };
        return Err(src.error(at, "unsupported clause"));
    }
    if s.value_table_mode.is_some() {
        return Err(src.error(s.select_token.0.span, "unsupported form of SELECT"));
    }
    Ok(())
}
