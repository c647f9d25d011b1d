//! The rewriter: turns a bound filter into an equivalent, simpler one in a normal form the
//! planner can read ranges from.
//!
//! Equivalence is about the rows a `WHERE` keeps: for every row, the rewritten filter is
//! true exactly when the original is (a rewritten part may be false where the original was
//! unknown, which no `WHERE` can tell apart). Negations are pushed down first, and that
//! step is exact in three-valued logic; once no `NOT` is left, every other rule only has
//! to preserve "is true" of the part it rewrites, because `AND` and `OR` are true exactly
//! when all (any) of their members are.
//!
//! The rules, each applied until nothing changes:
//!
//! - `fold_constants`: `now()`, intervals and arithmetic on integers become `I64` values
//!   (checked; an overflow is an error), a `NULL` operand becomes the NULL value; nested
//!   `AND`s (`OR`s) are flattened, `TRUE` dropped from `AND` and `FALSE` from `OR`, an
//!   `AND` with `FALSE` is `FALSE` and an `OR` with `TRUE` is `TRUE`. These structural
//!   folds are reported when the input had the structure; when another rule produced it
//!   (a contradiction's `FALSE`, a `BETWEEN`'s two bounds), that rule is what is reported.
//! - `push_not_down`: De Morgan, double negation, `NOT` of a comparison, `IN`, `BETWEEN`
//!   or `IS NULL` becomes its negated form, `NOT TRUE` is `FALSE`.
//! - `between_to_range`: `x BETWEEN a AND b` becomes `x >= a AND x <= b`, and
//!   `x NOT BETWEEN a AND b` becomes `x < a OR x > b`.
//! - `or_to_in`: equalities and `IN`s on one column inside an `OR` become one `IN`; an `IN`
//!   (`NOT IN`) of one value becomes `=` (`<>`).
//! - `merge_ranges`: inside an `AND`, one column's comparisons are merged into at most an
//!   `=`/`IN`, one lower bound, one upper bound and the `<>` values (several `<>` become one
//!   `NOT IN`); an inclusive range of one value becomes `=`.
//! - `contradiction`: a column's merged conditions admit no value, a comparison with NULL,
//!   `x NOT IN (.., NULL, ..)`, an empty `IN` list: the condition (and its `AND`) is
//!   `FALSE`.
//! - `drop_redundant`: duplicate members of an `AND` or `OR`, bounds, `<>` values and
//!   `IS NOT NULL` implied by other conditions on the column, NULLs in an `IN` list (they
//!   never match), `x NOT IN ()` (always true), and an `AND` or `OR` of one member.
//!
//! Only values of one variant are merged: a column compared with both `U64` and `I64`
//! values keeps its conditions as written (duplicates and null tests aside).
//!
//! The normal form: no `NOT` and no `BETWEEN` nodes; every `AND` and `OR` lists its
//! single-column conditions first, by column name and, per column, `=`/`IN`, lower bound,
//! upper bound, `<>`/`NOT IN`, `IS NULL`, `IS NOT NULL`; compound members (an `OR` in an
//! `AND`, an `AND` in an `OR`) follow in the order of their text. An `AND` or `OR` has at
//! least two members, and a filter that is always false is `Pred::False`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::mem::discriminant;

use tradestore_schema::Value;

use crate::error::{Error, Result};
use crate::query::ast::{CmpOp, Operand, Pred};

/// A rewrite rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Computes `now()`, intervals and arithmetic; flattens nested `AND`/`OR` and removes
    /// `TRUE`/`FALSE` members.
    FoldConstants,
    /// Removes `NOT` by pushing it into its operand.
    PushNotDown,
    /// Replaces `BETWEEN` with two comparisons.
    BetweenToRange,
    /// Merges equalities on one column in an `OR` into an `IN`.
    OrToIn,
    /// Merges one column's comparisons in an `AND` into the tightest bounds.
    MergeRanges,
    /// Replaces conditions that admit no row with `FALSE`.
    Contradiction,
    /// Removes conditions that other conditions imply.
    DropRedundant,
}

impl Rule {
    /// The rule's snake_case name, as `EXPLAIN` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::FoldConstants => "fold_constants",
            Rule::PushNotDown => "push_not_down",
            Rule::BetweenToRange => "between_to_range",
            Rule::OrToIn => "or_to_in",
            Rule::MergeRanges => "merge_ranges",
            Rule::Contradiction => "contradiction",
            Rule::DropRedundant => "drop_redundant",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule that changed the predicate, with what it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The rule.
    pub rule: Rule,
    /// What it changed: its first few rewrites, separated by `; `.
    pub detail: String,
}

impl fmt::Display for Fired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// The result of [`rewrite`].
#[derive(Clone, Debug, PartialEq)]
pub struct Rewritten {
    /// The rewritten predicate, in normal form.
    pub pred: Pred,
    /// The rules that changed something, each once, in the order they first did.
    pub fired: Vec<Fired>,
}

impl Rewritten {
    /// Whether `rule` changed something.
    pub fn has_fired(&self, rule: Rule) -> bool {
        self.fired.iter().any(|f| f.rule == rule)
    }
}

/// Rewrites a bound predicate (every operand a [`Operand::Value`], `now()`, an interval,
/// `NULL` or arithmetic on those) into its normal form; `now_ns` is the value of `now()`.
///
/// For every row, the result is true exactly when `pred` is. Errors when an operand is
/// not bound (a literal as written, a parameter), when arithmetic is on text or
/// overflows.
pub fn rewrite(pred: Pred, now_ns: i64) -> Result<Rewritten> {
    /// Normalizing is idempotent; the bound only guards against a rule bug looping.
    const MAX_PASSES: usize = 16;
    let mut cx = Cx {
        now_ns,
        log: Vec::new(),
    };
    let mut pred = push_not(pred, false, false, &mut cx);
    for _ in 0..MAX_PASSES {
        let next = norm(pred.clone(), &mut cx)?;
        if next == pred {
            break;
        }
        pred = next;
    }
    let fired = cx
        .log
        .into_iter()
        .map(|(rule, details, more)| {
            let mut detail = details.join("; ");
            if more > 0 {
                detail.push_str(&format!("; and {more} more"));
            }
            Fired { rule, detail }
        })
        .collect();
    Ok(Rewritten { pred, fired })
}

/// The members of a top-level `AND`, or the predicate itself; none for `TRUE`.
pub fn conjuncts(pred: &Pred) -> Vec<&Pred> {
    match pred {
        Pred::And(items) => items.iter().collect(),
        Pred::True => Vec::new(),
        other => vec![other],
    }
}

