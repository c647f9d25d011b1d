//! The consistency check of a whole store (or of a transaction before it commits, as
//! restore does): every row decodes and obeys the business rules, foreign keys are closed,
//! every order's filled quantity is the sum of its fills, every position is the fold of its
//! fills, and every index has exactly one entry per row, matching it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use serde::Serialize;
use tradestore_schema::{
    AnyRecord, FOREIGN_KEYS, Instrument, Order, Position, Quantity, TableId, Trade, Value, codec,
    portfolio, rules,
};

use crate::error::Result;
use crate::keys;
use crate::txn::{ReadOps, Source, entry_key, show_values};

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which check failed: `decode`, `key`, `rule`, `foreign_key`, `order_fills`,
    /// `position_fold`, `index_orphan`, `index_mismatch`, `index_count`, `unique`, and,
    /// from [`crate::Store::check`], `audit` (the audit trail's hash chain) and `archive` (a
    /// damaged archive segment).
    pub check: &'static str,
    /// The table (or index) concerned.
    pub table: String,
    /// The primary key of the row concerned, `/`-separated.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The outcome of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Rows examined, all tables.
    pub rows: u64,
    /// Index entries examined, all indexes.
    pub index_entries: u64,
    /// Every inconsistency found, in the order found.
    pub violations: Vec<Violation>,
}