/// How many distinct details a rule keeps; the rest are counted.
const MAX_DETAILS: usize = 3;

/// The rewrite's state: `now()` and the firings so far.
struct Cx {
    now_ns: i64,
    /// Per rule: its details and how many more firings were left out.
    log: Vec<(Rule, Vec<String>, usize)>,
}

impl Cx {
    fn fire(&mut self, rule: Rule, detail: impl FnOnce() -> String) {
        match self.log.iter_mut().find(|(r, _, _)| *r == rule) {
            Some((_, details, more)) => {
                if details.len() < MAX_DETAILS {
                    let d = detail();
                    if !details.contains(&d) {
                        details.push(d);
                    }
                } else {
                    *more += 1;
                }
            }
            None => self.log.push((rule, vec![detail()], 0)),
        }
    }

    /// Folds an operand to a value.
    fn fold(&mut self, o: Operand) -> Result<Value> {
        match o {
            Operand::Value(v) => Ok(v),
            Operand::Null => {
                self.fire(Rule::FoldConstants, || "NULL operand".to_owned());
                Ok(Value::Null)
            }
            Operand::Now | Operand::Interval(_) | Operand::Arith { .. } => {
                let v = self.arith(&o)?.map_or(Value::Null, Value::I64);
                self.fire(Rule::FoldConstants, || format!("{o} = {v}"));
                Ok(v)
            }
            Operand::Number(_) | Operand::Text(_) | Operand::Param(_) => Err(Error::invalid(
                format!("unbound operand {o} in a filter: bind the query before rewriting it"),
            )),
        }
    }

    /// The integer an arithmetic operand computes; `None` for NULL.
    fn arith(&self, o: &Operand) -> Result<Option<i64>> {
        Ok(Some(match o {
            Operand::Value(Value::I64(v)) => *v,
            Operand::Value(Value::U64(v)) => i64::try_from(*v)
                .map_err(|_| Error::invalid(format!("{v} is too large for time arithmetic")))?,
            Operand::Value(Value::Null) | Operand::Null => return Ok(None),
            Operand::Now => self.now_ns,
            Operand::Interval(ns) => *ns,
            Operand::Arith { left, minus, right } => {
                let (Some(l), Some(r)) = (self.arith(left)?, self.arith(right)?) else {
                    return Ok(None);
                };
                let v = if *minus {
                    l.checked_sub(r)
                } else {
                    l.checked_add(r)
                };
                v.ok_or_else(|| Error::invalid(format!("{o} overflows")))?
            }
            Operand::Value(Value::Text(_)) | Operand::Text(_) => {
                return Err(Error::invalid(format!("arithmetic on text: {o}")));
            }
            Operand::Number(_) | Operand::Param(_) => {
                return Err(Error::invalid(format!(
                    "unbound operand {o} in a filter: bind the query before rewriting it"
                )));
            }
        }))
    }
}

// ---------------------------------------------------------------------------------------
// push_not_down

/// `p`, or its negation when `neg`, with no `Not` node left. Exact in three-valued logic.
/// Reports each outermost `NOT` (`under_not` is set inside one).
fn push_not(p: Pred, neg: bool, under_not: bool, cx: &mut Cx) -> Pred {
    match p {
        Pred::Not(inner) => {
            if under_not {
                return push_not(*inner, !neg, true, cx);
            }
            let before = Pred::Not(inner);
            let shown = before.to_string();
            let Pred::Not(inner) = before else {
                return before;
            };
            let after = push_not(*inner, !neg, true, cx);
            cx.fire(Rule::PushNotDown, || format!("{shown} -> {after}"));
            after
        }
        Pred::And(items) => {
            let items = items
                .into_iter()
                .map(|p| push_not(p, neg, under_not, cx))
                .collect();
            if neg {
                Pred::Or(items)
            } else {
                Pred::And(items)
            }
        }
        Pred::Or(items) => {
            let items = items
                .into_iter()
                .map(|p| push_not(p, neg, under_not, cx))
                .collect();
            if neg {
                Pred::And(items)
            } else {
                Pred::Or(items)
            }
        }
        p if !neg => p,
        Pred::True => Pred::False,
        Pred::False => Pred::True,
        Pred::Cmp { column, op, value } => Pred::Cmp {
            column,
            op: op.negate(),
            value,
        },
        Pred::In {
            column,
            values,
            negated,
        } => Pred::In {
            column,
            values,
            negated: !negated,
        },
        Pred::Between {
            column,
            low,
            high,
            negated,
        } => Pred::Between {
            column,
            low,
            high,
            negated: !negated,
        },
        Pred::IsNull { column, negated } => Pred::IsNull {
            column,
            negated: !negated,
        },
    }
}

// ---------------------------------------------------------------------------------------
// The normalizer (every rule but push_not_down), bottom-up over a NOT-free predicate.

fn norm(p: Pred, cx: &mut Cx) -> Result<Pred> {
    match p {
        Pred::True | Pred::False | Pred::IsNull { .. } => Ok(p),
        // Not reached after `push_not`; handled for completeness.
        Pred::Not(inner) => norm(push_not(*inner, true, true, cx), cx),
        Pred::Cmp { column, op, value } => {
            let value = cx.fold(value)?;
            if value == Value::Null {
                cx.fire(Rule::Contradiction, || {
                    format!("{column} {} NULL is never true", op.symbol())
                });
                return Ok(Pred::False);
            }
            Ok(cmp(column, op, value))
        }
        Pred::In {
            column,
            values,
            negated,
        } => norm_in(column, values, negated, cx),
        Pred::Between { .. } => {
            let range = between_to_range(p, cx)?;
            norm(range, cx)
        }
        Pred::And(items) => norm_and(items, cx),
        Pred::Or(items) => norm_or(items, cx),
    }
}

/// A comparison with a value.
fn cmp(column: String, op: CmpOp, value: Value) -> Pred {
    Pred::Cmp {
        column,
        op,
        value: Operand::Value(value),
    }
}

/// `column [NOT] IN (values)`, `=`/`<>` for one value.
fn in_list(column: String, mut values: Vec<Value>, negated: bool) -> Pred {
    if values.len() == 1
        && let Some(v) = values.pop()
    {
        return cmp(column, if negated { CmpOp::Ne } else { CmpOp::Eq }, v);
    }
    Pred::In {
        column,
        values: values.into_iter().map(Operand::Value).collect(),
        negated,
    }
}