impl CheckReport {
    /// No violations.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks everything visible to `tx`. `progress(done, total)` is called as rows and index
/// entries are examined.
pub fn check(
    tx: &impl ReadOps,
    indexes: &[crate::IndexSpec],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CheckReport> {
    let mut rows_of = BTreeMap::new();
    for t in TableId::ALL {
        rows_of.insert(t, tx.count(t)?);
    }
    let total = 2 * rows_of.values().sum::<u64>();
    let mut c = Checker {
        report: CheckReport::default(),
        done: 0,
        total,
        progress,
    };
    let mut instruments: HashMap<u64, Instrument> = HashMap::new();
    let mut orders: BTreeMap<u64, Order> = BTreeMap::new();
    let mut fills: HashMap<u64, i128> = HashMap::new();
    let mut folded: HashMap<(u64, u64), Position> = HashMap::new();
    // The ids stored in each table a foreign key points at, gathered while it is scanned
    // (parents come first in `TableId::ALL`): a child's key is then looked up in memory,
    // not in the store (measured on a restore of 200k trades: the check was the longest
    // task of the load, and its lookups a large part of it).
    let mut parents: HashMap<TableId, HashSet<u64>> = HashMap::new();

    for table in TableId::ALL {
        let is_parent = FOREIGN_KEYS.iter().any(|fk| fk.parent == table);
        let fks: Vec<_> = FOREIGN_KEYS.iter().filter(|fk| fk.child == table).collect();
        let mut ids = HashSet::new();
        tx.raw_range(
            Source::Table(table),
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |k, v| {
                c.tick();
                if is_parent && let Some(id) = keys::id_of(k) {
                    ids.insert(id);
                }
                // Formatted only for a violation: most rows have none.
                let key_text = || keys::show(k);
                let rec = match codec::decode_any(table, v) {
                    Ok(r) => r,
                    Err(e) => {
                        c.add("decode", table.name(), &key_text(), e.to_string());
                        return Ok(true);
                    }
                };
                if keys::encode(&rec.primary_key()) != k {
                    c.add(
                        "key",
                        table.name(),
                        &key_text(),
                        format!(
                            "stored under key {} but its primary key is {}",
                            key_text(),
                            show_values(&rec.primary_key())
                        ),
                    );
                }
                for fk in &fks {
                    let value = rec.column(fk.column).unwrap_or(Value::Null);
                    let exists = match (parents.get(&fk.parent), value.as_u64()) {
                        (Some(ids), Some(id)) => ids.contains(&id),
                        _ => tx
                            .raw_get(fk.parent, &keys::encode(std::slice::from_ref(&value)))?
                            .is_some(),
                    };
                    if !exists {
                        c.add(
                            "foreign_key",
                            table.name(),
                            &key_text(),
                            format!("{} {value} does not exist in {}", fk.column, fk.parent),
                        );
                    }
                }
                match rec {
                    AnyRecord::Instruments(i) => {
                        if let Err(v) = rules::validate_instrument(&i) {
                            c.add("rule", table.name(), &key_text(), v.to_string());
                        }
                        instruments.insert(i.id, i);
                    }
                    AnyRecord::Accounts(a) => {
                        if let Err(v) = rules::validate_account(&a) {
                            c.add("rule", table.name(), &key_text(), v.to_string());
                        }
                    }
                    AnyRecord::Cash(cash) => {
                        if let Err(v) = rules::validate_cash(&cash) {
                            c.add("rule", table.name(), &key_text(), v.to_string());
                        }
                    }
                    AnyRecord::Orders(o) => {
                        if let Some(i) = instruments.get(&o.instrument)
                            && let Err(v) = rules::validate_order(&o, i)
                        {
                            c.add("rule", table.name(), &key_text(), v.to_string());
                        }
                        orders.insert(o.id, o);
                    }
                    AnyRecord::Trades(t) => {
                        c.trade(&t, &key_text, &orders, &instruments);
                        *fills.entry(t.order_id).or_default() += i128::from(t.quantity.0);
                        let slot = folded.get_mut(&(t.account, t.instrument));
                        match portfolio::apply_fill(slot.as_deref(), &t) {
                            Ok(p) => match slot {
                                Some(s) => *s = p,
                                None => {
                                    folded.insert((t.account, t.instrument), p);
                                }
                            },
                            Err(v) => {
                                // The fold cannot go on: later fills of the position start
                                // from none, each reported against that.
                                folded.remove(&(t.account, t.instrument));
                                c.add("position_fold", table.name(), &key_text(), v.to_string());
                            }
                        }
                    }
                    AnyRecord::Positions(p) => {
                        let expected = folded.remove(&(p.account, p.instrument));
                        c.position(&p, expected.as_ref(), &key_text);
                    }
                }
                Ok(true)
            },
        )?;
        if is_parent {
            parents.insert(table, ids);
        }
        if table == TableId::Trades {
            for o in orders.values() {
                let sum = fills.get(&o.id).copied().unwrap_or(0);
                if sum != i128::from(o.filled_quantity.0) {
                    c.add(
                        "order_fills",
                        "orders",
                        &o.id.to_string(),
                        format!(
                            "filled_quantity {} but its fills sum to {}",
                            o.filled_quantity,
                            Quantity(i64::try_from(sum).unwrap_or(i64::MAX))
                        ),
                    );
                }
            }
        }
    }
    // In key order, as every other violation is found.
    let mut folded: Vec<_> = folded.into_iter().collect();
    folded.sort_unstable_by_key(|(k, _)| *k);
    for ((account, instrument), p) in folded {
        c.add(
            "position_fold",
            "positions",
            &format!("{account}/{instrument}"),
            format!(
                "fills add up to quantity {} but the position is missing",
                p.quantity
            ),
        );
    }
    // An index still being built is incomplete by design; it is checked once ready.
    for spec in indexes.iter().filter(|s| s.ready) {
        c.index(tx, spec, rows_of.get(&spec.def.table).copied().unwrap_or(0))?;
    }
    (c.progress)(c.done, c.total);
    Ok(c.report)
}

/// The report of a store whose archive has damaged segments: one `archive` violation per
/// segment, then one saying what was left unchecked. The rows are not checked: every
/// order's fills and every position count the archived trades, so without them each would
/// look wrong, and the damage is what to mend first.
pub(crate) fn archive_damage(
    damaged: &[(std::sync::Arc<crate::archive::SegmentMeta>, crate::Error)],
) -> CheckReport {
    let mut violations: Vec<Violation> = damaged
        .iter()
        .map(|(meta, e)| Violation {
            check: "archive",
            table: "trades".to_owned(),
            key: format!("{}..={}", meta.first_id, meta.last_id),
            message: format!(
                "{}: the {} trades it holds cannot be read",
                e.message(),
                meta.rows
            ),
        })
        .collect();
    violations.push(Violation {
        check: "archive",
        table: "trades".to_owned(),
        key: String::new(),
        message: format!(
            "rows and indexes not checked: orders' fills and positions count the archived \
             trades. Put back the damaged segment file{} from a backup of the store (the same \
             file under archive/trades/), or restore a backup or dump, and check again",
            if damaged.len() == 1 { "" } else { "s" }
        ),
    });
    CheckReport {
        rows: 0,
        index_entries: 0,
        violations,
    }
}

struct Checker<'p> {
    report: CheckReport,
    done: u64,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl Checker<'_> {
    fn add(&mut self, check: &'static str, table: &str, key: &str, message: String) {
        self.report.violations.push(Violation {
            check,
            table: table.to_owned(),
            key: key.to_owned(),
            message,
        });
    }

    fn tick(&mut self) {
        self.report.rows += 1;
        self.done += 1;
        if self.done.is_multiple_of(4096) {
            (self.progress)(self.done, self.total);
        }
    }

    fn trade(
        &mut self,
        t: &Trade,
        key: &dyn Fn() -> String,
        orders: &BTreeMap<u64, Order>,
        instruments: &HashMap<u64, Instrument>,
    ) {
        let Some(order) = orders.get(&t.order_id) else {
            return;
        };
        let Some(instrument) = instruments.get(&order.instrument) else {
            return;
        };
        let fresh = Order {
            status: tradestore_schema::OrderStatus::New,
            filled_quantity: Quantity::ZERO,
            ..order.clone()
        };
        if let Err(v) = rules::validate_fill(t, &fresh, instrument) {
            self.add("rule", "trades", &key(), v.to_string());
        }
    }

    fn position(&mut self, p: &Position, expected: Option<&Position>, key: &dyn Fn() -> String) {
        let zero = Position {
            quantity: Quantity::ZERO,
            cost_basis: Default::default(),
            realized_pnl: Default::default(),
            ..p.clone()
        };
        let want = expected.unwrap_or(&zero);
        let stale_ts = expected
            .is_some_and(|e| (e.updated_ts, e.last_trade_id) != (p.updated_ts, p.last_trade_id));
        if stale_ts
            || (p.quantity, p.cost_basis, p.realized_pnl)
                != (want.quantity, want.cost_basis, want.realized_pnl)
        {
            self.add(
                "position_fold",
                "positions",
                &key(),
                format!(
                    "stored quantity {} cost_basis {} realized_pnl {} updated_ts {}, but its fills fold to {} / {} / {} / {}",
                    p.quantity,
                    p.cost_basis,
                    p.realized_pnl,
                    p.updated_ts,
                    want.quantity,
                    want.cost_basis,
                    want.realized_pnl,
                    want.updated_ts
                ),
            );
        }
    }

    fn index(&mut self, tx: &impl ReadOps, spec: &crate::IndexSpec, rows: u64) -> Result<()> {
        let table = spec.def.table;
        let n = spec.def.columns.len();
        let name = format!("index {}", spec.def.name);
        let mut previous_prefix: Option<Vec<u8>> = None;
        let mut entries = 0u64;
        // Streamed: a store's index need not fit in memory to be checked.
        tx.raw_range(
            Source::Index(spec),
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |k, copy| {
                entries += 1;
                self.report.index_entries += 1;
                self.done += 1;
                if self.done.is_multiple_of(4096) {
                    (self.progress)(self.done, self.total);
                }
                let Ok(at) = keys::len_of_values(k, n) else {
                    self.add(
                        "index_orphan",
                        &name,
                        &format!("{k:02x?}"),
                        "malformed index entry".to_owned(),
                    );
                    return Ok(true);
                };
                let (prefix, pk) = k.split_at(at);
                let pk_text = keys::show(pk);
                if spec.def.unique && previous_prefix.as_deref() == Some(prefix) {
                    self.add(
                        "unique",
                        &name,
                        &pk_text,
                        "another row has the same indexed value".to_owned(),
                    );
                }
                previous_prefix = Some(prefix.to_vec());
                match tx.raw_get(table, pk)? {
                    None => self.add(
                        "index_orphan",
                        &name,
                        &pk_text,
                        format!("entry points at a missing {table} row"),
                    ),
                    Some(bytes) => {
                        if let Ok(rec) = codec::decode_any(table, &bytes)
                            && entry_key(spec, &rec, pk) != *k
                        {
                            self.add(
                                "index_mismatch",
                                &name,
                                &pk_text,
                                "entry does not match the row's current values".to_owned(),
                            );
                        } else if spec.def.covering && *copy != bytes {
                            self.add(
                                "index_mismatch",
                                &name,
                                &pk_text,
                                "the entry's copy of the row differs from the row".to_owned(),
                            );
                        }
                    }
                }
                Ok(true)
            },
        )?;
        if rows != entries {
            self.add(
                "index_count",
                &name,
                "",
                format!("{entries} entries for {rows} {table} rows: some rows have no entry"),
            );
        }
        Ok(())
    }
}