/// `x BETWEEN a AND b` as `x >= a AND x <= b`, `NOT BETWEEN` as `x < a OR x > b`.
fn between_to_range(p: Pred, cx: &mut Cx) -> Result<Pred> {
    let shown = p.to_string();
    let Pred::Between {
        column,
        low,
        high,
        negated,
    } = p
    else {
        return Ok(p);
    };
    let (low, high) = (cx.fold(low)?, cx.fold(high)?);
    let range = if negated {
        Pred::Or(vec![
            cmp(column.clone(), CmpOp::Lt, low),
            cmp(column, CmpOp::Gt, high),
        ])
    } else {
        Pred::And(vec![
            cmp(column.clone(), CmpOp::Ge, low),
            cmp(column, CmpOp::Le, high),
        ])
    };
    cx.fire(Rule::BetweenToRange, || format!("{shown} -> {range}"));
    Ok(range)
}

fn norm_in(column: String, values: Vec<Operand>, negated: bool, cx: &mut Cx) -> Result<Pred> {
    let mut vals = Vec::with_capacity(values.len());
    for v in values {
        vals.push(cx.fold(v)?);
    }
    if vals.contains(&Value::Null) {
        if negated {
            cx.fire(Rule::Contradiction, || {
                format!("{column} NOT IN (..) with a NULL is never true")
            });
            return Ok(Pred::False);
        }
        vals.retain(|v| *v != Value::Null);
        cx.fire(Rule::DropRedundant, || {
            format!("NULL never matches in {column} IN (..)")
        });
    }
    let len = vals.len();
    vals.sort();
    vals.dedup();
    if vals.len() < len {
        cx.fire(Rule::DropRedundant, || {
            format!("duplicate values in {column} IN (..)")
        });
    }
    match (vals.len(), negated) {
        (0, false) => {
            cx.fire(Rule::Contradiction, || {
                format!("{column} IN () is never true")
            });
            Ok(Pred::False)
        }
        (0, true) => {
            cx.fire(Rule::DropRedundant, || {
                format!("{column} NOT IN () is always true")
            });
            Ok(Pred::True)
        }
        (1, _) => {
            let p = in_list(column, vals, negated);
            cx.fire(Rule::OrToIn, || format!("one-value list: {p}"));
            Ok(p)
        }
        _ => Ok(in_list(column, vals, negated)),
    }
}

/// Normalizes the members of an `AND` (`and`) or `OR`, flattening nested ones of the same
/// kind. `Err(short)` when a member decides the whole (`FALSE` in an `AND`, `TRUE` in an
/// `OR`).
fn norm_members(items: Vec<Pred>, and: bool, cx: &mut Cx) -> Result<Result<Vec<Pred>, Pred>> {
    let kind = if and { "AND" } else { "OR" };
    let (unit, zero) = if and {
        (Pred::True, Pred::False)
    } else {
        (Pred::False, Pred::True)
    };
    let mut out = Vec::with_capacity(items.len());
    for p in items {
        let literal = p == unit || p == zero;
        let nested = matches!((&p, and), (Pred::And(_), true) | (Pred::Or(_), false));
        let q = norm(p, cx)?;
        if q == zero {
            if literal {
                cx.fire(Rule::FoldConstants, || {
                    format!("{kind} with {zero} is {zero}")
                });
            }
            return Ok(Err(zero));
        }
        if q == unit {
            if literal {
                cx.fire(Rule::FoldConstants, || {
                    format!("{unit} dropped from {kind}")
                });
            }
            continue;
        }
        match (q, and) {
            (Pred::And(inner), true) | (Pred::Or(inner), false) => {
                if nested {
                    cx.fire(Rule::FoldConstants, || format!("nested {kind} flattened"));
                }
                out.extend(inner);
            }
            (q, _) => out.push(q),
        }
    }
    Ok(Ok(out))
}

/// The finished `AND` or `OR` of normalized, sorted members.
fn finish(mut items: Vec<Pred>, and: bool, single_input: bool, cx: &mut Cx) -> Pred {
    match items.len() {
        0 if and => Pred::True,
        0 => Pred::False,
        1 => {
            if single_input {
                let kind = if and { "AND" } else { "OR" };
                cx.fire(Rule::DropRedundant, || {
                    format!("{kind} of one member unwrapped")
                });
            }
            items.pop().unwrap_or(Pred::True)
        }
        _ if and => Pred::And(items),
        _ => Pred::Or(items),
    }
}

/// Sorts and removes duplicate members, reporting them.
fn sort_dedup(items: &mut Vec<Pred>, cx: &mut Cx) {
    items.sort_by(order);
    let mut i = 1;
    while i < items.len() {
        if items[i] == items[i - 1] {
            let dup = items.remove(i);
            cx.fire(Rule::DropRedundant, || format!("duplicate {dup}"));
        } else {
            i += 1;
        }
    }
}

fn norm_and(items: Vec<Pred>, cx: &mut Cx) -> Result<Pred> {
    if items.is_empty() {
        cx.fire(Rule::FoldConstants, || "empty AND is TRUE".to_owned());
        return Ok(Pred::True);
    }
    let single_input = items.len() == 1;
    let members = match norm_members(items, true, cx)? {
        Ok(m) => m,
        Err(short) => return Ok(short),
    };
    let mut by_column: BTreeMap<String, Vec<Pred>> = BTreeMap::new();
    let mut compound = Vec::new();
    for p in members {
        match column_of(&p) {
            Some(c) => by_column.entry(c.to_owned()).or_default().push(p),
            None => compound.push(p),
        }
    }
    let mut out = Vec::new();
    for (column, atoms) in by_column {
        match merge_column(&column, atoms, cx) {
            Some(merged) => out.extend(merged),
            None => return Ok(Pred::False),
        }
    }
    sort_dedup(&mut compound, cx);
    out.extend(compound);
    Ok(finish(out, true, single_input, cx))
}

fn norm_or(items: Vec<Pred>, cx: &mut Cx) -> Result<Pred> {
    if items.is_empty() {
        cx.fire(Rule::FoldConstants, || "empty OR is FALSE".to_owned());
        return Ok(Pred::False);
    }
    let single_input = items.len() == 1;
    let mut members = match norm_members(items, false, cx)? {
        Ok(m) => m,
        Err(short) => return Ok(short),
    };
    sort_dedup(&mut members, cx);
    // or_to_in: the equalities and IN lists of each column, merged.
    let mut eqs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in &members {
        if let Some((column, _)) = eq_values(p) {
            *counts.entry(column.to_owned()).or_default() += 1;
        }
    }
    let mut out = Vec::with_capacity(members.len());
    for p in members {
        match eq_values(&p) {
            Some((column, _)) if counts.get(column).is_some_and(|n| *n > 1) => {
                if let Some((column, values)) = eq_values_owned(p) {
                    eqs.entry(column).or_default().extend(values);
                }
            }
            _ => out.push(p),
        }
    }
    for (column, mut values) in eqs {
        values.sort();
        values.dedup();
        let p = in_list(column, values, false);
        cx.fire(Rule::OrToIn, || p.to_string());
        out.push(p);
    }
    out.sort_by(order);
    Ok(finish(out, false, single_input, cx))
}

/// The column and values of `column = v` or `column IN (..)`.
fn eq_values(p: &Pred) -> Option<(&str, Vec<&Value>)> {
    match p {
        Pred::Cmp {
            column,
            op: CmpOp::Eq,
            value: Operand::Value(v),
        } => Some((column, vec![v])),
        Pred::In {
            column,
            values,
            negated: false,
        } => {
            let vals: Option<Vec<&Value>> = values.iter().map(value_of).collect();
            vals.map(|v| (column.as_str(), v))
        }
        _ => None,
    }
}

/// [`eq_values`], taking the predicate apart.
fn eq_values_owned(p: Pred) -> Option<(String, Vec<Value>)> {
    match p {
        Pred::Cmp {
            column,
            op: CmpOp::Eq,
            value: Operand::Value(v),
        } => Some((column, vec![v])),
        Pred::In {
            column,
            values,
            negated: false,
        } => {
            let vals: Option<Vec<Value>> = values
                .into_iter()
                .map(|o| match o {
                    Operand::Value(v) => Some(v),
                    _ => None,
                })
                .collect();
            vals.map(|v| (column, v))
        }
        _ => None,
    }
}

fn value_of(o: &Operand) -> Option<&Value> {
    match o {
        Operand::Value(v) => Some(v),
        _ => None,
    }
}

/// The column a single-column condition tests.
fn column_of(p: &Pred) -> Option<&str> {
    match p {
        Pred::Cmp { column, .. }
        | Pred::In { column, .. }
        | Pred::Between { column, .. }
        | Pred::IsNull { column, .. } => Some(column),
        _ => None,
    }
}

/// Where a single-column condition goes among its column's: `=`/`IN`, lower bound, upper
/// bound, `<>`/`NOT IN`, `IS NULL`, `IS NOT NULL`.
fn rank(p: &Pred) -> u8 {
    match p {
        Pred::Cmp { op, .. } => match op {
            CmpOp::Eq => 0,
            CmpOp::Gt | CmpOp::Ge => 1,
            CmpOp::Lt | CmpOp::Le => 2,
            CmpOp::Ne => 3,
        },
        Pred::In { negated: false, .. } => 0,
        Pred::In { negated: true, .. } => 3,
        Pred::Between { .. } => 1,
        Pred::IsNull { negated: false, .. } => 4,
        Pred::IsNull { negated: true, .. } => 5,
        _ => 6,
    }
}

/// The values a single-column condition compares with.
fn values_of(p: &Pred) -> Vec<Option<&Value>> {
    match p {
        Pred::Cmp { value, .. } => vec![value_of(value)],
        Pred::In { values, .. } => values.iter().map(value_of).collect(),
        Pred::Between { low, high, .. } => vec![value_of(low), value_of(high)],
        _ => Vec::new(),
    }
}

/// The normal form's order of the members of an `AND` or `OR`.
fn order(a: &Pred, b: &Pred) -> Ordering {
    match (column_of(a), column_of(b)) {
        (Some(ca), Some(cb)) => ca
            .cmp(cb)
            .then_with(|| rank(a).cmp(&rank(b)))
            .then_with(|| values_of(a).cmp(&values_of(b)))
            .then_with(|| a.to_string().cmp(&b.to_string())),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    }
}

/// Shows conditions joined by `AND`.
fn show(items: &[Pred]) -> String {
    items
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" AND ")
}

// ---------------------------------------------------------------------------------------
// merge_ranges, contradiction and drop_redundant on one column's conditions in an AND.

/// A bound: its value and whether it is strict (`<`, `>`).
type Bound = (Value, bool);

/// Merges the normalized conditions on `column` in one `AND`. `None` when they admit no
/// row.
fn merge_column(column: &str, mut atoms: Vec<Pred>, cx: &mut Cx) -> Option<Vec<Pred>> {
    sort_dedup(&mut atoms, cx);
    let is_null = atoms.iter().any(|p| rank(p) == 4);
    let not_null = atoms.iter().any(|p| rank(p) == 5);
    let tests: Vec<Pred> = atoms.iter().filter(|p| rank(p) < 4).cloned().collect();
    if is_null && (not_null || !tests.is_empty()) {
        cx.fire(Rule::Contradiction, || {
            format!("{}: {column} cannot be NULL", show(&atoms))
        });
        return None;
    }
    if not_null && !tests.is_empty() {
        cx.fire(Rule::DropRedundant, || {
            format!("{column} IS NOT NULL implied by {}", tests[0])
        });
        atoms.retain(|p| rank(p) != 5);
    }
    if tests.len() < 2 {
        return Some(atoms);
    }
    // Values of one variant only.
    let mut variant = None;
    for v in tests.iter().flat_map(values_of) {
        let Some(v) = v else {
            return Some(atoms);
        };
        match variant {
            None => variant = Some(discriminant(v)),
            Some(d) if d != discriminant(v) => return Some(atoms),
            Some(_) => {}
        }
    }
    let merged = merge_tests(column, &tests, cx);
    match merged {
        None => {
            cx.fire(Rule::Contradiction, || {
                format!("{}: no value of {column}", show(&tests))
            });
            None
        }
        Some(merged) => {
            if merged != tests {
                cx.fire(Rule::MergeRanges, || {
                    format!("{} on {column}", show(&merged))
                });
            }
            Some(merged)
        }
    }
}

/// Merges comparisons, `IN` and `NOT IN` on one column, all with values of one variant,
/// into the normal form's `=`/`IN`, lower, upper, `<>`/`NOT IN`. `None` when no value
/// satisfies them all.
fn merge_tests(column: &str, tests: &[Pred], cx: &mut Cx) -> Option<Vec<Pred>> {
    let mut eq: Option<Vec<Value>> = None;
    let mut lo: Option<Bound> = None;
    let mut hi: Option<Bound> = None;
    let mut ne: Vec<Value> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    for t in tests {
        match t {
            Pred::Cmp {
                op,
                value: Operand::Value(v),
                ..
            } => match op {
                CmpOp::Eq => intersect(&mut eq, std::slice::from_ref(v)),
                CmpOp::Ne => ne.push(v.clone()),
                CmpOp::Gt | CmpOp::Ge => tighten(
                    column,
                    &mut lo,
                    (v.clone(), *op == CmpOp::Gt),
                    true,
                    &mut dropped,
                ),
                CmpOp::Lt | CmpOp::Le => tighten(
                    column,
                    &mut hi,
                    (v.clone(), *op == CmpOp::Lt),
                    false,
                    &mut dropped,
                ),
            },
            Pred::In {
                values, negated, ..
            } => {
                let vals: Vec<Value> = values.iter().filter_map(value_of).cloned().collect();
                if *negated {
                    ne.extend(vals);
                } else {
                    intersect(&mut eq, &vals);
                }
            }
            // Not reached: the caller passes comparisons and lists with values only.
            _ => return Some(tests.to_vec()),
        }
    }
    ne.sort();
    ne.dedup();
    // A `<>` on an inclusive bound makes it strict.
    for (bound, op) in [(&mut lo, ">="), (&mut hi, "<=")] {
        if let Some((v, strict @ false)) = bound
            && ne.binary_search(v).is_ok()
        {
            *strict = true;
            dropped.push(format!("{column} <> {v} folded into {column} {op} {v}"));
        }
    }
    // The range's emptiness, or its single value.
    if let (Some((l, ls)), Some((h, hs))) = (&lo, &hi) {
        match l.cmp(h) {
            Ordering::Greater => return None,
            Ordering::Equal if *ls || *hs => return None,
            Ordering::Equal => intersect(&mut eq, std::slice::from_ref(l)),
            Ordering::Less => {
                if let (Some(li), Some(hi_)) = (int(l), int(h)) {
                    let first = li + i128::from(*ls);
                    let last = hi_ - i128::from(*hs);
                    if first > last {
                        return None;
                    }
                    if first == last
                        && let Some(v) = same_variant(l, first)
                    {
                        intersect(&mut eq, std::slice::from_ref(&v));
                    }
                }
            }
        }
    }
    let inside = |v: &Value| {
        lo.as_ref().is_none_or(|(l, s)| v > l || (v == l && !s))
            && hi.as_ref().is_none_or(|(h, s)| v < h || (v == h && !s))
    };
    let mut out = Vec::new();
    if let Some(mut vals) = eq {
        vals.retain(|v| inside(v) && ne.binary_search(v).is_err());
        if vals.is_empty() {
            return None;
        }
        if lo.is_some() || hi.is_some() || !ne.is_empty() {
            cx.fire(Rule::DropRedundant, || {
                format!("bounds and <> on {column} implied by its = or IN")
            });
        }
        out.push(in_list(column.to_owned(), vals, false));
    } else {
        let before = ne.len();
        ne.retain(|v| inside(v));
        if ne.len() < before {
            dropped.push(format!("<> values on {column} outside its bounds"));
        }
        if let Some((v, strict)) = lo {
            let op = if strict { CmpOp::Gt } else { CmpOp::Ge };
            out.push(cmp(column.to_owned(), op, v));
        }
        if let Some((v, strict)) = hi {
            let op = if strict { CmpOp::Lt } else { CmpOp::Le };
            out.push(cmp(column.to_owned(), op, v));
        }
        if !ne.is_empty() {
            out.push(in_list(column.to_owned(), ne, true));
        }
    }
    for d in dropped {
        cx.fire(Rule::DropRedundant, || d);
    }
    Some(out)
}

/// Keeps in `eq` (none yet: every value) only the values also in `vals`.
fn intersect(eq: &mut Option<Vec<Value>>, vals: &[Value]) {
    match eq {
        Some(set) => {
            let mut other = vals.to_vec();
            other.sort();
            set.retain(|v| other.binary_search(v).is_ok());
        }
        None => {
            let mut set = vals.to_vec();
            set.sort();
            set.dedup();
            *eq = Some(set);
        }
    }
}

/// Keeps the tighter of `bound` and `new` (the greater lower bound or the smaller upper
/// one; on equal values the strict one), noting the looser one in `dropped`.
fn tighten(
    column: &str,
    bound: &mut Option<Bound>,
    new: Bound,
    lower: bool,
    dropped: &mut Vec<String>,
) {
    let Some(old) = bound else {
        *bound = Some(new);
        return;
    };
    let by_value = if lower {
        new.0.cmp(&old.0)
    } else {
        old.0.cmp(&new.0)
    };
    let new_tighter = by_value.then(new.1.cmp(&old.1)) == Ordering::Greater;
    let (kept, loose) = if new_tighter {
        (&new, &*old)
    } else {
        (&*old, &new)
    };
    let sym = |(v, strict): &Bound| {
        let op = match (lower, strict) {
            (true, true) => ">",
            (true, false) => ">=",
            (false, true) => "<",
            (false, false) => "<=",
        };
        format!("{column} {op} {v}")
    };
    dropped.push(format!("{} implied by {}", sym(loose), sym(kept)));
    if new_tighter {
        *bound = Some(new);
    }
}

/// An integer value as `i128`.
fn int(v: &Value) -> Option<i128> {
    match v {
        Value::U64(x) => Some(i128::from(*x)),
        Value::I64(x) => Some(i128::from(*x)),
        _ => None,
    }
}

/// `n` as a value of `like`'s variant.
fn same_variant(like: &Value, n: i128) -> Option<Value> {
    match like {
        Value::U64(_) => u64::try_from(n).ok().map(Value::U64),
        Value::I64(_) => i64::try_from(n).ok().map(Value::I64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::query::eval::{eval, keeps};

    const NOW: i64 = 1_795_687_200_000_000_000;
    const HOUR: i64 = 3_600_000_000_000;

    fn c(column: &str, op: CmpOp, v: i64) -> Pred {
        cmp(column.into(), op, Value::I64(v))
    }
    fn eq(column: &str, v: i64) -> Pred {
        c(column, CmpOp::Eq, v)
    }
    fn list(column: &str, vals: &[i64], negated: bool) -> Pred {
        Pred::In {
            column: column.into(),
            values: vals
                .iter()
                .map(|v| Operand::Value(Value::I64(*v)))
                .collect(),
            negated,
        }
    }
    fn between(column: &str, low: i64, high: i64, negated: bool) -> Pred {
        Pred::Between {
            column: column.into(),
            low: Operand::Value(Value::I64(low)),
            high: Operand::Value(Value::I64(high)),
            negated,
        }
    }
    fn is_null(column: &str, negated: bool) -> Pred {
        Pred::IsNull {
            column: column.into(),
            negated,
        }
    }
    fn not(p: Pred) -> Pred {
        Pred::Not(Box::new(p))
    }
    fn and(items: Vec<Pred>) -> Pred {
        Pred::And(items)
    }
    fn or(items: Vec<Pred>) -> Pred {
        Pred::Or(items)
    }

    fn rw(p: Pred) -> Rewritten {
        rewrite(p, NOW).unwrap()
    }

    fn rules(r: &Rewritten) -> Vec<Rule> {
        r.fired.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn push_not_down_applies_de_morgan_and_negates_comparisons() {
        let r = rw(not(or(vec![c("a", CmpOp::Gt, 5), eq("b", 2)])));
        assert_eq!(
            r.pred,
            and(vec![c("a", CmpOp::Le, 5), c("b", CmpOp::Ne, 2)])
        );
        assert_eq!(rules(&r), vec![Rule::PushNotDown]);
        assert_eq!(
            r.fired[0].to_string(),
            "push_not_down: NOT (a > 5 OR b = 2) -> (a <= 5 AND b <> 2)"
        );

        let r = rw(not(not(c("a", CmpOp::Lt, 1))));
        assert_eq!(r.pred, c("a", CmpOp::Lt, 1));
        assert!(r.has_fired(Rule::PushNotDown));

        let r = rw(not(list("a", &[1, 2], false)));
        assert_eq!(r.pred, list("a", &[1, 2], true));
        let r = rw(not(list("a", &[1, 2], true)));
        assert_eq!(r.pred, list("a", &[1, 2], false));
        assert_eq!(rw(not(is_null("a", false))).pred, is_null("a", true));
        assert_eq!(rw(not(is_null("a", true))).pred, is_null("a", false));
        assert_eq!(rw(not(Pred::True)).pred, Pred::False);
        assert_eq!(rw(not(Pred::False)).pred, Pred::True);

        let r = rw(not(between("a", 1, 5, false)));
        assert_eq!(r.pred, or(vec![c("a", CmpOp::Gt, 5), c("a", CmpOp::Lt, 1)]));
        assert_eq!(rules(&r), vec![Rule::PushNotDown, Rule::BetweenToRange]);
        let r = rw(not(between("a", 1, 5, true)));
        assert_eq!(
            r.pred,
            and(vec![c("a", CmpOp::Ge, 1), c("a", CmpOp::Le, 5)])
        );
    }

    #[test]
    fn between_becomes_a_range_and_merges() {
        let r = rw(between("ts", 10, 20, false));
        assert_eq!(
            r.pred,
            and(vec![c("ts", CmpOp::Ge, 10), c("ts", CmpOp::Le, 20)])
        );
        assert_eq!(rules(&r), vec![Rule::BetweenToRange]);

        let r = rw(and(vec![
            between("ts", 10, 20, false),
            c("ts", CmpOp::Gt, 15),
        ]));
        assert_eq!(
            r.pred,
            and(vec![c("ts", CmpOp::Gt, 15), c("ts", CmpOp::Le, 20)])
        );
        assert!(r.has_fired(Rule::BetweenToRange));
        assert!(r.has_fired(Rule::MergeRanges));
        let merge = r.fired.iter().find(|f| f.rule == Rule::MergeRanges);
        assert_eq!(
            merge.map(|f| f.to_string()).as_deref(),
            Some("merge_ranges: ts > 15 AND ts <= 20 on ts")
        );

        let r = rw(between("a", 1, 5, true));
        assert_eq!(r.pred, or(vec![c("a", CmpOp::Gt, 5), c("a", CmpOp::Lt, 1)]));
    }

    #[test]
    fn or_of_equalities_becomes_in() {
        let r = rw(or(vec![or(vec![eq("x", 2), eq("x", 1)]), eq("x", 3)]));
        assert_eq!(r.pred, list("x", &[1, 2, 3], false));
        assert!(r.has_fired(Rule::OrToIn));
        assert!(!r.has_fired(Rule::DropRedundant), "{:?}", r.fired);

        let r = rw(or(vec![list("x", &[3, 1], false), eq("x", 3), eq("x", 2)]));
        assert_eq!(r.pred, list("x", &[1, 2, 3], false));

        let r = rw(list("x", &[4], false));
        assert_eq!(r.pred, eq("x", 4));
        assert_eq!(rules(&r), vec![Rule::OrToIn]);
        assert_eq!(rw(list("x", &[4], true)).pred, c("x", CmpOp::Ne, 4));

        // Equalities mixed with other terms: merged per column inside the OR.
        let r = rw(or(vec![
            eq("x", 1),
            c("y", CmpOp::Gt, 2),
            eq("x", 3),
            eq("z", 0),
        ]));
        assert_eq!(
            r.pred,
            or(vec![
                list("x", &[1, 3], false),
                c("y", CmpOp::Gt, 2),
                eq("z", 0)
            ])
        );
        assert!(r.has_fired(Rule::OrToIn));
    }

    #[test]
    fn merge_ranges_keeps_the_tightest_bounds() {
        let r = rw(and(vec![
            c("x", CmpOp::Ge, 1),
            c("x", CmpOp::Gt, 3),
            c("x", CmpOp::Ge, 3),
            c("x", CmpOp::Lt, 10),
            c("x", CmpOp::Le, 10),
        ]));
        assert_eq!(
            r.pred,
            and(vec![c("x", CmpOp::Gt, 3), c("x", CmpOp::Lt, 10)])
        );
        assert!(r.has_fired(Rule::MergeRanges));
        assert!(r.has_fired(Rule::DropRedundant));

        // IN intersected with the bounds and the <> values.
        let r = rw(and(vec![
            list("x", &[1, 5, 7, 9], false),
            c("x", CmpOp::Gt, 3),
            c("x", CmpOp::Ne, 7),
        ]));
        assert_eq!(r.pred, list("x", &[5, 9], false));
        assert!(r.has_fired(Rule::MergeRanges));

        let r = rw(and(vec![
            list("x", &[1, 2, 3], false),
            list("x", &[2, 3, 4], false),
        ]));
        assert_eq!(r.pred, list("x", &[2, 3], false));

        // Several <> become one NOT IN; those outside the bounds go.
        let r = rw(and(vec![
            c("x", CmpOp::Ne, 2),
            c("x", CmpOp::Ne, 1),
            c("x", CmpOp::Ne, 100),
            c("x", CmpOp::Lt, 50),
        ]));
        assert_eq!(
            r.pred,
            and(vec![c("x", CmpOp::Lt, 50), list("x", &[1, 2], true)])
        );

        // A <> on an inclusive bound makes it strict.
        let r = rw(and(vec![c("x", CmpOp::Ge, 5), c("x", CmpOp::Ne, 5)]));
        assert_eq!(r.pred, c("x", CmpOp::Gt, 5));

        // A range of one value is an equality.
        let r = rw(and(vec![c("x", CmpOp::Ge, 5), c("x", CmpOp::Le, 5)]));
        assert_eq!(r.pred, eq("x", 5));
        let r = rw(and(vec![c("x", CmpOp::Gt, 4), c("x", CmpOp::Lt, 6)]));
        assert_eq!(r.pred, eq("x", 5));
    }

    #[test]
    fn different_variants_are_left_unmerged() {
        let u = cmp("x".into(), CmpOp::Gt, Value::U64(3));
        let i = c("x", CmpOp::Gt, 5);
        let r = rw(and(vec![i.clone(), u.clone()]));
        assert_eq!(r.pred, and(vec![u.clone(), i.clone()]));
        assert!(!r.has_fired(Rule::MergeRanges));
        // Null tests still apply.
        let r = rw(and(vec![i.clone(), u.clone(), is_null("x", true)]));
        assert_eq!(r.pred, and(vec![u.clone(), i.clone()]));
        let r = rw(and(vec![i, u, is_null("x", false)]));
        assert_eq!(r.pred, Pred::False);
    }

    #[test]
    fn contradictions_become_false() {
        let r = rw(and(vec![eq("x", 1), eq("x", 2)]));
        assert_eq!(r.pred, Pred::False);
        assert_eq!(rules(&r), vec![Rule::Contradiction]);

        for p in [
            and(vec![c("x", CmpOp::Gt, 5), c("x", CmpOp::Lt, 3)]),
            and(vec![c("x", CmpOp::Ge, 5), c("x", CmpOp::Lt, 5)]),
            and(vec![c("x", CmpOp::Gt, 4), c("x", CmpOp::Lt, 5)]),
            and(vec![eq("x", 3), c("x", CmpOp::Ne, 3)]),
            and(vec![list("x", &[1, 2], false), c("x", CmpOp::Gt, 2)]),
            and(vec![is_null("x", false), c("x", CmpOp::Gt, 2)]),
            and(vec![is_null("x", false), is_null("x", true)]),
            and(vec![eq("y", 1), cmp("x".into(), CmpOp::Eq, Value::Null)]),
            list("x", &[], false),
            Pred::In {
                column: "x".into(),
                values: vec![Operand::Value(Value::I64(1)), Operand::Null],
                negated: true,
            },
            or(vec![
                and(vec![eq("x", 1), eq("x", 2)]),
                and(vec![eq("y", 1), eq("y", 2)]),
            ]),
        ] {
            let r = rw(p.clone());
            assert_eq!(r.pred, Pred::False, "{p}");
            assert!(r.has_fired(Rule::Contradiction), "{p}: {:?}", r.fired);
        }
        // A contradiction inside an OR leaves the other members.
        let r = rw(or(vec![and(vec![eq("x", 1), eq("x", 2)]), eq("y", 1)]));
        assert_eq!(r.pred, eq("y", 1));
    }

    #[test]
    fn fold_constants_computes_time_arithmetic_and_literals() {
        let p = Pred::Cmp {
            column: "ts".into(),
            op: CmpOp::Gt,
            value: Operand::Arith {
                left: Box::new(Operand::Now),
                minus: true,
                right: Box::new(Operand::Interval(HOUR)),
            },
        };
        let r = rw(p);
        assert_eq!(r.pred, c("ts", CmpOp::Gt, NOW - HOUR));
        assert_eq!(rules(&r), vec![Rule::FoldConstants]);
        assert_eq!(
            r.fired[0].to_string(),
            format!("fold_constants: now() - interval '1h' = {}", NOW - HOUR)
        );

        let overflow = Pred::Cmp {
            column: "ts".into(),
            op: CmpOp::Gt,
            value: Operand::Arith {
                left: Box::new(Operand::Value(Value::I64(i64::MAX))),
                minus: false,
                right: Box::new(Operand::Interval(HOUR)),
            },
        };
        let e = rewrite(overflow, NOW).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let unbound = Pred::Cmp {
            column: "ts".into(),
            op: CmpOp::Gt,
            value: Operand::Param(1),
        };
        assert_eq!(
            rewrite(unbound, NOW).unwrap_err().kind(),
            ErrorKind::Invalid
        );

        let r = rw(and(vec![
            Pred::True,
            and(vec![eq("a", 1), eq("b", 2)]),
            eq("c", 3),
        ]));
        assert_eq!(r.pred, and(vec![eq("a", 1), eq("b", 2), eq("c", 3)]));
        assert_eq!(rules(&r), vec![Rule::FoldConstants]);
        assert_eq!(rw(and(vec![eq("a", 1), Pred::False])).pred, Pred::False);
        assert_eq!(rw(or(vec![eq("a", 1), Pred::True])).pred, Pred::True);
        assert_eq!(
            rw(or(vec![eq("a", 1), Pred::False, c("b", CmpOp::Lt, 0)])).pred,
            or(vec![eq("a", 1), c("b", CmpOp::Lt, 0)])
        );
        assert_eq!(rw(and(vec![])).pred, Pred::True);
        assert_eq!(rw(or(vec![])).pred, Pred::False);
    }

    #[test]
    fn drop_redundant_removes_implied_conditions() {
        let r = rw(and(vec![eq("a", 1), eq("b", 2), eq("a", 1)]));
        assert_eq!(r.pred, and(vec![eq("a", 1), eq("b", 2)]));
        assert_eq!(rules(&r), vec![Rule::DropRedundant]);

        let r = rw(or(vec![c("a", CmpOp::Lt, 1), c("a", CmpOp::Lt, 1)]));
        assert_eq!(r.pred, c("a", CmpOp::Lt, 1));
        assert!(r.has_fired(Rule::DropRedundant));

        let r = rw(and(vec![is_null("a", true), c("a", CmpOp::Gt, 1)]));
        assert_eq!(r.pred, c("a", CmpOp::Gt, 1));
        assert_eq!(rules(&r), vec![Rule::DropRedundant]);

        let r = rw(and(vec![c("a", CmpOp::Gt, 1)]));
        assert_eq!(r.pred, c("a", CmpOp::Gt, 1));
        assert_eq!(rules(&r), vec![Rule::DropRedundant]);

        let r = rw(list("a", &[], true));
        assert_eq!(r.pred, Pred::True);
        assert!(r.has_fired(Rule::DropRedundant));
    }

    #[test]
    fn the_normal_form_is_sorted_and_deterministic() {
        let p = and(vec![
            or(vec![eq("d", 2), eq("c", 1)]),
            is_null("b", true),
            c("a", CmpOp::Ne, 7),
            c("a", CmpOp::Lt, 9),
            eq("b", 1),
            c("a", CmpOp::Gt, 1),
        ]);
        let want = and(vec![
            c("a", CmpOp::Gt, 1),
            c("a", CmpOp::Lt, 9),
            c("a", CmpOp::Ne, 7),
            eq("b", 1),
            or(vec![eq("c", 1), eq("d", 2)]),
        ]);
        let r = rw(p);
        assert_eq!(r.pred, want);
        // Rewriting the normal form changes nothing.
        let again = rw(r.pred.clone());
        assert_eq!(again.pred, want);
        assert!(again.fired.is_empty(), "{:?}", again.fired);
        // Untouched input reports nothing.
        assert!(rw(eq("a", 1)).fired.is_empty());
        assert!(rw(Pred::True).fired.is_empty());
    }

    #[test]
    fn conjuncts_lists_the_top_level_and() {
        let p = and(vec![eq("a", 1), eq("b", 2)]);
        assert_eq!(conjuncts(&p), vec![&eq("a", 1), &eq("b", 2)]);
        assert_eq!(conjuncts(&eq("a", 1)), vec![&eq("a", 1)]);
        assert!(conjuncts(&Pred::True).is_empty());
    }

    #[test]
    fn rule_names() {
        let all = [
            (Rule::FoldConstants, "fold_constants"),
            (Rule::PushNotDown, "push_not_down"),
            (Rule::BetweenToRange, "between_to_range"),
            (Rule::OrToIn, "or_to_in"),
            (Rule::MergeRanges, "merge_ranges"),
            (Rule::Contradiction, "contradiction"),
            (Rule::DropRedundant, "drop_redundant"),
        ];
        for (rule, name) in all {
            assert_eq!(rule.name(), name);
            assert_eq!(rule.to_string(), name);
        }
    }

    #[test]
    fn details_are_capped_per_rule() {
        let p = and((0..10)
            .map(|i| is_null(&format!("c{i}"), true))
            .chain((0..10).map(|i| c(&format!("c{i}"), CmpOp::Gt, 0)))
            .collect());
        let r = rw(p);
        assert_eq!(rules(&r), vec![Rule::DropRedundant]);
        assert!(
            r.fired[0].detail.ends_with("; and 7 more"),
            "{}",
            r.fired[0]
        );
    }

    // The property: the rewritten filter keeps exactly the rows the original keeps.

    mod props {
        use proptest::prelude::*;
        use proptest::test_runner::Config;

        use super::*;

        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                8 => (-5i64..5).prop_map(Value::I64),
                6 => (-2i64..2).prop_map(Value::I64),
                1 => (0u64..5).prop_map(Value::U64),
                1 => Just(Value::Null),
            ]
        }

        fn column() -> impl Strategy<Value = String> {
            prop_oneof![Just("a".to_owned()), Just("b".to_owned())]
        }

        fn op() -> impl Strategy<Value = CmpOp> {
            prop_oneof![
                Just(CmpOp::Eq),
                Just(CmpOp::Ne),
                Just(CmpOp::Lt),
                Just(CmpOp::Le),
                Just(CmpOp::Gt),
                Just(CmpOp::Ge),
            ]
        }

        fn leaf() -> impl Strategy<Value = Pred> {
            prop_oneof![
                1 => Just(Pred::True),
                1 => Just(Pred::False),
                10 => (column(), op(), value()).prop_map(|(column, op, v)| Pred::Cmp {
                    column,
                    op,
                    value: Operand::Value(v),
                }),
                5 => (column(), prop::collection::vec(value(), 0..4), any::<bool>()).prop_map(
                    |(column, vals, negated)| Pred::In {
                        column,
                        values: vals.into_iter().map(Operand::Value).collect(),
                        negated,
                    }
                ),
                2 => (column(), value(), value(), any::<bool>()).prop_map(
                    |(column, low, high, negated)| Pred::Between {
                        column,
                        low: Operand::Value(low),
                        high: Operand::Value(high),
                        negated,
                    }
                ),
                2 => (column(), any::<bool>())
                    .prop_map(|(column, negated)| Pred::IsNull { column, negated }),
            ]
        }

        fn pred() -> impl Strategy<Value = Pred> {
            leaf().prop_recursive(4, 96, 6, |inner| {
                prop_oneof![
                    4 => prop::collection::vec(inner.clone(), 0..6).prop_map(Pred::And),
                    2 => prop::collection::vec(inner.clone(), 0..6).prop_map(Pred::Or),
                    2 => inner.prop_map(|p| Pred::Not(Box::new(p))),
                ]
            })
        }

        /// Every row value: NULL, -6..=6 and a few unsigned ones.
        fn row_values() -> Vec<Value> {
            let mut v = vec![Value::Null];
            v.extend((-6..=6).map(Value::I64));
            v.extend([0, 2, 5].map(Value::U64));
            v
        }

        fn has_not_or_between(p: &Pred) -> bool {
            match p {
                Pred::Not(_) | Pred::Between { .. } => true,
                Pred::And(items) | Pred::Or(items) => items.iter().any(has_not_or_between),
                _ => false,
            }
        }

        proptest! {
            #![proptest_config(Config {
                cases: 5000,
                failure_persistence: None,
                ..Config::default()
            })]

            #[test]
            fn rewriting_keeps_the_same_rows(p in pred()) {
                let r = rewrite(p.clone(), NOW).unwrap();
                prop_assert!(!has_not_or_between(&r.pred), "{} -> {}", p, r.pred);
                let vals = row_values();
                for a in &vals {
                    for b in &vals {
                        let row = |c: &str| if c == "a" { a.clone() } else { b.clone() };
                        let before = keeps(&p, &row).unwrap();
                        let after = keeps(&r.pred, &row).unwrap();
                        prop_assert_eq!(
                            before, after,
                            "a={:?} b={:?}: {} -> {} (was {:?})",
                            a, b, p, r.pred, eval(&p, &row).unwrap()
                        );
                    }
                }
                let again = rewrite(r.pred.clone(), NOW).unwrap();
                prop_assert_eq!(&again.pred, &r.pred);
                prop_assert!(again.fired.is_empty(), "{} -> {}: {:?}", p, r.pred, again.fired);
            }
        }
    }
}
